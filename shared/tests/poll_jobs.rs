//! A poll job end to end against the simulator: the pair is polled and scheduled for its next
//! interval; a run cut short by its request cap enqueues its continuation; a job for an
//! integration that is gone removes its schedule entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};

use m365_ingest::adapters::local::{MemoryAlertQueue, MemorySchedule, StaticIntegrations};
use m365_ingest::app::integration_cache::IntegrationCache;
use m365_ingest::app::polling::dispatch::PollJob;
use m365_ingest::app::polling::poll::Outcome;
use m365_ingest::app::polling::poll_job::JobEnd;
use m365_ingest::ports::{CursorKey, ScheduleStore};
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::Source;
use support::*;
use tenant_sim::Scenario;

fn key(id: &str) -> CursorKey {
    CursorKey::live(id, Source::DefenderAlerts)
}

#[tokio::test]
async fn a_job_polls_schedules_continues_or_drops() {
    let mut contoso = integration();
    contoso.poll_interval = Duration::from_secs(300);
    let integrations = StaticIntegrations(vec![contoso]);
    let cache = IntegrationCache::new(Duration::ZERO);
    let schedule = MemorySchedule::new();
    let jobs = MemoryAlertQueue::new();
    let deadline = || Instant::now() + Duration::from_secs(120);

    let w = world(fixed(Scenario::default()), PollSettings::default(), secret_creds()).await;
    let start = m365_ingest::ports::Clock::now(&w.poller.clock);
    let (end, summary) =
        w.poller.run_job(&PollJob::new(&key("contoso"), start), &integrations, &cache, &schedule, &jobs, deadline(), deadline()).await;
    let summary = summary.unwrap();
    assert_eq!((end, &summary.outcome), (JobEnd::Done, &Outcome::Completed), "{summary:?}");
    assert!(summary.delivered > 0);
    assert_eq!(schedule.when(&key("contoso")), Some(start.plus(Duration::from_secs(300))), "due again one interval after it started");

    // One request per run and small pages: the window is not done, so the job continues itself.
    let settings = PollSettings { alert_page_size: 20, max_pages: 1, ..PollSettings::default() };
    let w = world(fixed(Scenario::default()), settings, secret_creds()).await;
    let (end, summary) =
        w.poller.run_job(&PollJob::new(&key("contoso"), start), &integrations, &cache, &schedule, &jobs, deadline(), deadline()).await;
    assert_eq!(end, JobEnd::Continued, "{summary:?}");
    let next: PollJob = serde_json::from_str(&jobs.messages()[0]).unwrap();
    assert_eq!(next.key(), key("contoso"));

    // A slice that is over before the job starts still lets its first span finish and commit,
    // so a slice shorter than a span (throttling, slow pages) never stalls a tenant; the
    // continuation goes on from the committed cursor and nothing is read twice.
    let settings = PollSettings { alert_page_size: 20, ..PollSettings::default() };
    let w = world(fixed(Scenario::default()), settings, secret_creds()).await;
    let queued = MemoryAlertQueue::new();
    let (end, summary) = w
        .poller
        .run_job(&PollJob::new(&key("contoso"), start), &integrations, &cache, &schedule, &queued, deadline(), Instant::now())
        .await;
    let summary = summary.unwrap();
    assert_eq!(end, JobEnd::Continued, "{summary:?}");
    assert_eq!(summary.outcome, Outcome::Partial { reason: m365_ingest::app::polling::poll::SLICE_ENDED.into() });
    assert!(summary.delivered > 0 && summary.watermark.is_some(), "{summary:?}");
    let next: PollJob = serde_json::from_str(&queued.messages()[0]).unwrap();
    let (end, rest) = w.poller.run_job(&next, &integrations, &cache, &schedule, &queued, deadline(), deadline()).await;
    assert_eq!(end, JobEnd::Done, "{rest:?}");
    let got = w.delivered();
    let distinct: std::collections::BTreeSet<_> = got.iter().collect();
    assert_eq!(distinct.len(), got.len(), "the continuation reads on from the committed span");
    assert_eq!(got.len(), summary.delivered + rest.unwrap().delivered);

    schedule.set(&key("gone"), start).await.unwrap();
    let (end, summary) =
        w.poller.run_job(&PollJob::new(&key("gone"), start), &integrations, &cache, &schedule, &jobs, deadline(), deadline()).await;
    assert!(matches!(end, JobEnd::Dropped(_)) && summary.is_none(), "{end:?}");
    assert_eq!(schedule.when(&key("gone")), None, "its schedule entry is removed");
}

/// A save that enables a source, seen by a warm poller whose cache still holds the revision
/// before it: the job polls (the record is read again by key), it does not drop the new pair.
#[tokio::test]
async fn a_source_enabled_since_the_cached_revision_is_polled_not_dropped() {
    struct Saved(std::sync::Mutex<m365_ingest::domain::integration::Integration>);
    impl m365_ingest::ports::IntegrationSource for Saved {
        async fn integrations(&self) -> Result<Vec<m365_ingest::domain::integration::Integration>, m365_ingest::error::CursorError> {
            panic!("a job never lists")
        }
        async fn integration(
            &self,
            _: &str,
        ) -> Result<Option<m365_ingest::domain::integration::Integration>, m365_ingest::error::CursorError> {
            Ok(Some(self.0.lock().unwrap().clone()))
        }
    }
    let before = integration();
    let saved = Saved(std::sync::Mutex::new(before.clone()));
    let cache = IntegrationCache::new(Duration::from_secs(3600));
    let schedule = MemorySchedule::new();
    let jobs = MemoryAlertQueue::new();
    let w = world(fixed(Scenario::default()), PollSettings::default(), secret_creds()).await;
    let start = m365_ingest::ports::Clock::now(&w.poller.clock);
    let deadline = || Instant::now() + Duration::from_secs(120);
    // Warm: the revision without submissions is cached by a first job.
    let (end, _) = w.poller.run_job(&PollJob::new(&key("contoso"), start), &saved, &cache, &schedule, &jobs, deadline(), deadline()).await;
    assert_eq!(end, JobEnd::Done);
    // Saved with submissions on; its entry is due and a job for it arrives.
    saved.0.lock().unwrap().email_submissions.enabled = true;
    let pair = CursorKey::live("contoso", Source::EmailSubmissions);
    schedule.set(&pair, start).await.unwrap();
    let (end, summary) = w.poller.run_job(&PollJob::new(&pair, start), &saved, &cache, &schedule, &jobs, deadline(), deadline()).await;
    assert_eq!(end, JobEnd::Done, "{summary:?}");
    assert!(summary.is_some_and(|s| s.delivered > 0));
    assert!(schedule.when(&pair).is_some(), "rescheduled, not removed");
    // Turned off again: once the cached revision has expired (a fresh instance here), the job
    // drops the pair for good.
    saved.0.lock().unwrap().email_submissions.enabled = false;
    let cache = IntegrationCache::new(Duration::from_secs(3600));
    let (end, _) = w.poller.run_job(&PollJob::new(&pair, start), &saved, &cache, &schedule, &jobs, deadline(), deadline()).await;
    assert!(matches!(end, JobEnd::Dropped(_)), "{end:?}");
    assert_eq!(schedule.when(&pair), None);
}
