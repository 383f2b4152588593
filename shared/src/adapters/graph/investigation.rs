//! Investigation calls: Graph's `runHuntingQuery` (security-security-runhuntingquery.md) and
//! Cloud Apps' activities list (api-activities-list.md, api-introduction.md's filters).

use std::time::Duration;

use serde_json::{json, Value};

use super::auth::Audience;
use super::client::{Call, MicrosoftHttp};
use crate::domain::integration::Credentials;
use crate::error::GraphError;
use crate::ports::investigation::InvestigationApi;

fn decode(what: &str, body: &[u8]) -> Result<Value, GraphError> {
    serde_json::from_slice(body).map_err(|e| GraphError::Decode { what: what.into(), detail: e.to_string() })
}

impl InvestigationApi for MicrosoftHttp {
    async fn hunt(&self, creds: &Credentials, query: &str, hours: u32, timeout: Duration) -> Result<Value, GraphError> {
        let url = format!("{}/v1.0/security/runHuntingQuery", self.settings.graph_base_url.trim_end_matches('/'));
        // "Timespan": an ISO 8601 duration back from now.
        let body = json!({"Query": query, "Timespan": format!("PT{hours}H")});
        // The tenant's hunting pace is waited for a few seconds at most: a caller gets
        // `throttled` with when to ask again, never a long hold.
        let call = Call {
            body: Some(&body),
            timeout: Some(timeout),
            budget_wait: Some(Duration::from_secs(5)),
            ..Call::get("Graph", Audience::Graph, &url)
        };
        decode("Graph", &self.send(creds, &call).await?)
    }

    async fn activities(
        &self,
        creds: &Credentials,
        portal: &str,
        filters: &Value,
        skip: usize,
        limit: usize,
    ) -> Result<(Vec<Value>, bool), GraphError> {
        let url = format!("{}/api/v1/activities/", self.settings.cloud_apps_base(portal));
        let body = json!({"filters": filters, "sortField": "date", "sortDirection": "desc", "skip": skip, "limit": limit.min(100)});
        let call = Call { body: Some(&body), paced: true, ..Call::get("Cloud Apps", Audience::CloudApps, &url) };
        let v = decode("Cloud Apps", &self.send(creds, &call).await?)?;
        let data = v.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok((data, v.get("hasNext").and_then(Value::as_bool).unwrap_or(false)))
    }
}
