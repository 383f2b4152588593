//! Per-request context of a Graph call: who is calling, for which tenant, with which preferences.

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

use super::error::GraphError;
use crate::entra::jwt::Jws;
use crate::entra::resources;
use crate::http::header_str;
use crate::record::Caller;
use crate::state::Sim;
use crate::time::Instant;

#[derive(Debug, Clone)]
pub struct GraphCtx {
    pub now: Instant,
    pub request_id: String,
    pub client_request_id: String,
    /// `Prefer: include-unknown-enum-members` was sent.
    pub include_unknown: bool,
    pub caller: Option<String>,
    /// When the request arrived (the front layer's stamp; now, for a request that bypassed it).
    pub arrived: std::time::Instant,
}

impl GraphCtx {
    pub fn new(sim: &Sim, headers: &HeaderMap) -> Self {
        let include_unknown = headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("include-unknown-enum-members"));
        let request_id = sim.guid();
        GraphCtx {
            now: sim.clock.now(),
            client_request_id: header_str(headers, "client-request-id").map_or_else(|| request_id.clone(), str::to_owned),
            request_id,
            include_unknown,
            caller: None,
            arrived: header_str(headers, crate::limits::ARRIVAL_HEADER)
                .and_then(|v| v.parse().ok())
                .map_or_else(std::time::Instant::now, |us| sim.limits.arrival(us)),
        }
    }

    /// Adds the headers Graph puts on every response.
    pub fn stamp(&self, mut r: Response) -> Response {
        let h = r.headers_mut();
        for (k, v) in [("request-id", &self.request_id), ("client-request-id", &self.client_request_id)] {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(k, v);
            }
        }
        h.insert(
            "x-ms-ags-diagnostic",
            HeaderValue::from_static(
                r#"{"ServerInfo":{"DataCenter":"Simulated","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"SIM0001"}}"#,
            ),
        );
        h.insert("strict-transport-security", HeaderValue::from_static("max-age=31536000"));
        if self.include_unknown {
            h.insert("preference-applied", HeaderValue::from_static("include-unknown-enum-members"));
        }
        if let Some(c) = &self.caller {
            r.extensions_mut().insert(Caller(c.clone()));
        }
        r
    }
}

/// Who a valid Graph token belongs to.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_index: usize,
    pub client_id: String,
    pub roles: Vec<String>,
}

/// Validates the bearer token for Graph and checks that it carries one of
/// `required` (application permissions; the least-privileged one first).
pub fn authorize(sim: &Sim, headers: &HeaderMap, ctx: &mut GraphCtx, required: &[&str]) -> Result<Principal, GraphError> {
    authorize_for(sim, headers, ctx, resources::GRAPH, required)
}

/// The same checks for any resource API: the token's `aud` must be `resource`'s, and its
/// `roles` must hold one of `required` (compared without case: MDCA documents
/// `Investigation.read` while tokens carry `investigation.read`).
pub fn authorize_for(
    sim: &Sim,
    headers: &HeaderMap,
    ctx: &mut GraphCtx,
    resource: resources::Resource,
    required: &[&str],
) -> Result<Principal, GraphError> {
    let auth = header_str(headers, "authorization").unwrap_or_default();
    let token = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer ")).map(str::trim).unwrap_or_default();
    if token.is_empty() {
        return Err(GraphError::unauthorized("Access token is empty."));
    }
    let jws = Jws::parse(token).ok_or_else(|| GraphError::unauthorized("CompactToken parsing failed with error code: 80049217"))?;
    let known = sim.verified_tokens.lock().unwrap_or_else(|p| p.into_inner()).contains(token);
    if !known {
        if !jws.verify_rs256(sim.signer.public_key()) {
            return Err(GraphError::unauthorized("Access token validation failure. Invalid signature."));
        }
        let mut verified = sim.verified_tokens.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a long soak issues many tokens; forgetting them only costs a check again.
        if verified.len() >= 4_096 {
            verified.clear();
        }
        verified.insert(token.to_owned());
    }
    let app = jws.claim_str("appid").or_else(|| jws.claim_str("azp")).unwrap_or_default().to_owned();
    ctx.caller = Some(app.clone());
    let now = ctx.now.unix_seconds();
    let expired = jws.claim_i64("exp").is_none_or(|e| e <= now);
    if expired || jws.claim_str("uti").is_some_and(|u| sim.is_expired_early(u)) {
        return Err(GraphError::unauthorized("Lifetime validation failed, the token is expired."));
    }
    if jws.claim_i64("nbf").is_some_and(|n| n > now + 300) {
        return Err(GraphError::unauthorized("Lifetime validation failed, the token is not yet valid."));
    }
    let tid = jws.claim_str("tid").unwrap_or_default();
    let tenant_index = sim
        .directory()
        .iter()
        .position(|t| t.id == tid)
        .ok_or_else(|| GraphError::unauthorized("Access token validation failure. Invalid tenant."))?;
    // Each cloud's APIs accept their own cloud's audiences only (concepts/deployments.md).
    let cloud = sim.directory()[tenant_index].cloud;
    if jws.claim_str("aud").and_then(|a| resources::by_audience(cloud, a)) != Some(resource) {
        return Err(GraphError::unauthorized("Access token validation failure. Invalid audience."));
    }
    let roles: Vec<String> = jws
        .claims
        .get("roles")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if !required.is_empty() && !required.iter().any(|r| roles.iter().any(|have| have.eq_ignore_ascii_case(r))) {
        return Err(GraphError::new(
            axum::http::StatusCode::FORBIDDEN,
            "Forbidden",
            format!("Missing application roles. API required roles: {}. Application roles: {}.", required.join(", "), roles.join(", ")),
        ));
    }
    Ok(Principal { tenant_index, client_id: app, roles })
}

/// The `uti` of the bearer token in these headers, for the token-expiry fault.
pub fn bearer_uti(headers: &HeaderMap) -> Option<String> {
    let auth = header_str(headers, "authorization")?;
    let jws = Jws::parse(auth.strip_prefix("Bearer ")?.trim())?;
    jws.claim_str("uti").map(str::to_owned)
}
