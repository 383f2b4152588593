//! `demo`: the whole path on embedded defaults: the tenant simulator in-process (two tenants,
//! one polled for alerts, one for incidents and Cloud Apps alerts, with some throttling and a
//! token expiry); Test & Save of both integrations into a local store; two poll passes into a
//! local queue written as NDJSON; the processor's output, and the evidence its alerts name
//! (files through live response, quarantined emails through Exchange Online, delivered ones
//! from their recipients' mailboxes through Graph).

use std::sync::Arc;
use std::time::{Duration, Instant};

use m365_ingest::adapters::graph::context::MicrosoftContext;
use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryCursorStore};
use m365_ingest::adapters::local::{MemoryDedupStore, MemoryDelayQueue, MemoryEvidenceJobs, MemoryIntegrationStore, MemorySecrets};
use m365_ingest::app::evidence::setup::{Evidence, EvidenceSettings};
use m365_ingest::app::polling::poll::{Poller, RunSummary};
use m365_ingest::app::processing::enrich::{EnrichSettings, Enricher};
use m365_ingest::app::processing::processor::{ProcessSettings, Processor};
use m365_ingest::app::test_and_save::check::{Checker, CredentialInput, SaveMode};
use m365_ingest::domain::integration::doc::{self as integration_doc, IntegrationDoc};
use m365_ingest::domain::integration::{Credential, Credentials, Integration};
use m365_ingest::ports::IntegrationSource;
use m365_ingest::ports::{Clock, EvidenceWith, PollWith};
use m365_ingest::secret::Secret;
use m365_ingest::sources::settings::DeliverySettings;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::{GraphTime, Source};
use tenant_sim::scenario::{AppSpec, CertificateSpec, SecretSpec, TenantSpec, DEFAULT_CLIENT_ID, DEFAULT_TENANT_ID};
use tenant_sim::testing::ClientCertificate;
use tenant_sim::{FaultKind, FaultSpec, Scenario, Simulator};

use crate::args::DemoOptions;
use crate::Failure;

const FABRIKAM: &str = "0b1c2d3e-4f50-4617-8a9b-c0d1e2f3a4b5";
const FABRIKAM_CLIENT: &str = "7d6c5b4a-3928-4716-a5b4-c3d2e1f0a9b8";
/// A simulator fixture, not a credential.
const FABRIKAM_SECRET: &str = "sim~FabrikamSecret.5555555555";
/// A second app in contoso, registered with Graph's alert permission only.
const CONTOSO_SOC_CLIENT: &str = "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d";
const CONTOSO_SOC_SECRET: &str = "sim~ContosoSocSecret.777777777";

/// The poller reads the simulator's clock, so simulated time can pass between runs.
struct SimClock(Arc<Simulator>);

impl Clock for SimClock {
    fn now(&self) -> GraphTime {
        GraphTime::from_ticks(self.0.clock().now().0)
    }
}

/// The simulator's clock in Unix seconds: the demo moves simulated time on by hours, and a
/// client assertion must be valid at the simulator's "now", as it would be at Entra's.
fn sim_seconds(sim: &Arc<Simulator>) -> m365_ingest::adapters::graph::auth::AssertionClock {
    let sim = sim.clone();
    Arc::new(move || sim.clock().now().unix_seconds())
}

/// A Microsoft client for one part of the demo: every part counts against one budget per
/// tenant, as a deployment's functions share theirs (the DynamoDB budget), so a request one part
/// could have waited for is never sent into another part's 429.
fn microsoft(sim: &Arc<Simulator>, http: &HttpSettings, policy: RetryPolicy) -> Result<MicrosoftHttp, Failure> {
    static DEPLOYMENT_BUDGET: std::sync::OnceLock<Arc<m365_ingest::adapters::graph::pacing::LocalBudget>> = std::sync::OnceLock::new();
    let budget = DEPLOYMENT_BUDGET.get_or_init(Default::default).clone();
    Ok(MicrosoftHttp::new(http, policy)
        .map_err(|e| Failure::Run(format!("HTTP client: {e}")))?
        .with_assertion_clock(sim_seconds(sim))
        .with_budget(budget))
}

