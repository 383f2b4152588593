//! Defender for Cloud Apps alerts (api-alerts-list.md, api-alerts-fetch.md, api-introduction.md
//! limits) and the single calls Test & Save makes to MDE, Exchange and Graph mail collections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::*;
use serde_json::{json, Value};
use tenant_sim::scenario::{AppSpec, CloudAppsSpec};

const MDCA_SCOPE: &str = "05a65629-4c1b-48c1-a78b-804c4abdd4af/.default";

async fn post(h: &Harness, token: &str, body: Value) -> (u16, Value) {
    let r = h.http.post(h.url("/api/v1/alerts/")).bearer_auth(token).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn alerts_page_by_date_ascending_with_skip_limit_and_has_next() {
    let mut s = fixed_scenario();
    s.tenants[0].cloud_apps.count = 230;
    let h = Harness::start(s).await;
    let token = h.token_for(MDCA_SCOPE).await;
    let truth = h.sim.visible_cloud_apps_alerts(TENANT);
    let (from, to) = (truth[1].1, truth.last().unwrap().1);
    let filters = json!({"date": {"gte": from, "lte": to}});
    let mut seen = Vec::new();
    let mut skip = 0;
    loop {
        let (status, body) =
            post(&h, &token, json!({"filters": filters, "sortField": "date", "sortDirection": "asc", "skip": skip, "limit": 500})).await;
        assert_eq!(status, 200, "{body}");
        let data = body["data"].as_array().unwrap();
        assert!(data.len() <= 100, "at most 100 items per response");
        seen.extend(data.iter().map(|a| (a["_id"].as_str().unwrap().to_owned(), a["timestamp"].as_i64().unwrap())));
        skip += data.len();
        if !body["hasNext"].as_bool().unwrap() {
            assert_eq!(body["total"].as_u64().unwrap() as usize, seen.len());
            break;
        }
    }
    let expected: Vec<(String, i64)> = truth.iter().filter(|(_, t)| *t >= from && *t <= to).cloned().collect();
    assert_eq!(seen, expected, "every alert in the range, oldest first, ties in a stable order");
    assert!(seen.len() > 200);
}

#[tokio::test]
async fn the_doc_alert_is_served_verbatim_and_unknown_ones_are_404() {
    let h = Harness::start(fixed_scenario()).await;
    let token = h.token_for(MDCA_SCOPE).await;
    let r = h.http.get(h.url("/api/v1/alerts/603f704aaf7417985bbf3b22/")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    let doc = std::fs::read_to_string(fixture_path("mdca_alert_fetch.json")).unwrap();
    assert_eq!(text, doc.trim_end());
    let (status, body) = post(&h, &token, json!({"filters": {"date": {"lte": 1621941916475i64}}, "limit": 5})).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0], fixture("mdca_alerts_list.json")["data"][0]);
    let r = h.http.get(h.url("/api/v1/alerts/000000000000000000000000/")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn tokens_for_other_apis_or_without_the_role_are_refused() {
    let mut s = fixed_scenario();
    s.tenants[0].apps.push(AppSpec {
        client_id: "11111111-2222-4333-8444-555555555555".into(),
        grants: [("graph".to_owned(), vec!["SecurityAlert.Read.All".to_owned()])].into(),
        ..AppSpec::default()
    });
    let h = Harness::start(s).await;
    let graph = h.graph_token().await;
    assert_eq!(post(&h, &graph, json!({})).await.0, 401, "a Graph token is not for Cloud Apps");
    let (status, body) = h
        .token_request(
            TENANT,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "11111111-2222-4333-8444-555555555555"),
                ("client_secret", SECRET),
                ("scope", MDCA_SCOPE),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&h, body["access_token"].as_str().unwrap(), json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("investigation.read"));
}

#[tokio::test]
async fn thirty_requests_a_minute_per_tenant_then_429() {
    let h = Harness::start(fixed_scenario()).await;
    h.sim.set_cloud_apps_spec(CloudAppsSpec { requests_per_window: 3, window_secs: 2, ..CloudAppsSpec::default() });
    let token = h.token_for(MDCA_SCOPE).await;
    for _ in 0..3 {
        assert_eq!(post(&h, &token, json!({"limit": 1})).await.0, 200);
    }
    let (status, body) = post(&h, &token, json!({"limit": 1})).await;
    assert_eq!(status, 429);
    assert!(body["detail"].as_str().unwrap().contains("throttled"));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(post(&h, &token, json!({"limit": 1})).await.0, 200, "the window slides");
}

#[tokio::test]
async fn bad_filters_are_400() {
    let h = Harness::start(fixed_scenario()).await;
    let token = h.token_for(MDCA_SCOPE).await;
    assert_eq!(post(&h, &token, json!({"filters": {"date": {"between": 1}}})).await.0, 400);
    assert_eq!(post(&h, &token, json!({"sortDirection": "up"})).await.0, 400);
    assert_eq!(post(&h, &token, json!({"filters": {"nonsense": {"eq": 1}}})).await.0, 400);
}

#[tokio::test]
async fn probes_of_mde_exchange_and_mail_answer_with_the_doc_samples() {
    let h = Harness::start(fixed_scenario()).await;
    let mde = h.token_for("https://api.securitycenter.microsoft.com/.default").await;
    let (status, _, body) = h.get("/api/machines?$top=1", &mde, false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"][0]["id"], fixture("mde_machine_get.json")["id"]);

    let exo = h.token_for("https://outlook.office365.com/.default").await;
    let cmd = json!({"CmdletInput": {"CmdletName": "Get-QuarantineMessage", "Parameters": {"PageSize": 1}}});
    let anchor = "UPN:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@contoso.onmicrosoft.com";
    let post = |org: &str| h.http.post(h.url(&format!("/adminapi/beta/{org}/InvokeCommand"))).bearer_auth(&exo).json(&cmd);
    assert_eq!(post("contoso.onmicrosoft.com").send().await.unwrap().status().as_u16(), 400, "no X-AnchorMailbox");
    let r = post("contoso.onmicrosoft.com").header("X-AnchorMailbox", anchor).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = post("fabrikam.onmicrosoft.com").header("X-AnchorMailbox", anchor).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404, "another organization");

    let graph = h.graph_token().await;
    let (status, _, body) = h.get("/v1.0/users/phish@contoso.onmicrosoft.com/messages?$top=1", &graph, false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
    let (status, _, body) = h.get("/v1.0/users/phish@fabrikam.com/messages?$top=1", &graph, false).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("ErrorInvalidUser")));
    let (status, _, _) = h.get("/v1.0/users/phish@contoso.onmicrosoft.com/messages?$filter=subject%20eq", &graph, false).await;
    assert_eq!(status, 400, "a filter that does not parse");
    let (status, _, body) = h.get("/beta/security/threatSubmission/emailThreats?$top=1", &graph, false).await;
    assert_eq!(status, 200, "{body}");
}

