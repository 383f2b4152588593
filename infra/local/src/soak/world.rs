//! What a soak runs against: AWS on moto (the stack's table, queues with their redrive, bucket),
//! the tenant simulator as its own process with every fault switched on, and integrations saved
//! through Test & Save as an operator would.

use std::time::Duration;

use m365_ingest::adapters::aws::{load_sdk_config, AwsClients, GateStack, Principal};
use m365_ingest::app::test_and_save::check::{CredentialInput, SaveMode};
use m365_ingest::config::{http_settings, CheckConfig};
use m365_ingest::domain::integration::doc as integration_doc;
use m365_ingest::domain::integration::{Credential, Credentials};
use m365_ingest::secret::Secret;
use m365_ingest::GraphTime;
use rand::{Rng, SeedableRng};
use tenant_sim::scenario::{AppSpec, TenantSpec, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use tenant_sim::{FaultKind, FaultSpec, Scenario};

use super::run_stack::{self, QueueSpec};
pub use super::sim_process::SimProcess;
use super::sqs::Sqs;
use super::Options;

/// The integrations' window: the smallest cover the product accepts (delay + overlap = 10 min).
pub const INGESTION_DELAY_SECS: i64 = 300;
pub const OVERLAP_SECS: i64 = 300;
/// The intake queue's visibility and the processor's claims, scaled down from the template's
/// (900 s and 300 s) in the same order: timeout < claim < visibility.
pub const PROCESSOR_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEDUP_CLAIM_SECS: u64 = 25;
pub const INTAKE_VISIBILITY_SECS: u64 = 40;
pub const POLLER_TIMEOUT: Duration = Duration::from_secs(40);
/// The poll-jobs queue's visibility and the dispatcher's guard, scaled from the template's
/// (1,800 s and 1,200 s): both longer than a poller runs.
pub const POLL_JOBS_VISIBILITY_SECS: u64 = 60;
pub const DISPATCH_GUARD_SECS: u64 = 60;
pub const DISPATCH_TIMEOUT: Duration = Duration::from_secs(20);
/// A job polls this long before its continuation takes over.
pub const JOB_SLICE_SECS: u64 = 10;
/// `$top` of the pollers; the simulator cuts pages shorter still, without a nextLink.
pub const PAGE_SIZE: usize = 50;
const PAGE_CAP: usize = 37;

pub struct Resources {
    /// DynamoDB, S3 and Secrets Manager on moto; SQS on the soak's own (`sqs.rs` says why).
    /// The harness's: it creates, inspects and plays Lambda's event source mappings.
    pub aws: AwsClients,
    /// The stack as the IAM gate knows it: each function runs with its role's key.
    pub stack: GateStack,
    pub endpoint: String,
    pub sqs_endpoint: String,
    pub sqs: std::sync::Arc<Sqs>,
    pub table: String,
    pub dedup_table: String,
    pub intake: String,
    pub intake_dlq: String,
    pub poll_jobs: String,
    pub poll_jobs_dlq: String,
    pub output: String,
    pub evidence: String,
    pub bucket: String,
}

pub async fn resources(run: &str) -> Result<Resources, String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").map_err(|_| {
        "AWS_ENDPOINT_URL is not set: start moto first (`eval \"$(infra/scripts/moto.sh start)\"`), or use infra/scripts/soak.sh".to_owned()
    })?;
    if !(endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:")) {
        return Err(format!("the soak runs against moto on loopback only, not {endpoint}"));
    }
    let sdk = load_sdk_config().await;
    let mut aws = AwsClients::new(&sdk);
    let (sqs, sqs_endpoint) = Sqs::start().await?;
    // As template.yaml: five receives from the intake queue, three from the poll-jobs queue,
    // then their DLQs. The soak's integrations retrieve no evidence; the processor needs its
    // queue all the same.
    let spec = |logical, secs, redrive| QueueSpec { logical, visibility: Duration::from_secs(secs), redrive };
    let queues = [
        spec("IntakeDeadLetterQueue", 30, None),
        spec("IntakeQueue", INTAKE_VISIBILITY_SECS, Some(("IntakeDeadLetterQueue", 5))),
        spec("OutputQueue", 30, None),
        spec("EvidenceJobsQueue", 900, None),
        spec("PollJobsDeadLetterQueue", 30, None),
        spec("PollJobsQueue", POLL_JOBS_VISIBILITY_SECS, Some(("PollJobsDeadLetterQueue", 3))),
    ];
    // Every call of the functions' code is authorized against template.yaml's policies.
    let stack = GateStack::new(&sdk, &endpoint).await?;
    let run_stack = run_stack::create(&aws, &stack, &sqs, &endpoint, &format!("soak-{run}"), &queues).await?;
    aws.sqs = aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(&sdk).endpoint_url(&sqs_endpoint).build());
    Ok(Resources {
        aws,
        stack,
        endpoint,
        sqs_endpoint,
        sqs,
        intake: run_stack.queue("IntakeQueue"),
        intake_dlq: run_stack.queue("IntakeDeadLetterQueue"),
        poll_jobs: run_stack.queue("PollJobsQueue"),
        poll_jobs_dlq: run_stack.queue("PollJobsDeadLetterQueue"),
        output: run_stack.queue("OutputQueue"),
        evidence: run_stack.queue("EvidenceJobsQueue"),
        table: run_stack.table,
        dedup_table: run_stack.dedup_table,
        bucket: run_stack.bucket,
    })
}

