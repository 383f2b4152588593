//! The poll use case: for each integration due for a source, read the window from Graph (or
//! Cloud Apps) page by page, deliver each page to the intake queue, then commit the cursor
//! (DESIGN.md §3).
//!
//! Its parts: summary.rs holds a run's summary and outcome, run.rs reads the window span by
//! span; here, the due check, the lease and the run's end.

mod run;
mod summary;

use std::time::Instant;

use futures_util::stream::{self, StreamExt};

use crate::domain::integration::Integration;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::{CursorError, Error};
use crate::ports::{Clock, CursorKey, CursorStore, PollPorts, Ran};
use crate::sources::settings::PollSettings;

pub use summary::{Outcome, RunSummary};

/// When a run is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// The integration's poll interval has passed since its last run (a scheduled sweep).
    AfterInterval,
    /// No run has started since this time (a poll job enqueued then): a job delivered twice, or
    /// overtaken by another, does not poll again.
    NotRunSince(GraphTime),
    /// Whenever asked (a backfill an operator runs).
    Now,
}

/// The skip reasons a poll job acts on.
pub(crate) const LEASE_HELD: &str = "another run holds the lease";
pub(crate) const RAN_SINCE_ENQUEUED: &str = "a run started after this job was enqueued";
/// A job's time slice ended after a committed span; its continuation goes on from there.
pub const SLICE_ENDED: &str = "the time slice ended after a committed span";

pub struct Poller<P: PollPorts> {
    pub graph: P::Graph,
    pub cursors: P::Cursors,
    pub queue: P::Queue,
    pub artifacts: P::Artifacts,
    pub secrets: P::Secrets,
    pub clock: P::Clock,
    pub settings: PollSettings,
}

impl<P: PollPorts> Poller<P> {
    /// Polls every enabled integration that reads `source` and is due, a few at a time.
    pub async fn poll_all(&self, source: Source, integrations: &[Integration], deadline: Instant) -> Vec<RunSummary> {
        let todo: Vec<&Integration> = integrations.iter().filter(|i| i.polls(source)).collect();
        stream::iter(todo).map(|i| self.poll_one(i, source, deadline)).buffer_unordered(self.settings.concurrency.max(1)).collect().await
    }

    /// One integration if its poll interval has passed since its last run: lease, read,
    /// deliver, commit, release. Never panics; errors end up in the summary.
    pub async fn poll_one(&self, integration: &Integration, source: Source, deadline: Instant) -> RunSummary {
        self.poll(integration, source, deadline, Due::AfterInterval, None).await
    }

    /// One run of a backfill of `[from, to)` on its own cursor and lease (the live cursor is
    /// not touched); repeated, it resumes where the last run stopped. Done once a run reports
    /// nothing to read.
    pub async fn backfill(
        &self,
        integration: &Integration,
        source: Source,
        from: GraphTime,
        to: GraphTime,
        deadline: Instant,
        slice_end: Instant,
    ) -> RunSummary {
        let key = CursorKey::backfill(integration.id.clone(), source, from, to);
        self.poll_key(integration, key, deadline, Due::Now, Some(slice_end)).await
    }

    /// `deadline` ends reading whatever it is doing (the Lambda's end, less the safety margin);
    /// after `slice_end` no new span starts, but one under way is finished and committed, so a
    /// slice shorter than a span under throttling still makes progress.
    pub(crate) async fn poll(
        &self,
        integration: &Integration,
        source: Source,
        deadline: Instant,
        when: Due,
        slice_end: Option<Instant>,
    ) -> RunSummary {
        self.poll_key(integration, CursorKey::live(integration.id.clone(), source), deadline, when, slice_end).await
    }

    #[tracing::instrument(skip_all, fields(integration = %integration.id, source = %key.source))]
    async fn poll_key(
        &self,
        integration: &Integration,
        key: CursorKey,
        deadline: Instant,
        when: Due,
        slice_end: Option<Instant>,
    ) -> RunSummary {
        let source = key.source;
        let mut summary = RunSummary::new(integration, source);
        let now = self.clock.now();
        summary.started_at = now;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let leased = match self.cursors.acquire(&key, &self.settings.owner, now, now.plus(remaining)).await {
            Ok(l) => l,
            Err(CursorError::LeaseHeld { until, .. }) => {
                summary.outcome = Outcome::Skipped { reason: format!("{LEASE_HELD} until {until}") };
                return summary;
            }
            Err(e) => {
                summary.outcome = Outcome::Failed { retryable: e.is_retryable(), error: e.to_string() };
                return summary;
            }
        };
        summary.watermark = leased.cursor.watermark;
        let due = match when {
            Due::AfterInterval => leased.last_run.is_none_or(|last| last.plus(integration.poll_interval) <= now),
            Due::NotRunSince(enqueued) => leased.last_run.is_none_or(|last| last < enqueued),
            Due::Now => true,
        };
        let result = if due {
            self.run(integration, source, &key, leased, now, (deadline, slice_end), &mut summary).await
        } else {
            Ok(RunEnd::NotDue)
        };
        // A run that did not happen leaves the last run as it was.
        let ran = !matches!(result, Ok(RunEnd::NotDue));
        match result {
            Ok(RunEnd::Done) => {}
            Ok(RunEnd::NotDue) => {
                let reason = match when {
                    Due::NotRunSince(_) => RAN_SINCE_ENQUEUED.into(),
                    Due::AfterInterval | Due::Now => "not due yet".into(),
                };
                summary.outcome = Outcome::Skipped { reason };
            }
            Ok(RunEnd::NothingToRead) => {
                summary.outcome = Outcome::Skipped { reason: "nothing to read yet: the window is inside the ingestion delay".into() }
            }
            Ok(RunEnd::Stopped(reason)) => summary.outcome = Outcome::Partial { reason },
            Err(e) => {
                tracing::warn!(error = %e, pages = summary.pages, "poll failed");
                summary.credentials_refused = matches!(e, Error::Config(crate::error::ConfigError::CrossedSecret { .. }));
                summary.outcome = Outcome::Failed { retryable: e.is_retryable(), error: e.to_string() };
            }
        }
        let ran = ran.then(|| Ran { at: now, outcome: summary.outcome.brief() });
        if let Err(e) = self.cursors.release(&key, &self.settings.owner, ran.as_ref()).await {
            // The lease expires on its own; the next run waits at most until then.
            tracing::warn!(error = %e, "could not release the lease");
        }
        tracing::info!(pages = summary.pages, delivered = summary.delivered, suppressed = summary.suppressed, "alerts polled");
        summary
    }
}

/// How a run that did not fail ended.
enum RunEnd {
    /// The window was read to its end.
    Done,
    /// Stopped early; the reason says why.
    Stopped(String),
    NotDue,
    NothingToRead,
}
