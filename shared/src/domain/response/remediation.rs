//! The remediator's contract and guard rails (issue 14; ms-apis.md §10): a downstream system
//! asks to revoke a user's sign-in sessions or disable an account, with the alert it acts on
//! and a reason; the request is checked against the integration's rules before anything is
//! done, and every outcome, refusals included, becomes an audit record and a result message.

use serde::{Deserialize, Serialize};

use crate::domain::field_error::FieldError;
use crate::domain::processing::directory_roles::is_privileged;
use crate::domain::time::GraphTime;

pub const REQUEST_SCHEMA: &str = "m365-ingest.remediation.v1";
pub const RESULT_SCHEMA: &str = "m365-ingest.remediation-result.v1";
/// A request's body is small; anything near this is not one.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
pub const MAX_REASON_CHARS: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `POST /users/{id}/revokeSignInSessions` (user-revokesigninsessions.md).
    RevokeSessions,
    /// `PATCH /users/{id}` with `accountEnabled: false` (user-update.md).
    DisableAccount,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::RevokeSessions => "revoke_sessions",
            Action::DisableAccount => "disable_account",
        }
    }
}

/// What a downstream system asks for (`m365-ingest.remediation.v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationRequest {
    pub schema: String,
    /// The caller's id of this request: the same id again is the same request (acknowledged
    /// with its first outcome, never done twice).
    pub request_id: String,
    pub integration_id: String,
    pub action: Action,
    /// The user's Entra object id or UPN.
    pub user: String,
    /// The alert this acts on (its `dedup_key`, or its id).
    pub alert_ref: String,
    pub reason: String,
    /// Who asks (a system's name), for the audit.
    pub requested_by: String,
    /// Only say what would be done.
    #[serde(default)]
    pub dry_run: bool,
}

impl RemediationRequest {
    /// Reads and checks a request; every problem names its field.
    pub fn parse(body: &str) -> Result<RemediationRequest, Vec<FieldError>> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(vec![FieldError {
                field: "(request)".into(),
                problem: format!("is {} bytes; at most {MAX_REQUEST_BYTES}", body.len()),
            }]);
        }
        let de = &mut serde_json::Deserializer::from_str(body);
        let r: RemediationRequest = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            vec![FieldError { field: if field == "." { "(request)".into() } else { field }, problem: e.into_inner().to_string() }]
        })?;
        let mut errors = Vec::new();
        let mut bad = |field: &str, problem: String| errors.push(FieldError { field: field.into(), problem });
        if r.schema != REQUEST_SCHEMA {
            bad("schema", format!("`{}` is not {REQUEST_SCHEMA}", r.schema));
        }
        let token = |v: &str| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/@".contains(c));
        if !token(&r.request_id) {
            bad("request_id", "must be 1 to 128 letters, digits or - _ . : / @ (the caller's id of this request)".into());
        }
        if !token(&r.integration_id) {
            bad("integration_id", "must name a configured integration".into());
        }
        if !is_guid(&r.user) && !is_upn(&r.user) {
            bad("user", format!("`{}` is neither an Entra object id (GUID) nor a user principal name", r.user));
        }
        if r.alert_ref.trim().is_empty() || r.alert_ref.len() > 512 {
            bad("alert_ref", "must name the alert this acts on (its dedup_key or id), at most 512 characters".into());
        }
        if r.reason.trim().is_empty() || r.reason.chars().count() > MAX_REASON_CHARS {
            bad("reason", format!("must say why, in 1 to {MAX_REASON_CHARS} characters"));
        }
        if r.requested_by.trim().is_empty() || r.requested_by.len() > 128 {
            bad("requested_by", "must name the system asking, at most 128 characters".into());
        }
        if errors.is_empty() {
            Ok(r)
        } else {
            Err(errors)
        }
    }
}

fn is_guid(v: &str) -> bool {
    v.len() == 36 && v.chars().enumerate().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

fn is_upn(v: &str) -> bool {
    v.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !v.contains(char::is_whitespace) && v.len() <= 256)
}

