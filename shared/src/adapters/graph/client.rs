//! `GraphApi` over HTTPS: Graph's security collections and Defender for Cloud Apps alerts,
//! with bounded retries for throttling, server errors, timeouts and cut-off bodies, one token
//! refresh on 401 that retries the same page, and Cloud Apps calls paced per tenant.

use std::time::Instant;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::auth::{without_url, Audience, TokenProvider};
use super::body::{read_capped, BodyError};
use super::pacing::LocalBudget;
use super::retry::{parse_retry_after, RetryPolicy};
use super::settings::HttpSettings;
use crate::domain::alert::{Item, Rejected};
use crate::domain::integration::Credentials;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::{ConfigError, GraphError};
use crate::ports::{BudgetKey, GraphApi, Page, PageRequest, Rate, RequestBudget};

/// Pages of an incident's alerts fetched at most (the navigation is small; this bounds a loop).
const MAX_INCIDENT_ALERT_PAGES: usize = 50;

pub struct HttpGraphApi {
    /// 429 answers and retries since start per API (Graph, Cloud Apps), for the throttling metrics.
    throttled: [std::sync::atomic::AtomicU64; 2],
    retried: [std::sync::atomic::AtomicU64; 2],
    http: reqwest::Client,
    graph_base: String,
    tokens: TokenProvider,
    policy: RetryPolicy,
    prefer_unknown: bool,
    pub(crate) settings: HttpSettings,
    /// Requests per tenant (and app, for Graph), as Microsoft limits them: this instance's own
    /// by default, the deployment's shared one with [`HttpGraphApi::with_budget`].
    budget: std::sync::Arc<dyn RequestBudget>,
}

#[derive(Deserialize)]
struct RawPage<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.count", default)]
    count: Option<u64>,
}

impl HttpGraphApi {
    pub fn new(settings: &HttpSettings, policy: RetryPolicy) -> Result<Self, ConfigError> {
        let http = settings.client()?;
        Ok(HttpGraphApi {
            throttled: Default::default(),
            retried: Default::default(),
            tokens: TokenProvider::new(http.clone(), &settings.login_base_url, policy),
            http,
            graph_base: settings.graph_base_url.trim_end_matches('/').to_owned(),
            policy,
            prefer_unknown: settings.include_unknown_enum_members,
            budget: std::sync::Arc::new(LocalBudget::default()),
            settings: settings.clone(),
        })
    }

    pub fn tokens(&self) -> &TokenProvider {
        &self.tokens
    }

