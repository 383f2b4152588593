//! Investigation queries (issue 14) against the simulated tenant: Advanced Hunting with its row
//! cap, Cloud Apps activities of a user in a window, context on demand, input refused with the
//! field named, a feature left off refused, and the tenant's throttling surfaced as a retryable
//! error with Microsoft's wait.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use m365_ingest::adapters::graph::context::MicrosoftContext;
use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::adapters::local::{StaticIntegrations, StaticSecretSource};
use m365_ingest::app::processing::enrich::{EnrichSettings, Enricher};
use m365_ingest::app::response::investigate::Investigator;
use m365_ingest::domain::integration::sections::FeaturesDoc;
use m365_ingest::domain::integration::Integration;
use m365_ingest::ports::investigation::InvestigateWith;
use serde_json::json;
use support::*;
use tenant_sim::faults::{FaultKind, FaultSpec};
use tenant_sim::{Scenario, Simulator};

type Local = Investigator<InvestigateWith<MicrosoftHttp, StaticSecretSource, StaticIntegrations, SimTime>>;

async fn investigator(features: FeaturesDoc) -> (Arc<Simulator>, Local) {
    investigator_in(Scenario::default(), features).await
}

async fn investigator_in(mut s: Scenario, features: FeaturesDoc) -> (Arc<Simulator>, Local) {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    s.tenants[0].cloud_apps.count = 5;
    let sim = Arc::new(Simulator::start(fixed(s)).await.unwrap());
    let mut i: Integration = integration();
    i.features = features;
    i.cloud_apps_base = Some(PORTAL.into());
    let http = HttpSettings::simulator(sim.base_url(), sim.ca_pem());
    let secrets = || StaticSecretSource::new().with("contoso-secret", secret_creds());
    let context = Enricher::new(
        Arc::new(MicrosoftContext::new(MicrosoftHttp::new(&http, RetryPolicy::context()).unwrap(), secrets(), Duration::from_secs(2))),
        EnrichSettings::default(),
    );
    let inv = Investigator {
        api: MicrosoftHttp::new(&http, RetryPolicy::context()).unwrap(),
        secrets: secrets(),
        integrations: StaticIntegrations(vec![i]),
        clock: SimTime(sim.clone()),
        context: Some(context),
    };
    (sim, inv)
}

fn all_on() -> FeaturesDoc {
    FeaturesDoc { investigation: true, user_context: true, device_context: true, ..FeaturesDoc::default() }
}

#[tokio::test]
async fn a_hunting_query_answers_rows_with_their_schema_capped() {
    let (_sim, inv) = investigator(all_on()).await;
    let r = inv
        .run(json!({"kind": "hunting", "integration_id": "contoso", "query": "AlertInfo | where Severity == \"high\" | project AlertId, Title, Severity | take 5"}))
        .await;
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.schema.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["AlertId", "Title", "Severity"]);
    assert!(!r.rows.is_empty() && r.rows.len() <= 5);
    assert!(r.rows.iter().all(|row| row["Severity"] == "high" && row.get("Category").is_none()));
    let capped = inv.run(json!({"kind": "hunting", "integration_id": "contoso", "query": "IdentityInfo", "max_rows": 3})).await;
    assert_eq!((capped.rows.len(), capped.truncated), (3, true));
}

#[tokio::test]
async fn bad_input_and_a_feature_left_off_are_refused_before_microsoft_is_asked() {
    let (sim, inv) = investigator(FeaturesDoc { user_context: true, ..FeaturesDoc::default() }).await;
    let r = inv.run(json!({"kind": "hunting", "integration_id": "contoso", "query": "", "hours": 5000})).await;
    let e = r.error.unwrap();
    assert_eq!((e.code.as_str(), e.retryable), ("invalid_query", false));
    assert!(e.message.contains("query:") && e.message.contains("hours:"), "{}", e.message);
    let off = inv.run(json!({"kind": "hunting", "integration_id": "contoso", "query": "AlertInfo | take 1"})).await;
    assert_eq!(off.error.unwrap().code, "feature_disabled");
    let unknown = inv.run(json!({"kind": "hunting", "integration_id": "nobody", "query": "AlertInfo"})).await;
    assert_eq!(unknown.error.unwrap().code, "unknown_integration");
    assert_eq!(sim.requests().count("/v1.0/security/runHuntingQuery"), 0);
}