/// An integration's rules for the remediator (`[remediation]` in its document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationDoc {
    /// `dry_run` (the default: every request only says what it would do) or `enforce`.
    pub mode: RemediationMode,
    /// The actions allowed.
    pub actions: Vec<Action>,
    /// Users (object ids or UPNs) never acted on: break-glass accounts.
    pub protected_users: Vec<String>,
    /// Groups (object ids) whose members, direct or nested, are never acted on.
    pub protected_groups: Vec<String>,
    /// Holders of a privileged directory role are never acted on (on by default).
    pub protect_privileged_roles: bool,
    /// When set, only members of these groups (object ids) are acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_groups: Option<Vec<String>>,
    /// Actions done (not dry runs, not refusals) per tenant per hour at most.
    pub max_actions_per_hour: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemediationMode {
    #[default]
    DryRun,
    Enforce,
}

impl Default for RemediationDoc {
    fn default() -> Self {
        RemediationDoc {
            mode: RemediationMode::DryRun,
            actions: vec![Action::RevokeSessions, Action::DisableAccount],
            protected_users: Vec::new(),
            protected_groups: Vec::new(),
            protect_privileged_roles: true,
            allowed_groups: None,
            max_actions_per_hour: 10,
        }
    }
}

impl RemediationDoc {
    /// Problems of the rules, named `remediation.<field>`.
    pub fn problems(&self, enabled: bool) -> Vec<FieldError> {
        let mut out = Vec::new();
        let mut bad = |field: &str, problem: String| out.push(FieldError { field: format!("remediation.{field}"), problem });
        for (i, u) in self.protected_users.iter().enumerate() {
            if !is_guid(u) && !is_upn(u) {
                bad(&format!("protected_users[{i}]"), format!("`{u}` is neither an object id nor a user principal name"));
            }
        }
        for (i, g) in self.protected_groups.iter().enumerate() {
            if !is_guid(g) {
                bad(&format!("protected_groups[{i}]"), format!("`{g}` must be a group's object id (GUID)"));
            }
        }
        for (i, g) in self.allowed_groups.iter().flatten().enumerate() {
            if !is_guid(g) {
                bad(&format!("allowed_groups[{i}]"), format!("`{g}` must be a group's object id (GUID)"));
            }
        }
        if self.allowed_groups.as_ref().is_some_and(Vec::is_empty) {
            bad("allowed_groups", "is empty, which would allow nobody; list groups or leave it out".into());
        }
        if !(1..=1_000).contains(&self.max_actions_per_hour) {
            bad("max_actions_per_hour", format!("{} is outside 1..1000", self.max_actions_per_hour));
        }
        if self.actions.is_empty() {
            bad("actions", "is empty; list revoke_sessions and/or disable_account, or turn features.remediation off".into());
        }
        if !enabled && self.mode == RemediationMode::Enforce {
            bad("mode", "is enforce while features.remediation is false; enable the feature or leave the mode out".into());
        }
        out
    }
}

/// What the directory says of the user a request names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    pub upn: String,
    pub account_enabled: Option<bool>,
    pub user_type: Option<String>,
    /// (role template id, display name) of the directory roles held, nested ones included.
    pub roles: Vec<(String, String)>,
    /// Group object ids, nested ones included.
    pub groups: Vec<String>,
    /// Memberships were left unread (more pages than read): protection cannot be proved.
    pub memberships_incomplete: bool,
    /// Every role granted to the user or a role-assignable group it is in, read from role
    /// management: what `roles` (directory roles, tenant-wide and active only) leaves out.
    pub grants: Vec<RoleGrant>,
    /// Why the grants could not all be read (the permission to add, or the cause), if so.
    pub grants_unread: Option<String>,
}

/// A role granted at a scope, as role management lists it (unifiedroleassignment.md,
/// unifiedroleeligibilityscheduleinstance.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleGrant {
    /// `roleDefinitionId`: a built-in role's template id, or a custom role's own id.
    pub role_id: String,
    pub name: String,
    /// `directoryScopeId`: `/` for the tenant, `/administrativeUnits/{id}` for one unit.
    pub scope: String,
    /// Eligible through Privileged Identity Management (activated when needed), not active.
    pub eligible: bool,
    /// Held through this role-assignable group, not directly.
    pub via_group: Option<String>,
    /// A custom role (`isBuiltIn` false, or a definition Graph would not show).
    pub custom: bool,
}

impl RoleGrant {
    /// How the grant is held, for a refusal's reason.
    fn held(&self) -> String {
        let mut how = vec![if self.eligible { "eligible through PIM" } else { "active" }.to_owned()];
        if self.scope != "/" {
            how.push(format!("at scope {}", self.scope));
        }
        if let Some(g) = &self.via_group {
            how.push(format!("through the role-assignable group {g}"));
        }
        how.join(", ")
    }
}

