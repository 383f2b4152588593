//! An integration: one Entra ID app registration in one tenant, and how to poll it.

use std::time::Duration;

use serde::Deserialize;

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
