//! The Graph client alone against the simulator: what it retries, how long it waits, what it
//! refuses to retry, and what it sends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use m365_ingest::adapters::graph::{Audience, HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::domain::integration::Integration;
use m365_ingest::error::GraphError;
use m365_ingest::ports::{GraphApi, PageRequest};
use m365_ingest::sources::{spec, SpanQuery, GRAPH_SECURITY_HEAD};
use m365_ingest::{GraphTime, Source};
use support::*;
use tenant_sim::{FaultKind, FaultSpec, Scenario, Simulator};

const ALERTS: &str = "/v1.0/security/alerts_v2";

async fn client(timeout: Duration) -> (Simulator, MicrosoftHttp) {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    // Friendly: each test scripts its faults by request number and checks the exact sequence.
    let sim = Simulator::start(fixed(Scenario::friendly())).await.unwrap();
    let http = HttpSettings {
        login_base_url: sim.base_url().into(),
        graph_base_url: sim.base_url().into(),
        extra_ca_pem: Some(sim.ca_pem().into()),
        request_timeout: timeout,
        // Paced at Graph's 150 a minute, as deployed: the simulator answers the limit.
        ..HttpSettings::default()
    };
    let api = MicrosoftHttp::new(&http, RetryPolicy::quick()).unwrap();
    (sim, api)
}

fn query() -> PageRequest {
    let to = GraphTime::parse(START).unwrap();
    alerts_query(to.minus(Duration::from_secs(86_400)), to, 10)
}

/// The request the Defender alerts source makes for `[from, to)`.
fn alerts_query(from: GraphTime, to: GraphTime, top: usize) -> PageRequest {
    spec(Source::DefenderAlerts).request(&SpanQuery {
        from,
        to,
        top,
        skip: 0,
        expand: false,
        integration: &Integration::new("i", "t", "c", "s"),
    })
}

#[tokio::test]
async fn sends_the_window_filter_order_and_prefer_header() {
    let (sim, api) = client(Duration::from_secs(30)).await;
    let page = api.page(&secret_creds(), &query()).await.unwrap();
    assert_eq!(page.items.len(), 10);
    let r = &sim.requests().matching(ALERTS)[0];
    assert_eq!(
        r.query_value("$filter"),
        Some("lastUpdateDateTime ge 2026-11-25T12:00:00.0000000Z and lastUpdateDateTime lt 2026-11-26T12:00:00.0000000Z")
    );
    assert_eq!(r.query_value("$orderby"), Some("lastUpdateDateTime asc"));
    assert_eq!(r.query_value("$top"), Some("10"));
    assert_eq!(r.query_value("$skip"), None);
    // With the Prefer header, newer enum members arrive as themselves.
    let to = GraphTime::parse(START).unwrap();
    let all = api.page(&secret_creds(), &alerts_query(to.minus(Duration::from_secs(86_400)), to, 1000)).await.unwrap();
    assert!(!all.items.iter().any(|i| i.raw.get().contains("\"serviceSource\":\"unknownFutureValue\"")));
}

