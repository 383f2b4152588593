//! Entra ID role management as Graph shows it to an app (issue 29 §3): role assignments
//! (rbacapplication-list-roleassignments.md), the instances of PIM role eligibilities
//! (rbacapplication-list-roleeligibilityscheduleinstances.md) and role definitions
//! (unifiedroledefinition-get.md). These are what `transitiveMemberOf` does not show: a role
//! scoped to an administrative unit, a role a user is only eligible for (activated through PIM
//! when needed), a role held through a role-assignable group's eligibility, and custom roles.
//!
//! Who holds what is drawn from the pool, as the people module does: users 0–2 hold Global
//! Administrator, Security Administrator and Message Center Reader tenant-wide (the directory
//! roles `transitiveMemberOf` lists); user 7 is eligible for Global Administrator; user 8 is a
//! User Administrator of one administrative unit; user 9 is a member of the role-assignable
//! group "Identity admins", eligible for Privileged Role Administrator; user 10 holds a custom
//! role. Eligibilities exist only in a tenant with Entra ID P2 (PIM's licence).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::collection::{self, Envelope};
use super::context::{authorize, GraphCtx, Principal};
use super::error::GraphError;
use super::people::{group_id, spend_directory};
use crate::http::query_pairs;
use crate::odata::{CollectionQuery, FilterSchema, Prop, PropKind};
use crate::scenario::EntraLicense;
use crate::state::Sim;

/// rbacapplication-list-roleassignments.md (application, directory provider), least privileged first.
pub const ASSIGNMENT_ROLES: &[&str] = &[
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "Directory.Read.All",
    "RoleManagement.ReadWrite.Directory",
    "Directory.ReadWrite.All",
];
/// rbacapplication-list-roleeligibilityscheduleinstances.md (application): Directory.Read.All
/// is not among them.
pub const ELIGIBILITY_ROLES: &[&str] = &[
    "RoleEligibilitySchedule.Read.Directory",
    "RoleEligibilitySchedule.ReadWrite.Directory",
    "RoleManagement.Read.All",
    "RoleManagement.Read.Directory",
    "RoleManagement.ReadWrite.Directory",
];
/// unifiedroledefinition-get.md (application, directory provider).
pub const DEFINITION_ROLES: &[&str] =
    &["RoleManagement.Read.Directory", "Directory.Read.All", "RoleManagement.ReadWrite.Directory", "Directory.ReadWrite.All"];

/// The role-assignable group whose members are eligible for Privileged Role Administrator.
pub const ROLE_GROUP: &str = "Identity admins";
/// The administrative unit user 8 administers.
pub const ADMIN_UNIT: &str = "5b1c9d2e-7a3f-4e60-9b81-2c4d6e8f0a13";
/// The tenant's one custom role (a custom definition's id is its own, not a template's).
pub const CUSTOM_ROLE: (&str, &str) = ("c7d0f3a1-58e2-4b9c-a6d4-0e1f2a3b4c5d", "Mailbox Helpers (custom)");

/// Built-in role definitions the pool's grants name: (id = template id, display name).
const BUILT_IN: &[(&str, &str)] = &[
    ("62e90394-69f5-4237-9190-012177145e10", "Global Administrator"),
    ("194ae4cb-b126-40b2-bd5b-6091b380977d", "Security Administrator"),
    ("790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b", "Message Center Reader"),
    ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    ("e8611ab8-c189-46e8-94e1-60213ab1f814", "Privileged Role Administrator"),
];

/// privilegedaccessgroup-list-eligibilityscheduleinstances.md (application), least privileged first.
pub const GROUP_ELIGIBILITY_ROLES: &[&str] = &[
    "PrivilegedEligibilitySchedule.Read.AzureADGroup",
    "PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup",
    "PrivilegedAccess.Read.AzureADGroup",
    "PrivilegedAccess.ReadWrite.AzureADGroup",
];
/// The role-assignable group holding Global Administrator that user 12 may join through PIM.
pub const TIER0_GROUP: &str = "Tier 0 admins";

pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances", get(group_eligibilities))
        .route("/v1.0/roleManagement/directory/roleAssignments", get(assignments))
        .route("/v1.0/roleManagement/directory/roleEligibilityScheduleInstances", get(eligibilities))
        .route("/v1.0/roleManagement/directory/roleDefinitions/{id}", get(definition))
}

/// One grant of a role: to whom (a user's or a group's object id), which role, at which scope,
/// and whether it is an eligibility rather than an active assignment.
struct Grant {
    principal: String,
    role: &'static str,
    scope: String,
    eligible: bool,
}

/// Whether `user_index` is a member of the role-assignable group (for transitiveMemberOf).
pub fn in_role_group(user_index: usize) -> bool {
    user_index == 9
}

