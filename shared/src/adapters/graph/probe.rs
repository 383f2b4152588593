//! The calls Test & Save makes: the smallest real request each API answers.

use serde_json::{json, Value};

use super::auth::Audience;
use super::client::{Call, MicrosoftHttp};
use crate::domain::integration::Credentials;
use crate::domain::permissions::{Api, TokenClaims};
use crate::domain::processing::context::ContextPart;
use crate::domain::time::GraphTime;
use crate::error::GraphError;
use crate::ports::{ContextAnswer, ContextProbe, ContextRequest, GraphApi, MicrosoftProbe, Page, PageRequest, PartCall, Probe};

use super::context::ContextCalls;

/// The EICAR test file's SHA-1: a hash any tenant may ask the files API about (an answer or a
/// 404 both prove the call is allowed; only a refusal fails).
const A_KNOWN_FILE: &str = "3395856ce81f2b7382dee72602f798b642f14140";
/// How long a Test & Save context call waits for the tenant's budget.
const CONTEXT_PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Users read to find one with a mailbox (user-list.md: `$top` up to 999).
const USERS_READ: u32 = 20;

/// A user the context calls are made on.
struct ProbeUser {
    id: String,
    upn: String,
    /// The primary SMTP address, where the user has a mailbox.
    mail: Option<String>,
}

fn count(body: &[u8], what: &str, key: &str) -> Result<usize, GraphError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| GraphError::Decode { what: what.into(), detail: e.to_string() })?;
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::len)
        .ok_or_else(|| GraphError::Decode { what: what.into(), detail: format!("no `{key}` array in the answer") })
}

/// A quarantine identity (`GUID\\GUID`) no message has.
const NO_SUCH_MESSAGE: &str = "00000000-0000-0000-0000-000000000000\\00000000-0000-0000-0000-000000000000";

/// An Internet Message-ID no email has (RFC 2606's `.invalid`).
const NO_SUCH_EMAIL: &str = "<m365-ingest-test-and-save@example.invalid>";

impl MicrosoftProbe for MicrosoftHttp {
    fn cloud(&self) -> crate::domain::cloud::Cloud {
        self.settings.cloud
    }

    async fn claims(&self, creds: &Credentials, api: Api) -> Result<TokenClaims, GraphError> {
        self.tokens().claims(creds, api).await
    }

    async fn probe(&self, creds: &Credentials, probe: &Probe) -> Result<usize, GraphError> {
        let s = &self.settings;
        match probe {
            Probe::FirstPage(request) => self.page(creds, request).await.map(|p| p.items.len() + p.rejects.len()),
            Probe::CloudAppsActivities { portal, since } => {
                let filters = json!({"date": {"gte": since.unix_millis()}});
                crate::ports::investigation::InvestigationApi::activities(self, creds, portal, &filters, 0, 1)
                    .await
                    .map(|(rows, _)| rows.len())
            }
            Probe::Machines => {
                let url = format!("{}/api/machines?$top=1", s.mde_base_url.trim_end_matches('/'));
                count(
                    &self.send(creds, &Call::get("Defender for Endpoint", Audience::DefenderForEndpoint, &url)).await?,
                    "machines",
                    "value",
                )
            }
            // The jobs' own calls (app/evidence/driver.rs), so a role or header that would refuse them
            // refuses Test & Save too: the lookup, then an export of an identity that cannot
            // exist. No user's email is read: Exchange answers that identity "couldn't be found"
            // to a role that may export, and "is not recognized" (the cmdlet is not in the role)
            // to one that may not.
            Probe::Exchange { organization, since } => {
                let found = self.quarantine_sample(creds, organization, *since).await?;
                match crate::ports::EvidenceApi::export_quarantined(self, creds, organization, NO_SUCH_MESSAGE).await {
                    Err(GraphError::Http { status: 400 | 404, message, .. }) if message.contains("couldn't be found") => {}
                    Err(e) => return Err(e),
                    Ok(_) => {}
                }
                Ok(found.len())
            }
        }
    }

    async fn mailbox_search(&self, creds: &Credentials, mailbox: Option<&str>) -> (Option<String>, PartCall) {
        let address = match mailbox {
            Some(m) => m.to_owned(),
            None => match self.a_user(creds).await {
                Ok(Some(ProbeUser { mail: Some(m), .. })) => m,
                Ok(_) => return (None, PartCall::Unreached("the tenant lists no user with a mailbox".into())),
                // Listing users needs User.ReadBasic.All, which this feature does not.
                Err(e) => return (None, PartCall::Unreached(format!("no user could be listed to search a mailbox of ({e})"))),
            },
        };
        let call = match crate::ports::EvidenceApi::find_in_mailbox(self, creds, &address, NO_SUCH_EMAIL).await {
            Ok(found) if found.is_empty() => PartCall::Missing,
            Ok(_) => PartCall::Answered,
            Err(e) => PartCall::Failed(e),
        };
        (Some(address), call)
    }

    async fn first_page(&self, creds: &Credentials, request: &PageRequest) -> Result<Page, GraphError> {
        self.page(creds, request).await
    }

