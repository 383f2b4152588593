//! Defender for Cloud Apps' alerts API at the tenant's portal (api-alerts-list.md): its own
//! request body, its own answer shape, and the tenant's pace of 30 requests a minute
//! (api-introduction.md), through the shared HTTPS client's retries and tokens.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::auth::Audience;
use super::client::{Call, MicrosoftHttp};
use super::collections::decode_items;
use crate::domain::integration::Credentials;
use crate::domain::time::GraphTime;
use crate::error::GraphError;
use crate::ports::Page;
use crate::sources::{CLOUD_APPS_HEAD, CLOUD_APPS_MAX_LIMIT};

pub struct CloudAppsAlerts<'a> {
    http: &'a MicrosoftHttp,
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

impl<'a> CloudAppsAlerts<'a> {
    pub(crate) fn new(http: &'a MicrosoftHttp) -> Self {
        CloudAppsAlerts { http }
    }

    /// The list request for a window (api-alerts-list.md, api-introduction.md): `date` in Unix
    /// milliseconds, `gte` the first and `lte` the last millisecond before `to`.
    pub fn request(from: GraphTime, to: GraphTime, skip: usize, limit: usize) -> serde_json::Value {
        let last_ms = (to.ticks() + 9_999).div_euclid(10_000) - 1;
        serde_json::json!({
            "filters": {"date": {"gte": from.unix_millis(), "lte": last_ms}},
            "sortField": "date",
            "sortDirection": "asc",
            "skip": skip,
            "limit": limit.min(CLOUD_APPS_MAX_LIMIT),
        })
    }

    pub async fn page(&self, creds: &Credentials, portal: &str, body: &serde_json::Value) -> Result<Page, GraphError> {
        let url = format!("{}/api/v1/alerts/", self.http.settings.cloud_apps_base(portal));
        let bytes =
            self.http.send(creds, &Call { body: Some(body), paced: true, ..Call::get("Cloud Apps", Audience::CloudApps, &url) }).await?;
        decode_cloud_apps_page(&bytes)
    }
}

/// Decodes a Cloud Apps list answer: `{"data": [...], "hasNext": bool, ...}`.
pub fn decode_cloud_apps_page(body: &[u8]) -> Result<Page, GraphError> {
    let (raw, items, rejects) = decode_items(body, "a Cloud Apps page", |r: &RawCloudAppsPage<'_>| &r.data, CLOUD_APPS_HEAD)?;
    let count = if raw.more_than_total == Some(true) { None } else { raw.total.and_then(|t| usize::try_from(t).ok()) };
    Ok(Page { items, next_link: None, has_more: raw.has_next, count, rejects })
}