fn grants(sim: &Sim, tenant: usize) -> Vec<Grant> {
    let data = sim.data();
    let Some(users) = data.get(tenant).map(|t| &t.pool.users) else { return Vec::new() };
    let user = |n: usize| users.get(n).map(|u| u.aad_id.clone());
    let mut out = Vec::new();
    let mut add = |principal: Option<String>, role: &'static str, scope: &str, eligible: bool| {
        if let Some(principal) = principal {
            out.push(Grant { principal, role, scope: scope.to_owned(), eligible });
        }
    };
    for (n, (role, _)) in BUILT_IN.iter().take(3).enumerate() {
        add(user(n), role, "/", false);
    }
    add(user(7), BUILT_IN[0].0, "/", true);
    add(user(8), BUILT_IN[3].0, &format!("/administrativeUnits/{ADMIN_UNIT}"), false);
    if users.len() > 9 {
        add(Some(group_id(ROLE_GROUP)), BUILT_IN[4].0, "/", true);
    }
    add(user(10), CUSTOM_ROLE.0, "/", false);
    if users.len() > 12 {
        add(Some(group_id(TIER0_GROUP)), BUILT_IN[0].0, "/", false);
    }
    out
}

/// What both lists filter on (unifiedroleassignment.md, unifiedroleeligibilityscheduleinstance.md:
/// `principalId`, `roleDefinitionId` and `directoryScopeId` support `$filter` `eq`).
static GRANT_SCHEMA: FilterSchema = FilterSchema {
    entity: "unifiedRoleAssignment",
    props: &[
        Prop { name: "principalId", kind: PropKind::String },
        Prop { name: "roleDefinitionId", kind: PropKind::String },
        Prop { name: "directoryScopeId", kind: PropKind::String },
    ],
};

fn grant_json(g: &Grant, n: usize, eligible: bool) -> Map<String, Value> {
    let mut m = json!({
        "id": format!("{}-{n}", if eligible { "eligibility" } else { "assignment" }),
        "principalId": g.principal,
        "roleDefinitionId": g.role,
        "directoryScopeId": g.scope,
        "appScopeId": null,
    });
    if eligible {
        m["startDateTime"] = json!("2026-01-05T09:00:00Z");
        m["endDateTime"] = Value::Null;
        m["memberType"] = json!("Direct");
        m["roleEligibilityScheduleId"] = json!(format!("schedule-{n}"));
    }
    m.as_object().cloned().unwrap_or_default()
}

/// The grants of one kind that match the caller's `$filter`, as a Graph collection.
fn list(sim: &Sim, headers: &HeaderMap, uri: &axum::http::Uri, eligible: bool) -> Response {
    let mut ctx = GraphCtx::new(sim, headers);
    let pairs = query_pairs(uri.query());
    let limits = collection::directory_limits(&GRANT_SCHEMA, ctx.include_unknown);
    let required = if eligible { ELIGIBILITY_ROLES } else { ASSIGNMENT_ROLES };
    let result = authorize(sim, headers, &mut ctx, required).and_then(|who: Principal| {
        spend_directory(sim, &who, &pairs)?;
        if eligible && sim.directory()[who.tenant_index].license != EntraLicense::P2 {
            // PIM needs Entra ID P2 (or ID Governance). The answer is not on a Learn page; it is
            // the one callers meet (maester365/maester#1421, 2026-01-22: 400 with this code and text).
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "AadPremiumLicenseRequired",
                "The tenant needs to have Microsoft Entra ID P2 or Microsoft Entra ID Governance license.",
            ));
        }
        let q = CollectionQuery::parse(&pairs, &limits).map_err(|e| GraphError::bad_request(e.message))?;
        let all: Vec<Value> = grants(sim, who.tenant_index)
            .iter()
            .enumerate()
            .filter(|(_, g)| g.eligible == eligible)
            .map(|(n, g)| grant_json(g, n, eligible))
            .filter(|m| q.filter.as_ref().is_none_or(|f| f.matches(m)))
            .map(Value::Object)
            .collect();
        let (page, total, more) = collection::cut(all, &q);
        Ok((q, page, total, more))
    });
    match result {
        Ok((q, page, total, more)) => {
            let (path, context) = if eligible {
                (
                    "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances",
                    "roleManagement/directory/roleEligibilityScheduleInstances",
                )
            } else {
                ("/v1.0/roleManagement/directory/roleAssignments", "roleManagement/directory/roleAssignments")
            };
            let env = Envelope { base_url: &sim.base_url, path, context, omit_next_link: false };
            collection::respond(&ctx, &env, &q, page, total, more)
        }
        Err(e) => e.into_response(&ctx),
    }
}

