//! The poll use case against the tenant simulator over HTTPS, with the local adapters:
//! every visible alert version delivered, none twice, through paging, ties and faults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::adapters::local::{DirArtifactStore, StaticSecretSource};
use m365_ingest::app::polling::poll::{Outcome, Poller};
use m365_ingest::domain::alert::{HeadSpec, Item};
use m365_ingest::domain::envelope::Envelope;
use m365_ingest::domain::integration::Credentials;
use m365_ingest::error::GraphError;
use m365_ingest::ports::{CursorKey, GraphApi, Page, PageRequest, PollWith};
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::{GraphTime, Source};
use support::*;
use tenant_sim::{AlertChange, FaultKind, FaultSpec, Scenario, Simulator};

fn small_pages() -> PollSettings {
    PollSettings { alert_page_size: 50, ..PollSettings::default() }
}

/// Versions visible now whose lastUpdateDateTime is before now − delay.
fn expected_now(w: &World) -> BTreeSet<(String, GraphTime)> {
    let cut = w.now().minus(window().ingestion_delay);
    w.sim.visible_alert_versions(TENANT).into_iter().map(|(id, v)| (id, GraphTime::from_ticks(v.0))).filter(|(_, v)| *v < cut).collect()
}

fn no_duplicates(d: &[(String, GraphTime)]) {
    let mut seen = HashMap::new();
    for x in d {
        *seen.entry(x).or_insert(0) += 1;
    }
    let dups: Vec<_> = seen.into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(dups.is_empty(), "delivered twice: {dups:?}");
}

#[tokio::test]
async fn first_poll_delivers_every_visible_alert_in_the_lookback_once() {
    let w = world(fixed(Scenario::default()), small_pages(), secret_creds()).await;
    let want = expected_now(&w);
    let s = w.poll(Source::DefenderAlerts).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let got = w.delivered();
    no_duplicates(&got);
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    assert!(s.pages >= want.len() / 50);
    // The envelope carries the Microsoft object untouched.
    let e: Envelope = serde_json::from_str(&w.queue.messages()[0]).unwrap();
    assert_eq!(e.schema, "m365-ingest.intake.v1");
    let obj: serde_json::Value = serde_json::from_str(e.object.as_ref().unwrap().get()).unwrap();
    assert_eq!(obj["id"], e.id.as_str());
    assert_eq!(obj["lastUpdateDateTime"], e.version.to_string());
    // The cursor sits at the window's end: now − delay.
    let c = w.cursors.peek(&CursorKey::live("contoso", Source::DefenderAlerts)).unwrap();
    assert_eq!(c.watermark, Some(w.now().minus(window().ingestion_delay)));
}

/// On the unfriendly default (pages cut at 37 with no link, `$orderby` ignored, ties reordered,
/// a first 429) and on the friendly reading: nothing lost, nothing repeated.
#[tokio::test]
async fn polling_along_the_timeline_loses_nothing_and_repeats_nothing() {
    for friendly in [false, true] {
        let mut s = if friendly { Scenario::friendly() } else { Scenario::default() };
        s.tenants[0].alerts.update_fraction = 0.5;
        s.tenants[0].alerts.tie_size = 70; // ties bigger than a page of 50
        let w = world(fixed(s), small_pages(), secret_creds()).await;
        let mut must = BTreeSet::new();
        for _ in 0..20 {
            must.extend(expected_now(&w));
            let s = w.poll(Source::DefenderAlerts).await;
            assert!(matches!(s.outcome, Outcome::Completed | Outcome::Skipped { .. }), "{s:?}");
            w.sim.clock().advance_secs(17 * 60);
        }
        let got = w.delivered();
        no_duplicates(&got);
        let got: BTreeSet<_> = got.into_iter().collect();
        let missing: Vec<_> = must.difference(&got).collect();
        assert!(missing.is_empty(), "friendly {friendly}: missing {} versions, e.g. {:?}", missing.len(), missing.first());
        if friendly {
            // The ties were bigger than a page: paging went through them with Graph's link.
            assert!(w.sim.requests().matching("/v1.0/security/alerts_v2").iter().any(|r| r.query_value("$skiptoken").is_some()));
        }
    }
}

