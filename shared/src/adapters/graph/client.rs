//! The HTTPS transport to Microsoft's APIs (Graph, Cloud Apps, Defender for Endpoint, Exchange
//! Online): tokens per tenant and audience, bounded retries for throttling, server errors,
//! timeouts and cut-off bodies, one token refresh on 401 that retries the same call, and
//! requests paced per tenant. The `GraphApi` port routes each request to the client of its API
//! (graph_api.rs: collections.rs for Graph, cloud_apps.rs for Cloud Apps), which share this
//! transport.

use std::time::Instant;

use super::auth::{without_url, Audience, TokenProvider};
use super::body::{read_capped, BodyError};
use super::pacing::LocalBudget;
use super::retry::{parse_retry_after, RetryPolicy};
use super::settings::HttpSettings;
use crate::domain::integration::Credentials;
use crate::error::{ConfigError, GraphError};
use crate::ports::{BudgetKey, Rate, RequestBudget};

pub struct MicrosoftHttp {
    /// 429 answers and retries since start per API (Graph, Cloud Apps), for the throttling metrics.
    pub(super) throttled: [std::sync::atomic::AtomicU64; 2],
    pub(super) retried: [std::sync::atomic::AtomicU64; 2],
    http: reqwest::Client,
    pub(super) graph_base: String,
    tokens: TokenProvider,
    policy: RetryPolicy,
    prefer_unknown: bool,
    pub(crate) settings: HttpSettings,
    /// Requests per tenant (and app, for Graph), as Microsoft limits them: this instance's own
    /// by default, the deployment's shared one with [`MicrosoftHttp::with_budget`].
    budget: std::sync::Arc<dyn RequestBudget>,
}

/// Outlook's concurrent requests per app per mailbox (throttling-limits.md "Outlook service
/// limits"; the stricter of the two readings the page gives: per app, not per app and tenant),
/// held in the request budget: across instances when it is the deployment's shared one.
pub const MAILBOX_CONCURRENCY: u32 = 4;
/// A held mailbox slot outlives its request's time limit by this much before another instance
/// may take it from a holder that never gave it back.
const MAILBOX_LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

impl MicrosoftHttp {
    pub fn new(settings: &HttpSettings, policy: RetryPolicy) -> Result<Self, ConfigError> {
        let http = settings.client()?;
        Ok(MicrosoftHttp {
            throttled: Default::default(),
            retried: Default::default(),
            tokens: TokenProvider::new(http.clone(), &settings.login_base_url, settings.scopes.clone(), policy),
            http,
            graph_base: settings.graph_base_url.trim_end_matches('/').to_owned(),
            policy,
            prefer_unknown: settings.include_unknown_enum_members,
            budget: std::sync::Arc::new(LocalBudget::default()),
            settings: settings.clone(),
        })
    }

    /// Holds one of Outlook's concurrent slots of the mailbox a call reads, if it reads one:
    /// Ok(None) when it reads none, or when a call that may wait as long as it takes found no
    /// slot within a lease (it goes: Microsoft's 429 is the backstop).
    async fn hold_mailbox(
        &self,
        creds: &Credentials,
        call: &Call<'_>,
        left: Option<std::time::Duration>,
    ) -> Result<Option<crate::ports::Hold>, GraphError> {
        if call.audience != Audience::Graph {
            return Ok(None);
        }
        let GraphBudget::Mailbox(mailbox) = graph_budget(call.url, &self.graph_base) else { return Ok(None) };
        let key = BudgetKey {
            tenant_id: creds.tenant_id.clone(),
            client_id: Some(creds.client_id.clone()),
            api: Audience::Graph,
            scope: Some(mailbox),
        };
        let lease = call.timeout.unwrap_or(self.settings.request_timeout) + MAILBOX_LEASE_MARGIN;
        match (self.budget.hold(&key, MAILBOX_CONCURRENCY, lease, left.unwrap_or(lease)).await, call.budget_wait) {
            (Some(hold), _) => Ok(Some(hold)),
            (None, Some(within)) => Err(GraphError::OverBudget { api: call.api, within }),
            (None, None) => {
                tracing::warn!(api = call.api, "no mailbox slot freed up within a lease; the request goes");
                Ok(None)
            }
        }
    }

