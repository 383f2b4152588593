//! The roles a user holds as role management lists them (issue 29 §3), for the remediation
//! guard: active assignments (rbacapplication-list-roleassignments.md) and PIM eligibilities
//! (rbacapplication-list-roleeligibilityscheduleinstances.md) of the user and of each
//! role-assignable group it is in, at every scope, and whether each role is built in
//! (unifiedroledefinition-get.md). `transitiveMemberOf` shows only active tenant-wide roles.
//!
//! One permission reads all three: RoleManagement.Read.Directory (the assignments' least
//! privileged, among the eligibilities' and the definitions' higher ones).

use std::collections::BTreeMap;

use serde_json::Value;

use super::auth::Audience;
use super::client::{Call, MicrosoftHttp};
use super::settings::HttpSettings;
use crate::domain::integration::Credentials;
use crate::domain::processing::directory_roles::is_privileged;
use crate::domain::response::remediation::{RoleGrant, Target};
use crate::error::GraphError;

const GRAPH: &str = "Graph";
/// Principals asked about: the user and the role-assignable groups it is in. Entra allows
/// few such groups; a user in more (or in groups Graph would not describe) is left unproven.
pub const MAX_PRINCIPALS: usize = 20;
/// Pages of one principal's grants followed.
const MAX_PAGES: usize = 5;
pub const PERMISSION: &str = "RoleManagement.Read.Directory";

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Why the grants could not be read, or Microsoft's error to report as is.
enum Unread {
    Why(String),
    Failed(GraphError),
}

impl From<GraphError> for Unread {
    fn from(e: GraphError) -> Self {
        match e {
            GraphError::Http { status: 403, .. } => Unread::Why(format!("Graph refused: the app needs {PERMISSION}")),
            e => Unread::Failed(e),
        }
    }
}

