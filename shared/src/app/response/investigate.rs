//! Investigation queries (issue 14): a downstream caller's question to one integration's tenant,
//! checked, asked within the tenant's limits and answered as JSON; throttling is a retryable
//! error with Microsoft's wait, never a long hold.

use serde_json::{json, Value};

use crate::app::processing::enrich::Enricher;
use crate::domain::entities::{Device, Entities, File, User};
use crate::domain::integration::Integration;
use crate::domain::response::investigation::{columns, Query, QueryError, QueryResult, MAX_ACTIVITIES};
use crate::error::GraphError;
use crate::ports::investigation::{InvestigatePorts, InvestigationApi};
use crate::ports::{Clock, IntegrationSource, SecretSource};

pub struct Investigator<P: InvestigatePorts> {
    pub api: P::Api,
    pub secrets: P::Secrets,
    pub integrations: P::Integrations,
    pub clock: P::Clock,
    /// Context lookups (the `context` query); None where none is wired.
    pub context: Option<Enricher>,
}

fn error(code: &str, message: impl Into<String>, retryable: bool, retry_after_secs: Option<u64>) -> QueryError {
    QueryError { code: code.into(), message: message.into(), retryable, retry_after_secs }
}

/// Microsoft's refusal as a query error: throttling says when to ask again.
fn from_graph(e: &GraphError) -> QueryError {
    match e {
        GraphError::Http { status: 429, .. } => error("throttled", e.to_string(), true, Some(60)),
        GraphError::Throttled { retry_after, .. } => {
            error("throttled", e.to_string(), true, Some(retry_after.map_or(60, |d| d.as_secs().max(1))))
        }
        GraphError::OverBudget { within, .. } => error("throttled", e.to_string(), true, Some(within.as_secs().max(1))),
        GraphError::Http { status: 401 | 403, .. } => error("forbidden", e.to_string(), false, None),
        // run-advanced-query-api.md: the result-size cap is a 400 with this message.
        GraphError::Http { status: 400, message, .. } if message.contains("exceeded the allowed result size") => error(
            "result_too_large",
            format!(
                "{e}. Ask for less: `project` only the columns needed, `take` fewer rows, `summarize`, or a shorter `hours` (advanced hunting answers at most 50 MB)"
            ),
            false,
            None,
        ),
        GraphError::Http { status: 400, .. } => error("microsoft_refused", e.to_string(), false, None),
        other if other.is_retryable() => error("failed", other.to_string(), true, Some(30)),
        other => error("failed", other.to_string(), false, None),
    }
}