fn scenario(o: &DemoOptions, cert: &ClientCertificate) -> Scenario {
    let mut s = Scenario { seed: o.seed, ..Scenario::default() };
    // Exchange Online's app-only access is documented with a certificate (ms-apis.md §8).
    s.tenants[0].apps[0].certificates = vec![CertificateSpec { pem: Some(cert.cert_pem.clone()), pem_file: None }];
    s.tenants[0].alerts.count = o.alerts;
    s.tenants[0].alerts.incidents = (o.alerts / 4).max(1);
    // The restore's script is unsigned: contoso's admin turned on Advanced features → "Live
    // Response unsigned script execution", off by default (live-response.md), as Test & Save
    // says the restore needs.
    s.mde.unsigned_scripts = true;
    s.tenants[0].apps.push(AppSpec {
        client_id: CONTOSO_SOC_CLIENT.into(),
        display_name: "contoso SOC (half configured)".into(),
        secrets: vec![SecretSpec { value: CONTOSO_SOC_SECRET.into(), expires: None }],
        grants: [("graph".to_owned(), vec!["SecurityAlert.Read.All".to_owned()])].into(),
        ..AppSpec::default()
    });
    s.tenants.push(TenantSpec {
        id: FABRIKAM.into(),
        domain: "fabrikam.onmicrosoft.com".into(),
        apps: vec![AppSpec {
            client_id: FABRIKAM_CLIENT.into(),
            secrets: vec![SecretSpec { value: FABRIKAM_SECRET.into(), expires: None }],
            ..AppSpec::default()
        }],
        ..TenantSpec::default()
    });
    s.tenants[1].alerts.count = (o.alerts / 2).max(1);
    s.tenants[1].alerts.incidents = (o.alerts / 8).max(1);
    // What a real tenant does now and then: throttle, fail once, expire a token mid-run.
    s.faults = vec![
        FaultSpec::new("/v1.0/security/", FaultKind::Throttle { retry_after_secs: 1 }).on(&[1]),
        FaultSpec::new("/v1.0/security/", FaultKind::Status { status: 503, retry_after_secs: None }).on(&[4]),
        FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::ExpireToken).on(&[3]),
    ];
    s
}

fn creds(tenant: &str, client: &str, secret: &str) -> Credentials {
    Credentials { tenant_id: tenant.into(), client_id: client.into(), credential: Credential::ClientSecret(Secret::new(secret)) }
}