pub fn tenant_id(seed: u64, i: usize) -> String {
    format!("{:08x}-5a0c-4000-8000-{:012x}", seed as u32, i)
}

/// Every fault the simulator has, at rates a bad day on Microsoft's side could show, plus
/// storms of 429s on consecutive requests.
pub fn scenario(o: &Options) -> Scenario {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(o.seed);
    let mut s = Scenario { seed: o.seed, ..Scenario::default() };
    let per_tenant = o.alerts.div_ceil(o.tenants);
    s.tenants = (0..o.tenants)
        .map(|i| {
            let mut t = TenantSpec {
                id: tenant_id(o.seed, i),
                domain: format!("soak{i:03}.onmicrosoft.com"),
                apps: vec![AppSpec::default()],
                ..TenantSpec::default()
            };
            let a = &mut t.alerts;
            a.count = per_tenant;
            a.incidents = (per_tenant / 4).max(1);
            // First versions from one full cover before the start to the last moment the
            // window can reach while the soak is active.
            a.from = format!("-{}s", INGESTION_DELAY_SECS + OVERLAP_SECS);
            a.to = format!("{}s", o.seconds as i64 - INGESTION_DELAY_SECS);
            // Late arrivals: up to 9 of the 10 minutes the window covers.
            a.latency_min_secs = 5;
            a.latency_max_secs = INGESTION_DELAY_SECS + OVERLAP_SECS - 60;
            a.update_fraction = 0.3;
            a.max_updates = 3;
            a.update_gap_min_secs = 30;
            a.update_gap_max_secs = 600;
            t.cloud_apps.count = 0;
            t
        })
        .collect();
    s.graph.ignore_orderby = true;
    s.graph.shuffle_ties = true;
    s.graph.page_cap = PAGE_CAP;
    s.tokens.lifetime_secs = 600;
    let graph = "/v1.0/security";
    s.faults = vec![
        FaultSpec::new(graph, FaultKind::Throttle { retry_after_secs: 1 }).at_rate(0.03),
        FaultSpec::new(graph, FaultKind::Status { status: 503, retry_after_secs: Some(1) }).at_rate(0.02),
        FaultSpec::new(graph, FaultKind::Status { status: 500, retry_after_secs: None }).at_rate(0.01),
        FaultSpec::new(graph, FaultKind::Status { status: 504, retry_after_secs: None }).at_rate(0.005),
        FaultSpec::new(graph, FaultKind::Truncate).at_rate(0.02),
        FaultSpec::new(graph, FaultKind::Slow { delay_ms: 1_500 }).at_rate(0.01),
        FaultSpec::new(graph, FaultKind::ExpireToken).at_rate(0.01),
    ];
    // Storms: every ~150 Graph requests, 8–20 consecutive ones are throttled.
    let mut storm = Vec::new();
    let mut at = 0u64;
    for _ in 0..(o.seconds / 10).max(3) {
        at += rng.gen_range(100..200);
        let len = rng.gen_range(8..=20);
        storm.extend(at..at + len);
        at += len;
    }
    s.faults.insert(0, FaultSpec::new(graph, FaultKind::Throttle { retry_after_secs: 2 }).on(&storm));
    for t in &s.tenants {
        s.faults
            .push(FaultSpec::new(&format!("/{}/oauth2", t.id), FaultKind::Status { status: 503, retry_after_secs: None }).at_rate(0.05));
    }
    s
}

