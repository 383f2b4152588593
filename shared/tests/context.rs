//! Alert context (issue 14) against the simulated tenant: what each part says of the tenant's
//! people, devices and files, the tenant's limits respected (sign-ins beyond 5 per 10 s are
//! reported throttled, never sent into a 429), and a 429 storm that degrades every part to a
//! status while every alert is still published, in both output formats, valid to their schemas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use m365_ingest::adapters::graph::context::MicrosoftContext;
use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryDedupStore, StaticSecretSource};
use m365_ingest::app::processing::enrich::{EnrichSettings, Enricher};
use m365_ingest::app::processing::processor::{ProcessSettings, Processor};
use m365_ingest::domain::entities::{entities, Device, Entities, File, User};
use m365_ingest::domain::graph_alert::GraphAlert;
use m365_ingest::domain::integration::sections::FeaturesDoc;
use m365_ingest::domain::integration::{Integration, OutputFormat};
use m365_ingest::domain::processing::context::ContextPart;
use m365_ingest::ports::ProcessWith;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::{GraphTime, Source};
use serde_json::Value;
use support::*;
use tenant_sim::faults::{FaultKind, FaultSpec};
use tenant_sim::{Scenario, Simulator};

fn enricher(sim: &Simulator) -> Enricher {
    enricher_with(sim, EnrichSettings::default())
}

fn enricher_with(sim: &Simulator, settings: EnrichSettings) -> Enricher {
    let http = HttpSettings::simulator(sim.base_url(), sim.ca_pem());
    let api = MicrosoftContext::new(
        MicrosoftHttp::new(&http, RetryPolicy::context()).unwrap(),
        StaticSecretSource::new().with("contoso-secret", secret_creds()),
        Duration::from_secs(2),
    );
    Enricher::new(Arc::new(api), settings)
}

fn with_context(parts: Option<Vec<ContextPart>>) -> Integration {
    let mut i = integration();
    i.features = FeaturesDoc { user_context: true, calendar: true, device_context: true, ..FeaturesDoc::default() };
    i.enrichment.parts = parts;
    i
}

type LocalProcessor = Processor<ProcessWith<Arc<MemoryDedupStore>, Arc<MemoryAlertQueue>, DirArtifactStore, SimTime>>;

/// A processor on local adapters with context lookups against the world's simulator.
fn processor(w: &World) -> (LocalProcessor, Arc<MemoryAlertQueue>) {
    let out = Arc::new(MemoryAlertQueue::new());
    let p = Processor::new(
        Arc::new(MemoryDedupStore::new()),
        out.clone(),
        DirArtifactStore::new(w.dir.path().into()),
        SimTime(w.sim.clone()),
        ProcessSettings::default(),
    )
    .with_context(enricher(&w.sim));
    (p, out)
}

fn schema(path: &str) -> jsonschema::Validator {
    let s: Value = serde_json::from_str(&std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()).unwrap();
    jsonschema::validator_for(&s).unwrap()
}

fn now_of(sim: &Simulator) -> GraphTime {
    GraphTime::from_ticks(sim.clock().now().0)
}

