//! Email threat submissions as the simulator serves them (beta
//! security-emailthreatsubmission-list.md, -get.md): a lifecycle from `notStarted` to a result,
//! `$filter` on `createdDateTime`, `$top` cut to a page with `$skiptoken` links, `$count`, the
//! members after `unknownFutureValue` only with `Prefer`, and what is not documented refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::HashSet;

use common::{fixed_scenario, Harness};
use serde_json::Value;
use tenant_sim::Scenario;

const LIST: &str = "/beta/security/threatSubmission/emailThreats";

/// 250 submissions created over the last 24 hours, each analysed within minutes.
fn scenario() -> Scenario {
    let mut s = fixed_scenario();
    let p = &mut s.tenants[0].submissions;
    p.count = 250;
    p.queued_min_secs = 60;
    p.queued_max_secs = 60;
    p.analysis_min_secs = 600;
    p.analysis_max_secs = 600;
    s
}

fn filter_from(from: &str, to: &str) -> String {
    let f = format!("createdDateTime ge {from} and createdDateTime lt {to}");
    form_urlencoded::byte_serialize(f.as_bytes()).collect()
}

#[tokio::test]
async fn pages_of_a_window_hold_every_submission_once_with_the_count() {
    let h = Harness::start(scenario()).await;
    let t = h.graph_token().await;
    let (status, _, first) = h.get(&format!("{LIST}?$top=1000&$count=true"), &t, true).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["value"].as_array().unwrap().len(), 100, "an undocumented page size: cut to 100, so clients page");
    let link = first["@odata.nextLink"].as_str().unwrap();
    assert!(link.contains("skiptoken="), "{link}");
    let total = first["@odata.count"].as_u64().unwrap() as usize;
    let (all, pages) = h.get_all(&format!("{LIST}?$top=1000&$count=true"), &t, true).await;
    assert_eq!((all.len(), pages), (total, total.div_ceil(100)));
    let ids: HashSet<&str> = all.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), total, "no submission twice");
    // A window on createdDateTime holds exactly the submissions created in it.
    let (from, to) = ("2026-11-25T18:00:00.0000000Z", "2026-11-26T06:00:00.0000000Z");
    let (windowed, _) = h.get_all(&format!("{LIST}?$filter={}&$count=true", filter_from(from, to)), &t, true).await;
    let inside = |s: &&Value| {
        let c = s["createdDateTime"].as_str().unwrap();
        (from..to).contains(&c)
    };
    assert_eq!(windowed.len(), all.iter().filter(inside).count());
    assert!(windowed.iter().all(|s| inside(&s)) && !windowed.is_empty());
}

#[tokio::test]
async fn a_submission_waits_then_runs_then_has_its_result() {
    let h = Harness::start(scenario()).await;
    let t = h.graph_token().await;
    // The newest ones (created in the window's last minutes) are still being analysed.
    let (all, _) = h.get_all(LIST, &t, true).await;
    let pending = all.iter().find(|s| s["status"] != "succeeded" && s["status"] != "failed");
    let pending = pending.expect("a submission under analysis at the scenario's start");
    assert!(pending["result"].is_null(), "no result before the analysis ends: {pending}");
    let id = pending["id"].as_str().unwrap();
    h.sim.clock().advance_secs(3600);
    // An hour on, the token has expired: a fresh one.
    let t = h.graph_token().await;
    let (status, _, now) = h.get(&format!("{LIST}/{id}"), &t, true).await;
    assert_eq!(status, 200, "{now}");
    assert!(now["status"] == "succeeded" || now["status"] == "failed", "{now}");
    if now["status"] == "succeeded" {
        assert!(now["result"]["category"].is_string(), "{now}");
    }
    let (status, _, missing) = h.get(&format!("{LIST}/00000000-0000-0000-0000-000000000000"), &t, true).await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("NotFound")), "{missing}");
}

#[tokio::test]
async fn newer_result_categories_need_the_prefer_header() {
    let h = Harness::start(scenario()).await;
    h.sim.clock().advance_secs(86_400);
    let t = h.graph_token().await;
    let (with, _) = h.get_all(LIST, &t, true).await;
    let (without, _) = h.get_all(LIST, &t, false).await;
    let categories =
        |items: &[Value]| -> HashSet<String> { items.iter().filter_map(|s| s["result"]["category"].as_str().map(str::to_owned)).collect() };
    let (with, without) = (categories(&with), categories(&without));
    assert!(with.iter().any(|c| c == "allowedDueToUserOverride" || c == "phishingSimulation" || c == "bulk"), "{with:?}");
    assert!(!with.contains("unknownFutureValue"), "{with:?}");
    assert!(without.contains("unknownFutureValue"), "{without:?}");
    assert!(!without.contains("allowedDueToUserOverride") && !without.contains("bulk"), "{without:?}");
}

#[tokio::test]
async fn the_docs_sample_is_served_as_written_and_undocumented_options_are_refused() {
    let h = Harness::start(scenario()).await;
    let t = h.graph_token().await;
    let (all, _) = h.get_all(LIST, &t, true).await;
    let sample = all.iter().find(|s| s["id"] == "49c5ef5b-1f65-444a-e6b9-08d772ea2059").expect("the docs sample");
    assert_eq!((sample["emailSubject"].as_str(), sample["result"]["category"].as_str()), (Some("This is a spam"), Some("notSpam")));
    for (query, what) in
        [("$skip=10", "$skip"), ("$orderby=createdDateTime%20asc", "createdDateTime"), ("$filter=status%20eq%20'succeeded'", "status")]
    {
        let (status, _, body) = h.get(&format!("{LIST}?{query}"), &t, true).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"]["message"].as_str().unwrap_or_default().contains(what), "{query}: {body}");
    }
}
