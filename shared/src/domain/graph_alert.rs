//! The Microsoft alert as the processor reads it: the documented fields of
//! `microsoft.graph.security.alert` and its evidence (security-alert.md, security-alertevidence.md),
//! typed where filters and the output contract need them. Unknown fields are ignored; the
//! original bytes travel on untouched.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphAlert {
    pub id: String,
    pub provider_alert_id: Option<String>,
    pub incident_id: Option<String>,
    pub status: Option<String>,
    pub severity: Option<String>,
    pub classification: Option<String>,
    pub determination: Option<String>,
    pub service_source: Option<String>,
    pub detection_source: Option<String>,
    pub detector_id: Option<String>,
    pub tenant_id: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub recommended_actions: Option<String>,
    pub category: Option<String>,
    pub assigned_to: Option<String>,
    pub alert_web_url: Option<String>,
    pub incident_web_url: Option<String>,
    pub threat_display_name: Option<String>,
    pub threat_family_name: Option<String>,
    pub mitre_techniques: Vec<String>,
    pub created_date_time: Option<String>,
    pub last_update_date_time: Option<String>,
    pub resolved_date_time: Option<String>,
    pub first_activity_date_time: Option<String>,
    pub last_activity_date_time: Option<String>,
    pub evidence: Vec<Evidence>,
    pub alert_policy_id: Option<String>,
    pub additional_data: Option<Value>,
    pub product_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct FileDetails {
    pub file_name: Option<String>,
    pub file_path: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub md5: Option<String>,
    pub file_size: Option<i64>,
    pub file_publisher: Option<String>,
    pub signer: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct UserAccount {
    pub account_name: Option<String>,
    pub domain_name: Option<String>,
    pub user_sid: Option<String>,
    pub azure_ad_user_id: Option<String>,
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Sender {
    pub email_address: Option<String>,
    pub display_name: Option<String>,
}

/// Any evidence item; which fields are set depends on `@odata.type`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Evidence {
    #[serde(rename = "@odata.type")]
    pub odata_type: String,
    pub roles: Vec<String>,
    pub verdict: Option<String>,
    pub remediation_status: Option<String>,
    pub detection_status: Option<String>,
    // file
    pub file_details: Option<FileDetails>,
    // process
    pub image_file: Option<FileDetails>,
    pub parent_process_image_file: Option<FileDetails>,
    pub process_command_line: Option<String>,
    pub process_id: Option<i64>,
    pub user_account: Option<UserAccount>,
    // device
    pub mde_device_id: Option<String>,
    pub azure_ad_device_id: Option<String>,
    pub device_dns_name: Option<String>,
    pub host_name: Option<String>,
    pub os_platform: Option<String>,
    // mailbox
    pub primary_address: Option<String>,
    pub upn: Option<String>,
    pub display_name: Option<String>,
    // analyzed message
    pub network_message_id: Option<String>,
    pub internet_message_id: Option<String>,
    pub subject: Option<String>,
    pub recipient_email_address: Option<String>,
    pub p1_sender: Option<Sender>,
    pub delivery_location: Option<String>,
    pub delivery_action: Option<String>,
    pub received_date_time: Option<String>,
    #[serde(rename = "senderIp")]
    pub sender_ip: Option<String>,
    // submission mail (security-submissionmailevidence.md)
    pub recipient: Option<String>,
    pub sender: Option<String>,
    pub submission_id: Option<String>,
    pub report_type: Option<String>,
    pub submitter: Option<String>,
    pub submission_date_time: Option<String>,
    // ip, url
    pub ip_address: Option<String>,
    pub country_letter_code: Option<String>,
    pub url: Option<String>,
}

impl Evidence {
    /// `fileEvidence`, `deviceEvidence`, ...: the type name without its namespace.
    pub fn kind(&self) -> &str {
        self.odata_type.rsplit('.').next().unwrap_or(&self.odata_type)
    }
}

impl GraphAlert {
    /// Files the alert is about: detected files and the images of processes (not their parents).
    pub fn subject_files(&self) -> impl Iterator<Item = &FileDetails> {
        self.evidence.iter().filter_map(|e| match e.kind() {
            "fileEvidence" => e.file_details.as_ref(),
            "processEvidence" => e.image_file.as_ref(),
            _ => None,
        })
    }
}

/// An incident with the alerts it carries (`$expand=alerts` or fetched per incident).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphIncident {
    pub id: String,
    pub display_name: Option<String>,
    pub status: Option<String>,
    pub severity: Option<String>,
    pub incident_web_url: Option<String>,
    pub last_update_date_time: Option<String>,
    pub alerts: Vec<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_doc_sample() {
        let sample = include_str!("../../../infra/tenant-sim/tests/fixtures/microsoft-docs/graph_alerts_v2_list.json");
        let v: Value = serde_json::from_str(sample).unwrap();
        let a: GraphAlert = serde_json::from_value(v["value"][0].clone()).unwrap();
        assert_eq!(a.detection_source.as_deref(), Some("antivirus"));
        assert_eq!(a.evidence.len(), 4);
        assert_eq!(a.evidence[0].kind(), "deviceEvidence");
        let files: Vec<_> = a.subject_files().filter_map(|f| f.file_name.as_deref()).collect();
        assert_eq!(files, vec!["MsSense.exe", "MsSense.exe"], "file evidence and the process image, not its parent");
        assert_eq!(a.mitre_techniques, vec!["T1564.001"]);
    }
}