#[tokio::test]
async fn every_part_tells_what_the_tenant_knows_of_its_people_devices_and_files() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let sim = Simulator::start(fixed(Scenario::default())).await.unwrap();
    let people = sim.people(TENANT);
    // A device and a file some alert names.
    let alerts: Vec<GraphAlert> = fetch_alerts(&sim).await.into_iter().map(|v| serde_json::from_value(v).unwrap()).collect();
    let named = alerts.iter().map(entities).find(|e| !e.devices.is_empty() && e.files.iter().any(|f| f.sha256.is_some())).unwrap();
    let e = Entities {
        // The admin by object id, the away one and the one in 1,200 groups by address.
        users: vec![
            User { aad_user_id: Some(people[0].0.clone()), ..User::default() },
            User { upn: Some(people[4].1.clone()), ..User::default() },
            User { upn: Some(people[3].1.clone()), ..User::default() },
        ],
        devices: vec![Device { mde_device_id: named.devices[0].mde_device_id.clone(), ..Device::default() }],
        files: vec![
            named.files.iter().find(|f| f.sha256.is_some()).cloned().unwrap(),
            File { sha256: Some("0".repeat(64)), ..File::default() },
        ],
        ..Entities::default()
    };
    // Presence lookups gather a second (25 ms by default): on a loaded machine three users'
    // profiles can come back further apart than that, and the one-request assertion would flake.
    let en = enricher_with(&sim, EnrichSettings { presence_gather: Duration::from_secs(1), ..EnrichSettings::default() });
    let at = now_of(&sim).minus(Duration::from_secs(1800));
    // Every part but sign-ins, which share the registration details' 5 requests per 10 s (the
    // next test): three users' registrations fit.
    let parts: Vec<ContextPart> = ContextPart::ALL.into_iter().filter(|p| *p != ContextPart::SignIns).collect();
    let c = en.context(&with_context(Some(parts)), &e, at, Instant::now() + Duration::from_secs(60)).await.unwrap();

    let admin = &c.users[0];
    assert_eq!(admin.upn.as_deref(), Some(people[0].1.as_str()), "the profile gives the address");
    assert_eq!(admin.profile.as_ref().unwrap().account_enabled, Some(true));
    assert!(admin.profile.as_ref().unwrap().manager.is_none(), "the first user has no manager");
    assert_eq!(admin.is_admin, Some(true));
    assert!(admin.roles.as_ref().unwrap().iter().any(|r| r.display_name.as_deref() == Some("Global Administrator") && r.privileged));
    assert!(admin.mfa.as_ref().unwrap().is_mfa_registered == Some(true));

    let away = &c.users[1];
    assert_eq!(away.id.as_deref(), Some(people[4].0.as_str()), "the profile gives the object id");
    assert_eq!(away.profile.as_ref().unwrap().manager.as_ref().unwrap().upn.as_deref(), Some(people[3].1.as_str()));
    assert_eq!(away.is_admin, Some(false));
    assert_eq!(away.out_of_office.as_ref().unwrap().active_at_alert, Some(true));
    let s = away.schedule.as_ref().unwrap();
    assert_eq!((s.availability_at_alert.as_str(), s.away_at_alert), ("oof", true));
    assert_eq!(away.presence.as_ref().unwrap().activity.as_deref(), Some("OutOfOffice"));

    let busy = &c.users[2];
    assert_eq!(busy.groups.as_ref().unwrap().len(), 50, "max_groups");
    assert_eq!(busy.groups_truncated, Some(true));
    assert_eq!(busy.mfa.as_ref().unwrap().is_mfa_registered, Some(false));

    assert_eq!(c.devices.len(), 1);
    assert!(c.devices[0].os_platform.is_some() && c.devices[0].health_status.is_some());
    assert_eq!(c.files.len(), 1, "the unknown hash is not found");
    assert!(c.files[0].determination_type.is_some());
    for part in ["profile", "roles", "groups", "mfa", "out_of_office", "schedule", "presence", "device"] {
        assert_eq!(c.enrichment[part].status, "ok", "{part}: {:?}", c.enrichment[part]);
    }
    assert_eq!((c.enrichment["file"].status.as_str(), c.enrichment["file"].succeeded), ("not_found", 1));
    // Three users' presence in one request.
    assert_eq!(sim.requests().count("/v1.0/communications/getPresencesByUserId"), 1);
}

/// Sign-in logs through Graph need Microsoft Entra ID P1 or P2 (resources/signin.md): a tenant
/// without is told apart from a missing permission, since no permission fixes it.
#[tokio::test]
async fn sign_ins_of_a_tenant_without_entra_id_p1_read_unlicensed_not_forbidden() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let mut s = fixed(Scenario::default());
    s.tenants[0].entra_license = tenant_sim::scenario::EntraLicense::Free;
    let sim = Simulator::start(s).await.unwrap();
    let (id, _) = sim.people(TENANT)[4].clone();
    let en = enricher(&sim);
    let mut i = with_context(Some(vec![ContextPart::SignIns]));
    i.enrichment.window.0 = Duration::from_secs(6 * 3600);
    let at = now_of(&sim).minus(Duration::from_secs(3600));
    let e = Entities { users: vec![User { aad_user_id: Some(id), ..User::default() }], ..Entities::default() };
    let c = en.context(&i, &e, at, Instant::now() + Duration::from_secs(60)).await.unwrap();
    assert_eq!(c.enrichment["sign_ins"].status, "unlicensed", "{:?}", c.enrichment["sign_ins"]);
    let sent = sim.requests().matching("/v1.0/auditLogs/signIns");
    assert_eq!(sent.iter().map(|r| r.status).collect::<Vec<_>>(), [403], "Microsoft's refusal, asked once");
}

