//! Investigation queries for downstream callers (issue 14): an Advanced Hunting query, Cloud
//! Apps activities of a user or an IP, or the context of users, devices and files, against one
//! integration's tenant. Input is checked before anything is asked; answers are bounded.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::field_error::FieldError;
use crate::domain::time::GraphTime;

/// A KQL query longer than this is refused (Graph takes the query in a JSON body; nothing
/// documented is smaller, and a hunting query of this size is already unusual).
pub const MAX_QUERY_CHARS: usize = 20_000;
/// Advanced hunting returns at most 100,000 rows and looks back 30 days (api-advanced-hunting.md).
pub const MAX_HUNTING_ROWS: usize = 100_000;
pub const MAX_LOOKBACK_HOURS: u32 = 30 * 24;
/// A single hunting request runs at most three minutes (security-api-overview.md, Learn
/// 2026-01-21; run-advanced-query-api.md says 200 s: the stricter is kept).
pub const MAX_TIMEOUT_SECS: u64 = 180;
/// Cloud Apps activities: 100 per page (api-introduction.md), at most this many in all.
pub const MAX_ACTIVITIES: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Query {
    /// `POST /security/runHuntingQuery`.
    Hunting {
        integration_id: String,
        query: String,
        /// Hours back from now (the `Timespan`, 1..720; default 24).
        #[serde(default = "day")]
        hours: u32,
        /// Rows returned at most (1..100,000; default 1,000); `truncated` says when more came.
        #[serde(default = "thousand")]
        max_rows: usize,
        /// The longest the call may run (1..180 s; default 60).
        #[serde(default = "minute")]
        timeout_secs: u64,
    },
    /// Cloud Apps `POST /api/v1/activities/` for a user or an IP in a window.
    CloudAppsActivities {
        integration_id: String,
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        ip: Option<String>,
        from: GraphTime,
        to: GraphTime,
        /// At most this many (1..1,000; default 100).
        #[serde(default = "hundred")]
        limit: usize,
    },
    /// The context of users, devices and files, as alerts carry it.
    Context {
        integration_id: String,
        #[serde(default)]
        users: Vec<String>,
        #[serde(default)]
        devices: Vec<String>,
        #[serde(default)]
        files: Vec<String>,
        /// The moment sign-ins and the calendar are read around (default: now).
        #[serde(default)]
        at: Option<GraphTime>,
    },
}

fn day() -> u32 {
    24
}
fn thousand() -> usize {
    1_000
}
fn minute() -> u64 {
    60
}
fn hundred() -> usize {
    100
}

impl Query {
    pub fn integration_id(&self) -> &str {
        match self {
            Query::Hunting { integration_id, .. }
            | Query::CloudAppsActivities { integration_id, .. }
            | Query::Context { integration_id, .. } => integration_id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Query::Hunting { .. } => "hunting",
            Query::CloudAppsActivities { .. } => "cloud_apps_activities",
            Query::Context { .. } => "context",
        }
    }

    /// Reads and checks a query against `now`; every problem names its field.
    pub fn parse(v: Value, now: GraphTime) -> Result<Query, Vec<FieldError>> {
        let q: Query = serde_path_to_error::deserialize(v).map_err(|e| {
            let field = e.path().to_string();
            vec![FieldError { field: if field == "." { "(query)".into() } else { field }, problem: e.into_inner().to_string() }]
        })?;
        let mut errors = Vec::new();
        let mut bad = |field: &str, problem: String| errors.push(FieldError { field: field.into(), problem });
        let id = q.integration_id();
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            bad("integration_id", "must name a configured integration".into());
        }
        match &q {
            Query::Hunting { query, hours, max_rows, timeout_secs, .. } => {
                if query.trim().is_empty() || query.chars().count() > MAX_QUERY_CHARS {
                    bad("query", format!("must be a KQL query of 1 to {MAX_QUERY_CHARS} characters"));
                }
                if !(1..=MAX_LOOKBACK_HOURS).contains(hours) {
                    bad("hours", format!("{hours} is outside 1..{MAX_LOOKBACK_HOURS}: advanced hunting keeps 30 days"));
                }
                if !(1..=MAX_HUNTING_ROWS).contains(max_rows) {
                    bad("max_rows", format!("{max_rows} is outside 1..{MAX_HUNTING_ROWS}"));
                }
                if !(1..=MAX_TIMEOUT_SECS).contains(timeout_secs) {
                    bad("timeout_secs", format!("{timeout_secs} is outside 1..{MAX_TIMEOUT_SECS}"));
                }
            }
            Query::CloudAppsActivities { user, ip, from, to, limit, .. } => {
                if user.is_none() && ip.is_none() {
                    bad("user", "name a user (or an ip): listing every activity of a tenant is not what this is for".into());
                }
                if user.as_ref().is_some_and(|u| u.trim().is_empty() || u.len() > 256) {
                    bad("user", "must be a user name of 1 to 256 characters".into());
                }
                if ip.as_ref().is_some_and(|i| i.parse::<std::net::IpAddr>().is_err()) {
                    bad("ip", format!("`{}` is not an IP address", ip.as_deref().unwrap_or_default()));
                }
                if from >= to {
                    bad("from", "must be before `to`".into());
                } else if to.since(*from) > std::time::Duration::from_secs(30 * 86_400) {
                    bad("to", "the window is longer than 30 days; ask for less".into());
                }
                if *to > now.plus(std::time::Duration::from_secs(300)) {
                    bad("to", "is in the future".into());
                }
                if !(1..=MAX_ACTIVITIES).contains(limit) {
                    bad("limit", format!("{limit} is outside 1..{MAX_ACTIVITIES}"));
                }
            }
            Query::Context { users, devices, files, .. } => {
                use crate::domain::processing::context::{MAX_DEVICES, MAX_FILES, MAX_USERS};
                if users.is_empty() && devices.is_empty() && files.is_empty() {
                    bad("users", "name at least one user, device or file".into());
                }
                if users.len() > MAX_USERS {
                    bad("users", format!("at most {MAX_USERS}, as an alert's context"));
                }
                if devices.len() > MAX_DEVICES {
                    bad("devices", format!("at most {MAX_DEVICES}"));
                }
                if files.len() > MAX_FILES {
                    bad("files", format!("at most {MAX_FILES}"));
                }
            }
        }
        if errors.is_empty() {
            Ok(q)
        } else {
            Err(errors)
        }
    }
}