impl<P: InvestigatePorts> Investigator<P> {
    /// Answers a query (the function's event, the command's request).
    pub async fn run(&self, request: Value) -> QueryResult {
        let kind = request.get("kind").and_then(Value::as_str).unwrap_or("?").to_owned();
        let id = request.get("integration_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let failed = |e: QueryError| QueryResult {
            kind: kind.clone(),
            integration_id: id.clone(),
            schema: Vec::new(),
            rows: Vec::new(),
            truncated: false,
            error: Some(e),
        };
        let q = match Query::parse(request, self.clock.now()) {
            Ok(q) => q,
            Err(problems) => {
                let text: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.field, p.problem)).collect();
                return failed(error("invalid_query", text.join("; "), false, None));
            }
        };
        let i = match self.integrations.integration(q.integration_id()).await {
            Ok(Some(i)) => i,
            Ok(None) => {
                return failed(error("unknown_integration", format!("integration `{}` is not configured", q.integration_id()), false, None))
            }
            Err(e) => return failed(error("failed", e.to_string(), e.is_retryable(), Some(30))),
        };
        match self.answer(&q, &i).await {
            Ok(r) => r,
            Err(e) => failed(e),
        }
    }

    async fn answer(&self, q: &Query, i: &Integration) -> Result<QueryResult, QueryError> {
        let result = |schema, rows, truncated| QueryResult {
            kind: q.kind().into(),
            integration_id: i.id.clone(),
            schema,
            rows,
            truncated,
            error: None,
        };
        let creds = || async {
            let c = self.secrets.load(&i.secret_ref).await.map_err(|e| error("failed", e.to_string(), false, None))?;
            if !i.owns(&c) {
                return Err(error(
                    "failed",
                    format!("the secret `{}` holds another tenant's or app's credentials", i.secret_ref),
                    false,
                    None,
                ));
            }
            Ok(c)
        };
        match q {
            Query::Hunting { query, hours, max_rows, timeout_secs, .. } => {
                if !i.features.investigation {
                    return Err(error(
                        "feature_disabled",
                        format!("integration `{}` does not enable features.investigation (ThreatHunting.Read.All)", i.id),
                        false,
                        None,
                    ));
                }
                let v = self
                    .api
                    .hunt(&creds().await?, query, *hours, std::time::Duration::from_secs(*timeout_secs))
                    .await
                    .map_err(|e| from_graph(&e))?;
                let mut rows = v.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
                let truncated = rows.len() > *max_rows;
                rows.truncate(*max_rows);
                Ok(result(columns(v.get("schema").unwrap_or(&Value::Null)), rows, truncated))
            }
            Query::CloudAppsActivities { user, ip, from, to, limit, .. } => {
                let Some(portal) = i.cloud_apps_base.as_deref() else {
                    return Err(error(
                        "feature_disabled",
                        format!("integration `{}` has no portal_url: Cloud Apps is not configured", i.id),
                        false,
                        None,
                    ));
                };
                if !i.features.investigation {
                    return Err(error(
                        "feature_disabled",
                        format!("integration `{}` does not enable features.investigation", i.id),
                        false,
                        None,
                    ));
                }
                // api-activities-list.md's filters, AND-ed: the user or IP, and the window (Unix ms).
                let mut filters = json!({"date": {"range": [{"start": from.unix_millis(), "end": to.unix_millis()}]}});
                if let Some(u) = user {
                    filters["user.username"] = json!({"eq": [u]});
                }
                if let Some(a) = ip {
                    filters["ip.address"] = json!({"eq": [a]});
                }
                let creds = creds().await?;
                let mut rows: Vec<Value> = Vec::new();
                let mut more = true;
                while more && rows.len() < (*limit).min(MAX_ACTIVITIES) {
                    let want = (*limit - rows.len()).min(100);
                    let (page, has_next) =
                        self.api.activities(&creds, portal, &filters, rows.len(), want).await.map_err(|e| from_graph(&e))?;
                    more = has_next && !page.is_empty();
                    rows.extend(page);
                }
                let truncated = more || rows.len() > *limit;
                rows.truncate(*limit);
                Ok(result(Vec::new(), rows, truncated))
            }
            Query::Context { users, devices, files, at, .. } => {
                let Some(enricher) = &self.context else {
                    return Err(error("feature_disabled", "context lookups are not available here", false, None));
                };
                let parts = i.enrichment.effective_parts(&i.features);
                if parts.is_empty() {
                    return Err(error(
                        "feature_disabled",
                        format!("integration `{}` enables no context part (features.user_context, calendar, device_context)", i.id),
                        false,
                        None,
                    ));
                }
                let user = |u: &String| {
                    if u.contains('@') {
                        User { upn: Some(u.clone()), ..User::default() }
                    } else {
                        User { aad_user_id: Some(u.clone()), ..User::default() }
                    }
                };
                let file = |h: &String| {
                    if h.len() == 64 {
                        File { sha256: Some(h.clone()), ..File::default() }
                    } else {
                        File { sha1: Some(h.clone()), ..File::default() }
                    }
                };
                let e = Entities {
                    users: users.iter().map(user).collect(),
                    devices: devices.iter().map(|d| Device { mde_device_id: Some(d.clone()), ..Device::default() }).collect(),
                    files: files.iter().map(file).collect(),
                    ..Entities::default()
                };
                let deadline = std::time::Instant::now() + enricher.settings().per_batch;
                let section = enricher.context(i, &e, at.unwrap_or_else(|| self.clock.now()), deadline).await;
                let rows = section.map(|s| serde_json::to_value(s).unwrap_or_default()).into_iter().collect();
                Ok(result(Vec::new(), rows, false))
            }
        }
    }
}