pub async fn run(o: DemoOptions) -> Result<(), Failure> {
    let run_err = |what: &str, e: &dyn std::fmt::Display| Failure::Run(format!("{what}: {e}"));
    std::fs::create_dir_all(&o.out).map_err(|e| Failure::Usage(format!("cannot create --out {}: {e}", o.out.display())))?;
    let ndjson = o.out.join("intake.ndjson");
    std::fs::write(&ndjson, b"").map_err(|e| Failure::Usage(format!("cannot write {}: {e}", ndjson.display())))?;
    let cert = ClientCertificate::generate(o.seed).map_err(|e| run_err("making contoso's app certificate", &e))?;
    let sim = Arc::new(Simulator::start(scenario(&o, &cert)).await.map_err(|e| run_err("starting the tenant simulator", &e))?);
    let mut http = HttpSettings::simulator(sim.base_url(), sim.ca_pem());
    // Live response results download from the simulator's blob host, by its own name.
    http.resolve = vec![(sim.blob_host().to_owned(), sim.addr())];
    let (integrations, secrets) = test_and_save(&sim, &http, &cert).await?;
    let queue = Arc::new(MemoryAlertQueue::new().with_ndjson(&ndjson).map_err(|e| run_err("opening the NDJSON output", &e))?);
    let poller = Poller::<PollWith<_, _, _, _, _, _>> {
        graph: microsoft(&sim, &http, RetryPolicy::default())?,
        cursors: MemoryCursorStore::new(),
        queue: queue.clone(),
        artifacts: DirArtifactStore::new(o.out.join("artifacts")),
        secrets: secrets.clone(),
        clock: SimClock(sim.clone()),
        settings: PollSettings {
            owner: "demo".into(),
            // 256 KiB messages (configurable below SQS's 1 MiB): the largest alerts go by claim check.
            delivery: DeliverySettings { max_message_bytes: 256 * 1024, ..DeliverySettings::default() },
            ..PollSettings::default()
        },
    };
    println!("\npolling with a local cursor store into a local queue -> {}", ndjson.display());
    let mut failed = false;
    for (label, advance, reports) in [
        ("first run (24 h lookback)", 0, 0),
        ("second run, 10 simulated minutes later (a phishing campaign: 12 users report it within a second)", 600, 12),
        ("third run, 6 simulated hours later (submissions under analysis then have their verdicts)", 6 * 3600, 0),
    ] {
        sim.raise_reports(DEFAULT_TENANT_ID, reports, 20);
        sim.clock().advance_secs(advance);
        println!("\n{label}");
        for source in Source::ALL {
            for s in poller.poll_all(source, &integrations, Instant::now() + Duration::from_secs(300)).await {
                failed |= matches!(s.outcome, m365_ingest::app::polling::poll::Outcome::Failed { .. });
                print_summary(&s);
            }
        }
    }
    // Intake → processor → output, as the processor Lambda does it on the intake queue.
    let output_path = o.out.join("output.ndjson");
    std::fs::write(&output_path, b"").map_err(|e| Failure::Usage(format!("cannot write {}: {e}", output_path.display())))?;
    let output =
        MemoryAlertQueue::new().without_retention().with_ndjson(&output_path).map_err(|e| run_err("opening the output NDJSON", &e))?;
    let steps = Arc::new(MemoryDelayQueue::new());
    let processor = Processor::new(
        MemoryDedupStore::new(),
        output,
        DirArtifactStore::new(o.out.join("artifacts")),
        SimClock(sim.clone()),
        ProcessSettings { owner: "demo".into(), ..ProcessSettings::default() },
    )
    .with_evidence(Evidence::<EvidenceWith<_, _, _, _>> {
        jobs: MemoryEvidenceJobs::new(),
        steps: steps.clone(),
        // The demo moves simulated time hours ahead in seconds, and the client's pace for
        // Defender for Endpoint runs on the real clock, which cannot follow: off for the evidence
        // steps here (the simulator still holds Microsoft's limits, on its own clock).
        api: microsoft(&sim, &HttpSettings { mde_rate: None, ..http.clone() }, RetryPolicy::one_step())?,
        secrets: secrets.clone(),
        settings: EvidenceSettings::default(),
    })
    // Who the users are, what the devices and files are: each lookup within the tenant's limits.
    .with_context(Enricher::new(
        Arc::new(MicrosoftContext::new(microsoft(&sim, &http, RetryPolicy::context())?, secrets.clone(), Duration::from_secs(2))),
        EnrichSettings::default(),
    ));
    let intake: Vec<(String, String)> = queue.messages().into_iter().enumerate().map(|(i, m)| (format!("intake-{i}"), m)).collect();
    let mut failed_messages = 0;
    // Built once, a run per batch: as the processor function does on the intake queue.
    let mut c = m365_ingest::app::processing::process::ProcessCounts::default();
    let bar = progress(intake.len().div_ceil(10) as u64, "processing intake batches");
    for batch in intake.chunks(10) {
        let run = processor.batch(integrations.to_vec());
        failed_messages += run.process_batch(batch).await.len();
        c.add(run.take_counts());
        bar.as_ref().inspect(|b| b.inc(1));
    }
    bar.inspect(|b| b.finish_and_clear());
    println!("\nprocessor: {} intake messages carrying {} alerts -> {} published to {} (contoso as m365-ingest.alert.v1, fabrikam as OCSF), {} duplicates", intake.len(), c.alerts, c.published, output_path.display(), c.duplicates);
    for (reason, n) in &c.dropped {
        println!("  filtered out by {reason:<21} {n}");
    }
    println!(
        "  incidents (fabrikam): {} incident versions published as themselves (OCSF Incident Finding, class 2005), {} not published (the filters dropped every alert of theirs)",
        c.incidents_published, c.incidents_dropped
    );
    show_incident(&output_path);
    failed |= c.incidents_published == 0;
    show_context(&output_path);
    // Evidence jobs, as the processor does them on the evidence-jobs queue: each message one
    // step, a waiting job's message delayed (here: simulated time moves to it).
    let mut pending: Vec<(Duration, String)> = Vec::new();
    let mut steps_taken = 0;
    let bar = progress(0, "evidence jobs");
    for round in 0..500 {
        bar.as_ref().inspect(|b| b.set_message(format!("{steps_taken} steps, {} waiting", pending.len())));
        pending.extend(steps.take());
        let Some(soonest) = pending.iter().map(|(d, _)| *d).min() else { break };
        sim.clock().advance_secs(soonest.as_secs() as i64);
        let (due, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(d, _)| *d <= soonest);
        pending = later.into_iter().map(|(d, b)| (d - soonest, b)).collect();
        let batch: Vec<(String, String)> = due.into_iter().enumerate().map(|(i, (_, b))| (format!("step-{round}-{i}"), b)).collect();
        steps_taken += batch.len();
        let run = processor.batch(integrations.to_vec());
        let again = run.step_batch(&batch).await;
        pending.extend(batch.into_iter().filter(|(id, _)| again.contains(id)).map(|(_, b)| (Duration::ZERO, b)));
        c.add(run.take_counts());
    }
    bar.inspect(|b| b.finish_and_clear());
    println!("evidence jobs: {steps_taken} steps (each one call; a device at work is checked again a minute later), ended as:");
    for (outcome, n) in &c.evidence_outcomes {
        println!("  {outcome:<15} {n}");
    }
    println!(
        "  retrieved files under {}, quarantined emails under {}, emails from their recipients' mailboxes under {} (each announced on the output as an m365-ingest.evidence.v1 update)",
        o.out.join("artifacts/evidence").display(),
        o.out.join("artifacts/quarantined-email").display(),
        o.out.join("artifacts/delivered-email").display()
    );
    failed |= failed_messages > 0 || !pending.is_empty();
    // The demo shows every kind retrieved: a file from a device, an email from quarantine and
    // one from its recipient's mailbox.
    let stored = |dir: &str| std::fs::read_dir(o.out.join("artifacts").join(dir).join("contoso")).map(|d| d.count()).unwrap_or(0);
    let (files, emails, delivered) = (stored("evidence"), stored("quarantined-email"), stored("delivered-email"));
    println!("  {files} files, {emails} quarantined emails and {delivered} delivered emails stored");
    let left = sim.restored_files(DEFAULT_TENANT_ID);
    println!(
        "  restore script uploaded to the tenant's live response library {} time(s); restored copies left on devices: {}",
        sim.library_uploads(DEFAULT_TENANT_ID),
        left.len()
    );
    failed |= !left.is_empty();
    failed |= files == 0 || emails == 0 || delivered == 0;
    failed |= !hunting_query(&sim, &http, &integrations, &secrets).await?;
    failed |= !remediation_dry_run(&sim, &http, &integrations, &secrets).await?;
    let log = sim.requests().all();
    let is_graph = |p: &str| p.starts_with("/v1.0/") || p.starts_with("/beta/");
    let graph = log.iter().filter(|r| is_graph(&r.path)).count();
    let retried = log.iter().filter(|r| is_graph(&r.path) && r.status != 200).count();
    let cloud_apps = log.iter().filter(|r| r.path.starts_with("/api/v1/alerts")).count();
    let is_mail = |p: &str| p.starts_with("/v1.0/users/") && (p.contains("/messages") || p.contains("/mailFolders/"));
    let mailbox = log.iter().filter(|r| is_mail(&r.path)).count();
    let people = log
        .iter()
        .filter(|r| {
            is_graph(&r.path)
                && !is_mail(&r.path)
                && (r.path.starts_with("/v1.0/users/")
                    || r.path.starts_with("/v1.0/auditLogs")
                    || r.path.starts_with("/v1.0/reports")
                    || r.path.starts_with("/v1.0/communications"))
        })
        .count();
    let mime = log.iter().filter(|r| r.path.starts_with("/v1.0/users/") && r.path.ends_with("/$value")).count();
    let tokens = log.iter().filter(|r| r.path.ends_with("/oauth2/v2.0/token")).count();
    println!(
        "\nGraph requests {graph} ({retried} answered 429/503/401; {mailbox} to the phishing mailbox, {mime} of them reported emails' MIME; {people} for context and remediation), Cloud Apps requests {cloud_apps}, token requests {tokens}, SQS-style batches {}",
        queue.calls()
    );
    println!(
        "{} intake messages written to {}; claim-checked objects and reported emails (reported-email/*.eml) under {}",
        queue.len(),
        ndjson.display(),
        o.out.join("artifacts").display()
    );
    println!(
        "retries Microsoft asked for (throttling with a Retry-After, a token refreshed): {}; warnings: {} (printed as RUST_LOG asks: RUST_LOG=debug prints each)",
        crate::logging::expected_retries(),
        crate::logging::warnings()
    );
    if failed {
        return Err(Failure::Run("a run failed; see the summary above".into()));
    }
    Ok(())
}

