//! An integration: one Entra ID app registration in one tenant, and how to poll it. Its
//! document (what Test & Save collects), the sections it keeps as they are, and its saved
//! revisions are the modules below.

pub mod doc;
pub mod revision;
pub mod sections;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::permissions::Feature;
use super::source::Source;
use crate::domain::polling::window::WindowSettings;
use crate::domain::processing::filter::FilterDoc;
use crate::secret::Secret;
use sections::{EmailSubmissionsDoc, EnrichmentDoc, EvidenceDoc, FeaturesDoc, MailboxDoc};

/// Defaults with their reasons (DESIGN.md §3).
pub mod defaults {
    use std::time::Duration;
    /// Graph shows Defender alerts minutes after their lastUpdateDateTime (PEERS.md §2.1: ≥ 5 min).
    pub const INGESTION_DELAY: Duration = Duration::from_secs(5 * 60);
    /// Late arrivals up to delay + overlap (20 min) are still caught.
    pub const OVERLAP: Duration = Duration::from_secs(15 * 60);
    /// A first run reads a day back.
    pub const LOOKBACK: Duration = Duration::from_secs(24 * 3600);
    pub const POLL_INTERVAL: Duration = Duration::from_secs(5 * 60);
}

/// Which Defender collection the integration reads, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DefenderMode {
    #[default]
    Alerts,
    Incidents,
    Off,
}

impl DefenderMode {
    pub fn source(self) -> Option<Source> {
        match self {
            DefenderMode::Alerts => Some(Source::DefenderAlerts),
            DefenderMode::Incidents => Some(Source::DefenderIncidents),
            DefenderMode::Off => None,
        }
    }
}

/// What the processor publishes for an integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// `m365-ingest.alert.v1` (the default).
    #[default]
    AlertV1,
    /// An OCSF 1.8.0 Detection Finding.
    Ocsf,
    /// Both, as two messages.
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub id: String,
    pub tenant_id: String,
    pub client_id: String,
    /// Secrets Manager name or ARN of the credentials (or a local name).
    pub secret_ref: String,
    pub enabled: bool,
    pub defender_mode: DefenderMode,
    /// `<name>.onmicrosoft.com`, for Exchange Online.
    pub organization_id: Option<String>,
    /// The Cloud Apps portal, `https://<tenant>.<region>.portal.cloudappsecurity.com`.
    pub cloud_apps_base: Option<String>,
    /// Defender for Cloud Apps alerts (with `cloud_apps_base`).
    pub cloud_apps: bool,
    pub email_submissions: EmailSubmissionsDoc,
    pub phishing_mailbox: Option<MailboxDoc>,
    pub evidence: EvidenceDoc,
    pub features: FeaturesDoc,
    pub enrichment: EnrichmentDoc,
    pub remediation: crate::domain::response::remediation::RemediationDoc,
    pub window: WindowSettings,
    pub poll_interval: Duration,
    /// Checked at save time; the processor compiles them once per invocation.
    pub filters: FilterDoc,
    pub output: OutputFormat,
}

impl Integration {
    pub fn new(id: &str, tenant_id: &str, client_id: &str, secret_ref: &str) -> Self {
        Integration {
            id: id.into(),
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            secret_ref: secret_ref.into(),
            enabled: true,
            defender_mode: DefenderMode::Alerts,
            organization_id: None,
            cloud_apps_base: None,
            cloud_apps: false,
            email_submissions: EmailSubmissionsDoc::default(),
            phishing_mailbox: None,
            evidence: EvidenceDoc::default(),
            features: FeaturesDoc::default(),
            enrichment: EnrichmentDoc::default(),
            remediation: crate::domain::response::remediation::RemediationDoc::default(),
            window: WindowSettings { lookback: defaults::LOOKBACK, ingestion_delay: defaults::INGESTION_DELAY, overlap: defaults::OVERLAP },
            poll_interval: defaults::POLL_INTERVAL,
            filters: FilterDoc::default(),
            output: OutputFormat::default(),
        }
    }

    /// Whether `creds` are this integration's own (its tenant and app): another integration's
    /// secret would read another tenant under this one's name.
    pub fn owns(&self, creds: &Credentials) -> bool {
        normalize_guid(&creds.tenant_id) == normalize_guid(&self.tenant_id)
            && normalize_guid(&creds.client_id) == normalize_guid(&self.client_id)
    }

