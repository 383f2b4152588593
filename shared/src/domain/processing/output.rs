//! The output contract, `m365-ingest.alert.v1`: one alert per message, summarised for SOC
//! tools, with what the processor did and the original Microsoft object (DESIGN.md §4). The
//! JSON Schema is `shared/schemas/m365-ingest.alert.v1.schema.json`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::email::section::{email_of, EmailHeaders, EmailSection};
use crate::domain::entities::{entities, Entities};
use crate::domain::envelope::ObjectRef;
use crate::domain::graph_alert::GraphAlert;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;

pub const OUTPUT_SCHEMA: &str = "m365-ingest.alert.v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertMessage {
    pub schema: String,
    pub integration_id: String,
    pub tenant_id: String,
    pub source: Source,
    pub id: String,
    /// The alert's `lastUpdateDateTime`: this message describes that version.
    pub version: GraphTime,
    pub dedup_key: String,
    pub title: String,
    pub description: Option<String>,
    pub severity: String,
    pub status: String,
    pub classification: Option<String>,
    pub determination: Option<String>,
    pub category: Option<String>,
    pub service_source: Option<String>,
    pub detection_source: Option<String>,
    pub detector_id: Option<String>,
    pub threat: Option<String>,
    pub mitre_techniques: Vec<String>,
    pub created_at: Option<String>,
    pub first_activity_at: Option<String>,
    pub last_activity_at: Option<String>,
    pub resolved_at: Option<String>,
    pub incident: Option<IncidentRef>,
    pub links: Links,
    pub entities: Entities,
    /// The email the alert is about, where it is about one: a submission, or an alert with
    /// a user-reported email (`submissionMailEvidence`) or a single analysed message.
    #[serde(default)]
    pub email: Option<EmailSection>,
    /// Who the users are, what the devices and files are, where the integration asks for it
    /// (`enrichment`; v1, additive): absent when it asks for nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<crate::domain::processing::context::ContextSection>,
    pub processing: Processing,
    /// The alert exactly as Graph returned it, or None when `original_ref` holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_ref: Option<ObjectRef>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IncidentRef {
    pub id: String,
    pub display_name: Option<String>,
    pub status: Option<String>,
    pub web_url: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Links {
    pub alert: Option<String>,
    pub incident: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Processing {
    pub processor: String,
    pub processed_at: GraphTime,
    pub filters_passed: Vec<String>,
    pub notes: Vec<String>,
    pub evidence: EvidenceRetrieval,
    /// Set when Microsoft's object held escapes that decode to no character (v1, additive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_replaced: Option<TextReplaced>,
}

/// Escapes of unpaired UTF-16 surrogates (a Windows file name can hold one) read as U+FFFD in
/// every field and in `original`, so that every JSON parser reads the message; Microsoft's object
/// byte for byte is at `original_bytes` (`json_text.rs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TextReplaced {
    pub count: usize,
    pub original_bytes: ObjectRef,
}

/// Evidence retrieval (quarantined files and emails): what was fetched, or why not.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EvidenceRetrieval {
    /// `not_requested` (retrieval off for the integration), `not_applicable` (the alert names
    /// nothing to retrieve), `pending` (jobs run: their results follow as evidence updates),
    /// `retrieved` (every item ended retrieved), `failed` (every item ended, some not retrieved).
    pub status: String,
    pub artifacts: Vec<ObjectRef>,
    pub reason: Option<String>,
    /// Each piece of evidence the alert names, with its job's id and state (v1, additive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<EvidenceItem>,
    /// `held` when the alert waited for its evidence (`evidence.delivery = hold_until_final`;
    /// v1, additive); absent when it went out at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// When a held alert was let go (every item ended, or the hold's maximum wait passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<GraphTime>,
}

/// One piece of evidence and its retrieval. `id` is the job's key: an evidence update names the
/// same id, so a consumer matches an update to this alert version.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EvidenceItem {
    pub id: String,
    /// `file` or `email`.
    pub kind: String,
    /// `pending`, or how the job ended: `retrieved`, `not_found`, `device_offline`,
    /// `timed_out`, `refused`, `too_large`, `disabled`.
    pub status: String,
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// A retrieved email: where it was found, `mailbox` (the recipient's) or `quarantine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_in: Option<String>,
    pub artifact: Option<ObjectRef>,
    /// A retrieved email's headers and indicators, as for a phishing-mailbox report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<EmailHeaders>,
}

impl EvidenceItem {
    pub fn is_final(&self) -> bool {
        self.status != "pending"
    }
}

impl EvidenceRetrieval {
    /// The section for these items: pending while any is, else retrieved or failed.
    pub fn of_items(items: Vec<EvidenceItem>) -> Self {
        let status = if items.iter().any(|i| !i.is_final()) {
            "pending"
        } else if items.iter().all(|i| i.status == "retrieved") {
            "retrieved"
        } else {
            "failed"
        };
        let artifacts = items.iter().filter_map(|i| i.artifact.clone()).collect();
        let reason =
            (status == "pending").then(|| "evidence jobs are running: each pending item's result follows as an evidence update".to_owned());
        EvidenceRetrieval { status: status.into(), artifacts, reason, items, ..EvidenceRetrieval::default() }
    }
}

pub const EVIDENCE_UPDATE_SCHEMA: &str = "m365-ingest.evidence.v1";

/// An evidence update: one item's final state, for the alert version it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EvidenceUpdate {
    pub schema: String,
    pub integration_id: String,
    pub tenant_id: String,
    pub source: Source,
    /// The alert and the version (`lastUpdateDateTime`) whose message listed this item.
    pub alert_id: String,
    pub alert_version: GraphTime,
    pub dedup_key: String,
    pub processed_at: GraphTime,
    pub item: EvidenceItem,
}

pub struct MessageContext<'a> {
    pub integration_id: &'a str,
    pub tenant_id: &'a str,
    pub source: Source,
    pub dedup_key: String,
    pub incident: Option<IncidentRef>,
    /// Set by a source that knows its email better than the alert view says; else read from
    /// the alert's evidence.
    pub email: Option<EmailSection>,
    pub processing: Processing,
}

impl AlertMessage {
    pub fn build(a: &GraphAlert, version: GraphTime, raw: &RawValue, ctx: MessageContext<'_>) -> AlertMessage {
        AlertMessage {
            schema: OUTPUT_SCHEMA.into(),
            integration_id: ctx.integration_id.into(),
            tenant_id: ctx.tenant_id.into(),
            source: ctx.source,
            id: a.id.clone(),
            version,
            dedup_key: ctx.dedup_key,
            title: a.title.clone().unwrap_or_default(),
            description: a.description.clone(),
            severity: a.severity.clone().unwrap_or_else(|| "unknown".into()),
            status: a.status.clone().unwrap_or_else(|| "unknown".into()),
            classification: a.classification.clone(),
            determination: a.determination.clone(),
            category: a.category.clone(),
            service_source: a.service_source.clone(),
            detection_source: a.detection_source.clone(),
            detector_id: a.detector_id.clone(),
            threat: a.threat_display_name.clone(),
            mitre_techniques: a.mitre_techniques.clone(),
            created_at: a.created_date_time.clone(),
            first_activity_at: a.first_activity_date_time.clone(),
            last_activity_at: a.last_activity_date_time.clone(),
            resolved_at: a.resolved_date_time.clone(),
            incident: ctx.incident,
            links: Links { alert: a.alert_web_url.clone(), incident: a.incident_web_url.clone() },
            entities: entities(a),
            email: ctx.email.or_else(|| email_of(a)),
            context: None,
            processing: ctx.processing,
            original: Some(raw.to_owned()),
            original_ref: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
