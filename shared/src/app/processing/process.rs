//! The process use case: an intake message in, filtered and deduplicated alerts out on the
//! output queue in the integration's format (DESIGN.md §1, §3 last point, §4).
//!
//! Its parts: batches.rs takes a batch of intake or evidence-job messages, intake.rs prepares
//! one intake message (decode, filter, claim, render), rendering.rs renders an alert, and
//! incident.rs an incident version's own message; here, the batch's run and its counts.

mod batches;
mod incident;
mod intake;
mod rendering;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use crate::app::processing::processor::Processor;
use crate::domain::integration::Integration;
use crate::domain::processing::filter::Filters;
use crate::ports::ProcessPorts;

/// What happened to one intake message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Every alert in it was published, dropped by a filter, or had been published before.
    Done,
    /// Not finished; SQS should deliver it again (and, after its redrive count, to the DLQ).
    Retry(String),
}

/// Counts across a batch: published messages, duplicates, and drops per filter reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProcessCounts {
    pub alerts: usize,
    pub published: usize,
    pub duplicates: usize,
    /// Alerts kept until their evidence is final (`evidence.delivery = hold_until_final`), and
    /// held alerts that went out.
    pub held: usize,
    pub released: usize,
    pub dropped: BTreeMap<String, usize>,
    pub failed_messages: usize,
    /// Evidence jobs' steps taken, and how the jobs that ended ended (by outcome name).
    pub evidence_steps: usize,
    pub evidence_outcomes: BTreeMap<String, usize>,
    /// The oldest job that ended, from its creation to its end.
    pub evidence_max_age_secs: u64,
    /// Evidence steps left for SQS to deliver again: too little of the invocation was left.
    pub steps_not_started: usize,
    /// Restores whose cleanup the device did not confirm: a copy may be left (alarmed).
    pub restored_copies_left: usize,
    /// DLP alerts kept because `filters.dlp_modes` could not read their mode (filter.rs).
    pub dlp_mode_unknown: usize,
    /// Incident versions published (incidents mode), and those not published because the
    /// filters dropped every alert of theirs.
    pub incidents_published: usize,
    pub incidents_dropped: usize,
    /// Incident versions not sent: not even one alert's reference fits the output message.
    pub incidents_too_large: usize,
}

impl ProcessCounts {
    /// Adds another batch's counts to these.
    pub fn add(&mut self, other: ProcessCounts) {
        self.alerts += other.alerts;
        self.published += other.published;
        self.duplicates += other.duplicates;
        self.held += other.held;
        self.released += other.released;
        self.failed_messages += other.failed_messages;
        self.evidence_steps += other.evidence_steps;
        self.steps_not_started += other.steps_not_started;
        self.restored_copies_left += other.restored_copies_left;
        self.dlp_mode_unknown += other.dlp_mode_unknown;
        self.incidents_published += other.incidents_published;
        self.incidents_dropped += other.incidents_dropped;
        self.incidents_too_large += other.incidents_too_large;
        self.evidence_max_age_secs = self.evidence_max_age_secs.max(other.evidence_max_age_secs);
        for (reason, n) in other.dropped {
            *self.dropped.entry(reason).or_default() += n;
        }
        for (outcome, n) in other.evidence_outcomes {
            *self.evidence_outcomes.entry(outcome).or_default() += n;
        }
    }
}

/// One batch's run: the integrations it names, each with its compiled filters, and its counts.
pub struct BatchRun<'a, P: ProcessPorts> {
    p: &'a Processor<P>,
    integrations: HashMap<String, (Integration, Filters)>,
    counts: Mutex<ProcessCounts>,
    last_failure: Mutex<Option<String>>,
    /// Context lookups of this batch end by then.
    deadline: std::time::Instant,
    /// When the invocation ends (the Lambda's deadline), if known.
    ends: Option<std::time::Instant>,
}

/// A claimed key, whether every message rendered for it was accepted by the output queue (or
/// it was held: nothing to send), and the evidence jobs to start once it was.
struct SentKey {
    key: String,
    sent: bool,
    held: bool,
    incident: bool,
    starts: Vec<(String, Duration)>,
}

/// The rendered messages of one claimed key (none when its alert is held for its evidence),
/// and its evidence jobs' first messages.
struct Ready {
    key: String,
    bodies: Vec<String>,
    starts: Vec<(String, Duration)>,
    /// An incident version's message (incidents mode), not an alert's.
    incident: bool,
}

impl<P: ProcessPorts> Processor<P> {
    /// A run for one batch. Integrations whose filters do not compile are left out (they were
    /// checked at save time; their messages fail and reach the DLQ rather than pass unfiltered).
    pub fn batch(&self, integrations: Vec<Integration>) -> BatchRun<'_, P> {
        let integrations = integrations
            .into_iter()
            .filter_map(|i| match i.filters.validate() {
                Ok(f) => Some((i.id.clone(), (i, f))),
                Err(e) => {
                    tracing::error!(integration = %i.id, problem = %e, "integration filters invalid; its messages will fail");
                    None
                }
            })
            .collect();
        let per_batch = self.context.as_ref().map_or(std::time::Duration::ZERO, |c| c.settings().per_batch);
        BatchRun {
            p: self,
            integrations,
            counts: Mutex::new(ProcessCounts::default()),
            last_failure: Mutex::new(None),
            deadline: std::time::Instant::now() + per_batch,
            ends: None,
        }
    }
}

impl<P: ProcessPorts> BatchRun<'_, P> {
    /// The same run, knowing when its invocation ends (steps are started only with a whole
    /// step's time left).
    pub fn until(mut self, ends: std::time::Instant) -> Self {
        self.ends = Some(ends);
        self
    }

    /// Counts since the last call, then reset.
    pub fn take_counts(&self) -> ProcessCounts {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn count(&self, f: impl FnOnce(&mut ProcessCounts)) {
        f(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()));
    }
}
