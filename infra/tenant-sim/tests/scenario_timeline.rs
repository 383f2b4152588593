//! The generated tenant: deterministic from its seed, documented shapes, and a timeline with
//! ingestion latency, later updates and ties that tests can move through with the clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::{BTreeMap, HashMap};

use common::{fixed_scenario, Harness, TENANT};
use serde_json::Value;
use tenant_sim::data::enums;
use tenant_sim::{AlertChange, Scenario};

async fn dump(h: &Harness) -> Vec<Value> {
    let t = h.graph_token().await;
    h.get_all("/v1.0/security/alerts_v2?$top=1000&$orderby=lastUpdateDateTime%20asc", &t, true).await.0
}

#[tokio::test]
async fn same_seed_same_tenant_other_seed_other_tenant() {
    let a = dump(&Harness::start(fixed_scenario()).await).await;
    let b = dump(&Harness::start(fixed_scenario()).await).await;
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    let mut other = fixed_scenario();
    other.seed = 8;
    let c = dump(&Harness::start(other).await).await;
    assert_ne!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&c).unwrap());
}

#[tokio::test]
async fn alerts_have_documented_shapes_sizes_and_precision() {
    let h = Harness::start(fixed_scenario()).await;
    let alerts = dump(&h).await;
    assert!(alerts.len() > 400);
    let mut evidence_types: BTreeMap<String, usize> = BTreeMap::new();
    let mut sizes: Vec<usize> = Vec::new();
    for a in &alerts {
        sizes.push(a.to_string().len());
        for (field, members) in [
            ("status", enums::ALERT_STATUS),
            ("severity", enums::SEVERITY),
            ("classification", enums::CLASSIFICATION),
            ("determination", enums::DETERMINATION),
            ("serviceSource", enums::SERVICE_SOURCE),
            ("detectionSource", enums::DETECTION_SOURCE),
        ] {
            assert!(members.contains(&a[field].as_str().unwrap()), "{field} = {}", a[field]);
        }
        for f in ["createdDateTime", "lastUpdateDateTime"] {
            let s = a[f].as_str().unwrap();
            assert!(s.len() == 28 && s.ends_with('Z') && s.as_bytes()[19] == b'.', "{f} = {s} has 7 fractional digits");
        }
        assert!(a["createdDateTime"].as_str() <= a["lastUpdateDateTime"].as_str());
        for e in a["evidence"].as_array().unwrap() {
            let t = e["@odata.type"].as_str().unwrap().trim_start_matches("#microsoft.graph.security.").to_owned();
            for base in ["createdDateTime", "verdict", "remediationStatus", "roles", "detailedRoles", "tags"] {
                assert!(e.get(base).is_some(), "{t} lacks {base}");
            }
            *evidence_types.entry(t).or_default() += 1;
        }
    }
    for t in [
        "deviceEvidence",
        "fileEvidence",
        "processEvidence",
        "registryKeyEvidence",
        "userEvidence",
        "mailboxEvidence",
        "analyzedMessageEvidence",
        "ipEvidence",
        "urlEvidence",
    ] {
        assert!(evidence_types.contains_key(t), "{t} missing from {evidence_types:?}");
    }
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2];
    assert!((1_000..10_000).contains(&median), "median alert {median} bytes");
    assert!(alerts.iter().any(|a| a["evidence"].as_array().unwrap().len() >= 100), "some alerts carry hundreds of evidence items");
    // Purview DLP alerts as alerts_v2 names them.
    let dlp: Vec<&Value> = alerts.iter().filter(|a| a["serviceSource"] == "dataLossPrevention").collect();
    assert!(!dlp.is_empty());
    assert!(dlp.iter().all(|a| a["detectionSource"] == "microsoftDataLossPrevention" && a["alertPolicyId"].is_string()));
    // No mode in an undocumented key: nothing Microsoft publishes puts one on an alert.
    assert!(dlp.iter().all(|a| a["additionalData"].get("PolicyDetails").is_none()));
    // Prelude Security test alerts: a VST binary in the probe's .vst folder.
    let prelude = alerts.iter().filter(|a| {
        a["evidence"].as_array().unwrap().iter().any(|e| e["fileDetails"]["filePath"].as_str().is_some_and(|p| p.ends_with("\\.vst")))
    });
    assert!(prelude.count() > 0);
}

#[tokio::test]
async fn many_alerts_share_one_last_update_time() {
    let alerts = dump(&Harness::start(fixed_scenario()).await).await;
    let mut by_time: HashMap<&str, usize> = HashMap::new();
    for a in &alerts {
        *by_time.entry(a["lastUpdateDateTime"].as_str().unwrap()).or_default() += 1;
    }
    let biggest = by_time.values().max().copied().unwrap_or(0);
    assert!(biggest >= 5, "a tie group of {biggest}");
}