/// `range` takes a list of `{start, end}` and matches any of them; GET takes the JSON body the
/// docs' curl example sends (api-introduction.md, Filters and Operators).
#[tokio::test]
async fn range_is_a_list_and_get_takes_a_json_body() {
    let mut s = fixed_scenario();
    s.tenants[0].cloud_apps.count = 40;
    let h = Harness::start(s).await;
    let token = h.token_for(MDCA_SCOPE).await;
    let truth = h.sim.visible_cloud_apps_alerts(TENANT);
    let (a, b) = (truth[2].1, truth[30].1);
    let ranges = json!({"filters": {"date": {"range": [{"start": a, "end": a}, {"start": b, "end": b}]}}, "limit": 100});
    let (status, body) = post(&h, &token, ranges.clone()).await;
    assert_eq!(status, 200, "{body}");
    let got: Vec<i64> = body["data"].as_array().unwrap().iter().map(|x| x["timestamp"].as_i64().unwrap()).collect();
    assert!(!got.is_empty() && got.iter().all(|t| *t == a || *t == b), "{got:?}");
    let (status, body) = post(&h, &token, json!({"filters": {"date": {"range": {"start": a, "end": b}}}})).await;
    assert_eq!(status, 400, "a single object is not the documented form: {body}");
    assert!(body["detail"].as_str().unwrap().contains("list of"));
    let r = h.http.get(h.url("/api/v1/alerts/")).bearer_auth(&token).json(&ranges).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let via_get: Value = r.json().await.unwrap();
    assert_eq!(via_get["total"], body_total(&h, &token, ranges).await);
}

async fn body_total(h: &Harness, token: &str, body: Value) -> Value {
    post(h, token, body).await.1["total"].clone()
}

/// Faults answer in the shape of the API they stand in for: Cloud Apps `{"detail"}`, Defender
/// for Endpoint `{"error": {code, message, target}}` (common-errors.md), Graph's own.
#[tokio::test]
async fn faults_and_errors_come_in_each_apis_own_shape() {
    let mut s = fixed_scenario();
    s.faults = vec![
        tenant_sim::FaultSpec::new("/api/v1/alerts", tenant_sim::FaultKind::Status { status: 503, retry_after_secs: Some(2) }).on(&[1]),
        tenant_sim::FaultSpec::new("/api/machines", tenant_sim::FaultKind::Throttle { retry_after_secs: 3 }).on(&[1]),
    ];
    let h = Harness::start(s).await;
    let token = h.token_for(MDCA_SCOPE).await;
    let (status, body) = post(&h, &token, json!({"limit": 1})).await;
    assert_eq!(status, 503);
    assert!(body["detail"].is_string() && body.get("error").is_none(), "{body}");
    let mde = h.token_for("https://api.securitycenter.microsoft.com/.default").await;
    let (status, headers, body) = h.get("/api/machines", &mde, false).await;
    assert_eq!(status, 429);
    assert_eq!(headers.get("retry-after").unwrap(), "3");
    assert!(
        body["error"]["code"].is_string() && body["error"]["target"].is_string() && body["error"].get("innerError").is_none(),
        "{body}"
    );
    let (status, _, body) = h.get("/api/machines/no-such-machine", &mde, false).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("ResourceNotFound")), "{body}");
}
