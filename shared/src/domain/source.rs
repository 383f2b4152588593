//! Alert sources, as named in EventBridge inputs, cursors and envelopes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Declares the sources: each line is a variant and its name in inputs, cursors and envelopes.
/// Its module is in `crate::sources` (the registry there says which serves which).
macro_rules! sources {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Source {
            $($(#[doc = $doc])* #[serde(rename = $name)] $variant,)+
        }

        impl Source {
            pub const ALL: [Source; [$($name),+].len()] = [$(Source::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Source::$variant => $name,)+
                }
            }
        }
    };
}

sources! {
    /// Graph `security/alerts_v2`.
    DefenderAlerts => "defender_alerts",
    /// Graph `security/incidents` with their alerts.
    DefenderIncidents => "defender_incidents",
    /// Defender for Cloud Apps `POST /api/v1/alerts/` at the tenant's portal.
    CloudApps => "cloud_apps",
    /// Graph beta `security/threatSubmission/emailThreats`.
    EmailSubmissions => "email_submissions",
    /// Graph messages of the phishing-report mailbox's inbox, with the reported email's MIME.
    PhishingMailbox => "phishing_mailbox",
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown source `{0}`: use one of {names}", names = Source::ALL.map(Source::as_str).join(", "))]
pub struct UnknownSource(pub String);

impl FromStr for Source {
    type Err = UnknownSource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| UnknownSource(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_is_written_and_read_by_its_one_name() {
        for source in Source::ALL {
            let json = serde_json::to_string(&source).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", source.as_str()));
            assert_eq!(serde_json::from_str::<Source>(&json).ok(), Some(source));
            assert_eq!(source.as_str().parse::<Source>().ok(), Some(source));
        }
    }
}
