//! The calls Test & Save makes: the smallest real request each API answers.

use serde_json::{json, Value};

use super::auth::Audience;
use super::client::{Call, MicrosoftHttp};
use crate::domain::integration::Credentials;
use crate::domain::permissions::{Api, TokenClaims};
use crate::error::GraphError;
use crate::ports::{GraphApi, MicrosoftProbe, Probe};

fn count(body: &[u8], what: &str, key: &str) -> Result<usize, GraphError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| GraphError::Decode { what: what.into(), detail: e.to_string() })?;
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::len)
        .ok_or_else(|| GraphError::Decode { what: what.into(), detail: format!("no `{key}` array in the answer") })
}

/// A quarantine identity (`GUID\\GUID`) no message has.
const NO_SUCH_MESSAGE: &str = "00000000-0000-0000-0000-000000000000\\00000000-0000-0000-0000-000000000000";

impl MicrosoftProbe for MicrosoftHttp {
    fn cloud(&self) -> crate::domain::cloud::Cloud {
        self.settings.cloud
    }

    async fn claims(&self, creds: &Credentials, api: Api) -> Result<TokenClaims, GraphError> {
        self.tokens().claims(creds, api).await
    }

    async fn probe(&self, creds: &Credentials, probe: &Probe) -> Result<usize, GraphError> {
        let s = &self.settings;
        let graph = s.graph_base_url.trim_end_matches('/');
        match probe {
            Probe::DefenderAlerts | Probe::DefenderIncidents => {
                let c = if *probe == Probe::DefenderAlerts { "alerts_v2" } else { "incidents" };
                let url = format!("{graph}/v1.0/security/{c}?$top=1");
                count(&self.send(creds, &Call::get("Graph", Audience::Graph, &url)).await?, "a Graph page", "value")
            }
            Probe::FirstPage(request) => self.page(creds, request).await.map(|p| p.items.len() + p.rejects.len()),
            Probe::CloudApps { portal } => {
                let url = format!("{}/api/v1/alerts/", s.cloud_apps_base(portal));
                let body = json!({"sortField": "date", "sortDirection": "desc", "limit": 1});
                let call = Call { body: Some(&body), paced: true, ..Call::get("Cloud Apps", Audience::CloudApps, &url) };
                count(&self.send(creds, &call).await?, "a Cloud Apps page", "data")
            }
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
            // The jobs' own calls (evidence.rs), so a role or header that would refuse them
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
            Probe::SignIns => {
                let url = format!("{graph}/v1.0/auditLogs/signIns?$top=1");
                count(&self.send(creds, &Call::get("Graph", Audience::Graph, &url)).await?, "a Graph page", "value")
            }
        }
    }
}
