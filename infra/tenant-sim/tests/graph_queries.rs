//! Graph query semantics and limits, case by case, against the scenario's ground truth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::{BTreeSet, HashSet};

use common::{fixed_scenario, Harness, TENANT};
use serde_json::Value;
use tenant_sim::{AlertChange, Instant, Scenario};

/// 1,500 alerts, all already visible at the fixed clock.
fn many() -> Scenario {
    let mut s = fixed_scenario();
    let p = &mut s.tenants[0].alerts;
    p.count = 1500;
    p.incidents = 300;
    p.from = "-24h".into();
    p.to = "-2h".into();
    p.big_evidence_fraction = 0.0;
    s
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect()
}

fn time(a: &Value) -> Instant {
    Instant::parse(a["lastUpdateDateTime"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn top_above_1000_is_clamped_and_skip_above_500_is_refused() {
    let h = Harness::start(many()).await;
    let t = h.graph_token().await;
    let (status, _, body) = h.get("/v1.0/security/alerts_v2?$top=5000", &t, true).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"].as_array().unwrap().len(), 1000);
    assert!(body["@odata.nextLink"].is_string());

    let (status, _, body) = h.get("/v1.0/security/alerts_v2?$top=10&$skip=500", &t, true).await;
    assert_eq!((status, body["value"].as_array().map(Vec::len)), (200, Some(10)));
    let (status, _, body) = h.get("/v1.0/security/alerts_v2?$top=10&$skip=501", &t, true).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "BadRequest");
    assert!(body["error"]["message"].as_str().unwrap().contains("$skip"));
    assert!(body["error"]["innerError"]["request-id"].is_string());
}

#[tokio::test]
async fn next_links_walk_every_visible_alert_exactly_once() {
    let h = Harness::start(many()).await;
    let t = h.graph_token().await;
    let (items, pages) = h.get_all("/v1.0/security/alerts_v2?$top=100&$orderby=lastUpdateDateTime%20asc", &t, true).await;
    let got = ids(&items);
    assert_eq!(got.len(), 1500);
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 1500, "no alert twice");
    assert_eq!(pages, 15);
    let truth: BTreeSet<String> = h.sim.visible_alert_versions(TENANT).into_iter().map(|(id, _)| id).collect();
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), truth);
    assert!(items.windows(2).all(|w| time(&w[0]) <= time(&w[1])), "ascending on lastUpdateDateTime");
    // Every page request but the first carried a $skiptoken and kept the caller's options.
    let reqs = h.sim.requests().matching("/v1.0/security/alerts_v2");
    assert_eq!(reqs.len(), 15);
    assert!(reqs[1..].iter().all(|r| r.query_value("$skiptoken").is_some() && r.query_value("$top") == Some("100")));
}