    pub fn tokens(&self) -> &TokenProvider {
        &self.tokens
    }

    /// Dates client assertions by `clock` (a simulator's), not the system's.
    pub fn with_assertion_clock(mut self, clock: super::auth::AssertionClock) -> Self {
        self.tokens.set_assertion_clock(clock);
        self
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
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
            let waiting = Instant::now();
            for (key, rate) in self.budget_for(creds, call).into_iter().chain(self.budget_too(creds, call)) {
                match call.budget_wait {
                    None => {
                        self.budget.admit(&key, rate).await;
                    }
                    Some(within) => {
                        if self.budget.admit_within(&key, rate, within).await.is_none() {
                            return Err(GraphError::OverBudget { api: call.api, within });
                        }
                    }
                }
            }
            // Held until the answer is read: a request is in flight at Outlook until then.
            // Within what is left of the call's wait: the budget's and the slot's are one.
            let mailbox_slot = self.hold_mailbox(creds, call, call.budget_wait.map(|w| w.saturating_sub(waiting.elapsed()))).await?;
            let has_body = call.body.is_some() || call.raw.is_some();
            let method = call.method.clone().unwrap_or(if has_body { reqwest::Method::POST } else { reqwest::Method::GET });
            let req = self.http.request(method, call.url);
            let mut req = match (call.body, call.raw) {
                (Some(b), _) => req.json(b),
                (None, Some((bytes, content_type))) => req.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes.to_vec()),
                (None, None) => req,
            }
            .bearer_auth(token.expose());
            if let Some(t) = call.timeout {
                req = req.timeout(t);
            }
            if self.prefer_unknown && call.audience == Audience::Graph {
                req = req.header("Prefer", "include-unknown-enum-members");
            }
            for (k, v) in call.headers {
                req = req.header(*k, v);
            }
            let answer = match req.send().await {
                Err(e) => Err(GraphError::Transport { what: call.api.into(), detail: without_url(&e) }),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = parse_retry_after(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()));
                    let body =
                        read_capped(resp, call.api, call.max_bytes.unwrap_or(self.settings.max_body_bytes)).await.map_err(|e| match e {
                            BodyError::TooLarge(e) => e,
                            BodyError::Transport(e) => GraphError::Transport { what: call.api.into(), detail: without_url(&e) },
                        });
                    body.map(|body| (status, retry_after, body))
                }
            };
            if let Some(slot) = mailbox_slot {
                slot.release().await;
            }
            let (err, retry_after) = match answer {
                Err(e @ GraphError::TooLarge { .. }) => return Err(e),
                Err(e) => (e, None),
                Ok((status, _, body)) if (200..300).contains(&status) => return Ok(body),
                Ok((status, retry_after, body)) => {
                    let (code, message) = error_detail(&body);
                    let err = GraphError::Http { api: call.api, status, code, message };
                    if status == 401 && !refreshed {
                        // An expired or revoked token: one refresh, then the same call again.
                        refreshed = true;
                        self.tokens.invalidate(creds, call.audience).await;
                        tracing::debug!(expected_retry = true, api = call.api, "token refused, refreshing once");
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
            };
            attempt += 1;
            let delay = self.policy.delay(attempt, retry_after);
            if !self.policy.allows(attempt, started.elapsed(), delay) || !self.policy.accepts_wait(retry_after) {
                // A 429 given up on says how long Microsoft asked to wait.
                let throttled_last = matches!(err, GraphError::Http { status: 429, .. });
                return Err(if throttles > 1 || (throttled_last && retry_after.is_some()) {
                    let said = match &err {
                        GraphError::Http { status: 429, message, .. } if !message.is_empty() => {
                            format!("; Microsoft said: {}", message.chars().take(300).collect::<String>())
                        }
                        _ => String::new(),
                    };
                    GraphError::Throttled { api: call.api, attempts: throttles, retry_after, said }
                } else {
                    err
                });
            }
            self.retried[counter_slot(call.audience)].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // A 429 Microsoft said how to wait out is expected (and counted in the throttling
            // metrics): debug. Anything else that is retried is worth a warning.
            if matches!(err, GraphError::Http { status: 429, .. }) && retry_after.is_some() {
                tracing::debug!(expected_retry = true, api = call.api, attempt, delay_ms = delay.as_millis() as u64, error = %err, "throttled, retrying as asked");
            } else {
                tracing::warn!(api = call.api, attempt, delay_ms = delay.as_millis() as u64, error = %err, "request failed, retrying");
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Shares the budget of requests per tenant with other instances (the deployment's DynamoDB one).
    pub fn with_budget(mut self, budget: std::sync::Arc<dyn RequestBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Which budget a call counts against, if its API has a limit we keep to.
    pub(crate) fn budget_for(&self, creds: &Credentials, call: &Call<'_>) -> Option<(BudgetKey, Rate)> {
        let (client_id, rate, scope) = match call.audience {
            // Per tenant (api-introduction.md).
            Audience::CloudApps if call.paced => {
                (None, Rate { requests: self.settings.cloud_apps_rate.0 as u32, window: self.settings.cloud_apps_rate.1 }, None)
            }
            // Per app per tenant (throttling-limits.md), each service by its own limit, and a
            // mailbox's per app per mailbox.
            Audience::Graph => {
                let app = Some(creds.client_id.clone());
                match graph_budget(call.url, &self.graph_base) {
                    GraphBudget::Mailbox(mailbox) => (app, self.settings.mailbox_rate?, Some(mailbox)),
                    GraphBudget::Reports => (app, self.settings.reports_rate?, Some("reports".to_owned())),
                    GraphBudget::Directory => (app, self.settings.directory_rate?, Some("directory".to_owned())),
                    GraphBudget::Presence => (app, self.settings.presence_rate?, Some("presence".to_owned())),
                    GraphBudget::Hunting => (app, self.settings.hunting_rate?, Some("hunting".to_owned())),
                    GraphBudget::Security => (app, self.settings.graph_rate?, None),
                }
            }
            // Each Defender for Endpoint API: 100 calls a minute (get-machine-by-id.md,
            // get-file-information.md, get-machineaction-object.md, get-live-response-result.md,
            // cancel-machine-action.md, upload-library.md); runliveresponse 10 a minute
            // (run-live-response.md). Every call, the evidence steps' as well as context's.
            Audience::DefenderForEndpoint => {
                let app = Some(creds.client_id.clone());
                // Pacing off (no `mde_rate`) is off for runliveresponse too.
                self.settings.mde_rate?;
                if call.url.split('?').next().is_some_and(|p| p.to_ascii_lowercase().ends_with("/runliveresponse")) {
                    (app, LIVE_RESPONSE_RATE, Some("runliveresponse".to_owned()))
                } else {
                    (app, self.settings.mde_rate?, Some(mde_api(call.url, &self.settings.mde_base_url)))
                }
            }
            // Exchange's cmdlets, per app per tenant (settings.rs EXCHANGE_RATE).
            Audience::Exchange => (Some(creds.client_id.clone()), self.settings.exchange_rate?, Some("cmdlets".to_owned())),
            _ => return None,
        };
        Some((BudgetKey { tenant_id: creds.tenant_id.clone(), client_id, api: call.audience, scope }, rate))
    }

    /// The second limit a call counts against: a hunting call, the security API's 150 a minute
    /// (whether that limit covers `runHuntingQuery` is undocumented; the simulator takes the
    /// stricter reading); a Defender for Endpoint call but runliveresponse (10 a minute, no
    /// hourly limit on its page), its API's 1,500 an hour.
    pub(crate) fn budget_too(&self, creds: &Credentials, call: &Call<'_>) -> Option<(BudgetKey, Rate)> {
        let key = |scope: Option<String>| BudgetKey {
            tenant_id: creds.tenant_id.clone(),
            client_id: Some(creds.client_id.clone()),
            api: call.audience,
            scope,
        };
        match call.audience {
            Audience::Graph if graph_budget(call.url, &self.graph_base) == GraphBudget::Hunting => {
                Some((key(None), self.settings.graph_rate?))
            }
            Audience::DefenderForEndpoint => {
                let (minute, _) = self.budget_for(creds, call)?;
                let scope = minute.scope.filter(|s| s != "runliveresponse")?;
                Some((key(Some(format!("{scope}#hour"))), super::settings::MDE_HOURLY_RATE))
            }
            _ => None,
        }
    }
}

/// run-live-response.md: 10 calls a minute.
const LIVE_RESPONSE_RATE: Rate = Rate { requests: 10, window: std::time::Duration::from_secs(60) };

/// What one call is: which API (for messages), which token, where, and with what body.
pub(crate) struct Call<'a> {
    pub api: &'static str,
    pub audience: Audience,
    pub url: &'a str,
    /// POSTed as JSON when set; a GET otherwise.
    pub body: Option<&'a serde_json::Value>,
    /// POSTed as these bytes of this content type (a form upload) when set and `body` is not.
    pub raw: Option<(&'a [u8], &'a str)>,
    pub headers: &'a [(&'static str, String)],
    /// Counted against the tenant's Cloud Apps pace.
    pub paced: bool,
    /// This call's own time limit, instead of the client's.
    pub timeout: Option<std::time::Duration>,
    /// Wait at most this long for the tenant's budget, else fail with `OverBudget` (None: wait
    /// as long as the budget says).
    pub budget_wait: Option<std::time::Duration>,
    /// The method, when not GET (no body) or POST (a body): PATCH.
    pub method: Option<reqwest::Method>,
    /// The largest answer read, instead of the client's (an export of a large email).
    pub max_bytes: Option<usize>,
}

impl<'a> Call<'a> {
    pub fn get(api: &'static str, audience: Audience, url: &'a str) -> Self {
        Call {
            api,
            audience,
            url,
            body: None,
            raw: None,
            headers: &[],
            paced: false,
            timeout: None,
            budget_wait: None,
            method: None,
            max_bytes: None,
        }
    }
}

/// Which of Graph's limits a request counts against (throttling-limits.md; ms-apis.md §11).
#[derive(Debug, Clone, PartialEq, Eq)]
enum GraphBudget {
    /// Outlook: per app per mailbox (`/users/{mailbox}/messages|mailFolders|mailboxSettings|calendar…`).
    Mailbox(String),
    /// Identity and access reports (sign-ins, registration details): 5 requests per 10 s.
    Reports,
    /// Identity and access (users, memberships): the directory's token bucket.
    Directory,
    /// Cloud communications presence: 1,500 requests per 30 s.
    Presence,
    /// Advanced hunting: 45 calls a minute per tenant.
    Hunting,
    /// Everything else the app calls: the security API's 150 a minute.
    Security,
}

/// The Outlook resources under a user (throttling-limits.md "Outlook service limits").
const MAILBOX_RESOURCES: &[&str] = &["messages", "mailfolders", "mailboxsettings", "calendar", "calendars", "events", "calendarview"];

fn graph_budget(url: &str, graph_base: &str) -> GraphBudget {
    let Some(path) = url.strip_prefix(graph_base) else { return GraphBudget::Security };
    let mut parts = path.trim_start_matches('/').split(['/', '?']);
    let (_version, service, second, third) = (parts.next(), parts.next(), parts.next(), parts.next());
    match (service.map(str::to_ascii_lowercase).as_deref(), second, third.map(str::to_ascii_lowercase)) {
        (Some("users"), Some(user), Some(resource)) if !user.is_empty() && MAILBOX_RESOURCES.contains(&resource.as_str()) => {
            GraphBudget::Mailbox(user.to_ascii_lowercase())
        }
        (Some("users"), Some(user), _) if !user.is_empty() => GraphBudget::Directory,
        // Role management and PIM for Groups are identity and access: the directory's units.
        (Some("rolemanagement" | "identitygovernance"), _, _) => GraphBudget::Directory,
        (Some("auditlogs" | "reports"), _, _) => GraphBudget::Reports,
        (Some("communications"), _, _) => GraphBudget::Presence,
        (Some("security"), Some(action), _) if action.eq_ignore_ascii_case("runHuntingQuery") => GraphBudget::Hunting,
        _ => GraphBudget::Security,
    }
}

/// The Defender for Endpoint API a URL calls (`machines`, `files`, …), each limited on its own.
fn mde_api(url: &str, mde_base: &str) -> String {
    let path = url.strip_prefix(mde_base.trim_end_matches('/')).unwrap_or(url);
    path.trim_start_matches('/').split(['/', '?']).nth(1).unwrap_or_default().to_ascii_lowercase()
}

/// The code and message of an error body: Graph's `{"error": {code, message}}`, or the
/// `{"detail": ...}` other APIs answer with.
fn error_detail(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_owned);
    let code = text("/error/code").unwrap_or_default();
    // Exchange's cmdlets put their own message in `details` (ms-apis.md §8); Graph's detail is
    // more specific than its summary where it gives one.
    let message = text("/error/details/0/message")
        .or_else(|| text("/error/message"))
        .or_else(|| text("/detail"))
        .or_else(|| text("/error"))
        .unwrap_or_else(|| {
            let raw = String::from_utf8_lossy(body);
            raw.chars().take(200).collect()
        });
    (code, message)
}