/// A bar (or, with no length, a spinner) on a terminal for a step that takes a while; nothing
/// otherwise, where the step's summary line follows it.
fn progress(len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let (bar, template) = if len > 0 {
            (indicatif::ProgressBar::new(len), "{prefix} [{bar:40}] {pos}/{len}")
        } else {
            (indicatif::ProgressBar::new_spinner(), "{prefix} {spinner} {msg}")
        };
        bar.set_style(indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
        bar.set_prefix(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    })
}

/// A downstream caller's advanced hunting query, as the query function answers it. Returns
/// whether it answered.
async fn hunting_query(
    sim: &Arc<Simulator>,
    http: &HttpSettings,
    integrations: &[Integration],
    secrets: &Arc<MemorySecrets>,
) -> Result<bool, Failure> {
    use m365_ingest::adapters::local::StaticIntegrations;
    use m365_ingest::app::response::investigate::Investigator;
    use m365_ingest::ports::investigation::InvestigateWith;
    let inv = Investigator::<InvestigateWith<_, _, _, _>> {
        api: microsoft(sim, http, RetryPolicy::context())?,
        secrets: secrets.clone(),
        integrations: StaticIntegrations(integrations.to_vec()),
        clock: SimClock(sim.clone()),
        context: None,
    };
    let kql = "AlertInfo | where Severity == \"high\" | project Timestamp, Title, ServiceSource | order by Timestamp desc | take 3";
    let r = inv.run(serde_json::json!({"kind": "hunting", "integration_id": "contoso", "query": kql, "hours": 48})).await;
    println!("\nan investigation query (advanced hunting, contoso): {kql}");
    if let Some(e) = &r.error {
        println!("  error {}: {}", e.code, e.message);
        return Ok(false);
    }
    for row in &r.rows {
        println!(
            "  {} | {} | {}",
            row["Timestamp"].as_str().unwrap_or("?"),
            row["Title"].as_str().unwrap_or("?"),
            row["ServiceSource"].as_str().unwrap_or("?")
        );
    }
    Ok(!r.rows.is_empty())
}

