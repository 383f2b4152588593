//! A user's context: the section's `users` entries, and what Graph's answers about a user
//! (the profile with its manager, directory roles and groups, MFA registration, recent
//! sign-ins) become.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::calendar::{AutoReplies, Presence, ScheduleAtAlert};
use super::fields::{flag, strings, text};
use crate::domain::processing::directory_roles::is_privileged;

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::domain::processing::context::user::*;

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
    fn the_documented_registration_and_sign_in_samples_shape_as_expected() {
        let reg: Value =
            serde_json::from_str(include_str!("../../../../tests/fixtures/microsoft-docs/graph_userregistrationdetails_list.json"))
                .unwrap_or_default();
        let m = mfa_of(&reg["value"][0]);
        assert_eq!((m.is_mfa_registered, m.preferred_method.as_deref()), (Some(true), Some("push")));
        assert_eq!(m.methods_registered, vec!["microsoftAuthenticatorPush", "softwareOneTimePasscode"]);
        let signins: Value =
            serde_json::from_str(include_str!("../../../../tests/fixtures/microsoft-docs/graph_signins_list.json")).unwrap_or_default();
        let s = sign_ins_of(signins["value"].as_array().map_or(&[][..], Vec::as_slice), 10);
        assert_eq!((s[0].error_code, s[0].city.as_deref(), s[0].app.as_deref()), (Some(0), Some("Redmond"), Some("Graph explorer")));
    }
}
