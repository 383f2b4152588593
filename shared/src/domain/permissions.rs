//! Which Microsoft API each feature calls and which application permissions it needs
//! (ms-apis.md §1 for audiences and owner apps; the permission table of issue 5), and how a
//! token's `roles` claim is compared with them.

use serde::Serialize;

/// The APIs tokens are asked for (ms-apis.md §1, audience table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    Graph,
    DefenderForEndpoint,
    CloudApps,
    Exchange,
}

impl Api {
    /// The name of the API in the portal's "Request API permissions" pane.
    pub fn owner(self) -> &'static str {
        match self {
            Api::Graph => "Microsoft Graph",
            Api::DefenderForEndpoint => "WindowsDefenderATP",
            Api::CloudApps => "Microsoft Cloud App Security",
            Api::Exchange => "Office 365 Exchange Online",
        }
    }

    /// Where the owner app is found in "Request API permissions".
    pub fn tab(self) -> &'static str {
        match self {
            Api::Graph => "Microsoft APIs",
            Api::DefenderForEndpoint | Api::CloudApps | Api::Exchange => "APIs my organization uses",
        }
    }
}

/// What a token says about the app's access, read without verification (diagnostics only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenClaims {
    /// Application permissions; None when the token has no `roles` claim (no admin consent).
    pub roles: Option<Vec<String>>,
    /// Template ids of the Entra roles of the app's service principal.
    pub wids: Vec<String>,
}

/// Something the integration does that needs its own permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    DefenderAlerts,
    DefenderIncidents,
    CloudApps,
    EmailSubmissions,
    PhishingMailbox,
    LiveResponseFiles,
    QuarantineRestore,
    QuarantinedEmail,
    /// Emails that reached a recipient's mailbox, read through Graph.
    DeliveredEmail,
    Investigation,
    /// Investigation's Cloud Apps activity queries (when the integration has a portal URL).
    CloudAppsActivities,
    UserContext,
    Calendar,
    Remediation,
    DeviceContext,
}