/// What a downstream system's request to disable an account comes to under contoso's rules
/// (remediation on, in its default dry-run mode): one user who may be acted on, and a Global
/// Administrator, protected. Returns whether both came out as they should.
async fn remediation_dry_run(
    sim: &Arc<Simulator>,
    http: &HttpSettings,
    integrations: &[Integration],
    secrets: &Arc<MemorySecrets>,
) -> Result<bool, Failure> {
    use m365_ingest::adapters::local::StaticIntegrations;
    use m365_ingest::app::response::remediate::{Handled, RemediateSettings, Remediator};
    use m365_ingest::ports::remediation::RemediateWith;
    let results = Arc::new(MemoryAlertQueue::new());
    let r = Remediator::<RemediateWith<_, _, _, _, _, _>> {
        records: MemoryEvidenceJobs::new(),
        directory: microsoft(sim, http, RetryPolicy::one_step())?,
        results: results.clone(),
        secrets: secrets.clone(),
        integrations: StaticIntegrations(integrations.to_vec()),
        clock: SimClock(sim.clone()),
        settings: RemediateSettings { owner: "demo".into(), ..RemediateSettings::default() },
    };
    let people = sim.people(DEFAULT_TENANT_ID);
    println!("\nremediation (contoso: features.remediation on, remediation.mode dry_run, privileged roles protected):");
    let mut as_expected = true;
    for (n, (id, upn)) in [(5usize, &people[5]), (0, &people[0])].into_iter().map(|(n, p)| (n, (&p.0, &p.1))) {
        let body = serde_json::json!({"schema": "m365-ingest.remediation.v1", "request_id": format!("demo-{n}"), "integration_id": "contoso",
            "action": "disable_account", "user": upn, "alert_ref": "defender_alerts/demo", "reason": "credential theft suspected", "requested_by": "demo"});
        match r.handle(&body.to_string()).await {
            Handled::Ended(res) => {
                let why = res.refusal.as_ref().map(|x| format!("{}: {}", x.code, x.reason)).unwrap_or_default();
                println!("  disable_account {upn}: {:?} ({why})", res.status);
                let expected = if n == 0 { "privileged_role" } else { "dry_run" };
                as_expected &= res.refusal.as_ref().is_some_and(|x| x.code == expected) && !sim.account_disabled(id);
            }
            Handled::Retry(why) => {
                println!("  disable_account {upn}: not finished: {why}");
                as_expected = false;
            }
        }
    }
    println!("  {} results on the actions-result queue; no account was changed", results.len());
    Ok(as_expected)
}

