//! The simulated tenant the benchmark polls: N alerts already visible, realistic sizes.

use std::path::PathBuf;

use tenant_sim::data::kinds::{AlertKind, DEFAULT_MIX};
use tenant_sim::{Scenario, Simulator};

pub fn scenario(n: usize) -> Scenario {
    // Friendly: this measures CPU per alert against the floor and the Python peer. On the
    // unfriendly default the peer stops at the first short page (37 of 1,000 alerts: its paging
    // trusts a short page) and the run would time latency and throttling instead.
    let mut s = Scenario::friendly();
    let plan = &mut s.tenants[0].alerts;
    plan.count = n;
    plan.incidents = (n / 4).max(1);
    plan.from = "-24h".into();
    plan.to = "-10m".into();
    plan.latency_min_secs = 0;
    plan.latency_max_secs = 60;
    plan.update_fraction = 0.0;
    // Typical alerts of a few KB; the campaign alerts of hundreds of messages would make the
    // run measure those few giants rather than the path.
    plan.big_evidence_fraction = 0.0;
    plan.mix = DEFAULT_MIX.iter().filter(|(k, _)| *k != AlertKind::MdoCampaign).copied().collect();
    s
}

pub async fn start(n: usize) -> Result<(Simulator, PathBuf), String> {
    let sim = Simulator::start(scenario(n)).await.map_err(|e| e.to_string())?;
    let ca = std::env::temp_dir().join(format!("poll-bench-ca-{}.pem", std::process::id()));
    sim.write_ca(&ca).map_err(|e| e.to_string())?;
    Ok((sim, ca))
}
