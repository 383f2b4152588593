//! Graph collections the Test & Save probes read once: a mailbox's messages
//! (`GET /v1.0/users/{id}/messages`, api-reference/v1.0/api/user-list-messages.md, fixture
//! `graph_user_messages_list.json`) and email threat submissions
//! (`GET /beta/security/threatSubmission/emailThreats`,
//! api-reference/beta/api/security-emailthreatsubmission-list.md, fixture
//! `graph_email_threat_submissions_list.json`). The doc samples are served as the data.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::context::{authorize, GraphCtx};
use super::error::GraphError;
use crate::http::{self, query_pairs};
use crate::state::Sim;

const MESSAGES: &str = include_str!("../../tests/fixtures/microsoft-docs/graph_user_messages_list.json");
const SUBMISSIONS: &str = include_str!("../../tests/fixtures/microsoft-docs/graph_email_threat_submissions_list.json");

/// user-list-messages-permissions.md (application).
pub const MAIL_ROLES: &[&str] = &["Mail.ReadBasic.All", "Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite"];
/// security-emailthreatsubmission-list-permissions.md (application).
pub const SUBMISSION_ROLES: &[&str] = &["ThreatSubmission.Read.All", "ThreatSubmission.ReadWrite.All"];

fn top_of(doc: &str, query: Option<&str>) -> Result<Value, GraphError> {
    let mut v: Value = serde_json::from_str(doc).map_err(|e| GraphError::bad_request(e.to_string()))?;
    let pairs = query_pairs(query);
    if let Some((_, t)) = pairs.iter().find(|(k, _)| k == "$top") {
        let n: usize = t.parse().map_err(|_| GraphError::bad_request(format!("Invalid $top value '{t}'.")))?;
        if let Some(a) = v.get_mut("value").and_then(Value::as_array_mut) {
            a.truncate(n);
        }
    }
    if let Some((_, f)) = pairs.iter().find(|(k, _)| k == "$filter") {
        // Only the syntax is checked: a filter that does not parse is Graph's 400.
        if crate::odata::filter::parse(f).is_err() {
            return Err(GraphError::bad_request(format!("Invalid filter clause: {f}")));
        }
    }
    Ok(v)
}

pub async fn messages(State(sim): State<Sim>, Path(user): Path<String>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = authorize(&sim, &headers, &mut ctx, MAIL_ROLES).and_then(|who| {
        let domain = sim.directory().get(who.tenant_index).map(|t| t.domain.clone()).unwrap_or_default();
        let in_tenant = user.rsplit_once('@').is_some_and(|(_, d)| d.eq_ignore_ascii_case(&domain)) || user.len() == 36;
        if !in_tenant {
            return Err(GraphError::new(StatusCode::NOT_FOUND, "ErrorInvalidUser", format!("The requested user '{user}' is invalid.")));
        }
        top_of(MESSAGES, uri.query())
    });
    match result {
        Ok(v) => ctx.stamp(http::json(StatusCode::OK, &v, http::ODATA_JSON)),
        Err(e) => e.into_response(&ctx),
    }
}

pub async fn submissions(State(sim): State<Sim>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    match authorize(&sim, &headers, &mut ctx, SUBMISSION_ROLES).and_then(|_| top_of(SUBMISSIONS, uri.query())) {
        Ok(v) => ctx.stamp(http::json(StatusCode::OK, &v, http::ODATA_JSON)),
        Err(e) => e.into_response(&ctx),
    }
}