/// One alert's context as the output shows it, and how each part went across the run.
/// One published incident: its own fields and what became of each of its alerts.
fn show_incident(output: &std::path::Path) {
    let text = std::fs::read_to_string(output).unwrap_or_default();
    let listed = |m: &serde_json::Value| m["unmapped"]["alerts"].as_array().map_or(0, Vec::len);
    let incident = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["class_uid"] == 2005)
        .max_by_key(|m| (m["unmapped"]["alerts"].as_array().into_iter().flatten().any(|a| a["decision"] == "dropped"), listed(m)));
    let Some(i) = incident else { return };
    let alerts = i["unmapped"]["alerts"].as_array().cloned().unwrap_or_default();
    let published = alerts.iter().filter(|a| a["decision"] == "published").count();
    let reasons: std::collections::BTreeSet<&str> = alerts.iter().filter_map(|a| a["reason"].as_str()).collect();
    let why = if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.into_iter().collect::<Vec<_>>().join(", ")) };
    println!(
        "  one incident: \"{}\" ({}, {}, {}, assigned to {}), alerts: {} listed, {published} published as their own findings, {} dropped{why}",
        i["message"].as_str().unwrap_or_default(),
        i["severity"].as_str().unwrap_or("?"),
        i["status"].as_str().unwrap_or("?"),
        i["verdict"].as_str().unwrap_or("?"),
        i["assignee"]["name"].as_str().or(i["assignee_group"]["name"].as_str()).unwrap_or("?"),
        alerts.len(),
        alerts.len() - published,
    );
}

