//! A Defender for Cloud Apps alert read as the processor's alert view, so the same filters and
//! output contract apply (api-alerts-list.md and api-alerts.md for the fields and enum values).
//! The original alert travels on untouched in the message's `original`.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::graph_alert::{Evidence, GraphAlert, UserAccount};
use crate::domain::time::GraphTime;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Raw {
    #[serde(rename = "_id")]
    id: String,
    title: Option<String>,
    description: Option<String>,
    timestamp: Option<i64>,
    #[serde(rename = "severityValue")]
    severity: Option<i64>,
    #[serde(rename = "resolutionStatusValue")]
    resolution: Option<i64>,
    #[serde(rename = "resolveTime")]
    resolve_time: Option<String>,
    #[serde(rename = "handledByUser")]
    handled_by: Option<String>,
    #[serde(rename = "URL")]
    url: Option<String>,
    entities: Vec<Value>,
}

/// `severityValue`: 0 LOW, 1 MEDIUM, 2 HIGH, 3 INFORMATIONAL.
fn severity(v: Option<i64>) -> &'static str {
    match v {
        Some(0) => "low",
        Some(1) => "medium",
        Some(2) => "high",
        Some(3) => "informational",
        _ => "unknown",
    }
}

/// `resolutionStatusValue`: 0 OPEN, 1 DISMISSED, 2 RESOLVED, 3 FALSE_POSITIVE, 4 BENIGN,
/// 5 TRUE_POSITIVE → Graph's status and classification words.
fn status_and_classification(v: Option<i64>) -> (&'static str, Option<&'static str>) {
    match v {
        Some(0) | None => ("new", None),
        Some(3) => ("resolved", Some("falsePositive")),
        Some(4) => ("resolved", Some("informationalExpectedActivity")),
        Some(5) => ("resolved", Some("truePositive")),
        Some(_) => ("resolved", None),
    }
}

/// The alert as the processor's view; entities become user, device and IP evidence.
pub fn to_alert(object: &str) -> Result<GraphAlert, serde_json::Error> {
    let raw: Raw = serde_json::from_str(object)?;
    let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
    let evidence = raw
        .entities
        .iter()
        .filter_map(|e| {
            let roles = text(e, "entityRole").map(|r| vec![r.to_ascii_lowercase()]).unwrap_or_default();
            match e.get("type").and_then(Value::as_str)? {
                "account" | "user" => Some(Evidence {
                    odata_type: "#microsoft.graph.security.userEvidence".into(),
                    roles,
                    user_account: Some(UserAccount {
                        account_name: text(e, "label"),
                        user_principal_name: text(e, "pa").or_else(|| text(e, "label")),
                        azure_ad_user_id: text(e, "id"),
                        ..UserAccount::default()
                    }),
                    ..Evidence::default()
                }),
                "device" => Some(Evidence {
                    odata_type: "#microsoft.graph.security.deviceEvidence".into(),
                    roles,
                    host_name: text(e, "label"),
                    device_dns_name: text(e, "label"),
                    azure_ad_device_id: text(e, "id"),
                    ..Evidence::default()
                }),
                "ip" => Some(Evidence {
                    odata_type: "#microsoft.graph.security.ipEvidence".into(),
                    roles,
                    ip_address: text(e, "label").or_else(|| text(e, "id")),
                    ..Evidence::default()
                }),
                _ => None,
            }
        })
        .collect();
    let (status, classification) = status_and_classification(raw.resolution);
    let created = raw.timestamp.map(|ms| GraphTime::from_unix_millis(ms).to_string());
    Ok(GraphAlert {
        id: raw.id,
        title: raw.title,
        description: raw.description,
        severity: Some(severity(raw.severity).into()),
        status: Some(status.into()),
        classification: classification.map(str::to_owned),
        service_source: Some("microsoftDefenderForCloudApps".into()),
        detection_source: Some("cloudAppSecurity".into()),
        product_name: Some("Microsoft Defender for Cloud Apps".into()),
        alert_web_url: raw.url,
        assigned_to: raw.handled_by.filter(|h| !h.is_empty()),
        created_date_time: created.clone(),
        last_update_date_time: created,
        resolved_date_time: raw.resolve_time,
        evidence,
        ..GraphAlert::default()
    })
}

#[cfg(test)]
mod tests {
    use crate::domain::polling::cloud_apps_alert::*;

    #[test]
    fn reads_the_doc_sample() {
        let sample = include_str!("../../../../infra/tenant-sim/tests/fixtures/microsoft-docs/mdca_alert_fetch.json");
        let a = to_alert(sample).unwrap_or_default();
        assert_eq!(a.id, "603f704aaf7417985bbf3b22");
        assert_eq!(a.severity.as_deref(), Some("medium"));
        assert_eq!(a.status.as_deref(), Some("new"));
        assert_eq!(a.detection_source.as_deref(), Some("cloudAppSecurity"));
        assert_eq!(a.created_date_time.as_deref(), Some("2021-05-25T11:25:16.4750000Z"));
        let users: Vec<_> = a.evidence.iter().filter_map(|e| e.user_account.as_ref()?.user_principal_name.as_deref()).collect();
        assert_eq!(users, ["user1@contoso.com"]);
        let devices: Vec<_> = a.evidence.iter().filter_map(|e| e.host_name.as_deref()).collect();
        assert_eq!(devices, ["DC3", "DC4", "Client1", "DC1"]);
    }
}
