//! The tenant's people as Graph shows them to an app (ms-apis.md §9): users with their managers
//! (user-get.md, user-list-manager.md), memberships (user-list-transitivememberof.md),
//! registration details (userregistrationdetails-get.md), sign-ins (signin-list.md), automatic
//! replies (user-get-mailboxsettings.md), free/busy (calendar-getschedule.md) and presence
//! (cloudcommunications-getpresencesbyuserid.md), with their documented limits
//! (throttling-limits.md): identity reports 5 requests per 10 s per app per tenant, the
//! directory's resource units (3,500 per 10 s for a small tenant; a GET costs 2, `$expand` one
//! more, `$select` one less), presence 1,500 per 30 s and 650 ids per request, Outlook 10,000 per
//! 10 minutes per app per mailbox.
//!
//! Everything about a person is drawn from their place in the tenant's pool, so it is the same
//! on every call: user 0 is a Global Administrator, user 1 a Security Administrator, user 2 a
//! Message Center Reader; user 9 is in a role-assignable group (the roles module has the grants
//! `transitiveMemberOf` does not show); every fifth user is away with automatic replies
//! scheduled around now.

use crate::scenario::EntraLicense;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::collection::{self, Envelope};
use super::context::{authorize, GraphCtx, Principal};
use super::error::GraphError;
use super::quota::spend;
use crate::data::pool::User;
use crate::http::query_pairs;
use crate::odata::{CollectionQuery, FilterSchema, Prop, PropKind, QueryLimits};
use crate::state::Sim;
use crate::time::Instant;

/// user-get-permissions.md (application), least privileged first.
pub const USER_ROLES: &[&str] = &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"];
/// user-list-permissions.md (application), least privileged first: the basic profile (id,
/// displayName, mail, userPrincipalName among it) is all ReadBasic reads.
pub const USER_LIST_ROLES: &[&str] =
    &["User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"];
/// user-list-transitivememberof-permissions.md (application).
/// user-list-transitivememberof.md (Learn, 2025-08-05): User.Read.All is the least privileged;
/// an app that may not read a member's type gets it "with limited information": only
/// `@odata.type` and `id`, every other property null.
pub const MEMBERSHIP_ROLES: &[&str] =
    &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "GroupMember.Read.All", "Group.Read.All", "Directory.ReadWrite.All"];
/// What reads a directory role's properties, and a group's.
const ROLE_READERS: &[&str] =
    &["Directory.Read.All", "Directory.ReadWrite.All", "RoleManagement.Read.Directory", "RoleManagement.Read.All"];
const GROUP_READERS: &[&str] = &["Directory.Read.All", "Directory.ReadWrite.All", "GroupMember.Read.All", "Group.Read.All"];
/// userregistrationdetails-get.md.
pub const REGISTRATION_ROLES: &[&str] = &["AuditLog.Read.All"];
/// signin-list.md: AuditLog.Read.All, and (its known issue) Directory.Read.All as well.
pub const SIGN_IN_ROLES: &[&str] = &["AuditLog.Read.All"];
/// user-get-mailboxsettings-permissions.md (application).
pub const MAILBOX_SETTINGS_ROLES: &[&str] = &["MailboxSettings.Read", "MailboxSettings.ReadWrite"];
/// calendar-getschedule.md (the stored version: application Calendars.Read).
pub const SCHEDULE_ROLES: &[&str] = &["Calendars.Read", "Calendars.ReadWrite"];
/// cloudcommunications-getpresencesbyuserid-permissions.md (application).
pub const PRESENCE_ROLES: &[&str] = &["Presence.Read.All", "Presence.ReadWrite.All"];

/// getPresencesByUserId: at most 650 ids per request.
pub const MAX_PRESENCE_IDS: usize = 650;

/// user-revokesigninsessions-permissions.md (application; the newer least-privileged one first).
pub const REVOKE_ROLES: &[&str] = &["User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"];
/// user-update-permissions.md (application; `accountEnabled` alone).
pub const DISABLE_ROLES: &[&str] = &["User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"];
/// The roles that may change users who hold privileged roles (user-update.md, "who can perform
/// sensitive actions").
const SENSITIVE_ACTION_ROLES: &[&str] = &["Global Administrator", "Privileged Authentication Administrator"];

pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/v1.0/users", get(users))
        .route("/v1.0/users/{id}", get(user).patch(update_user))
        .route("/v1.0/users/{id}/revokeSignInSessions", post(revoke_sessions))
        .route("/v1.0/users/{id}/transitiveMemberOf", get(memberships))
        .route("/v1.0/users/{id}/mailboxSettings/automaticRepliesSetting", get(auto_replies))
        .route("/v1.0/users/{id}/calendar/getSchedule", post(schedule))
        .route("/v1.0/reports/authenticationMethods/userRegistrationDetails/{id}", get(registration))
        .route("/v1.0/auditLogs/signIns", get(sign_ins))
        .route("/v1.0/communications/getPresencesByUserId", post(presences))
}

