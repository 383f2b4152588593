//! `demo`: the whole path on embedded defaults: the tenant simulator in-process (two tenants,
//! one polled for alerts, one for incidents and Cloud Apps alerts, with some throttling and a
//! token expiry); Test & Save of both integrations into a local store; two poll passes into a
//! local queue written as NDJSON; the processor's output, and the evidence its alerts name
//! (files through live response, quarantined emails through Exchange Online, delivered ones
//! from their recipients' mailboxes through Graph).
//!
//! Here: the run itself. Its children hold the simulated tenants, their clients and Test & Save
//! (`tenants`), what a downstream system asks afterwards (`downstream`), and what is printed
//! along the way (`report`).

mod downstream;
mod report;
mod tenants;

use std::sync::Arc;
use std::time::{Duration, Instant};

use downstream::{hunting_query, remediation_dry_run};
use m365_ingest::adapters::graph::context::MicrosoftContext;
use m365_ingest::adapters::graph::{HttpSettings, RetryPolicy};
use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryCursorStore};
use m365_ingest::adapters::local::{MemoryDedupStore, MemoryDelayQueue, MemoryEvidenceJobs};
use m365_ingest::app::evidence::setup::{Evidence, EvidenceSettings};
use m365_ingest::app::polling::poll::Poller;
use m365_ingest::app::processing::enrich::{EnrichSettings, Enricher};
use m365_ingest::app::processing::processor::{ProcessSettings, Processor};
use m365_ingest::ports::{EvidenceWith, PollWith};
use m365_ingest::sources::settings::DeliverySettings;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::Source;
use report::{print_summary, progress, show_context, show_incident};
use tenant_sim::scenario::DEFAULT_TENANT_ID;
use tenant_sim::testing::ClientCertificate;
use tenant_sim::Simulator;
use tenants::{microsoft, scenario, test_and_save, SimClock};

use crate::args::DemoOptions;
use crate::Failure;

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
