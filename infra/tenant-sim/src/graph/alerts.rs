//! `GET /v1.0/security/alerts_v2` and `/v1.0/security/alerts_v2/{id}`
//! (microsoft-graph-docs-contrib api-reference/v1.0/api/security-list-alerts_v2.md,
//! security-get-alert.md); limits from security-error-codes.md and ms-apis.md §2.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;

use super::collection::{self, Envelope};
use super::context::{authorize, GraphCtx};
use super::error::GraphError;
use crate::data::alert::{AlertView, ALERT_FILTER};
use crate::http::query_pairs;
use crate::odata::{CollectionQuery, QueryLimits};
use crate::state::Sim;

/// Least-privileged first (security-list-alerts_v2-permissions.md).
pub const ALERT_ROLES: &[&str] = &["SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All"];

pub fn limits(default_top: usize) -> QueryLimits {
    QueryLimits {
        schema: &ALERT_FILTER,
        default_top,
        // Values above 1000 are clamped, not rejected (elastic/integrations#20234).
        max_top: 1000,
        clamp_top: true,
        max_skip: 500,
        // Not documented; Elastic's production connector orders by lastUpdateDateTime.
        orderable: &["lastUpdateDateTime", "createdDateTime"],
        expandable: &[],
        include_unknown: false,
    }
}

pub async fn list(State(sim): State<Sim>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    match list_inner(&sim, &uri, &headers, &mut ctx) {
        Ok(r) => r,
        Err(e) => e.into_response(&ctx),
    }
}

fn list_inner(sim: &Sim, uri: &axum::http::Uri, headers: &HeaderMap, ctx: &mut GraphCtx) -> Result<Response, GraphError> {
    let who = authorize(sim, headers, ctx, ALERT_ROLES)?;
    super::quota::spend_security(sim, ctx, &who)?;
    let spec = sim.graph_spec();
    let q = CollectionQuery::parse(
        &query_pairs(uri.query()),
        &QueryLimits { include_unknown: ctx.include_unknown, ..limits(spec.default_page_size) },
    )
    .map_err(|e| GraphError::bad_request(e.message))?;
    let data = sim.data();
    let tenant = data.get(who.tenant_index).ok_or_else(|| GraphError::unauthorized("Access token validation failure. Invalid tenant."))?;
    let now = ctx.now;
    let matching: Vec<AlertView<'_>> = tenant
        .alerts
        .iter()
        .filter_map(|a| a.visible(now).map(|v| a.view(v)))
        .filter(|v| q.filter.as_ref().is_none_or(|f| f.matches(v)))
        .collect();
    let (page, total, more) = collection::page(matching, &q, |v, p| v.time(p), collection::Shaping::of(sim, &spec));
    let items: Vec<Value> = page.iter().map(|v| Value::Object(v.render(&tenant.pool, ctx.include_unknown))).collect();
    let env = Envelope { base_url: &sim.base_url, path: uri.path(), context: "security/alerts_v2", omit_next_link: spec.omit_next_link };
    Ok(collection::respond(ctx, &env, &q, items, total, more))
}

pub async fn get_one(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = (|| {
        let who = authorize(&sim, &headers, &mut ctx, ALERT_ROLES)?;
        super::quota::spend_security(&sim, &ctx, &who)?;
        let data = sim.data();
        let tenant = data.get(who.tenant_index).ok_or_else(|| GraphError::not_found("Tenant not found."))?;
        let alert = tenant.alert(&id).ok_or_else(|| GraphError::not_found(format!("Alert with id '{id}' was not found.")))?;
        let v = alert.visible(ctx.now).ok_or_else(|| GraphError::not_found(format!("Alert with id '{id}' was not found.")))?;
        Ok(collection::respond_entity(&ctx, &sim.base_url, "security/alerts_v2", alert.view(v).render(&tenant.pool, ctx.include_unknown)))
    })();
    result.unwrap_or_else(|e: GraphError| e.into_response(&ctx))
}