#[tokio::test]
async fn alerts_arrive_over_time_and_only_after_ingestion_latency() {
    let h = Harness::start(fixed_scenario()).await;
    let before = h.sim.visible_alert_versions(TENANT).len();
    // The plan runs to +2h: moving the clock brings more alerts.
    h.sim.clock().advance_secs(3 * 3600);
    let after = h.sim.visible_alert_versions(TENANT).len();
    assert!(after > before, "{before} -> {after}");
    // Every version became visible between 60 s and 600 s after its lastUpdateDateTime.
    for (_, updated, visible) in h.sim.alert_timeline(TENANT) {
        let lag = (visible.0 - updated.0) / 10_000_000;
        assert!((60..=600).contains(&lag), "latency {lag}s");
    }
}

#[tokio::test]
async fn a_raised_alert_shows_up_minutes_after_its_last_update_time() {
    let h = Harness::start(fixed_scenario()).await;
    let t = h.graph_token().await;
    let now = h.sim.clock().now();
    let raised = h.sim.raise_alerts(TENANT, 3, 300);
    assert_eq!(raised.len(), 3);
    let path = format!("/v1.0/security/alerts_v2?$filter=lastUpdateDateTime%20ge%20{}&$top=1000", now.graph7());
    let seen = |body: &Value| ids_in(body).iter().filter(|id| raised.contains(id)).count();
    h.sim.clock().advance_secs(299);
    let (_, _, body) = h.get(&path, &t, true).await;
    assert_eq!(seen(&body), 0, "not yet ingested");
    h.sim.clock().advance_secs(1);
    let (_, _, body) = h.get(&path, &t, true).await;
    assert_eq!(seen(&body), 3);
    let stamps: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| raised.contains(&a["id"].as_str().unwrap().to_owned()))
        .map(|a| a["lastUpdateDateTime"].as_str().unwrap())
        .collect();
    assert!(stamps.iter().all(|s| *s == now.graph7()), "stamped at raise time, visible 5 min later: {stamps:?}");
}

fn ids_in(body: &Value) -> Vec<String> {
    body["value"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn an_update_replaces_the_visible_version_after_its_latency() {
    let h = Harness::start(fixed_scenario()).await;
    let t = h.graph_token().await;
    let (id, old) = h.sim.visible_alert_versions(TENANT)[0].clone();
    h.sim.clock().advance_secs(10);
    let change = AlertChange {
        status: Some("inProgress"),
        assigned_to: Some("soc@contoso.com".into()),
        comment: Some("looking".into()),
        ..Default::default()
    };
    let new = h.sim.update_alert(TENANT, &id, change, 120).unwrap();
    assert!(new > old);
    let (_, _, body) = h.get(&format!("/v1.0/security/alerts_v2/{id}"), &t, true).await;
    assert_eq!(body["lastUpdateDateTime"], old.graph7(), "old version until ingested");
    h.sim.clock().advance_secs(120);
    let (_, _, body) = h.get(&format!("/v1.0/security/alerts_v2/{id}"), &t, true).await;
    assert_eq!(body["lastUpdateDateTime"], new.graph7());
    assert_eq!(body["status"], "inProgress");
    assert_eq!(body["assignedTo"], "soc@contoso.com");
    assert_eq!(body["comments"].as_array().unwrap().last().unwrap()["comment"], "looking");
}

#[tokio::test]
async fn generated_updates_move_alerts_through_triage() {
    let mut s: Scenario = fixed_scenario();
    s.tenants[0].alerts.update_fraction = 1.0;
    let h = Harness::start(s).await;
    let timeline = h.sim.alert_timeline(TENANT);
    let mut versions: HashMap<String, usize> = HashMap::new();
    for (id, _, _) in &timeline {
        *versions.entry(id.clone()).or_default() += 1;
    }
    assert!(versions.values().all(|v| *v >= 2), "every alert updated at least once");
    h.sim.clock().advance_secs(48 * 3600);
    let alerts = dump(&h).await;
    assert!(alerts.iter().any(|a| a["status"] == "resolved" && a["classification"] != "unknown" && a["resolvedDateTime"].is_string()));
    assert!(alerts.iter().any(|a| a["status"] == "inProgress" && a["assignedTo"].is_string()));
}

#[tokio::test]
async fn the_example_scenario_runs_two_isolated_tenants() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/example.json");
    let mut s = Scenario::from_file(&path).unwrap();
    s.faults.clear();
    // The file leaves `graph` to the default (unfriendly); this test counts items exactly.
    s.graph = tenant_sim::scenario::GraphSpec::friendly();
    let h = Harness::start(s).await;
    let fabrikam = "0b1c2d3e-4f50-4617-8a9b-c0d1e2f3a4b5";
    let (status, tok) = h
        .token_request(
            fabrikam,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "7d6c5b4a-3928-4716-a5b4-c3d2e1f0a9b8"),
                ("client_secret", "sim~FabrikamSecret.5555555555"),
                ("scope", common::GRAPH_SCOPE),
            ],
        )
        .await;
    assert_eq!(status, 200, "{tok}");
    let (items, _) = h.get_all("/v1.0/security/alerts_v2?$top=1000", tok["access_token"].as_str().unwrap(), true).await;
    assert_eq!(items.len(), h.sim.visible_alert_versions(fabrikam).len());
    assert!(items.iter().all(|a| a["tenantId"] == fabrikam));
    // The other tenant's app is not registered in this one.
    let (status, body) = h
        .token_request(
            fabrikam,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", common::CLIENT),
                ("client_secret", common::SECRET),
                ("scope", common::GRAPH_SCOPE),
            ],
        )
        .await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(700016)));
}

