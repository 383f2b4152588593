//! `soak`: the dispatcher, the poller and the processor as Lambda runs them (their bootstraps,
//! separate processes, fed through the Lambda Runtime API, the pollers and processors by event
//! source mappings), against the tenant simulator as a process with every fault on and AWS on
//! moto behind the IAM gate with AWS-side faults at steady rates; dispatches overlap and every
//! process is SIGKILLed at random moments. At the end the
//! output queue is compared with the simulator's record.
//!
//! ```text
//! soak [--seconds N] [--alerts N] [--tenants N] [--seed N] [--kill-rate P] [--aws-faults SCALE] [--out DIR]
//! soak --memory [--out DIR]
//! ```
//! `--memory` measures the processor's worst batch instead (memory.rs).
//!
//! Needs moto (AWS_ENDPOINT_URL on loopback) and the binaries beside this one (`dispatch`,
//! `poller`, `processor`, `tenant-sim`): `infra/scripts/soak.sh` builds and starts everything.

// The report is one json! literal of some forty fields.
#![recursion_limit = "256"]

mod drive;
mod lambda;
mod memory;
#[path = "../run_stack.rs"]
mod run_stack;
mod sim_process;
mod sqs;
mod verdict;
mod world;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drive::{Chaos, Pool, Tally};
use lambda::Function;
use m365_ingest::adapters::aws::Principal;

const USAGE: &str = "usage: soak [--seconds N] [--alerts N] [--tenants N] [--seed N] [--kill-rate P] [--aws-faults SCALE] [--out DIR]\n       soak --memory [--out DIR]   (the processor's worst batch under 256 MB: ten 30 MB quarantined emails)";

/// AWS-side faults per call of the functions' code at `--aws-faults 1` (kinds in
/// infra/aws-gate/faults.py): throttling and 500s of DynamoDB (some after the write took effect),
/// delayed conditional writes (races), SQS 500s (some after the send) and batches with failed
/// entries, S3 SlowDown, Secrets Manager throttling.
const AWS_FAULT_RATES: [(&str, f64); 9] = [
    ("dynamodb_throttle", 0.02),
    ("dynamodb_500", 0.005),
    ("dynamodb_500_after", 0.005),
    ("dynamodb_race_delay", 0.05),
    ("sqs_500", 0.01),
    ("sqs_500_after", 0.005),
    ("sqs_batch_partial", 0.02),
    ("s3_slowdown", 0.02),
    ("secrets_throttle", 0.05),
];

