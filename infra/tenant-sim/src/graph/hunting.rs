//! `POST /v1.0/security/runHuntingQuery` (security-security-runhuntingquery.md): a KQL query over
//! the advanced hunting tables, answered as `huntingQueryResults` (`schema`, `results`), with the
//! documented quotas (api-advanced-hunting.md; security-api-overview.md; run-advanced-query-api.md):
//! 45 calls a minute and 1,500 an hour per tenant, a CPU allocation per 15-minute cycle, 100,000
//! rows, a 50 MB result, 30 days back (scenario.rs `HuntingSpec`).
//!
//! **The simulator's limitation:** it runs a small subset of KQL over three tables built from
//! the tenant's data — `AlertInfo` (its visible alerts), `DeviceInfo` (its devices), `IdentityInfo`
//! (its people) — with the operators `where` (`==`, `=~`, `!=`, `contains`, `has`, `>`/`<` on
//! `Timestamp` against `ago(Nd|h|m)`), `project`, `take`/`limit`, `order by`/`sort by` and
//! `count`. Anything else is a 400 naming what it does not run (Microsoft runs it all).

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::context::{authorize, GraphCtx};
use super::error::GraphError;
use crate::state::Sim;
use crate::time::Instant;

/// security-security-runhuntingquery-permissions.md (application).
pub const HUNTING_ROLES: &[&str] = &["ThreatHunting.Read.All"];
pub const MAX_ROWS: usize = 100_000;

type Rows = Vec<Map<String, Value>>;
/// (name, type) of each column.
type Columns = Vec<(&'static str, &'static str)>;

