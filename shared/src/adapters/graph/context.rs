//! Context lookups over HTTPS (ms-apis.md §9, §7): Graph's users, memberships, registration
//! details, sign-ins, mailbox settings, schedules and presence, and Defender for Endpoint's
//! machines and files, each counted against the tenant's budget for its service, with the
//! integration's credentials (read from its secret, kept a minute in the warm function).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::auth::Audience;
use super::client::{Call, MicrosoftHttp};
use super::settings::HttpSettings;
use crate::domain::integration::{Credentials, Integration};
use crate::error::GraphError;
use crate::ports::{ContextAnswer, ContextApi, ContextRequest, SecretSource};

const GRAPH: &str = "Graph";
const MDE: &str = "Defender for Endpoint";
/// Credentials are read again after this: a rotated secret is picked up within a minute.
const CREDENTIALS_FOR: Duration = Duration::from_secs(60);
/// Integrations whose credentials are kept at once.
const MAX_CREDENTIALS: usize = 1_000;
/// The members a profile asks for (user-get.md; `$select` keeps the answer small).
const PROFILE_SELECT: &str =
    "id,userPrincipalName,displayName,accountEnabled,userType,department,jobTitle,officeLocation,city,country,usageLocation,createdDateTime";

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn decode(what: &str, body: &[u8]) -> Result<Value, GraphError> {
    serde_json::from_slice(body).map_err(|e| GraphError::Decode { what: what.into(), detail: e.to_string() })
}

pub struct MicrosoftContext<S> {
    http: MicrosoftHttp,
    secrets: S,
    /// The longest a lookup waits for its budget before it is reported as throttled.
    budget_wait: Duration,
    credentials: std::sync::Mutex<HashMap<String, (Instant, Credentials)>>,
}

impl<S: SecretSource> MicrosoftContext<S> {
    pub fn new(http: MicrosoftHttp, secrets: S, budget_wait: Duration) -> Self {
        MicrosoftContext { http, secrets, budget_wait, credentials: std::sync::Mutex::new(HashMap::new()) }
    }

    async fn credentials(&self, i: &Integration) -> Result<Credentials, GraphError> {
        // Checked on every use, cached or not: another integration's secret would read another tenant.
        let mine = |c: &Credentials| {
            if i.owns(c) {
                Ok(())
            } else {
                Err(GraphError::Credential(format!(
                    "the secret `{}` holds another tenant's or app's credentials; point secret_ref at this integration's own secret",
                    i.secret_ref
                )))
            }
        };
        let cached = self
            .credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&i.secret_ref)
            .filter(|(at, _)| at.elapsed() < CREDENTIALS_FOR)
            .map(|(_, c)| c.clone());
        if let Some(c) = cached {
            mine(&c)?;
            return Ok(c);
        }
        let c = self.secrets.load(&i.secret_ref).await.map_err(|e| GraphError::Credential(e.to_string()))?;
        mine(&c)?;
        let mut cache = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CREDENTIALS {
            cache.retain(|_, (at, _)| at.elapsed() < CREDENTIALS_FOR);
            if cache.len() >= MAX_CREDENTIALS {
                cache.clear();
            }
        }
        cache.insert(i.secret_ref.clone(), (Instant::now(), c.clone()));
        Ok(c)
    }

    async fn run(&self, i: &Integration, request: &ContextRequest) -> Result<ContextAnswer, GraphError> {
        let creds = self.credentials(i).await?;
        ContextCalls { http: &self.http, budget_wait: self.budget_wait }.run(&creds, request).await
    }
}

/// The lookups' calls through one client, each waiting at most `budget_wait` for its budget:
/// the processor's (through [`MicrosoftContext`]) and Test & Save's, the same requests.
pub(crate) struct ContextCalls<'a> {
    pub http: &'a MicrosoftHttp,
    pub budget_wait: Duration,
}

