//! The request limits an app has in a tenant, each kept over a sliding window of wall-clock time
//! (the product paces on the real clock too) and answered as Graph answers them: 429 with
//! `Retry-After` (throttling.md).

use std::time::Duration;

use super::context::{GraphCtx, Principal};
use super::error::GraphError;
use crate::state::Sim;

pub fn throttled(wait: Duration) -> GraphError {
    GraphError { retry_after_secs: Some(wait.as_secs().max(1)), ..GraphError::for_status(429, None) }
}

/// Spends from a limit of the caller's app in its tenant (or of `scope` under it).
pub fn spend(sim: &Sim, who: &Principal, scope: &str, cost: u32, capacity: u32, window: Duration) -> Result<(), GraphError> {
    let key = format!("{}/{}/{scope}", who.tenant_index, who.client_id);
    sim.limits.admit(&key, cost, capacity, window).map_err(throttled)
}

/// One request to Graph's security API: 150 a minute per app per tenant by default
/// (throttling-limits.md, "Microsoft Graph security service limits"; `GraphSpec::security_limit`).
/// The table names `alert`, `securityActions` and `secureScore` and predates `alerts_v2`,
/// incidents, threat submissions and hunting; whether it covers them is undocumented, so the
/// simulator applies it to all of them (the stricter reading; ms-apis.md §11).
pub fn spend_security(sim: &Sim, ctx: &GraphCtx, who: &Principal) -> Result<(), GraphError> {
    let limit = sim.graph_spec().security_limit;
    spend_on_arrival(sim, ctx, who, "security", limit.requests, Duration::from_secs(limit.window_secs))
}

/// One request against a limit counted when it arrived.
pub fn spend_on_arrival(
    sim: &Sim,
    ctx: &GraphCtx,
    who: &Principal,
    scope: &str,
    capacity: u32,
    window: Duration,
) -> Result<(), GraphError> {
    let key = format!("{}/{}/{scope}", who.tenant_index, who.client_id);
    sim.limits.admit_at(&key, 1, capacity, window, ctx.arrived).map_err(throttled)
}
