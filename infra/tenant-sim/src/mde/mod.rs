//! Simulated Defender for Endpoint API (ms-apis.md §7): machines, live response with its machine
//! actions, and the result downloads on a blob host of its own. Errors come in this API's own
//! shape, `{"error": {"code", "message", "target"}}` with the request's id as the target
//! (defender-endpoint/api/common-errors.md), not Graph's.

pub mod blob;
mod files;
pub mod library;
mod live_response;
mod machines;
pub(crate) mod profiles;
mod sealed;
pub mod state;

use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use serde_json::json;

use crate::graph::context::GraphCtx;
use crate::http;
use crate::state::Sim;

pub use state::MdeState;

/// get-machines.md, get-machineaction-object.md: Machine.Read.All or Machine.ReadWrite.All.
pub const MACHINE_ROLES: &[&str] = &["Machine.Read.All", "Machine.ReadWrite.All"];
/// get-live-response-result.md (ms.date 2025-11-13) lists only Machine.ReadWrite.All for
/// applications (the older text also took Machine.Read.All).
pub const RESULT_ROLES: &[&str] = &["Machine.ReadWrite.All"];
/// run-live-response.md: Machine.LiveResponse.
pub const LIVE_RESPONSE_ROLES: &[&str] = &["Machine.LiveResponse"];

/// An error as Defender for Endpoint writes it (common-errors.md).
pub fn error(ctx: &GraphCtx, status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "target": ctx.request_id}});
    ctx.stamp(http::json(status, &body, http::PLAIN_JSON))
}

/// Graph's refusal (token, role) retold in this API's shape.
fn refused(ctx: &GraphCtx, e: crate::graph::error::GraphError) -> Response {
    let code = if e.status.as_u16() == 401 { "Unauthorized" } else { "Forbidden" };
    error(ctx, e.status, code, &e.message)
}

pub fn routes() -> Router<Sim> {
    machines::routes().merge(profiles::routes()).merge(live_response::routes()).merge(library::routes()).merge(blob::routes())
}
