//! Graph's mail collections: a mailbox's messages (`GET /v1.0/users/{id}/messages`,
//! api-reference/v1.0/api/user-list-messages.md; the doc sample `graph_user_messages_list.json`
//! is served as the data, for the Test & Save probe) and email threat submissions
//! (`GET /beta/security/threatSubmission/emailThreats` and `/{id}`,
//! api-reference/beta/api/security-emailthreatsubmission-list.md and -get.md): the tenant's
//! generated submissions with their lifecycle (data/submission.rs).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::collection::{self, Envelope};
use super::context::{authorize, GraphCtx};
use super::error::GraphError;
use crate::http::{self, query_pairs};
use crate::odata::{CollectionQuery, FilterSchema, Prop, PropKind, QueryLimits};
use crate::state::Sim;

const MESSAGES: &str = include_str!("../../tests/fixtures/microsoft-docs/graph_user_messages_list.json");

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
    // A mailbox by address is the tenant's (the reporting one, or a recipient's with the emails
    // alerts say reached it), under the access policy and Outlook's limits; one by object id
    // serves the docs sample.
    if user.contains('@') {
        return super::mailbox::mailbox_messages(sim, user, uri, headers).await;
    }
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

/// What callers may filter submissions on. security-emailthreatsubmission-list.md says `$filter`
/// is supported but names no property; `createdDateTime` (what a poller windows on) is the one
/// served, anything else is Graph's 400 (sim README: undocumented behaviour).
pub static SUBMISSION_FILTER: FilterSchema =
    FilterSchema { entity: "emailThreatSubmission", props: &[Prop { name: "createdDateTime", kind: PropKind::DateTime }] };

/// `$filter`, `$top`, `$skipToken` and `$count` are the documented options; `$skip` and
/// `$orderby` are not, so they are refused (the order is Graph's default, newest first, and
/// nobody promises it). The page size is not documented either: 100 here, larger `$top`s cut
/// to it, so a client has to page.
fn submission_limits(include_unknown: bool) -> QueryLimits {
    QueryLimits {
        schema: &SUBMISSION_FILTER,
        default_top: 100,
        max_top: 100,
        clamp_top: true,
        max_skip: 0,
        orderable: &[],
        expandable: &[],
        include_unknown,
    }
}

/// Email threat submissions are offered in the global service only (security-emailthreatsubmission-list.md,
/// national cloud table). What a US Government cloud answers is not documented; the simulator
/// answers as Graph does for a segment its metadata lacks.
fn submissions_offered(sim: &Sim, tenant_index: usize) -> Result<(), GraphError> {
    use crate::entra::resources::Cloud;
    match sim.directory()[tenant_index].cloud {
        Cloud::Global | Cloud::Gcc => Ok(()),
        Cloud::GccHigh | Cloud::Dod => Err(GraphError::bad_request("Resource not found for the segment 'threatSubmission'.")),
    }
}

/// `GET /beta/security/threatSubmission/emailThreats` (security-emailthreatsubmission-list.md).
pub async fn submissions(State(sim): State<Sim>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = (|| {
        let who = authorize(&sim, &headers, &mut ctx, SUBMISSION_ROLES)?;
        super::quota::spend_security(&sim, &ctx, &who)?;
        submissions_offered(&sim, who.tenant_index)?;
        let q = CollectionQuery::parse(&query_pairs(uri.query()), &submission_limits(ctx.include_unknown))
            .map_err(|e| GraphError::bad_request(e.message))?;
        let now = ctx.now;
        let matching: Vec<Map<String, Value>> = sim
            .submissions()
            .get(who.tenant_index)
            .into_iter()
            .flatten()
            .filter(|s| s.visible <= now)
            .map(|s| s.render(now, ctx.include_unknown))
            .filter(|m| q.filter.as_ref().is_none_or(|f| f.matches(m)))
            .collect();
        let created = |m: &Map<String, Value>, _: &str| {
            m.get("createdDateTime").and_then(Value::as_str).and_then(|t| crate::time::Instant::parse(t).ok()).unwrap_or_default()
        };
        let spec = sim.graph_spec();
        let (page, total, more) = collection::page(matching, &q, created, collection::Shaping::of(&sim, &spec));
        let env = Envelope {
            base_url: &sim.base_url,
            path: uri.path(),
            context: "security/threatSubmission/emailThreats",
            omit_next_link: spec.omit_next_link,
        };
        Ok(collection::respond(&ctx, &env, &q, page.into_iter().map(Value::Object).collect(), total, more))
    })();
    result.unwrap_or_else(|e: GraphError| e.into_response(&ctx))
}

/// `GET /beta/security/threatSubmission/emailThreats/{id}` (security-emailthreatsubmission-get.md).
pub async fn submission(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = (|| {
        let who = authorize(&sim, &headers, &mut ctx, SUBMISSION_ROLES)?;
        super::quota::spend_security(&sim, &ctx, &who)?;
        submissions_offered(&sim, who.tenant_index)?;
        let all = sim.submissions();
        let found = all.get(who.tenant_index).into_iter().flatten().find(|s| s.id == id && s.visible <= ctx.now);
        let s = found.ok_or_else(|| GraphError::not_found(format!("Submission with id '{id}' was not found.")))?;
        let mut m = Map::new();
        m.insert(
            "@odata.context".into(),
            Value::String(format!("{}/beta/$metadata#security/threatSubmission/emailThreats/$entity", sim.base_url)),
        );
        m.extend(s.render(ctx.now, ctx.include_unknown));
        Ok(ctx.stamp(http::json(StatusCode::OK, &Value::Object(m), http::ODATA_JSON)))
    })();
    result.unwrap_or_else(|e: GraphError| e.into_response(&ctx))
}
