//! `GET|POST /api/v1/activities/` (CloudAppSecurityDocs `api-activities-list.md`,
//! `api-introduction.md`): the tenant's people's activities, filtered by `user.username`,
//! `ip.address` (`eq` with a list) and `date` (`range`, `gte`, `lte`, Unix ms), newest first,
//! `skip`/`limit` ≤ 100, answered `{total, hasNext, data}`; the tenant's 30 requests a minute are
//! shared with the alerts endpoints.
//!
//! **Not documented:** the activity object (the doc shows a placeholder). The simulator's fields
//! are its own: `_id`, `timestamp` (ms), `appName`, `description`, `user.userName`,
//! `ipAddress`, `location.countryCode`, `device.userAgent`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::api::{admit_request, ApiError};
use crate::graph::context::GraphCtx;
use crate::state::Sim;

const APPS: &[&str] = &["Microsoft Exchange Online", "Microsoft SharePoint Online", "Microsoft Teams", "Dropbox", "Salesforce"];
const ACTIONS: &[&str] = &["Log on", "Download file", "Share file", "Send mail", "Create inbox rule"];

fn mix(a: usize, b: u64) -> u64 {
    let mut x = (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    x ^= x >> 29;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// Each person's activities over the seven days before `now_ms`: one every two hours or so.
fn activities(sim: &Sim, tenant: usize, now_ms: i64) -> Vec<Value> {
    let data = sim.data();
    let Some(t) = data.get(tenant) else { return Vec::new() };
    let mut out = Vec::new();
    for (i, u) in t.pool.users.iter().enumerate() {
        let mut at = now_ms - (mix(i, 1) % 3_600_000) as i64;
        let mut n = 0u64;
        while at > now_ms - 7 * 86_400_000 {
            let h = mix(i, n + 2);
            let country = ["US", "GB", "PT", "SG"][(h >> 24) as usize % 4];
            let ip = t.pool.external_ips.get(h as usize % t.pool.external_ips.len().max(1)).cloned().unwrap_or_default();
            out.push(json!({
                "_id": format!("{:016x}{:08x}", h, n),
                "timestamp": at,
                "appName": APPS[(h >> 8) as usize % APPS.len()],
                "description": format!("{}: {}", ACTIONS[(h >> 16) as usize % ACTIONS.len()], u.display_name),
                "user": {"userName": u.upn},
                "ipAddress": ip,
                "location": {"countryCode": country},
                "device": {"userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"},
            }));
            at -= 7_200_000 + (h % 1_800_000) as i64;
            n += 1;
        }
    }
    out.sort_by_key(|a| std::cmp::Reverse(a["timestamp"].as_i64().unwrap_or_default()));
    out
}

fn strings(ops: &Map<String, Value>, field: &str) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for (op, v) in ops {
        if op != "eq" {
            return Err(ApiError::bad(format!("filters.{field}: the simulator takes `eq` only")));
        }
        match v {
            Value::Array(a) => out.extend(a.iter().filter_map(|x| x.as_str().map(str::to_owned))),
            Value::String(s) => out.push(s.clone()),
            _ => return Err(ApiError::bad(format!("filters.{field}.eq: strings only"))),
        }
    }
    Ok(out)
}

fn matches(a: &Value, filters: &Map<String, Value>) -> Result<bool, ApiError> {
    for (field, ops) in filters {
        let ops = ops.as_object().ok_or_else(|| ApiError::bad(format!("filters.{field}: must be an object of {{operator: value}}")))?;
        let ok = match field.as_str() {
            "user.username" => {
                let want = strings(ops, field)?;
                let have = a["user"]["userName"].as_str().unwrap_or_default();
                want.iter().any(|w| w.eq_ignore_ascii_case(have))
            }
            "ip.address" => strings(ops, field)?.iter().any(|w| a["ipAddress"].as_str() == Some(w.as_str())),
            "date" => {
                let t = a["timestamp"].as_i64().unwrap_or_default();
                let mut ok = true;
                for (op, v) in ops {
                    ok &= match op.as_str() {
                        "gte" => v.as_i64().is_some_and(|x| t >= x),
                        "lte" => v.as_i64().is_some_and(|x| t <= x),
                        "range" => v
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|r| r["start"].as_i64().is_some_and(|s| t >= s) && r["end"].as_i64().is_some_and(|e| t <= e)),
                        other => return Err(ApiError::bad(format!("filters.date.{other}: the simulator takes range, gte, lte"))),
                    };
                }
                ok
            }
            other => return Err(ApiError::bad(format!("filters: `{other}` is not a supported filter of this simulator"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub async fn list(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = admit_request(&sim, &headers, &mut ctx).and_then(|who| {
        let req: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("JSON parse error - {e}")))?
        };
        let filters = req.get("filters").and_then(Value::as_object).cloned().unwrap_or_default();
        let skip = req.get("skip").and_then(Value::as_u64).unwrap_or(0) as usize;
        let limit = req.get("limit").and_then(Value::as_u64).unwrap_or(100).min(100) as usize;
        let mut all = Vec::new();
        for a in activities(&sim, who.tenant_index, ctx.now.0 / 10_000) {
            if matches(&a, &filters)? {
                all.push(a);
            }
        }
        let total = all.len();
        let page: Vec<Value> = all.into_iter().skip(skip).take(limit).collect();
        Ok(json!({"total": total, "hasNext": skip + page.len() < total, "data": page}))
    });
    match result {
        Ok(v) => {
            let mut r = Response::new(axum::body::Body::from(v.to_string()));
            r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
            ctx.stamp(r)
        }
        Err(e) => e.into_response(&ctx),
    }
}
