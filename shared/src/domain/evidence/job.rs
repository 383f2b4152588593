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
//!
//! Here: a job's bounds, its phases and what it needs next. Its children hold what a call can
//! answer and how the job takes it in (`observation`), and the job as it is stored, queued and
//! reported (`record`).

mod observation;
mod record;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::envelope::ObjectRef;
use crate::domain::evidence::plan::{EvidenceOutcome, EvidenceTarget};
use crate::domain::evidence::restore_secret::RestoreSecret;
use crate::domain::time::GraphTime;

pub use observation::Observation;
pub use record::{JobMessage, JobRecord, JOB_MESSAGE_SCHEMA};

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

#[cfg(test)]
mod tests;