fn show_context(output: &std::path::Path) {
    let text = std::fs::read_to_string(output).unwrap_or_default();
    let messages: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut tally: std::collections::BTreeMap<(String, String), usize> = std::collections::BTreeMap::new();
    for m in &messages {
        for (part, s) in m["context"]["enrichment"].as_object().into_iter().flatten() {
            *tally.entry((part.clone(), s["status"].as_str().unwrap_or("?").to_owned())).or_default() += 1;
        }
    }
    // The alert whose users came back with the most parts.
    let parts = |m: &serde_json::Value| -> usize {
        m["context"]["users"].as_array().into_iter().flatten().map(|u| u.as_object().map_or(0, |o| o.len())).sum::<usize>()
            + m["context"]["devices"].as_array().map_or(0, Vec::len)
    };
    let enriched = messages.iter().filter(|m| m["context"]["users"].as_array().is_some_and(|u| !u.is_empty())).max_by_key(|m| parts(m));
    if let Some(m) = enriched {
        println!("  one enriched alert: \"{}\"", m["title"].as_str().unwrap_or_default());
        for u in m["context"]["users"].as_array().into_iter().flatten() {
            let p = &u["profile"];
            println!(
                "    user {} ({}, {}): admin {}, MFA registered {}, out of office {}, presence {}",
                u["upn"].as_str().unwrap_or("?"),
                p["job_title"].as_str().unwrap_or("?"),
                p["department"].as_str().unwrap_or("?"),
                u["is_admin"],
                u["mfa"]["is_mfa_registered"],
                u["out_of_office"]["active_at_alert"],
                u["presence"]["availability"],
            );
        }
        for d in m["context"]["devices"].as_array().into_iter().flatten() {
            println!(
                "    device {}: health {}, risk {}, exposure {}",
                d["dns_name"].as_str().unwrap_or("?"),
                d["health_status"],
                d["risk_score"],
                d["exposure_level"]
            );
        }
    }
    if !tally.is_empty() {
        let line: Vec<String> = tally.iter().map(|((part, status), n)| format!("{part} {status} {n}")).collect();
        println!("  context parts across the run: {}", line.join(", "));
    }
}

/// The demo's two integration documents, as an admin would write them.
fn documents(cert: &ClientCertificate) -> Result<Vec<(IntegrationDoc, Credentials, bool)>, Failure> {
    let contoso = serde_json::json!({
        "version": 1, "id": "contoso", "tenant_id": DEFAULT_TENANT_ID, "client_id": DEFAULT_CLIENT_ID, "secret_ref": "m365-ingest/contoso",
        "organization_id": "contoso.onmicrosoft.com",
        // The files on devices and the emails its alerts name (from quarantine, or from the
        // recipient's mailbox), as evidence; and (opt-in, see docs/evidence.md's risk) the files
        // antivirus quarantined, by a restore on the device that is cleaned up after.
        "evidence": {"live_response_files": true, "quarantined_email": true, "delivered_email": true, "restore_quarantined_files": true},
        // Who the users are (profile, roles, groups, MFA, sign-ins around the alert), whether
        // they are away (automatic replies, calendar, presence), and the devices' and files'
        // Defender profiles, with each alert.
        "features": {"investigation": true, "user_context": true, "calendar": true, "device_context": true, "remediation": true},
        // What a SOC typically asks for: no informational noise, no security-testing alerts,
        // only DLP alerts of enforced policies.
        "filters": {"severities": ["low", "medium", "high"], "exclude_prelude": true, "dlp_modes": ["enforce"], "title_excludes": ["Impossible travel"]},
        // User-reported mail too, less what Microsoft found allowed by the tenant's own policy,
        // and the reports users send to the phishing mailbox (each reported email's MIME read,
        // stored and parsed), unread ones only.
        "sources": {
            "defender": "alerts",
            "email_submissions": {"enabled": true, "excluded_result_categories": ["allowedByPolicy", "allowedDueToOrganizationOverride"]},
            "phishing_mailbox": {"address": "phish@contoso.onmicrosoft.com", "filter": "isRead eq false"},
        },
    });
    let fabrikam = serde_json::json!({
        "version": 1, "id": "fabrikam", "tenant_id": FABRIKAM, "client_id": FABRIKAM_CLIENT, "secret_ref": "m365-ingest/fabrikam",
        "portal_url": "https://fabrikam.eu2.portal.cloudappsecurity.com",
        "sources": {"defender": "incidents", "cloud_apps": true},
        "output": "ocsf",
    });
    // An app whose admin has not finished: Test & Save says what is missing and saves nothing.
    let half = serde_json::json!({
        "version": 1, "id": "contoso-soc", "tenant_id": DEFAULT_TENANT_ID, "client_id": CONTOSO_SOC_CLIENT, "secret_ref": "m365-ingest/contoso-soc",
        "portal_url": "https://contoso.us2.portal.cloudappsecurity.com",
        "sources": {"defender": "incidents", "cloud_apps": true},
    });
    let doc = |v: serde_json::Value| integration_doc::from_json(&v.to_string()).map_err(|e| Failure::Run(format!("demo document: {e}")));
    Ok(vec![
        (
            doc(contoso)?,
            Credentials {
                tenant_id: DEFAULT_TENANT_ID.into(),
                client_id: DEFAULT_CLIENT_ID.into(),
                credential: Credential::Certificate {
                    certificate_pem: cert.cert_pem.clone(),
                    private_key_pem: Secret::new(cert.key_pem.clone()),
                },
            },
            true,
        ),
        (doc(fabrikam)?, creds(FABRIKAM, FABRIKAM_CLIENT, FABRIKAM_SECRET), true),
        (doc(half)?, creds(DEFAULT_TENANT_ID, CONTOSO_SOC_CLIENT, CONTOSO_SOC_SECRET), false),
    ])
}

