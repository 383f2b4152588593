//! What a downstream system asks of the demo's integrations once the run is over: an advanced
//! hunting query, as the query function answers it, and account disables under contoso's
//! remediation rules, as the remediate function handles them.

use std::sync::Arc;

use m365_ingest::adapters::graph::{HttpSettings, RetryPolicy};
use m365_ingest::adapters::local::{MemoryAlertQueue, MemoryEvidenceJobs, MemorySecrets};
use m365_ingest::domain::integration::Integration;
use tenant_sim::scenario::DEFAULT_TENANT_ID;
use tenant_sim::Simulator;

use super::tenants::{microsoft, SimClock};
use crate::Failure;

/// A downstream caller's advanced hunting query, as the query function answers it. Returns
/// whether it answered.
pub(super) async fn hunting_query(
    sim: &Arc<Simulator>,
    http: &HttpSettings,
    integrations: &[Integration],
    secrets: &Arc<MemorySecrets>,
) -> Result<bool, Failure> {
    use m365_ingest::adapters::local::StaticIntegrations;
    use m365_ingest::app::response::investigate::Investigator;
    use m365_ingest::ports::investigation::InvestigateWith;
    let inv = Investigator::<InvestigateWith<_, _, _, _>> {
        api: microsoft(sim, http, RetryPolicy::context())?,
        secrets: secrets.clone(),
        integrations: StaticIntegrations(integrations.to_vec()),
        clock: SimClock(sim.clone()),
        context: None,
    };
    let kql = "AlertInfo | where Severity == \"high\" | project Timestamp, Title, ServiceSource | order by Timestamp desc | take 3";
    let r = inv.run(serde_json::json!({"kind": "hunting", "integration_id": "contoso", "query": kql, "hours": 48})).await;
    println!("\nan investigation query (advanced hunting, contoso): {kql}");
    if let Some(e) = &r.error {
        println!("  error {}: {}", e.code, e.message);
        return Ok(false);
    }
    for row in &r.rows {
        println!(
            "  {} | {} | {}",
            row["Timestamp"].as_str().unwrap_or("?"),
            row["Title"].as_str().unwrap_or("?"),
            row["ServiceSource"].as_str().unwrap_or("?")
        );
    }
    Ok(!r.rows.is_empty())
}

/// What a downstream system's request to disable an account comes to under contoso's rules
/// (remediation on, in its default dry-run mode): one user who may be acted on, and a Global
/// Administrator, protected. Returns whether both came out as they should.
pub(super) async fn remediation_dry_run(
    sim: &Arc<Simulator>,
    http: &HttpSettings,
    integrations: &[Integration],
    secrets: &Arc<MemorySecrets>,
) -> Result<bool, Failure> {
    use m365_ingest::adapters::local::StaticIntegrations;
    use m365_ingest::app::response::remediate::{Handled, RemediateSettings, Remediator};
    use m365_ingest::ports::remediation::RemediateWith;
    let results = Arc::new(MemoryAlertQueue::new());
    let r = Remediator::<RemediateWith<_, _, _, _, _, _>> {
        records: MemoryEvidenceJobs::new(),
        directory: microsoft(sim, http, RetryPolicy::one_step())?,
        results: results.clone(),
        secrets: secrets.clone(),
        integrations: StaticIntegrations(integrations.to_vec()),
        clock: SimClock(sim.clone()),
        settings: RemediateSettings { owner: "demo".into(), ..RemediateSettings::default() },
    };
    let people = sim.people(DEFAULT_TENANT_ID);
    println!("\nremediation (contoso: features.remediation on, remediation.mode dry_run, privileged roles protected):");
    let mut as_expected = true;
    for (n, (id, upn)) in [(5usize, &people[5]), (0, &people[0])].into_iter().map(|(n, p)| (n, (&p.0, &p.1))) {
        let body = serde_json::json!({"schema": "m365-ingest.remediation.v1", "request_id": format!("demo-{n}"), "integration_id": "contoso",
            "action": "disable_account", "user": upn, "alert_ref": "defender_alerts/demo", "reason": "credential theft suspected", "requested_by": "demo"});
        match r.handle(&body.to_string()).await {
            Handled::Ended(res) => {
                let why = res.refusal.as_ref().map(|x| format!("{}: {}", x.code, x.reason)).unwrap_or_default();
                println!("  disable_account {upn}: {:?} ({why})", res.status);
                let expected = if n == 0 { "privileged_role" } else { "dry_run" };
                as_expected &= res.refusal.as_ref().is_some_and(|x| x.code == expected) && !sim.account_disabled(id);
            }
            Handled::Retry(why) => {
                println!("  disable_account {upn}: not finished: {why}");
                as_expected = false;
            }
        }
    }
    println!("  {} results on the actions-result queue; no account was changed", results.len());
    Ok(as_expected)
}