#[tokio::test]
async fn timeouts_and_cut_bodies_are_retried() {
    let (sim, api) = client(Duration::from_millis(300)).await;
    sim.inject(FaultSpec::new(ALERTS, FaultKind::Slow { delay_ms: 2_000 }).on(&[1]));
    sim.inject(FaultSpec::new(ALERTS, FaultKind::Truncate).on(&[2]));
    let page = api.page(&secret_creds(), &query()).await.unwrap();
    assert_eq!(page.items.len(), 10);
    // The simulator records the slow request when it finally answers, after the client gave up.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let mut faults: Vec<Option<String>> = sim.requests().matching(ALERTS).into_iter().map(|r| r.fault).collect();
    faults.sort();
    assert_eq!(faults, vec![None, Some("slow".into()), Some("truncate".into())]);
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_retries_the_same_page() {
    let (sim, api) = client(Duration::from_secs(30)).await;
    api.page(&secret_creds(), &query()).await.unwrap();
    sim.inject(FaultSpec::new(ALERTS, FaultKind::ExpireToken).on(&[1]));
    let token_calls = || sim.requests().count("/6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b/oauth2/v2.0/token");
    assert_eq!(token_calls(), 1);
    api.page(&secret_creds(), &query()).await.unwrap();
    assert_eq!(token_calls(), 2, "one new token");
    let log = sim.requests().matching(ALERTS);
    assert_eq!(log.iter().map(|r| r.status).collect::<Vec<_>>(), vec![200, 401, 200]);
    assert_eq!(log[1].query, log[2].query, "the same page again");
}

#[tokio::test]
async fn throttling_gives_up_within_its_bounds() {
    let (sim, api) = client(Duration::from_secs(30)).await;
    sim.inject(FaultSpec::new(ALERTS, FaultKind::Throttle { retry_after_secs: 1 }));
    let e = api.page(&secret_creds(), &query()).await.unwrap_err();
    assert!(matches!(e, GraphError::Throttled { attempts: 6, .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(sim.requests().count(ALERTS), 6, "RetryPolicy::quick allows 6 attempts");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let (sim, api) = client(Duration::from_secs(30)).await;
    let bad = PageRequest::Link { url: format!("{}/v1.0/security/alerts_v2?$skip=501", sim.base_url()), head: GRAPH_SECURITY_HEAD };
    let e = api.page(&secret_creds(), &bad).await.unwrap_err();
    assert!(matches!(&e, GraphError::Http { status: 400, code, .. } if code == "BadRequest"), "{e:?}");
    assert!(!e.is_retryable());
    assert_eq!(sim.requests().count(ALERTS), 1);
}

#[tokio::test]
async fn tokens_are_cached_per_audience_and_their_roles_kept() {
    let (sim, api) = client(Duration::from_secs(30)).await;
    for _ in 0..3 {
        api.page(&secret_creds(), &query()).await.unwrap();
    }
    assert_eq!(sim.requests().count("/6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b/oauth2/v2.0/token"), 1);
    let roles = api.tokens().roles(&secret_creds(), Audience::Graph).await.unwrap().unwrap();
    assert!(roles.contains(&"SecurityAlert.Read.All".to_owned()));
    api.tokens().token(&secret_creds(), Audience::CloudApps).await.unwrap();
    assert_eq!(sim.requests().count("/6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b/oauth2/v2.0/token"), 2, "another audience, another token");
}

/// A nextLink to any other origin (another host, port or scheme, or user info) is refused before
/// a connection is made, so the bearer token never reaches it.
#[tokio::test]
async fn a_link_to_another_origin_is_refused_and_gets_no_token() {
    let (sim, api) = client(Duration::from_secs(30)).await;
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let port = trap.local_addr().unwrap().port();
    let base = sim.base_url().trim_end_matches('/').to_owned();
    let hostile = [
        format!("https://127.0.0.1:{port}/v1.0/security/alerts_v2?$skiptoken=x"),
        format!("https://localhost:{port}/v1.0/security/alerts_v2"),
        format!("{}/v1.0/security/alerts_v2", base.replacen("https://", "http://", 1)),
        format!("{}/v1.0/security/alerts_v2", base.replacen("https://", "https://evil@", 1)),
        "not a url".to_owned(),
    ];
    for link in hostile {
        let e = api.page(&secret_creds(), &PageRequest::Link { url: link.clone(), head: GRAPH_SECURITY_HEAD }).await.unwrap_err();
        assert!(matches!(e, GraphError::Paging(m365_ingest::domain::polling::window::PagingError::ForeignLink { .. })), "{link}: {e:?}");
        assert!(!e.is_retryable());
    }
    assert!(trap.accept().is_err(), "nothing connected to the hostile origin");
    assert!(sim.requests().matching(ALERTS).is_empty());
    // The configured origin is followed.
    let own = format!("{base}/v1.0/security/alerts_v2?$top=5");
    assert_eq!(api.page(&secret_creds(), &PageRequest::Link { url: own, head: GRAPH_SECURITY_HEAD }).await.unwrap().items.len(), 5);
}

/// Exchange's cmdlets are paced at 25 per 5 s per app and tenant (the budget the simulator
/// enforces: `ExchangeMaxCmdlets`, New-ThrottlingPolicy.md): forty lookups at once, as a
/// processor's evidence jobs for a burst of quarantined emails would make them, meet no 429;
/// unpaced, the same burst does.
#[tokio::test]
async fn a_burst_of_quarantine_lookups_keeps_to_exchanges_cmdlet_budget() {
    use m365_ingest::ports::EvidenceApi;
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let cert = tenant_sim::testing::ClientCertificate::generate(41).unwrap();
    let mut throttled = Vec::new();
    for paced in [true, false] {
        // On the real clock: a certificate's assertion is dated now.
        let mut s = Scenario::default();
        s.tenants[0].apps[0].certificates =
            vec![tenant_sim::scenario::CertificateSpec { pem: Some(cert.cert_pem.clone()), pem_file: None }];
        let sim = Simulator::start(s).await.unwrap();
        let mut http = HttpSettings::simulator(sim.base_url(), sim.ca_pem());
        if !paced {
            http.exchange_rate = None;
        }
        let api = MicrosoftHttp::new(&http, RetryPolicy::quick()).unwrap();
        let creds = cert_creds(&cert);
        let since = GraphTime::now().minus(Duration::from_secs(30 * 86_400));
        // A token first, so the burst is the lookups alone (a cold token spreads them out).
        api.find_quarantined(&creds, "contoso.onmicrosoft.com", "<warm@x>", "a@contoso.onmicrosoft.com", since).await.unwrap();
        let lookups =
            (0..40).map(|i| {
                let (api, creds) = (&api, &creds);
                async move {
                    api.find_quarantined(creds, "contoso.onmicrosoft.com", &format!("<m{i}@x>"), "a@contoso.onmicrosoft.com", since).await
                }
            });
        let answers = futures_util::future::join_all(lookups).await;
        let asked = sim.requests().matching("/adminapi/beta/");
        throttled.push(asked.iter().filter(|r| r.status == 429).count());
        if paced {
            assert!(answers.iter().all(|a| a.as_ref().is_ok_and(Vec::is_empty)), "{answers:?}");
            assert_eq!(asked.len(), 41, "one call each");
        }
    }
    assert_eq!(throttled[0], 0, "paced");
    assert!(throttled[1] > 0, "unpaced, the simulator throttles the burst: {throttled:?}");
}
