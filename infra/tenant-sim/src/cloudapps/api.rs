//! `GET|POST /api/v1/alerts/` (api-alerts-list.md) and `GET /api/v1/alerts/<pk>/`
//! (api-alerts-fetch.md), with api-introduction.md's filters, sorting, skip/limit and limits.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::CloudAppsAlert;
use crate::entra::resources;
use crate::graph::context::{authorize_for, GraphCtx, Principal};
use crate::http::{self, header_str, query_pairs};
use crate::state::Sim;

/// api-authentication-application.md: alerts list and fetch need Investigation.read.
pub const ROLES: &[&str] = &["investigation.read", "investigation.manage"];

pub struct ApiError {
    status: StatusCode,
    detail: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn bad(detail: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, detail: detail.into(), retry_after_secs: None }
    }

    pub fn into_response(self, ctx: &GraphCtx) -> Response {
        let mut r = http::json(self.status, &json!({"detail": self.detail}), http::PLAIN_JSON);
        if let Some(s) = self.retry_after_secs {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
        }
        ctx.stamp(r)
    }
}

/// The same checks for the other Cloud Apps endpoints (activities).
pub fn admit_request(sim: &Sim, headers: &HeaderMap, ctx: &mut GraphCtx) -> Result<Principal, ApiError> {
    admit(sim, headers, ctx)
}

/// Token, role, then the per-tenant rate limit (requests refused for auth do not count).
fn admit(sim: &Sim, headers: &HeaderMap, ctx: &mut GraphCtx) -> Result<Principal, ApiError> {
    let who = authorize_for(sim, headers, ctx, resources::MDCA, ROLES).map_err(|e| ApiError {
        status: e.status,
        detail: e.message,
        retry_after_secs: None,
    })?;
    if let Err(wait) = sim.cloud_apps.admit(who.tenant_index) {
        let secs = wait.as_secs().max(1);
        return Err(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            detail: format!("Request was throttled. Expected available in {secs} seconds."),
            retry_after_secs: sim.cloud_apps.spec().retry_after.then_some(secs),
        });
    }
    Ok(who)
}

/// The list request: JSON or form body (api-introduction.md "Filters"), or query parameters.
#[derive(Debug, Default)]
pub struct ListRequest {
    pub filters: Map<String, Value>,
    pub sort_field: Option<String>,
    pub sort_desc: bool,
    pub skip: usize,
    pub limit: Option<usize>,
}

impl ListRequest {
    fn from_value(v: &Value) -> Result<Self, ApiError> {
        let obj = v.as_object().ok_or_else(|| ApiError::bad("The request body must be a JSON object."))?;
        let mut r = ListRequest::default();
        for (k, v) in obj {
            match k.as_str() {
                "filters" => {
                    r.filters =
                        v.as_object().cloned().ok_or_else(|| ApiError::bad("filters: must be an object of {field: {operator: value}}"))?
                }
                "sortField" => r.sort_field = Some(v.as_str().unwrap_or_default().to_owned()),
                "sortDirection" => r.sort_desc = direction(v.as_str().unwrap_or_default())?,
                "skip" => r.skip = number(v, "skip")?,
                "limit" => r.limit = Some(number(v, "limit")?),
                other => return Err(ApiError::bad(format!("Unknown parameter `{other}`."))),
            }
        }
        Ok(r)
    }

    fn from_pairs(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut r = ListRequest::default();
        for (k, v) in pairs {
            match k.as_str() {
                "sortField" => r.sort_field = Some(v.clone()),
                "sortDirection" => r.sort_desc = direction(v)?,
                "skip" => r.skip = v.parse().map_err(|_| ApiError::bad("skip: must be a non-negative integer"))?,
                "limit" => r.limit = Some(v.parse().map_err(|_| ApiError::bad("limit: must be a non-negative integer"))?),
                "filters" => {
                    let f: Value = serde_json::from_str(v).map_err(|e| ApiError::bad(format!("filters: not JSON: {e}")))?;
                    r.filters = f.as_object().cloned().ok_or_else(|| ApiError::bad("filters: must be an object"))?;
                }
                _ => {}
            }
        }
        Ok(r)
    }
}

