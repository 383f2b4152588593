//! The remediator (issue 14) against the simulated tenant: each guard rail refuses with its
//! code and nothing reaches Microsoft's write endpoints, a dry run says what it would do, the
//! hourly cap holds, a repeated request is acknowledged and not repeated, Microsoft's refusal to
//! let a plain app change an admin is a clear refusal, and every outcome is an audit record and
//! a result message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::Arc;

use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::adapters::local::{MemoryAlertQueue, MemoryEvidenceJobs, StaticIntegrations, StaticSecretSource};
use m365_ingest::app::response::remediate::{Handled, RemediateSettings, Remediator};
use m365_ingest::domain::integration::Integration;
use m365_ingest::domain::response::remediation::{Action, RemediationDoc, RemediationMode, RemediationResult, Status};
use m365_ingest::ports::evidence::EvidenceJobStore;
use m365_ingest::ports::remediation::{RemediateWith, RequestRecord};
use serde_json::{json, Value};
use support::*;
use tenant_sim::faults::{FaultKind, FaultSpec};
use tenant_sim::graph::people::group_id;
use tenant_sim::{Scenario, Simulator};

type Local = Remediator<
    RemediateWith<Arc<MemoryEvidenceJobs>, MicrosoftHttp, Arc<MemoryAlertQueue>, StaticSecretSource, StaticIntegrations, SimTime>,
>;

struct Bench {
    sim: Arc<Simulator>,
    r: Local,
    records: Arc<MemoryEvidenceJobs>,
    results: Arc<MemoryAlertQueue>,
    people: Vec<(String, String)>,
}

async fn bench(rules: RemediationDoc, enabled: bool) -> Bench {
    bench_in(fixed(Scenario::default()), rules, enabled).await
}

async fn bench_in(scenario: Scenario, rules: RemediationDoc, enabled: bool) -> Bench {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let sim = Arc::new(Simulator::start(scenario).await.unwrap());
    let mut i: Integration = integration();
    i.features.remediation = enabled;
    i.remediation = rules;
    let records = Arc::new(MemoryEvidenceJobs::new());
    let results = Arc::new(MemoryAlertQueue::new());
    let r = Remediator {
        records: records.clone(),
        directory: MicrosoftHttp::new(&HttpSettings::simulator(sim.base_url(), sim.ca_pem()), RetryPolicy::quick()).unwrap(),
        results: results.clone(),
        secrets: StaticSecretSource::new().with("contoso-secret", secret_creds()),
        integrations: StaticIntegrations(vec![i]),
        clock: SimTime(sim.clone()),
        settings: RemediateSettings::default(),
    };
    let people = sim.people(TENANT);
    Bench { sim, r, records, results, people }
}

fn enforce() -> RemediationDoc {
    RemediationDoc { mode: RemediationMode::Enforce, ..RemediationDoc::default() }
}

fn request(id: &str, action: Action, user: &str) -> String {
    json!({"schema": "m365-ingest.remediation.v1", "request_id": id, "integration_id": "contoso", "action": action,
        "user": user, "alert_ref": "defender_alerts/t/da1/2026-11-26T11:00:00.0000000Z", "reason": "token theft on the alert's device",
        "requested_by": "soar"})
    .to_string()
}

impl Bench {
    async fn run(&self, body: &str) -> RemediationResult {
        match self.r.handle(body).await {
            Handled::Ended(r) => *r,
            Handled::Retry(why) => panic!("retry: {why}"),
        }
    }

    /// Requests that reached Microsoft's write endpoints.
    fn writes(&self) -> usize {
        self.sim.requests().all().iter().filter(|r| r.method == "PATCH" || r.path.ends_with("/revokeSignInSessions")).count()
    }

    fn announced(&self) -> Vec<RemediationResult> {
        self.results.messages().iter().map(|m| serde_json::from_str(m).unwrap()).collect()
    }

    async fn audit(&self, key: &str) -> RemediationResult {
        let (rec, _): (RequestRecord, u64) = self.records.get(key).await.unwrap().expect("an audit record");
        rec.result.expect("with its result")
    }
}

fn code(r: &RemediationResult) -> &str {
    r.refusal.as_ref().map_or("", |x| x.code.as_str())
}

