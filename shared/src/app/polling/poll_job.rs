//! One poll job off the poll-jobs queue: its integration read by key, its source polled until
//! the window is done or the time slice ends, then the schedule told when the pair is next due.
//! Unfinished work enqueues its own continuation; the lease still keeps two runs apart.

use std::time::Instant;

use crate::app::integration_cache::IntegrationCache;
use crate::app::polling::deliver::send_tracked;
use crate::app::polling::dispatch::PollJob;
use crate::app::polling::poll::{Due, Outcome, Poller, RunSummary, LEASE_HELD, RAN_SINCE_ENQUEUED};
use crate::ports::{AlertQueue, Clock, IntegrationSource, PollPorts, ScheduleStore};
use crate::sources::settings::DeliverySettings;

/// What became of a job, for the event source mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// Finished; the pair is scheduled for its next interval.
    Done,
    /// The time slice ended first; a continuation job is on the queue.
    Continued,
    /// Failed in a way worth retrying: report it, and SQS delivers the job again.
    Retry(String),
    /// The integration is gone or no longer polls this source: its schedule entry is removed.
    Dropped(String),
}

impl<P: PollPorts> Poller<P> {
    #[allow(clippy::too_many_arguments)]
    pub async fn run_job<I: IntegrationSource, D: ScheduleStore, J: AlertQueue>(
        &self,
        job: &PollJob,
        integrations: &I,
        cache: &IntegrationCache,
        schedule: &D,
        jobs: &J,
        deadline: Instant,
        slice_end: Instant,
    ) -> (JobEnd, Option<RunSummary>) {
        let key = job.key();
        let integration = match cache.lookup(integrations, &[job.integration_id.as_str()]).await {
            Ok(mut found) => found.pop(),
            Err(e) => return (JobEnd::Retry(format!("the integration could not be read: {e}")), None),
        };
        let integration = match integration.filter(|i| i.polls(job.source)) {
            Some(i) => Some(i),
            // Before the entry goes: the cached revision may predate the save that enabled this
            // source (and wrote the entry), so the record is read again by key.
            None => match cache.refresh(integrations, &job.integration_id).await {
                Ok(fresh) => fresh.filter(|i| i.polls(job.source)),
                Err(e) => return (JobEnd::Retry(format!("the integration could not be read: {e}")), None),
            },
        };
        let Some(integration) = integration else {
            let why = format!("integration `{}` does not poll {} (removed, disabled or changed)", job.integration_id, job.source);
            if let Err(e) = schedule.remove(&key).await {
                return (JobEnd::Retry(format!("{why}; its schedule entry could not be removed: {e}")), None);
            }
            return (JobEnd::Dropped(why), None);
        };
        let started = self.clock.now();
        let summary = self.poll(&integration, job.source, deadline, Due::NotRunSince(job.enqueued_at), Some(slice_end)).await;
        let next = started.plus(integration.poll_interval);
        let end = match &summary.outcome {
            Outcome::Completed => schedule.set(&key, next).await.map(|()| JobEnd::Done),
            // Another run holds the lease, or ran since: that run reschedules the pair.
            Outcome::Skipped { reason } if reason.starts_with(LEASE_HELD) || reason == RAN_SINCE_ENQUEUED => Ok(JobEnd::Done),
            Outcome::Skipped { .. } => schedule.set(&key, next).await.map(|()| JobEnd::Done),
            Outcome::Partial { .. } => {
                let body = serde_json::to_string(&PollJob::new(&key, self.clock.now())).unwrap_or_default();
                let sent = send_tracked(jobs, &[body], &DeliverySettings::default()).await;
                return (
                    if sent.first().copied().unwrap_or(false) {
                        JobEnd::Continued
                    } else {
                        JobEnd::Retry("the continuation job was not accepted by the queue".into())
                    },
                    Some(summary),
                );
            }
            Outcome::Failed { retryable: true, error } => return (JobEnd::Retry(error.clone()), Some(summary)),
            // A failure that repeats (a revoked secret) waits for the next interval; it is alarmed.
            Outcome::Failed { retryable: false, .. } => schedule.set(&key, next).await.map(|()| JobEnd::Done),
        };
        match end {
            Ok(end) => (end, Some(summary)),
            Err(e) => (JobEnd::Retry(format!("polled, but the schedule could not be updated: {e}")), Some(summary)),
        }
    }
}
