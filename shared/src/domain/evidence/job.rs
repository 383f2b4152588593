//! An evidence job's life, as a state machine the processor drives one step at a time (issue 13;
//! DESIGN.md: a durable job, a DynamoDB record moved on by delayed SQS messages, never a sleep in
//! a batch). Each step is: look at what the job needs next ([`EvidenceJob::next`]), make that one
//! call, and feed what Microsoft answered back in ([`EvidenceJob::observe`]). Everything here is
//! pure, so every path (busy device, offline device, failed action, expired link, refusal, size,
//! hash mismatch) is decided in one place and tested without a network.
//!
//! A file: `runliveresponse` with GetFile (ms-apis.md §7) → the machine action polled until it
//! ends → its result link → the file streamed to the artifact store. An email: Get-QuarantineMessage
//! by Message-ID and recipient (§8) → Export-QuarantineMessage → the `.eml` stored.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::action_failure::{self, ActionFailure};
use crate::domain::envelope::ObjectRef;
use crate::domain::evidence::plan::{EvidenceOutcome, EvidenceTarget};
use crate::domain::evidence::restore_secret::RestoreSecret;
use crate::domain::processing::output::EvidenceItem;
use crate::domain::time::GraphTime;

/// The bounds of every job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// From creation to the end, whatever happens (a busy device, throttling, an outage).
    pub max_wait: Duration,
    /// How long Microsoft queues a live response for an offline device: up to 2 hours
    /// (run-live-response.md, ms.date 2025-12-31; the older text said 3 days). An action still
    /// pending a check after this ends the job as `device_offline`, whatever Microsoft says.
    pub offline_window: Duration,
    /// Calls that failed for a passing reason (busy device, throttling, an outage), in all.
    pub max_attempts: u32,
    /// How long after a check a running action is checked again.
    pub check_every: Duration,
    /// How long a busy device (`ActiveRequestAlreadyExists`) or a throttled start waits.
    pub busy_wait: Duration,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            max_wait: Duration::from_secs(24 * 3600),
            offline_window: Duration::from_secs(2 * 3600),
            max_attempts: 20,
            check_every: Duration::from_secs(60),
            busy_wait: Duration::from_secs(120),
        }
    }
}

/// A Live Response machine action's `status` (machineaction.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionStatus {
    Pending,
    InProgress,
    Succeeded,
    Failed,
    TimeOut,
    Cancelled,
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// The first call is to be made (again, after `not_before`).
    Start {
        not_before: GraphTime,
    },
    /// A live response runs on the device; `last` is the status it last had.
    Running {
        action_id: String,
        last: ActionStatus,
        next_check: GraphTime,
        /// When Microsoft accepted the action (absent in jobs stored before it was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_at: Option<GraphTime>,
    },
    /// A message was found in quarantine by its identity; it is to be exported.
    Export {
        identity: String,
    },
    /// The result is ready: its link (re-requested whenever it expired) and the download.
    Download {
        action_id: String,
    },
    /// A restore ran on the device: its folder is cleaned (the restore cancelled if it still
    /// waits, then the script's `-Cleanup`) before the job ends as `outcome`.
    Cleanup {
        outcome: EvidenceOutcome,
        detail: Option<String>,
        artifact: Option<ObjectRef>,
        restore_action: String,
        cleanup_action: Option<String>,
        next_check: GraphTime,
        /// Looks at the cleanup (and passing failures) so far, at most [`MAX_CLEANUP_CHECKS`].
        checks: u32,
    },
    Done {
        outcome: EvidenceOutcome,
        detail: Option<String>,
        artifact: Option<ObjectRef>,
    },
}

fn offline_detail(limits: &JobLimits) -> String {
    format!(
        "the device stayed offline: Defender for Endpoint queues a live response for an offline device up to {}, and it was not picked up",
        crate::domain::duration_text::DurationText(limits.offline_window)
    )
}

/// The most times a cleanup is looked at (or tried again) before the job ends saying it was not
/// confirmed: a RunScript times out after 10 minutes (ms-apis.md §7), so a minute apart this
/// outlasts a device that runs it.
pub const MAX_CLEANUP_CHECKS: u32 = 30;