/// Template ids of the roles the first users hold (permissions-reference.md).
const ROLES_OF_FIRST_USERS: &[(&str, &str)] = &[
    ("62e90394-69f5-4237-9190-012177145e10", "Global Administrator"),
    ("194ae4cb-b126-40b2-bd5b-6091b380977d", "Security Administrator"),
    ("790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b", "Message Center Reader"),
];
const DEPARTMENTS: &[&str] = &["Finance", "Engineering", "Sales", "Human Resources", "IT", "Legal"];
const TITLES: &[&str] = &["Analyst", "Engineer", "Account Executive", "HR Partner", "Administrator", "Counsel"];
const APPS: &[&str] = &["Office 365 Exchange Online", "Microsoft Teams", "Azure Portal", "OfficeHome", "Microsoft Edge"];
const PLACES: &[(&str, &str)] = &[("Redmond", "US"), ("London", "GB"), ("Lisbon", "PT"), ("Singapore", "SG")];

/// A person of the tenant: its pool index and the user.
struct Person {
    index: usize,
    user: User,
}

fn mix(a: usize, b: u64) -> u64 {
    let mut x = (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b;
    x ^= x >> 31;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// The tenant's user named by object id or UPN (Graph takes either), without case.
fn person(sim: &Sim, tenant: usize, id: &str) -> Option<Person> {
    let data = sim.data();
    let users = &data.get(tenant)?.pool.users;
    let id = id.to_ascii_lowercase();
    let index = users.iter().position(|u| u.aad_id.eq_ignore_ascii_case(&id) || u.upn.eq_ignore_ascii_case(&id))?;
    Some(Person { index, user: users[index].clone() })
}

fn not_found(id: &str) -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

/// The directory's resource units for a GET (throttling-limits.md "identity and access").
fn directory_cost(query: &[(String, String)]) -> u32 {
    let mut cost: u32 = 2;
    if query.iter().any(|(k, _)| k == "$expand") {
        cost += 1;
    }
    if query.iter().any(|(k, _)| k == "$select") {
        cost -= 1;
    }
    cost
}

pub(super) fn spend_directory(sim: &Sim, who: &Principal, query: &[(String, String)]) -> Result<(), GraphError> {
    spend(sim, who, "directory", directory_cost(query), 3_500, Duration::from_secs(10))
}

fn spend_reports(sim: &Sim, who: &Principal) -> Result<(), GraphError> {
    spend(sim, who, "reports", 1, 5, Duration::from_secs(10))
}

fn spend_mailbox(sim: &Sim, who: &Principal, mailbox: &str) -> Result<(), GraphError> {
    spend(sim, who, &format!("mailbox/{}", mailbox.to_ascii_lowercase()), 1, 10_000, Duration::from_secs(600))
}

fn user_json(sim: &Sim, p: &Person) -> Map<String, Value> {
    let h = mix(p.index, sim.seed);
    let dept = DEPARTMENTS[(h % DEPARTMENTS.len() as u64) as usize];
    let (city, country) = PLACES[(h >> 8) as usize % PLACES.len()];
    let enabled = !sim.people.is_disabled(&p.user.aad_id);
    let v = json!({
        "id": p.user.aad_id,
        "userPrincipalName": p.user.upn,
        "displayName": p.user.display_name,
        // Every user of the pool has a mailbox, its address the UPN.
        "mail": p.user.upn,
        "accountEnabled": enabled,
        "userType": "Member",
        "department": dept,
        "jobTitle": TITLES[(h % TITLES.len() as u64) as usize],
        "officeLocation": format!("{city} {}", 1 + h % 40),
        "city": city,
        "country": country,
        "usageLocation": country,
        "createdDateTime": "2023-04-03T09:12:44Z",
    });
    v.as_object().cloned().unwrap_or_default()
}

/// `$select` keeps the named members (and `id`, as Graph does).
fn select(mut m: Map<String, Value>, query: &[(String, String)]) -> Map<String, Value> {
    if let Some((_, s)) = query.iter().find(|(k, _)| k == "$select") {
        let keep: Vec<&str> = s.split(',').map(str::trim).collect();
        m.retain(|k, _| k == "id" || keep.iter().any(|x| x.eq_ignore_ascii_case(k)));
    }
    m
}

async fn user(State(sim): State<Sim>, Path(id): Path<String>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let query = query_pairs(uri.query());
    let result = authorize(&sim, &headers, &mut ctx, USER_ROLES).and_then(|who| {
        spend_directory(&sim, &who, &query)?;
        let p = person(&sim, who.tenant_index, &id).ok_or_else(|| not_found(&id))?;
        let mut m = select(user_json(&sim, &p), &query);
        if let Some((_, e)) = query.iter().find(|(k, _)| k == "$expand") {
            if !e.starts_with("manager") {
                return Err(GraphError::bad_request(format!("Could not find a property named '{e}' on type 'microsoft.graph.user'.")));
            }
            // Everyone but the first user reports to the user before them.
            if p.index > 0 {
                let data = sim.data();
                if let Some(m_user) = data.get(who.tenant_index).and_then(|t| t.pool.users.get(p.index - 1)) {
                    m.insert(
                        "manager".into(),
                        json!({"@odata.type": "#microsoft.graph.user", "id": m_user.aad_id, "displayName": m_user.display_name, "userPrincipalName": m_user.upn}),
                    );
                }
            }
        }
        Ok(m)
    });
    match result {
        Ok(m) => collection::respond_entity(&ctx, &sim.base_url, "users", m),
        Err(e) => e.into_response(&ctx),
    }
}

/// user-list.md: the tenant's users, `$top` (1–999, default 100) with `$skiptoken` pages and
/// `$select`; counted against the directory's resource units as any GET.
async fn users(State(sim): State<Sim>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let pairs = query_pairs(uri.query());
    let (selected, rest): (Vec<_>, Vec<_>) = pairs.iter().cloned().partition(|(k, _)| k == "$select");
    static NONE: FilterSchema = FilterSchema { entity: "user", props: &[] };
    let limits = collection::directory_limits(&NONE, ctx.include_unknown);
    let result = authorize(&sim, &headers, &mut ctx, USER_LIST_ROLES).and_then(|who| {
        spend_directory(&sim, &who, &pairs)?;
        let mut q = CollectionQuery::parse(&rest, &limits).map_err(|e| GraphError::bad_request(e.message))?;
        q.carry.extend(selected.iter().cloned());
        let pool = sim.data().get(who.tenant_index).map(|t| t.pool.users.clone()).unwrap_or_default();
        let all = pool
            .into_iter()
            .enumerate()
            .map(|(index, user)| Value::Object(select(user_json(&sim, &Person { index, user }), &selected)))
            .collect();
        let (page, total, more) = collection::cut(all, &q);
        Ok((q, page, total, more))
    });
    match result {
        Ok((q, page, total, more)) => {
            let env = Envelope { base_url: &sim.base_url, path: "/v1.0/users", context: "users", omit_next_link: false };
            collection::respond(&ctx, &env, &q, page, total, more)
        }
        Err(e) => e.into_response(&ctx),
    }
}

/// A group's object id, drawn from its name (groups have GUIDs, as every directory object).
pub fn group_id(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", h >> 32, (h >> 16) & 0xffff, h & 0xfff, (h >> 4) & 0xfff, h & 0xffff_ffff_ffff)
}

/// The user's roles and groups: the first users' roles, everyone's "All staff" and department
/// groups, and for user 3 a long tail of project groups (what paging and caps are for).
fn memberships_of(sim: &Sim, p: &Person) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some((template, name)) = ROLES_OF_FIRST_USERS.get(p.index) {
        out.push(json!({"@odata.type": "#microsoft.graph.directoryRole", "id": format!("role-{template}"), "displayName": name, "roleTemplateId": template}));
    }
    let dept = DEPARTMENTS[(mix(p.index, sim.seed) % DEPARTMENTS.len() as u64) as usize];
    out.push(json!({"@odata.type": "#microsoft.graph.group", "id": group_id("All staff"), "displayName": "All staff", "securityEnabled": false, "mailEnabled": true, "isAssignableToRole": false}));
    out.push(json!({"@odata.type": "#microsoft.graph.group", "id": group_id(dept), "displayName": dept, "securityEnabled": true, "mailEnabled": false, "isAssignableToRole": false}));
    if super::roles::in_role_group(p.index) {
        let name = super::roles::ROLE_GROUP;
        out.push(json!({"@odata.type": "#microsoft.graph.group", "id": group_id(name), "displayName": name, "securityEnabled": true, "mailEnabled": false, "isAssignableToRole": true}));
    }
    if p.index == 3 {
        out.extend((0..1_200).map(|n| {
            let name = format!("Project {n}");
            json!({"@odata.type": "#microsoft.graph.group", "id": group_id(&name), "displayName": name, "securityEnabled": true, "isAssignableToRole": false})
        }));
    }
    out
}

/// A member "with limited information" (user-list-transitivememberof.md): its type and id, the
/// rest null.
fn limited(m: Value) -> Value {
    let Value::Object(o) = m else { return m };
    Value::Object(o.into_iter().map(|(k, v)| if k == "@odata.type" || k == "id" { (k, v) } else { (k, Value::Null) }).collect())
}

async fn memberships(State(sim): State<Sim>, Path(id): Path<String>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let pairs = query_pairs(uri.query());
    static NONE: FilterSchema = FilterSchema { entity: "directoryObject", props: &[] };
    let limits = collection::directory_limits(&NONE, ctx.include_unknown);
    let result = authorize(&sim, &headers, &mut ctx, MEMBERSHIP_ROLES).and_then(|who| {
        spend_directory(&sim, &who, &pairs)?;
        let q = CollectionQuery::parse(&pairs, &limits).map_err(|e| GraphError::bad_request(e.message))?;
        let p = person(&sim, who.tenant_index, &id).ok_or_else(|| not_found(&id))?;
        let holds = |readers: &[&str]| who.roles.iter().any(|r| readers.iter().any(|x| x.eq_ignore_ascii_case(r)));
        let (roles, groups) = (holds(ROLE_READERS), holds(GROUP_READERS));
        let all: Vec<Value> = memberships_of(&sim, &p)
            .into_iter()
            .map(|m| {
                let is_role = m.get("@odata.type").and_then(Value::as_str) == Some("#microsoft.graph.directoryRole");
                if (is_role && roles) || (!is_role && groups) {
                    m
                } else {
                    limited(m)
                }
            })
            .collect();
        let (page, total, more) = collection::cut(all, &q);
        Ok((q, page, total, more))
    });
    match result {
        Ok((q, page, total, more)) => {
            let path = format!("/v1.0/users/{id}/transitiveMemberOf");
            let env = Envelope { base_url: &sim.base_url, path: &path, context: "directoryObjects", omit_next_link: false };
            collection::respond(&ctx, &env, &q, page, total, more)
        }
        Err(e) => e.into_response(&ctx),
    }
}

async fn registration(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = authorize(&sim, &headers, &mut ctx, REGISTRATION_ROLES).and_then(|who| {
        spend_reports(&sim, &who)?;
        // By object id only (userregistrationdetails-get.md: `{userId}`).
        let p = person(&sim, who.tenant_index, &id).filter(|p| p.user.aad_id.eq_ignore_ascii_case(&id)).ok_or_else(|| not_found(&id))?;
        let registered = p.index % 4 != 3;
        let v = json!({
            "id": p.user.aad_id,
            "userPrincipalName": p.user.upn,
            "userDisplayName": p.user.display_name,
            "userType": "member",
            "isAdmin": p.index < 2,
            "isMfaRegistered": registered,
            "isMfaCapable": registered,
            "isPasswordlessCapable": p.index % 2 == 0,
            "isSsprRegistered": registered,
            "isSsprEnabled": true,
            "isSsprCapable": registered,
            "isSystemPreferredAuthenticationMethodEnabled": true,
            "systemPreferredAuthenticationMethods": if registered { vec!["push"] } else { vec![] },
            "methodsRegistered": if registered { vec!["microsoftAuthenticatorPush", "softwareOneTimePasscode"] } else { vec![] },
            "userPreferredMethodForSecondaryAuthentication": if registered { "push" } else { "none" },
            "lastUpdatedDateTime": "2026-10-01T08:00:00Z",
        });
        Ok(v.as_object().cloned().unwrap_or_default())
    });
    match result {
        Ok(m) => collection::respond_entity(&ctx, &sim.base_url, "reports/authenticationMethods/userRegistrationDetails", m),
        Err(e) => e.into_response(&ctx),
    }
}

/// signin-list.md's filterable members the simulator evaluates.
static SIGN_IN_SCHEMA: FilterSchema = FilterSchema {
    entity: "signIn",
    props: &[
        Prop { name: "userId", kind: PropKind::String },
        Prop { name: "userPrincipalName", kind: PropKind::String },
        Prop { name: "createdDateTime", kind: PropKind::DateTime },
        Prop { name: "appId", kind: PropKind::String },
        Prop { name: "ipAddress", kind: PropKind::String },
    ],
};

/// Every sign-in of the tenant in the three days before `now`: each person every few hours,
/// newest first (signin-list.md: sorted by createdDateTime descending).
fn sign_ins_of(sim: &Sim, tenant: usize, now: Instant) -> Vec<Map<String, Value>> {
    let data = sim.data();
    let Some(t) = data.get(tenant) else { return Vec::new() };
    let mut out = Vec::new();
    for (i, u) in t.pool.users.iter().enumerate() {
        let step = 3 * 3600 + (mix(i, sim.seed) % 3600) as i64;
        let mut at = now.plus_secs(-((mix(i, 7) % 1800) as i64));
        let start = now.plus_secs(-3 * 86_400);
        let mut n = 0u64;
        while at > start {
            let h = mix(i, n);
            let failed = h.is_multiple_of(9);
            let (city, country) = PLACES[(h >> 5) as usize % PLACES.len()];
            let ip = t.pool.external_ips.get((h >> 9) as usize % t.pool.external_ips.len().max(1)).cloned().unwrap_or_default();
            let v = json!({
                "id": format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", h as u32, (h >> 32) as u16, n % 4096, i % 4096, h >> 16 & 0xffff_ffff_ffff),
                "createdDateTime": format!("{}Z", at.seconds_no_zone()),
                "userDisplayName": u.display_name,
                "userPrincipalName": u.upn,
                "userId": u.aad_id,
                "appId": "00000002-0000-0ff1-ce00-000000000000",
                "appDisplayName": APPS[(h >> 13) as usize % APPS.len()],
                "ipAddress": ip,
                "clientAppUsed": "Browser",
                "conditionalAccessStatus": if failed { "failure" } else { "success" },
                "isInteractive": !h.is_multiple_of(3),
                "riskDetail": "none",
                "riskLevelAggregated": if h.is_multiple_of(11) { "medium" } else { "none" },
                "riskLevelDuringSignIn": "none",
                "riskState": "none",
                "riskEventTypes": [],
                "status": {"errorCode": if failed { 50126 } else { 0 }, "failureReason": if failed { Some("Error validating credentials due to invalid username or password.") } else { None }, "additionalDetails": null},
                "deviceDetail": {"deviceId": "", "displayName": null, "operatingSystem": "Windows 10", "browser": "Edge 130.0", "isCompliant": null, "isManaged": null, "trustType": null},
                "location": {"city": city, "state": null, "countryOrRegion": country},
            });
            if let Some(m) = v.as_object() {
                out.push(m.clone());
            }
            at = at.plus_secs(-step);
            n += 1;
        }
    }
    out.sort_by(|a, b| b["createdDateTime"].as_str().cmp(&a["createdDateTime"].as_str()));
    out
}

async fn sign_ins(State(sim): State<Sim>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let pairs = query_pairs(uri.query());
    let limits = QueryLimits {
        schema: &SIGN_IN_SCHEMA,
        default_top: 1_000,
        max_top: 1_000,
        clamp_top: false,
        max_skip: 0,
        orderable: &[],
        expandable: &[],
        include_unknown: ctx.include_unknown,
    };
    let result = authorize(&sim, &headers, &mut ctx, SIGN_IN_ROLES).and_then(|who| {
        if !who.roles.iter().any(|r| r.eq_ignore_ascii_case("Directory.Read.All")) {
            return Err(GraphError::new(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation. (signIns also needs Directory.Read.All)",
            ));
        }
        let license = sim.directory()[who.tenant_index].license;
        if license == EntraLicense::Free {
            // resources/signin.md: a P1 or P2 license to read sign-ins through Graph; the
            // message is entra-docs howto-analyze-activity-logs-with-microsoft-graph.md's (ms.date
            // 2025-06-30). The code is not documented: the one open-source callers meet.
            return Err(GraphError::new(
                StatusCode::FORBIDDEN,
                "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                "Neither tenant is B2C or tenant doesn't have premium license",
            ));
        }
        spend_reports(&sim, &who)?;
        let q = CollectionQuery::parse(&pairs, &limits).map_err(|e| GraphError::bad_request(e.message))?;
        let matching: Vec<Value> = sign_ins_of(&sim, who.tenant_index, ctx.now)
            .into_iter()
            .map(|mut m| {
                if license != EntraLicense::P2 {
                    for k in ["riskDetail", "riskLevelAggregated", "riskLevelDuringSignIn"] {
                        m.insert(k.into(), Value::String("hidden".into()));
                    }
                }
                m
            })
            .filter(|m| q.filter.as_ref().is_none_or(|f| f.matches(m)))
            .map(Value::Object)
            .collect();
        let (page, total, more) = collection::cut(matching, &q);
        Ok((q, page, total, more))
    });
    match result {
        Ok((q, page, total, more)) => {
            let env =
                Envelope { base_url: &sim.base_url, path: "/v1.0/auditLogs/signIns", context: "auditLogs/signIns", omit_next_link: false };
            collection::respond(&ctx, &env, &q, page, total, more)
        }
        Err(e) => e.into_response(&ctx),
    }
}

/// The directory's write quota: 3,000 writes per 2.5 minutes per app and tenant (throttling-limits.md).
fn spend_write(sim: &Sim, who: &Principal) -> Result<(), GraphError> {
    spend(sim, who, "directory-writes", 1, 3_000, Duration::from_secs(150))
}

/// A change to a user who holds a privileged role needs the app to hold a higher one itself
/// (user-update.md, "who can perform sensitive actions"; the simulator applies it to revoking
/// sessions too, which the doc's table covers for admins as "invalidate refresh tokens" — the
/// unfriendlier reading).
fn sensitive_action_allowed(sim: &Sim, who: &Principal, target: &Person) -> Result<(), GraphError> {
    let privileged = ROLES_OF_FIRST_USERS
        .get(target.index)
        .is_some_and(|(template, _)| ["62e90394-69f5-4237-9190-012177145e10", "194ae4cb-b126-40b2-bd5b-6091b380977d"].contains(template));
    if !privileged {
        return Ok(());
    }
    let dir = sim.directory();
    let app_roles = dir
        .get(who.tenant_index)
        .and_then(|t| t.apps.iter().find(|a| a.client_id.eq_ignore_ascii_case(&who.client_id)))
        .map(|a| a.directory_roles.clone())
        .unwrap_or_default();
    if app_roles.iter().any(|r| SENSITIVE_ACTION_ROLES.iter().any(|s| s.eq_ignore_ascii_case(r))) {
        return Ok(());
    }
    Err(GraphError::new(StatusCode::FORBIDDEN, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."))
}

async fn revoke_sessions(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = authorize(&sim, &headers, &mut ctx, REVOKE_ROLES).and_then(|who| {
        spend_write(&sim, &who)?;
        let p = person(&sim, who.tenant_index, &id).ok_or_else(|| not_found(&id))?;
        sensitive_action_allowed(&sim, &who, &p)?;
        sim.people.revoke(&p.user.aad_id, ctx.now);
        Ok(())
    });
    match result {
        Ok(()) => {
            let body = json!({"@odata.context": format!("{}/v1.0/$metadata#Edm.Boolean", sim.base_url), "value": true});
            ctx.stamp(crate::http::json(StatusCode::OK, &body, crate::http::ODATA_JSON))
        }
        Err(e) => e.into_response(&ctx),
    }
}

async fn update_user(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = authorize(&sim, &headers, &mut ctx, DISABLE_ROLES).and_then(|who| {
        spend_write(&sim, &who)?;
        let p = person(&sim, who.tenant_index, &id).ok_or_else(|| not_found(&id))?;
        let change: Map<String, Value> =
            serde_json::from_slice(&body).map_err(|e| GraphError::bad_request(format!("The request body is not a JSON object: {e}")))?;
        let enabled = match (change.len(), change.get("accountEnabled")) {
            (1, Some(Value::Bool(b))) => *b,
            // Microsoft updates many properties; the simulator knows only this one (README).
            _ => return Err(GraphError::bad_request("The simulator updates accountEnabled (a boolean) only.")),
        };
        sensitive_action_allowed(&sim, &who, &p)?;
        sim.people.set_disabled(&p.user.aad_id, !enabled);
        Ok(())
    });
    match result {
        Ok(()) => ctx.stamp(axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT)),
        Err(e) => e.into_response(&ctx),
    }
}

/// Whether the person is away (every fifth one): automatic replies from a day ago to three days
/// ahead, and an out-of-office block in the calendar.
fn away(p: &Person) -> bool {
    p.index % 5 == 4
}

fn utc(t: Instant) -> Value {
    json!({"dateTime": format!("{}.0000000", t.seconds_no_zone()), "timeZone": "UTC"})
}

async fn auto_replies(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = authorize(&sim, &headers, &mut ctx, MAILBOX_SETTINGS_ROLES).and_then(|who| {
        let p = person(&sim, who.tenant_index, &id).ok_or_else(|| not_found(&id))?;
        super::mailbox::in_scope(&sim, &who, &p.user.upn)?;
        spend_mailbox(&sim, &who, &p.user.upn)?;
        // Mailbox settings are an Outlook resource: its 4 concurrent requests per app per
        // mailbox hold here too (throttling-limits.md "Outlook service limits").
        let admitted = super::mailbox::admit(&sim, &who, &p.user.upn, &ctx)?;
        let now = ctx.now;
        let v = if away(&p) {
            json!({"status": "scheduled", "externalAudience": "all",
                "scheduledStartDateTime": utc(now.plus_secs(-86_400)), "scheduledEndDateTime": utc(now.plus_secs(3 * 86_400)),
                "internalReplyMessage": "<html><body>I am travelling with limited access to email.</body></html>",
                "externalReplyMessage": "<html><body>I am out of the office.</body></html>"})
        } else {
            json!({"status": "disabled", "externalAudience": "all",
                "scheduledStartDateTime": utc(now), "scheduledEndDateTime": utc(now.plus_secs(86_400)),
                "internalReplyMessage": "", "externalReplyMessage": ""})
        };
        Ok((admitted, v))
    });
    match result {
        Ok((admitted, mut v)) => {
            super::mailbox::hold(&sim).await;
            drop(admitted);
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "@odata.context".into(),
                    json!(format!("{}/v1.0/$metadata#users('{id}')/mailboxSettings/automaticRepliesSetting", sim.base_url)),
                );
            }
            ctx.stamp(crate::http::json(StatusCode::OK, &v, crate::http::ODATA_JSON))
        }
        Err(e) => e.into_response(&ctx),
    }
}