/// Test & Save of each document against the simulator, as the `check` Lambda does it;
/// the integrations polled are those saved.
async fn test_and_save(
    sim: &Arc<Simulator>,
    http: &HttpSettings,
    cert: &ClientCertificate,
) -> Result<(Vec<Integration>, Arc<MemorySecrets>), Failure> {
    let secrets = Arc::new(MemorySecrets::new());
    let checker = Checker {
        microsoft: microsoft(sim, http, RetryPolicy::default())?,
        secrets: secrets.clone(),
        store: MemoryIntegrationStore::new(),
        writer: secrets.clone(),
        // As deployed: the functions read secrets under the stack's prefix only.
        secret_prefix: "m365-ingest/".into(),
    };
    println!("tenant simulator at {} (2 tenants)\n", sim.base_url());
    for (doc, creds, should_pass) in documents(cert)? {
        if !should_pass {
            println!("(the next one is meant to fail: its app has only SecurityAlert.Read.All and no consent for Cloud Apps)");
        }
        let report = checker
            .test_and_save(
                &doc,
                CredentialInput::New(creds),
                SaveMode::Create.by("demo (the local program, simulated tenants)"),
                GraphTime::now(),
            )
            .await;
        print!("{}", report.to_text());
        if report.passed != should_pass {
            return Err(Failure::Run(format!("Test & Save of `{}` did not come out as expected", doc.id)));
        }
    }
    let integrations = checker.store.integrations().await.map_err(|e| Failure::Run(e.to_string()))?;
    Ok((integrations, secrets))
}

fn print_summary(s: &RunSummary) {
    let outcome = serde_json::to_value(&s.outcome)
        .ok()
        .and_then(|v| v.get("outcome").and_then(|o| o.as_str().map(str::to_owned)))
        .unwrap_or_default();
    let detail = match &s.outcome {
        m365_ingest::app::polling::poll::Outcome::Partial { reason } | m365_ingest::app::polling::poll::Outcome::Skipped { reason } => {
            format!(" ({reason})")
        }
        m365_ingest::app::polling::poll::Outcome::Failed { error, .. } => format!(" ({error})"),
        m365_ingest::app::polling::poll::Outcome::Completed => String::new(),
    };
    let verdicts = if s.verdicts > 0 { format!(" ({} of them with a verdict that was pending)", s.verdicts) } else { String::new() };
    println!(
        "  {:<9} {:<18} {outcome}{detail}: {} requests, {} delivered{verdicts}, {} already delivered (overlap), {} claim checks, watermark {}",
        s.integration_id,
        s.source.as_str(),
        s.pages,
        s.delivered,
        s.suppressed,
        s.claim_checks,
        s.watermark.map(|w| w.to_string()).unwrap_or_else(|| "-".into())
    );
}