/// Why a request was not carried out; `code` is stable for machines, `reason` for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: String,
    pub reason: String,
}

impl Refusal {
    pub fn new(code: &str, reason: impl Into<String>) -> Self {
        Refusal { code: code.into(), reason: reason.into() }
    }
}

/// The rules applied to a user, in order: protected users, privileged roles, protected groups,
/// the allow-list. Memberships left unread refuse when any group rule is on (nothing is done to
/// a user who might be protected).
pub fn guard(doc: &RemediationDoc, t: &Target) -> Result<(), Refusal> {
    let named = |u: &String| u.eq_ignore_ascii_case(&t.id) || u.eq_ignore_ascii_case(&t.upn);
    if doc.protected_users.iter().any(named) {
        return Err(Refusal::new("protected_user", format!("{} is in remediation.protected_users (a break-glass account)", t.upn)));
    }
    if doc.protect_privileged_roles {
        // Without Directory.Read.All Graph lists a role "with limited information", its id and
        // type only (user-list-transitivememberof.md): a role that cannot be named may be Global
        // Administrator, so it protects the user.
        if t.roles.iter().any(|(template, _)| template.trim().is_empty()) {
            return Err(Refusal::new(
                "unnamed_role",
                format!(
                    "{} holds a directory role Graph would not name to this app (limited information: the app lacks \
                     Directory.Read.All and RoleManagement.Read.Directory), so it may be privileged; nothing was done \
                     (grant Directory.Read.All and RoleManagement.Read.Directory back)",
                    t.upn
                ),
            ));
        }
        if let Some((_, name)) = t.roles.iter().find(|(template, _)| is_privileged(template)) {
            return Err(Refusal::new(
                "privileged_role",
                format!(
                    "{} holds the privileged role {name}; holders of privileged roles are protected (remediation.protect_privileged_roles)",
                    t.upn
                ),
            ));
        }
        // An eligible admin is one activation away from the role, and an administrative unit's
        // admin holds it over that unit's users: both are protected like an active one.
        if let Some(g) = t.grants.iter().find(|g| is_privileged(&g.role_id)) {
            return Err(Refusal::new(
                "privileged_role",
                format!(
                    "{} holds the privileged role {} ({}); holders of privileged roles are protected (remediation.protect_privileged_roles)",
                    t.upn,
                    g.name,
                    g.held()
                ),
            ));
        }
        if let Some(why) = &t.grants_unread {
            return Err(Refusal::new(
                "roles_unknown",
                format!("{}'s role assignments could not be read ({why}), so it may hold a privileged role; nothing was done", t.upn),
            ));
        }
        // Microsoft labels only built-in roles privileged; a custom role may carry the same
        // permissions, so its holder is protected.
        if let Some(g) = t.grants.iter().find(|g| g.custom) {
            return Err(Refusal::new(
                "custom_role",
                format!(
                    "{} holds the custom role {} ({}); custom roles are not labelled privileged or not, so their holders are \
                     protected (remediation.protect_privileged_roles; act on such a user yourself)",
                    t.upn,
                    if g.name.is_empty() { &g.role_id } else { &g.name },
                    g.held()
                ),
            ));
        }
    }
    let group_rules = !doc.protected_groups.is_empty() || doc.allowed_groups.is_some() || doc.protect_privileged_roles;
    if t.memberships_incomplete && group_rules {
        return Err(Refusal::new(
            "memberships_unknown",
            format!("{}'s memberships could not all be read, so its protection cannot be proved; nothing was done", t.upn),
        ));
    }
    let member = |g: &String| t.groups.iter().any(|x| x.eq_ignore_ascii_case(g));
    if let Some(g) = doc.protected_groups.iter().find(|g| member(g)) {
        return Err(Refusal::new("protected_group", format!("{} is a member of the protected group {g}", t.upn)));
    }
    if let Some(allowed) = &doc.allowed_groups {
        if !allowed.iter().any(member) {
            return Err(Refusal::new("not_allowed", format!("{} is in none of remediation.allowed_groups", t.upn)));
        }
    }
    Ok(())
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Microsoft carried it out.
    Done,
    /// Checked and allowed; not carried out (the integration's mode or the request's `dry_run`).
    DryRun,
    /// Not carried out: a guard rail, or Microsoft's refusal (`refusal` says which).
    Refused,
    /// The request itself is not valid (`refusal` names the fields).
    Rejected,
    /// Microsoft failed in a way that may pass: SQS delivers the request again.
    Failed,
}