#[tokio::test]
async fn enforced_actions_reach_microsoft_and_are_audited_once() {
    let b = bench(enforce(), true).await;
    let (alice, bob) = (b.people[5].clone(), b.people[6].clone());
    let r = b.run(&request("r1", Action::RevokeSessions, &alice.1)).await;
    assert_eq!((r.status, r.user_id.as_deref()), (Status::Done, Some(alice.0.as_str())));
    assert!(b.sim.sessions_revoked_at(&alice.0).is_some());
    let d = b.run(&request("r2", Action::DisableAccount, &bob.0)).await;
    assert_eq!(d.status, Status::Done);
    assert!(b.sim.account_disabled(&bob.0));
    // The same request again is acknowledged with its first outcome and not repeated.
    let again = b.run(&request("r1", Action::RevokeSessions, &alice.1)).await;
    assert!(again.repeated && again.status == Status::Done);
    assert_eq!(b.writes(), 2);
    assert_eq!(b.audit("remediation/contoso/r1").await.status, Status::Done);
    let announced = b.announced();
    assert_eq!(announced.len(), 3, "every outcome is announced, the repeat too");
    assert!(announced[2].repeated);
}

#[tokio::test]
async fn remediation_is_off_unless_the_integration_enables_it() {
    let b = bench(enforce(), false).await;
    let r = b.run(&request("r1", Action::DisableAccount, &b.people[5].1)).await;
    assert_eq!((r.status, code(&r)), (Status::Refused, "remediation_disabled"));
    assert_eq!(b.writes(), 0);
    assert_eq!(b.audit("remediation/contoso/r1").await.status, Status::Refused, "a refusal is audited too");
}

#[tokio::test]
async fn the_default_mode_is_a_dry_run_and_a_request_can_ask_for_one() {
    let b = bench(RemediationDoc::default(), true).await;
    let r = b.run(&request("r1", Action::DisableAccount, &b.people[5].1)).await;
    assert_eq!((r.status, code(&r)), (Status::DryRun, "dry_run"));
    let b = bench(enforce(), true).await;
    let mut asked: Value = serde_json::from_str(&request("r2", Action::DisableAccount, &b.people[5].1)).unwrap();
    asked["dry_run"] = json!(true);
    assert_eq!(b.run(&asked.to_string()).await.status, Status::DryRun);
    assert_eq!(b.writes(), 0);
    assert!(!b.sim.account_disabled(&b.people[5].0));
}

#[tokio::test]
async fn break_glass_accounts_are_never_touched() {
    let b = bench(enforce(), true).await;
    let glass = b.people[7].1.to_uppercase();
    let b = Bench {
        r: Remediator {
            integrations: StaticIntegrations(vec![{
                let mut i = integration();
                i.features.remediation = true;
                i.remediation = RemediationDoc { protected_users: vec![glass], ..enforce() };
                i
            }]),
            ..b.r
        },
        ..b
    };
    let r = b.run(&request("r1", Action::DisableAccount, &b.people[7].0)).await;
    assert_eq!(code(&r), "protected_user");
    assert_eq!(b.writes(), 0);
}

/// An app that lost Directory.Read.All after Test & Save: role management still names a Global
/// Administrator's role (RoleManagement.Read.Directory reads directory roles too), and a user
/// with no role is served. Lost with RoleManagement.Read.Directory as well, `transitiveMemberOf`
/// lists roles "with limited information", ids only (user-list-transitivememberof.md): a role
/// it cannot name protects the user, and so does a user whose grants cannot be read.
#[tokio::test]
async fn a_role_graph_will_not_name_protects_its_holder() {
    for lost in [&["Directory.Read.All"][..], &["Directory.Read.All", "RoleManagement.Read.Directory"]] {
        let mut s = fixed(Scenario::default());
        let graph = s.tenants[0].apps[0].grants.get_mut("graph").unwrap();
        graph.retain(|r| !lost.contains(&r.as_str()));
        if !graph.iter().any(|r| r == "User.Read.All") {
            graph.push("User.Read.All".into());
        }
        let b = bench_in(s, enforce(), true).await;
        let r = b.run(&request("r0", Action::DisableAccount, &b.people[0].1)).await;
        let five = b.run(&request("r5", Action::RevokeSessions, &b.people[5].1)).await;
        assert!(!b.sim.account_disabled(&b.people[0].0), "the Global Administrator is untouched");
        if lost.len() == 1 {
            assert_eq!((r.status, code(&r)), (Status::Refused, "privileged_role"), "{r:?}");
            assert_eq!(five.status, Status::Done);
            // Only role management knows an administrative unit's admin.
            let eight = b.run(&request("r8", Action::RevokeSessions, &b.people[8].1)).await;
            assert_eq!(code(&eight), "privileged_role", "{eight:?}");
        } else {
            assert_eq!((r.status, code(&r)), (Status::Refused, "unnamed_role"), "{r:?}");
            assert!(r.refusal.unwrap().reason.contains("Directory.Read.All"));
            assert_eq!(code(&five), "roles_unknown", "{five:?}");
        }
    }
}

