//! `GET /v1.0/security/incidents` (with `$expand=alerts`), `/incidents/{id}` and
//! `/incidents/{id}/alerts` (api-reference/v1.0/api/security-list-incidents.md,
//! security-get-incident.md; migration guide for the alerts navigation).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::alerts;
use super::collection::{self, Envelope};
use super::context::{authorize, GraphCtx};
use super::error::GraphError;
use crate::data::incident::{IncidentView, INCIDENT_FILTER};
use crate::data::TenantData;
use crate::http::query_pairs;
use crate::odata::{CollectionQuery, QueryLimits};
use crate::state::Sim;

pub const INCIDENT_ROLES: &[&str] = &["SecurityIncident.Read.All", "SecurityIncident.ReadWrite.All"];

fn limits(default_top: usize, max_top: usize) -> QueryLimits {
    QueryLimits {
        schema: &INCIDENT_FILTER,
        default_top: default_top.min(max_top),
        max_top,
        clamp_top: true,
        max_skip: 500,
        orderable: &["lastUpdateDateTime", "createdDateTime"],
        expandable: &["alerts"],
        include_unknown: false,
    }
}

fn render_with_alerts(v: &IncidentView<'_>, tenant: &TenantData, expand: bool, include_unknown: bool) -> Value {
    let mut m = v.render(include_unknown);
    if expand {
        let alerts: Vec<Value> =
            v.state.alerts.iter().map(|(a, ver)| Value::Object(a.view(ver).render(&tenant.pool, include_unknown))).collect();
        m.insert("alerts".into(), Value::Array(alerts));
    }
    Value::Object(m)
}

pub async fn list(State(sim): State<Sim>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = (|| {
        let who = authorize(&sim, &headers, &mut ctx, INCIDENT_ROLES)?;
        super::quota::spend_security(&sim, &ctx, &who)?;
        let spec = sim.graph_spec();
        let q = CollectionQuery::parse(
            &query_pairs(uri.query()),
            &QueryLimits { include_unknown: ctx.include_unknown, ..limits(spec.default_page_size, spec.incidents_max_top) },
        )
        .map_err(|e| GraphError::bad_request(e.message))?;
        let data = sim.data();
        let tenant =
            data.get(who.tenant_index).ok_or_else(|| GraphError::unauthorized("Access token validation failure. Invalid tenant."))?;
        let now = ctx.now;
        let matching: Vec<IncidentView<'_>> = tenant
            .incidents
            .iter()
            .filter_map(|i| i.state(&tenant.alerts, now).map(|state| IncidentView { rec: i, state }))
            .filter(|v| q.filter.as_ref().is_none_or(|f| f.matches(v)))
            .collect();
        let (page, total, more) = collection::page(matching, &q, |v, p| v.time(p), collection::Shaping::of(&sim, &spec));
        let expand = q.expand.contains(&"alerts");
        if expand && spec.expand_alert_limit > 0 {
            let embedded: usize = page.iter().map(|v| v.state.alerts.len()).sum();
            if embedded > spec.expand_alert_limit {
                return Err(GraphError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "An error occurred while expanding 'alerts'. The operation timed out.",
                ));
            }
        }
        let items: Vec<Value> = page.iter().map(|v| render_with_alerts(v, tenant, expand, ctx.include_unknown)).collect();
        let context = if expand { "security/incidents(alerts())" } else { "security/incidents" };
        let env = Envelope { base_url: &sim.base_url, path: uri.path(), context, omit_next_link: spec.omit_next_link };
        Ok(collection::respond(&ctx, &env, &q, items, total, more))
    })();
    result.unwrap_or_else(|e: GraphError| e.into_response(&ctx))
}

pub async fn get_one(State(sim): State<Sim>, Path(id): Path<String>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = (|| {
        let who = authorize(&sim, &headers, &mut ctx, INCIDENT_ROLES)?;
        super::quota::spend_security(&sim, &ctx, &who)?;
        let expand = query_pairs(uri.query()).iter().any(|(k, v)| k == "$expand" && v == "alerts");
        let data = sim.data();
        let tenant = data.get(who.tenant_index).ok_or_else(|| GraphError::not_found("Tenant not found."))?;
        let missing = || GraphError::not_found(format!("Incident with id '{id}' was not found."));
        let inc = tenant.incident(&id).ok_or_else(missing)?;
        let state = inc.state(&tenant.alerts, ctx.now).ok_or_else(missing)?;
        let v = IncidentView { rec: inc, state };
        let Value::Object(m) = render_with_alerts(&v, tenant, expand, ctx.include_unknown) else { return Err(missing()) };
        Ok(collection::respond_entity(&ctx, &sim.base_url, "security/incidents", m))
    })();
    result.unwrap_or_else(|e: GraphError| e.into_response(&ctx))
}

/// The alerts of one incident: the per-incident fallback when `$expand` fails.
pub async fn alerts_of(State(sim): State<Sim>, Path(id): Path<String>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = (|| {
        let who = authorize(&sim, &headers, &mut ctx, INCIDENT_ROLES)?;
        super::quota::spend_security(&sim, &ctx, &who)?;
        let spec = sim.graph_spec();
        let q = CollectionQuery::parse(
            &query_pairs(uri.query()),
            &QueryLimits { include_unknown: ctx.include_unknown, ..alerts::limits(spec.default_page_size) },
        )
        .map_err(|e| GraphError::bad_request(e.message))?;
        let data = sim.data();
        let tenant = data.get(who.tenant_index).ok_or_else(|| GraphError::not_found("Tenant not found."))?;
        let missing = || GraphError::not_found(format!("Incident with id '{id}' was not found."));
        let inc = tenant.incident(&id).ok_or_else(missing)?;
        let state = inc.state(&tenant.alerts, ctx.now).ok_or_else(missing)?;
        let views: Vec<_> =
            state.alerts.iter().map(|(a, v)| a.view(v)).filter(|v| q.filter.as_ref().is_none_or(|f| f.matches(v))).collect();
        let (page, total, more) = collection::page(views, &q, |v, p| v.time(p), collection::Shaping::of(&sim, &spec));
        let items: Vec<Value> = page.iter().map(|v| Value::Object(v.render(&tenant.pool, ctx.include_unknown))).collect();
        let context = format!("security/incidents('{id}')/alerts");
        let env = Envelope { base_url: &sim.base_url, path: uri.path(), context: &context, omit_next_link: spec.omit_next_link };
        Ok(collection::respond(&ctx, &env, &q, items, total, more))
    })();
    result.unwrap_or_else(|e: GraphError| e.into_response(&ctx))
}