#[tokio::test]
async fn sign_ins_beyond_the_tenants_limit_are_reported_throttled_and_never_sent_into_a_429() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let sim = Simulator::start(fixed(Scenario::default())).await.unwrap();
    let people = sim.people(TENANT);
    let en = enricher(&sim);
    let mut i = with_context(Some(vec![ContextPart::SignIns]));
    // Each person signs in every three to four hours: six hours each side finds some.
    i.enrichment.window.0 = Duration::from_secs(6 * 3600);
    let at = now_of(&sim).minus(Duration::from_secs(3600));
    let (from, to) = (at.minus(Duration::from_secs(7 * 3600)).to_string(), at.plus(Duration::from_secs(7 * 3600)).to_string());
    let mut ok = 0;
    let mut throttled = 0;
    let started = Instant::now();
    for (id, _) in people.iter().take(12) {
        let e = Entities { users: vec![User { aad_user_id: Some(id.clone()), ..User::default() }], ..Entities::default() };
        let c = en.context(&i, &e, at, Instant::now() + Duration::from_secs(60)).await.unwrap();
        match c.enrichment["sign_ins"].status.as_str() {
            "ok" => {
                ok += 1;
                let seen = c.users[0].sign_ins.as_ref().unwrap();
                assert!(!seen.is_empty(), "a sign-in in twelve hours");
                assert!(seen.iter().all(|s| s.at.as_deref().is_some_and(|t| t >= &from[..19] && t <= &to[..19])), "{seen:?}");
                assert!(seen.windows(2).all(|w| w[0].at >= w[1].at), "newest first");
            }
            "throttled" => throttled += 1,
            other => panic!("{other}"),
        }
    }
    assert_eq!((ok, throttled), (5, 7), "5 requests per 10 s per app per tenant");
    let sent = sim.requests().matching("/v1.0/auditLogs/signIns");
    assert_eq!(sent.len(), 5, "the others were never sent");
    assert!(sent.iter().all(|r| r.status == 200));
    // One wait for the budget at most, then the service is skipped: the alerts were not held.
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
}

