//! Fault injection by script and by rate, in each API's own error shape, and the request record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{fixed_scenario, Harness, CLIENT, GRAPH_SCOPE, SECRET, TENANT};
use tenant_sim::{FaultKind, FaultSpec};

const ALERTS: &str = "/v1.0/security/alerts_v2";

#[tokio::test]
async fn throttling_answers_429_with_retry_after_on_the_scripted_request() {
    let h = Harness::start(fixed_scenario()).await;
    let t = h.graph_token().await;
    h.sim.inject(FaultSpec::new(ALERTS, FaultKind::Throttle { retry_after_secs: 7 }).on(&[2]));
    assert_eq!(h.get("/v1.0/security/alerts_v2?$top=1", &t, false).await.0, 200);
    let (status, headers, body) = h.get("/v1.0/security/alerts_v2?$top=1", &t, false).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert!(body["error"]["innerError"]["request-id"].is_string());
    assert_eq!(h.get("/v1.0/security/alerts_v2?$top=1", &t, false).await.0, 200);
    let faults: Vec<Option<String>> = h.sim.requests().matching(ALERTS).into_iter().map(|r| r.fault).collect();
    assert_eq!(faults, vec![None, Some("throttle".into()), None]);
}

#[tokio::test]
async fn server_errors_fire_as_often_as_told() {
    let h = Harness::start(fixed_scenario()).await;
    let t = h.graph_token().await;
    h.sim.inject(FaultSpec::new(ALERTS, FaultKind::Status { status: 503, retry_after_secs: Some(1) }).at_rate(1.0).times(2));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, _, body) = h.get("/v1.0/security/alerts_v2?$top=1", &t, false).await;
        if status == 503 {
            assert_eq!(body["error"]["code"], "ServiceUnavailable");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, vec![503, 503, 200, 200]);
}

#[tokio::test]
async fn a_truncated_body_fails_to_read_on_the_client() {
    let h = Harness::start(fixed_scenario()).await;
    let t = h.graph_token().await;
    h.sim.inject(FaultSpec::new(ALERTS, FaultKind::Truncate).on(&[1]));
    let r = h.http.get(h.url("/v1.0/security/alerts_v2?$top=50")).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let announced: usize = r.headers()["content-length"].to_str().unwrap().parse().unwrap();
    assert!(announced > 1000);
    assert!(r.bytes().await.is_err(), "the body stops halfway");
    // The next request is whole.
    let r = h.http.get(h.url("/v1.0/security/alerts_v2?$top=50")).bearer_auth(&t).send().await.unwrap();
    assert!(r.json::<serde_json::Value>().await.is_ok());
}

#[tokio::test]
async fn a_slow_response_still_arrives_and_is_recorded() {
    let h = Harness::start(fixed_scenario()).await;
    let t = h.graph_token().await;
    h.sim.inject(FaultSpec::new(ALERTS, FaultKind::Slow { delay_ms: 200 }).on(&[1]));
    assert_eq!(h.get("/v1.0/security/alerts_v2?$top=1", &t, false).await.0, 200);
    assert_eq!(h.sim.requests().matching(ALERTS)[0].fault.as_deref(), Some("slow"));
}

#[tokio::test]
async fn token_expiry_mid_paging_needs_a_new_token_to_resume_the_same_page() {
    let h = Harness::start(fixed_scenario()).await;
    let t = h.graph_token().await;
    h.sim.inject(FaultSpec::new(ALERTS, FaultKind::ExpireToken).on(&[2]));
    let (_, _, page1) = h.get("/v1.0/security/alerts_v2?$top=100", &t, false).await;
    let next = page1["@odata.nextLink"].as_str().unwrap().to_owned();
    let (status, _, body) = h.get(&next, &t, false).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], "Lifetime validation failed, the token is expired.");
    assert_eq!(h.get(&next, &t, false).await.0, 401, "the old token stays expired");
    let fresh = h.graph_token().await;
    let (status, _, page2) = h.get(&next, &fresh, false).await;
    assert_eq!(status, 200);
    assert_ne!(page2["value"][0]["id"], page1["value"][0]["id"]);
}

#[tokio::test]
async fn the_token_endpoint_throttles_in_entras_shape() {
    let h = Harness::start(fixed_scenario()).await;
    h.sim.inject(FaultSpec::new(&format!("/{TENANT}/oauth2/"), FaultKind::Throttle { retry_after_secs: 3 }).on(&[1]));
    let r = h
        .http
        .post(h.sim.token_url(TENANT))
        .form(&[("grant_type", "client_credentials"), ("client_id", CLIENT), ("client_secret", SECRET), ("scope", GRAPH_SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS"));
    assert!(body["error_codes"].is_array());
}

#[tokio::test]
async fn faults_come_from_the_scenario_too() {
    let mut s = fixed_scenario();
    s.faults =
        vec![serde_json::from_str(r#"{"path": "/v1.0/security/incidents", "fault": {"type": "status", "status": 500}, "nth": [1]}"#)
            .unwrap()];
    let h = Harness::start(s).await;
    let t = h.graph_token().await;
    assert_eq!(h.get("/v1.0/security/incidents", &t, false).await.0, 500);
    assert_eq!(h.get("/v1.0/security/incidents", &t, false).await.0, 200);
}

#[tokio::test]
async fn the_record_has_every_request_and_no_credential() {
    let h = Harness::start(fixed_scenario()).await;
    let t = h.graph_token().await;
    h.get("/v1.0/security/alerts_v2?$top=3&$filter=severity%20eq%20'high'", &t, false).await;
    h.get("/v1.0/security/incidents?$top=2", &t, false).await;
    let all = h.sim.requests().all();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].method, "POST");
    assert_eq!(all[0].client_id.as_deref(), Some(CLIENT));
    assert_eq!(all[1].query_value("$filter"), Some("severity eq 'high'"));
    assert_eq!(all[1].client_id.as_deref(), Some(CLIENT));
    assert_eq!((all[1].status, all[2].status), (200, 200));
    assert_eq!(h.sim.requests().count("/v1.0/security/"), 2);
    let printed = format!("{all:?}");
    assert!(!printed.contains(SECRET) && !printed.contains(&t), "the record holds neither the secret nor the token");
    h.sim.requests().clear();
    assert!(h.sim.requests().all().is_empty());
}
