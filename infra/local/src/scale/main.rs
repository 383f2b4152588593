//! `scale`: one deployment's fan-out at a thousand tenants, run locally. The simulator serves
//! every tenant in this process; DynamoDB, Secrets Manager and S3 are on moto; SQS is the
//! soak's stand-in (moto's ReceiveMessage slows with queue depth, soak/sqs.rs). The dispatcher
//! enqueues a job per due integration, `--workers` poller instances take jobs in batches as the
//! event source mapping would, then processors drain the intake queue. Every AWS call is
//! counted by operation (an SDK interceptor), every Microsoft request by the simulator. Prints
//! the figures and a cost model per tenant and month (cost.rs).
//!
//! ```text
//! scale [--tenants 1000] [--busy 20] [--alerts 50] [--workers 10] [--batch 4]
//! ```
//! Needs moto (AWS_ENDPOINT_URL on loopback): `infra/scripts/moto.sh start`.

mod calls;
mod cost;
#[path = "../event_source.rs"]
mod event_source;
use event_source::{consume, Stop};
#[path = "../run_stack.rs"]
mod run_stack;
#[path = "../soak/sqs.rs"]
mod sqs;

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calls::Calls;
use m365_ingest::adapters::aws::{load_sdk_config, AwsClients, DynamoIntegrations, GateStack, Principal};
use m365_ingest::config::{DispatchConfig, PollerConfig, ProcessorConfig};
use m365_ingest::domain::integration::doc::IntegrationDoc;
use m365_ingest::lambda::{dispatch, poller, processor};
use serde_json::json;
use tenant_sim::scenario::{AppSpec, TenantSpec, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use tenant_sim::{Scenario, Simulator};

/// Polls a month at the default interval of 5 minutes.
const POLLS_PER_MONTH: f64 = 30.0 * 24.0 * 12.0;
/// The functions' memory (template.yaml).
const MEMORY_GB: f64 = 0.25;

struct Options {
    tenants: usize,
    busy: usize,
    alerts: usize,
    workers: usize,
    batch: usize,
}

fn parse() -> Result<Options, String> {
    let mut o = Options { tenants: 1_000, busy: 20, alerts: 50, workers: 10, batch: 4 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let n: usize = value.parse().map_err(|_| format!("{flag} takes a whole number, not `{value}`"))?;
        match flag.as_str() {
            "--tenants" => o.tenants = n.clamp(1, 100_000),
            "--busy" => o.busy = n,
            "--alerts" => o.alerts = n,
            "--workers" => o.workers = n.clamp(1, 1_000),
            "--batch" => o.batch = n.clamp(1, 10),
            _ => return Err(format!("unknown option {flag}: scale [--tenants N] [--busy N] [--alerts N] [--workers N] [--batch N]")),
        }
    }
    o.busy = o.busy.min(o.tenants);
    Ok(o)
}

#[tokio::main]
async fn main() -> ExitCode {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("scale: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&o).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale: {e}");
            ExitCode::FAILURE
        }
    }
}

fn tenant_id(i: usize) -> String {
    format!("5ca1e000-0000-4000-8000-{i:012x}")
}

/// AWS clients whose every call is counted; SQS pointed at the stand-in. With `who`, they
/// carry that function's role key: the IAM gate holds each call to its policy in template.yaml.
async fn clients(calls: &Calls, sqs_endpoint: &str, who: Option<(&GateStack, Principal)>) -> AwsClients {
    let sdk = match who {
        Some((stack, p)) => stack.sdk_config(p),
        None => load_sdk_config().await,
    };
    let mut c = AwsClients::new(&sdk);
    c.dynamodb = aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(calls.clone()).build());
    c.secrets =
        aws_sdk_secretsmanager::Client::from_conf(aws_sdk_secretsmanager::config::Builder::from(&sdk).interceptor(calls.clone()).build());
    c.s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).interceptor(calls.clone()).build());
    c.sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk).endpoint_url(sqs_endpoint).interceptor(calls.clone()).build(),
    );
    c
}

fn per(calls: &BTreeMap<String, u64>, n: f64) -> BTreeMap<String, f64> {
    calls.iter().map(|(k, v)| (k.clone(), *v as f64 / n)).collect()
}

