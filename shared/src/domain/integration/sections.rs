//! The document's sections an integration keeps as they are (email submissions, the phishing
//! mailbox, evidence, features, enrichment): below both the document and the integration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::duration_text::DurationText;
use crate::domain::permissions::Feature;
use crate::domain::processing::context::ContextPart;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailSubmissionsDoc {
    pub enabled: bool,
    /// `result.category` values whose submissions are not passed on (e.g. allowedByPolicy).
    pub excluded_result_categories: Vec<String>,
    /// With excluded categories: the longest a submission waits for Microsoft's verdict before
    /// it is passed on without one, noted (5m..3d). A verdict may be excluded, so nothing is
    /// passed on (nor its evidence fetched) before it, unless it takes longer than this.
    pub verdict_wait: DurationText,
}

impl Default for EmailSubmissionsDoc {
    fn default() -> Self {
        EmailSubmissionsDoc { enabled: false, excluded_result_categories: Vec::new(), verdict_wait: DurationText(VERDICT_WAIT) }
    }
}

/// How long a submission waits for its verdict by default, when categories are excluded.
pub const VERDICT_WAIT: Duration = Duration::from_secs(2 * 3600);
/// The longest `verdict_wait`: within the time unsettled items are followed at all (7 days).
pub const MAX_VERDICT_WAIT: Duration = Duration::from_secs(3 * 86_400);

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxDoc {
    pub address: String,
    /// An OData `$filter` on the mailbox's messages, e.g. `isRead eq false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceDoc {
    /// Quarantined files through Defender for Endpoint Live Response.
    pub live_response_files: bool,
    /// Quarantined emails through Exchange Online (the PowerShell API; certificate credentials).
    pub quarantined_email: bool,
    /// Emails that reached a recipient's mailbox, through Graph (Mail.Read): found by their
    /// Internet Message-ID, their MIME stored.
    pub delivered_email: bool,
    /// Files antivirus quarantined, through a restore on the device (a library script puts the
    /// file back on disk in a folder of its own, GetFile collects it, the script removes it).
    /// Opt-in: the file is live malware on the device until the cleanup runs.
    pub restore_quarantined_files: bool,
    /// When an alert with evidence to fetch goes out.
    pub delivery: EvidenceDelivery,
    /// With `hold_until_final`: the longest an alert waits for its evidence (1m..24h).
    pub hold_max_wait: DurationText,
}

impl Default for EvidenceDoc {
    fn default() -> Self {
        EvidenceDoc {
            live_response_files: false,
            quarantined_email: false,
            delivered_email: false,
            restore_quarantined_files: false,
            delivery: EvidenceDelivery::default(),
            hold_max_wait: DurationText(Duration::from_secs(30 * 60)),
        }
    }
}

/// How an alert and its evidence reach the output queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceDelivery {
    /// The alert at once, its items `pending`; an evidence update per item when its job ends.
    #[default]
    PublishThenUpdate,
    /// The alert once every item ended, or once `hold_max_wait` passed (items still pending
    /// then follow as updates).
    HoldUntilFinal,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturesDoc {
    /// Advanced hunting queries for investigation.
    pub investigation: bool,
    /// Users, sign-ins and directory data as a data source.
    pub user_context: bool,
    /// Calendars, mailbox settings and presence.
    pub calendar: bool,
    /// Revoke sessions and disable accounts.
    pub remediation: bool,
    /// Defender for Endpoint machine and file profiles for the devices and files alerts name.
    pub device_context: bool,
}

/// Context the processor adds to each alert (issue 14): which parts, how far around the alert's
/// time, how much, and how long answers are reused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichmentDoc {
    /// The parts to fetch; absent: every part the enabled features allow
    /// (user_context: profile, roles, groups, mfa, sign_ins; calendar: out_of_office, schedule,
    /// presence; device_context: device, file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<ContextPart>>,
    /// How long an answer is reused for later alerts of the tenant (0s: never).
    pub cache_ttl: DurationText,
    /// Sign-ins and calendar this long before and after the alert's time.
    pub window: DurationText,
    /// Sign-ins kept per user, newest first.
    pub max_sign_ins: u32,
    /// Groups kept per user (directory roles are all kept).
    pub max_groups: u32,
}

impl Default for EnrichmentDoc {
    fn default() -> Self {
        EnrichmentDoc {
            parts: None,
            cache_ttl: DurationText(Duration::from_secs(10 * 60)),
            window: DurationText(Duration::from_secs(3600)),
            max_sign_ins: 10,
            max_groups: 50,
        }
    }
}

impl EnrichmentDoc {
    /// Whether any part is asked for, without building the list (the processor asks per alert).
    pub fn asks(&self, features: &FeaturesDoc) -> bool {
        match &self.parts {
            Some(p) => !p.is_empty(),
            None => features.user_context || features.calendar || features.device_context,
        }
    }

    /// The parts to fetch given the integration's features.
    pub fn effective_parts(&self, features: &FeaturesDoc) -> Vec<ContextPart> {
        match &self.parts {
            Some(p) => {
                let mut p = p.clone();
                p.sort();
                p.dedup();
                p
            }
            None => ContextPart::ALL.into_iter().filter(|p| features.allows(*p)).collect(),
        }
    }
}

impl FeaturesDoc {
    /// Whether the feature a context part needs is on.
    pub fn allows(&self, part: ContextPart) -> bool {
        match part.feature() {
            Feature::UserContext => self.user_context,
            Feature::Calendar => self.calendar,
            Feature::DeviceContext => self.device_context,
            _ => false,
        }
    }
}