async fn assignments(State(sim): State<Sim>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    list(&sim, &headers, &uri, false)
}

async fn eligibilities(State(sim): State<Sim>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    list(&sim, &headers, &uri, true)
}

async fn definition(State(sim): State<Sim>, Path(id): Path<String>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let pairs = query_pairs(uri.query());
    let result = authorize(&sim, &headers, &mut ctx, DEFINITION_ROLES).and_then(|who| {
        spend_directory(&sim, &who, &pairs)?;
        let (name, built_in) = BUILT_IN
            .iter()
            .find(|(r, _)| r.eq_ignore_ascii_case(&id))
            .map(|(_, name)| (*name, true))
            .or_else(|| CUSTOM_ROLE.0.eq_ignore_ascii_case(&id).then_some((CUSTOM_ROLE.1, false)))
            .ok_or_else(|| {
                GraphError::new(StatusCode::NOT_FOUND, "Request_ResourceNotFound", format!("Resource '{id}' does not exist."))
            })?;
        let v = json!({
            "id": id.to_ascii_lowercase(),
            "displayName": name,
            "isBuiltIn": built_in,
            "isEnabled": true,
            "templateId": id.to_ascii_lowercase(),
            "description": if built_in { "A built-in role." } else { "Reads and manages mailbox settings." },
        });
        let mut m = v.as_object().cloned().unwrap_or_default();
        if let Some((_, select)) = pairs.iter().find(|(k, _)| k == "$select") {
            let keep: Vec<&str> = select.split(',').map(str::trim).collect();
            m.retain(|k, _| keep.contains(&k.as_str()));
        }
        Ok(m)
    });
    match result {
        Ok(m) => collection::respond_entity(&ctx, &sim.base_url, "roleManagement/directory/roleDefinitions", m),
        Err(e) => e.into_response(&ctx),
    }
}

/// PIM for Groups: who may activate membership of which group (user 12: "Tier 0 admins", a
/// role-assignable group holding Global Administrator). `$filter` on `principalId` or `groupId`
/// is required (privilegedaccessgroup-list-eligibilityscheduleinstances.md); PIM needs P2.
async fn group_eligibilities(State(sim): State<Sim>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    static SCHEMA: FilterSchema = FilterSchema {
        entity: "privilegedAccessGroupEligibilityScheduleInstance",
        props: &[Prop { name: "principalId", kind: PropKind::String }, Prop { name: "groupId", kind: PropKind::String }],
    };
    let mut ctx = GraphCtx::new(&sim, &headers);
    let pairs = query_pairs(uri.query());
    let limits = collection::directory_limits(&SCHEMA, ctx.include_unknown);
    let result = authorize(&sim, &headers, &mut ctx, GROUP_ELIGIBILITY_ROLES).and_then(|who: Principal| {
        spend_directory(&sim, &who, &pairs)?;
        if !pairs.iter().any(|(k, _)| k == "$filter") {
            return Err(GraphError::bad_request("A filter on principalId or groupId is required."));
        }
        if sim.directory()[who.tenant_index].license != EntraLicense::P2 {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "AadPremiumLicenseRequired",
                "The tenant needs to have Microsoft Entra ID P2 or Microsoft Entra ID Governance license.",
            ));
        }
        let q = CollectionQuery::parse(&pairs, &limits).map_err(|e| GraphError::bad_request(e.message))?;
        let data = sim.data();
        let user = data.get(who.tenant_index).and_then(|t| t.pool.users.get(12)).map(|u| u.aad_id.clone());
        let all: Vec<Value> = user
            .into_iter()
            .map(|u| {
                json!({"id": "group-eligibility-0", "principalId": u, "groupId": group_id(TIER0_GROUP), "accessId": "member",
                    "memberType": "direct", "startDateTime": "2026-01-05T09:00:00Z", "endDateTime": null,
                    "eligibilityScheduleId": "group-schedule-0"})
            })
            .filter_map(|v| v.as_object().cloned())
            .filter(|m| q.filter.as_ref().is_none_or(|f| f.matches(m)))
            .map(Value::Object)
            .collect();
        let (page, total, more) = collection::cut(all, &q);
        Ok((q, page, total, more))
    });
    match result {
        Ok((q, page, total, more)) => {
            let path = "/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances";
            let env = Envelope {
                base_url: &sim.base_url,
                path,
                context: "identityGovernance/privilegedAccess/group/eligibilityScheduleInstances",
                omit_next_link: false,
            };
            collection::respond(&ctx, &env, &q, page, total, more)
        }
        Err(e) => e.into_response(&ctx),
    }
}
