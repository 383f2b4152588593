//! The poll path within its limits: response bodies capped (fewer items per request instead),
//! and the Lambda deadline kept while a request hangs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::app::polling::poll::Outcome;
use m365_ingest::domain::integration::Integration;
use m365_ingest::error::GraphError;
use m365_ingest::ports::GraphApi;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::sources::{spec, SpanQuery};
use m365_ingest::{GraphTime, Source};
use support::*;
use tenant_sim::{FaultKind, FaultSpec, Scenario, Simulator};

fn owed(w: &World) -> BTreeSet<(String, GraphTime)> {
    let cut = w.now().minus(window().ingestion_delay);
    w.sim.visible_alert_versions(TENANT).into_iter().map(|(id, v)| (id, GraphTime::from_ticks(v.0))).filter(|(_, v)| *v < cut).collect()
}

fn capped(limit: usize) -> impl Fn(&str, &str) -> HttpSettings {
    move |base, ca| HttpSettings { max_body_bytes: limit, ..HttpSettings::simulator(base, ca) }
}

/// Pages over the body limit are refused as they arrive, and the poller asks for fewer items
/// until they fit: every alert arrives, none twice.
#[tokio::test]
async fn pages_over_the_body_limit_are_asked_for_in_smaller_pieces() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let sim = Arc::new(Simulator::start(fixed(Scenario::default())).await.unwrap());
    let w = world_with(sim, capped(1 << 20), RetryPolicy::quick(), PollSettings::default(), secret_creds());
    let want = owed(&w);
    let s = w.poll(Source::DefenderAlerts).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let got = w.delivered();
    assert_eq!(got.len(), want.len(), "none twice");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    let tops: BTreeSet<usize> = w
        .sim
        .requests()
        .matching("/v1.0/security/alerts_v2")
        .iter()
        .filter_map(|r| r.query_value("$top").and_then(|t| t.parse().ok()))
        .collect();
    assert!(tops.contains(&1000) && tops.iter().any(|t| *t <= 250), "halved until pages fit: {tops:?}");
}

/// An incidents page with its alerts expanded that is over the limit falls back to the
/// incidents alone and each one's alerts.
#[tokio::test]
async fn an_oversized_incidents_page_falls_back_to_alerts_per_incident() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let sim = Arc::new(Simulator::start(fixed(Scenario::default())).await.unwrap());
    let w = world_with(sim, capped(512 * 1024), RetryPolicy::quick(), PollSettings::default(), secret_creds());
    let s = w.poll(Source::DefenderIncidents).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    assert!(s.delivered > 0);
    let log = w.sim.requests();
    assert!(log.matching("/v1.0/security/incidents").iter().any(|r| r.query_value("$expand") == Some("alerts")));
    assert!(log.all().iter().any(|r| r.path.ends_with("/alerts") && r.path.contains("/incidents/")), "alerts fetched per incident");
}

/// The error names the API, the limit and the fix; nothing is retried.
#[tokio::test]
async fn the_body_limit_error_names_the_api_and_the_limit() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    // Friendly: this counts the requests made (the default's first 429 adds one).
    let sim = Simulator::start(fixed(Scenario::friendly())).await.unwrap();
    let api = MicrosoftHttp::new(&capped(10_000)(sim.base_url(), sim.ca_pem()), RetryPolicy::quick()).unwrap();
    let to = GraphTime::parse(START).unwrap();
    let q = spec(Source::DefenderAlerts).request(&SpanQuery {
        from: to.minus(Duration::from_secs(86_400)),
        to,
        top: 100,
        skip: 0,
        expand: false,
        integration: &Integration::new("i", "t", "c", "s"),
    });
    let e = api.page(&secret_creds(), &q).await.unwrap_err();
    assert!(matches!(e, GraphError::TooLarge { api: "Graph", limit: 10_000, .. }), "{e:?}");
    assert!(e.to_string().contains("more than 10000 bytes") && e.to_string().contains("fewer items"), "{e}");
    assert_eq!(sim.requests().count("/v1.0/security/alerts_v2"), 1, "not retried");
}

/// A request that hangs past the run's deadline is abandoned at the safety margin: the run
/// returns before the deadline with what it committed, and the next run goes on from there.
#[tokio::test]
async fn a_hanging_request_does_not_outlive_the_deadline() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    // Friendly: the hang is scripted on the sixth request, after whole spans were read.
    let mut s = fixed(Scenario::friendly());
    // The sixth alerts request hangs for a minute (slow responses are real time).
    s.faults = vec![FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::Slow { delay_ms: 60_000 }).on(&[6])];
    let settings = PollSettings { alert_page_size: 50, safety_margin: Duration::from_secs(2), ..PollSettings::default() };
    let w = world(s, settings, secret_creds()).await;
    let deadline = Instant::now() + Duration::from_secs(6);
    let r = w.poller.poll_one(&integration(), Source::DefenderAlerts, deadline).await;
    assert!(Instant::now() < deadline, "returned before the deadline");
    assert!(matches!(r.outcome, Outcome::Partial { ref reason } if reason.contains("deadline")), "{r:?}");
    assert!(r.watermark.is_some(), "what was read before the hang is committed: {r:?}");
    let want = owed(&w);
    let mut done = false;
    for _ in 0..10 {
        if w.poll(Source::DefenderAlerts).await.outcome == Outcome::Completed {
            done = true;
            break;
        }
    }
    assert!(done);
    assert_eq!(w.delivered().into_iter().collect::<BTreeSet<_>>(), want);
}

/// Graph's security API allows 150 requests a minute per app per tenant (throttling-limits.md;
/// the simulator's `security_limit`, shrunk here to 10 per 3 s with the poller's pace to match):
/// a poll that needs several windows' worth of requests on the unfriendly default (short pages)
/// paces itself and meets no 429 but the one the scenario scripts; unpaced, it meets the limit
/// (and gives up on it, retryably).
#[tokio::test]
async fn a_poll_longer_than_the_security_apis_limit_paces_itself_and_meets_no_429_it_could_avoid() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let limit = tenant_sim::scenario::RateSpec { requests: 10, window_secs: 3 };
    let rate = m365_ingest::ports::Rate { requests: 10, window: Duration::from_secs(3) };
    let mut unavoidable = Vec::new();
    for paced in [true, false] {
        let mut s = fixed(Scenario::default());
        s.tenants[0].alerts.count = 400;
        s.graph.security_limit = limit;
        let sim = Arc::new(Simulator::start(s).await.unwrap());
        let pace = move |base: &str, ca: &str| HttpSettings { graph_rate: paced.then_some(rate), ..HttpSettings::simulator(base, ca) };
        let w = world_with(sim, pace, RetryPolicy::quick(), PollSettings::default(), secret_creds());
        let want = owed(&w);
        let s = w.poll(Source::DefenderAlerts).await;
        let asked = w.sim.requests().matching("/v1.0/security/");
        if paced {
            assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
            assert_eq!(w.delivered().into_iter().collect::<BTreeSet<_>>(), want);
            assert!(asked.len() > 2 * limit.requests as usize, "the poll spans several windows: {}", asked.len());
        }
        let throttled = asked.iter().filter(|r| r.status == 429).count();
        let scripted = asked.iter().filter(|r| r.status == 429 && r.fault.is_some()).count();
        assert_eq!(scripted, 1, "the scenario's first-request 429");
        unavoidable.push((paced, throttled - scripted));
    }
    assert_eq!(unavoidable[0], (true, 0), "paced: no 429 from the limit");
    assert!(unavoidable[1].1 > 0, "unpaced, the simulator answers the limit: {unavoidable:?}");
}
