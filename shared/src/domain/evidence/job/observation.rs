//! What a call for an evidence job can answer ([`Observation`]), and how the job takes each
//! answer in ([`EvidenceJob::observe`]): the phase it moves to, the passing failures it waits
//! out, the end it names, and a restore's cleanup.

use super::{offline_detail, ActionStatus, EvidenceJob, JobLimits, Phase, MAX_CLEANUP_CHECKS};
use crate::domain::action_failure::{self, ActionFailure};
use crate::domain::envelope::ObjectRef;
use crate::domain::evidence::plan::{EvidenceOutcome, EvidenceTarget};
use crate::domain::evidence::restore_secret::RestoreSecret;
use crate::domain::time::GraphTime;

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

impl EvidenceJob {
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
}