async fn run(o: &Options) -> Result<(), String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .map_err(|_| "AWS_ENDPOINT_URL is not set: start moto (infra/scripts/moto.sh start)".to_owned())?;
    if !endpoint.starts_with("http://127.0.0.1:") {
        return Err(format!("scale runs against moto on loopback only, not {endpoint}"));
    }
    // The tenants: idle ones (nothing new), and a few busy ones with alerts in their window.
    let setup = Instant::now();
    let mut scenario = Scenario { seed: 11, ..Scenario::default() };
    scenario.tenants = (0..o.tenants)
        .map(|i| {
            let mut t = TenantSpec {
                id: tenant_id(i),
                domain: format!("scale{i:05}.onmicrosoft.com"),
                apps: vec![AppSpec::default()],
                ..TenantSpec::default()
            };
            let busy = i < o.busy;
            t.alerts.count = if busy { o.alerts } else { 0 };
            t.alerts.incidents = if busy { (o.alerts / 5).max(1) } else { 0 };
            t.alerts.from = "-2h".into();
            t.alerts.to = "-30m".into();
            t.alerts.latency_min_secs = 5;
            t.alerts.latency_max_secs = 60;
            t.alerts.update_fraction = 0.0;
            t.cloud_apps.count = 0;
            t
        })
        .collect();
    let sim = Simulator::start(scenario).await.map_err(|e| e.to_string())?;
    let sim_started = setup.elapsed().as_secs_f64();
    let ca = std::env::temp_dir().join(format!("scale-ca-{}.pem", std::process::id()));
    sim.write_ca(&ca).map_err(|e| e.to_string())?;
    let (stand_in, sqs_endpoint) = sqs::Sqs::start().await?;
    let calls = Calls::default();
    let c = clients(&calls, &sqs_endpoint, None).await;
    let run = std::process::id();
    // No scale tenant retrieves evidence; the processor needs its queue all the same.
    let spec = |logical, secs| run_stack::QueueSpec { logical, visibility: Duration::from_secs(secs), redrive: None };
    let queues = [spec("PollJobsQueue", 300), spec("IntakeQueue", 300), spec("OutputQueue", 300), spec("EvidenceJobsQueue", 900)];
    let endpoint = std::env::var("AWS_ENDPOINT_URL").map_err(|_| "AWS_ENDPOINT_URL: start moto with infra/scripts/moto.sh".to_owned())?;
    let stack = GateStack::new(&load_sdk_config().await, &endpoint).await?;
    let resources = run_stack::create(&c, &stack, &stand_in, &endpoint, &format!("scale-{run}"), &queues).await?;
    let (table, dedup, bucket) = (resources.table.clone(), resources.dedup_table.clone(), resources.bucket.clone());
    let (jobs, intake, output, evidence) = (
        resources.queue("PollJobsQueue"),
        resources.queue("IntakeQueue"),
        resources.queue("OutputQueue"),
        resources.queue("EvidenceJobsQueue"),
    );
    let integrations = DynamoIntegrations::new(c.dynamodb.clone(), &table);
    for i in 0..o.tenants {
        let secret = format!("m365-ingest/scale-{run}-{i}");
        c.secrets
            .create_secret()
            .name(&secret)
            .secret_string(
                json!({"tenant_id": tenant_id(i), "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}).to_string(),
            )
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let mut doc = IntegrationDoc::new(&format!("tenant-{i:05}"), &tenant_id(i), DEFAULT_CLIENT_ID, &secret);
        doc.polling.lookback = m365_ingest::domain::duration_text::DurationText(Duration::from_secs(3 * 3600));
        if let Err(e) = integrations.put(&doc).await {
            // moto ignores the transaction's idempotency token, so a retried save that had
            // succeeded reports a conflict (DynamoDB would not); what counts is the record.
            let saved = m365_ingest::ports::IntegrationStore::get(&integrations, &doc.id).await.map_err(|e| e.to_string())?;
            if saved.map(|r| r.doc) != Some(doc) {
                return Err(e.to_string());
            }
        }
    }
    let base = sim.base_url().to_owned();
    let env: HashMap<&str, String> = [
        ("STATE_TABLE", table.clone()),
        ("DEDUP_TABLE", dedup.clone()),
        ("INTAKE_QUEUE_URL", intake.clone()),
        ("POLL_JOBS_QUEUE_URL", jobs.clone()),
        ("OUTPUT_QUEUE_URL", output.clone()),
        ("EVIDENCE_QUEUE_URL", evidence.clone()),
        ("ARTIFACT_BUCKET", bucket.clone()),
    ]
    .into_iter()
    .chain(run_stack::simulator_variables(&base, &ca))
    .collect();
    let get = |k: &str| env.get(k).cloned();
    let setup_secs = setup.elapsed().as_secs_f64();
    println!(
        "scale: {} tenants ({} with {} alerts each), set up in {setup_secs:.0} s (simulator {sim_started:.1} s)",
        o.tenants, o.busy, o.alerts
    );
    calls.take();
    let ms_requests_before = sim.requests().all().len();

    // Dispatch, then the pollers.
    let started = Instant::now();
    let dispatcher = dispatch::build_aws(
        &DispatchConfig::from_lookup(get).map_err(|e| e.to_string())?,
        &clients(&calls, &sqs_endpoint, Some((&stack, Principal::Dispatch))).await,
    );
    let d = dispatch::handle(&dispatcher, &json!({"source": "defender_alerts"})).await.map_err(|e| e.to_string())?;
    let dispatch_secs = started.elapsed().as_secs_f64();
    let poller_config = PollerConfig::from_lookup(get).map_err(|e| e.to_string())?;
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..o.workers {
        // Each worker is one poller instance: its own clients, caches and token cache.
        let app = Arc::new(
            poller::build_aws(&poller_config, &clients(&calls, &sqs_endpoint, Some((&stack, Principal::Poller))).await)
                .map_err(|e| e.to_string())?,
        );
        let (c, jobs, done, batch) = (c.clone(), jobs.clone(), done.clone(), o.batch);
        workers.spawn(async move {
            consume(&c.sqs, &jobs, batch as i32, Stop { empty_receives: 3, deadline: None }, |event| {
                let (app, done) = (app.clone(), done.clone());
                async move {
                    let r = app.handle(event, Instant::now() + Duration::from_secs(300)).await;
                    done.fetch_add(r.jobs.iter().filter(|j| j.end == "done").count() as u64, Ordering::Relaxed);
                    (r.response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect(), ())
                }
            })
            .await
        });
    }
    let (mut poll_invocations, mut poll_busy) = (0u64, 0.0f64);
    while let Some(r) = workers.join_next().await {
        let consumed = r.map_err(|e| e.to_string())??;
        poll_invocations += consumed.results.len() as u64;
        poll_busy += consumed.busy_secs;
    }
    let poll_secs = started.elapsed().as_secs_f64();
    let poll_calls = calls.take();
    let requests = sim.requests().all();
    let ms = &requests[ms_requests_before..];
    let graph_pages = ms.iter().filter(|r| r.path.contains("/security/")).count();
    let tokens = ms.iter().filter(|r| r.path.contains("/oauth2/")).count();
    let again = dispatch::handle(&dispatcher, &json!({"source": "defender_alerts"})).await.map_err(|e| e.to_string())?;
    let redispatch_calls = calls.take();

    // The processors on the intake queue, batches of 10 as the template's event source maps them.
    let processed = Instant::now();
    let papp = Arc::new(
        processor::build_aws(
            &ProcessorConfig::from_lookup(get).map_err(|e| e.to_string())?,
            &clients(&calls, &sqs_endpoint, Some((&stack, Principal::Processor))).await,
        )
        .map_err(|e| e.to_string())?,
    );
    let published = Arc::new(AtomicU64::new(0));
    let consumed = consume(&c.sqs, &intake, 10, Stop { empty_receives: 3, deadline: None }, |event| {
        let (papp, published) = (papp.clone(), published.clone());
        // A failed invocation fails its whole batch (SQS delivers it all again), as in Lambda.
        let all: Vec<String> = event.records.iter().filter_map(|r| r.message_id.clone()).collect();
        async move {
            match papp.handle(event).await {
                Ok((resp, counts)) => {
                    published.fetch_add(counts.published as u64, Ordering::Relaxed);
                    (resp.batch_item_failures.into_iter().map(|f| f.item_identifier).collect(), ())
                }
                Err(e) => {
                    eprintln!("scale: a processor invocation failed: {e}");
                    (all, ())
                }
            }
        }
    })
    .await?;
    let (process_invocations, process_busy) = (consumed.results.len() as u64, consumed.busy_secs);
    let process_secs = processed.elapsed().as_secs_f64();
    let denied = stack.denials().await?;
    if !denied.is_empty() {
        return Err(format!("IAM would have denied {} call(s) of the functions' code: {}", denied.len(), denied.join("; ")));
    }
    let process_calls = calls.take();
    let published = published.load(Ordering::Relaxed);
    // Microsoft's refusals over the whole run (polls and the processors' lookups): the
    // scenario's scripted ones (a fault shaped them) cannot be avoided; one a limit answered
    // (no fault) is a request the product's budgets should have held back.
    let all = sim.requests().all();
    let refused = &all[ms_requests_before..];
    let scripted = |r: &&tenant_sim::record::RecordedRequest| matches!(r.fault.as_deref(), Some("throttle" | "status"));
    let scripted_429 = refused.iter().filter(|r| r.status == 429 && scripted(r)).count();
    let limit_429: Vec<&str> = refused.iter().filter(|r| r.status == 429 && !scripted(r)).map(|r| r.path.as_str()).collect();

    // Per tenant and poll (every tenant, busy ones included: their alerts' costs are per alert below).
    let n = o.tenants as f64;
    let poll_unit = cost::Unit {
        calls: per(&poll_calls, n),
        lambda_gb_s: (poll_busy + dispatch_secs) * MEMORY_GB / n,
        lambda_invocations: (poll_invocations + 1) as f64 / n,
    };
    let alerts = published.max(1) as f64;
    let alert_unit = cost::Unit {
        calls: per(&process_calls, alerts),
        lambda_gb_s: process_busy * MEMORY_GB / alerts,
        lambda_invocations: process_invocations as f64 / alerts,
    };
    let poll_price = cost::price(&poll_unit);
    let alert_price = cost::price(&alert_unit);
    let poll_usd: f64 = poll_price.values().sum();
    let alert_usd: f64 = alert_price.values().sum();
    let secret_month = cost::PRICES.secret_month;
    let idle_month = poll_usd * POLLS_PER_MONTH + secret_month;
    let busy_month = idle_month + alert_usd * 1_000.0 * 30.0;
    let scans: u64 = poll_calls.iter().chain(process_calls.iter()).filter(|(k, _)| k.ends_with(".Scan")).map(|(_, v)| v).sum();
    let get_items_per_batch = process_calls.get("DynamoDB.GetItem").copied().unwrap_or(0) as f64 / process_invocations.max(1) as f64;
    let report = json!({
        "tenants": o.tenants, "busy_tenants": o.busy, "alerts_per_busy_tenant": o.alerts, "workers": o.workers, "batch": o.batch,
        "dispatch": {"due": d.due, "enqueued": d.enqueued, "seconds": dispatch_secs},
        "poll_all_seconds": poll_secs, "poll_interval_seconds": 300, "jobs_done": done.load(Ordering::Relaxed),
        "poller_invocations": poll_invocations, "poller_busy_seconds": poll_busy,
        "graph_requests": graph_pages, "token_requests": tokens,
        "answered_429": {"scripted_by_the_scenario": scripted_429, "by_a_limit": limit_429.len()},
        "redispatch": {"due": again.due, "enqueued": again.enqueued, "calls": redispatch_calls},
        "poll_calls": poll_calls,
        "process": {"seconds": process_secs, "invocations": process_invocations, "published": published, "calls": process_calls,
                     "state_table_get_items_per_batch": get_items_per_batch, "scans": scans},
        "cost_per_tenant_poll_usd": poll_price, "cost_per_alert_usd": alert_price,
        "month": {"idle_tenant_usd": idle_month, "tenant_with_1000_alerts_a_day_usd": busy_month,
                  "deployment_1000_idle_usd": idle_month * 1_000.0, "deployment_100000_idle_usd": idle_month * 100_000.0,
                  "deployment_1000_busy_usd": busy_month * 1_000.0, "deployment_100000_busy_usd": busy_month * 100_000.0},
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    println!(
        "scale: {} tenants polled once in {poll_secs:.1} s (interval 300 s) by {} pollers; {graph_pages} Graph requests ({:.2} per tenant; minimum 1), {tokens} tokens; 429 answers: {scripted_429} scripted by the scenario, {} by a limit; {scans} scans; {get_items_per_batch:.2} state-table reads per processor batch; ${idle_month:.4} per idle tenant-month, ${busy_month:.4} with 1,000 alerts a day",
        o.tenants,
        o.workers,
        graph_pages as f64 / n,
        limit_429.len()
    );
    if !limit_429.is_empty() {
        return Err(format!(
            "{} request(s) met a limit the budgets should have kept to (429 without a scripted fault), first: {}",
            limit_429.len(),
            limit_429[0]
        ));
    }
    if d.enqueued != o.tenants || again.enqueued != 0 || scans != 0 {
        return Err(format!(
            "expected {} jobs, none on the second dispatch and no scan: {} / {} / {scans}",
            o.tenants, d.enqueued, again.enqueued
        ));
    }
    Ok(())
}