/// The one call a job needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Read the alert (or incident, or submission) by id from Microsoft and confirm the target
    /// is in Microsoft's copy, before anything is asked of a device or of Exchange.
    Verify,
    /// `runliveresponse` with GetFile, or Get-QuarantineMessage.
    Start,
    /// `GET machineactions/{id}`.
    CheckAction(String),
    /// Export-QuarantineMessage of this identity.
    Export(String),
    /// The result link of this action, then the file to the artifact store.
    Download(String),
    /// Cancel this restore action if it still waits, then run the cleanup script.
    Cleanup(String),
    /// Nothing before this time: the job's message comes back then.
    WaitUntil(GraphTime),
    Finished,
}

/// What a call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Microsoft's copy of the alert names the target: as it names it (its hashes, whether
    /// antivirus acted on it), which replaces what the intake message said.
    Verified(EvidenceTarget),
    /// The integration does not retrieve the target as Microsoft's copy names it (a file
    /// antivirus quarantined, with the restore off): why.
    NotWanted(String),
    /// The live response was accepted: its machine action.
    Started {
        action_id: String,
    },
    /// The device already runs a session, or the API throttled: try again later.
    Busy,
    /// A call failed for a passing reason (an outage, a timeout): try again later.
    Transient(String),
    Action(ActionStatus),
    /// The action failed on the device: its `errorHResult` and its commands' `errors`.
    ActionFailed {
        hresult: Option<i64>,
        errors: Vec<String>,
    },
    /// Get-QuarantineMessage found the message.
    Found {
        identity: String,
    },
    /// The file or the message is not there (a GetFile that failed on a missing path, no
    /// quarantined message with that id and recipient).
    NotFound(String),
    /// Microsoft refused for good (a missing role or permission, a device group without Live
    /// Response): its reason.
    Refused(String),
    TooLarge {
        size: u64,
        limit: u64,
    },
    /// The stored bytes are not the file the alert names.
    HashMismatch {
        expected: String,
        got: String,
    },
    Stored(ObjectRef),
    /// The cleanup script was accepted as this machine action.
    CleanupStarted {
        action_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceJob {
    pub key: String,
    pub target: EvidenceTarget,
    pub created_at: GraphTime,
    /// Passing failures so far (busy, throttled, transient).
    pub attempts: u32,
    pub phase: Phase,
    /// The target was confirmed in Microsoft's copy of the alert ([`Next::Verify`]).
    #[serde(default)]
    pub verified: bool,
    /// A restore's cleanup: whether the device confirmed the restored copy gone (None: no
    /// cleanup ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleaned: Option<bool>,
    /// A restore's own folder name and key, made with the job (none: not a restore, or a job
    /// version 1 of the restore started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSecret>,
    /// An export or a download that met a busy API is made again no sooner than this (without
    /// it, the next message came at once and a throttled step spent the job's attempts in seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<GraphTime>,
}

impl EvidenceJob {
    pub fn new(key: String, target: EvidenceTarget, now: GraphTime) -> Self {
        let restore = if target.is_restore() { RestoreSecret::generate() } else { None };
        EvidenceJob {
            key,
            target,
            created_at: now,
            attempts: 0,
            phase: Phase::Start { not_before: now },
            verified: false,
            cleaned: None,
            restore,
            retry_at: None,
        }
    }

    /// Where the restore puts its copy on the device: the job's own folder, or where version 1
    /// of the script put it.
    pub fn restore_folder(&self) -> String {
        match &self.restore {
            Some(s) => format!("{}{}", crate::domain::evidence::plan::RESTORE_ROOT, s.folder),
            None => self.target.legacy_restore_folder(),
        }
    }

    /// A job for evidence the integration does not retrieve: done at once, saying so.
    pub fn disabled(key: String, target: EvidenceTarget, now: GraphTime) -> Self {
        let phase = Phase::Done {
            outcome: EvidenceOutcome::Disabled,
            detail: Some("evidence retrieval of this kind is not enabled for this integration".into()),
            artifact: None,
        };
        EvidenceJob { key, target, created_at: now, attempts: 0, phase, verified: false, cleaned: None, restore: None, retry_at: None }
    }

    pub fn outcome(&self) -> Option<EvidenceOutcome> {
        match &self.phase {
            Phase::Done { outcome, .. } => Some(*outcome),
            _ => None,
        }
    }

    /// The call to make now, or when to come back. A job past its wait ends here, named by
    /// what it was waiting for: a device that never picked the action up is offline.
    pub fn next(&mut self, now: GraphTime, limits: &JobLimits) -> Next {
        // A cleanup is bounded by its own checks: it runs whatever time it is.
        // A backstop for checks that never came: normally a check past the window ends it.
        let queued_past_window = match &self.phase {
            Phase::Running { last: ActionStatus::Pending, started_at: Some(s), .. } => {
                now >= s.plus(limits.offline_window).plus(limits.check_every).plus(limits.check_every)
            }
            _ => false,
        };
        if queued_past_window {
            self.finish(EvidenceOutcome::DeviceOffline, Some(offline_detail(limits)), None);
        }
        if !matches!(self.phase, Phase::Done { .. } | Phase::Cleanup { .. }) && now >= self.created_at.plus(limits.max_wait) {
            let offline = matches!(self.phase, Phase::Running { last: ActionStatus::Pending, .. });
            let (outcome, why) = if offline {
                (EvidenceOutcome::DeviceOffline, "the device did not pick the live response up within the job's maximum wait")
            } else {
                (EvidenceOutcome::TimedOut, "the evidence was not retrieved within the job's maximum wait")
            };
            self.finish(outcome, Some(why.into()), None);
        }
        match &self.phase {
            Phase::Start { not_before } if *not_before > now => Next::WaitUntil(*not_before),
            Phase::Start { .. } if !self.verified => Next::Verify,
            Phase::Start { .. } => Next::Start,
            Phase::Running { next_check, .. } if *next_check > now => Next::WaitUntil(*next_check),
            Phase::Running { action_id, .. } => Next::CheckAction(action_id.clone()),
            Phase::Export { .. } | Phase::Download { .. } if self.retry_at.is_some_and(|t| t > now) => {
                Next::WaitUntil(self.retry_at.unwrap_or(now))
            }
            Phase::Export { identity } => Next::Export(identity.clone()),
            Phase::Download { action_id } => Next::Download(action_id.clone()),
            Phase::Cleanup { next_check, .. } if *next_check > now => Next::WaitUntil(*next_check),
            Phase::Cleanup { cleanup_action: Some(id), .. } => Next::CheckAction(id.clone()),
            Phase::Cleanup { restore_action, .. } => Next::Cleanup(restore_action.clone()),
            Phase::Done { .. } => Next::Finished,
        }
    }

    /// Moves the job on by what the call of [`Self::next`] answered.
    pub fn observe(&mut self, observation: Observation, now: GraphTime, limits: &JobLimits) {
        if matches!(self.phase, Phase::Cleanup { .. }) {
            return self.observe_cleanup(observation, now, limits);
        }
        let retry_at = now.plus(limits.busy_wait);
        match observation {
            Observation::Verified(target) => {
                // The key names the same item; Microsoft's copy decides its hashes and whether
                // it is a restore (antivirus may have acted since the alert we were given): a
                // restore draws its folder and key now if it has none, before anything started.
                if target.is_restore() && self.restore.is_none() && matches!(self.phase, Phase::Start { .. }) {
                    self.restore = RestoreSecret::generate();
                }
                self.target = target;
                self.verified = true;
            }
            Observation::NotWanted(why) => self.finish(EvidenceOutcome::Disabled, Some(why), None),
            Observation::Started { action_id } => {
                self.phase = Phase::Running {
                    action_id,
                    last: ActionStatus::Pending,
                    next_check: now.plus(limits.check_every.min(limits.offline_window)),
                    started_at: Some(now),
                }
            }
            Observation::Busy | Observation::Transient(_) => {
                let busy = matches!(observation, Observation::Busy);
                self.attempts += 1;
                if self.attempts > limits.max_attempts {
                    let detail = match observation {
                        Observation::Transient(why) => format!("gave up after {} attempts: {why}", self.attempts),
                        _ => format!("gave up after {} attempts: the device or the API stayed busy", self.attempts),
                    };
                    self.finish(EvidenceOutcome::TimedOut, Some(detail), None);
                    return;
                }
                // Where the job was, it waits: a start starts again, a check checks again.
                match &mut self.phase {
                    Phase::Start { not_before } => *not_before = retry_at,
                    Phase::Running { next_check, .. } => *next_check = retry_at,
                    // An export or a download is made again by the next message, after the wait.
                    // (a passing failure, an expired link say, at once; a busy API after the wait).
                    Phase::Export { .. } | Phase::Download { .. } if busy => self.retry_at = Some(retry_at),
                    Phase::Export { .. } | Phase::Download { .. } => {}
                    Phase::Cleanup { .. } | Phase::Done { .. } => {}
                }
            }
            Observation::Action(status) => {
                let Phase::Running { action_id, last, started_at, .. } = &self.phase else { return };
                let (action_id, last, started_at) = (action_id.clone(), *last, *started_at);
                // Still not picked up after Microsoft's queue for an offline device (2 hours).
                if status == ActionStatus::Pending && started_at.is_some_and(|s| now >= s.plus(limits.offline_window)) {
                    self.finish(EvidenceOutcome::DeviceOffline, Some(offline_detail(limits)), None);
                    return;
                }
                self.phase = match status {
                    ActionStatus::Pending | ActionStatus::InProgress => {
                        Phase::Running { action_id, last: status, next_check: now.plus(limits.check_every), started_at }
                    }
                    // Never picked up: Microsoft's queue for an offline device ran out.
                    ActionStatus::TimeOut if last == ActionStatus::Pending => {
                        let why = "the device stayed offline: Defender for Endpoint timed the queued live response out (it queues one for an offline device up to 2 hours)";
                        self.finish(EvidenceOutcome::DeviceOffline, Some(why.into()), None);
                        return;
                    }
                    ActionStatus::Succeeded => Phase::Download { action_id },
                    ActionStatus::Failed => {
                        self.phase = Phase::Running { action_id, last, next_check: now, started_at };
                        return self.observe(Observation::ActionFailed { hresult: None, errors: Vec::new() }, now, limits);
                    }
                    ActionStatus::TimeOut | ActionStatus::Cancelled => {
                        let why = format!("Defender for Endpoint ended the live response: {status:?}");
                        self.finish(EvidenceOutcome::TimedOut, Some(why), None);
                        return;
                    }
                };
            }
            Observation::ActionFailed { hresult, errors } => {
                if !matches!(self.phase, Phase::Running { .. }) {
                    return;
                }
                let words = action_failure::microsofts_words(hresult, &errors);
                let (outcome, why) = match action_failure::classify(hresult, &errors) {
                    ActionFailure::NotFound if self.target.is_restore() => (
                        EvidenceOutcome::NotFound,
                        format!("the device's quarantine holds no file with the alert's SHA-256, or GetFile found none ({words})"),
                    ),
                    ActionFailure::NotFound => (EvidenceOutcome::NotFound, format!("GetFile found no file at the path ({words})")),
                    ActionFailure::TooLarge => {
                        (EvidenceOutcome::TooLarge, format!("the file is larger than GetFile collects (live-response.md: 3 GB) ({words})"))
                    }
                    ActionFailure::Unsigned => (
                        EvidenceOutcome::Refused,
                        format!(
                            "the device refused the restore script for its signature: the script is unsigned, so the tenant needs \
                             Settings → Endpoints → Advanced features → \"Live Response unsigned script execution\" on ({words})"
                        ),
                    ),
                    ActionFailure::TimedOut => {
                        (EvidenceOutcome::TimedOut, format!("a live response command timed out on the device ({words})"))
                    }
                    ActionFailure::Other => (EvidenceOutcome::Refused, format!("the live response failed on the device: {words}")),
                };
                self.finish(outcome, Some(why), None);
            }
            Observation::Found { identity } => self.phase = Phase::Export { identity },
            Observation::NotFound(why) => self.finish(EvidenceOutcome::NotFound, Some(why), None),
            Observation::Refused(why) => self.finish(EvidenceOutcome::Refused, Some(why), None),
            Observation::TooLarge { size, limit } => {
                self.finish(EvidenceOutcome::TooLarge, Some(format!("{size} bytes, more than the {limit} kept")), None)
            }
            Observation::HashMismatch { expected, got } => self.finish(
                EvidenceOutcome::Refused,
                Some(format!("the retrieved file's hash {got} is not the alert's {expected}: not kept")),
                None,
            ),
            Observation::Stored(r) => self.finish(EvidenceOutcome::Retrieved, None, Some(r)),
            Observation::CleanupStarted { .. } => {}
        }
    }

    /// A cleanup's answers: it ends the job once the device ran it, or once it could not be
    /// confirmed; either way the job's detail says what became of the restored copy.
    fn observe_cleanup(&mut self, observation: Observation, now: GraphTime, limits: &JobLimits) {
        let folder = self.restore_folder();
        let Phase::Cleanup { outcome, detail, artifact, cleanup_action, next_check, checks, .. } = &mut self.phase else { return };
        *checks += 1;
        let by_hand = format!("delete {folder} on the device and remove its antivirus exclusion by hand");
        let note = match observation {
            Observation::CleanupStarted { action_id } => {
                *cleanup_action = Some(action_id);
                *next_check = now.plus(limits.check_every);
                None
            }
            Observation::Action(ActionStatus::Succeeded) => Some("the restored copy was removed from the device".to_owned()),
            Observation::Action(status @ (ActionStatus::Failed | ActionStatus::TimeOut | ActionStatus::Cancelled)) => {
                Some(format!("the cleanup on the device ended {status:?}: {by_hand}"))
            }
            Observation::Refused(why) | Observation::NotFound(why) => Some(format!("the cleanup could not run ({why}): {by_hand}")),
            Observation::ActionFailed { hresult, errors } => Some(format!(
                "the cleanup on the device failed ({}): {by_hand}",
                crate::domain::action_failure::microsofts_words(hresult, &errors)
            )),
            _ if *checks >= MAX_CLEANUP_CHECKS => {
                Some(format!("the cleanup was not confirmed after {MAX_CLEANUP_CHECKS} looks; if it never ran, {by_hand}"))
            }
            // Still running, busy, throttled, an outage: look again later.
            _ => {
                *next_check = now.plus(if cleanup_action.is_some() { limits.check_every } else { limits.busy_wait });
                None
            }
        };
        if let Some(note) = note {
            self.cleaned = Some(note.starts_with("the restored copy was removed"));
            let detail = Some(match detail.take() {
                Some(d) => format!("{d}; {note}"),
                None => note,
            });
            let (outcome, artifact) = (*outcome, artifact.take());
            self.phase = Phase::Done { outcome, detail, artifact };
        }
    }

    fn finish(&mut self, outcome: EvidenceOutcome, detail: Option<String>, artifact: Option<ObjectRef>) {
        // A restore that reached the device leaves a file there until the cleanup removes it.
        let restore_action = match &self.phase {
            Phase::Running { action_id, .. } | Phase::Download { action_id } if self.target.is_restore() => Some(action_id.clone()),
            _ => None,
        };
        self.phase = match restore_action {
            Some(restore_action) => {
                Phase::Cleanup { outcome, detail, artifact, restore_action, cleanup_action: None, next_check: self.created_at, checks: 0 }
            }
            None => Phase::Done { outcome, detail, artifact },
        };
    }
}

/// The schema of a message on the evidence-jobs queue.
pub const JOB_MESSAGE_SCHEMA: &str = "m365-ingest.evidence-job.v1";

/// A message on the evidence-jobs queue: "move this job on". It names the integration so that a
/// batch reads only the integrations it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub schema: String,
    pub integration_id: String,
    /// The job's key, or a hold's.
    pub job: String,
    /// "Release this held alert if its evidence is final or its wait is over".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
}