/// The audit record and result message of one request (`m365-ingest.remediation-result.v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationResult {
    pub schema: String,
    pub request_id: String,
    pub integration_id: String,
    pub action: Option<Action>,
    pub user: String,
    /// The user's object id, once the directory was asked.
    pub user_id: Option<String>,
    pub alert_ref: String,
    pub reason: String,
    pub requested_by: String,
    /// Who really sent the request: the SQS `SenderId` of its message (the IAM principal, a
    /// role's id and session), beside `requested_by`, which the request only claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_by: Option<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
    /// A repeat of a request already handled: this is its first outcome, unchanged.
    #[serde(default)]
    pub repeated: bool,
    pub at: GraphTime,
}

#[cfg(test)]
mod tests {
    use crate::domain::response::remediation::*;

    fn target() -> Target {
        Target {
            id: "86462606-fde0-4fc4-9e0c-a20eb73e54c6".into(),
            upn: "alexw@contoso.com".into(),
            groups: vec!["11111111-1111-1111-1111-111111111111".into()],
            ..Target::default()
        }
    }

    #[test]
    fn each_guard_rail_refuses_with_its_code() {
        let d = RemediationDoc::default();
        assert_eq!(guard(&d, &target()), Ok(()));
        let mut t = target();
        t.roles = vec![("62e90394-69f5-4237-9190-012177145e10".into(), "Global Administrator".into())];
        assert_eq!(guard(&d, &t).unwrap_err().code, "privileged_role");
        assert_eq!(guard(&RemediationDoc { protect_privileged_roles: false, ..d.clone() }, &t), Ok(()), "when turned off");
        let break_glass = RemediationDoc { protected_users: vec!["ALEXW@contoso.com".into()], ..d.clone() };
        assert_eq!(guard(&break_glass, &target()).unwrap_err().code, "protected_user");
        let groups = RemediationDoc { protected_groups: vec!["11111111-1111-1111-1111-111111111111".into()], ..d.clone() };
        assert_eq!(guard(&groups, &target()).unwrap_err().code, "protected_group");
        let allow = RemediationDoc { allowed_groups: Some(vec!["22222222-2222-2222-2222-222222222222".into()]), ..d.clone() };
        assert_eq!(guard(&allow, &target()).unwrap_err().code, "not_allowed");
        let mut unknown = target();
        unknown.memberships_incomplete = true;
        assert_eq!(guard(&d, &unknown).unwrap_err().code, "memberships_unknown");
    }

    #[test]
    fn a_request_names_every_bad_field() {
        let ok = r#"{"schema":"m365-ingest.remediation.v1","request_id":"soar-1","integration_id":"contoso","action":"disable_account","user":"alexw@contoso.com","alert_ref":"defender_alerts/t/a/v","reason":"credential theft","requested_by":"soar"}"#;
        assert!(RemediationRequest::parse(ok).is_ok_and(|r| !r.dry_run && r.action == Action::DisableAccount));
        let bad = ok.replace("alexw@contoso.com", "alex w").replace("credential theft", " ").replace("soar-1", "");
        let fields: Vec<String> = RemediationRequest::parse(&bad).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["request_id", "user", "reason"]);
        let e = RemediationRequest::parse(&ok.replace("disable_account", "delete_user")).unwrap_err();
        assert_eq!(e[0].field, "action");
        let e = RemediationRequest::parse(&ok.replace("\"reason\"", "\"note\":1,\"reason\"")).unwrap_err();
        assert!(e[0].problem.contains("unknown field"), "{e:?}");
    }

    #[test]
    fn rules_are_checked_at_save() {
        let d = RemediationDoc {
            protected_groups: vec!["x".into()],
            allowed_groups: Some(vec![]),
            mode: RemediationMode::Enforce,
            ..RemediationDoc::default()
        };
        let fields: Vec<String> = d.problems(false).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["remediation.protected_groups[0]", "remediation.allowed_groups", "remediation.mode"]);
        assert!(RemediationDoc::default().problems(true).is_empty());
    }
}
