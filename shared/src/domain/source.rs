//! Alert sources, as named in EventBridge inputs, cursors and envelopes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Graph `security/alerts_v2`.
    DefenderAlerts,
    /// Graph `security/incidents` with their alerts.
    DefenderIncidents,
    /// Defender for Cloud Apps `POST /api/v1/alerts/` at the tenant's portal.
    CloudApps,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::DefenderAlerts, Source::DefenderIncidents, Source::CloudApps];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::DefenderAlerts => "defender_alerts",
            Source::DefenderIncidents => "defender_incidents",
            Source::CloudApps => "cloud_apps",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown source `{0}`: use defender_alerts, defender_incidents or cloud_apps")]
pub struct UnknownSource(pub String);

impl FromStr for Source {
    type Err = UnknownSource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| UnknownSource(s.to_owned()))
    }
}
