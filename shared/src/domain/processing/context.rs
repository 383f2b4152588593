//! Context for the users, devices and files an alert names (issue 14; ms-apis.md §9, §7): which
//! parts an integration asks for, what to ask Microsoft, how each answer becomes the bounded
//! `context` section of an `m365-ingest.alert.v1` message, and how each part went.
//!
//! Every list is capped and every string cut, so the section stays a few tens of KB at most
//! whatever a tenant holds (5 users × 200 groups × ~150 B is the largest term).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::entities::Entities;
use crate::domain::permissions::Feature;
use crate::domain::processing::directory_roles::is_privileged;
use crate::domain::time::GraphTime;

/// Users, devices and files looked at per alert: an alert naming more is rare, and each one
/// costs calls against tight per-tenant limits.
pub const MAX_USERS: usize = 5;
pub const MAX_DEVICES: usize = 3;
pub const MAX_FILES: usize = 5;
/// The longest string kept from Microsoft's answers.
pub const MAX_TEXT: usize = 512;
/// Calendar items kept per user.
pub const MAX_SCHEDULE_ITEMS: usize = 20;

/// One part of the context, switchable per integration (`enrichment.parts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextPart {
    /// `GET /users/{id}` with the manager.
    Profile,
    /// Directory roles from `transitiveMemberOf`, and whether one is privileged.
    Roles,
    /// Group memberships from `transitiveMemberOf`, capped.
    Groups,
    /// `userRegistrationDetails/{id}`.
    Mfa,
    /// `auditLogs/signIns` around the alert time.
    SignIns,
    /// `mailboxSettings/automaticRepliesSetting`.
    OutOfOffice,
    /// `calendar/getSchedule` around the alert time.
    Schedule,
    /// `communications/getPresencesByUserId`, batched.
    Presence,
    /// Defender for Endpoint `machines/{id}`.
    Device,
    /// Defender for Endpoint `files/{hash}`.
    File,
}

impl ContextPart {
    pub const ALL: [ContextPart; 10] = [
        ContextPart::Profile,
        ContextPart::Roles,
        ContextPart::Groups,
        ContextPart::Mfa,
        ContextPart::SignIns,
        ContextPart::OutOfOffice,
        ContextPart::Schedule,
        ContextPart::Presence,
        ContextPart::Device,
        ContextPart::File,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ContextPart::Profile => "profile",
            ContextPart::Roles => "roles",
            ContextPart::Groups => "groups",
            ContextPart::Mfa => "mfa",
            ContextPart::SignIns => "sign_ins",
            ContextPart::OutOfOffice => "out_of_office",
            ContextPart::Schedule => "schedule",
            ContextPart::Presence => "presence",
            ContextPart::Device => "device",
            ContextPart::File => "file",
        }
    }

    /// The feature whose permissions the part's calls need.
    pub fn feature(self) -> Feature {
        match self {
            ContextPart::Profile | ContextPart::Roles | ContextPart::Groups | ContextPart::Mfa | ContextPart::SignIns => {
                Feature::UserContext
            }
            ContextPart::OutOfOffice | ContextPart::Schedule | ContextPart::Presence => Feature::Calendar,
            ContextPart::Device | ContextPart::File => Feature::DeviceContext,
        }
    }
}

impl fmt::Display for ContextPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A user to look up: by Entra object id where the alert gives one, else by UPN (Graph takes
/// either in `/users/{id|upn}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSubject {
    pub id: Option<String>,
    pub upn: Option<String>,
}

impl UserSubject {
    /// How Graph addresses the user: the object id, else the UPN.
    pub fn key(&self) -> &str {
        self.id.as_deref().or(self.upn.as_deref()).unwrap_or_default()
    }
}

/// What an alert names that context can be fetched for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subjects {
    pub users: Vec<UserSubject>,
    pub devices: Vec<String>,
    /// SHA-256 where known, else SHA-1 (the files API takes either).
    pub files: Vec<String>,
}

