//! Evidence retrieval (issue 13): the processor plans each alert version's evidence and creates
//! its jobs; each message on the evidence-jobs queue moves one job on by one call
//! (domain/evidence/job.rs decides what the answer means), saves it, and either schedules the
//! next step as a delayed message or, once the job ended, publishes the evidence update that
//! names the alert version it belongs to. No step waits on a device: a running action is checked
//! again by a message that comes back later.
//!
//! Crash-safety: every step is repeatable. A step that dies after its call and before its save
//! is run again by SQS: a second start meets `ActiveRequestAlreadyExists` (the job waits and
//! starts again once the device is free), a download or an export writes the same key again, and
//! an update published but not marked is published again (consumers match updates by item id).
//!
//! Its parts: planning.rs plans an alert version's jobs, hold.rs keeps an alert back until its
//! evidence is final, calls.rs makes a step's one call, storage.rs stores what a call brought
//! back; here, the step itself, the sweep, and the evidence update.

mod calls;
mod hold;
mod planning;
mod storage;

use std::time::Duration;

use crate::app::evidence::setup::{Evidence, StepOutcome};
use crate::app::polling::deliver::send_tracked;
use crate::app::processing::processor::Processor;
use crate::domain::envelope::ObjectRef;
use crate::domain::evidence::index::{due_set, restores_set, RestoreEntry};
use crate::domain::evidence::job::{JobMessage, JobRecord, Next};
use crate::domain::evidence::plan::EvidenceOutcome;
use crate::domain::integration::{Integration, OutputFormat};
use crate::domain::processing::ocsf;
use crate::domain::processing::output::{EvidenceItem, EvidenceUpdate, EVIDENCE_UPDATE_SCHEMA};
use crate::domain::sqs_text::escape_for_sqs;
use crate::domain::time::GraphTime;
use crate::ports::evidence::SecretSource;
use crate::ports::{ArtifactStore, Clock, DelayQueue, EvidenceJobStore, ProcessPorts};
use crate::sources::settings::DeliverySettings;
use hold::HoldState;

pub use planning::Planned;

/// How far back a quarantine lookup reaches: Get-QuarantineMessage searches 30 days at most and
/// ignores an older start, answering the last 30 (Get-QuarantineMessage.md), as long as a
/// message is kept.
pub(crate) const QUARANTINE_DAYS: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// Where retrieved emails are stored: the store each came from is in its key.
pub const DELIVERED_EMAIL_PREFIX: &str = "delivered-email/";
pub const QUARANTINED_EMAIL_PREFIX: &str = "quarantined-email/";

fn job_message(record: &JobRecord) -> String {
    JobMessage::new(&record.integration_id, &record.job.key).to_json()
}