impl JobMessage {
    pub fn new(integration_id: &str, job: &str) -> Self {
        JobMessage { schema: JOB_MESSAGE_SCHEMA.into(), integration_id: integration_id.into(), job: job.into(), hold: false }
    }

    pub fn hold(integration_id: &str, hold: &str) -> Self {
        JobMessage { hold: true, ..Self::new(integration_id, hold) }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A job as it is stored: the job and the alert version it belongs to, which its evidence
/// update names. Bounded: a target's strings are capped by the plan, so a record stays a few KB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job: EvidenceJob,
    pub integration_id: String,
    pub tenant_id: String,
    pub source: crate::domain::source::Source,
    pub alert_id: String,
    /// The incident the alert came in (incidents mode): where Microsoft's copy of the alert
    /// is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    pub alert_version: GraphTime,
    pub dedup_key: String,
    /// The alert's title (at most 512 characters) and severity, for an OCSF update.
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub severity: Option<String>,
    /// The evidence update went out.
    pub reported: bool,
    /// The hold of the alert version when it waits for its evidence (its key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
}

impl EvidenceItem {
    /// The item as its job stands.
    pub fn of(job: &EvidenceJob) -> Self {
        let (status, detail, artifact) = match &job.phase {
            Phase::Done { outcome, detail, artifact } => (outcome.as_str().to_owned(), detail.clone(), artifact.clone()),
            _ => ("pending".to_owned(), None, None),
        };
        let mut item = EvidenceItem { id: job.key.clone(), status, detail, artifact, ..EvidenceItem::default() };
        match &job.target {
            t @ EvidenceTarget::File { device_id, sha1, sha256, .. } => {
                item.kind = "file".into();
                item.device_id = Some(device_id.clone());
                item.path = t.path();
                item.sha1.clone_from(sha1);
                item.sha256.clone_from(sha256);
            }
            EvidenceTarget::Email { internet_message_id, recipient, .. } => {
                item.kind = "email".into();
                item.internet_message_id = Some(internet_message_id.clone());
                item.recipient = Some(recipient.clone());
                // The store it came from is in its key (app/evidence/driver.rs).
                item.found_in = item.artifact.as_ref().and_then(|a| match a.key.split('/').next() {
                    Some("delivered-email") => Some("mailbox".to_owned()),
                    Some("quarantined-email") => Some("quarantine".to_owned()),
                    _ => None,
                });
            }
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::evidence::job::*;

    fn file() -> EvidenceTarget {
        EvidenceTarget::File {
            device_id: "d".into(),
            folder: "C:\\x".into(),
            name: "a.exe".into(),
            sha1: None,
            sha256: None,
            quarantined_by_antivirus: false,
        }
    }

    fn t0() -> GraphTime {
        GraphTime::from_unix_seconds(1_800_000_000)
    }

    /// A new job past its check against Microsoft's copy of the alert.
    fn confirmed(target: EvidenceTarget) -> EvidenceJob {
        let mut j = EvidenceJob::new("k".into(), target.clone(), t0());
        assert_eq!(j.next(t0(), &JobLimits::default()), Next::Verify, "nothing is asked before Microsoft's copy is read");
        j.observe(Observation::Verified(target), t0(), &JobLimits::default());
        j
    }

    fn stored() -> ObjectRef {
        ObjectRef { bucket: "b".into(), key: "k".into(), size: 3, sha256: "0".repeat(64), content_type: None }
    }

    /// A download that met a busy (throttled) API waits the busy wait before it is made again.
    #[test]
    fn a_busy_download_waits_before_it_is_made_again() {
        let l = JobLimits::default();
        let mut j = confirmed(file());
        j.phase = Phase::Download { action_id: "ma1".into() };
        assert_eq!(j.next(t0(), &l), Next::Download("ma1".into()));
        j.observe(Observation::Busy, t0(), &l);
        let again = t0().plus(l.busy_wait);
        assert_eq!(j.next(t0(), &l), Next::WaitUntil(again), "not at once");
        assert_eq!(j.next(again, &l), Next::Download("ma1".into()));
    }

    /// Microsoft's copy can say antivirus quarantined a file the alert we were given did not:
    /// the job becomes a restore, and draws its own folder and key then.
    #[test]
    fn a_file_microsofts_copy_says_is_quarantined_becomes_a_restore_with_its_own_folder() {
        let (plain, mut quarantined) = (file(), file());
        if let EvidenceTarget::File { quarantined_by_antivirus, sha256, .. } = &mut quarantined {
            *quarantined_by_antivirus = true;
            *sha256 = Some("ab".repeat(32));
        }
        let mut j = EvidenceJob::new("k".into(), plain, t0());
        assert!(j.restore.is_none(), "not a restore at intake");
        j.observe(Observation::Verified(quarantined), t0(), &JobLimits::default());
        assert!(j.restore.as_ref().is_some_and(RestoreSecret::is_well_formed), "{:?}", j.restore);
    }

    #[test]
    fn a_file_is_started_checked_until_it_succeeds_downloaded_and_stored() {
        let l = JobLimits::default();
        let mut j = confirmed(file());
        assert_eq!(j.next(t0(), &l), Next::Start);
        j.observe(Observation::Started { action_id: "ma1".into() }, t0(), &l);
        let check = t0().plus(l.check_every);
        assert_eq!(j.next(t0(), &l), Next::WaitUntil(check), "no check before its time");
        assert_eq!(j.next(check, &l), Next::CheckAction("ma1".into()));
        j.observe(Observation::Action(ActionStatus::InProgress), check, &l);
        let later = check.plus(l.check_every);
        assert_eq!(j.next(later, &l), Next::CheckAction("ma1".into()));
        j.observe(Observation::Action(ActionStatus::Succeeded), later, &l);
        assert_eq!(j.next(later, &l), Next::Download("ma1".into()));
        // An expired link is a passing failure: the download is made again.
        j.observe(Observation::Transient("the link expired".into()), later, &l);
        assert_eq!(j.next(later, &l), Next::Download("ma1".into()));
        j.observe(Observation::Stored(stored()), later, &l);
        assert_eq!((j.outcome(), j.next(later, &l)), (Some(EvidenceOutcome::Retrieved), Next::Finished));
    }

    #[test]
    fn an_offline_device_ends_the_job_after_microsofts_two_hour_queue_not_the_jobs_day() {
        let l = JobLimits::default();
        assert_eq!((l.offline_window, l.max_wait), (Duration::from_secs(7200), Duration::from_secs(86_400)));
        let mut j = confirmed(file());
        j.observe(Observation::Started { action_id: "ma".into() }, t0(), &l);
        let mut now = t0();
        while j.outcome().is_none() {
            now = now.plus(l.check_every);
            if j.next(now, &l) == Next::CheckAction("ma".into()) {
                // Microsoft keeps answering Pending: the job does not wait for the day.
                j.observe(Observation::Action(ActionStatus::Pending), now, &l);
            }
        }
        assert_eq!(j.outcome(), Some(EvidenceOutcome::DeviceOffline));
        assert!(now >= t0().plus(l.offline_window) && now <= t0().plus(l.offline_window).plus(l.check_every), "{now}");
        assert!(matches!(&j.phase, Phase::Done { detail: Some(d), .. } if d.contains("2h")), "{:?}", j.phase);
        // Microsoft timing the queued action out says the same, at once.
        let mut j = confirmed(file());
        j.observe(Observation::Started { action_id: "ma".into() }, t0(), &l);
        j.observe(Observation::Action(ActionStatus::TimeOut), t0().plus(Duration::from_secs(7200)), &l);
        assert_eq!(j.outcome(), Some(EvidenceOutcome::DeviceOffline));
        // A device that picked the action up and ran out of time did not stay offline.
        let mut j = confirmed(file());
        j.observe(Observation::Started { action_id: "ma".into() }, t0(), &l);
        j.observe(Observation::Action(ActionStatus::InProgress), t0(), &l);
        j.observe(Observation::Action(ActionStatus::TimeOut), t0().plus(Duration::from_secs(900)), &l);
        assert_eq!(j.outcome(), Some(EvidenceOutcome::TimedOut));
    }

    #[test]
    fn a_busy_device_waits_and_an_offline_one_ends_the_job_at_its_maximum_wait() {
        let l = JobLimits { max_wait: Duration::from_secs(3600), ..JobLimits::default() };
        let mut j = confirmed(file());
        j.observe(Observation::Busy, t0(), &l);
        assert_eq!(j.next(t0(), &l), Next::WaitUntil(t0().plus(l.busy_wait)));
        let t = t0().plus(l.busy_wait);
        j.observe(Observation::Started { action_id: "ma".into() }, t, &l);
        // Queued by Microsoft for a device that never comes online.
        let mut now = t;
        while j.outcome().is_none() {
            now = now.plus(l.check_every);
            if j.next(now, &l) == Next::CheckAction("ma".into()) {
                j.observe(Observation::Action(ActionStatus::Pending), now, &l);
            }
        }
        assert_eq!(j.outcome(), Some(EvidenceOutcome::DeviceOffline));
        assert!(now >= t0().plus(l.max_wait) && now <= t0().plus(l.max_wait).plus(l.check_every));
        // One that started on the device and never finished timed out.
        let mut j = confirmed(file());
        j.observe(Observation::Started { action_id: "ma".into() }, t0(), &l);
        j.observe(Observation::Action(ActionStatus::InProgress), t0(), &l);
        assert_eq!(j.next(t0().plus(l.max_wait), &l), Next::Finished);
        assert_eq!(j.outcome(), Some(EvidenceOutcome::TimedOut));
    }

    #[test]
    fn attempts_are_bounded_and_every_end_is_named() {
        let l = JobLimits { max_attempts: 3, ..JobLimits::default() };
        let mut j = confirmed(file());
        for _ in 0..4 {
            j.observe(Observation::Transient("503".into()), t0(), &l);
        }
        assert_eq!(j.outcome(), Some(EvidenceOutcome::TimedOut));
        assert!(matches!(&j.phase, Phase::Done { detail: Some(d), .. } if d.contains("4 attempts") && d.contains("503")));
        for (obs, want) in [
            (Observation::ActionFailed { hresult: Some(-2_147_024_894), errors: vec![] }, EvidenceOutcome::NotFound),
            (Observation::ActionFailed { hresult: Some(-2_147_024_673), errors: vec![] }, EvidenceOutcome::TooLarge),
            (Observation::ActionFailed { hresult: Some(0x8007_05B4_u32 as i32 as i64), errors: vec![] }, EvidenceOutcome::TimedOut),
            (Observation::ActionFailed { hresult: Some(-2_146_762_496), errors: vec![] }, EvidenceOutcome::Refused),
            (
                Observation::ActionFailed { hresult: Some(-2_147_024_891), errors: vec!["Access is denied".into()] },
                EvidenceOutcome::Refused,
            ),
            (Observation::Action(ActionStatus::Failed), EvidenceOutcome::Refused),
            (Observation::Action(ActionStatus::Cancelled), EvidenceOutcome::TimedOut),
            (Observation::Refused("no Machine.LiveResponse".into()), EvidenceOutcome::Refused),
            (Observation::TooLarge { size: 9, limit: 8 }, EvidenceOutcome::TooLarge),
            (Observation::HashMismatch { expected: "a".into(), got: "b".into() }, EvidenceOutcome::Refused),
        ] {
            let mut j = confirmed(file());
            j.observe(Observation::Started { action_id: "ma".into() }, t0(), &l);
            j.observe(obs.clone(), t0(), &l);
            assert_eq!(j.outcome(), Some(want), "{obs:?}");
        }
        let off = EvidenceJob::disabled("k".into(), file(), t0());
        assert_eq!(off.outcome(), Some(EvidenceOutcome::Disabled));
    }

    #[test]
    fn an_email_is_found_by_id_then_exported_and_a_missing_one_is_not_found() {
        let l = JobLimits::default();
        let email =
            EvidenceTarget::Email { internet_message_id: "<q@x>".into(), recipient: "u@contoso.com".into(), location: Default::default() };
        let mut j = confirmed(email.clone());
        assert_eq!(j.next(t0(), &l), Next::Start);
        j.observe(Observation::Found { identity: "g1\\g2".into() }, t0(), &l);
        assert_eq!(j.next(t0(), &l), Next::Export("g1\\g2".into()));
        j.observe(Observation::Stored(stored()), t0(), &l);
        assert_eq!(j.outcome(), Some(EvidenceOutcome::Retrieved));
        let mut j = confirmed(email);
        j.observe(Observation::NotFound("no quarantined message with that id for that recipient".into()), t0(), &l);
        assert_eq!(j.outcome(), Some(EvidenceOutcome::NotFound));
        // The record round-trips: it is what DynamoDB keeps between steps.
        let text = serde_json::to_string(&j).unwrap_or_default();
        assert_eq!(serde_json::from_str::<EvidenceJob>(&text).ok(), Some(j));
    }
}