    /// The URL of a query, with the filter in UTC and 7 digits.
    pub fn query_url(&self, request: &PageRequest) -> String {
        match request {
            PageRequest::Link(l) => l.clone(),
            PageRequest::CloudApps { portal, .. } => format!("{}/api/v1/alerts/", self.settings.cloud_apps_base(portal)),
            PageRequest::Query { source, from, to, top, skip, expand_alerts } => {
                let collection = match source {
                    Source::DefenderIncidents => "incidents",
                    Source::DefenderAlerts | Source::CloudApps => "alerts_v2",
                };
                let filter = format!("lastUpdateDateTime ge {from} and lastUpdateDateTime lt {to}");
                let mut q = form_urlencoded::Serializer::new(String::new());
                q.append_pair("$filter", &filter);
                q.append_pair("$orderby", "lastUpdateDateTime asc");
                q.append_pair("$top", &top.to_string());
                // The count is what proves a window read completely (window.rs).
                q.append_pair("$count", "true");
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

    /// One call with bounded retries: 429 (Retry-After, or paced backoff where the API sends
    /// none), 5xx, timeouts and cut-off bodies; a 401 refreshes the token once. Returns the body
    /// of a 2xx answer.
    pub(crate) async fn send(&self, creds: &Credentials, call: &Call<'_>) -> Result<bytes::Bytes, GraphError> {
        let started = Instant::now();
        let mut attempt = 1u32;
        let mut refreshed = false;
        let mut throttles = 0u32;
        loop {
            let token = self.tokens.token(creds, call.audience).await?;
            if let Some((key, rate)) = self.budget_for(creds, call) {
                self.budget.admit(&key, rate).await;
            }
            let mut req = match call.body {
                Some(b) => self.http.post(call.url).json(b),
                None => self.http.get(call.url),
            }
            .bearer_auth(token.expose());
            if self.prefer_unknown && call.audience == Audience::Graph {
                req = req.header("Prefer", "include-unknown-enum-members");
            }
            for (k, v) in call.headers {
                req = req.header(*k, v);
            }
            let (err, retry_after) = match req.send().await {
                Err(e) => (GraphError::Transport { what: call.api.into(), detail: without_url(&e) }, None),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = parse_retry_after(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()));
                    match read_capped(resp, call.api, self.settings.max_body_bytes).await.map_err(|e| match e {
                        BodyError::TooLarge(e) => e,
                        BodyError::Transport(e) => GraphError::Transport { what: call.api.into(), detail: without_url(&e) },
                    }) {
                        Err(e @ GraphError::TooLarge { .. }) => return Err(e),
                        Err(e) => (e, None),
                        Ok(body) if (200..300).contains(&status) => return Ok(body),
                        Ok(body) => {
                            let (code, message) = error_detail(&body);
                            let err = GraphError::Http { api: call.api, status, code, message };
                            if status == 401 && !refreshed {
                                // An expired or revoked token: one refresh, then the same call again.
                                refreshed = true;
                                self.tokens.invalidate(creds, call.audience).await;
                                tracing::info!(api = call.api, "token refused, refreshing once");
                                continue;
                            }
                            let mut retry_after = retry_after;
                            if status == 429 {
                                throttles += 1;
                                self.throttled[counter_slot(call.audience)].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                if retry_after.is_none() && call.paced {
                                    // Cloud Apps documents no Retry-After. Our own pace keeps to the
                                    // limit, so a 429 means others used the tenant's quota: wait one
                                    // whole window, which clears it.
                                    retry_after = Some(self.settings.cloud_apps_rate.1);
                                }
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
                return Err(if throttles > 1 { GraphError::Throttled { api: call.api, attempts: throttles, retry_after } } else { err });
            }
            self.retried[counter_slot(call.audience)].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(api = call.api, attempt, delay_ms = delay.as_millis() as u64, error = %err, "request failed, retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Shares the budget of requests per tenant with other instances (the deployment's DynamoDB one).
    pub fn with_budget(mut self, budget: std::sync::Arc<dyn RequestBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Which budget a call counts against, if its API has a limit we keep to.
    fn budget_for(&self, creds: &Credentials, call: &Call<'_>) -> Option<(BudgetKey, Rate)> {
        let (client_id, rate) = match call.audience {
            // Per tenant (api-introduction.md).
            Audience::CloudApps if call.paced => {
                (None, Rate { requests: self.settings.cloud_apps_rate.0 as u32, window: self.settings.cloud_apps_rate.1 })
            }
            // Per app per tenant (throttling-limits.md).
            Audience::Graph => (Some(creds.client_id.clone()), self.settings.graph_rate?),
            _ => return None,
        };
        Some((BudgetKey { tenant_id: creds.tenant_id.clone(), client_id, api: call.audience }, rate))
    }

    /// Refuses a URL from a response unless it is at Graph's configured origin.
    fn check_link(&self, url: &str) -> Result<(), GraphError> {
        if HttpSettings::same_origin(url, &self.graph_base) {
            return Ok(());
        }
        let origin = reqwest::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| "an unparsable URL".into());
        Err(GraphError::Paging(crate::domain::window::PagingError::ForeignLink { origin, expected: self.graph_base.clone() }))
    }

    /// GETs one Graph page, retrying within the policy.
    async fn get_page(&self, creds: &Credentials, url: &str) -> Result<Page, GraphError> {
        let body = self.send(creds, &Call::get("Graph", Audience::Graph, url)).await?;
        decode_page(&body)
    }

    /// The Cloud Apps list request for a window (api-alerts-list.md, api-introduction.md):
    /// `date` in Unix milliseconds, `gte` the first and `lte` the last millisecond before `to`.
    pub fn cloud_apps_request(from: GraphTime, to: GraphTime, skip: usize, limit: usize) -> serde_json::Value {
        let last_ms = (to.ticks() + 9_999).div_euclid(10_000) - 1;
        serde_json::json!({
            "filters": {"date": {"gte": from.unix_millis(), "lte": last_ms}},
            "sortField": "date",
            "sortDirection": "asc",
            "skip": skip,
            "limit": limit.min(CLOUD_APPS_MAX_LIMIT),
        })
    }

    async fn cloud_apps_page(&self, creds: &Credentials, portal: &str, body: &serde_json::Value) -> Result<Page, GraphError> {
        let url = format!("{}/api/v1/alerts/", self.settings.cloud_apps_base(portal));
        let bytes = self.send(creds, &Call { body: Some(body), paced: true, ..Call::get("Cloud Apps", Audience::CloudApps, &url) }).await?;
        decode_cloud_apps_page(&bytes)
    }
}

/// What one call is: which API (for messages), which token, where, and with what body.
pub(crate) struct Call<'a> {
    pub api: &'static str,
    pub audience: Audience,
    pub url: &'a str,
    /// POSTed as JSON when set; a GET otherwise.
    pub body: Option<&'a serde_json::Value>,
    pub headers: &'a [(&'static str, String)],
    /// Counted against the tenant's Cloud Apps pace.
    pub paced: bool,
}

impl<'a> Call<'a> {
    pub fn get(api: &'static str, audience: Audience, url: &'a str) -> Self {
        Call { api, audience, url, body: None, headers: &[], paced: false }
    }
}

/// Cloud Apps returns at most 100 items per response (api-introduction.md).
pub const CLOUD_APPS_MAX_LIMIT: usize = 100;

/// The code and message of an error body: Graph's `{"error": {code, message}}`, or the
/// `{"detail": ...}` other APIs answer with.
fn error_detail(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_owned);
    let code = text("/error/code").unwrap_or_default();
    let message = text("/error/message").or_else(|| text("/detail")).or_else(|| text("/error")).unwrap_or_else(|| {
        let raw = String::from_utf8_lossy(body);
        raw.chars().take(200).collect()
    });
    (code, message)
}

#[derive(Deserialize)]
struct RawCloudAppsPage<'a> {
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
    #[serde(rename = "hasNext", default)]
    has_next: Option<bool>,
    #[serde(default)]
    total: Option<u64>,
    /// `total` is only a lower bound when this is true (api-alerts-list.md response sample).
    #[serde(rename = "moreThanTotal", default)]
    more_than_total: Option<bool>,
}

/// Decodes a page of `what` whose items `item` reads; `R` is the page's envelope. An item that
/// does not decode is set aside with its reason rather than failing the page.
fn decode<'a, R: Deserialize<'a>>(
    body: &'a [u8],
    what: &str,
    items: impl FnOnce(&R) -> &[&'a RawValue],
    item: fn(&RawValue) -> Result<Item, crate::domain::alert::HeadError>,
) -> Result<(R, Vec<Item>, Vec<Rejected>), GraphError> {
    let raw: R = serde_json::from_slice(body).map_err(|e| GraphError::Decode { what: what.into(), detail: e.to_string() })?;
    let mut decoded = Vec::new();
    let mut rejects = Vec::new();
    for r in items(&raw) {
        match item(r) {
            Ok(i) => decoded.push(i),
            Err(e) => rejects.push(Rejected { raw: r.get().to_owned(), reason: e.to_string() }),
        }
    }
    Ok((raw, decoded, rejects))
}

/// Decodes a Cloud Apps list answer: `{"data": [...], "hasNext": bool, ...}`.
pub fn decode_cloud_apps_page(body: &[u8]) -> Result<Page, GraphError> {
    let (raw, items, rejects) = decode(body, "a Cloud Apps page", |r: &RawCloudAppsPage<'_>| &r.data, Item::from_cloud_apps)?;
    let count = if raw.more_than_total == Some(true) { None } else { raw.total.and_then(|t| usize::try_from(t).ok()) };
    Ok(Page { items, next_link: None, has_more: raw.has_next, count, rejects })
}

/// Which counters a call counts in: Cloud Apps', or Graph's (every other audience the poller uses).
fn counter_slot(api: Audience) -> usize {
    usize::from(api == Audience::CloudApps)
}

/// Decodes a Graph collection page: the items' heads, their raw bytes, and the next link.
pub fn decode_page(body: &[u8]) -> Result<Page, GraphError> {
    let (raw, items, rejects) = decode(body, "a Graph page", |r: &RawPage<'_>| &r.value, Item::from_raw)?;
    Ok(Page { items, next_link: raw.next_link, has_more: None, count: raw.count.and_then(|c| usize::try_from(c).ok()), rejects })
}

impl GraphApi for HttpGraphApi {
    fn counters(&self, api: Audience) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.throttled[counter_slot(api)].load(Relaxed), self.retried[counter_slot(api)].load(Relaxed))
    }

    async fn page(&self, creds: &Credentials, request: &PageRequest) -> Result<Page, GraphError> {
        match request {
            PageRequest::CloudApps { portal, from, to, skip, limit } => {
                self.cloud_apps_page(creds, portal, &Self::cloud_apps_request(*from, *to, *skip, *limit)).await
            }
            PageRequest::Link(link) => {
                self.check_link(link)?;
                self.get_page(creds, link).await
            }
            _ => self.get_page(creds, &self.query_url(request)).await,
        }
    }

    async fn incident_alerts(&self, creds: &Credentials, incident_id: &str) -> Result<Vec<Item>, GraphError> {
        let id: String = form_urlencoded::byte_serialize(incident_id.as_bytes()).collect();
        let mut url = format!("{}/v1.0/security/incidents/{id}/alerts", self.graph_base);
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_INCIDENT_ALERT_PAGES {
            let page = self.get_page(creds, &url).await?;
            out.extend(page.items);
            // An alert of the incident that does not decode still belongs to it: passed on as
            // it came, for the processor to judge.
            for r in page.rejects {
                if let Ok(raw) = RawValue::from_string(r.raw) {
                    out.push(Item { head: crate::domain::alert::Head { id: String::new(), version: GraphTime::default() }, raw });
                }
            }
            match page.next_link {
                Some(next) if seen.insert(next.clone()) => {
                    self.check_link(&next)?;
                    url = next
                }
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
