//! An evidence job as it is kept and passed on: the evidence-jobs queue's message, the stored
//! record with the alert version it belongs to, and the evidence item an update reports.

use serde::{Deserialize, Serialize};

use super::{EvidenceJob, Phase};
use crate::domain::evidence::plan::EvidenceTarget;
use crate::domain::processing::output::EvidenceItem;
use crate::domain::time::GraphTime;

/// The schema of a message on the evidence-jobs queue.
pub const JOB_MESSAGE_SCHEMA: &str = "m365-ingest.evidence-job.v1";

/// A message on the evidence-jobs queue: "move this job on". It names the integration so that a
/// batch reads only the integrations it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub schema: String,
    pub integration_id: String,
    /// The job's key, or a hold's.
    pub job: String,
    /// "Release this held alert if its evidence is final or its wait is over".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
}

impl JobMessage {
    pub fn new(integration_id: &str, job: &str) -> Self {
        JobMessage { schema: JOB_MESSAGE_SCHEMA.into(), integration_id: integration_id.into(), job: job.into(), hold: false }
    }

    pub fn hold(integration_id: &str, hold: &str) -> Self {
        JobMessage { hold: true, ..Self::new(integration_id, hold) }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A job as it is stored: the job and the alert version it belongs to, which its evidence
/// update names. Bounded: a target's strings are capped by the plan, so a record stays a few KB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job: EvidenceJob,
    pub integration_id: String,
    pub tenant_id: String,
    pub source: crate::domain::source::Source,
    pub alert_id: String,
    /// The incident the alert came in (incidents mode): where Microsoft's copy of the alert
    /// is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    pub alert_version: GraphTime,
    pub dedup_key: String,
    /// The alert's title (at most 512 characters) and severity, for an OCSF update.
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub severity: Option<String>,
    /// The evidence update went out.
    pub reported: bool,
    /// The hold of the alert version when it waits for its evidence (its key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
}

impl EvidenceItem {
    /// The item as its job stands.
    pub fn of(job: &EvidenceJob) -> Self {
        let (status, detail, artifact) = match &job.phase {
            Phase::Done { outcome, detail, artifact } => (outcome.as_str().to_owned(), detail.clone(), artifact.clone()),
            _ => ("pending".to_owned(), None, None),
        };
        let mut item = EvidenceItem { id: job.key.clone(), status, detail, artifact, ..EvidenceItem::default() };
        match &job.target {
            t @ EvidenceTarget::File { device_id, sha1, sha256, .. } => {
                item.kind = "file".into();
                item.device_id = Some(device_id.clone());
                item.path = t.path();
                item.sha1.clone_from(sha1);
                item.sha256.clone_from(sha256);
            }
            EvidenceTarget::Email { internet_message_id, recipient, .. } => {
                item.kind = "email".into();
                item.internet_message_id = Some(internet_message_id.clone());
                item.recipient = Some(recipient.clone());
                // The store it came from is in its key (app/evidence/driver.rs).
                item.found_in = item.artifact.as_ref().and_then(|a| match a.key.split('/').next() {
                    Some("delivered-email") => Some("mailbox".to_owned()),
                    Some("quarantined-email") => Some("quarantine".to_owned()),
                    _ => None,
                });
            }
        }
        item
    }
}