    /// Whether this integration reads `source` at all.
    pub fn polls(&self, source: Source) -> bool {
        self.enabled
            && match source {
                Source::DefenderAlerts | Source::DefenderIncidents => self.defender_mode.source() == Some(source),
                Source::CloudApps => self.cloud_apps && self.cloud_apps_base.is_some(),
                Source::EmailSubmissions => self.email_submissions.enabled,
                Source::PhishingMailbox => self.phishing_mailbox.is_some(),
            }
    }
}

/// How the app proves itself to Entra ID.
#[derive(Clone)]
pub enum Credential {
    ClientSecret(Secret),
    /// A certificate registered on the app and its private key (PEM), for a signed assertion.
    Certificate {
        certificate_pem: String,
        private_key_pem: Secret,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::ClientSecret(_) => f.write_str("ClientSecret(***)"),
            Credential::Certificate { .. } => f.write_str("Certificate { private_key_pem: *** }"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub tenant_id: String,
    pub client_id: String,
    pub credential: Credential,
}

/// The features an integration turns on, in report order.
pub fn enabled_features(i: &Integration) -> Vec<Feature> {
    let mut f = Vec::new();
    match i.defender_mode {
        DefenderMode::Alerts => f.push(Feature::DefenderAlerts),
        DefenderMode::Incidents => f.push(Feature::DefenderIncidents),
        DefenderMode::Off => {}
    }
    let flags = [
        (i.cloud_apps, Feature::CloudApps),
        (i.email_submissions.enabled, Feature::EmailSubmissions),
        (i.phishing_mailbox.is_some(), Feature::PhishingMailbox),
        (i.evidence.live_response_files, Feature::LiveResponseFiles),
        (i.evidence.live_response_files && i.evidence.restore_quarantined_files, Feature::QuarantineRestore),
        (i.evidence.quarantined_email, Feature::QuarantinedEmail),
        (i.evidence.delivered_email, Feature::DeliveredEmail),
        (i.features.investigation, Feature::Investigation),
        (i.features.investigation && i.cloud_apps_base.is_some(), Feature::CloudAppsActivities),
        (i.features.user_context, Feature::UserContext),
        (i.features.calendar, Feature::Calendar),
        (i.features.remediation, Feature::Remediation),
        (i.features.device_context, Feature::DeviceContext),
    ];
    f.extend(flags.into_iter().filter(|(on, _)| *on).map(|(_, feature)| feature));
    f
}

/// Whether the credential suits the feature: Exchange app-only access is documented with
/// certificates only (ms-apis.md §8).
pub fn credential_problem(feature: Feature, credential: &Credential) -> Option<&'static str> {
    match (feature, credential) {
        (Feature::QuarantinedEmail, Credential::ClientSecret(_)) => Some(
            "Exchange Online app-only access is documented with a certificate only: upload a certificate to the app registration \
             (Certificates & secrets → Certificates) and store certificate_pem + private_key_pem in the secret instead of client_secret",
        ),
        _ => None,
    }
}

/// A GUID as Entra writes it (lower case); anything else as it is (validation names it). Tenant
/// and client ids are normalised where they are parsed, so every comparison is a plain one.
pub fn normalize_guid(v: &str) -> String {
    if is_guid(v) {
        v.to_ascii_lowercase()
    } else {
        v.to_owned()
    }
}

pub(crate) fn is_guid(v: &str) -> bool {
    v.len() == 36 && v.chars().enumerate().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_follow_the_configuration() {
        let mut i = Integration::new("x", "t", "c", "s");
        assert_eq!(enabled_features(&i), [Feature::DefenderAlerts]);
        i.defender_mode = DefenderMode::Off;
        i.cloud_apps = true;
        i.evidence.quarantined_email = true;
        i.features.remediation = true;
        assert_eq!(enabled_features(&i), [Feature::CloudApps, Feature::QuarantinedEmail, Feature::Remediation]);
        assert_eq!(Feature::QuarantinedEmail.api().owner(), "Office 365 Exchange Online");
    }
}