/// The check function's code as the stack runs it (its role through the IAM gate), pointed at
/// the simulator at `base_url`.
pub fn checker(res: &Resources, base_url: &str, ca_file: &std::path::Path) -> Result<m365_ingest::lambda::check::AwsCheckApp, String> {
    let simulator = run_stack::simulator_variables(base_url, ca_file);
    let env = |k: &str| match k {
        "STATE_TABLE" => Some(res.table.clone()),
        _ => simulator.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone()),
    };
    let config = CheckConfig {
        state_table: res.table.clone(),
        secret_prefix: "m365-ingest/".into(),
        http: http_settings(&env).map_err(|e| e.to_string())?,
    };
    m365_ingest::lambda::check::build_aws(&config, &res.stack.clients(Principal::Check)).map_err(|e| e.to_string())
}

/// Test & Save of one integration per tenant, through the check function's code against the
/// simulator process and moto (faults and all: a failed check is tried again, as an operator
/// would), one every `stagger`: tenants added over time fall due at different moments.
pub async fn save_integrations(res: &Resources, sim: &SimProcess, scenario: &Scenario, stagger: Duration) -> Result<Vec<String>, String> {
    let checker = checker(res, &sim.base_url, &sim.ca_file)?;
    let mut ids = Vec::new();
    for (i, t) in scenario.tenants.iter().enumerate() {
        let id = format!("soak-{i:03}");
        let doc = integration_doc::from_toml(&format!(
            r#"version = 1
id = "{id}"
tenant_id = "{tenant}"
client_id = "{DEFAULT_CLIENT_ID}"
secret_ref = "m365-ingest/{id}"
organization_id = "{domain}"
[polling]
interval = "1m"
lookback = "1h"
ingestion_delay = "{INGESTION_DELAY_SECS}s"
overlap = "{OVERLAP_SECS}s"
[sources]
defender = "alerts"
"#,
            tenant = t.id,
            domain = t.domain
        ))
        .map_err(|e| format!("the soak's integration document: {e}"))?;
        let creds = Credentials {
            tenant_id: t.id.clone(),
            client_id: DEFAULT_CLIENT_ID.into(),
            credential: Credential::ClientSecret(Secret::new(DEFAULT_CLIENT_SECRET)),
        };
        let mut last = String::new();
        let mut saved = false;
        for _ in 0..5 {
            let report = checker
                .test_and_save(
                    &doc,
                    CredentialInput::New(creds.clone()),
                    SaveMode::Create.by("soak (the check function's code)"),
                    GraphTime::now(),
                )
                .await;
            if report.passed && report.not_saved.is_none() {
                saved = true;
                break;
            }
            last = report.to_text();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if !saved {
            return Err(format!("Test & Save of {id} failed five times:\n{last}"));
        }
        ids.push(id);
        if i + 1 < scenario.tenants.len() {
            tokio::time::sleep(stagger).await;
        }
    }
    Ok(ids)
}