/// A query's answer, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub kind: String,
    pub integration_id: String,
    /// Hunting: the columns as Microsoft described them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema: Vec<Column>,
    /// Hunting rows, activities, or the context section (one element).
    pub rows: Vec<Value>,
    /// More rows than were kept.
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<QueryError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Why a query has no answer; `retryable` with `retry_after_secs` when the tenant's limits
/// refused it (ask again then), false when the query itself must change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryError {
    /// invalid_query, unknown_integration, feature_disabled, throttled, forbidden, microsoft_refused, failed.
    pub code: String,
    pub message: String,
    pub retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// Hunting's columns, read without caring for the case of `name`/`type` (the doc's samples use
/// both `name` and `Name`).
pub fn columns(schema: &Value) -> Vec<Column> {
    schema
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let get = |a: &str, b: &str| c.get(a).or_else(|| c.get(b)).and_then(Value::as_str).unwrap_or_default().to_owned();
            Column { name: get("name", "Name"), kind: get("type", "Type") }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::domain::response::investigation::*;

    fn now() -> GraphTime {
        GraphTime::from_unix_seconds(1_800_000_000)
    }

    fn fields(v: Value) -> Vec<String> {
        Query::parse(v, now()).err().unwrap_or_default().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn queries_are_checked_with_every_bad_field_named() {
        let ok = Query::parse(json!({"kind": "hunting", "integration_id": "contoso", "query": "AlertInfo | take 5"}), now()).unwrap();
        assert!(matches!(ok, Query::Hunting { hours: 24, max_rows: 1_000, timeout_secs: 60, .. }));
        assert_eq!(
            fields(json!({"kind": "hunting", "integration_id": "contoso", "query": " ", "hours": 9000, "max_rows": 0})),
            vec!["query", "hours", "max_rows"]
        );
        assert_eq!(fields(json!({"kind": "hunting", "integration_id": "c", "query": "x".repeat(MAX_QUERY_CHARS + 1)})), vec!["query"]);
        let t = |s: i64| now().plus(std::time::Duration::from_secs(s as u64)).to_string();
        assert_eq!(
            fields(json!({"kind": "cloud_apps_activities", "integration_id": "contoso", "ip": "10.0.0", "from": t(0), "to": t(0)})),
            vec!["ip", "from"]
        );
        assert_eq!(fields(json!({"kind": "cloud_apps_activities", "integration_id": "contoso", "from": t(0), "to": t(60)})), vec!["user"]);
        assert_eq!(fields(json!({"kind": "context", "integration_id": "contoso"})), vec!["users"]);
        assert_eq!(fields(json!({"kind": "delete_everything", "integration_id": "contoso"})), vec!["kind"]);
    }

    #[test]
    fn columns_read_either_case() {
        let c = columns(&json!([{"name": "Timestamp", "type": "DateTime"}, {"Name": "FileName", "Type": "String"}]));
        assert_eq!(
            c.iter().map(|c| (c.name.as_str(), c.kind.as_str())).collect::<Vec<_>>(),
            vec![("Timestamp", "DateTime"), ("FileName", "String")]
        );
    }
}
