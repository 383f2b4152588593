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

use std::time::Duration;

use futures_util::StreamExt;

use crate::app::evidence::file_intake::{off_runtime, off_runtime_bounded, FileIntake, IntakeError};
use crate::app::evidence::observe::{observe_error, observe_mailbox_error};
use crate::app::evidence::restore::{cleanup_commands, restore_commands};
use crate::app::evidence::setup::{Evidence, StepOutcome};
use crate::app::polling::deliver::send_tracked;
use crate::app::polling::origin::safe_key;
use crate::app::processing::processor::Processor;
use crate::domain::email::section::EmailSection;
use crate::domain::envelope::sha256_hex;
use crate::domain::envelope::ObjectRef;
use crate::domain::evidence::hold::{hold_key, release_bodies, HeldAlert, HoldRecord};
use crate::domain::evidence::index::{due_set, restores_set, RestoreEntry};
use crate::domain::evidence::job::{ActionStatus, EvidenceJob, JobMessage, JobRecord, Next, Observation};
use crate::domain::evidence::plan::{self as evidence_plan, job_key, EmailLocation, EmailStore, EvidenceOutcome, EvidenceTarget};
use crate::domain::evidence::restore_secret::RestoreSecret;
use crate::domain::evidence::result_archive::{self, Format, UnpackError, Unpacker};
use crate::domain::integration::sections::EvidenceDelivery;
use crate::domain::integration::{Credentials, Integration, OutputFormat};
use crate::domain::processing::ocsf;
use crate::domain::processing::output::{EvidenceItem, EvidenceRetrieval, EvidenceUpdate, EVIDENCE_UPDATE_SCHEMA};
use crate::domain::sqs_text::escape_for_sqs;
use crate::domain::time::GraphTime;
use crate::error::GraphError;
use crate::ports::evidence::{ArtifactUpload, ArtifactUploads, Download, ExportedEml, LiveCommand, SecretSource, MAX_DELAY};
use crate::ports::{ArtifactStore, Clock, DelayQueue, EvidenceApi, EvidenceJobStore, ProcessPorts};
use crate::sources::settings::DeliverySettings;
use crate::sources::Unit;

/// How far back a quarantine lookup reaches: Get-QuarantineMessage searches 30 days at most and
/// ignores an older start, answering the last 30 (Get-QuarantineMessage.md), as long as a
/// message is kept.
pub(crate) const QUARANTINE_DAYS: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// A job's identity of a message found in a recipient's mailbox (Exchange's quarantine
/// identities are `GUID\GUID`, never this).
const MAILBOX_IDENTITY: &str = "mailbox:";
/// Where retrieved emails are stored: the store each came from is in its key.
pub const DELIVERED_EMAIL_PREFIX: &str = "delivered-email/";
pub const QUARANTINED_EMAIL_PREFIX: &str = "quarantined-email/";

/// Exports held in memory at once per process (each at most `MAX_EXPORT_ANSWER_BYTES`).
static EXPORTS_IN_FLIGHT: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
/// Base64 decoded per slice of an export: a multiple of 4.
const EXPORT_SLICE: usize = 4 << 20;

/// An alert version's evidence as its message lists it, and the messages that start its jobs
/// once it is out (with their delays).
pub struct Planned {
    pub retrieval: Option<EvidenceRetrieval>,
    pub starts: Vec<(String, Duration)>,
}

/// Where a hold stands after a look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldState {
    /// Still waiting, at most until `deadline`.
    Holding { deadline: GraphTime },
    /// The alert went out (`now`: by this look).
    Released { now: bool },
    /// No such hold (it expired, or the alert's intake never saved it).
    Missing,
}

fn job_message(record: &JobRecord) -> String {
    JobMessage::new(&record.integration_id, &record.job.key).to_json()
}