#[tokio::test]
async fn holders_of_privileged_roles_are_protected_by_default() {
    let b = bench(enforce(), true).await;
    for (n, who) in [(0, "Global Administrator"), (1, "Security Administrator")] {
        let r = b.run(&request(&format!("r{n}"), Action::RevokeSessions, &b.people[n].1)).await;
        assert_eq!(code(&r), "privileged_role");
        assert!(r.refusal.unwrap().reason.contains(who));
    }
    // A role Microsoft does not label privileged protects nobody.
    assert_eq!(b.run(&request("r2", Action::RevokeSessions, &b.people[2].1)).await.status, Status::Done);
    assert_eq!(b.writes(), 1);
}

/// What `transitiveMemberOf` does not show (user-list-transitivememberof.md lists directory
/// roles: active and tenant-wide): the guard reads role management, so an admin eligible
/// through PIM, one through a role-assignable group's eligibility, an administrative unit's
/// admin and a custom role's holder are all protected; a built-in role not labelled privileged
/// still protects nobody.
#[tokio::test]
async fn eligible_scoped_group_held_and_custom_role_holders_are_protected() {
    let b = bench(enforce(), true).await;
    for (n, code_wanted, says) in [
        (7, "privileged_role", "Global Administrator (eligible through PIM)"),
        (8, "privileged_role", "User Administrator (active, at scope /administrativeUnits/"),
        (9, "privileged_role", "Privileged Role Administrator (eligible through PIM, through the role-assignable group"),
        (10, "custom_role", "Mailbox Helpers (custom)"),
        // Eligible through PIM for Groups to join a role-assignable group that is Global Administrator.
        (12, "privileged_role", "Global Administrator (active, through the role-assignable group"),
    ] {
        let r = b.run(&request(&format!("r{n}"), Action::DisableAccount, &b.people[n].1)).await;
        assert_eq!((r.status, code(&r)), (Status::Refused, code_wanted), "user {n}: {r:?}");
        assert!(r.refusal.as_ref().unwrap().reason.contains(says), "user {n}: {r:?}");
    }
    assert_eq!(b.run(&request("r2", Action::DisableAccount, &b.people[2].1)).await.status, Status::Done);
    assert_eq!(b.writes(), 1, "only the Message Center Reader was changed");
}

/// An app without RoleManagement.Read.Directory cannot prove a user holds no role: nothing is
/// done, and the refusal names the permission. A tenant without PIM's licence answers the
/// eligibilities with a 400 (no eligibility can be activated there): users are still served.
#[tokio::test]
async fn role_grants_that_cannot_be_read_protect_and_a_tenant_without_pim_is_served() {
    let mut s = fixed(Scenario::default());
    s.tenants[0].apps[0].grants.get_mut("graph").unwrap().retain(|r| r != "RoleManagement.Read.Directory" && r != "Directory.Read.All");
    let b = bench_in(s, enforce(), true).await;
    let r = b.run(&request("r5", Action::DisableAccount, &b.people[5].1)).await;
    assert_eq!((r.status, code(&r)), (Status::Refused, "roles_unknown"), "{r:?}");
    assert!(r.refusal.unwrap().reason.contains("RoleManagement.Read.Directory"));
    assert_eq!(b.writes(), 0);

    let mut s = fixed(Scenario::default());
    s.tenants[0].entra_license = tenant_sim::scenario::EntraLicense::P1;
    let b = bench_in(s, enforce(), true).await;
    assert_eq!(b.run(&request("r5", Action::DisableAccount, &b.people[5].1)).await.status, Status::Done);
    assert_eq!(code(&b.run(&request("r8", Action::DisableAccount, &b.people[8].1)).await), "privileged_role");
}

