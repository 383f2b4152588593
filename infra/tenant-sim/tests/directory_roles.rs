//! Role management as Graph serves it (issue 29 §3): what `transitiveMemberOf` does not show
//! (an administrative unit's admin, a PIM-eligible one, a role held through a role-assignable
//! group, a custom role) is in the role assignments and eligibilities, each behind its own
//! permissions, and eligibilities only where PIM is licensed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{fixed_scenario, Harness, TENANT};
use serde_json::Value;
use tenant_sim::graph::people::group_id;
use tenant_sim::graph::roles::{ADMIN_UNIT, CUSTOM_ROLE, ROLE_GROUP};
use tenant_sim::scenario::EntraLicense;
use tenant_sim::Scenario;

const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
const PRIVILEGED_ROLE_ADMIN: &str = "e8611ab8-c189-46e8-94e1-60213ab1f814";
const ASSIGNMENTS: &str = "/v1.0/roleManagement/directory/roleAssignments";
const ELIGIBILITIES: &str = "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances";

fn principal(id: &str) -> String {
    format!("?$filter=principalId%20eq%20'{id}'")
}

fn with_graph_grants(grants: &[&str]) -> Scenario {
    let mut s = fixed_scenario();
    s.tenants[0].apps[0].grants.insert("graph".into(), grants.iter().map(|g| (*g).to_owned()).collect());
    s
}

async fn values(h: &Harness, path: &str) -> Vec<Value> {
    let t = h.graph_token().await;
    let (status, _, body) = h.get(path, &t, false).await;
    assert_eq!(status, 200, "{path}: {body}");
    body["value"].as_array().unwrap().clone()
}

#[tokio::test]
async fn assignments_show_an_administrative_units_admin_and_eligibilities_the_pim_ones() {
    let h = Harness::start(fixed_scenario()).await;
    let people = h.sim.people(TENANT);
    let scoped = values(&h, &format!("{ASSIGNMENTS}{}", principal(&people[8].0))).await;
    assert_eq!(scoped.len(), 1);
    assert_eq!(scoped[0]["directoryScopeId"], format!("/administrativeUnits/{ADMIN_UNIT}"));
    let custom = values(&h, &format!("{ASSIGNMENTS}{}", principal(&people[10].0))).await;
    assert_eq!(custom[0]["roleDefinitionId"], CUSTOM_ROLE.0);
    // An eligibility is not an assignment, and the reverse.
    assert!(values(&h, &format!("{ASSIGNMENTS}{}", principal(&people[7].0))).await.is_empty());
    let eligible = values(&h, &format!("{ELIGIBILITIES}{}", principal(&people[7].0))).await;
    assert_eq!((eligible.len(), eligible[0]["roleDefinitionId"].as_str()), (1, Some(GLOBAL_ADMIN)));
    // A role-assignable group's eligibility is the group's: its members show it only through the group.
    assert!(values(&h, &format!("{ELIGIBILITIES}{}", principal(&people[9].0))).await.is_empty());
    let group = values(&h, &format!("{ELIGIBILITIES}{}", principal(&group_id(ROLE_GROUP)))).await;
    assert_eq!(group[0]["roleDefinitionId"], PRIVILEGED_ROLE_ADMIN);
    let t = h.graph_token().await;
    let (_, _, member_of) = h.get(&format!("/v1.0/users/{}/transitiveMemberOf", people[9].0), &t, false).await;
    let assignable: Vec<&Value> =
        member_of["value"].as_array().unwrap().iter().filter(|m| m["isAssignableToRole"] == Value::Bool(true)).collect();
    assert_eq!(assignable.len(), 1);
    assert_eq!(assignable[0]["id"], group_id(ROLE_GROUP));
    // A definition says whether it is built in.
    let (status, _, def) = h
        .get(&format!("/v1.0/roleManagement/directory/roleDefinitions/{}?$select=id,displayName,isBuiltIn", CUSTOM_ROLE.0), &t, false)
        .await;
    assert_eq!((status, &def["isBuiltIn"]), (200, &Value::Bool(false)));
    assert!(def.get("description").is_none(), "$select is honoured");
}

#[tokio::test]
async fn eligibilities_need_pim_s_licence_and_their_own_permission() {
    let mut s = fixed_scenario();
    s.tenants[0].entra_license = EntraLicense::P1;
    let h = Harness::start(s).await;
    let t = h.graph_token().await;
    let (status, _, body) = h.get(&format!("{ELIGIBILITIES}{}", principal(&h.sim.people(TENANT)[7].0)), &t, false).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("AadPremiumLicenseRequired")), "{body}");

    // Directory.Read.All reads assignments, not eligibilities.
    let h = Harness::start(with_graph_grants(&["Directory.Read.All"])).await;
    let t = h.graph_token().await;
    let user = h.sim.people(TENANT)[7].0.clone();
    assert_eq!(h.get(&format!("{ASSIGNMENTS}{}", principal(&user)), &t, false).await.0, 200);
    assert_eq!(h.get(&format!("{ELIGIBILITIES}{}", principal(&user)), &t, false).await.0, 403);
    let h = Harness::start(with_graph_grants(&["User.Read.All"])).await;
    let t = h.graph_token().await;
    assert_eq!(h.get(&format!("{ASSIGNMENTS}{}", principal(&user)), &t, false).await.0, 403);
}