/// Which counters a call counts in: Cloud Apps', or Graph's (every other audience the poller uses).
pub(super) fn counter_slot(api: Audience) -> usize {
    usize::from(api == Audience::CloudApps)
}

#[cfg(test)]
mod budget_tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn mailbox_calls_are_paced_per_mailbox_apart_from_the_security_budget() {
        let http = MicrosoftHttp::new(&HttpSettings::default(), RetryPolicy::quick());
        let Ok(http) = http else { panic!("client") };
        let credential = crate::domain::integration::Credential::ClientSecret(Secret::new("s"));
        let creds = Credentials { tenant_id: "t".into(), client_id: "c".into(), credential };
        let budget = |url: &str| http.budget_for(&creds, &Call::get("Graph", Audience::Graph, url));
        let base = super::super::settings::GRAPH_BASE_URL;
        let listing = budget(&format!("{base}/v1.0/users/Phish%40contoso.com/mailFolders/inbox/messages?$top=50"));
        let mime = budget(&format!("{base}/v1.0/users/phish%40contoso.com/messages/AAMk%3D/$value"));
        let alerts = budget(&format!("{base}/v1.0/security/alerts_v2?$top=1000"));
        let Some((lk, lr)) = listing else { panic!("paced") };
        assert_eq!(lk.scope.as_deref(), Some("phish%40contoso.com"));
        assert_eq!(lr, super::super::settings::MAILBOX_RATE);
        assert_eq!(mime.map(|(k, _)| k), Some(lk.clone()), "one budget for the mailbox's every call");
        let Some((ak, ar)) = alerts else { panic!("paced") };
        assert_eq!((ak.scope.clone(), ar), (None, super::super::settings::GRAPH_SECURITY_RATE));
        assert_ne!(ak.client_id, None);
        // A hunting query counts against hunting's budget and the security API's both.
        let hunt = Call::get("Graph", Audience::Graph, "https://graph.microsoft.com/v1.0/security/runHuntingQuery");
        assert_eq!(http.budget_for(&creds, &hunt).map(|(k, _)| k.scope), Some(Some("hunting".to_owned())));
        assert_eq!(http.budget_too(&creds, &hunt), Some((ak.clone(), super::super::settings::GRAPH_SECURITY_RATE)));
        let list = Call::get("Graph", Audience::Graph, "https://graph.microsoft.com/v1.0/security/alerts_v2");
        assert_eq!(http.budget_too(&creds, &list), None, "counted once");
        // Defender for Endpoint: 100 a minute and 1,500 an hour per API; runliveresponse 10 a minute.
        let mde = |url| Call::get("MDE", Audience::DefenderForEndpoint, url);
        let link = mde("https://api.securitycenter.microsoft.com/api/machineactions/a1/GetLiveResponseResultDownloadLink(index=0)");
        let Some((minute, rate)) = http.budget_for(&creds, &link) else { panic!("paced") };
        assert_eq!((minute.scope.as_deref(), rate), (Some("machineactions"), super::super::settings::MDE_RATE));
        let Some((hour, rate)) = http.budget_too(&creds, &link) else { panic!("the hourly limit too") };
        assert_eq!((hour.scope.as_deref(), rate), (Some("machineactions#hour"), super::super::settings::MDE_HOURLY_RATE));
        let library = mde("https://api.securitycenter.microsoft.com/api/libraryfiles");
        assert_eq!(http.budget_too(&creds, &library).map(|(k, _)| k.scope), Some(Some("libraryfiles#hour".into())));
        assert_eq!(http.budget_too(&creds, &mde("https://api.securitycenter.microsoft.com/api/machines/m1/runliveresponse")), None);
        let unpaced = MicrosoftHttp::new(&HttpSettings { mde_rate: None, ..HttpSettings::default() }, RetryPolicy::quick());
        let Ok(unpaced) = unpaced else { panic!("client") };
        assert_eq!(unpaced.budget_too(&creds, &link), None, "pacing off is off for the hour too");
        // Another origin is never a mailbox of ours.
        assert_eq!(graph_budget("https://evil.example/v1.0/users/x/messages", base), GraphBudget::Security);
        let class = |path: &str| graph_budget(&format!("{base}{path}"), base);
        assert_eq!(class("/v1.0/users/a%40b.com/mailboxSettings/automaticRepliesSetting"), GraphBudget::Mailbox("a%40b.com".into()));
        assert_eq!(class("/v1.0/users/A%40b.com/calendar/getSchedule"), GraphBudget::Mailbox("a%40b.com".into()));
        assert_eq!(class("/v1.0/users/a%40b.com?$expand=manager"), GraphBudget::Directory);
        assert_eq!(class("/v1.0/users/u1/transitiveMemberOf?$top=100"), GraphBudget::Directory);
        assert_eq!(class("/v1.0/roleManagement/directory/roleAssignments?$filter=x"), GraphBudget::Directory);
        assert_eq!(class("/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"), GraphBudget::Directory);
        assert_eq!(class("/v1.0/security/incidents"), GraphBudget::Security);
        assert_eq!(class("/v1.0/auditLogs/signIns?$top=10"), GraphBudget::Reports);
        assert_eq!(class("/v1.0/reports/authenticationMethods/userRegistrationDetails/u1"), GraphBudget::Reports);
        assert_eq!(class("/v1.0/communications/getPresencesByUserId"), GraphBudget::Presence);
        assert_eq!(class("/v1.0/security/runHuntingQuery"), GraphBudget::Hunting);
        assert_eq!(mde_api("https://api.securitycenter.microsoft.com/api/files/abc", "https://api.securitycenter.microsoft.com/"), "files");
    }
}