impl<P: ProcessPorts> Processor<P> {
    /// Moves the job of one evidence-jobs message on by one step. `Err`: nothing was decided,
    /// SQS should deliver the message again.
    pub async fn step_evidence(&self, integration: &Integration, message: &JobMessage) -> Result<StepOutcome, String> {
        if message.hold {
            return self.step_hold(integration, &message.job).await;
        }
        let ev = self.evidence.as_ref().ok_or("this processor has no evidence retrieval")?;
        let Some((mut record, mut version)) = ev.jobs.get::<JobRecord>(&message.job).await.map_err(|e| e.to_string())? else {
            tracing::warn!(job = %message.job, "no such evidence job (expired?); message dropped");
            return Ok(StepOutcome::Nothing);
        };
        let limits = &ev.settings.limits;
        let now = self.clock.now();
        let expires = now.plus(ev.settings.job_ttl);
        let was_open = record.job.outcome().is_none();
        if was_open {
            let next = record.job.next(now, limits);
            match next {
                Next::WaitUntil(at) => return self.schedule(ev, &record, at.since(now)).await,
                Next::Finished => {}
                call => {
                    let creds = ev.secrets.load(&integration.secret_ref).await.map_err(|e| e.to_string())?;
                    if !integration.owns(&creds) {
                        return Err(format!(
                            "the secret `{}` holds another tenant's or app's credentials; nothing was asked",
                            integration.secret_ref
                        ));
                    }
                    let observation = self.call(ev, integration, &creds, &record, call).await;
                    tracing::info!(job = %record.job.key, observation = ?observation, "evidence step");
                    record.job.observe(observation, now, limits);
                }
            }
            version = match ev.jobs.save(&record, version, expires).await {
                Ok(v) => v,
                Err(crate::error::CursorError::LeaseLost { .. }) => return Ok(StepOutcome::Nothing),
                Err(e) => return Err(e.to_string()),
            };
            if record.job.outcome().is_none() {
                let delay = match record.job.next(now, limits) {
                    Next::WaitUntil(at) => at.since(now),
                    _ => Duration::ZERO,
                };
                return self.schedule(ev, &record, delay).await;
            }
        }
        if record.reported {
            return Ok(StepOutcome::Nothing);
        }
        // Ended, not yet reported (this step, or a redelivery of one that failed after): the
        // restore's listing is settled (repeatable) before the update goes out.
        let copy_left = self.restore_ended(ev, integration, &record).await?;
        let outcome = record.job.outcome().unwrap_or(EvidenceOutcome::TimedOut);
        let age = now.since(record.job.created_at);
        if let Some(hold) = &record.hold {
            // The hold decides: the alert carries this end, or it went out and this job reports.
            if self.settle_hold(integration, hold, now).await? != HoldState::Missing {
                return Ok(if was_open { StepOutcome::Reported { outcome, age, copy_left } } else { StepOutcome::Nothing });
            }
        }
        self.publish_update(integration, &record, now).await?;
        record.reported = true;
        match ev.jobs.save(&record, version, expires).await {
            // Published twice at worst: the update carries its item's id.
            Ok(_) | Err(crate::error::CursorError::LeaseLost { .. }) => {
                let set = due_set(record.job.created_at.plus(limits.max_wait), &record.job.key);
                if let Err(e) = ev.jobs.set_remove(&set, &record.job.key).await {
                    tracing::debug!(job = %record.job.key, error = %e, "left listed for the sweep, which clears it");
                }
                Ok(StepOutcome::Reported { outcome, age, copy_left })
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// A job that just ended: a restore's listing goes once the device confirmed its copy gone;
    /// one whose cleanup was not confirmed stays listed, and is reported (true) so the alarm
    /// names its device and folder.
    async fn restore_ended(&self, ev: &Evidence<P::Evidence>, integration: &Integration, record: &JobRecord) -> Result<bool, String> {
        let Some(entry) = RestoreEntry::of(&record.job) else { return Ok(false) };
        if record.job.cleaned == Some(false) {
            tracing::error!(
                integration = %integration.id,
                device_id = %entry.device_id,
                folder = %entry.folder,
                job = %entry.job,
                "a restored copy is left on a device: its cleanup was not confirmed; delete the folder and remove its antivirus exclusion by hand"
            );
            return Ok(true);
        }
        ev.jobs.set_remove(&restores_set(&integration.id), &entry.to_entry()).await.map_err(|e| e.to_string())?;
        Ok(false)
    }

    /// The scheduled sweep: every job listed under an hour whose deadline has passed (from
    /// `hours` back) that is still open, or ended unreported, gets a message, so its next step
    /// ends it (a restore's cleanup first) and reports it; ended ones leave the list. Returns
    /// the jobs it moved on.
    pub async fn sweep_evidence(&self, hours: u32) -> Result<usize, String> {
        let ev = self.evidence.as_ref().ok_or("this processor has no evidence retrieval")?;
        let now = self.clock.now();
        let mut moved = 0;
        for set in crate::domain::evidence::index::due_sets(now.minus(Duration::from_secs(u64::from(hours) * 3600)), now) {
            for key in ev.jobs.set_members(&set).await.map_err(|e| e.to_string())? {
                let job = ev.jobs.get::<JobRecord>(&key).await.map_err(|e| e.to_string())?;
                let stuck = job.as_ref().is_some_and(|(r, _)| {
                    let deadline = r.job.created_at.plus(ev.settings.limits.max_wait).plus(crate::domain::evidence::index::SWEEP_GRACE);
                    deadline <= now && (r.job.outcome().is_none() || (!r.reported && r.hold.is_none()))
                });
                match job {
                    Some((record, _)) if stuck => {
                        tracing::warn!(job = %key, integration = %record.integration_id, "an evidence job past its deadline was still open: its next step ends it");
                        self.schedule(ev, &record, Duration::ZERO).await?;
                        moved += 1;
                    }
                    Some((record, _)) if record.job.outcome().is_none() => {}
                    _ => ev.jobs.set_remove(&set, &key).await.map_err(|e| e.to_string())?,
                }
            }
        }
        Ok(moved)
    }

    async fn schedule(&self, ev: &Evidence<P::Evidence>, record: &JobRecord, delay: Duration) -> Result<StepOutcome, String> {
        ev.steps.send_delayed(&job_message(record), delay).await.map_err(|e| format!("could not queue the job's next step: {e}"))?;
        Ok(StepOutcome::Scheduled { delay })
    }

    /// Publishes a job's end on the output queue, for the alert version it belongs to.
    async fn publish_update(&self, integration: &Integration, record: &JobRecord, now: GraphTime) -> Result<(), String> {
        let mut item = EvidenceItem::of(&record.job);
        if let (Some(r), "email") = (&item.artifact, item.kind.as_str()) {
            item.headers = self.email_headers(r).await;
        }
        let update = EvidenceUpdate {
            schema: EVIDENCE_UPDATE_SCHEMA.into(),
            integration_id: record.integration_id.clone(),
            tenant_id: record.tenant_id.clone(),
            source: record.source,
            alert_id: record.alert_id.clone(),
            alert_version: record.alert_version,
            dedup_key: record.dedup_key.clone(),
            processed_at: now,
            item,
        };
        // In the integration's format, as its alerts are.
        let mut bodies = Vec::new();
        if matches!(integration.output, OutputFormat::AlertV1 | OutputFormat::Both) {
            bodies.push(escape_for_sqs(serde_json::to_string(&update).map_err(|e| e.to_string())?));
        }
        if matches!(integration.output, OutputFormat::Ocsf | OutputFormat::Both) {
            bodies.push(escape_for_sqs(ocsf::evidence_update(&update, &record.title, record.severity.as_deref()).to_string()));
        }
        let delivery: &DeliverySettings = &self.settings.delivery;
        if send_tracked(&self.output, &bodies, delivery).await.iter().all(|s| *s) {
            Ok(())
        } else {
            Err(format!("the evidence update of {} was not accepted by the output queue", record.job.key))
        }
    }

    /// A retrieved email's headers, read back from the store (the update may be published by a
    /// later step than the export).
    async fn email_headers(&self, r: &ObjectRef) -> Option<crate::domain::email::section::EmailHeaders> {
        let bytes = self.artifacts.get(&r.key).await.ok()?;
        // On this thread, not a blocking one: a new thread's allocations under the processor's
        // 256 MB (RLIMIT_DATA) aborted it in the memory soak; the export is bounded (64 MiB) and
        // one parse runs at a time here anyway.
        crate::domain::email::mime::parse(&bytes).ok()
    }
}