fn is_guid(v: &str) -> bool {
    v.len() == 36 && v.chars().enumerate().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

fn is_address(v: &str) -> bool {
    v.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !v.contains(char::is_whitespace))
}

/// The users (with an object id or a UPN; on-premises-only accounts cannot be looked up),
/// devices (Defender machine ids) and files (hashes) of an alert's entities, each once, capped.
pub fn subjects(e: &Entities) -> Subjects {
    let mut s = Subjects::default();
    let mut add_user = |id: Option<&str>, upn: Option<&str>| {
        let id = id.filter(|v| is_guid(v)).map(str::to_ascii_lowercase);
        let upn = upn.filter(|v| is_address(v)).map(str::to_ascii_lowercase);
        if id.is_none() && upn.is_none() {
            return;
        }
        let same = |u: &UserSubject| (id.is_some() && u.id == id) || (upn.is_some() && u.upn == upn);
        if let Some(known) = s.users.iter_mut().find(|u| same(u)) {
            known.id = known.id.take().or(id);
            known.upn = known.upn.take().or(upn);
        } else if s.users.len() < MAX_USERS {
            s.users.push(UserSubject { id, upn });
        }
    };
    for u in &e.users {
        add_user(u.aad_user_id.as_deref(), u.upn.as_deref());
    }
    for m in &e.mailboxes {
        add_user(None, Some(m));
    }
    for m in &e.messages {
        add_user(None, m.recipient.as_deref());
    }
    for d in &e.devices {
        if let Some(id) = d.mde_device_id.as_deref().filter(|v| !v.is_empty()) {
            let id = id.to_ascii_lowercase();
            if !s.devices.contains(&id) && s.devices.len() < MAX_DEVICES {
                s.devices.push(id);
            }
        }
    }
    for f in &e.files {
        let hash = f.sha256.as_deref().filter(|h| h.len() == 64).or(f.sha1.as_deref().filter(|h| h.len() == 40));
        if let Some(h) = hash.filter(|h| h.chars().all(|c| c.is_ascii_hexdigit())) {
            let h = h.to_ascii_lowercase();
            if !s.files.contains(&h) && s.files.len() < MAX_FILES {
                s.files.push(h);
            }
        }
    }
    s
}

/// The `context` section of an alert message (v1, additive).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextSection {
    pub users: Vec<UserContext>,
    pub devices: Vec<DeviceContext>,
    pub files: Vec<FileContext>,
    /// How each part the integration asks for went, by part name.
    pub enrichment: BTreeMap<String, PartStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserContext {
    pub id: Option<String>,
    pub upn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<UserProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DirectoryRole>>,
    /// Holds a role Microsoft labels privileged (domain/processing/directory_roles.rs); with `roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_admin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupRef>>,
    /// More groups exist than `enrichment.max_groups` kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_truncated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<MfaRegistration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_ins: Option<Vec<SignIn>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_office: Option<AutoReplies>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleAtAlert>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Presence>,
}

fn cut(s: Option<String>) -> Option<String> {
    s.map(|s| if s.len() <= MAX_TEXT { s } else { s.char_indices().take_while(|(i, _)| *i < MAX_TEXT).map(|(_, c)| c).collect() })
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    cut(v.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned))
}

fn flag(v: &Value, pointer: &str) -> Option<bool> {
    v.pointer(pointer).and_then(Value::as_bool)
}

fn strings(v: &Value, pointer: &str, max: usize) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).take(max).filter_map(|s| cut(Some(s.to_owned()))).collect())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    pub display_name: Option<String>,
    pub account_enabled: Option<bool>,
    pub user_type: Option<String>,
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub office_location: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub usage_location: Option<String>,
    pub created_at: Option<String>,
    pub manager: Option<ManagerRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerRef {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub upn: Option<String>,
}