impl ContextCalls<'_> {
    fn graph(&self, path: &str) -> String {
        format!("{}{path}", self.http.settings.graph_base_url.trim_end_matches('/'))
    }

    async fn call(&self, creds: &Credentials, call: Call<'_>) -> Result<Option<Value>, GraphError> {
        let paced = call.audience == Audience::DefenderForEndpoint;
        let call = Call { budget_wait: Some(self.budget_wait), paced, ..call };
        match self.http.send(creds, &call).await {
            Ok(body) => Ok(Some(decode(call.api, &body)?)),
            Err(GraphError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A collection's items, at most `pages` pages, following nextLink only at Graph's origin.
    async fn pages(&self, creds: &Credentials, first: String, pages: u32) -> Result<ContextAnswer, GraphError> {
        let mut url = first;
        let mut items = Vec::new();
        for _ in 0..pages.max(1) {
            let Some(page) = self.call(creds, Call::get(GRAPH, Audience::Graph, &url)).await? else { return Ok(ContextAnswer::Missing) };
            items.extend(page.get("value").and_then(Value::as_array).cloned().unwrap_or_default());
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) if HttpSettings::same_origin(next, &self.http.settings.graph_base_url) => url = next.to_owned(),
                Some(_) => return Err(GraphError::Decode { what: GRAPH.into(), detail: "a nextLink points to another host".into() }),
                None => return Ok(ContextAnswer::Many { items, more: false }),
            }
        }
        Ok(ContextAnswer::Many { items, more: true })
    }

    /// One lookup with these credentials.
    pub(crate) async fn run(&self, creds: &Credentials, request: &ContextRequest) -> Result<ContextAnswer, GraphError> {
        let one = |v: Option<Value>| v.map_or(ContextAnswer::Missing, ContextAnswer::One);
        match request {
            ContextRequest::User { user } => {
                let url = self.graph(&format!(
                    "/v1.0/users/{}?$select={PROFILE_SELECT}&$expand=manager($select=id,displayName,userPrincipalName)",
                    enc(user)
                ));
                Ok(one(self.call(creds, Call::get(GRAPH, Audience::Graph, &url)).await?))
            }
            ContextRequest::Memberships { user, top, pages } => {
                let url = self.graph(&format!("/v1.0/users/{}/transitiveMemberOf?$top={top}", enc(user)));
                self.pages(creds, url, *pages).await
            }
            ContextRequest::Registration { user_id } => {
                let url = self.graph(&format!("/v1.0/reports/authenticationMethods/userRegistrationDetails/{}", enc(user_id)));
                Ok(one(self.call(creds, Call::get(GRAPH, Audience::Graph, &url)).await?))
            }
            ContextRequest::SignIns { user, by_id, from, to, top } => {
                let who = if *by_id { "userId" } else { "userPrincipalName" };
                let filter = format!("{who} eq '{}' and createdDateTime ge {from} and createdDateTime le {to}", user.replace('\'', "''"));
                let url = self.graph(&format!("/v1.0/auditLogs/signIns?$filter={}&$top={top}", enc(&filter)));
                // One page: the newest `top` (signin-list.md: newest first).
                self.pages(creds, url, 1).await.map(|a| match a {
                    ContextAnswer::Many { items, .. } => ContextAnswer::Many { more: items.len() >= *top as usize, items },
                    other => other,
                })
            }
            ContextRequest::AutoReplies { user } => {
                let url = self.graph(&format!("/v1.0/users/{}/mailboxSettings/automaticRepliesSetting", enc(user)));
                Ok(one(self.call(creds, Call::get(GRAPH, Audience::Graph, &url)).await?))
            }
            ContextRequest::Schedule { user, address, from, to, interval_minutes } => {
                let url = self.graph(&format!("/v1.0/users/{}/calendar/getSchedule", enc(user)));
                let time = |t: &crate::domain::time::GraphTime| json!({"dateTime": t.to_string().trim_end_matches('Z'), "timeZone": "UTC"});
                let body = json!({"schedules": [address], "startTime": time(from), "endTime": time(to), "availabilityViewInterval": interval_minutes});
                let headers = [("Prefer", "outlook.timezone=\"UTC\"".to_owned())];
                let call = Call { body: Some(&body), headers: &headers, ..Call::get(GRAPH, Audience::Graph, &url) };
                let answer = self.call(creds, call).await?;
                Ok(match answer.and_then(|v| v.get("value").and_then(Value::as_array).and_then(|a| a.first().cloned())) {
                    Some(info) => ContextAnswer::One(info),
                    None => ContextAnswer::Missing,
                })
            }
            ContextRequest::Presences { ids } => {
                let url = self.graph("/v1.0/communications/getPresencesByUserId");
                let body = json!({"ids": ids});
                let call = Call { body: Some(&body), ..Call::get(GRAPH, Audience::Graph, &url) };
                let items = self.call(creds, call).await?.and_then(|v| v.get("value").and_then(Value::as_array).cloned());
                Ok(ContextAnswer::Many { items: items.unwrap_or_default(), more: false })
            }
            ContextRequest::Machine { id } => {
                let url = format!("{}/api/machines/{}", self.http.settings.mde_base_url.trim_end_matches('/'), enc(id));
                Ok(one(self.call(creds, Call::get(MDE, Audience::DefenderForEndpoint, &url)).await?))
            }
            ContextRequest::File { hash } => {
                let url = format!("{}/api/files/{}", self.http.settings.mde_base_url.trim_end_matches('/'), enc(hash));
                Ok(one(self.call(creds, Call::get(MDE, Audience::DefenderForEndpoint, &url)).await?))
            }
        }
    }
}

impl<S: SecretSource> ContextApi for MicrosoftContext<S> {
    fn lookup<'a>(&'a self, integration: &'a Integration, request: &'a ContextRequest) -> BoxFuture<'a, Result<ContextAnswer, GraphError>> {
        Box::pin(self.run(integration, request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::graph::RetryPolicy;
    use crate::adapters::local::StaticSecretSource;
    use crate::domain::integration::Credential;
    use crate::secret::Secret;

    #[tokio::test]
    async fn a_cached_secret_is_never_used_for_another_tenant() {
        let creds = Credentials { tenant_id: "t1".into(), client_id: "c1".into(), credential: Credential::ClientSecret(Secret::new("s")) };
        let Ok(http) = MicrosoftHttp::new(&HttpSettings::default(), RetryPolicy::quick()) else { panic!("client") };
        let ctx = MicrosoftContext::new(http, StaticSecretSource::new().with("shared", creds), Duration::from_secs(1));
        let mine = Integration::new("a", "t1", "c1", "shared");
        let crossed = Integration::new("b", "t2", "c1", "shared");
        assert!(ctx.credentials(&mine).await.is_ok(), "loaded and cached");
        let e = ctx.credentials(&crossed).await.err();
        assert!(matches!(e, Some(GraphError::Credential(ref m)) if m.contains("another tenant")), "{e:?}");
    }
}
