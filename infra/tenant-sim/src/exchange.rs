//! Simulated Exchange Online admin API: `POST /adminapi/beta/{organization}/InvokeCommand`,
//! the REST endpoint behind the EXO V3 module. Microsoft does not document it as a public API;
//! the request and response shapes follow open-source callers (ms-apis.md §8, OSS-CIPP,
//! OSS-EXO2): `{"CmdletInput": {"CmdletName", "Parameters"}}` in, `{"value": [...]}` out.
//! App-only access needs `Exchange.ManageAsApp` and an Entra role on the app's service
//! principal, carried in the token's `wids` (app-only-auth-powershell-v2.md).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::entra::jwt::Jws;
use crate::entra::resources;
use crate::graph::context::{authorize_for, GraphCtx};
use crate::graph::error::GraphError;
use crate::http::{self, header_str};
use crate::state::Sim;

pub const ROLES: &[&str] = &["Exchange.ManageAsApp"];

/// Entra roles app-only-auth-powershell-v2.md lets an app hold for Exchange cmdlets.
const ASSIGNABLE_ROLES: &[&str] = &[
    "Compliance Administrator",
    "Exchange Administrator",
    "Global Administrator",
    "Global Reader",
    "Security Administrator",
    "Security Reader",
];

/// Cmdlets this simulator answers.
const CMDLETS: &[&str] = &["Get-QuarantineMessage"];

pub fn routes() -> Router<Sim> {
    Router::new().route("/adminapi/beta/{organization}/InvokeCommand", post(invoke))
}

async fn invoke(State(sim): State<Sim>, Path(org): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    match invoke_inner(&sim, &org, &headers, &body, &mut ctx) {
        Ok(v) => ctx.stamp(http::json(StatusCode::OK, &v, http::PLAIN_JSON)),
        Err(e) => e.into_response(&ctx),
    }
}

fn invoke_inner(sim: &Sim, org: &str, headers: &HeaderMap, body: &[u8], ctx: &mut GraphCtx) -> Result<Value, GraphError> {
    let who = authorize_for(sim, headers, ctx, resources::EXCHANGE, ROLES)?;
    let tenant = sim.directory().get(who.tenant_index).cloned().ok_or_else(|| GraphError::unauthorized("Invalid tenant."))?;
    if !org.eq_ignore_ascii_case(&tenant.domain) && !org.eq_ignore_ascii_case(&tenant.id) {
        return Err(GraphError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("The organization '{org}' was not found, or the token was issued for another tenant."),
        ));
    }
    let wids: Vec<String> = header_str(headers, "authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|t| Jws::parse(t.trim()))
        .and_then(|j| {
            j.claims.get("wids").and_then(|w| w.as_array()).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        })
        .unwrap_or_default();
    let has_role = ASSIGNABLE_ROLES.iter().filter_map(|r| resources::role_template_id(r)).any(|id| wids.iter().any(|w| w == id));
    if !has_role {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The role assigned to application isn't supported in this scenario.",
        ));
    }
    let input: Value = serde_json::from_slice(body).map_err(|e| GraphError::bad_request(format!("The request body is not JSON: {e}")))?;
    let name = input.pointer("/CmdletInput/CmdletName").and_then(Value::as_str).unwrap_or_default();
    if !CMDLETS.contains(&name) {
        return Err(GraphError::bad_request(format!("The term '{name}' is not recognized as a cmdlet available in this simulator.")));
    }
    Ok(
        json!({"@odata.context": format!("{}/adminapi/beta/{org}/$metadata#Collection(Exchange.GenericHashTable)", sim.base_url), "value": []}),
    )
}