impl<P: ProcessPorts> Processor<P> {
    /// The evidence of one alert version: its items (jobs created, or found from an earlier
    /// delivery), or why there are none.
    pub(crate) async fn plan_evidence(
        &self,
        env_integration: &Integration,
        unit: &Unit,
        dedup_key: &str,
        source: crate::domain::source::Source,
        now: GraphTime,
    ) -> Result<Planned, String> {
        if unit.evidence.is_some() {
            // A phishing-mailbox report: its email came from the mailbox itself.
            return Ok(Planned { retrieval: None, starts: Vec::new() });
        }
        let doc = &env_integration.evidence;
        if !doc.live_response_files && !doc.quarantined_email && !doc.delivered_email {
            return Ok(Planned { retrieval: None, starts: Vec::new() });
        }
        let email: Option<&EmailSection> = unit.email.as_ref().filter(|e| e.submission.is_some());
        let targets = evidence_plan::plan(&unit.alert, email);
        if targets.is_empty() {
            let retrieval = EvidenceRetrieval {
                status: "not_applicable".into(),
                reason: Some("the alert names no file on a device and no email that reached a mailbox or quarantine".into()),
                ..EvidenceRetrieval::default()
            };
            return Ok(Planned { retrieval: Some(retrieval), starts: Vec::new() });
        }
        let Some(ev) = &self.evidence else {
            // A local tool's processor (`process`): the deployed one retrieves.
            let retrieval = EvidenceRetrieval {
                status: "not_requested".into(),
                reason: Some("this processor runs without evidence retrieval (no evidence-jobs queue); the deployed one retrieves".into()),
                ..EvidenceRetrieval::default()
            };
            return Ok(Planned { retrieval: Some(retrieval), starts: Vec::new() });
        };
        let mut items = Vec::new();
        let mut starts = Vec::new();
        for target in targets {
            let key = job_key(dedup_key, &target);
            let job = if !target.enabled(doc) {
                EvidenceJob::disabled(key, target, now)
            } else if target.is_restore() && !doc.restore_quarantined_files {
                let mut j = EvidenceJob::disabled(key, target, now);
                if let crate::domain::evidence::job::Phase::Done { detail, .. } = &mut j.phase {
                    *detail = Some(
                        "antivirus quarantined this file, so it is no longer at its path; collecting it needs a restore on the \
                         device (evidence.restore_quarantined_files, off for this integration: read docs/evidence.md's risk first)"
                            .into(),
                    );
                }
                j
            } else {
                EvidenceJob::new(key, target, now)
            };
            if job.outcome().is_some() {
                items.push(EvidenceItem::of(&job));
                continue;
            }
            let record = JobRecord {
                job,
                integration_id: env_integration.id.clone(),
                tenant_id: env_integration.tenant_id.clone(),
                source,
                alert_id: unit.alert.id.clone(),
                incident_id: unit.incident.as_ref().map(|i| i.id.clone()),
                alert_version: unit.version,
                dedup_key: dedup_key.to_owned(),
                title: unit.alert.title.as_deref().unwrap_or_default().chars().take(512).collect(),
                severity: unit.alert.severity.clone(),
                reported: false,
                hold: (doc.delivery == EvidenceDelivery::HoldUntilFinal).then(|| hold_key(dedup_key)),
            };
            let (stored, _) = ev.jobs.create(&record, now.plus(ev.settings.job_ttl)).await.map_err(|e| e.to_string())?;
            if !stored.reported {
                // Listed by its deadline for the sweep, should its messages ever be lost. The
                // sweep is a safety net: a listing that fails does not hold the alert back.
                let set = due_set(stored.job.created_at.plus(ev.settings.limits.max_wait), &stored.job.key);
                if let Err(e) = ev.jobs.set_add(&set, &stored.job.key, Some(now.plus(ev.settings.job_ttl))).await {
                    tracing::warn!(job = %stored.job.key, error = %e, "the job is not listed for the sweep");
                }
                starts.push((job_message(&stored), Duration::ZERO));
            }
            items.push(EvidenceItem::of(&stored.job));
        }
        Ok(Planned { retrieval: Some(EvidenceRetrieval::of_items(items)), starts })
    }