fn bad(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// The rows of a table, each with its columns in order.
fn table(sim: &Sim, tenant: usize, name: &str, now: Instant, include_unknown: bool) -> Result<(Columns, Rows), GraphError> {
    let data = sim.data();
    let t = data.get(tenant).ok_or_else(|| bad("unknown tenant"))?;
    let row = |pairs: Vec<(&str, Value)>| pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<String, Value>>();
    match name {
        "AlertInfo" => Ok((
            vec![
                ("Timestamp", "DateTime"),
                ("AlertId", "String"),
                ("Title", "String"),
                ("Category", "String"),
                ("Severity", "String"),
                ("ServiceSource", "String"),
                ("DetectionSource", "String"),
                ("AttackTechniques", "String"),
            ],
            t.alerts
                .iter()
                .filter_map(|a| a.visible(now).map(|v| a.view(v).render(&t.pool, include_unknown)))
                .map(|m| {
                    let s = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
                    row(vec![
                        ("Timestamp", s("createdDateTime")),
                        ("AlertId", s("id")),
                        ("Title", s("title")),
                        ("Category", s("category")),
                        ("Severity", s("severity")),
                        ("ServiceSource", s("serviceSource")),
                        ("DetectionSource", s("detectionSource")),
                        ("AttackTechniques", json!(m.get("mitreTechniques").map(|v| v.to_string()).unwrap_or_default())),
                    ])
                })
                .collect(),
        )),
        "DeviceInfo" => Ok((
            vec![
                ("Timestamp", "DateTime"),
                ("DeviceId", "String"),
                ("DeviceName", "String"),
                ("OSPlatform", "String"),
                ("MachineGroup", "String"),
            ],
            t.pool
                .devices
                .iter()
                .map(|d| {
                    row(vec![
                        ("Timestamp", json!(now.graph7())),
                        ("DeviceId", json!(d.mde_id)),
                        ("DeviceName", json!(d.dns_name)),
                        ("OSPlatform", json!(d.os_platform)),
                        ("MachineGroup", json!(d.rbac_group_name)),
                    ])
                })
                .collect(),
        )),
        "IdentityInfo" => Ok((
            vec![
                ("Timestamp", "DateTime"),
                ("AccountObjectId", "String"),
                ("AccountUpn", "String"),
                ("AccountDisplayName", "String"),
                ("AccountName", "String"),
            ],
            t.pool
                .users
                .iter()
                .map(|u| {
                    row(vec![
                        ("Timestamp", json!(now.graph7())),
                        ("AccountObjectId", json!(u.aad_id)),
                        ("AccountUpn", json!(u.upn)),
                        ("AccountDisplayName", json!(u.display_name)),
                        ("AccountName", json!(u.account_name)),
                    ])
                })
                .collect(),
        )),
        other => Err(bad(format!(
            "Failed to resolve table expression named '{other}' (the simulator has AlertInfo, DeviceInfo and IdentityInfo)"
        ))),
    }
}

/// `"text"` or `'text'`.
fn literal(s: &str) -> Option<String> {
    let s = s.trim();
    let q = s.chars().next()?;
    (matches!(q, '"' | '\'') && s.len() >= 2 && s.ends_with(q)).then(|| s[1..s.len() - 1].to_owned())
}

/// `ago(7d)` as a time before `now`.
fn ago(s: &str, now: Instant) -> Option<Instant> {
    let inner = s.trim().strip_prefix("ago(")?.strip_suffix(')')?.trim();
    let (n, unit) = inner.split_at(inner.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok()?;
    let secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        _ => return None,
    };
    Some(now.plus_secs(-n * secs))
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Columns as (name, type), the rows, and how many rows the table had (the query's cost).
type Counted = (Vec<(String, String)>, Rows, usize);

/// Runs the query.
fn run_counted(sim: &Sim, tenant: usize, query: &str, since: Instant, now: Instant, include_unknown: bool) -> Result<Counted, GraphError> {
    let mut stages = query.split('|').map(str::trim);
    let name = stages.next().unwrap_or_default();
    let (cols, mut rows) = table(sim, tenant, name, now, include_unknown)?;
    let scanned = rows.len();
    let mut cols: Vec<(String, String)> = cols.into_iter().map(|(a, b)| (a.to_owned(), b.to_owned())).collect();
    // The Timespan: rows with a Timestamp before it are not there.
    rows.retain(|r| r.get("Timestamp").and_then(Value::as_str).and_then(|t| Instant::parse(t).ok()).is_none_or(|t| t >= since));
    for stage in stages {
        let (op, rest) = stage.split_once(char::is_whitespace).unwrap_or((stage, ""));
        let rest = rest.trim();
        match op {
            "where" => {
                let ops = ["=~", "==", "!=", " contains ", " has ", ">", "<"];
                let (at, op) = ops
                    .iter()
                    .filter_map(|o| rest.find(o).map(|i| (i, *o)))
                    .min_by_key(|(i, _)| *i)
                    .ok_or_else(|| bad(format!("the simulator cannot run `where {rest}`")))?;
                let col = rest[..at].trim().to_owned();
                let value = rest[at + op.len()..].trim();
                if !cols.iter().any(|(c, _)| *c == col) {
                    return Err(bad(format!("Failed to resolve scalar expression named '{col}'")));
                }
                match op.trim() {
                    ">" | "<" => {
                        let bound = ago(value, now)
                            .or_else(|| literal(value).and_then(|l| Instant::parse(&l).ok()))
                            .ok_or_else(|| bad(format!("the simulator compares {col} with ago(N) or a date only")))?;
                        let gt = op == ">";
                        rows.retain(|r| {
                            r.get(&col).and_then(Value::as_str).and_then(|t| Instant::parse(t).ok()).is_some_and(|t| {
                                if gt {
                                    t > bound
                                } else {
                                    t < bound
                                }
                            })
                        });
                    }
                    o => {
                        let want = literal(value).ok_or_else(|| bad(format!("the simulator compares {col} with a string literal only")))?;
                        rows.retain(|r| {
                            let have = text(r.get(&col));
                            match o {
                                "==" => have == want,
                                "=~" => have.eq_ignore_ascii_case(&want),
                                "!=" => have != want,
                                _ => have.to_lowercase().contains(&want.to_lowercase()),
                            }
                        });
                    }
                }
            }
            "take" | "limit" => {
                let n: usize = rest.parse().map_err(|_| bad(format!("`{op} {rest}` needs a number")))?;
                rows.truncate(n);
            }
            "project" => {
                let keep: Vec<String> = rest.split(',').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect();
                for k in &keep {
                    if !cols.iter().any(|(c, _)| c == k) {
                        return Err(bad(format!("Failed to resolve scalar expression named '{k}'")));
                    }
                }
                cols = keep.iter().filter_map(|k| cols.iter().find(|(c, _)| c == k).cloned()).collect();
                for r in &mut rows {
                    r.retain(|k, _| keep.contains(k));
                }
            }
            "order" | "sort" => {
                let spec = rest.strip_prefix("by").ok_or_else(|| bad(format!("`{op}` needs `by`")))?.trim();
                let (col, dir) = spec.split_once(char::is_whitespace).unwrap_or((spec, "desc"));
                let desc = dir.trim() != "asc";
                rows.sort_by(|a, b| {
                    let o = text(a.get(col)).cmp(&text(b.get(col)));
                    if desc {
                        o.reverse()
                    } else {
                        o
                    }
                });
            }
            "count" if rest.is_empty() => {
                let n = rows.len();
                cols = vec![("Count".into(), "Int64".into())];
                rows = vec![[("Count".to_owned(), json!(n))].into_iter().collect()];
            }
            other => return Err(bad(format!("the simulator does not run the KQL operator `{other}`"))),
        }
    }
    Ok((cols, rows, scanned))
}

/// The Timespan's start: an ISO 8601 duration back from now (`P1D`, `PT24H`); absent: 30 days.
fn since(timespan: Option<&str>, now: Instant) -> Result<Instant, GraphError> {
    let Some(t) = timespan else { return Ok(now.plus_secs(-30 * 86_400)) };
    let (days, rest) = match t.strip_prefix('P') {
        Some(r) => match r.split_once('T') {
            Some((d, time)) => (d, time),
            None => (r, ""),
        },
        None => return Err(bad(format!("the simulator takes Timespan as an ISO 8601 duration (P1D, PT24H), not '{t}'"))),
    };
    let num = |s: &str, unit: char| -> Result<i64, GraphError> {
        if s.is_empty() {
            return Ok(0);
        }
        s.strip_suffix(unit)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad(format!("Timespan '{t}' is not a duration the simulator reads")))
    };
    let secs = num(days, 'D')? * 86_400 + num(rest, 'H')? * 3_600;
    Ok(now.plus_secs(-secs))
}

/// 429 with the wait and what was reached: "Read the response body to understand the limit you
/// reached" (security-api-overview.md); the body's words are not documented, the CPU one is the
/// portal's (advanced-hunting-errors.md).
fn over_quota(wait_secs: u64, message: String) -> GraphError {
    GraphError { retry_after_secs: Some(wait_secs.max(1)), message, ..GraphError::for_status(429, None) }
}

const CYCLE_SECS: i64 = 15 * 60;

pub async fn run_hunting_query(State(sim): State<Sim>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let spec = sim.graph_spec().hunting;
    let result = authorize(&sim, &headers, &mut ctx, HUNTING_ROLES).and_then(|who| {
        super::quota::spend_security(&sim, &ctx, &who)?;
        let tenant = who.tenant_index;
        for (calls, window, what) in [(spec.calls_per_minute, 60, "minute"), (spec.calls_per_hour, 3_600, "hour")] {
            sim.limits.admit(&format!("{tenant}/hunting/{what}"), 1, calls, Duration::from_secs(window)).map_err(|wait| {
                over_quota(wait.as_secs(), format!("Too many requests: {calls} advanced hunting calls per {what} per tenant."))
            })?;
        }
        let now_secs = ctx.now.unix_seconds();
        let cycle = now_secs.div_euclid(CYCLE_SECS);
        let used = sim.hunting_cpu.lock().unwrap_or_else(|p| p.into_inner()).get(&(tenant, cycle)).copied().unwrap_or(0);
        if used >= spec.cpu_ms_per_cycle {
            // "Queries are blocked if the tenant reaches 100% of the allocated resources until
            // after the next 15-minute cycle" (security-api-overview.md).
            let wait = (cycle + 1) * CYCLE_SECS - now_secs;
            return Err(over_quota(
                wait as u64,
                format!("You have exceeded processing resources allocated to this tenant. You can run queries again in {wait} seconds."),
            ));
        }
        let req: Value = serde_json::from_slice(&body).map_err(|e| bad(format!("The request body is not JSON: {e}")))?;
        let query = req.get("Query").and_then(Value::as_str).filter(|q| !q.trim().is_empty()).ok_or_else(|| bad("Query is required."))?;
        let since = since(req.get("Timespan").and_then(Value::as_str), ctx.now)?;
        let (cols, mut rows, scanned) = run_counted(&sim, tenant, query, since, ctx.now, ctx.include_unknown)?;
        *sim.hunting_cpu.lock().unwrap_or_else(|p| p.into_inner()).entry((tenant, cycle)).or_insert(0) += 5 + scanned as u64 / 100;
        rows.truncate(MAX_ROWS);
        let bytes: usize = rows.iter().map(|r| serde_json::to_vec(r).map_or(0, |v| v.len() + 1)).sum();
        if bytes > spec.max_result_bytes {
            // run-advanced-query-api.md (and the Graph overview's earlier revision): 400 with this message.
            return Err(bad("Query execution has exceeded the allowed result size. Optimize your query by limiting the number of results and try again."));
        }
        Ok((cols, rows))
    });
    match result {
        Ok((cols, rows)) => {
            let schema: Vec<Value> = cols.iter().map(|(n, t)| json!({"name": n, "type": t})).collect();
            let body = json!({"@odata.context": format!("{}/v1.0/$metadata#microsoft.graph.security.huntingQueryResults", sim.base_url), "schema": schema, "results": rows});
            ctx.stamp(crate::http::json(StatusCode::OK, &body, crate::http::ODATA_JSON))
        }
        Err(e) => e.into_response(&ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans_and_ago_read_as_durations_back() {
        let now = Instant::from_unix_seconds(1_800_000_000);
        assert_eq!(since(Some("P1D"), now).ok(), Some(now.plus_secs(-86_400)));
        assert_eq!(since(Some("PT24H"), now).ok(), Some(now.plus_secs(-86_400)));
        assert_eq!(since(None, now).ok(), Some(now.plus_secs(-30 * 86_400)));
        assert!(since(Some("yesterday"), now).is_err());
        assert_eq!(ago("ago(2h)", now), Some(now.plus_secs(-7_200)));
        assert_eq!(literal("'x'"), Some("x".into()));
    }
}
