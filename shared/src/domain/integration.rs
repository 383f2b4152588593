//! An integration: one Entra ID app registration in one tenant, and how to poll it.

use std::time::Duration;

use serde::Deserialize;

use super::filter::FilterDoc;
use super::source::Source;
use super::window::WindowSettings;
use crate::secret::Secret;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DefenderMode {
    #[default]
    Alerts,
    Incidents,
}

impl DefenderMode {
    pub fn source(self) -> Source {
        match self {
            DefenderMode::Alerts => Source::DefenderAlerts,
            DefenderMode::Incidents => Source::DefenderIncidents,
        }
    }
}

/// What the processor publishes for an integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
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
            window: WindowSettings { lookback: defaults::LOOKBACK, ingestion_delay: defaults::INGESTION_DELAY, overlap: defaults::OVERLAP },
            poll_interval: defaults::POLL_INTERVAL,
            filters: FilterDoc::default(),
            output: OutputFormat::default(),
        }
    }

    /// Whether this integration reads `source` at all.
    pub fn polls(&self, source: Source) -> bool {
        self.enabled && self.defender_mode.source() == source
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

/// The stored form of an integration's polling settings (JSON; unknown fields are errors).
/// The full, validated configuration document of the Test & Save screen builds on this.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationDoc {
    pub id: String,
    pub tenant_id: String,
    pub client_id: String,
    pub secret_ref: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub defender_mode: DefenderMode,
    #[serde(default = "d_lookback")]
    pub lookback_secs: u64,
    #[serde(default = "d_delay")]
    pub ingestion_delay_secs: u64,
    #[serde(default = "d_overlap")]
    pub overlap_secs: u64,
    #[serde(default = "d_interval")]
    pub poll_interval_secs: u64,
    #[serde(default)]
    pub filters: FilterDoc,
    #[serde(default)]
    pub output: OutputFormat,
}

fn yes() -> bool {
    true
}
fn d_lookback() -> u64 {
    defaults::LOOKBACK.as_secs()
}
fn d_delay() -> u64 {
    defaults::INGESTION_DELAY.as_secs()
}
fn d_overlap() -> u64 {
    defaults::OVERLAP.as_secs()
}
fn d_interval() -> u64 {
    defaults::POLL_INTERVAL.as_secs()
}

impl serde::Serialize for DefenderMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            DefenderMode::Alerts => "alerts",
            DefenderMode::Incidents => "incidents",
        })
    }
}

/// A field of an integration that is not acceptable, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("integration `{id}`: {field} {problem}")]
pub struct IntegrationError {
    pub id: String,
    pub field: &'static str,
    pub problem: String,
}

impl IntegrationDoc {
    pub fn validate(self) -> Result<Integration, IntegrationError> {
        let err = |field: &'static str, problem: &str| IntegrationError { id: self.id.clone(), field, problem: problem.to_owned() };
        let guid = |v: &str| {
            v.len() == 36 && v.chars().enumerate().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
        };
        if self.id.is_empty() || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(err("id", "must be letters, digits, '-', '_' or '.'"));
        }
        if !guid(&self.tenant_id) {
            return Err(err(
                "tenant_id",
                "must be the directory (tenant) ID, a GUID like 6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b, from the app registration's Overview",
            ));
        }
        if !guid(&self.client_id) {
            return Err(err("client_id", "must be the application (client) ID, a GUID, from the app registration's Overview"));
        }
        if self.secret_ref.is_empty() {
            return Err(err("secret_ref", "must name the Secrets Manager secret holding the credentials"));
        }
        if self.ingestion_delay_secs >= self.lookback_secs {
            return Err(err("ingestion_delay_secs", "must be shorter than lookback_secs"));
        }
        if self.overlap_secs == 0 {
            return Err(err("overlap_secs", "must be at least 1; late alerts are caught only within delay + overlap"));
        }
        if let Err(e) = self.filters.validate() {
            return Err(IntegrationError { id: self.id.clone(), field: "filters", problem: e.to_string() });
        }
        Ok(Integration {
            window: WindowSettings {
                lookback: Duration::from_secs(self.lookback_secs),
                ingestion_delay: Duration::from_secs(self.ingestion_delay_secs),
                overlap: Duration::from_secs(self.overlap_secs),
            },
            poll_interval: Duration::from_secs(self.poll_interval_secs),
            id: self.id,
            tenant_id: self.tenant_id,
            client_id: self.client_id,
            secret_ref: self.secret_ref,
            enabled: self.enabled,
            defender_mode: self.defender_mode,
            filters: self.filters,
            output: self.output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> IntegrationDoc {
        serde_json::from_str(r#"{"id":"contoso","tenant_id":"6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b","client_id":"0e7c1d2a-3b4c-4d5e-9f60-718293a4b5c6","secret_ref":"m365-ingest/contoso"}"#).unwrap()
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let i = doc().validate().unwrap();
        assert_eq!(i.window.overlap, defaults::OVERLAP);
        assert!(i.enabled && i.defender_mode == DefenderMode::Alerts);
    }

    #[test]
    fn each_bad_field_is_named_with_the_fix() {
        let e = IntegrationDoc { tenant_id: "contoso.onmicrosoft.com".into(), ..doc() }.validate().unwrap_err();
        assert_eq!(e.field, "tenant_id");
        assert!(e.to_string().contains("GUID"));
        let e = IntegrationDoc { ingestion_delay_secs: 100_000, ..doc() }.validate().unwrap_err();
        assert_eq!(e.field, "ingestion_delay_secs");
        assert!(serde_json::from_str::<IntegrationDoc>(r#"{"id":"x","tenant_id":"t","client_id":"c","secret_ref":"s","overlap":5}"#)
            .unwrap_err()
            .to_string()
            .contains("unknown field `overlap`"));
    }
}
