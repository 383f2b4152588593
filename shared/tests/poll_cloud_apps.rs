//! The Cloud Apps source end to end against the simulator: the cursor protocol over
//! millisecond timestamps, paging by skip/limit ≤ 100 with hasNext, ties larger than a page,
//! the per-tenant pace of 30 requests a minute, and 429s without Retry-After.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use m365_ingest::adapters::graph::{HttpSettings, RetryPolicy};
use m365_ingest::app::polling::poll::Outcome;
use m365_ingest::domain::envelope::Envelope;
use m365_ingest::ports::GraphApi;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::{GraphTime, Source};
use support::*;
use tenant_sim::scenario::CloudAppsSpec;
use tenant_sim::{Scenario, Simulator};

const ALERTS: &str = "/api/v1/alerts/";

fn scenario(count: usize) -> Scenario {
    let mut s = fixed(Scenario::default());
    s.tenants[0].cloud_apps.count = count;
    s.tenants[0].cloud_apps.tie_groups = 1;
    // One millisecond shared by more alerts than a page holds: paging must skip within it.
    s.tenants[0].cloud_apps.tie_size = 130;
    s.tenants[0].alerts.count = 10;
    s.tenants[0].alerts.incidents = 2;
    s
}

/// Alerts the window of a poll at `now` must deliver: older than the ingestion delay, inside the lookback.
fn due(sim: &Simulator, now: GraphTime) -> BTreeSet<String> {
    let w = window();
    let (from, to) = (now.minus(w.lookback).unix_millis(), now.minus(w.ingestion_delay));
    sim.visible_cloud_apps_alerts(TENANT)
        .into_iter()
        .filter(|(_, ts)| *ts >= from && GraphTime::from_unix_millis(*ts) < to)
        .map(|(id, _)| id)
        .collect()
}

fn delivered(w: &World) -> Vec<Envelope> {
    w.queue.messages().iter().map(|m| serde_json::from_str::<Envelope>(m).unwrap()).collect()
}

#[tokio::test]
async fn a_window_of_hundreds_with_a_large_tie_is_delivered_once_each() {
    let w = world(scenario(420), PollSettings::default(), secret_creds()).await;
    let s = w.poll(Source::CloudApps).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let want = due(&w.sim, w.now());
    assert!(want.len() > 300, "{}", want.len());
    let got: Vec<Envelope> = delivered(&w);
    let ids: BTreeSet<String> = got.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), got.len(), "no duplicates");
    assert_eq!(ids, want, "every due alert, nothing else");
    assert!(got.iter().all(|e| e.source == Source::CloudApps && e.object.as_ref().is_some_and(|o| o.get().contains("\"_id\""))));
    assert!(got.windows(2).all(|p| p[0].version <= p[1].version), "oldest first");
    let calls = w.sim.requests().matching(ALERTS);
    assert!(calls.len() >= want.len().div_ceil(100), "pages of at most 100: {} calls", calls.len());
    assert!(calls.iter().all(|c| c.method == "POST" && c.status == 200));

    // A later run reads only what is new; the overlap's re-reads are suppressed.
    w.sim.clock().advance_secs(600);
    let fresh: BTreeSet<String> = w.sim.raise_cloud_apps_alerts(TENANT, 7, 30).into_iter().collect();
    w.sim.clock().advance_secs(400);
    let before = w.queue.messages().len();
    let s = w.poll(Source::CloudApps).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let new: BTreeSet<String> = delivered(&w)[before..].iter().map(|e| e.id.clone()).collect();
    // The raised alerts, and timeline alerts that came due in the meantime; nothing again.
    let expected: BTreeSet<String> = due(&w.sim, w.now()).difference(&ids).cloned().collect();
    assert!(fresh.is_subset(&new), "{fresh:?} not in {new:?}");
    assert_eq!(new, expected);
    assert_eq!(delivered(&w).len(), before + new.len(), "no duplicates");
    assert!(s.suppressed > 0, "the overlap re-read delivered alerts and skipped them");
}

#[tokio::test]
async fn the_client_keeps_to_the_tenants_pace_without_a_single_429() {
    let s = scenario(260);
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let sim = Arc::new(Simulator::start(s).await.unwrap());
    sim.set_cloud_apps_spec(CloudAppsSpec { requests_per_window: 2, window_secs: 1, ..CloudAppsSpec::default() });
    // The server counts on arrival: a little slack keeps jitter under load from looking like a burst.
    let paced =
        |base: &str, ca: &str| HttpSettings { cloud_apps_rate: (2, Duration::from_millis(1300)), ..HttpSettings::simulator(base, ca) };
    let w = world_with(sim, paced, RetryPolicy::quick(), PollSettings::default(), secret_creds());
    let s = w.poll(Source::CloudApps).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let calls = w.sim.requests().matching(ALERTS);
    assert!(calls.len() >= 3);
    assert!(calls.iter().all(|c| c.status == 200), "{:?}", calls.iter().map(|c| c.status).collect::<Vec<_>>());
    assert_eq!(w.poller.graph.counters(m365_ingest::domain::permissions::Api::CloudApps).0, 0);
    assert_eq!(delivered(&w).len(), due(&w.sim, w.now()).len());
}

#[tokio::test]
async fn a_429_without_retry_after_waits_a_window_and_the_run_completes() {
    let s = scenario(260);
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let sim = Arc::new(Simulator::start(s).await.unwrap());
    // Someone else spends the tenant's quota: the server allows fewer calls than our pace.
    sim.set_cloud_apps_spec(CloudAppsSpec { requests_per_window: 2, window_secs: 1, ..CloudAppsSpec::default() });
    let loose = |base: &str, ca: &str| HttpSettings { cloud_apps_rate: (100, Duration::from_secs(1)), ..HttpSettings::simulator(base, ca) };
    let policy = RetryPolicy { cap: Duration::from_secs(2), budget: Duration::from_secs(30), ..RetryPolicy::quick() };
    let w = world_with(sim, loose, policy, PollSettings::default(), secret_creds());
    let s = w.poll(Source::CloudApps).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let statuses: Vec<u16> = w.sim.requests().matching(ALERTS).iter().map(|c| c.status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(w.poller.graph.counters(m365_ingest::domain::permissions::Api::CloudApps).0 > 0, "throttling is counted for the metric");
    let ids: BTreeSet<String> = delivered(&w).iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, due(&w.sim, w.now()));
}

#[tokio::test]
async fn without_a_portal_url_cloud_apps_is_not_polled() {
    let w = world(scenario(20), PollSettings::default(), secret_creds()).await;
    let mut i = integration_for(Source::CloudApps);
    i.cloud_apps_base = None;
    assert!(!i.polls(Source::CloudApps));
    let i = integration_for(Source::CloudApps);
    assert!(i.polls(Source::CloudApps) && !i.polls(Source::DefenderAlerts));
    assert!(w.sim.requests().matching(ALERTS).is_empty());
}