#[tokio::test]
async fn throttling_is_a_retryable_error_with_microsofts_wait() {
    let (sim, inv) = investigator(all_on()).await;
    sim.inject(FaultSpec::new("/v1.0/security/runHuntingQuery", FaultKind::Throttle { retry_after_secs: 40 }).at_rate(1.0));
    let started = std::time::Instant::now();
    let r = inv.run(json!({"kind": "hunting", "integration_id": "contoso", "query": "AlertInfo | take 1"})).await;
    let e = r.error.unwrap();
    assert_eq!((e.code.as_str(), e.retryable, e.retry_after_secs), ("throttled", true, Some(40)));
    assert!(started.elapsed() < Duration::from_secs(5), "not waited out: {:?}", started.elapsed());
    assert_eq!(sim.requests().count("/v1.0/security/runHuntingQuery"), 1, "never sooner than asked");
}

/// Advanced hunting's other quotas, answered as Microsoft answers them (security-api-overview.md,
/// run-advanced-query-api.md): a tenant past its CPU allocation waits for the next 15-minute
/// cycle (429, the wait said), and a result past the size cap is a 400 the caller can act on.
#[tokio::test]
async fn the_cpu_quota_says_when_to_ask_again_and_an_oversized_result_says_how_to_ask_less() {
    let mut s = Scenario::default();
    s.graph.hunting.cpu_ms_per_cycle = 1;
    let (_sim, inv) = investigator_in(s, all_on()).await;
    let q = json!({"kind": "hunting", "integration_id": "contoso", "query": "AlertInfo | take 1"});
    assert!(inv.run(q.clone()).await.error.is_none(), "the first query spends the allocation");
    let e = inv.run(q).await.error.unwrap();
    assert_eq!((e.code.as_str(), e.retryable), ("throttled", true), "{e:?}");
    let wait = e.retry_after_secs.unwrap();
    assert!(wait > 1 && wait <= 15 * 60, "until the next 15-minute cycle: {wait}");
    assert!(e.message.contains("processing resources"), "{}", e.message);

    let mut s = Scenario::default();
    s.graph.hunting.max_result_bytes = 2_000;
    let (_sim, inv) = investigator_in(s, all_on()).await;
    let e = inv.run(json!({"kind": "hunting", "integration_id": "contoso", "query": "AlertInfo"})).await.error.unwrap();
    assert_eq!((e.code.as_str(), e.retryable), ("result_too_large", false), "{e:?}");
    assert!(e.message.contains("project") && e.message.contains("take"), "{}", e.message);
}

#[tokio::test]
async fn cloud_apps_activities_of_a_user_in_a_window() {
    let (sim, inv) = investigator(all_on()).await;
    let user = sim.people(TENANT)[2].1.clone();
    let now = m365_ingest::GraphTime::from_ticks(sim.clock().now().0);
    let from = now.minus(Duration::from_secs(2 * 86_400));
    let r = inv
        .run(json!({"kind": "cloud_apps_activities", "integration_id": "contoso", "user": user, "from": from.to_string(), "to": now.to_string(), "limit": 150}))
        .await;
    assert!(r.error.is_none(), "{:?}", r.error);
    assert!(r.rows.len() > 10, "{}", r.rows.len());
    for a in &r.rows {
        assert_eq!(a["user"]["userName"].as_str(), Some(user.as_str()));
        let t = a["timestamp"].as_i64().unwrap();
        assert!(t >= from.unix_millis() && t <= now.unix_millis());
    }
    // Fewer than a page of 100: one request.
    assert!(r.rows.len() < 100 && !r.truncated);
    assert_eq!(sim.requests().count("/api/v1/activities"), 1);
}

#[tokio::test]
async fn context_on_demand_is_what_alerts_carry() {
    let (sim, inv) = investigator(all_on()).await;
    let admin = sim.people(TENANT)[0].1.clone();
    let r = inv.run(json!({"kind": "context", "integration_id": "contoso", "users": [admin]})).await;
    assert!(r.error.is_none(), "{:?}", r.error);
    let c = &r.rows[0];
    assert_eq!(c["users"][0]["is_admin"], true);
    assert_eq!(c["enrichment"]["profile"]["status"], "ok");
}
