//! Every Microsoft doc sample in scope comes back from the simulator exactly as published.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{fixed_scenario, fixture, fixture_path, Harness, TENANT};
use serde_json::Value;
use tenant_sim::Scenario;

fn seeded(file: &str) -> Scenario {
    let mut s = fixed_scenario();
    s.tenants[0].alerts.count = 0;
    s.tenants[0].seed_files = vec![fixture_path(file)];
    s
}

/// Byte-for-byte comparison of the JSON text (key order included).
fn same(a: &Value, b: &Value) {
    assert_eq!(serde_json::to_string_pretty(a).unwrap(), serde_json::to_string_pretty(b).unwrap());
}

#[tokio::test]
async fn alerts_v2_list_sample_is_served_identically() {
    let h = Harness::start(seeded("graph_alerts_v2_list.json")).await;
    let t = h.graph_token().await;
    let (status, headers, body) = h.get("/v1.0/security/alerts_v2", &t, true).await;
    assert_eq!(status, 200);
    same(&body["value"], &fixture("graph_alerts_v2_list.json")["value"]);
    assert_eq!(body["@odata.context"], format!("{}/v1.0/$metadata#security/alerts_v2", h.sim.base_url()));
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/json;odata.metadata=minimal"));
    assert!(headers.contains_key("request-id"));
}

#[tokio::test]
async fn single_alert_get_returns_the_sample_object() {
    let h = Harness::start(seeded("graph_alerts_v2_list.json")).await;
    let t = h.graph_token().await;
    let want = fixture("graph_alerts_v2_list.json")["value"][0].clone();
    let id = want["id"].as_str().unwrap();
    let (status, _, mut body) = h.get(&format!("/v1.0/security/alerts_v2/{id}"), &t, true).await;
    assert_eq!(status, 200);
    let ctx = body.as_object_mut().unwrap().shift_remove("@odata.context");
    assert_eq!(ctx, Some(Value::String(format!("{}/v1.0/$metadata#security/alerts_v2/$entity", h.sim.base_url()))));
    same(&body, &want);
    let (status, _, body) = h.get("/v1.0/security/alerts_v2/nope", &t, true).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NotFound")));
}

#[tokio::test]
async fn sentinel_sample_needs_the_prefer_header_for_its_newer_enum_members() {
    let h = Harness::start(seeded("graph_alerts_v2_list_sentinel.json")).await;
    let t = h.graph_token().await;
    let want = fixture("graph_alerts_v2_list_sentinel.json");
    let (_, headers, body) = h.get("/v1.0/security/alerts_v2", &t, true).await;
    same(&body["value"], &want["value"]);
    assert_eq!(headers["preference-applied"], "include-unknown-enum-members");

    // Without the header Graph substitutes unknownFutureValue for members after it.
    let (_, headers, body) = h.get("/v1.0/security/alerts_v2", &t, false).await;
    assert!(!headers.contains_key("preference-applied"));
    let a = &body["value"][0];
    assert_eq!(a["serviceSource"], "unknownFutureValue");
    assert_eq!(a["detectionSource"], "unknownFutureValue");
    let mut masked = want["value"][0].clone();
    masked["serviceSource"] = "unknownFutureValue".into();
    masked["detectionSource"] = "unknownFutureValue".into();
    same(a, &masked);
}

#[tokio::test]
async fn incidents_list_sample_is_served_identically() {
    let h = Harness::start(seeded("graph_incidents_list.json")).await;
    let t = h.graph_token().await;
    let (status, _, body) = h.get("/v1.0/security/incidents", &t, true).await;
    assert_eq!(status, 200);
    same(&body["value"], &fixture("graph_incidents_list.json")["value"]);
}

#[tokio::test]
async fn incidents_expand_alerts_sample_is_served_identically() {
    let h = Harness::start(seeded("graph_incidents_list_expand_alerts.json")).await;
    let t = h.graph_token().await;
    let (status, _, body) = h.get("/v1.0/security/incidents?$expand=alerts", &t, true).await;
    assert_eq!(status, 200);
    same(&body["value"], &fixture("graph_incidents_list_expand_alerts.json")["value"]);
    assert_eq!(body["@odata.context"], format!("{}/v1.0/$metadata#security/incidents(alerts())", h.sim.base_url()));

    // The same alerts through the incident's alerts navigation.
    let (status, _, body) = h.get("/v1.0/security/incidents/2972395/alerts", &t, true).await;
    assert_eq!(status, 200);
    same(&body["value"], &fixture("graph_incidents_list_expand_alerts.json")["value"][0]["alerts"]);
}

#[tokio::test]
async fn token_response_has_the_documented_shape() {
    let h = Harness::start(seeded("graph_alerts_v2_list.json")).await;
    let (status, body) = h
        .token_request(
            TENANT,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", common::CLIENT),
                ("client_secret", common::SECRET),
                ("scope", common::GRAPH_SCOPE),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let sample = fixture("entra_token_response_client_credentials.json");
    for (k, v) in sample.as_object().unwrap() {
        let got = &body[k];
        assert_eq!(std::mem::discriminant(got), std::mem::discriminant(v), "field {k}");
    }
    assert_eq!(body["token_type"], sample["token_type"]);
    assert_eq!(body["expires_in"], sample["expires_in"]);
    // The sample's token header decodes to typ, alg RS256, x5t, in that order; ours too.
    let token = body["access_token"].as_str().unwrap();
    let jws = tenant_sim::entra::jwt::Jws::parse(token).unwrap();
    let keys: Vec<&String> = jws.header.keys().collect();
    assert_eq!(keys[..3], ["typ", "alg", "x5t"]);
    assert_eq!(jws.header["alg"], "RS256");
}

#[tokio::test]
async fn token_error_sample_is_reproduced_for_its_request() {
    let h = Harness::start(seeded("graph_alerts_v2_list.json")).await;
    let (status, body) = h
        .token_request(
            TENANT,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", common::CLIENT),
                ("client_secret", common::SECRET),
                ("scope", "https://foo.microsoft.com/.default"),
            ],
        )
        .await;
    let sample = fixture("entra_token_error_response.json");
    assert_eq!(status, 400);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&body)[..6], keys(&sample)[..]);
    assert_eq!(body["error"], sample["error"]);
    assert_eq!(body["error_codes"], sample["error_codes"]);
    let first_line = |v: &Value| v["error_description"].as_str().unwrap().split("\r\n").next().unwrap().to_owned();
    assert_eq!(first_line(&body), first_line(&sample));
    let desc = body["error_description"].as_str().unwrap();
    assert!(desc.contains(&format!(
        "\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: ",
        body["trace_id"].as_str().unwrap(),
        body["correlation_id"].as_str().unwrap()
    )));
}