fn time_of(v: &Value, field: &str) -> Result<Instant, GraphError> {
    let t = v.get(field).ok_or_else(|| GraphError::bad_request(format!("{field} is required.")))?;
    let zone = t.get("timeZone").and_then(Value::as_str).unwrap_or_default();
    if !zone.eq_ignore_ascii_case("UTC") {
        // Microsoft takes any Windows or IANA zone; the simulator knows UTC only (README).
        return Err(GraphError::bad_request(format!("{field}.timeZone: the simulator accepts UTC only, not '{zone}'.")));
    }
    let dt = t.get("dateTime").and_then(Value::as_str).unwrap_or_default();
    Instant::parse(&format!("{}Z", dt.trim_end_matches('Z')))
        .map_err(|_| GraphError::bad_request(format!("{field}.dateTime '{dt}' is not a date and time.")))
}

async fn schedule(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = authorize(&sim, &headers, &mut ctx, SCHEDULE_ROLES).and_then(|who| {
        let owner = person(&sim, who.tenant_index, &id).ok_or_else(|| not_found(&id))?;
        super::mailbox::in_scope(&sim, &who, &owner.user.upn)?;
        spend_mailbox(&sim, &who, &owner.user.upn)?;
        // The calendar is an Outlook resource (auto_replies).
        let admitted = super::mailbox::admit(&sim, &who, &owner.user.upn, &ctx)?;
        let req: Value = serde_json::from_slice(&body).map_err(|e| GraphError::bad_request(format!("The request body is not JSON: {e}")))?;
        let (start, end) = (time_of(&req, "startTime")?, time_of(&req, "endTime")?);
        let interval = req.get("availabilityViewInterval").and_then(Value::as_i64).unwrap_or(30);
        if !(5..=1440).contains(&interval) {
            return Err(GraphError::bad_request("availabilityViewInterval must be between 5 and 1440 minutes."));
        }
        if end.unix_seconds() <= start.unix_seconds() || end.unix_seconds() - start.unix_seconds() > 62 * 86_400 {
            return Err(GraphError::bad_request("endTime must follow startTime, at most 62 days later."));
        }
        let schedules: Vec<String> = req.get("schedules").and_then(Value::as_array).map_or_else(Vec::new, |a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect());
        if schedules.is_empty() || schedules.len() > 100 {
            return Err(GraphError::bad_request("schedules must name 1 to 100 addresses."));
        }
        let now = ctx.now;
        let slots = ((end.unix_seconds() - start.unix_seconds()) / (interval * 60)) as usize;
        let infos: Vec<Value> = schedules
            .iter()
            .map(|address| match person(&sim, who.tenant_index, address) {
                None => json!({"scheduleId": address, "availabilityView": "", "scheduleItems": [], "error": {"message": "The specified user could not be found.", "responseCode": "ErrorMailRecipientNotFound"}}),
                Some(p) => {
                    let mut items = Vec::new();
                    let mut view = String::new();
                    // A one-hour meeting at the top of every third hour, and away all along for
                    // the away people.
                    for s in 0..slots {
                        let at = start.plus_secs(s as i64 * interval * 60);
                        let meeting = (at.unix_seconds() / 3600) % 3 == 0;
                        view.push(if away(&p) { '3' } else if meeting { '2' } else { '0' });
                    }
                    if away(&p) {
                        items.push(json!({"isPrivate": false, "status": "oof", "subject": "Travel", "location": PLACES[2].0,
                            "start": utc(now.plus_secs(-86_400)), "end": utc(now.plus_secs(3 * 86_400))}));
                    } else {
                        let first = start.unix_seconds() / 3600 * 3600;
                        let mut h = first;
                        while h < end.unix_seconds() && items.len() < 50 {
                            if (h / 3600) % 3 == 0 && h + 3600 > start.unix_seconds() {
                                items.push(json!({"isPrivate": p.index % 2 == 0, "status": "busy", "subject": "Project sync", "location": "Room 4",
                                    "start": utc(Instant::from_unix_seconds(h)), "end": utc(Instant::from_unix_seconds(h + 3600))}));
                            }
                            h += 3600;
                        }
                    }
                    json!({"scheduleId": address, "availabilityView": view, "scheduleItems": items,
                        "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"], "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000", "timeZone": {"name": "UTC"}}})
                }
            })
            .collect();
        Ok((admitted, infos))
    });
    match result {
        Ok((admitted, infos)) => {
            super::mailbox::hold(&sim).await;
            drop(admitted);
            let body = json!({"@odata.context": format!("{}/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)", sim.base_url), "value": infos});
            ctx.stamp(crate::http::json(StatusCode::OK, &body, crate::http::ODATA_JSON))
        }
        Err(e) => e.into_response(&ctx),
    }
}