#[derive(Debug, Clone)]
pub struct Options {
    /// How long faults and kills go on; then the soak settles (no kills) until everything owed
    /// has had its chance.
    pub seconds: u64,
    pub alerts: usize,
    pub tenants: usize,
    pub seed: u64,
    /// Share of invocations killed (SIGKILL) at a random moment.
    pub kill_rate: f64,
    /// AWS fault rates as a multiple of AWS_FAULT_RATES (0: none).
    pub aws_faults: f64,
    pub out: PathBuf,
    /// Measure the processor's worst batch instead (memory.rs).
    pub memory: bool,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        seconds: 600,
        alerts: 12_000,
        tenants: 4,
        seed: 1,
        kill_rate: 0.2,
        aws_faults: 1.0,
        out: PathBuf::from("out/soak"),
        memory: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        let number = |name: &str, v: String| v.parse::<u64>().map_err(|_| format!("{name} takes a whole number, not `{v}`"));
        match flag.as_str() {
            "--seconds" => o.seconds = number("--seconds", value("--seconds")?)?.clamp(30, 86_400),
            "--alerts" => o.alerts = number("--alerts", value("--alerts")?)? as usize,
            "--tenants" => o.tenants = (number("--tenants", value("--tenants")?)? as usize).clamp(1, 100),
            "--seed" => o.seed = number("--seed", value("--seed")?)?,
            "--kill-rate" => {
                let v = value("--kill-rate")?;
                o.kill_rate =
                    v.parse::<f64>().ok().filter(|p| (0.0..=1.0).contains(p)).ok_or(format!("--kill-rate takes 0 to 1, not `{v}`"))?;
            }
            "--aws-faults" => {
                let v = value("--aws-faults")?;
                o.aws_faults =
                    v.parse::<f64>().ok().filter(|p| (0.0..=10.0).contains(p)).ok_or(format!("--aws-faults takes 0 to 10, not `{v}`"))?;
            }
            "--out" => o.out = PathBuf::from(value("--out")?),
            "--memory" => o.memory = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> ExitCode {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let outcome = if o.memory { memory::run(&o.out).await } else { run(&o).await };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

fn sibling(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = me.with_file_name(name);
    if !path.exists() {
        return Err(format!("{} is missing: build it beside soak (cargo build --release --bin {name})", path.display()));
    }
    Ok(path)
}

async fn run(o: &Options) -> Result<bool, String> {
    let run_id = format!("{}-{}", o.seed, std::process::id());
    let dir = o.out.join(&run_id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let res = Arc::new(world::resources(&run_id).await?);
    let scenario = world::scenario(o);
    let sim = world::SimProcess::start(&sibling("tenant-sim")?, &scenario, &dir).await?;
    println!(
        "soak {run_id}: {} tenants, {} alerts planned, {} s of faults and kills; logs in {}",
        o.tenants,
        o.alerts,
        o.seconds,
        dir.display()
    );

    let common = vec![
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ("AWS_ENDPOINT_URL".to_owned(), res.endpoint.clone()),
        ("AWS_ENDPOINT_URL_SQS".to_owned(), res.sqs_endpoint.clone()),
        ("STATE_TABLE".to_owned(), res.table.clone()),
        ("ARTIFACT_BUCKET".to_owned(), res.bucket.clone()),
        ("AWS_LAMBDA_LOG_LEVEL".to_owned(), "info".to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT".to_owned(), "JSON".to_owned()),
    ];
    let mut dispatch_env = common.clone();
    dispatch_env.extend([
        ("POLL_JOBS_QUEUE_URL".to_owned(), res.poll_jobs.clone()),
        ("DISPATCH_GUARD_SECS".to_owned(), world::DISPATCH_GUARD_SECS.to_string()),
    ]);
    let mut poller_env = common.clone();
    poller_env.extend([
        ("INTAKE_QUEUE_URL".to_owned(), res.intake.clone()),
        ("POLL_JOBS_QUEUE_URL".to_owned(), res.poll_jobs.clone()),
        ("JOB_SLICE_SECS".to_owned(), world::JOB_SLICE_SECS.to_string()),
        ("SAFETY_MARGIN_SECS".to_owned(), "5".to_owned()),
        // Small pages: many requests per run, so faults land mid-window.
        ("ALERT_PAGE_SIZE".to_owned(), world::PAGE_SIZE.to_string()),
    ]);
    poller_env.extend(run_stack::simulator_variables(&sim.base_url, &sim.ca_file).map(|(k, v)| (k.to_owned(), v)));
    let mut processor_env = common;
    processor_env.extend([
        ("OUTPUT_QUEUE_URL".to_owned(), res.output.clone()),
        ("EVIDENCE_QUEUE_URL".to_owned(), res.evidence.clone()),
        ("DEDUP_TABLE".to_owned(), res.dedup_table.clone()),
        ("DEDUP_CLAIM_SECS".to_owned(), world::DEDUP_CLAIM_SECS.to_string()),
    ]);
    // Each function with its role's keys: the IAM gate holds every call to its policy.
    let function = |name: &str, who: Principal, mut env: Vec<(String, String)>| -> Result<Arc<Pool>, String> {
        env.extend(res.stack.env(who).into_iter().map(|(k, v)| (k.to_owned(), v)));
        env.push(lambda::handler(name));
        Ok(Arc::new(Pool::new(Function { name: name.into(), binary: sibling("bootstrap")?, env, logs: dir.clone() })))
    };
    let dispatchers = function("dispatch", Principal::Dispatch, dispatch_env)?;
    let pollers = function("poller", Principal::Poller, poller_env)?;
    let processors = function("processor", Principal::Processor, processor_env)?;
    let chaos = Arc::new(Chaos { killing: AtomicBool::new(true), kill_rate: o.kill_rate });
    let tally = Arc::new(Tally::default());
    if o.aws_faults > 0.0 {
        let rates: serde_json::Map<String, serde_json::Value> =
            AWS_FAULT_RATES.iter().map(|(k, r)| ((*k).to_owned(), serde_json::json!(r * o.aws_faults))).collect();
        res.stack.inject_faults(&serde_json::Value::Object(rates), o.seed).await?;
        tally.aws_faults.store(true, Ordering::Relaxed);
    }
    let stop = Arc::new(AtomicBool::new(false));

    let started = Instant::now();
    let active_until = started + Duration::from_secs(o.seconds);
    let mut workers = tokio::task::JoinSet::new();
    // Two pollers and two processors at a time, as the event source mappings scale out.
    for _ in 0..2 {
        workers.spawn(drive::feed_pollers(res.clone(), pollers.clone(), chaos.clone(), tally.clone(), stop.clone()));
        workers.spawn(drive::feed_processors(res.clone(), processors.clone(), chaos.clone(), tally.clone(), stop.clone()));
    }
    workers.spawn(drive::consume_output(res.clone(), tally.clone(), stop.clone()));
    let progress = {
        let tally = tally.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                println!(
                    "  {:>5} s: {} dispatches, {} jobs enqueued, {} poller invocations, {} kills, {} output messages",
                    started.elapsed().as_secs(),
                    tally.dispatch_invocations.load(Ordering::Relaxed),
                    tally.jobs_enqueued.load(Ordering::Relaxed),
                    tally.poll_invocations.load(Ordering::Relaxed),
                    tally.dispatcher_kills.load(Ordering::Relaxed)
                        + tally.poller_kills.load(Ordering::Relaxed)
                        + tally.processor_kills.load(Ordering::Relaxed),
                    tally.output_messages.load(Ordering::Relaxed),
                );
            }
        })
    };
    let schedule = tokio::spawn(drive::schedule(dispatchers.clone(), chaos.clone(), tally.clone(), Duration::from_secs(15), active_until));
    let stagger = Duration::from_secs(60 / o.tenants as u64);
    let integrations = world::save_integrations(&res, &sim, &scenario, stagger).await?;
    let tenant_of: BTreeMap<String, String> = integrations.iter().cloned().zip(scenario.tenants.iter().map(|t| t.id.clone())).collect();
    schedule.await.map_err(|e| format!("the schedule stopped: {e}"))?;

    // Settle: no more kills; more dispatches until every tenant has a complete run after the
    // last kill (a killed poller's job comes back after the visibility timeout, a killed
    // dispatcher's pair after the guard), then the queues drain.
    chaos.killing.store(false, Ordering::Relaxed);
    println!("  {:>5} s: kills off, settling", started.elapsed().as_secs());
    drive::schedule(dispatchers.clone(), chaos.clone(), tally.clone(), Duration::from_secs(15), Instant::now() + Duration::from_secs(150))
        .await;
    let drain_by = Instant::now() + Duration::from_secs(300);
    while (drive::depth(&res, &res.poll_jobs).await > 0 || drive::depth(&res, &res.intake).await > 0) && Instant::now() < drain_by {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}
    progress.abort();
    while drive::drain_once(&res, &tally).await > 0 {}
    let intake_left = drive::depth(&res, &res.intake).await;
    let intake_dlq = drive::depth(&res, &res.intake_dlq).await;
    let jobs_left = drive::depth(&res, &res.poll_jobs).await;
    let jobs_dlq = drive::depth(&res, &res.poll_jobs_dlq).await;
    let record = sim.stop().await?;

    let polled = drive::runs_from_logs(&dir)?;
    let runs = polled.completed.clone();
    let published = tally.published.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let at_risk = tally.in_killed_batches.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut after_aws_errors = tally.after_aws_errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    after_aws_errors.extend(res.sqs.sent_then_failed(&res.output).iter().map(|b| drive::version_key(b)));
    let aws_faults = res.stack.injected_faults().await?;
    let v = verdict::judge(&record, &tenant_of, &runs, &published, &at_risk, &after_aws_errors)?;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let report = serde_json::json!({
        "seconds_with_faults": o.seconds,
        "seconds_total": started.elapsed().as_secs(),
        "tenants": o.tenants,
        "seed": o.seed,
        "alerts": v.alerts,
        "versions_in_simulator": v.versions_in_simulator,
        "versions_published": v.versions_published,
        "dispatch_invocations": load(&tally.dispatch_invocations),
        "overlapping_dispatch_pairs": load(&tally.overlapping_dispatches),
        "jobs_enqueued_by_dispatch": load(&tally.jobs_enqueued),
        "poller_invocations": load(&tally.poll_invocations),
        "job_item_failures": load(&tally.job_item_failures),
        "poll_cycles": runs.len() as u64 + polled.partial,
        "completed_runs": runs.len(),
        "partial_runs": polled.partial,
        "failed_runs": polled.failed,
        "failed_run_examples": polled.failures,
        "runs_skipped_for_a_lease": polled.skipped_for_a_lease,
        "kills": {"dispatch": load(&tally.dispatcher_kills), "poller": load(&tally.poller_kills), "processor": load(&tally.processor_kills)},
        "processes_started": {"dispatch": dispatchers.started(), "poller": pollers.started(), "processor": processors.started()},
        "crashes": load(&tally.crashes),
        "handler_errors": {"dispatch": load(&tally.dispatcher_errors), "poller": load(&tally.poller_errors), "processor": load(&tally.processor_errors)},
        "processor_invocations": load(&tally.processor_invocations),
        "processor_item_failures": load(&tally.processor_item_failures),
        "delivered_to_intake": polled.delivered_to_intake,
        "quarantined": polled.quarantined,
        "output_messages": load(&tally.output_messages),
        "simulator": {"requests": record["requests"], "faults_injected": record["faults"], "statuses": record["statuses"]},
        "aws_faults_injected": aws_faults,
        "intake_left": intake_left,
        "intake_dlq": intake_dlq,
        "poll_jobs_left": jobs_left,
        "poll_jobs_dlq": jobs_dlq,
        "lost": v.lost,
        "duplicated_versions": v.duplicated_versions,
        "extra_copies": v.extra_copies,
        "duplicates_after_a_processor_kill": v.duplicates_after_a_processor_kill,
        "duplicates_after_an_aws_error": v.duplicates_after_an_aws_error,
        "unexplained_duplicates": v.unexplained_duplicates,
        "phantoms": v.phantoms,
        "lost_examples": v.lost_examples,
        "duplicate_examples": v.duplicate_examples,
        "phantom_examples": v.phantom_examples,
    });
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    std::fs::write(dir.join("report.json"), &text).map_err(|e| format!("cannot write the report: {e}"))?;
    println!("{text}");
    let faults: u64 = record["faults"].as_object().map(|m| m.values().filter_map(|x| x.as_u64()).sum()).unwrap_or(0);
    let aws: u64 = aws_faults.values().filter_map(|x| x.as_u64()).sum();
    println!(
        "soak: {} alerts ({} versions published) over {} poll cycles, {} kills, {} Microsoft faults and {} AWS faults injected: {} lost, {} duplicated ({} after a processor kill between send and mark, {} after an AWS error, {} unexplained), {} phantom, {} in the intake DLQ, {} in the poll-jobs DLQ",
        v.alerts,
        v.versions_published,
        runs.len() as u64 + polled.partial,
        load(&tally.dispatcher_kills) + load(&tally.poller_kills) + load(&tally.processor_kills),
        faults,
        aws,
        v.lost,
        v.duplicated_versions,
        v.duplicates_after_a_processor_kill,
        v.duplicates_after_an_aws_error,
        v.unexplained_duplicates,
        v.phantoms,
        intake_dlq,
        jobs_dlq
    );
    Ok(v.lost == 0 && v.unexplained_duplicates == 0 && v.phantoms == 0 && intake_dlq == 0 && intake_left == 0 && jobs_dlq == 0)
}
