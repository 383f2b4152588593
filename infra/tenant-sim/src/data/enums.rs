//! Graph security enum members, in metadata order (v1.0 CSDL via ms-apis.md §2–3).
//!
//! Graph's evolvable enums end at `unknownFutureValue`; members after it are
//! returned only to callers that send `Prefer: include-unknown-enum-members`,
//! others get `unknownFutureValue` in their place.

pub const ALERT_STATUS: &[&str] = &["unknown", "new", "inProgress", "resolved", "unknownFutureValue"];
pub const SEVERITY: &[&str] = &["unknown", "informational", "low", "medium", "high", "unknownFutureValue"];
pub const CLASSIFICATION: &[&str] = &["unknown", "falsePositive", "truePositive", "informationalExpectedActivity", "unknownFutureValue"];
pub const DETERMINATION: &[&str] = &[
    "unknown",
    "apt",
    "malware",
    "securityPersonnel",
    "securityTesting",
    "unwantedSoftware",
    "other",
    "multiStagedAttack",
    "compromisedAccount",
    "phishing",
    "maliciousUserActivity",
    "notMalicious",
    "notEnoughDataToValidate",
    "confirmedActivity",
    "lineOfBusinessApplication",
    "unknownFutureValue",
];
pub const SERVICE_SOURCE: &[&str] = &[
    "unknown",
    "microsoftDefenderForEndpoint",
    "microsoftDefenderForIdentity",
    "microsoftDefenderForCloudApps",
    "microsoftDefenderForOffice365",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "microsoftAppGovernance",
    "dataLossPrevention",
    "unknownFutureValue",
    "microsoftDefenderForCloud",
    "microsoftSentinel",
    "microsoftInsiderRiskManagement",
    "microsoftThreatIntelligence",
    "microsoftSecurityForAI",
];
/// All 39 members; the published resource page stops at microsoftDefenderForApiManagement.
pub const DETECTION_SOURCE: &[&str] = &[
    "unknown",
    "microsoftDefenderForEndpoint",
    "antivirus",
    "smartScreen",
    "customTi",
    "microsoftDefenderForOffice365",
    "automatedInvestigation",
    "microsoftThreatExperts",
    "customDetection",
    "microsoftDefenderForIdentity",
    "cloudAppSecurity",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "manual",
    "microsoftDataLossPrevention",
    "appGovernancePolicy",
    "appGovernanceDetection",
    "unknownFutureValue",
    "microsoftDefenderForCloud",
    "microsoftDefenderForIoT",
    "microsoftDefenderForServers",
    "microsoftDefenderForStorage",
    "microsoftDefenderForDNS",
    "microsoftDefenderForDatabases",
    "microsoftDefenderForContainers",
    "microsoftDefenderForNetwork",
    "microsoftDefenderForAppService",
    "microsoftDefenderForKeyVault",
    "microsoftDefenderForResourceManager",
    "microsoftDefenderForApiManagement",
    "nrtAlerts",
    "scheduledAlerts",
    "microsoftDefenderThreatIntelligenceAnalytics",
    "builtInMl",
    "microsoftInsiderRiskManagement",
    "microsoftThreatIntelligence",
    "microsoftDefenderForAIServices",
    "securityCopilot",
    "microsoftSentinel",
];
pub const REMEDIATION_STATUS: &[&str] = &[
    "none",
    "remediated",
    "prevented",
    "blocked",
    "notFound",
    "unknownFutureValue",
    "active",
    "pendingApproval",
    "declined",
    "unremediated",
    "running",
    "partiallyRemediated",
];
pub const INCIDENT_STATUS: &[&str] = &["active", "resolved", "inProgress", "redirected", "unknownFutureValue", "awaitingAction"];

/// True when `member` comes after `unknownFutureValue` in `members`.
pub fn needs_prefer(members: &[&str], member: &str) -> bool {
    let cut = members.iter().position(|m| *m == "unknownFutureValue");
    let pos = members.iter().position(|m| *m == member);
    matches!((cut, pos), (Some(c), Some(p)) if p > c)
}

/// The value a caller sees: `unknownFutureValue` stands in for a newer member
/// unless the caller opted in with the Prefer header.
pub fn visible<'a>(members: &[&str], member: &'a str, include_unknown: bool) -> &'a str {
    if !include_unknown && needs_prefer(members, member) {
        "unknownFutureValue"
    } else {
        member
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_source_has_39_members_21_behind_the_prefer_header() {
        assert_eq!(DETECTION_SOURCE.len(), 39);
        assert_eq!(DETECTION_SOURCE.iter().filter(|m| needs_prefer(DETECTION_SOURCE, m)).count(), 21);
        assert_eq!(SERVICE_SOURCE.iter().filter(|m| needs_prefer(SERVICE_SOURCE, m)).count(), 5);
    }

    #[test]
    fn newer_members_are_masked_without_opt_in() {
        assert_eq!(visible(SERVICE_SOURCE, "microsoftSentinel", false), "unknownFutureValue");
        assert_eq!(visible(SERVICE_SOURCE, "microsoftSentinel", true), "microsoftSentinel");
        assert_eq!(visible(SERVICE_SOURCE, "dataLossPrevention", false), "dataLossPrevention");
        assert_eq!(visible(INCIDENT_STATUS, "awaitingAction", false), "unknownFutureValue");
    }
}