/// A Graph user (with `$expand=manager`) as the profile keeps it; also returns the user's
/// object id and UPN, which later parts need.
pub fn profile_of(v: &Value) -> (UserProfile, Option<String>, Option<String>) {
    let manager = v.get("manager").filter(|m| m.is_object()).map(|m| ManagerRef {
        id: text(m, "/id"),
        display_name: text(m, "/displayName"),
        upn: text(m, "/userPrincipalName"),
    });
    let p = UserProfile {
        display_name: text(v, "/displayName"),
        account_enabled: flag(v, "/accountEnabled"),
        user_type: text(v, "/userType"),
        department: text(v, "/department"),
        job_title: text(v, "/jobTitle"),
        office_location: text(v, "/officeLocation"),
        city: text(v, "/city"),
        country: text(v, "/country"),
        usage_location: text(v, "/usageLocation"),
        created_at: text(v, "/createdDateTime"),
        manager,
    };
    (p, text(v, "/id").map(|s| s.to_ascii_lowercase()), text(v, "/userPrincipalName").map(|s| s.to_ascii_lowercase()))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryRole {
    pub display_name: Option<String>,
    pub role_template_id: Option<String>,
    /// Microsoft labels the role privileged.
    pub privileged: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub security_enabled: Option<bool>,
}

/// What `transitiveMemberOf` holds: directory roles (all of them: few exist) and groups (up to
/// `max_groups`; true when more were there, or more pages than were read).
pub struct Memberships {
    pub roles: Vec<DirectoryRole>,
    pub groups: Vec<GroupRef>,
    pub groups_truncated: bool,
}

pub fn memberships_of(items: &[Value], max_groups: usize, more_pages: bool) -> Memberships {
    let mut m = Memberships { roles: Vec::new(), groups: Vec::new(), groups_truncated: more_pages };
    for v in items {
        match v.get("@odata.type").and_then(Value::as_str) {
            Some("#microsoft.graph.directoryRole") => {
                let template = text(v, "/roleTemplateId");
                m.roles.push(DirectoryRole {
                    display_name: text(v, "/displayName"),
                    privileged: template.as_deref().is_some_and(is_privileged),
                    role_template_id: template,
                });
            }
            Some("#microsoft.graph.group") => {
                if m.groups.len() < max_groups {
                    m.groups.push(GroupRef {
                        id: text(v, "/id"),
                        display_name: text(v, "/displayName"),
                        security_enabled: flag(v, "/securityEnabled"),
                    });
                } else {
                    m.groups_truncated = true;
                }
            }
            _ => {}
        }
    }
    m
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaRegistration {
    pub is_admin: Option<bool>,
    pub is_mfa_registered: Option<bool>,
    pub is_mfa_capable: Option<bool>,
    pub is_passwordless_capable: Option<bool>,
    pub is_sspr_registered: Option<bool>,
    pub methods_registered: Vec<String>,
    pub preferred_method: Option<String>,
    pub last_updated_at: Option<String>,
}

pub fn mfa_of(v: &Value) -> MfaRegistration {
    MfaRegistration {
        is_admin: flag(v, "/isAdmin"),
        is_mfa_registered: flag(v, "/isMfaRegistered"),
        is_mfa_capable: flag(v, "/isMfaCapable"),
        is_passwordless_capable: flag(v, "/isPasswordlessCapable"),
        is_sspr_registered: flag(v, "/isSsprRegistered"),
        methods_registered: strings(v, "/methodsRegistered", 20),
        preferred_method: text(v, "/userPreferredMethodForSecondaryAuthentication"),
        last_updated_at: text(v, "/lastUpdatedDateTime"),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    pub at: Option<String>,
    pub app: Option<String>,
    pub ip_address: Option<String>,
    pub client_app: Option<String>,
    pub interactive: Option<bool>,
    /// 0 is success (signIn.status.errorCode).
    pub error_code: Option<i64>,
    pub failure_reason: Option<String>,
    pub conditional_access: Option<String>,
    pub risk_level: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub operating_system: Option<String>,
    pub browser: Option<String>,
}

pub fn sign_ins_of(items: &[Value], max: usize) -> Vec<SignIn> {
    items
        .iter()
        .take(max)
        .map(|v| SignIn {
            at: text(v, "/createdDateTime"),
            app: text(v, "/appDisplayName"),
            ip_address: text(v, "/ipAddress"),
            client_app: text(v, "/clientAppUsed"),
            interactive: flag(v, "/isInteractive"),
            error_code: v.pointer("/status/errorCode").and_then(Value::as_i64),
            failure_reason: text(v, "/status/failureReason"),
            conditional_access: text(v, "/conditionalAccessStatus"),
            risk_level: text(v, "/riskLevelAggregated"),
            city: text(v, "/location/city"),
            country: text(v, "/location/countryOrRegion"),
            operating_system: text(v, "/deviceDetail/operatingSystem"),
            browser: text(v, "/deviceDetail/browser"),
        })
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoReplies {
    /// disabled, alwaysEnabled or scheduled.
    pub status: Option<String>,
    pub external_audience: Option<String>,
    pub scheduled_start: Option<String>,
    pub scheduled_end: Option<String>,
    /// Whether replies were on at the alert's time; None when the schedule is in a time zone
    /// other than UTC (Graph gives the mailbox's own zone, which is not converted here).
    pub active_at_alert: Option<bool>,
    pub internal_reply: Option<String>,
}

/// A `dateTimeTimeZone` as a time, when its zone is UTC.
fn utc_time(v: &Value) -> Option<GraphTime> {
    let zone = v.get("timeZone").and_then(Value::as_str)?;
    if !zone.eq_ignore_ascii_case("UTC") {
        return None;
    }
    let t = v.get("dateTime").and_then(Value::as_str)?;
    let t = t.trim_end_matches('Z');
    let (main, frac) = t.split_once('.').unwrap_or((t, ""));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(7).collect();
    GraphTime::parse(&format!("{main}.{frac}Z")).ok()
}

pub fn auto_replies_of(v: &Value, at: GraphTime) -> AutoReplies {
    let status = text(v, "/status");
    let start = v.get("scheduledStartDateTime");
    let end = v.get("scheduledEndDateTime");
    let active_at_alert = match status.as_deref() {
        Some("disabled") => Some(false),
        Some("alwaysEnabled") => Some(true),
        Some("scheduled") => match (start.and_then(utc_time), end.and_then(utc_time)) {
            (Some(s), Some(e)) => Some(s <= at && at < e),
            _ => None,
        },
        _ => None,
    };
    AutoReplies {
        status,
        external_audience: text(v, "/externalAudience"),
        scheduled_start: start.and_then(|s| text(s, "/dateTime")),
        scheduled_end: end.and_then(|s| text(s, "/dateTime")),
        active_at_alert,
        internal_reply: text(v, "/internalReplyMessage"),
    }
}

/// How long each digit of getSchedule's `availabilityView` covers, as asked.
pub const SCHEDULE_INTERVAL_MINUTES: u64 = 15;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleAtAlert {
    /// free, tentative, busy, oof, workingElsewhere or unknown, at the alert's time.
    pub availability_at_alert: String,
    /// Out of office or working elsewhere at the alert's time: a sign of travel.
    pub away_at_alert: bool,
    pub items: Vec<ScheduleItem>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleItem {
    pub status: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    /// Left out of private items.
    pub location: Option<String>,
}

/// One `scheduleInformation` of getSchedule asked from `from` in UTC with
/// [`SCHEDULE_INTERVAL_MINUTES`]: the availability at `at` (calendar-getschedule.md: the view
/// is one digit per interval, 0 free, 1 tentative, 2 busy, 3 oof, 4 working elsewhere).
pub fn schedule_of(v: &Value, from: GraphTime, at: GraphTime) -> ScheduleAtAlert {
    let view = v.get("availabilityView").and_then(Value::as_str).unwrap_or_default();
    let slot = (at.since(from).as_secs() / (SCHEDULE_INTERVAL_MINUTES * 60)) as usize;
    let availability = match view.as_bytes().get(slot) {
        Some(b'0') => "free",
        Some(b'1') => "tentative",
        Some(b'2') => "busy",
        Some(b'3') => "oof",
        Some(b'4') => "workingElsewhere",
        _ => "unknown",
    };
    let items = v
        .get("scheduleItems")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .take(MAX_SCHEDULE_ITEMS)
                .map(|i| ScheduleItem {
                    status: text(i, "/status"),
                    start: i.get("start").and_then(|s| text(s, "/dateTime")),
                    end: i.get("end").and_then(|s| text(s, "/dateTime")),
                    location: if flag(i, "/isPrivate") == Some(true) { None } else { text(i, "/location") },
                })
                .collect()
        })
        .unwrap_or_default();
    ScheduleAtAlert {
        availability_at_alert: availability.to_owned(),
        away_at_alert: matches!(availability, "oof" | "workingElsewhere"),
        items,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub availability: Option<String>,
    pub activity: Option<String>,
    pub out_of_office: Option<bool>,
    pub work_location: Option<String>,
}

pub fn presence_of(v: &Value) -> Presence {
    Presence {
        availability: text(v, "/availability"),
        activity: text(v, "/activity"),
        out_of_office: flag(v, "/outOfOfficeSettings/isOutOfOffice"),
        work_location: text(v, "/workLocation/workLocationType"),
    }
}

/// A Defender for Endpoint machine (get-machine-by-id.md's fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceContext {
    pub id: String,
    pub dns_name: Option<String>,
    pub os_platform: Option<String>,
    pub os_build: Option<i64>,
    pub health_status: Option<String>,
    pub risk_score: Option<String>,
    pub exposure_level: Option<String>,
    pub device_value: Option<String>,
    pub onboarding_status: Option<String>,
    pub last_seen: Option<String>,
    pub last_ip_address: Option<String>,
    pub rbac_group: Option<String>,
    pub tags: Vec<String>,
    pub aad_device_id: Option<String>,
}

pub fn device_of(id: &str, v: &Value) -> DeviceContext {
    DeviceContext {
        id: id.to_owned(),
        dns_name: text(v, "/computerDnsName"),
        os_platform: text(v, "/osPlatform"),
        os_build: v.get("osBuild").and_then(Value::as_i64),
        health_status: text(v, "/healthStatus"),
        risk_score: text(v, "/riskScore"),
        exposure_level: text(v, "/exposureLevel"),
        device_value: text(v, "/deviceValue"),
        onboarding_status: text(v, "/onboardingStatus"),
        last_seen: text(v, "/lastSeen"),
        last_ip_address: text(v, "/lastIpAddress"),
        rbac_group: text(v, "/rbacGroupName"),
        tags: strings(v, "/machineTags", 20),
        aad_device_id: text(v, "/aadDeviceId"),
    }
}

/// A Defender for Endpoint file profile (get-file-information.md's fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContext {
    /// The hash it was looked up by.
    pub hash: String,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub global_prevalence: Option<i64>,
    pub global_first_observed: Option<String>,
    pub global_last_observed: Option<String>,
    pub size: Option<i64>,
    pub file_type: Option<String>,
    pub is_pe_file: Option<bool>,
    pub publisher: Option<String>,
    pub product_name: Option<String>,
    pub signer: Option<String>,
    pub issuer: Option<String>,
    pub is_valid_certificate: Option<bool>,
    pub determination_type: Option<String>,
    pub determination_value: Option<String>,
}

pub fn file_of(hash: &str, v: &Value) -> FileContext {
    FileContext {
        hash: hash.to_owned(),
        sha1: text(v, "/sha1"),
        sha256: text(v, "/sha256"),
        global_prevalence: v.get("globalPrevalence").and_then(Value::as_i64),
        global_first_observed: text(v, "/globalFirstObserved"),
        global_last_observed: text(v, "/globalLastObserved"),
        size: v.get("size").and_then(Value::as_i64),
        file_type: text(v, "/fileType"),
        is_pe_file: flag(v, "/isPeFile"),
        publisher: text(v, "/filePublisher"),
        product_name: text(v, "/fileProductName"),
        signer: text(v, "/signer"),
        issuer: text(v, "/issuer"),
        is_valid_certificate: flag(v, "/isValidCertificate"),
        determination_type: text(v, "/determinationType"),
        determination_value: text(v, "/determinationValue"),
    }
}

/// How one lookup of one subject went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutcome {
    Ok,
    /// Microsoft has no such user, device or file (404).
    NotFound,
    /// Microsoft answered 429, or the tenant's budget had no slot in time: try on a later alert.
    Throttled,
    /// 401/403: the app lacks the permission (Test & Save names it) or a policy blocks it.
    Forbidden,
    /// The tenant's plan does not include the data: sign-in logs through Graph need Microsoft
    /// Entra ID P1 or P2 (resources/signin.md). No permission fixes it.
    Unlicensed,
    /// Anything else, with what happened.
    Failed(String),
    /// The alert's time for context ran out before this lookup.
    TimedOut,
}

impl LookupOutcome {
    /// Worse outcomes win the part's status.
    fn rank(&self) -> u8 {
        match self {
            LookupOutcome::Ok => 0,
            LookupOutcome::NotFound => 1,
            LookupOutcome::TimedOut => 2,
            LookupOutcome::Throttled => 3,
            LookupOutcome::Unlicensed => 4,
            LookupOutcome::Forbidden => 5,
            LookupOutcome::Failed(_) => 6,
        }
    }

    fn status(&self) -> &'static str {
        match self {
            LookupOutcome::Ok => "ok",
            LookupOutcome::NotFound => "not_found",
            LookupOutcome::Throttled => "throttled",
            LookupOutcome::Forbidden => "forbidden",
            LookupOutcome::Unlicensed => "unlicensed",
            LookupOutcome::Failed(_) => "failed",
            LookupOutcome::TimedOut => "timed_out",
        }
    }
}