impl Feature {
    pub fn name(self) -> &'static str {
        match self {
            Feature::DefenderAlerts => "defender_alerts",
            Feature::DefenderIncidents => "defender_incidents",
            Feature::CloudApps => "cloud_apps",
            Feature::EmailSubmissions => "email_submissions",
            Feature::PhishingMailbox => "phishing_mailbox",
            Feature::LiveResponseFiles => "live_response_files",
            Feature::QuarantineRestore => "restore_quarantined_files",
            Feature::QuarantinedEmail => "quarantined_email",
            Feature::DeliveredEmail => "delivered_email",
            Feature::Investigation => "investigation",
            Feature::CloudAppsActivities => "investigation_cloud_apps",
            Feature::UserContext => "user_context",
            Feature::Calendar => "calendar",
            Feature::Remediation => "remediation",
            Feature::DeviceContext => "device_context",
        }
    }

    /// The feature a source is (DefenderAlerts for `defender_alerts`, …).
    pub fn of_source(source: crate::Source) -> Feature {
        match source {
            crate::Source::DefenderAlerts => Feature::DefenderAlerts,
            crate::Source::DefenderIncidents => Feature::DefenderIncidents,
            crate::Source::CloudApps => Feature::CloudApps,
            crate::Source::EmailSubmissions => Feature::EmailSubmissions,
            crate::Source::PhishingMailbox => Feature::PhishingMailbox,
        }
    }

    pub fn api(self) -> Api {
        match self {
            Feature::CloudApps | Feature::CloudAppsActivities => Api::CloudApps,
            Feature::LiveResponseFiles | Feature::QuarantineRestore | Feature::DeviceContext => Api::DefenderForEndpoint,
            Feature::QuarantinedEmail => Api::Exchange,
            _ => Api::Graph,
        }
    }

    /// Application permissions the feature needs, every one of them.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            Feature::DefenderAlerts => &["SecurityAlert.Read.All"],
            // Incidents with $expand=alerts, and each incident's alerts when the expansion fails.
            Feature::DefenderIncidents => &["SecurityIncident.Read.All", "SecurityAlert.Read.All"],
            Feature::CloudApps => &["investigation.read"],
            Feature::EmailSubmissions => &["ThreatSubmission.Read.All"],
            Feature::PhishingMailbox => &["Mail.Read"],
            // runliveresponse, then the machine action and its result link: "Get live response
            // results" lists only Machine.ReadWrite.All for applications (get-live-response-result.md,
            // ms.date 2025-11-13), which covers the machine action's Machine.Read.All.
            Feature::LiveResponseFiles => &["Machine.LiveResponse", "Machine.ReadWrite.All"],
            // The script in the tenant's library (upload-library.md), then RunScript and GetFile.
            Feature::QuarantineRestore => &["Library.Manage", "Machine.LiveResponse"],
            Feature::QuarantinedEmail => &["Exchange.ManageAsApp"],
            // user-list-messages.md and message-get.md ($value): Mail.Read reads any mailbox the
            // app's access policy leaves it (Mail.ReadBasic.All has no body, so no MIME).
            Feature::DeliveredEmail => &["Mail.Read"],
            Feature::Investigation => &["ThreatHunting.Read.All"],
            // api-activities-list.md: the activities API, as the alerts API, with investigation.read.
            Feature::CloudAppsActivities => &["investigation.read"],
            Feature::UserContext => &["AuditLog.Read.All", "Directory.Read.All", "User.Read.All"],
            Feature::Calendar => &["Calendars.Read", "Calendars.ReadBasic.All", "MailboxSettings.Read", "Presence.Read.All"],
            // The user and every role and group it holds are read before anything is done: its
            // memberships, and its role grants at every scope, eligible ones included (one
            // permission reads assignments, PIM eligibilities and definitions: role_grants.rs).
            Feature::Remediation => &[
                "User.RevokeSessions.All",
                "User.EnableDisableAccount.All",
                "User.Read.All",
                "Directory.Read.All",
                "RoleManagement.Read.Directory",
                // Who may join a role-assignable group through PIM for Groups.
                "PrivilegedEligibilitySchedule.Read.AzureADGroup",
            ],
            // get-machine-by-id.md and get-file-information.md.
            Feature::DeviceContext => &["Machine.Read.All", "File.Read.All"],
        }
    }

    /// Whether this feature makes its own call in Test & Save (the others share their API's).
    pub fn has_probe(self) -> bool {
        !matches!(
            self,
            Feature::QuarantineRestore
                | Feature::Investigation
                | Feature::UserContext
                | Feature::Calendar
                | Feature::Remediation
                | Feature::DeviceContext
        )
    }
}

/// Whether `granted` covers `needed`: names compare without case (Cloud Apps documents
/// `Investigation.read`, tokens carry `investigation.read`); a ReadWrite permission or a
/// `.manage` one covers its read counterpart (`Calendars.ReadWrite` covers `Calendars.Read`,
/// `Machine.ReadWrite.All` covers `Machine.Read.All`), and a Read or ReadWrite one its ReadBasic
/// counterpart (`Calendars.Read` covers `Calendars.ReadBasic.All`), as the permissions reference
/// lists the higher-privileged permissions each API also accepts. ReadBasic never covers Read.
pub fn covers(granted: &str, needed: &str) -> bool {
    let g = granted.to_ascii_lowercase();
    coverers(&needed.to_ascii_lowercase()).contains(&g)
}

/// Every permission name (lower case) that covers `needed`.
fn coverers(needed: &str) -> Vec<String> {
    let mut out = vec![needed.to_owned()];
    let mut read = vec![needed.to_owned()];
    if let Some(i) = needed.find(".readbasic") {
        let (head, tail) = (&needed[..i], &needed[i + ".readbasic".len()..]);
        // Calendars.ReadBasic.All's higher privileges are Calendars.Read and Calendars.ReadWrite.
        for t in [tail, tail.strip_suffix(".all").unwrap_or(tail)] {
            read.push(format!("{head}.read{t}"));
        }
    }
    for r in read {
        if let Some(head) = r.strip_suffix(".read") {
            out.extend([format!("{head}.read"), format!("{head}.readwrite"), format!("{head}.manage")]);
        } else if let Some(i) = r.find(".read.") {
            let (head, tail) = (&r[..i], &r[i + ".read".len()..]);
            out.extend([r.clone(), format!("{head}.readwrite{tail}"), format!("{head}.manage{tail}")]);
        }
    }
    out
}

