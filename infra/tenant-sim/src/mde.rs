//! Simulated Defender for Endpoint API: `GET /api/machines` (defender-docs
//! `defender-endpoint/api/get-machines.md`; the machine is the sample of `get-machine-by-id.md`,
//! fixture `mde_machine_get.json`). Enough for a permission probe; live response comes later.
//! Errors come in this API's own shape, `{"error": {"code", "message", "target"}}` with the
//! request's id as the target (defender-endpoint/api/common-errors.md), not Graph's.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::entra::resources;
use crate::graph::context::{authorize_for, GraphCtx};
use crate::http::{self, query_pairs};
use crate::state::Sim;

const MACHINE: &str = include_str!("../tests/fixtures/microsoft-docs/mde_machine_get.json");
/// get-machines.md: Machine.Read.All or Machine.ReadWrite.All.
pub const MACHINE_ROLES: &[&str] = &["Machine.Read.All", "Machine.ReadWrite.All"];

/// An error as Defender for Endpoint writes it (common-errors.md).
pub fn error(ctx: &GraphCtx, status: axum::http::StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "target": ctx.request_id}});
    ctx.stamp(http::json(status, &body, http::PLAIN_JSON))
}

/// Graph's refusal (token, role) retold in this API's shape.
fn refused(ctx: &GraphCtx, e: crate::graph::error::GraphError) -> Response {
    let code = if e.status.as_u16() == 401 { "Unauthorized" } else { "Forbidden" };
    error(ctx, e.status, code, &e.message)
}

pub fn routes() -> Router<Sim> {
    Router::new().route("/api/machines", get(list)).route("/api/machines/{id}", get(one))
}

fn machine() -> Value {
    let mut m: Value = serde_json::from_str(MACHINE).unwrap_or_default();
    if let Some(o) = m.as_object_mut() {
        o.remove("@odata.context");
    }
    m
}

async fn list(State(sim): State<Sim>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    if let Err(e) = authorize_for(&sim, &headers, &mut ctx, resources::MDE, MACHINE_ROLES) {
        return refused(&ctx, e);
    }
    let top = query_pairs(uri.query()).iter().find(|(k, _)| k == "$top").and_then(|(_, v)| v.parse::<usize>().ok()).unwrap_or(10_000);
    let value: Vec<Value> = std::iter::once(machine()).take(top).collect();
    let body = json!({"@odata.context": "https://api.security.microsoft.com/api/$metadata#Machines", "value": value});
    ctx.stamp(http::json(axum::http::StatusCode::OK, &body, http::PLAIN_JSON))
}

async fn one(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    if let Err(e) = authorize_for(&sim, &headers, &mut ctx, resources::MDE, MACHINE_ROLES) {
        return refused(&ctx, e);
    }
    let m = machine();
    if m.get("id").and_then(Value::as_str) == Some(id.as_str()) {
        ctx.stamp(http::json(axum::http::StatusCode::OK, &m, http::PLAIN_JSON))
    } else {
        error(&ctx, axum::http::StatusCode::NOT_FOUND, "ResourceNotFound", &format!("Machine {id} was not found"))
    }
}