fn direction(s: &str) -> Result<bool, ApiError> {
    match s {
        "asc" => Ok(false),
        "desc" => Ok(true),
        _ => Err(ApiError::bad("sortDirection: must be asc or desc")),
    }
}

fn number(v: &Value, name: &str) -> Result<usize, ApiError> {
    v.as_u64().map(|n| n as usize).ok_or_else(|| ApiError::bad(format!("{name}: must be a non-negative integer")))
}

pub async fn list_post(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let form = header_str(&headers, "content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let req = if body.is_empty() {
        Ok(ListRequest::default())
    } else if form {
        ListRequest::from_pairs(&form_urlencoded::parse(&body).into_owned().collect::<Vec<_>>())
    } else {
        serde_json::from_slice::<Value>(&body)
            .map_err(|e| ApiError::bad(format!("JSON parse error - {e}")))
            .and_then(|v| ListRequest::from_value(&v))
    };
    respond(&sim, &headers, &mut ctx, req)
}

/// GET takes the same JSON body as POST: the docs' own example is `curl -XGET ... -d '{...}'`
/// (api-introduction.md, Filters); without a body, the query string.
pub async fn list_get(State(sim): State<Sim>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    if !body.is_empty() {
        return list_post(State(sim), headers, body).await;
    }
    let mut ctx = GraphCtx::new(&sim, &headers);
    let req = ListRequest::from_pairs(&query_pairs(uri.query()));
    respond(&sim, &headers, &mut ctx, req)
}

fn respond(sim: &Sim, headers: &HeaderMap, ctx: &mut GraphCtx, req: Result<ListRequest, ApiError>) -> Response {
    let result = admit(sim, headers, ctx).and_then(|who| req.and_then(|r| list(sim, who.tenant_index, &r, ctx.now.0 / 10_000)));
    match result {
        Ok(body) => {
            let mut r = Response::new(axum::body::Body::from(body));
            r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
            ctx.stamp(r)
        }
        Err(e) => e.into_response(ctx),
    }
}

