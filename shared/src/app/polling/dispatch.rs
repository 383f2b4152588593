//! Fan-out: the schedule's due (integration, source) pairs become one poll job each on the
//! poll-jobs queue, which the poller consumes through an SQS event source. A pair is reserved
//! (its entry moved `guard` ahead, conditionally) before its job is sent: two dispatchers never
//! enqueue it twice, and a job that is lost delays the pair by the guard, never forever.

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::app::polling::deliver::send_tracked;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::Error;
use crate::ports::{AlertQueue, Clock, CursorKey, DueEntry, ScheduleStore};
use crate::sources::settings::DeliverySettings;

pub const JOB_SCHEMA: &str = "m365-ingest.poll-job.v1";

/// One poll job: poll this integration's source until its window is done or the time slice ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollJob {
    pub schema: String,
    pub integration_id: String,
    pub source: Source,
    pub enqueued_at: GraphTime,
}

impl PollJob {
    pub fn new(key: &CursorKey, at: GraphTime) -> Self {
        PollJob { schema: JOB_SCHEMA.into(), integration_id: key.integration_id.clone(), source: key.source, enqueued_at: at }
    }

    pub fn key(&self) -> CursorKey {
        CursorKey::live(self.integration_id.clone(), self.source)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings {
    /// How far a dispatched pair's entry moves ahead: longer than a poll job can run (the
    /// poller's timeout), so a pair is never enqueued while its job runs.
    pub guard: Duration,
    /// Jobs per dispatch at most (the rest are due at the next one, oldest first).
    pub max_jobs: usize,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        DispatchSettings { guard: Duration::from_secs(20 * 60), max_jobs: 10_000 }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct DispatchSummary {
    pub source: Option<Source>,
    pub due: usize,
    pub enqueued: usize,
    /// Reserved by another dispatcher between our query and our reservation.
    pub taken: usize,
    /// Not accepted by the queue; their entries were put back, so the next dispatch retries.
    pub not_sent: usize,
}

pub struct Dispatcher<S, Q, K> {
    pub schedule: S,
    pub jobs: Q,
    pub clock: K,
    pub settings: DispatchSettings,
}

impl<S: ScheduleStore, Q: AlertQueue, K: Clock> Dispatcher<S, Q, K> {
    pub async fn dispatch(&self, source: Source) -> Result<DispatchSummary, Error> {
        let now = self.clock.now();
        let until = now.plus(self.settings.guard);
        let due = self.schedule.due(source, now, self.settings.max_jobs).await?;
        let mut summary = DispatchSummary { source: Some(source), due: due.len(), ..DispatchSummary::default() };
        let reserved: Vec<Result<Option<DueEntry>, Error>> = stream::iter(due)
            .map(|e| async move {
                match self.schedule.reserve(&e, until).await {
                    Ok(true) => Ok(Some(e)),
                    Ok(false) => Ok(None),
                    Err(err) => Err(err.into()),
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut mine = Vec::new();
        for r in reserved {
            match r? {
                Some(e) => mine.push(e),
                None => summary.taken += 1,
            }
        }
        let bodies: Vec<String> = mine.iter().map(|e| serde_json::to_string(&PollJob::new(&e.key, now)).unwrap_or_default()).collect();
        let sent = send_tracked(&self.jobs, &bodies, &DeliverySettings::default()).await;
        for (e, ok) in mine.iter().zip(sent) {
            if ok {
                summary.enqueued += 1;
                continue;
            }
            summary.not_sent += 1;
            // Back to when it was due, unless someone moved it since.
            let held = DueEntry { key: e.key.clone(), at: until };
            if let Err(err) = self.schedule.reserve(&held, e.at).await {
                tracing::warn!(error = %err, key = %e.key, "a job was not sent and its entry could not be put back; it is due again after the guard");
            }
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::adapters::local::{MemoryAlertQueue, MemorySchedule};
    use crate::app::polling::dispatch::*;

    struct At(GraphTime);
    impl Clock for At {
        fn now(&self) -> GraphTime {
            self.0
        }
    }

    fn t(s: i64) -> GraphTime {
        GraphTime::from_unix_seconds(1_800_000_000 + s)
    }

    fn key(id: &str) -> CursorKey {
        CursorKey::live(id, Source::DefenderAlerts)
    }

    #[tokio::test]
    async fn due_pairs_become_one_job_each_and_are_not_enqueued_twice() {
        let schedule = MemorySchedule::new();
        for (id, at) in [("a", 0), ("b", 50), ("c", 500)] {
            schedule.set(&key(id), t(at)).await.unwrap();
        }
        let d = Dispatcher { schedule, jobs: MemoryAlertQueue::new(), clock: At(t(100)), settings: DispatchSettings::default() };
        let s = d.dispatch(Source::DefenderAlerts).await.unwrap();
        assert_eq!((s.due, s.enqueued, s.taken, s.not_sent), (2, 2, 0, 0));
        let jobs: Vec<PollJob> = d.jobs.messages().iter().map(|m| serde_json::from_str(m).unwrap()).collect();
        assert_eq!(jobs.iter().map(|j| j.integration_id.as_str()).collect::<Vec<_>>(), ["a", "b"], "oldest first");
        assert!(jobs.iter().all(|j| j.schema == JOB_SCHEMA && j.enqueued_at == t(100)));
        assert_eq!(d.schedule.when(&key("a")), Some(t(100 + 1200)), "held for the guard");
        let again = d.dispatch(Source::DefenderAlerts).await.unwrap();
        assert_eq!(again.enqueued, 0, "a dispatched pair waits for its job or the guard");
    }

    /// Refuses every entry.
    struct Refusing;
    impl AlertQueue for Refusing {
        async fn send_batch(&self, entries: &[crate::ports::QueueEntry]) -> Result<crate::ports::SendReport, crate::error::QueueError> {
            Ok(crate::ports::SendReport {
                failed: entries
                    .iter()
                    .map(|e| crate::ports::FailedEntry { id: e.id.clone(), retryable: false, reason: "AccessDenied".into() })
                    .collect(),
            })
        }
    }

    #[tokio::test]
    async fn a_job_the_queue_refuses_leaves_its_pair_due() {
        let schedule = MemorySchedule::new();
        schedule.set(&key("a"), t(0)).await.unwrap();
        let d = Dispatcher { schedule, jobs: Refusing, clock: At(t(100)), settings: DispatchSettings::default() };
        let s = d.dispatch(Source::DefenderAlerts).await.unwrap();
        assert_eq!((s.enqueued, s.not_sent), (0, 1));
        assert_eq!(d.schedule.when(&key("a")), Some(t(0)), "due again at the next dispatch");
    }
}
