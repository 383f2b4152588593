//! An alert held until its evidence is final (`evidence.delivery = hold_until_final`): the hold
//! kept, looked at again by its own message, and released with the evidence it can carry.

use std::time::Duration;

use crate::app::evidence::setup::{Evidence, StepOutcome};
use crate::app::polling::deliver::send_tracked;
use crate::app::polling::origin::safe_key;
use crate::app::processing::processor::Processor;
use crate::domain::envelope::sha256_hex;
use crate::domain::evidence::hold::{hold_key, release_bodies, HeldAlert, HoldRecord};
use crate::domain::evidence::job::{JobMessage, JobRecord};
use crate::domain::integration::sections::EvidenceDelivery;
use crate::domain::integration::Integration;
use crate::domain::processing::output::{EvidenceItem, EvidenceRetrieval};
use crate::domain::time::GraphTime;
use crate::ports::evidence::MAX_DELAY;
use crate::ports::{ArtifactStore, Clock, DelayQueue, EvidenceJobStore, ProcessPorts};

/// Where a hold stands after a look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HoldState {
    /// Still waiting, at most until `deadline`.
    Holding { deadline: GraphTime },
    /// The alert went out (`now`: by this look).
    Released { now: bool },
    /// No such hold (it expired, or the alert's intake never saved it).
    Missing,
}

impl<P: ProcessPorts> Processor<P> {
    /// Whether this alert version waits for its evidence: the integration asks for it and a job
    /// of this processor's runs.
    pub(crate) fn holds(&self, integration: &Integration, retrieval: Option<&EvidenceRetrieval>) -> bool {
        self.evidence.is_some()
            && integration.evidence.delivery == EvidenceDelivery::HoldUntilFinal
            && retrieval.is_some_and(|r| r.items.iter().any(|i| !i.is_final()))
    }

    /// Keeps an alert version's rendered messages until its evidence is final; returns the
    /// hold's first message (at its deadline, or in the longest delay SQS allows).
    pub(crate) async fn hold_alert(
        &self,
        integration: &Integration,
        dedup_key: &str,
        bodies: Vec<String>,
        items: Vec<EvidenceItem>,
        now: GraphTime,
    ) -> Result<(String, Duration), String> {
        let ev = self.evidence.as_ref().ok_or("this processor has no evidence retrieval")?;
        let text = serde_json::to_vec(&HeldAlert::new(bodies)).map_err(|e| e.to_string())?;
        let object = format!("held/{}/{}.json", safe_key(&integration.id), sha256_hex(dedup_key.as_bytes()));
        let held = self.artifacts.put(&object, text).await.map_err(|e| format!("could not keep the held alert: {e}"))?;
        let wait = integration.evidence.hold_max_wait.0.min(ev.settings.limits.max_wait);
        let record = HoldRecord {
            key: hold_key(dedup_key),
            integration_id: integration.id.clone(),
            dedup_key: dedup_key.to_owned(),
            items,
            held,
            created_at: now,
            deadline: now.plus(wait),
            releasing: None,
            released_at: None,
            included: Vec::new(),
        };
        let (stored, _) = ev.jobs.create(&record, now.plus(ev.settings.job_ttl)).await.map_err(|e| e.to_string())?;
        let first = JobMessage::hold(&integration.id, &stored.key).to_json();
        Ok((first, stored.deadline.since(now).min(MAX_DELAY)))
    }

    /// A hold's message: the alert goes out if its evidence is final or its wait is over;
    /// otherwise the message comes back by the deadline.
    pub(super) async fn step_hold(&self, integration: &Integration, key: &str) -> Result<StepOutcome, String> {
        let ev = self.evidence.as_ref().ok_or("this processor has no evidence retrieval")?;
        let now = self.clock.now();
        match self.settle_hold(integration, key, now).await? {
            HoldState::Holding { deadline } => {
                let delay = deadline.since(now).min(MAX_DELAY);
                ev.steps
                    .send_delayed(&JobMessage::hold(&integration.id, key).to_json(), delay)
                    .await
                    .map_err(|e| format!("could not queue the hold's next look: {e}"))?;
                Ok(StepOutcome::Scheduled { delay })
            }
            HoldState::Released { now: true } => Ok(StepOutcome::Released),
            HoldState::Released { now: false } | HoldState::Missing => Ok(StepOutcome::Nothing),
        }
    }