/// The page as bytes: each alert's stored text, unchanged.
pub fn list(sim: &Sim, tenant: usize, req: &ListRequest, now_ms: i64) -> Result<String, ApiError> {
    let spec = sim.cloud_apps.spec();
    let limit = req.limit.unwrap_or(spec.max_limit).min(spec.max_limit);
    let preds = req.filters.iter().map(|(f, ops)| predicate(f, ops)).collect::<Result<Vec<_>, _>>()?;
    let all = sim.cloud_apps.alerts.read().unwrap_or_else(|p| p.into_inner());
    let mut matching: Vec<&CloudAppsAlert> =
        all.get(tenant).map(|v| v.iter().filter(|a| a.visible_ms <= now_ms && preds.iter().all(|p| p(a))).collect()).unwrap_or_default();
    if spec.shuffle_ties {
        // A fresh order of equal timestamps on every request: the stable sorts below keep it.
        crate::graph::collection::shuffle(&mut matching, sim.random());
    }
    match req.sort_field.as_deref() {
        None | Some("date") => matching.sort_by_key(|a| a.timestamp_ms),
        Some("severity") => matching.sort_by_key(|a| (a.severity, a.timestamp_ms)),
        Some(other) => return Err(ApiError::bad(format!("sortField: `{other}` is not sortable; use date or severity"))),
    }
    // Without a sortDirection the portal lists newest first.
    if req.sort_desc || req.sort_field.is_none() {
        matching.reverse();
    }
    let total = matching.len();
    let page: Vec<&str> = matching.iter().skip(req.skip).take(limit).map(|a| a.body.as_str()).collect();
    let has_next = req.skip + page.len() < total;
    let (shown, more_than) = if spec.total_cap > 0 && total > spec.total_cap { (spec.total_cap, true) } else { (total, false) };
    Ok(format!(r#"{{"data":[{}],"hasNext":{has_next},"max":{},"total":{shown},"moreThanTotal":{more_than}}}"#, page.join(","), page.len()))
}

type Pred = Box<dyn Fn(&CloudAppsAlert) -> bool>;

/// One field's operators (api-introduction.md "Filters"; api-alerts-list.md for the fields).
fn predicate(field: &str, ops: &Value) -> Result<Pred, ApiError> {
    let ops = ops.as_object().ok_or_else(|| ApiError::bad(format!("filters.{field}: must be an object of {{operator: value}}")))?;
    let get: fn(&CloudAppsAlert) -> i64 = match field {
        "date" => |a| a.timestamp_ms,
        "severity" => |a| a.severity,
        "resolutionStatus" => |a| a.resolution_status,
        "alertOpen" => |a| i64::from(a.resolution_status == 0),
        _ => return Err(ApiError::bad(format!("filters: `{field}` is not a supported filter of this simulator"))),
    };
    let mut preds: Vec<Box<dyn Fn(i64) -> bool>> = Vec::new();
    for (op, v) in ops {
        let n = |v: &Value| v.as_i64().or_else(|| v.as_bool().map(i64::from));
        let one = || n(v).ok_or_else(|| ApiError::bad(format!("filters.{field}.{op}: must be a number")));
        let many = || -> Result<Vec<i64>, ApiError> {
            match v {
                Value::Array(a) => {
                    a.iter().map(|x| n(x).ok_or_else(|| ApiError::bad(format!("filters.{field}.{op}: numbers only")))).collect()
                }
                _ => Ok(vec![one()?]),
            }
        };
        preds.push(match op.as_str() {
            "eq" => {
                let set = many()?;
                Box::new(move |x| set.contains(&x))
            }
            "neq" => {
                let set = many()?;
                Box::new(move |x| !set.contains(&x))
            }
            "gt" => {
                let t = one()?;
                Box::new(move |x| x > t)
            }
            "gte" => {
                let t = one()?;
                Box::new(move |x| x >= t)
            }
            "lt" => {
                let t = one()?;
                Box::new(move |x| x < t)
            }
            "lte" => {
                let t = one()?;
                Box::new(move |x| x <= t)
            }
            "range" => {
                // "list of objects containing start and end fields; returns all records within
                // one of the provided ranges" (api-introduction.md, Operators).
                let bad = || ApiError::bad(format!("filters.{field}.range: must be a list of {{\"start\": n, \"end\": n}}"));
                let ranges = v
                    .as_array()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|r| match (r.get("start").and_then(Value::as_i64), r.get("end").and_then(Value::as_i64)) {
                        (Some(s), Some(e)) => Ok((s, e)),
                        _ => Err(bad()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Box::new(move |x| ranges.iter().any(|(s, e)| x >= *s && x <= *e))
            }
            other => return Err(ApiError::bad(format!("filters.{field}: operator `{other}` is not supported here"))),
        });
    }
    Ok(Box::new(move |a| {
        let x = get(a);
        preds.iter().all(|p| p(x))
    }))
}

pub async fn fetch(State(sim): State<Sim>, Path(pk): Path<String>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let who = match admit(&sim, &headers, &mut ctx) {
        Ok(w) => w,
        Err(e) => return e.into_response(&ctx),
    };
    let all = sim.cloud_apps.alerts.read().unwrap_or_else(|p| p.into_inner());
    match all.get(who.tenant_index).and_then(|v| v.iter().find(|a| a.id == pk)) {
        Some(a) => {
            let mut r = Response::new(axum::body::Body::from(a.body.clone()));
            r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
            ctx.stamp(r)
        }
        None => ApiError { status: StatusCode::NOT_FOUND, detail: "Not found.".into(), retry_after_secs: None }.into_response(&ctx),
    }
}