/// The permissions of `needed` that `roles` lacks.
pub fn missing<'a>(needed: &[&'a str], roles: &[String]) -> Vec<&'a str> {
    needed.iter().copied().filter(|n| !roles.iter().any(|g| covers(g, n))).collect()
}

/// Entra roles Exchange Online accepts on an app's service principal for app-only cmdlets
/// (app-only-auth-powershell-v2.md), by template id as tokens carry them in `wids`.
pub const EXCHANGE_DIRECTORY_ROLES: &[(&str, &str)] = &[
    ("Compliance Administrator", "17315797-102d-40b4-93e0-432062caca18"),
    ("Exchange Administrator", "29232cdf-9323-42fd-ade2-1d097af3e4de"),
    ("Exchange Recipient Administrator", "31392ffb-586c-42d1-9346-e59415a2cc4e"),
    ("Global Administrator", "62e90394-69f5-4237-9190-012177145e10"),
    ("Global Reader", "f2ef992c-3afb-46b9-b7cf-a126ee74c451"),
    ("Helpdesk Administrator", "729827e3-9c14-49f7-bb1b-9608f156bbb8"),
    ("Security Administrator", "194ae4cb-b126-40b2-bd5b-6091b380977d"),
    ("Security Reader", "5d6b6bb7-de71-4623-b4af-96380a352509"),
];

/// Entra roles that act on every user's quarantine, as Export-QuarantineMessage needs
/// (quarantine permissions, ms-apis.md §8): the readers above may find messages but not export
/// them. (Exchange's Quarantine Administrator role group also grants it; it does not show in a
/// token, so Test & Save asks for an Entra role.)
pub const QUARANTINE_EXPORT_ROLES: &[(&str, &str)] =
    &[("Security Administrator", "194ae4cb-b126-40b2-bd5b-6091b380977d"), ("Global Administrator", "62e90394-69f5-4237-9190-012177145e10")];

/// Entra roles that let an app change a user who holds an admin role (disable the account,
/// revoke its sessions): user-update.md, "Who can perform sensitive actions" (ms-apis.md §9).
pub const SENSITIVE_ACTION_ROLES: &[(&str, &str)] = &[
    ("Privileged Authentication Administrator", "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"),
    ("Global Administrator", "62e90394-69f5-4237-9190-012177145e10"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_and_manage_cover_read_and_case_is_ignored() {
        assert!(covers("SecurityAlert.ReadWrite.All", "SecurityAlert.Read.All"));
        assert!(covers("Investigation.read", "investigation.read"));
        assert!(covers("investigation.manage", "investigation.read"));
        assert!(covers("Mail.ReadWrite", "Mail.Read"));
        assert!(!covers("Mail.ReadBasic.All", "Mail.Read"), "ReadBasic has no bodies or attachments");
        assert!(!covers("SecurityIncident.Read.All", "SecurityAlert.Read.All"));
        // Issue 30 §4: as Microsoft grants them.
        for (granted, needed) in [
            ("Calendars.ReadWrite", "Calendars.Read"),
            ("MailboxSettings.ReadWrite", "MailboxSettings.Read"),
            ("Machine.ReadWrite.All", "Machine.Read.All"),
            ("Calendars.Read", "Calendars.ReadBasic.All"),
            ("Calendars.ReadWrite", "Calendars.ReadBasic.All"),
            ("User.Read.All", "User.ReadBasic.All"),
            ("User.ReadWrite.All", "User.ReadBasic.All"),
        ] {
            assert!(covers(granted, needed), "{granted} covers {needed}");
        }
        for (granted, needed) in [
            ("Calendars.ReadBasic.All", "Calendars.Read"),
            ("Calendars.Read", "Calendars.ReadWrite"),
            ("MailboxSettings.Read", "MailboxSettings.ReadWrite"),
            ("Mail.ReadWrite", "MailboxSettings.Read"),
            ("Calendars.ReadWrite.Shared", "Calendars.Read"),
        ] {
            assert!(!covers(granted, needed), "{granted} does not cover {needed}");
        }
        assert_eq!(missing(Feature::DefenderIncidents.required(), &["SecurityIncident.ReadWrite.All".into()]), ["SecurityAlert.Read.All"]);
    }
}