#[tokio::test]
async fn faults_cost_retries_not_alerts() {
    let s = Scenario {
        faults: vec![
            FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::Throttle { retry_after_secs: 1 }).at_rate(0.15),
            FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::Status { status: 503, retry_after_secs: None }).at_rate(0.1),
            FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::Truncate).at_rate(0.1),
            FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::ExpireToken).on(&[4]),
            FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::Slow { delay_ms: 20 }).at_rate(0.1),
        ],
        ..Scenario::default()
    };
    let w = world(fixed(s), small_pages(), secret_creds()).await;
    let want = expected_now(&w);
    let s = w.poll(Source::DefenderAlerts).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let got = w.delivered();
    no_duplicates(&got);
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    let log = w.sim.requests().matching("/v1.0/security/alerts_v2");
    assert!(log.iter().any(|r| r.status == 429) && log.iter().any(|r| r.status == 401));
    // One token refresh after the expiry, not one per page.
    assert!(w.sim.requests().count(&format!("/{TENANT}/oauth2/v2.0/token")) <= 3);
}

#[tokio::test]
async fn paging_needs_no_next_link() {
    let mut s = Scenario::default();
    s.graph.omit_next_link = true;
    s.tenants[0].alerts.tie_size = 120; // a tie longer than two pages of 50
    let w = world(fixed(s), small_pages(), secret_creds()).await;
    let want = expected_now(&w);
    assert_eq!(w.poll(Source::DefenderAlerts).await.outcome, Outcome::Completed);
    let got = w.delivered();
    no_duplicates(&got);
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    // Without links, a page of one timestamp is paged with $skip.
    assert!(w.sim.requests().matching("/v1.0/security/alerts_v2").iter().any(|r| r.query_value("$skip").is_some()));
}

#[tokio::test]
async fn a_second_run_waits_for_the_lease() {
    let w = world(fixed(Scenario::default()), PollSettings::default(), secret_creds()).await;
    use m365_ingest::ports::CursorStore;
    let key = CursorKey::live("contoso", Source::DefenderAlerts);
    let now = w.now();
    w.cursors.acquire(&key, "someone-else", now, now.plus(Duration::from_secs(60))).await.unwrap();
    let s = w.poll(Source::DefenderAlerts).await;
    assert!(matches!(s.outcome, Outcome::Skipped { ref reason } if reason.contains("lease")), "{s:?}");
    assert!(w.queue.is_empty());
    // Once it expires, the next run proceeds.
    w.sim.clock().advance_secs(61);
    assert_eq!(w.poll(Source::DefenderAlerts).await.outcome, Outcome::Completed);
}

#[tokio::test]
async fn incidents_mode_delivers_incidents_with_their_alerts_even_when_expand_fails() {
    let mut s = Scenario::default();
    s.graph.expand_alert_limit = 30;
    let w = world(fixed(s), PollSettings::default(), secret_creds()).await;
    let sum = w.poll(Source::DefenderIncidents).await;
    assert_eq!(sum.outcome, Outcome::Completed, "{sum:?}");
    assert!(sum.delivered > 50);
    for m in w.queue.messages() {
        let e: Envelope = serde_json::from_str(&m).unwrap();
        assert_eq!(e.source, Source::DefenderIncidents);
        let inc: serde_json::Value = serde_json::from_str(e.object.unwrap().get()).unwrap();
        let alerts = inc["alerts"].as_array().expect("alerts attached");
        assert!(alerts.iter().all(|a| a["incidentId"] == inc["id"]));
    }
    assert!(w.sim.requests().count("/v1.0/security/incidents/") > 0, "fell back to per-incident alerts");
}

#[tokio::test]
async fn an_integration_is_polled_only_when_its_interval_has_passed() {
    let w = world(fixed(Scenario::default()), PollSettings::default(), secret_creds()).await;
    let mut i = integration();
    i.poll_interval = Duration::from_secs(300);
    let deadline = || std::time::Instant::now() + Duration::from_secs(60);
    assert_eq!(w.poller.poll_one(&i, Source::DefenderAlerts, deadline()).await.outcome, Outcome::Completed);
    w.sim.clock().advance_secs(120);
    let s = w.poller.poll_one(&i, Source::DefenderAlerts, deadline()).await;
    assert_eq!(s.outcome, Outcome::Skipped { reason: "not due yet".into() });
    w.sim.clock().advance_secs(180);
    assert_eq!(w.poller.poll_one(&i, Source::DefenderAlerts, deadline()).await.outcome, Outcome::Completed);
    // A disabled integration, or one in the other mode, is not polled at all.
    i.enabled = false;
    assert!(w.poller.poll_all(Source::DefenderAlerts, &[i.clone()], deadline()).await.is_empty());
    i.enabled = true;
    assert!(w.poller.poll_all(Source::DefenderIncidents, &[i], deadline()).await.is_empty());
}