#[tokio::test]
async fn next_link_can_be_switched_off_like_elastic_saw_in_production() {
    let h = Harness::start(many()).await;
    let t = h.graph_token().await;
    let mut spec = h.sim.graph_spec();
    spec.omit_next_link = true;
    h.sim.set_graph_spec(spec);
    let (_, _, body) = h.get("/v1.0/security/alerts_v2?$top=10&$count=true", &t, true).await;
    assert_eq!(body["@odata.count"], 1500);
    assert_eq!(body["value"].as_array().unwrap().len(), 10);
    assert!(body.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn time_window_filter_matches_ground_truth_to_the_tick() {
    let h = Harness::start(many()).await;
    let t = h.graph_token().await;
    let truth = h.sim.visible_alert_versions(TENANT);
    let mut times: Vec<Instant> = truth.iter().map(|(_, t)| *t).collect();
    times.sort();
    // Window edges on real alert timestamps, so ge/lt boundaries are exercised exactly.
    let (from, to) = (times[200], times[700]);
    let path = format!(
        "/v1.0/security/alerts_v2?$filter=lastUpdateDateTime%20ge%20{}%20and%20lastUpdateDateTime%20lt%20{}&$top=1000&$count=true",
        from.graph7(),
        to.graph7()
    );
    let (status, _, body) = h.get(&path, &t, true).await;
    assert_eq!(status, 200, "{body}");
    let want: BTreeSet<String> = truth.iter().filter(|(_, t)| *t >= from && *t < to).map(|(id, _)| id.clone()).collect();
    let got: BTreeSet<String> = ids(body["value"].as_array().unwrap()).into_iter().collect();
    assert_eq!(got, want);
    assert_eq!(body["@odata.count"], want.len());
    // gt excludes the alerts sitting exactly on the boundary.
    let path = format!("/v1.0/security/alerts_v2?$filter=lastUpdateDateTime%20gt%20{}&$top=1000&$count=true", to.graph7());
    let (_, _, body) = h.get(&path, &t, true).await;
    assert_eq!(body["@odata.count"], truth.iter().filter(|(_, t)| *t > to).count());
}

#[tokio::test]
async fn enum_filters_with_in_and_or_not_match_a_client_side_filter() {
    let h = Harness::start(many()).await;
    let t = h.graph_token().await;
    let (all, _) = h.get_all("/v1.0/security/alerts_v2?$top=1000", &t, true).await;
    type Pred = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(&str, Pred)> = vec![
        ("severity in ('high','medium')", Box::new(|a: &Value| a["severity"] == "high" || a["severity"] == "medium")),
        (
            "status eq 'resolved' or classification eq 'truePositive'",
            Box::new(|a: &Value| a["status"] == "resolved" || a["classification"] == "truePositive"),
        ),
        (
            "not (serviceSource eq 'dataLossPrevention') and assignedTo eq null",
            Box::new(|a: &Value| a["serviceSource"] != "dataLossPrevention" && a["assignedTo"].is_null()),
        ),
        ("serviceSource eq 'microsoftSentinel'", Box::new(|a: &Value| a["serviceSource"] == "microsoftSentinel")),
    ];
    for (filter, pred) in cases {
        let url = format!("/v1.0/security/alerts_v2?$top=1000&$filter={}", urlencode(filter));
        let (items, _) = h.get_all(&url, &t, true).await;
        let want: BTreeSet<String> = all.iter().filter(|a| pred(a)).map(|a| a["id"].as_str().unwrap().to_owned()).collect();
        assert!(!want.is_empty(), "{filter} should match something");
        assert_eq!(ids(&items).into_iter().collect::<BTreeSet<_>>(), want, "{filter}");
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn invalid_queries_are_bad_requests_that_say_why() {
    let h = Harness::start(fixed_scenario()).await;
    let t = h.graph_token().await;
    for (query, needle) in [
        ("$filter=detectionSource eq 'antivirus'", "'detectionSource'"),
        ("$filter=title eq 'x'", "'title'"),
        ("$filter=lastUpdateDateTime ge '2026-01-01T00:00:00Z'", "incompatible types"),
        ("$filter=lastUpdateDateTime ge 2026-01-01T00:00:00.12345678Z", "Edm.DateTimeOffset"),
        ("$filter=severity eq 'critical'", "not a valid enumeration"),
        ("$filter=severity eq", "syntax error"),
        ("$filter=startswith(title,'x')", "not supported"),
        ("$orderby=severity desc", "$orderby"),
        ("$top=ten", "$top"),
        ("$search=mimikatz", "$search"),
    ] {
        let url = format!("/v1.0/security/alerts_v2?{}", query.replace(' ', "%20"));
        let (status, _, body) = h.get(&url, &t, true).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(needle), "{query}: {body}");
    }
}

#[tokio::test]
async fn prefer_header_reveals_newer_enum_members() {
    let h = Harness::start(many()).await;
    let t = h.graph_token().await;
    let (with, _) = h.get_all("/v1.0/security/alerts_v2?$top=1000", &t, true).await;
    let (without, _) = h.get_all("/v1.0/security/alerts_v2?$top=1000", &t, false).await;
    let unknown = |v: &[Value], f: &str| v.iter().filter(|a| a[f] == "unknownFutureValue").count();
    assert_eq!(unknown(&with, "serviceSource"), 0);
    assert!(unknown(&without, "serviceSource") > 0);
    let newer = with
        .iter()
        .filter(|a| {
            ["microsoftSentinel", "microsoftDefenderForCloud", "microsoftInsiderRiskManagement"]
                .contains(&a["serviceSource"].as_str().unwrap())
        })
        .count();
    assert_eq!(unknown(&without, "serviceSource"), newer);
    assert!(unknown(&without, "detectionSource") >= newer);
}

#[tokio::test]
async fn authorization_failures_use_graphs_error_shape() {
    let h = Harness::start(fixed_scenario()).await;
    let r = h.http.get(h.url("/v1.0/security/alerts_v2")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    let (status, _, body) = h.get("/v1.0/security/alerts_v2", "garbage", false).await;
    assert_eq!((status, body["error"]["message"].as_str()), (401, Some("CompactToken parsing failed with error code: 80049217")));

    let mde = h.token_for("https://api.securitycenter.microsoft.com/.default").await;
    let (status, _, body) = h.get("/v1.0/security/alerts_v2", &mde, false).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("Invalid audience"));

    let graph = h.graph_token().await;
    assert_eq!(h.get("/v1.0/security/alerts_v2?$top=1", &graph, false).await.0, 200);
    h.sim.clock().advance_secs(3600);
    let (status, _, body) = h.get("/v1.0/security/alerts_v2?$top=1", &graph, false).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], "Lifetime validation failed, the token is expired.");
}

#[tokio::test]
async fn incidents_page_expand_and_fall_back_to_per_incident_alerts() {
    let h = Harness::start(many()).await;
    let t = h.graph_token().await;
    // $top is clamped to the incident maximum.
    let (status, _, body) = h.get("/v1.0/security/incidents?$top=500&$expand=alerts&$count=true", &t, true).await;
    assert_eq!(status, 200, "{body}");
    let page = body["value"].as_array().unwrap();
    assert_eq!(page.len(), 50);
    assert_eq!(body["@odata.count"], 300);
    let embedded: usize = page.iter().map(|i| i["alerts"].as_array().unwrap().len()).sum();
    assert!(embedded >= 50);
    for inc in page {
        for a in inc["alerts"].as_array().unwrap() {
            assert_eq!(a["incidentId"], inc["id"]);
        }
    }
    // Large pages of expanded alerts fail on big tenants; the per-incident route still works.
    let mut spec = h.sim.graph_spec();
    spec.expand_alert_limit = 20;
    h.sim.set_graph_spec(spec);
    let (status, _, body) = h.get("/v1.0/security/incidents?$top=50&$expand=alerts", &t, true).await;
    assert_eq!((status, body["error"]["code"].as_str()), (500, Some("InternalServerError")));
    let (status, _, body) = h.get("/v1.0/security/incidents?$top=50", &t, true).await;
    assert_eq!(status, 200);
    let first = &body["value"][0];
    assert!(first.get("alerts").is_none());
    let id = first["id"].as_str().unwrap();
    let (status, _, alerts) = h.get(&format!("/v1.0/security/incidents/{id}/alerts"), &t, true).await;
    assert_eq!(status, 200);
    assert!(alerts["value"].as_array().unwrap().iter().all(|a| a["incidentId"] == id));
    let (status, _, one) = h.get(&format!("/v1.0/security/incidents/{id}?$expand=alerts"), &t, true).await;
    assert_eq!(status, 200);
    assert_eq!(one["alerts"].as_array().unwrap().len(), alerts["value"].as_array().unwrap().len());
}

#[tokio::test]
async fn an_incident_follows_its_alerts() {
    let h = Harness::start(many()).await;
    let t = h.graph_token().await;
    let (_, _, body) = h.get("/v1.0/security/incidents?$top=1&$filter=status%20eq%20'active'", &t, true).await;
    let inc = body["value"][0].clone();
    let id = inc["id"].as_str().unwrap();
    let (_, _, alerts) = h.get(&format!("/v1.0/security/incidents/{id}/alerts"), &t, true).await;
    for a in alerts["value"].as_array().unwrap() {
        let change = AlertChange {
            status: Some("resolved"),
            classification: Some("falsePositive"),
            determination: Some("notMalicious"),
            ..Default::default()
        };
        h.sim.update_alert(TENANT, a["id"].as_str().unwrap(), change, 0).unwrap();
    }
    h.sim.clock().advance_secs(1);
    let (_, _, after) = h.get(&format!("/v1.0/security/incidents/{id}"), &t, true).await;
    assert_eq!(after["status"], "resolved");
    assert_eq!(after["classification"], "falsePositive");
    assert!(
        Instant::parse(after["lastUpdateDateTime"].as_str().unwrap()).unwrap()
            > Instant::parse(inc["lastUpdateDateTime"].as_str().unwrap()).unwrap()
    );
    let (_, _, filtered) = h.get("/v1.0/security/incidents?$filter=status%20eq%20'resolved'&$top=50", &t, true).await;
    assert!(filtered["value"].as_array().unwrap().iter().any(|i| i["id"] == id));
}

/// One small advanced hunting query.
async fn hunt(h: &Harness, t: &str) -> reqwest::Response {
    h.http
        .post(h.url("/v1.0/security/runHuntingQuery"))
        .bearer_auth(t)
        .json(&serde_json::json!({"Query": "AlertInfo | take 1"}))
        .send()
        .await
        .unwrap()
}

/// Advanced hunting keeps the hourly quota as well as the minute's (run-advanced-query-api.md:
/// 1,500 an hour; shrunk here), answering 429 with the wait and which limit was reached.
#[tokio::test]
async fn hunting_keeps_its_hourly_quota_and_says_which_limit_was_reached() {
    let mut s = fixed_scenario();
    s.graph.hunting.calls_per_hour = 3;
    let h = Harness::start(s).await;
    let t = h.graph_token().await;
    let mut statuses = Vec::new();
    let mut last = Value::Null;
    for _ in 0..4 {
        let r = hunt(&h, &t).await;
        statuses.push((r.status().as_u16(), r.headers().get("retry-after").is_some()));
        last = r.json().await.unwrap();
    }
    assert_eq!(statuses, vec![(200, false), (200, false), (200, false), (429, true)]);
    assert!(last["error"]["message"].as_str().unwrap().contains("per hour"), "{last}");
}

/// Graph's security API allows 150 requests a minute per app per tenant (throttling-limits.md,
/// "Microsoft Graph security service limits"); the simulator counts alerts, incidents,
/// submissions and hunting together (undocumented which the table covers: the stricter reading)
/// and answers the 151st with 429 and `Retry-After`.
#[tokio::test]
async fn the_security_api_answers_the_151st_request_of_a_minute_429_with_retry_after() {
    let h = Harness::start(fixed_scenario()).await;
    let t = h.graph_token().await;
    let paths =
        ["/v1.0/security/alerts_v2?$top=1", "/v1.0/security/incidents?$top=1", "/beta/security/threatSubmission/emailThreats?$top=1"];
    let mut ok = 0;
    for i in 0..149 {
        let (status, _, body) = h.get(paths[i % paths.len()], &t, true).await;
        assert_eq!(status, 200, "request {i}: {body}");
        ok += 1;
    }
    assert_eq!(hunt(&h, &t).await.status().as_u16(), 200, "hunting is the 150th");
    ok += 1;
    let (status, headers, body) = h.get(paths[0], &t, true).await;
    assert_eq!((ok, status), (150, 429), "{body}");
    let wait: u64 = headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let (status, _, _) = h.get("/v1.0/users?$top=1", &t, true).await;
    assert_ne!(status, 429, "the directory has limits of its own");
}