async fn presences(State(sim): State<Sim>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let result = authorize(&sim, &headers, &mut ctx, PRESENCE_ROLES).and_then(|who| {
        spend(&sim, &who, "presence", 1, 1_500, Duration::from_secs(30))?;
        let req: Value =
            serde_json::from_slice(&body).map_err(|e| GraphError::bad_request(format!("The request body is not JSON: {e}")))?;
        let ids: Vec<String> = req
            .get("ids")
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect());
        if ids.is_empty() {
            return Err(GraphError::bad_request("ids must name at least one user."));
        }
        if ids.len() > MAX_PRESENCE_IDS {
            return Err(GraphError::bad_request(format!("ids names {} users; at most {MAX_PRESENCE_IDS} are allowed.", ids.len())));
        }
        // Unknown ids are left out of the answer.
        Ok(ids
            .iter()
            .filter_map(|id| person(&sim, who.tenant_index, id).filter(|p| p.user.aad_id.eq_ignore_ascii_case(id)))
            .map(|p| {
                let (availability, activity) = if away(&p) {
                    ("Away", "OutOfOffice")
                } else {
                    [("Available", "Available"), ("Busy", "InAMeeting"), ("DoNotDisturb", "Presenting"), ("Offline", "Offline")]
                        [(mix(p.index, 3) % 4) as usize]
                };
                json!({"id": p.user.aad_id, "availability": availability, "activity": activity,
                    "outOfOfficeSettings": {"message": null, "isOutOfOffice": away(&p)}})
            })
            .collect::<Vec<Value>>())
    });
    match result {
        Ok(items) => {
            let body =
                json!({"@odata.context": format!("{}/v1.0/$metadata#Collection(microsoft.graph.presence)", sim.base_url), "value": items});
            ctx.stamp(crate::http::json(StatusCode::OK, &body, crate::http::ODATA_JSON))
        }
        Err(e) => e.into_response(&ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_costs_one_unit_less_and_expand_one_more() {
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
        assert_eq!(directory_cost(&q(&[])), 2);
        assert_eq!(directory_cost(&q(&[("$select", "id"), ("$expand", "manager")])), 2);
        assert_eq!(directory_cost(&q(&[("$expand", "manager")])), 3);
    }
}

/// What remediation changed about people: accounts disabled (their `accountEnabled` reads
/// false), and when each one's sessions were last revoked.
#[derive(Debug, Default)]
pub struct PeopleState {
    disabled: std::sync::Mutex<std::collections::HashSet<String>>,
    revoked: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
}

impl PeopleState {
    pub fn revoke(&self, aad_id: &str, at: Instant) {
        self.revoked.lock().unwrap_or_else(|p| p.into_inner()).insert(aad_id.to_ascii_lowercase(), at);
    }

    pub fn revoked_at(&self, aad_id: &str) -> Option<Instant> {
        self.revoked.lock().unwrap_or_else(|p| p.into_inner()).get(&aad_id.to_ascii_lowercase()).copied()
    }

    pub fn is_disabled(&self, aad_id: &str) -> bool {
        self.disabled.lock().unwrap_or_else(|p| p.into_inner()).contains(&aad_id.to_ascii_lowercase())
    }

    pub fn set_disabled(&self, aad_id: &str, disabled: bool) {
        let mut d = self.disabled.lock().unwrap_or_else(|p| p.into_inner());
        if disabled {
            d.insert(aad_id.to_ascii_lowercase());
        } else {
            d.remove(&aad_id.to_ascii_lowercase());
        }
    }
}