    /// Queues the first step of each job (after its alert went out or was held).
    pub(crate) async fn start_jobs(&self, starts: &[(String, Duration)]) -> Result<(), String> {
        let Some(ev) = &self.evidence else { return Ok(()) };
        for (body, delay) in starts {
            ev.steps.send_delayed(body, *delay).await.map_err(|e| format!("could not queue an evidence job: {e}"))?;
        }
        Ok(())
    }

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
    async fn step_hold(&self, integration: &Integration, key: &str) -> Result<StepOutcome, String> {
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
    async fn settle_hold(&self, integration: &Integration, key: &str, now: GraphTime) -> Result<HoldState, String> {
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

    /// Makes the one call the job needs and tells what it answered.
    async fn call(
        &self,
        ev: &Evidence<P::Evidence>,
        integration: &Integration,
        creds: &Credentials,
        record: &JobRecord,
        next: Next,
    ) -> Observation {
        let target = &record.job.target;
        match (next, target) {
            (Next::Verify, _) => crate::app::evidence::microsoft_copy::verify(&ev.api, creds, integration, record).await,
            (Next::Start, EvidenceTarget::File { device_id, .. }) => {
                let commands = if target.is_restore() {
                    let commands = match restore_commands(&record.job) {
                        Ok(c) => c,
                        Err(ends) => return *ends,
                    };
                    if let Err(waits) = self.ensure_restore_script(ev, creds, &record.job.key, &record.tenant_id, self.clock.now()).await {
                        return waits;
                    }
                    // Listed before it can reach the device: what a restore leaves there is
                    // always found by its integration (removal, the alarm), never by a scan.
                    if let Some(entry) = RestoreEntry::of(&record.job) {
                        // No expiry: a copy left on a device stays listed until someone clears it.
                        if let Err(e) = ev.jobs.set_add(&restores_set(&integration.id), &entry.to_entry(), None).await {
                            return Observation::Transient(format!("the restore could not be listed: {e}"));
                        }
                    }
                    commands
                } else {
                    vec![LiveCommand::GetFile { path: target.path().unwrap_or_default() }]
                };
                match ev.api.run_live_response(creds, device_id, &commands).await {
                    Ok(action_id) => Observation::Started { action_id },
                    Err(e) => observe_error(&e),
                }
            }
            (Next::Cleanup(restore_action), EvidenceTarget::File { device_id, .. }) => {
                // A restore still waiting for the device never runs: cancelled. One that ended
                // (the cancel is refused) or ran is cleaned up by the script either way.
                if let Err(e) = ev.api.cancel_action(creds, &restore_action).await {
                    tracing::debug!(action = %restore_action, error = %e, "the restore was not cancelled (it had ended)");
                }
                match ev.api.run_live_response(creds, device_id, &cleanup_commands(&record.job)).await {
                    Ok(action_id) => Observation::CleanupStarted { action_id },
                    Err(e) => observe_error(&e),
                }
            }
            (Next::Start, EvidenceTarget::Email { internet_message_id, recipient, location }) => {
                self.find_email(ev, integration, creds, internet_message_id, recipient, *location).await
            }
            (Next::CheckAction(id), _) => match ev.api.machine_action(creds, &id).await {
                Ok(report) => {
                    if !report.errors.is_empty() {
                        tracing::info!(action = %id, errors = ?report.errors, "the live response reported errors");
                    }
                    match report.status {
                        ActionStatus::Failed => Observation::ActionFailed { hresult: report.error_hresult, errors: report.errors },
                        status => Observation::Action(status),
                    }
                }
                Err(e) => observe_error(&e),
            },
            (Next::Download(id), EvidenceTarget::File { name, sha1, sha256, .. }) => {
                // A restore's copy comes encrypted with the job's key (restore_secret.rs).
                let secret = match (target.is_restore(), record.job.restore.as_ref()) {
                    (false, _) => None,
                    (true, Some(s)) if s.is_well_formed() => Some(s),
                    (true, _) => return Observation::Refused("the job has no key to open the restored copy with".into()),
                };
                // A link lives 30 minutes (§7): one that expired on the way is asked for again.
                for attempt in 0..2 {
                    // The restore's GetFile is its second command.
                    let index = usize::from(target.is_restore());
                    let url = match ev.api.result_link(creds, &id, index).await {
                        Ok(u) => u,
                        Err(e) => return observe_error(&e),
                    };
                    match ev.api.download(&url).await {
                        Ok(d) => {
                            let key = format!("evidence/{}/{}/{}", safe_key(&integration.id), target.key(), safe_key(name));
                            let want = Want { sha1: sha1.as_deref(), sha256: sha256.as_deref() };
                            return match self.store_file(ev, d, &key, want, true, secret).await {
                                Stored::Observed(o) => o,
                                // The file is itself a gzip or a zip, sent as it is: kept as it came.
                                Stored::IsTheArchive => match ev.api.download(&url).await {
                                    Ok(d) => match self.store_file(ev, d, &key, want, false, secret).await {
                                        Stored::Observed(o) => o,
                                        Stored::IsTheArchive => Observation::Transient("the result changed between two downloads".into()),
                                    },
                                    Err(e) => Observation::Transient(format!("the result download failed: {e}")),
                                },
                            };
                        }
                        Err(GraphError::Http { status: 403 | 404, .. }) if attempt == 0 => continue,
                        Err(GraphError::Decode { detail, .. }) => {
                            return Observation::Refused(format!("the result link was not followed: {detail}"))
                        }
                        Err(e) => return Observation::Transient(format!("the result download failed: {e}")),
                    }
                }
                Observation::Transient("the result link was refused twice (expired?)".into())
            }
            (Next::Export(identity), EvidenceTarget::Email { recipient, .. }) if identity.starts_with(MAILBOX_IDENTITY) => {
                let identity_found = &identity;
                let id = &identity[MAILBOX_IDENTITY.len()..];
                let Ok(_turn) = EXPORTS_IN_FLIGHT.acquire().await else {
                    return Observation::Transient("the export gate closed".into());
                };
                match ev.api.mailbox_mime(creds, recipient, id).await {
                    Ok(mime) => {
                        let key = format!("{DELIVERED_EMAIL_PREFIX}{}/{}.eml", safe_key(&integration.id), target.key());
                        self.store_mime(ev, mime, &key).await
                    }
                    Err(GraphError::TooLarge { size, limit, .. }) => {
                        Observation::TooLarge { size: size.unwrap_or(limit as u64), limit: limit as u64 }
                    }
                    // Gone from where it was found (deleted, or purged to quarantine since): it
                    // is looked for again, where it may be now.
                    Err(GraphError::Http { status: 404, .. }) => {
                        let EvidenceTarget::Email { internet_message_id, location, .. } = target else {
                            return Observation::Transient("a step that does not fit the job's evidence".into());
                        };
                        match self.find_email(ev, integration, creds, internet_message_id, recipient, *location).await {
                            // Still listed where it was: the export is tried again later.
                            Observation::Found { identity } if identity == *identity_found => {
                                Observation::Transient(format!("{recipient}'s mailbox lists the message but answered 404 for its MIME"))
                            }
                            other => other,
                        }
                    }
                    Err(e) => observe_mailbox_error(&e, recipient),
                }
            }
            (Next::Export(identity), EvidenceTarget::Email { .. }) => {
                let Some(org) = integration.organization_id.as_deref() else {
                    return Observation::Refused("the integration has no organization_id".into());
                };
                // Exports in flight at once, each holding Exchange's answer: the bound that keeps a
                // batch of large messages inside the function's memory.
                let Ok(_turn) = EXPORTS_IN_FLIGHT.acquire().await else {
                    return Observation::Transient("the export gate closed".into());
                };
                match ev.api.export_quarantined(creds, org, &identity).await {
                    Ok(export) => {
                        let key = format!("{QUARANTINED_EMAIL_PREFIX}{}/{}.eml", safe_key(&integration.id), target.key());
                        self.store_export(ev, export, &key).await
                    }
                    Err(GraphError::TooLarge { size, limit, .. }) => {
                        Observation::TooLarge { size: size.unwrap_or(limit as u64), limit: limit as u64 }
                    }
                    Err(e) => observe_error(&e),
                }
            }
            (next, _) => Observation::Transient(format!("a step {next:?} that does not fit the job's evidence")),
        }
    }

    /// Looks for an email in the stores the integration reads, where the alert says it went
    /// first: found in one is the job's identity there (a mailbox's prefixed), otherwise why not.
    async fn find_email(
        &self,
        ev: &Evidence<P::Evidence>,
        integration: &Integration,
        creds: &Credentials,
        message_id: &str,
        recipient: &str,
        location: EmailLocation,
    ) -> Observation {
        let mut missed = Vec::new();
        let mut refused = None;
        // A store that failed for a passing reason: the other is still searched (the email may
        // be there), and the step comes back if neither finds it.
        let mut passing = None;
        for store in location.search_order(&integration.evidence) {
            let answer = match store {
                EmailStore::Mailbox => match ev.api.find_in_mailbox(creds, recipient, message_id).await {
                    Ok(ids) => Ok(ids.into_iter().next().map(|id| format!("{MAILBOX_IDENTITY}{id}"))),
                    Err(e) => Err(observe_mailbox_error(&e, recipient)),
                },
                EmailStore::Quarantine => match integration.organization_id.as_deref() {
                    None => Err(Observation::Refused(
                        "the integration has no organization_id (its *.onmicrosoft.com domain), which Exchange Online needs".into(),
                    )),
                    Some(org) => {
                        // Quarantine keeps a message 30 days, and the cmdlet searches 30 days at most.
                        let since = self.clock.now().minus(QUARANTINE_DAYS);
                        match ev.api.find_quarantined(creds, org, message_id, recipient, since).await {
                            Ok(ids) => Ok(ids.into_iter().next()),
                            Err(e) => Err(observe_error(&e)),
                        }
                    }
                },
            };
            let place = match store {
                EmailStore::Mailbox => format!("{recipient}'s mailbox"),
                EmailStore::Quarantine => "quarantine".to_owned(),
            };
            match answer {
                Ok(Some(identity)) => return Observation::Found { identity },
                Ok(None) => missed.push(place),
                Err(Observation::NotFound(why)) => missed.push(format!("{place} ({why})")),
                Err(Observation::Refused(why)) => {
                    refused.get_or_insert(why);
                }
                Err(other) => {
                    passing.get_or_insert(other);
                }
            }
        }
        if let Some(again) = passing {
            return again;
        }
        // A refusal names its fix: the email may well be where it could not be looked for.
        match refused {
            None if missed.is_empty() => Observation::Refused(
                "the integration reads neither mailboxes nor quarantine now (evidence.delivered_email, evidence.quarantined_email)".into(),
            ),
            Some(why) if missed.is_empty() => Observation::Refused(why),
            Some(why) => Observation::Refused(format!("no message with Message-ID {message_id} is in {}; and {why}", missed.join(" or "))),
            None => Observation::NotFound(format!("no message with Message-ID {message_id} for {recipient} is in {}", missed.join(" or "))),
        }
    }

    /// Stores a mailbox message's MIME as it came (read whole, within its bound).
    async fn store_mime(&self, ev: &Evidence<P::Evidence>, mime: bytes::Bytes, key: &str) -> Observation {
        let (size, limit) = (mime.len() as u64, ev.settings.max_file_bytes);
        if size > limit {
            return Observation::TooLarge { size, limit };
        }
        if mime.is_empty() {
            return Observation::Refused("Graph answered the message's MIME with no bytes".into());
        }
        let mut upload = match self.artifacts.begin(key, "message/rfc822").await {
            Ok(u) => u,
            Err(e) => return Observation::Transient(e.to_string()),
        };
        for chunk in mime.chunks(EXPORT_SLICE) {
            if let Err(e) = upload.write(chunk).await {
                upload.abort().await;
                return Observation::Transient(e.to_string());
            }
        }
        match upload.finish(sha256_hex(&mime), size).await {
            Ok(r) => Observation::Stored(r),
            Err(e) => Observation::Transient(e.to_string()),
        }
    }

    /// Decodes an export's Base64 a slice at a time into a streamed upload: the message is never
    /// whole in memory beside Exchange's answer.
    async fn store_export(&self, ev: &Evidence<P::Evidence>, export: ExportedEml, key: &str) -> Observation {
        let (answer, eml) = (export.answer, export.eml);
        let Some(text) = answer.get(eml.clone()) else {
            return Observation::Refused("Exchange's export names bytes its answer does not hold".into());
        };
        let limit = ev.settings.max_file_bytes;
        let size = (text.len() / 4 * 3) as u64;
        if size > limit {
            return Observation::TooLarge { size, limit };
        }
        let mut upload = match self.artifacts.begin(key, "message/rfc822").await {
            Ok(u) => u,
            Err(e) => return Observation::Transient(e.to_string()),
        };
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        let mut stored = 0u64;
        // 4 MiB of Base64 (a multiple of 4) decode to 3 MiB, on a blocking thread (file_intake.rs).
        let mut at = eml.start;
        while at < eml.end {
            let slice = answer.slice(at..(at + EXPORT_SLICE).min(eml.end));
            at += slice.len();
            let decoded = off_runtime(hash, move |h| {
                let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &slice)?;
                h.update(&bytes);
                Ok::<_, base64::DecodeError>(bytes)
            })
            .await;
            let bytes = match decoded {
                Ok((back, Ok(bytes))) => {
                    hash = back;
                    bytes
                }
                Ok((_, Err(e))) => {
                    upload.abort().await;
                    return Observation::Refused(format!("Exchange's export is not Base64: {e}"));
                }
                Err(e) => {
                    upload.abort().await;
                    return Observation::Transient(e);
                }
            };
            stored += bytes.len() as u64;
            if let Err(e) = upload.write(&bytes).await {
                upload.abort().await;
                return Observation::Transient(e.to_string());
            }
        }
        let hex: String = hash.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
        match upload.finish(hex, stored).await {
            Ok(r) => Observation::Stored(r),
            Err(e) => Observation::Transient(e.to_string()),
        }
    }

    /// Streams a download to the artifact store, unpacked when it came as an archive
    /// (`result_archive.rs`: GetFile's format is not documented), counting its size and hashing
    /// it on the way; nothing is kept when it is too large, cannot be opened within its bounds,
    /// or is not the file the alert names.
    async fn store_file(
        &self,
        ev: &Evidence<P::Evidence>,
        mut d: Download,
        key: &str,
        want: Want<'_>,
        unpack: bool,
        secret: Option<&RestoreSecret>,
    ) -> Stored {
        let limit = ev.settings.max_file_bytes;
        // A gzip of an incompressible file is a little larger than the file.
        if let Some(size) = d.length.filter(|l| *l > limit + (limit >> 6) + 1024) {
            return Stored::Observed(Observation::TooLarge { size, limit });
        }
        // A restore's copy is the file encrypted, up to one AES block longer: the limit is the
        // file's, checked again on the decrypted size at the end.
        let padding = if secret.is_some() { RESTORE_PADDING_BYTES } else { 0 };
        let limits = result_archive::Limits { max_bytes: limit + padding, ..result_archive::Limits::default() };
        let unpacker = if unpack { Unpacker::new(limits) } else { Unpacker::as_it_came(limits) };
        let mut upload = match self.artifacts.begin(key, "application/octet-stream").await {
            Ok(u) => u,
            Err(e) => return Stored::Observed(Observation::Transient(e.to_string())),
        };
        let mut intake = FileIntake::new(unpacker, secret.and_then(RestoreSecret::decryptor));
        let fail = |o: Observation| Stored::Observed(o);
        // A file that is itself an archive (an Office document is a zip of many parts) need not
        // open as one holding a single file: its own bytes are tried. Too large stays too large:
        // Microsoft's archive of a file past the size kept is the common case.
        let is_the_archive = |e: &UnpackError, intake: &FileIntake| {
            unpack && !matches!(e, UnpackError::TooLarge { .. }) && intake.format().is_some_and(|f| f != Format::Raw)
        };
        loop {
            let chunk = match d.chunks.next().await {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    upload.abort().await;
                    return fail(Observation::Transient(e.to_string()));
                }
                None => break,
            };
            let fed = match off_runtime_bounded(intake, move |i| i.step(&chunk)).await {
                Ok((back, fed)) => {
                    intake = back;
                    fed
                }
                Err(e) => {
                    upload.abort().await;
                    return fail(Observation::Transient(e));
                }
            };
            if let Err(e) = fed {
                upload.abort().await;
                if is_the_archive(&e, &intake) {
                    return Stored::IsTheArchive;
                }
                return fail(unpack_failure(e, limit));
            }
            if let Err(e) = upload.write(intake.body()).await {
                upload.abort().await;
                return fail(Observation::Transient(e.to_string()));
            }
        }
        let (back, finished) = match off_runtime_bounded(intake, FileIntake::finish).await {
            Ok(done) => done,
            Err(e) => {
                upload.abort().await;
                return fail(Observation::Transient(e));
            }
        };
        intake = back;
        let format = match finished {
            Ok(f) => f,
            Err(IntakeError::Unpack(ref e)) if is_the_archive(e, &intake) => {
                upload.abort().await;
                return Stored::IsTheArchive;
            }
            Err(IntakeError::Unpack(e)) => {
                upload.abort().await;
                return fail(unpack_failure(e, limit));
            }
            Err(IntakeError::Cipher(e)) => {
                upload.abort().await;
                return fail(Observation::Refused(e.to_string()));
            }
        };
        if let Err(e) = upload.write(intake.body()).await {
            upload.abort().await;
            return fail(Observation::Transient(e.to_string()));
        }
        let (size, (got1, got256), (came1, came256)) = intake.hashes();
        if size > limit {
            upload.abort().await;
            return fail(Observation::TooLarge { size, limit });
        }
        let Some(mismatch) = want.mismatch(&got1, &got256) else {
            return match upload.finish(got256, size).await {
                Ok(r) => fail(Observation::Stored(r)),
                Err(e) => fail(Observation::Transient(e.to_string())),
            };
        };
        upload.abort().await;
        if format != Format::Raw && want.mismatch(&came1, &came256).is_none() {
            return Stored::IsTheArchive;
        }
        let (expected, got) = mismatch;
        fail(Observation::HashMismatch { expected, got })
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

/// The hashes the alert gives for a file: SHA-256 decides when it is there.
#[derive(Clone, Copy)]
struct Want<'a> {
    sha1: Option<&'a str>,
    sha256: Option<&'a str>,
}

impl Want<'_> {
    /// (expected, got) when the hashes are not the alert's.
    fn mismatch(&self, got1: &str, got256: &str) -> Option<(String, String)> {
        match (self.sha256, self.sha1) {
            (Some(want), _) if !want.eq_ignore_ascii_case(got256) => Some((want.to_owned(), got256.to_owned())),
            (None, Some(want)) if !want.eq_ignore_ascii_case(got1) => Some((want.to_owned(), got1.to_owned())),
            _ => None,
        }
    }
}

/// The most AES-CBC's PKCS#7 padding adds to a restore's copy (one block).
const RESTORE_PADDING_BYTES: u64 = 16;

/// What storing a download came to.
enum Stored {
    Observed(Observation),
    /// The result was an archive that did not open as one holding the file, or whose contents
    /// are not the file: its own bytes may be (taken as they come on a second download).
    IsTheArchive,
}

fn unpack_failure(e: UnpackError, limit: u64) -> Observation {
    match e {
        UnpackError::TooLarge { size, .. } => Observation::TooLarge { size, limit },
        other => Observation::Refused(format!("the live response result could not be opened: {other}")),
    }
}