    async fn context(&self, creds: &Credentials, parts: &[ContextPart], now: GraphTime) -> ContextProbe {
        let calls = ContextCalls { http: self, budget_wait: CONTEXT_PROBE_WAIT };
        let mut parts = parts.to_vec();
        parts.sort();
        parts.dedup();
        let mut out = ContextProbe::default();
        let wants_user = parts.iter().any(|p| !matches!(p, ContextPart::Device | ContextPart::File));
        let user = if wants_user { Some(self.a_user(creds).await) } else { None };
        let device = if parts.contains(&ContextPart::Device) { Some(self.a_device(creds).await) } else { None };
        if let Some(Ok(Some(u))) = &user {
            out.user = Some(u.upn.clone());
        }
        if let Some(Ok(Some(d))) = &device {
            out.device = Some(d.clone());
        }
        for part in parts {
            let request = match part {
                ContextPart::Device => match &device {
                    Some(Ok(Some(id))) => Ok(ContextRequest::Machine { id: id.clone() }),
                    Some(Ok(None)) => Err(PartCall::Unreached("the tenant lists no onboarded device".into())),
                    Some(Err(e)) => Err(PartCall::Failed(e.clone())),
                    None => continue,
                },
                ContextPart::File => Ok(ContextRequest::File { hash: A_KNOWN_FILE.into() }),
                _ => match &user {
                    Some(Ok(Some(u))) => user_request(part, u, now),
                    Some(Ok(None)) => Err(PartCall::Unreached("the tenant lists no user".into())),
                    // Listing users needs User.Read.All, which user context holds; a calendar
                    // alone reads the users its alerts name.
                    Some(Err(e)) if part.feature() == crate::domain::permissions::Feature::UserContext => Err(PartCall::Failed(e.clone())),
                    Some(Err(e)) => Err(PartCall::Unreached(format!("no user could be listed to make it on ({e})"))),
                    None => continue,
                },
            };
            let call = match request {
                Ok(request) => match calls.run(creds, &request).await {
                    Ok(ContextAnswer::Missing) => PartCall::Missing,
                    Ok(_) => PartCall::Answered,
                    Err(e) => PartCall::Failed(e),
                },
                Err(call) => call,
            };
            out.parts.push((part, call));
        }
        out
    }
}

/// The call a user's part makes, as the processor makes it (enrich.rs), on `u`.
fn user_request(part: ContextPart, u: &ProbeUser, now: GraphTime) -> Result<ContextRequest, PartCall> {
    let mailbox = || u.mail.clone().ok_or_else(|| PartCall::Unreached(format!("{} has no mailbox", u.upn)));
    let hour = std::time::Duration::from_secs(3_600);
    Ok(match part {
        ContextPart::Profile => ContextRequest::User { user: u.id.clone() },
        ContextPart::Roles | ContextPart::Groups => ContextRequest::Memberships { user: u.id.clone(), top: 1, pages: 1 },
        ContextPart::Mfa => ContextRequest::Registration { user_id: u.id.clone() },
        ContextPart::SignIns => ContextRequest::SignIns { user: u.id.clone(), by_id: true, from: now.minus(hour * 24), to: now, top: 1 },
        ContextPart::OutOfOffice => ContextRequest::AutoReplies { user: mailbox()? },
        ContextPart::Schedule => {
            let address = mailbox()?;
            ContextRequest::Schedule { user: address.clone(), address, from: now, to: now.plus(hour), interval_minutes: 60 }
        }
        ContextPart::Presence => ContextRequest::Presences { ids: vec![u.id.clone()] },
        ContextPart::Device | ContextPart::File => return Err(PartCall::Unreached("not a user's part".into())),
    })
}

impl MicrosoftHttp {
    /// A user of the tenant, one with a mailbox if the first page has one (user-list.md).
    async fn a_user(&self, creds: &Credentials) -> Result<Option<ProbeUser>, GraphError> {
        let graph = self.settings.graph_base_url.trim_end_matches('/');
        let url = format!("{graph}/v1.0/users?$top={USERS_READ}&$select=id,userPrincipalName,mail");
        let body = self.send(creds, &Call { budget_wait: Some(CONTEXT_PROBE_WAIT), ..Call::get("Graph", Audience::Graph, &url) }).await?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| GraphError::Decode { what: "users".into(), detail: e.to_string() })?;
        let users: Vec<ProbeUser> = v
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|u| {
                let text = |k: &str| u.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
                Some(ProbeUser { id: text("id")?, upn: text("userPrincipalName")?, mail: text("mail") })
            })
            .collect();
        let with_mailbox = users.iter().position(|u| u.mail.is_some()).unwrap_or(0);
        Ok(users.into_iter().nth(with_mailbox))
    }

    /// An onboarded device's Defender machine id (get-machines.md).
    async fn a_device(&self, creds: &Credentials) -> Result<Option<String>, GraphError> {
        let url = format!("{}/api/machines?$top=1", self.settings.mde_base_url.trim_end_matches('/'));
        let call = Call {
            budget_wait: Some(CONTEXT_PROBE_WAIT),
            paced: true,
            ..Call::get("Defender for Endpoint", Audience::DefenderForEndpoint, &url)
        };
        let body = self.send(creds, &call).await?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| GraphError::Decode { what: "machines".into(), detail: e.to_string() })?;
        Ok(v.pointer("/value/0/id").and_then(Value::as_str).map(str::to_owned))
    }
}