impl MicrosoftHttp {
    /// Fills `t.grants`, or `t.grants_unread` with why not. `groups` are (id, isAssignableToRole
    /// when Graph said) from `transitiveMemberOf`; a group it would not describe may hold roles.
    pub(super) async fn read_grants(
        &self,
        creds: &Credentials,
        t: &mut Target,
        groups: &[(String, Option<bool>)],
    ) -> Result<(), GraphError> {
        if groups.iter().any(|(id, _)| id.is_empty()) {
            t.grants_unread = Some("Graph listed a group without its id; grant GroupMember.Read.All or Directory.Read.All".into());
            return Ok(());
        }
        // Groups the user may join through PIM for Groups hold their roles for it too: they show
        // neither in its memberships nor in role eligibilities by its id.
        let mut groups = groups.to_vec();
        let filter = enc(&format!("principalId eq '{}'", t.id.replace('\'', "''")));
        match self
            .all(creds, &format!("/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances?$filter={filter}"))
            .await
        {
            Ok(items) => {
                groups.extend(items.iter().filter_map(|i| i.get("groupId").and_then(Value::as_str)).map(|g| (g.to_ascii_lowercase(), None)))
            }
            Err(GraphError::Http { status: 400, code, .. }) if code == "AadPremiumLicenseRequired" => {}
            Err(GraphError::Http { status: 403, .. }) => {
                t.grants_unread = Some(
                    "Graph refused PIM for Groups eligibilities: the app needs PrivilegedEligibilitySchedule.Read.AzureADGroup".into(),
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let mut principals = vec![(t.id.clone(), None)];
        principals.extend(groups.iter().filter(|(_, assignable)| *assignable != Some(false)).map(|(id, _)| (id.clone(), Some(id.clone()))));
        if principals.len() > MAX_PRINCIPALS {
            t.grants_unread = Some(format!(
                "the user is in {} groups that may be role-assignable and at most {} are read; Graph says which are with \
                 GroupMember.Read.All or Directory.Read.All (`isAssignableToRole`), so grant one",
                principals.len() - 1,
                MAX_PRINCIPALS - 1
            ));
            return Ok(());
        }
        match self.grants_of(creds, &principals).await {
            Ok(grants) => {
                t.grants = grants;
                Ok(())
            }
            Err(Unread::Why(why)) => {
                t.grants_unread = Some(why);
                Ok(())
            }
            Err(Unread::Failed(e)) => Err(e),
        }
    }

    async fn grants_of(&self, creds: &Credentials, principals: &[(String, Option<String>)]) -> Result<Vec<RoleGrant>, Unread> {
        let mut grants = Vec::new();
        let mut pim = true;
        for (id, via_group) in principals {
            let filter = enc(&format!("principalId eq '{}'", id.replace('\'', "''")));
            for item in self.all(creds, &format!("/v1.0/roleManagement/directory/roleAssignments?$filter={filter}")).await? {
                grants.push(grant(&item, false, via_group));
            }
            if !pim {
                continue;
            }
            let url = format!("/v1.0/roleManagement/directory/roleEligibilityScheduleInstances?$filter={filter}");
            match self.all(creds, &url).await {
                Ok(items) => grants.extend(items.iter().map(|i| grant(i, true, via_group))),
                // A tenant without PIM's licence has no eligibility to activate (the 400 callers
                // meet: maester365/maester#1421).
                Err(GraphError::Http { status: 400, code, .. }) if code == "AadPremiumLicenseRequired" => pim = false,
                Err(e) => return Err(e.into()),
            }
        }
        // Each role not labelled privileged: built in, or custom (which may be as strong).
        let mut definitions: BTreeMap<String, (String, bool)> = BTreeMap::new();
        for g in grants.iter().filter(|g| !g.role_id.is_empty() && !is_privileged(&g.role_id)) {
            if definitions.contains_key(&g.role_id) {
                continue;
            }
            let url = self
                .graph_url(&format!("/v1.0/roleManagement/directory/roleDefinitions/{}?$select=id,displayName,isBuiltIn", enc(&g.role_id)));
            let described = match self.send(creds, &Call::get(GRAPH, Audience::Graph, &url)).await {
                Ok(body) => {
                    let d: Value =
                        serde_json::from_slice(&body).map_err(|e| GraphError::Decode { what: GRAPH.into(), detail: e.to_string() })?;
                    let name = d.get("displayName").and_then(Value::as_str).unwrap_or_default().to_owned();
                    (name, d.get("isBuiltIn").and_then(Value::as_bool) != Some(true))
                }
                Err(GraphError::Http { status: 404, .. }) => (String::new(), true),
                Err(e) => return Err(e.into()),
            };
            definitions.insert(g.role_id.clone(), described);
        }
        for g in &mut grants {
            if g.role_id.is_empty() {
                g.custom = true;
            } else if let Some((name, custom)) = definitions.get(&g.role_id) {
                g.name.clone_from(name);
                g.custom = *custom;
            } else if let Some((_, name)) =
                crate::domain::processing::directory_roles::PRIVILEGED_ROLES.iter().find(|(id, _)| id.eq_ignore_ascii_case(&g.role_id))
            {
                g.name = (*name).to_owned();
            }
        }
        Ok(grants)
    }

    /// Every item of a collection, following next links on Graph's origin only.
    async fn all(&self, creds: &Credentials, path: &str) -> Result<Vec<Value>, GraphError> {
        let mut items = Vec::new();
        let mut next = Some(self.graph_url(path));
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else { return Ok(items) };
            let body = self.send(creds, &Call::get(GRAPH, Audience::Graph, &url)).await?;
            let page: Value =
                serde_json::from_slice(&body).map_err(|e| GraphError::Decode { what: GRAPH.into(), detail: e.to_string() })?;
            items.extend(page.get("value").and_then(Value::as_array).into_iter().flatten().cloned());
            next = match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(n) if HttpSettings::same_origin(n, &self.settings.graph_base_url) => Some(n.to_owned()),
                Some(_) => return Err(GraphError::Decode { what: GRAPH.into(), detail: "a nextLink points to another host".into() }),
                None => None,
            };
        }
        match next {
            None => Ok(items),
            Some(_) => {
                Err(GraphError::Decode { what: GRAPH.into(), detail: format!("one principal's role grants ran past {MAX_PAGES} pages") })
            }
        }
    }
}

fn grant(item: &Value, eligible: bool, via_group: &Option<String>) -> RoleGrant {
    let text = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let scope = text("directoryScopeId");
    RoleGrant {
        role_id: text("roleDefinitionId").to_ascii_lowercase(),
        name: String::new(),
        scope: if scope.is_empty() { "/".into() } else { scope },
        eligible,
        via_group: via_group.clone(),
        custom: false,
    }
}