/// A burst of alerts about a few users, processed side by side: sign-ins are one request per
/// alert's window, a user's MFA registration one request for all of their alerts. Sign-ins
/// asked first spent every one of the 5 identity-report slots and no user's MFA was known.
#[tokio::test]
async fn a_burst_about_a_few_users_learns_their_mfa_before_spending_the_reports_budget_on_sign_ins() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let sim = Simulator::start(fixed(Scenario::default())).await.unwrap();
    let people = sim.people(TENANT);
    let en = enricher(&sim);
    let i = with_context(Some(vec![ContextPart::SignIns, ContextPart::Mfa]));
    let now = now_of(&sim);
    let alerts: Vec<(Entities, GraphTime)> = (0..16)
        .map(|n| {
            let (id, _) = people[n % 3].clone();
            let e = Entities { users: vec![User { aad_user_id: Some(id), ..User::default() }], ..Entities::default() };
            // Each alert an hour apart: its own sign-in window.
            (e, now.minus(Duration::from_secs(3600 * (1 + n as u64))))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = futures_util::future::join_all(alerts.iter().map(|(e, at)| en.context(&i, e, *at, deadline))).await;
    let status = |part: &str| done.iter().filter(|c| c.as_ref().unwrap().enrichment[part].status == "ok").count();
    let (mfa, sign_ins) = (status("mfa"), status("sign_ins"));
    assert!(mfa >= 8, "the three users' registrations, then cached for their other alerts: mfa ok {mfa}, sign-ins ok {sign_ins}");
    let sent = sim.requests().matching("/v1.0/reports/authenticationMethods/userRegistrationDetails");
    assert!(sent.len() <= 3 && sent.iter().all(|r| r.status == 200), "one request per user: {}", sent.len());
    assert!(sim.requests().matching("/v1.0/auditLogs/signIns").iter().all(|r| r.status == 200), "none sent into a 429");
}

#[tokio::test]
async fn a_429_storm_degrades_context_to_statuses_and_every_alert_still_goes_out_valid() {
    let w = world(fixed(Scenario::default()), PollSettings::default(), secret_creds()).await;
    w.poll(Source::DefenderAlerts).await;
    let msgs: Vec<(String, String)> = w.queue.messages().into_iter().enumerate().map(|(n, m)| (format!("m{n}"), m)).collect();
    assert!(msgs.len() > 20);
    for path in ["/v1.0/users", "/v1.0/reports", "/v1.0/auditLogs", "/v1.0/communications", "/api/machines", "/api/files"] {
        w.sim.inject(FaultSpec::new(path, FaultKind::Throttle { retry_after_secs: 30 }).at_rate(1.0));
    }
    let mut i = with_context(None);
    i.output = OutputFormat::Both;
    let (p, out) = processor(&w);
    let started = Instant::now();
    let run = p.batch(vec![i]);
    let failed = run.process_batch(&msgs).await;
    let counts = run.take_counts();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(counts.published, counts.alerts);
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    let (v1, ocsf) = (schema("schemas/m365-ingest.alert.v1.schema.json"), schema("tests/fixtures/ocsf/detection_finding.schema.json"));
    let (mut with_users, mut checked, mut subjects) = (0, 0, 0);
    for body in out.messages() {
        let m: Value = serde_json::from_str(&body).unwrap();
        if m["schema"] == "m365-ingest.alert.v1" {
            assert!(v1.iter_errors(&m).next().is_none(), "{:?}", v1.iter_errors(&m).map(|e| e.to_string()).collect::<Vec<_>>());
            let statuses = &m["context"]["enrichment"];
            for (part, s) in statuses.as_object().unwrap() {
                assert!(["throttled", "not_applicable"].contains(&s["status"].as_str().unwrap()), "{part}: {s}");
            }
            if let Some(u) = m["context"]["users"].as_array().filter(|u| !u.is_empty()) {
                with_users += 1;
                subjects += u.len();
                assert_eq!(statuses["profile"]["status"], "throttled");
                assert!(m["context"]["users"][0].get("profile").is_none(), "a failed part is left out");
            }
        } else {
            assert!(ocsf.iter_errors(&m).next().is_none(), "{:?}", ocsf.iter_errors(&m).map(|e| e.to_string()).collect::<Vec<_>>());
            assert!(m["unmapped"]["m365ingest_enrichment"].is_object());
        }
        checked += 1;
    }
    assert!(with_users > 10 && checked == 2 * counts.published, "{with_users} of {checked}");
    // The storm was met with few requests: each service is skipped for a while once it
    // throttled, so only lookups already under way when the first 429 came back were sent
    // (without that, four per user: profile, memberships, automatic replies, schedule).
    let sent = w.sim.requests().matching("/v1.0/users").len();
    assert!(sent * 4 < subjects, "{sent} user lookups sent into the storm for {subjects} users");
}

#[tokio::test]
async fn context_goes_out_in_both_formats_valid_to_their_schemas() {
    let w = world(fixed(Scenario::default()), PollSettings::default(), secret_creds()).await;
    w.poll(Source::DefenderAlerts).await;
    let msgs: Vec<(String, String)> = w.queue.messages().into_iter().take(15).enumerate().map(|(n, m)| (format!("m{n}"), m)).collect();
    let mut i =
        with_context(Some(vec![ContextPart::Profile, ContextPart::Roles, ContextPart::Groups, ContextPart::Device, ContextPart::File]));
    i.output = OutputFormat::Both;
    let (p, out) = processor(&w);
    let run = p.batch(vec![i]);
    assert!(run.process_batch(&msgs).await.is_empty());
    let (v1, ocsf) = (schema("schemas/m365-ingest.alert.v1.schema.json"), schema("tests/fixtures/ocsf/detection_finding.schema.json"));
    let (mut profiles, mut enrichments) = (0, 0);
    for body in out.messages() {
        let m: Value = serde_json::from_str(&body).unwrap();
        if m["schema"] == "m365-ingest.alert.v1" {
            assert!(v1.iter_errors(&m).next().is_none(), "{:?}", v1.iter_errors(&m).map(|e| e.to_string()).collect::<Vec<_>>());
            assert_eq!(m["context"]["enrichment"].as_object().unwrap().len(), 5, "exactly the parts asked for");
            profiles += m["context"]["users"].as_array().unwrap().iter().filter(|u| u["profile"].is_object()).count();
        } else {
            assert!(ocsf.iter_errors(&m).next().is_none(), "{:?}", ocsf.iter_errors(&m).map(|e| e.to_string()).collect::<Vec<_>>());
            enrichments += m["enrichments"].as_array().map_or(0, Vec::len);
        }
    }
    assert!(profiles > 0 && enrichments >= profiles, "{profiles} profiles, {enrichments} OCSF enrichments");
}

/// Outlook takes 4 concurrent requests per app per mailbox (throttling-limits.md "Outlook
/// service limits"; the simulator answers the fifth 429 `MailboxConcurrency`): lookups of one
/// user's mailbox made side by side (alerts about one user at different times) are held to 4
/// in flight and meet no 429.
#[tokio::test]
async fn lookups_side_by_side_in_one_mailbox_keep_to_outlooks_four_concurrent_requests() {
    use m365_ingest::ports::{ContextApi, ContextRequest};
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let mut s = fixed(Scenario::default());
    // Each mailbox request held long enough for the burst to overlap.
    s.graph.mailbox_latency_ms = 200;
    let sim = Simulator::start(s).await.unwrap();
    let (_, upn) = sim.people(TENANT)[1].clone();
    let http = HttpSettings::simulator(sim.base_url(), sim.ca_pem());
    let api = MicrosoftContext::new(
        MicrosoftHttp::new(&http, RetryPolicy::context()).unwrap(),
        StaticSecretSource::new().with("contoso-secret", secret_creds()),
        Duration::from_secs(10),
    );
    let i = integration();
    let request = ContextRequest::AutoReplies { user: upn.clone() };
    let answers = futures_util::future::join_all((0..12).map(|_| api.lookup(&i, &request))).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let all = sim.requests().all();
    let sent: Vec<_> = all.iter().filter(|r| r.path.ends_with("/automaticRepliesSetting")).collect();
    assert_eq!(sent.len(), 12);
    assert!(sent.iter().all(|r| r.status == 200), "{:?}", sent.iter().map(|r| r.status).collect::<Vec<_>>());
}

/// The same across instances: two processor instances sharing the deployment's budget
/// (DynamoDB, the Processor role) look up one user's mailbox side by side, six lookups each;
/// Outlook sees at most 4 in flight and answers no 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_from_two_instances_in_one_mailbox_keep_to_outlooks_four_concurrent_requests() {
    use m365_ingest::adapters::aws::DynamoBudget;
    use m365_ingest::ports::{ContextApi, ContextRequest, RequestBudget};
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let stack = support::moto::stack().await;
    let role = stack.clients(support::moto::Principal::Processor);
    let table = stack.state_table().await;
    let mut s = fixed(Scenario::default());
    s.graph.mailbox_latency_ms = 200;
    let sim = Simulator::start(s).await.unwrap();
    let (_, upn) = sim.people(TENANT)[1].clone();
    let http = HttpSettings::simulator(sim.base_url(), sim.ca_pem());
    let instance = || {
        let budget: Arc<dyn RequestBudget> = Arc::new(DynamoBudget::new(role.dynamodb.clone(), &table));
        MicrosoftContext::new(
            MicrosoftHttp::new(&http, RetryPolicy::context()).unwrap().with_budget(budget),
            StaticSecretSource::new().with("contoso-secret", secret_creds()),
            Duration::from_secs(10),
        )
    };
    let (one, two) = (instance(), instance());
    let i = integration();
    let request = ContextRequest::AutoReplies { user: upn.clone() };
    let asks = (0..12).map(|n| if n % 2 == 0 { one.lookup(&i, &request) } else { two.lookup(&i, &request) });
    let answers = futures_util::future::join_all(asks).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let all = sim.requests().all();
    let sent: Vec<_> = all.iter().filter(|r| r.path.ends_with("/automaticRepliesSetting")).collect();
    assert_eq!(sent.len(), 12);
    assert!(sent.iter().all(|r| r.status == 200), "{:?}", sent.iter().map(|r| r.status).collect::<Vec<_>>());
}
