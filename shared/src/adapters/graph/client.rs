//! `GraphApi` over HTTPS: Graph's security collections, with bounded retries for throttling,
//! server errors, timeouts and cut-off bodies, and one token refresh on 401 that retries the
//! same page.

use std::time::Instant;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::auth::{without_url, Audience, TokenProvider};
use super::retry::{parse_retry_after, RetryPolicy};
use super::settings::HttpSettings;
use crate::domain::alert::Item;
use crate::domain::integration::Credentials;
use crate::domain::source::Source;
use crate::error::{ConfigError, GraphError};
use crate::ports::{GraphApi, Page, PageRequest};

/// Pages of an incident's alerts fetched at most (the navigation is small; this bounds a loop).
const MAX_INCIDENT_ALERT_PAGES: usize = 50;

pub struct HttpGraphApi {
    /// 429 answers and retries since start, for the throttling metrics.
    throttled: std::sync::atomic::AtomicU64,
    retried: std::sync::atomic::AtomicU64,
    http: reqwest::Client,
    graph_base: String,
    tokens: TokenProvider,
    policy: RetryPolicy,
    prefer_unknown: bool,
}

#[derive(Deserialize)]
struct RawPage<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl HttpGraphApi {
    pub fn new(settings: &HttpSettings, policy: RetryPolicy) -> Result<Self, ConfigError> {
        let http = settings.client()?;
        Ok(HttpGraphApi {
            throttled: std::sync::atomic::AtomicU64::new(0),
            retried: std::sync::atomic::AtomicU64::new(0),
            tokens: TokenProvider::new(http.clone(), &settings.login_base_url, policy),
            http,
            graph_base: settings.graph_base_url.trim_end_matches('/').to_owned(),
            policy,
            prefer_unknown: settings.include_unknown_enum_members,
        })
    }

    pub fn tokens(&self) -> &TokenProvider {
        &self.tokens
    }

    /// The URL of a query, with the filter in UTC and 7 digits.
    pub fn query_url(&self, request: &PageRequest) -> String {
        match request {
            PageRequest::Link(l) => l.clone(),
            PageRequest::Query { source, from, to, top, skip, expand_alerts } => {
                let collection = match source {
                    Source::DefenderAlerts => "alerts_v2",
                    Source::DefenderIncidents => "incidents",
                };
                let filter = format!("lastUpdateDateTime ge {from} and lastUpdateDateTime lt {to}");
                let mut q = form_urlencoded::Serializer::new(String::new());
                q.append_pair("$filter", &filter);
                q.append_pair("$orderby", "lastUpdateDateTime asc");
                q.append_pair("$top", &top.to_string());
                if *skip > 0 {
                    q.append_pair("$skip", &skip.to_string());
                }
                if *expand_alerts {
                    q.append_pair("$expand", "alerts");
                }
                format!("{}/v1.0/security/{collection}?{}", self.graph_base, q.finish())
            }
        }
    }

    /// GETs one Graph page, retrying within the policy.
    async fn get_page(&self, creds: &Credentials, url: &str) -> Result<Page, GraphError> {
        let started = Instant::now();
        let mut attempt = 1u32;
        let mut refreshed = false;
        let mut throttles = 0u32;
        loop {
            let token = self.tokens.token(creds, Audience::Graph).await?;
            let mut req = self.http.get(url).bearer_auth(token.expose());
            if self.prefer_unknown {
                req = req.header("Prefer", "include-unknown-enum-members");
            }
            let (err, retry_after) = match req.send().await {
                Err(e) => (GraphError::Transport { what: "Graph".into(), detail: without_url(&e) }, None),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = parse_retry_after(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()));
                    match resp.bytes().await {
                        Err(e) => (GraphError::Transport { what: "Graph".into(), detail: without_url(&e) }, None),
                        Ok(body) if status == 200 => match decode_page(&body) {
                            Ok(p) => return Ok(p),
                            Err(e) => (e, None),
                        },
                        Ok(body) => {
                            let detail: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
                            let err = GraphError::Http { status, code: detail.error.code, message: detail.error.message };
                            if status == 401 && !refreshed {
                                // An expired or revoked token: one refresh, then the same page again.
                                refreshed = true;
                                self.tokens.invalidate(creds, Audience::Graph).await;
                                tracing::info!("graph token refused, refreshing once");
                                continue;
                            }
                            if status == 429 {
                                throttles += 1;
                                self.throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            if !err.is_retryable() {
                                return Err(err);
                            }
                            (err, retry_after)
                        }
                    }
                }
            };
            attempt += 1;
            let delay = self.policy.delay(attempt, retry_after);
            if !self.policy.allows(attempt, started.elapsed(), delay) {
                return Err(if throttles > 1 { GraphError::Throttled { attempts: throttles, retry_after } } else { err });
            }
            self.retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, error = %err, "graph request failed, retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// Decodes a Graph collection page: the items' heads, their raw bytes, and the next link.
pub fn decode_page(body: &[u8]) -> Result<Page, GraphError> {
    let raw: RawPage<'_> =
        serde_json::from_slice(body).map_err(|e| GraphError::Decode { what: "a Graph page".into(), detail: e.to_string() })?;
    let items = raw
        .value
        .iter()
        .map(|r| Item::from_raw(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| GraphError::Decode { what: "a Graph page".into(), detail: e.to_string() })?;
    Ok(Page { items, next_link: raw.next_link })
}

impl GraphApi for HttpGraphApi {
    fn counters(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.throttled.load(Relaxed), self.retried.load(Relaxed))
    }

    async fn page(&self, creds: &Credentials, request: &PageRequest) -> Result<Page, GraphError> {
        self.get_page(creds, &self.query_url(request)).await
    }

    async fn incident_alerts(&self, creds: &Credentials, incident_id: &str) -> Result<Vec<Item>, GraphError> {
        let id: String = form_urlencoded::byte_serialize(incident_id.as_bytes()).collect();
        let mut url = format!("{}/v1.0/security/incidents/{id}/alerts", self.graph_base);
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_INCIDENT_ALERT_PAGES {
            let page = self.get_page(creds, &url).await?;
            out.extend(page.items);
            match page.next_link {
                Some(next) if seen.insert(next.clone()) => url = next,
                Some(_) => return Err(GraphError::Paging(crate::domain::window::PagingError::RepeatedLink)),
                None => return Ok(out),
            }
        }
        Err(GraphError::Decode {
            what: format!("the alerts of incident {incident_id}"),
            detail: format!("more than {MAX_INCIDENT_ALERT_PAGES} pages"),
        })
    }
}