/// The default scenario is the unfriendly one (issue 29 §4): the first list request is
/// throttled with Retry-After, pages stop short of `$top` without a next link, `$orderby` is
/// ignored, Cloud Apps' `total` is a lower bound, and answers take time.
#[tokio::test]
async fn the_default_scenario_is_unfriendly() {
    let mut s =
        Scenario { clock: tenant_sim::scenario::ClockSpec { start: Some(common::START.into()), fixed: true }, ..Scenario::default() };
    s.tenants[0].alerts.count = 120;
    s.tenants[0].alerts.from = "-24h".into();
    s.tenants[0].alerts.to = "-2h".into();
    let h = Harness::start(s).await;
    let t = h.graph_token().await;
    let path = "/v1.0/security/alerts_v2?$top=100&$orderby=lastUpdateDateTime%20asc";
    let (status, headers, _) = h.get(path, &t, false).await;
    assert_eq!((status, headers.get("retry-after").and_then(|v| v.to_str().ok())), (429, Some("1")));
    let started = std::time::Instant::now();
    let (status, _, body) = h.get(path, &t, false).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(2), "answers take time");
    assert_eq!(status, 200);
    let page = body["value"].as_array().unwrap();
    assert!(page.len() < 100 && body.get("@odata.nextLink").is_none(), "a short page with no next link: {}", page.len());
    let created: Vec<&str> = page.iter().map(|a| a["createdDateTime"].as_str().unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "the documented default order (newest created first), not $orderby");

    let cloud_apps = h.token_for("05a65629-4c1b-48c1-a78b-804c4abdd4af/.default").await;
    let r = h.http.get(h.url("/api/v1/alerts/")).bearer_auth(cloud_apps).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["moreThanTotal"].as_bool(), v["total"].as_u64()), (Some(true), Some(25)), "{}", v["total"]);
}

/// A change of the incident itself (security-incident-update.md): a new version of the incident
/// after every earlier one, its owner, status and comment served, its alerts unchanged; a status
/// set by hand yields to a later change of one of its alerts.
#[tokio::test]
async fn an_incident_changed_by_hand_is_a_new_version_until_its_alerts_move_on() {
    let h = Harness::start(fixed_scenario()).await;
    let t = h.graph_token().await;
    let (_, _, page) = h.get("/v1.0/security/incidents?$top=1&$expand=alerts", &t, true).await;
    let before = page["value"][0].clone();
    let id = before["id"].as_str().unwrap();
    let change = AlertChange {
        status: Some("resolved"),
        assigned_to: Some("lead@contoso.onmicrosoft.com".into()),
        comment: Some("Closed by hand".into()),
        ..Default::default()
    };
    let at = h.sim.update_incident(TENANT, id, change, 0).unwrap();
    let get = |path: String| {
        let (h, t) = (&h, &t);
        async move { h.get(&path, t, true).await.2 }
    };
    let after = get(format!("/v1.0/security/incidents/{id}?$expand=alerts")).await;
    assert_eq!(after["lastUpdateDateTime"].as_str(), Some(at.graph7().as_str()));
    assert!(after["lastUpdateDateTime"].as_str() > before["lastUpdateDateTime"].as_str());
    assert_eq!((after["status"].as_str(), after["assignedTo"].as_str()), (Some("resolved"), Some("lead@contoso.onmicrosoft.com")));
    assert_eq!(after["comments"][0]["comment"], "Closed by hand");
    assert_eq!(after["comments"][0]["createdByDisplayName"], "analyst@simulator");
    assert_eq!(after["alerts"], before["alerts"], "its alerts unchanged");
    // New activity on one of its alerts reopens it; the owner and comment stay.
    let alert = before["alerts"][0]["id"].as_str().unwrap();
    h.sim.clock().advance_secs(60);
    h.sim.update_alert(TENANT, alert, AlertChange { status: Some("inProgress"), ..Default::default() }, 0).unwrap();
    let reopened = get(format!("/v1.0/security/incidents/{id}")).await;
    assert_eq!((reopened["status"].as_str(), reopened["assignedTo"].as_str()), (Some("inProgress"), Some("lead@contoso.onmicrosoft.com")));
}