#[tokio::test]
async fn members_of_protected_groups_are_never_touched_and_the_allow_list_admits_only_its_members() {
    let protected = RemediationDoc { protected_groups: vec![group_id("All staff")], ..enforce() };
    let b = bench(protected, true).await;
    let r = b.run(&request("r1", Action::DisableAccount, &b.people[5].1)).await;
    assert_eq!(code(&r), "protected_group");
    assert_eq!(b.writes(), 0);

    // Only one department may be acted on: its member is, the others are refused.
    let (client, token) = graph_client(&b.sim).await;
    let dept = |id: &str| {
        let (client, token, base) = (client.clone(), token.clone(), b.sim.base_url().to_owned());
        let id = id.to_owned();
        async move {
            let u: Value = client.get(format!("{base}/v1.0/users/{id}")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
            u["department"].as_str().unwrap().to_owned()
        }
    };
    let finance_like = dept(&b.people[5].0).await;
    let allow = RemediationDoc { allowed_groups: Some(vec![group_id(&finance_like)]), ..enforce() };
    let b = bench(allow, true).await;
    let mut outside = None;
    // Users 7 to 10 and 12 hold roles (the simulator's roles module): past them.
    for (n, (id, _)) in b.people.iter().enumerate().skip(13) {
        if dept(id).await != finance_like {
            outside = Some(n);
            break;
        }
    }
    let outside = outside.expect("someone in another department");
    assert_eq!(code(&b.run(&request("r1", Action::DisableAccount, &b.people[outside].0)).await), "not_allowed");
    assert_eq!(b.run(&request("r2", Action::DisableAccount, &b.people[5].0)).await.status, Status::Done);
    assert_eq!(b.writes(), 1);
}

#[tokio::test]
async fn the_hourly_cap_holds_and_dry_runs_and_refusals_do_not_count() {
    let b = bench(RemediationDoc { max_actions_per_hour: 2, ..enforce() }, true).await;
    // A refusal and a dry run first: neither takes a slot.
    assert_eq!(code(&b.run(&request("x", Action::RevokeSessions, &b.people[0].1)).await), "privileged_role");
    let mut dry: Value = serde_json::from_str(&request("y", Action::RevokeSessions, &b.people[5].1)).unwrap();
    dry["dry_run"] = json!(true);
    assert_eq!(b.run(&dry.to_string()).await.status, Status::DryRun);
    let outcomes: Vec<(Status, String)> = {
        let mut v = Vec::new();
        for n in [5, 6, 11] {
            let r = b.run(&request(&format!("r{n}"), Action::RevokeSessions, &b.people[n].1)).await;
            v.push((r.status, code(&r).to_owned()));
        }
        v
    };
    assert_eq!(outcomes, vec![(Status::Done, String::new()), (Status::Done, String::new()), (Status::Refused, "rate_limited".into())]);
    assert_eq!(b.writes(), 2);
}

#[tokio::test]
async fn a_request_tried_again_keeps_its_slot_of_the_hourly_cap() {
    let b = bench(RemediationDoc { max_actions_per_hour: 1, ..enforce() }, true).await;
    let user = b.people[5].clone();
    // Microsoft fails the revocation beyond the client's retries: the request is to be tried
    // again, with its slot already taken.
    let path = format!("/v1.0/users/{}/revokeSignInSessions", user.0);
    b.sim.inject(FaultSpec::new(&path, FaultKind::Status { status: 503, retry_after_secs: None }).at_rate(1.0));
    let body = request("r1", Action::RevokeSessions, &user.1);
    assert!(matches!(b.r.handle(&body).await, Handled::Retry(_)));
    b.sim.clear_faults();
    assert_eq!(b.run(&body).await.status, Status::Done, "the retry is not refused by its own slot");
    assert!(b.writes() >= 2, "the failed attempt reached Microsoft too");
    // The cap of one is spent by that request alone.
    assert_eq!(code(&b.run(&request("r2", Action::RevokeSessions, &b.people[6].1)).await), "rate_limited");
}

#[tokio::test]
async fn microsofts_sensitive_action_rule_is_a_clear_refusal() {
    // Privileged-role protection off: the app (a Security Administrator itself) asks to disable
    // a Global Administrator, which only a Global or Privileged Authentication Administrator may.
    let b = bench(RemediationDoc { protect_privileged_roles: false, ..enforce() }, true).await;
    let r = b.run(&request("r1", Action::DisableAccount, &b.people[0].1)).await;
    assert_eq!((r.status, code(&r)), (Status::Refused, "insufficient_privileges"));
    assert!(r.refusal.unwrap().reason.contains("higher-privileged Entra role"));
    assert!(!b.sim.account_disabled(&b.people[0].0));
}

#[tokio::test]
async fn a_bad_request_is_rejected_naming_its_fields_and_audited() {
    let b = bench(enforce(), true).await;
    let body = request("r1", Action::DisableAccount, "not a user").replace("token theft on the alert's device", "");
    let r = b.run(&body).await;
    assert_eq!((r.status, code(&r)), (Status::Rejected, "invalid_request"));
    let why = &r.refusal.as_ref().unwrap().reason;
    assert!(why.contains("user:") && why.contains("reason:"), "{why}");
    assert_eq!(b.writes(), 0);
    assert_eq!(b.announced().len(), 1);
    let unknown = b.run(&request("r2", Action::DisableAccount, "ghost@contoso.onmicrosoft.com")).await;
    assert_eq!(code(&unknown), "user_not_found");
}

/// The remediate function's own adapters on moto: the audit record in the dedup table with its
/// TTL, the result on SQS, and a repeat answered from the record.
#[tokio::test]
async fn on_the_functions_adapters_the_audit_is_a_dynamodb_item_with_ttl_and_the_result_an_sqs_message() {
    use m365_ingest::adapters::aws::{DynamoEvidenceJobs, SqsAlertQueue};
    use support::moto;
    let stack = moto::stack().await;
    let c = stack.admin.clone();
    let role = stack.clients(moto::Principal::Remediate);
    let (table, url) = (stack.dedup_table().await, stack.queue("ActionsResultQueue").await);
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let sim = Arc::new(Simulator::start(fixed(Scenario::default())).await.unwrap());
    let mut i = integration();
    i.features.remediation = true;
    i.remediation = enforce();
    let r = Remediator::<RemediateWith<_, _, _, _, _, _>> {
        records: DynamoEvidenceJobs::new(role.dynamodb.clone(), &table),
        directory: MicrosoftHttp::new(&HttpSettings::simulator(sim.base_url(), sim.ca_pem()), RetryPolicy::quick()).unwrap(),
        results: SqsAlertQueue::new(role.sqs.clone(), &url),
        secrets: StaticSecretSource::new().with("contoso-secret", secret_creds()),
        integrations: StaticIntegrations(vec![i]),
        clock: SimTime(sim.clone()),
        settings: RemediateSettings::default(),
    };
    let user = sim.people(TENANT)[5].clone();
    let id = moto::unique("r");
    let body = request(&id, Action::DisableAccount, &user.1);
    // As Lambda hands it over: SQS's SenderId says who really sent the request.
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    let mut message = aws_lambda_events::event::sqs::SqsMessage::default();
    message.message_id = Some("m1".into());
    message.body = Some(body.clone());
    message.attributes.insert("SenderId".into(), "AROAEXAMPLEROLE123:soar-runner".into());
    event.records.push(message);
    let response = m365_ingest::lambda::remediate::handle(&r, event).await;
    assert!(response.batch_item_failures.is_empty());
    let Handled::Ended(again) = r.handle(&body).await else { panic!("ended") };
    assert!(again.repeated);
    let first = RemediationResult { repeated: false, ..(*again).clone() };
    assert_eq!(first.status, Status::Done);
    assert_eq!(first.sent_by.as_deref(), Some("AROAEXAMPLEROLE123:soar-runner"), "the real sender beside the named requester");
    let patches = sim.requests().all().iter().filter(|q| q.method == "PATCH").count();
    assert_eq!(patches, 1, "done once");
    let item = c
        .dynamodb
        .get_item()
        .table_name(&table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("remediation/contoso/{id}")))
        .send()
        .await
        .unwrap()
        .item
        .expect("the audit record");
    let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    let now = m365_ingest::GraphTime::from_ticks(sim.clock().now().0).unix_seconds();
    assert!((expires - now - 400 * 86_400).abs() < 60, "kept 400 days by default (at least a year): {expires} vs {now}");
    let job = item["job"].as_s().unwrap();
    assert!(job.contains("AROAEXAMPLEROLE123:soar-runner"), "the audit record names the sender: {job}");
    let sent: Vec<RemediationResult> = moto::drain(&c, &url).await.iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    assert_eq!(sent.len(), 2);
    assert_eq!((sent[0].status, sent[0].user_id.as_deref(), sent[1].repeated), (Status::Done, Some(user.0.as_str()), true));
    assert_eq!(sent[0].sent_by.as_deref(), Some("AROAEXAMPLEROLE123:soar-runner"));
}