/// Graph as the simulator serves it, where one alert is updated (and so leaves the span) right
/// after the first page of the first span that takes more than one response.
struct UpdatedBetweenPages {
    inner: MicrosoftHttp,
    sim: Arc<Simulator>,
    /// Spans counted up to this (three pages of 50) are the ones a chain of pages would read.
    chained_up_to: usize,
    moved: Arc<Mutex<Option<String>>>,
}

impl GraphApi for UpdatedBetweenPages {
    async fn page(&self, creds: &Credentials, request: &PageRequest) -> Result<Page, GraphError> {
        let page = self.inner.page(creds, request).await?;
        let chained = page.count.is_some_and(|c| c > page.items.len() && c <= self.chained_up_to);
        let mut moved = self.moved.lock().unwrap();
        if chained && moved.is_none() {
            let first = page.items[0].head.id.clone();
            // Someone changes its status now: its new version is past the window's end.
            self.sim.update_alert(TENANT, &first, AlertChange { status: Some("inProgress"), ..Default::default() }, 0);
            *moved = Some(first);
        }
        Ok(page)
    }
    async fn collection(&self, creds: &Credentials, path: &str, head: HeadSpec) -> Result<Vec<Item>, GraphError> {
        self.inner.collection(creds, path, head).await
    }
    async fn item(&self, creds: &Credentials, path: &str, head: HeadSpec) -> Result<Option<Item>, GraphError> {
        self.inner.item(creds, path, head).await
    }
    async fn content(&self, creds: &Credentials, path: &str) -> Result<Option<Vec<u8>>, GraphError> {
        self.inner.content(creds, path).await
    }
}

/// A chain of pages is not a snapshot: an alert updated between two pages leaves the span, the
/// offsets behind it shift by one, and the alert that moved into the gap was never served while
/// the distinct items still reached the latest count (a soak lost one this way). A count proves
/// only the response it came with.
#[tokio::test]
async fn an_alert_leaving_the_span_between_two_pages_hides_no_other() {
    for omit_next_link in [false, true] {
        let mut s = fixed(Scenario::default());
        s.graph.omit_next_link = omit_next_link;
        let sim = Arc::new(Simulator::start(s).await.unwrap());
        let w = world_with(sim.clone(), HttpSettings::simulator, RetryPolicy::quick(), small_pages(), secret_creds());
        let want = expected_now(&w);
        let moved = Arc::new(Mutex::new(None));
        let graph = UpdatedBetweenPages {
            inner: MicrosoftHttp::new(&HttpSettings::simulator(sim.base_url(), sim.ca_pem()), RetryPolicy::quick()).unwrap(),
            sim: sim.clone(),
            chained_up_to: 150,
            moved: moved.clone(),
        };
        let poller: Poller<PollWith<_, _, _, _, _, _>> = Poller {
            graph,
            cursors: w.cursors.clone(),
            queue: w.queue.clone(),
            artifacts: DirArtifactStore::new(w.dir.path().to_owned()),
            secrets: StaticSecretSource::new().with("contoso-secret", secret_creds()),
            clock: SimTime(sim.clone()),
            settings: small_pages(),
        };
        let run = poller
            .poll_one(
                &integration_for(Source::DefenderAlerts),
                Source::DefenderAlerts,
                std::time::Instant::now() + Duration::from_secs(600),
            )
            .await;
        assert_eq!(run.outcome, Outcome::Completed, "{run:?}");
        let moved: String = moved.lock().unwrap().clone().expect("a span was read in more than one response");
        let got: BTreeSet<_> = w.delivered().into_iter().collect();
        // The moved alert's old version may or may not have been read before it moved; its new
        // one is the next run's. Every other version must be here.
        let missing: Vec<_> = want.iter().filter(|(id, _)| *id != moved).filter(|v| !got.contains(*v)).collect();
        assert!(missing.is_empty(), "next links {}: {} lost, e.g. {:?}", !omit_next_link, missing.len(), missing.first());
    }
}
