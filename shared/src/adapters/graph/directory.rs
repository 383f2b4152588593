//! The remediator's directory calls (ms-apis.md §10): the user with every role and group it
//! holds (`transitiveMemberOf`, nested ones included, and role management's grants:
//! `role_grants`), `revokeSignInSessions`, and
//! `PATCH accountEnabled: false`. Writes count against the directory's budget like reads.

use serde_json::{json, Value};

use super::auth::Audience;
use super::client::{Call, MicrosoftHttp};
use super::settings::HttpSettings;
use crate::domain::integration::Credentials;
use crate::domain::response::remediation::Target;
use crate::error::GraphError;
use crate::ports::remediation::DirectoryActions;

const GRAPH: &str = "Graph";
/// Memberships read: pages of 999, at most this many (a user in more is refused as unprovable).
const MEMBERSHIP_PAGES: usize = 10;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn decode(body: &[u8]) -> Result<Value, GraphError> {
    serde_json::from_slice(body).map_err(|e| GraphError::Decode { what: GRAPH.into(), detail: e.to_string() })
}

impl MicrosoftHttp {
    pub(super) fn graph_url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.graph_base_url.trim_end_matches('/'))
    }
}

impl DirectoryActions for MicrosoftHttp {
    async fn target(&self, creds: &Credentials, user: &str) -> Result<Option<Target>, GraphError> {
        let url = self.graph_url(&format!("/v1.0/users/{}?$select=id,userPrincipalName,accountEnabled,userType", enc(user)));
        let u = match self.send(creds, &Call::get(GRAPH, Audience::Graph, &url)).await {
            Ok(b) => decode(&b)?,
            Err(GraphError::Http { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let text = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut t = Target {
            id: text("id").to_ascii_lowercase(),
            upn: text("userPrincipalName"),
            account_enabled: u.get("accountEnabled").and_then(Value::as_bool),
            user_type: u.get("userType").and_then(Value::as_str).map(str::to_owned),
            ..Target::default()
        };
        if t.id.is_empty() {
            return Err(GraphError::Decode { what: GRAPH.into(), detail: "the user has no id".into() });
        }
        let mut next = Some(self.graph_url(&format!("/v1.0/users/{}/transitiveMemberOf?$top=999", enc(&t.id))));
        let mut pages = 0;
        let mut groups = Vec::new();
        while let Some(url) = next.take() {
            if pages == MEMBERSHIP_PAGES {
                t.memberships_incomplete = true;
                break;
            }
            pages += 1;
            let page = decode(&self.send(creds, &Call::get(GRAPH, Audience::Graph, &url)).await?)?;
            for m in page.get("value").and_then(Value::as_array).into_iter().flatten() {
                let id = m.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                match m.get("@odata.type").and_then(Value::as_str) {
                    Some("#microsoft.graph.directoryRole") => t.roles.push((
                        m.get("roleTemplateId").and_then(Value::as_str).unwrap_or_default().to_owned(),
                        m.get("displayName").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    )),
                    Some("#microsoft.graph.group") => {
                        groups.push((id.clone(), m.get("isAssignableToRole").and_then(Value::as_bool)));
                        t.groups.push(id);
                    }
                    _ => {}
                }
            }
            next = match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(n) if HttpSettings::same_origin(n, &self.settings.graph_base_url) => Some(n.to_owned()),
                Some(_) => return Err(GraphError::Decode { what: GRAPH.into(), detail: "a nextLink points to another host".into() }),
                None => None,
            };
        }
        if !t.memberships_incomplete {
            self.read_grants(creds, &mut t, &groups).await?;
        }
        Ok(Some(t))
    }

    async fn revoke_sessions(&self, creds: &Credentials, user_id: &str) -> Result<(), GraphError> {
        let url = self.graph_url(&format!("/v1.0/users/{}/revokeSignInSessions", enc(user_id)));
        // No body (user-revokesigninsessions.md); the answer is `{"value": true}`, though the
        // doc warns the status code may differ: any 2xx is taken.
        let call = Call { raw: Some((&[], "application/json")), ..Call::get(GRAPH, Audience::Graph, &url) };
        self.send(creds, &call).await.map(|_| ())
    }

    async fn disable_account(&self, creds: &Credentials, user_id: &str) -> Result<(), GraphError> {
        let url = self.graph_url(&format!("/v1.0/users/{}", enc(user_id)));
        let body = json!({"accountEnabled": false});
        let call = Call { body: Some(&body), method: Some(reqwest::Method::PATCH), ..Call::get(GRAPH, Audience::Graph, &url) };
        self.send(creds, &call).await.map(|_| ())
    }
}