    /// Releases a hold that is due (every item ended, or its deadline passed), then publishes the
    /// update of each job that ended and that the released alert did not carry. Repeatable: a
    /// job's last step and the hold's own message both come here.
    ///
    /// One step releases: it claims the hold first (a conditional save; the claim lapses after
    /// the processor's claim time, and the hold's own message comes back to take it over).
    /// The jobs are read again after the release: a job that ended before that read is reported
    /// here, one that ends after it sees the release itself; none is left out.
    pub(super) async fn settle_hold(&self, integration: &Integration, key: &str, now: GraphTime) -> Result<HoldState, String> {
        let ev = self.evidence.as_ref().ok_or("this processor has no evidence retrieval")?;
        let Some((mut hold, mut version)) = ev.jobs.get::<HoldRecord>(key).await.map_err(|e| e.to_string())? else {
            return Ok(HoldState::Missing);
        };
        let expires = now.plus(ev.settings.job_ttl);
        let mut released_now = false;
        if hold.released_at.is_none() {
            let jobs = self.hold_jobs(ev, &hold).await?;
            let read: Vec<EvidenceItem> = jobs.iter().map(|(r, _)| EvidenceItem::of(&r.job)).collect();
            let mut items = hold.current_items(&read);
            if !hold.due(&items, now) {
                return Ok(HoldState::Holding { deadline: hold.deadline });
            }
            let claim_for = self.settings.claim_for;
            if let Some(since) = hold.releasing.filter(|since| now < since.plus(claim_for)) {
                return Ok(HoldState::Holding { deadline: since.plus(claim_for) });
            }
            hold.releasing = Some(now);
            version = match ev.jobs.save(&hold, version, expires).await {
                Ok(v) => v,
                // Another step claimed it a moment ago: it releases.
                Err(crate::error::CursorError::LeaseLost { .. }) => return Ok(HoldState::Holding { deadline: now.plus(claim_for) }),
                Err(e) => return Err(e.to_string()),
            };
            for item in items.iter_mut().filter(|i| i.kind == "email") {
                if let Some(r) = &item.artifact {
                    item.headers = self.email_headers(r).await;
                }
            }
            let stored = self.artifacts.get(&hold.held.key).await.map_err(|e| format!("the held alert is not readable: {e}"))?;
            let held: HeldAlert = serde_json::from_slice(&stored).map_err(|e| format!("the held alert does not parse: {e}"))?;
            let (bodies, included) = match release_bodies(&held, &items, now, self.settings.delivery.max_message_bytes) {
                Some(bodies) => (bodies, items.iter().filter(|i| i.is_final()).map(|i| i.id.clone()).collect()),
                None => {
                    tracing::warn!(hold = %key, "the alert's evidence does not fit its message: released as held, each item follows as an update");
                    (held.bodies, Vec::new())
                }
            };
            if !send_tracked(&self.output, &bodies, &self.settings.delivery).await.iter().all(|s| *s) {
                return Err(format!("the held alert of {key} was not accepted by the output queue"));
            }
            released_now = true;
            hold.released_at = Some(now);
            hold.included = included;
            match ev.jobs.save(&hold, version, expires).await {
                Ok(_) => {}
                // Our claim lapsed and another step released it too (the alert went out twice):
                // its list is the one kept.
                Err(crate::error::CursorError::LeaseLost { .. }) => {
                    if let Some((h, _)) = ev.jobs.get::<HoldRecord>(key).await.map_err(|e| e.to_string())? {
                        hold = h;
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        for (mut record, v) in self.hold_jobs(ev, &hold).await? {
            if record.job.outcome().is_none() || record.reported || hold.included.contains(&record.job.key) {
                continue;
            }
            self.publish_update(integration, &record, now).await?;
            record.reported = true;
            match ev.jobs.save(&record, v, expires).await {
                Ok(_) | Err(crate::error::CursorError::LeaseLost { .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(HoldState::Released { now: released_now })
    }

    /// The jobs a hold waits for, as stored now (an expired one is left out).
    async fn hold_jobs(&self, ev: &Evidence<P::Evidence>, hold: &HoldRecord) -> Result<Vec<(JobRecord, u64)>, String> {
        let mut jobs = Vec::new();
        for job in hold.pending_jobs() {
            if let Some(found) = ev.jobs.get::<JobRecord>(job).await.map_err(|e| e.to_string())? {
                jobs.push(found);
            }
        }
        Ok(jobs)
    }
}