/// How one part went for the alert: `ok`, `not_applicable` (the alert names nothing it covers),
/// or the worst of `not_found`, `timed_out`, `throttled`, `unlicensed`, `forbidden`, `failed` among its
/// lookups, with the counts and what went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartStatus {
    pub status: String,
    /// Lookups made (or answered from the cache) and how many of them succeeded.
    pub lookups: u32,
    pub succeeded: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Collects lookups' outcomes per part.
#[derive(Debug, Default)]
pub struct Tally {
    parts: BTreeMap<ContextPart, (u32, u32, Option<LookupOutcome>)>,
}

impl Tally {
    /// Registers a part the integration asks for (listed even when nothing was looked up).
    pub fn expect(&mut self, part: ContextPart) {
        self.parts.entry(part).or_insert((0, 0, None));
    }

    pub fn record(&mut self, part: ContextPart, outcome: LookupOutcome) {
        let e = self.parts.entry(part).or_insert((0, 0, None));
        e.0 += 1;
        if outcome == LookupOutcome::Ok {
            e.1 += 1;
        }
        if e.2.as_ref().is_none_or(|w| outcome.rank() > w.rank()) {
            e.2 = Some(outcome);
        }
    }

    pub fn statuses(self) -> BTreeMap<String, PartStatus> {
        self.parts
            .into_iter()
            .map(|(part, (lookups, succeeded, worst))| {
                let (status, detail) = match worst {
                    None => ("not_applicable", None),
                    Some(LookupOutcome::Failed(why)) => ("failed", Some(why)),
                    Some(o) => (o.status(), None),
                };
                (part.name().to_owned(), PartStatus { status: status.to_owned(), lookups, succeeded, detail: cut(detail) })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::domain::entities::{Device, File, Message, User};
    use crate::domain::processing::context::*;

    fn t(s: &str) -> GraphTime {
        GraphTime::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn subjects_are_each_user_device_and_file_once_and_capped() {
        let id = "86462606-FDE0-4fc4-9e0c-a20eb73e54c6";
        let e = Entities {
            users: vec![
                User { aad_user_id: Some(id.into()), ..User::default() },
                User { upn: Some("AlexW@contoso.com".into()), aad_user_id: Some(id.into()), ..User::default() },
                // On-premises only: nothing to look it up by.
                User { account_name: Some("svc-backup".into()), sid: Some("S-1-5-21-1".into()), ..User::default() },
            ],
            mailboxes: vec!["alexw@contoso.com".into()],
            messages: (0..9).map(|i| Message { recipient: Some(format!("r{i}@contoso.com")), ..Message::default() }).collect(),
            devices: vec![Device { mde_device_id: Some("ABC".into()), ..Device::default() }, Device::default()],
            files: vec![
                File { sha1: Some("a".repeat(40)), sha256: Some("B".repeat(64)), ..File::default() },
                File { sha1: Some("c".repeat(40)), ..File::default() },
                File { sha256: Some("not a hash".into()), ..File::default() },
            ],
            ..Entities::default()
        };
        let s = subjects(&e);
        assert_eq!(s.users[0], UserSubject { id: Some(id.to_ascii_lowercase()), upn: Some("alexw@contoso.com".into()) });
        assert_eq!(s.users.len(), MAX_USERS, "the same user once, then recipients up to the cap");
        assert_eq!(s.users[1].key(), "r0@contoso.com");
        assert_eq!(s.devices, vec!["abc"]);
        assert_eq!(s.files, vec!["b".repeat(64), "c".repeat(40)]);
    }

    #[test]
    fn memberships_split_roles_from_groups_and_flag_privileged_roles() {
        let items = vec![
            json!({"@odata.type": "#microsoft.graph.directoryRole", "displayName": "Global Administrator", "roleTemplateId": "62e90394-69f5-4237-9190-012177145e10"}),
            json!({"@odata.type": "#microsoft.graph.directoryRole", "displayName": "Message Center Reader", "roleTemplateId": "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b"}),
            json!({"@odata.type": "#microsoft.graph.group", "id": "g1", "displayName": "Finance", "securityEnabled": true}),
            json!({"@odata.type": "#microsoft.graph.group", "id": "g2", "displayName": "All staff"}),
            json!({"@odata.type": "#microsoft.graph.administrativeUnit", "id": "au"}),
        ];
        let m = memberships_of(&items, 1, false);
        assert_eq!(m.roles.iter().map(|r| r.privileged).collect::<Vec<_>>(), vec![true, false]);
        assert_eq!(m.groups.len(), 1);
        assert!(m.groups_truncated);
        assert!(!memberships_of(&items, 5, false).groups_truncated);
        assert!(memberships_of(&items, 5, true).groups_truncated, "unread pages are more groups");
    }

    #[test]
    fn the_schedule_reads_the_digit_at_the_alert_time_and_hides_private_locations() {
        let v = json!({"availabilityView": "00340", "scheduleItems": [
            {"isPrivate": false, "status": "oof", "location": "Lisbon", "start": {"dateTime": "2026-11-27T10:30:00.0000000", "timeZone": "UTC"}, "end": {"dateTime": "2026-11-27T11:00:00.0000000", "timeZone": "UTC"}},
            {"isPrivate": true, "status": "busy", "location": "Clinic", "start": {"dateTime": "2026-11-27T11:00:00.0000000", "timeZone": "UTC"}}
        ]});
        let from = t("2026-11-27T10:00:00.0000000Z");
        let s = schedule_of(&v, from, t("2026-11-27T10:35:00.0000000Z"));
        assert_eq!((s.availability_at_alert.as_str(), s.away_at_alert), ("oof", true));
        assert_eq!(s.items[0].location.as_deref(), Some("Lisbon"));
        assert_eq!(s.items[1].location, None, "private");
        assert_eq!(schedule_of(&v, from, t("2026-11-27T10:50:00.0000000Z")).availability_at_alert, "workingElsewhere");
        assert_eq!(schedule_of(&v, from, t("2026-11-27T12:00:00.0000000Z")).availability_at_alert, "unknown", "past the view");
    }

    #[test]
    fn auto_replies_are_active_only_inside_a_utc_schedule() {
        let at = t("2026-11-27T10:00:00.0000000Z");
        let sched = |zone: &str| {
            json!({"status": "scheduled", "externalAudience": "all",
                "scheduledStartDateTime": {"dateTime": "2026-11-26T00:00:00", "timeZone": zone},
                "scheduledEndDateTime": {"dateTime": "2026-11-30T00:00:00.0000000", "timeZone": zone},
                "internalReplyMessage": "x".repeat(2_000)})
        };
        let a = auto_replies_of(&sched("UTC"), at);
        assert_eq!(a.active_at_alert, Some(true));
        assert_eq!(a.internal_reply.map(|r| r.len()), Some(MAX_TEXT), "cut");
        assert_eq!(auto_replies_of(&sched("Pacific Standard Time"), at).active_at_alert, None, "not converted");
        assert_eq!(auto_replies_of(&json!({"status": "disabled"}), at).active_at_alert, Some(false));
    }

    #[test]
    fn the_documented_samples_shape_as_expected() {
        let reg: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/microsoft-docs/graph_userregistrationdetails_list.json"))
                .unwrap_or_default();
        let m = mfa_of(&reg["value"][0]);
        assert_eq!((m.is_mfa_registered, m.preferred_method.as_deref()), (Some(true), Some("push")));
        assert_eq!(m.methods_registered, vec!["microsoftAuthenticatorPush", "softwareOneTimePasscode"]);
        let signins: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/microsoft-docs/graph_signins_list.json")).unwrap_or_default();
        let s = sign_ins_of(signins["value"].as_array().map_or(&[][..], Vec::as_slice), 10);
        assert_eq!((s[0].error_code, s[0].city.as_deref(), s[0].app.as_deref()), (Some(0), Some("Redmond"), Some("Graph explorer")));
        let file: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/microsoft-docs/mde_file_get.json")).unwrap_or_default();
        let f = file_of("h", &file);
        assert_eq!((f.global_prevalence, f.determination_type.as_deref()), (Some(180_022), Some("Pua")));
        let presence: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/microsoft-docs/graph_presences_by_userid.json")).unwrap_or_default();
        assert_eq!(presence_of(&presence["value"][1]).availability.as_deref(), Some("Away"));
    }

    #[test]
    fn a_part_reports_its_worst_lookup_and_an_unused_part_is_not_applicable() {
        let mut t = Tally::default();
        t.expect(ContextPart::Device);
        t.record(ContextPart::SignIns, LookupOutcome::Ok);
        t.record(ContextPart::SignIns, LookupOutcome::Throttled);
        t.record(ContextPart::SignIns, LookupOutcome::NotFound);
        t.record(ContextPart::Mfa, LookupOutcome::Failed("Graph answered 500".into()));
        let s = t.statuses();
        assert_eq!(s["device"].status, "not_applicable");
        assert_eq!((s["sign_ins"].status.as_str(), s["sign_ins"].lookups, s["sign_ins"].succeeded), ("throttled", 3, 1));
        assert_eq!((s["mfa"].status.as_str(), s["mfa"].detail.as_deref()), ("failed", Some("Graph answered 500")));
    }
}
