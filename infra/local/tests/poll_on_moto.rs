//! `m365-ingest poll` against configured endpoints: the simulator as the tenant, moto as AWS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use aws_sdk_sqs::types::QueueAttributeName;
use m365_ingest::adapters::aws::template_stack;
use m365_ingest::adapters::aws::{load_sdk_config, AwsClients, DynamoIntegrations, GateStack, Principal};
use m365_ingest::domain::integration::doc::IntegrationDoc;
use serde_json::Value;
use tenant_sim::scenario::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
use tenant_sim::{Scenario, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_m365-ingest");
const TEMPLATE: &str = include_str!("../../../template.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_runs_the_lambdas_code_against_configured_endpoints() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL: run `bash infra/scripts/test.sh`, which starts moto");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "loopback only");
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let mut scenario = Scenario::default();
    scenario.tenants[0].alerts.count = 40;
    let sim = Simulator::start(scenario).await.unwrap();
    let c = AwsClients::new(&load_sdk_config().await);
    let stack = GateStack::new(&load_sdk_config().await, &endpoint).await.unwrap();
    let suffix =
        format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos());
    // The README's local path: `m365-ingest stack` makes template.yaml's stack and names it.
    let made = Command::new(BIN).args(["stack", "--prefix", &format!("cli-{suffix}")]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let exports = String::from_utf8(made.stdout).unwrap();
    let var = |name: &str| {
        let line =
            exports.lines().find_map(|l| l.strip_prefix(&format!("export {name}='"))).unwrap_or_else(|| panic!("{name} in {exports}"));
        line.trim_end_matches('\'').to_owned()
    };
    let (table, queue, jobs, bucket) = (var("STATE_TABLE"), var("INTAKE_QUEUE_URL"), var("POLL_JOBS_QUEUE_URL"), var("ARTIFACT_BUCKET"));
    for (name, logical) in template_stack::variables(TEMPLATE) {
        if template_stack::resources(TEMPLATE).unwrap().iter().any(|r| r.logical_id == logical) {
            assert!(exports.contains(&format!("export {name}='")), "{name} ({logical}) is exported: {exports}");
        }
    }
    // As template.yaml: three receives, then the dead-letter queue; five for the intake.
    for (url, dlq, count) in [(&jobs, "PollJobsDeadLetterQueue", 3), (&queue, "IntakeDeadLetterQueue", 5)] {
        let attrs = c.sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::All).send().await.unwrap();
        let policy: Value = serde_json::from_str(attrs.attributes().unwrap().get(&QueueAttributeName::RedrivePolicy).unwrap()).unwrap();
        assert!(policy["deadLetterTargetArn"].as_str().unwrap().ends_with(&format!("cli-{suffix}-{dlq}")), "{policy}");
        assert_eq!(policy["maxReceiveCount"].as_u64(), Some(count), "{policy}");
    }
    // Made again: what exists is kept.
    let again = Command::new(BIN).args(["stack", "--prefix", &format!("cli-{suffix}")]).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(String::from_utf8(again.stdout).unwrap(), exports);
    stack.register_named("StateTable", &table).await.unwrap();
    stack.register_queue("IntakeQueue", &queue).await.unwrap();
    stack.register_queue("PollJobsQueue", &jobs).await.unwrap();
    stack.register_named("ArtifactBucket", &bucket).await.unwrap();
    let secret = format!("m365-ingest/cli-{suffix}");
    c.secrets
        .create_secret()
        .name(&secret)
        .secret_string(format!(
            r#"{{"tenant_id":"{DEFAULT_TENANT_ID}","client_id":"{DEFAULT_CLIENT_ID}","client_secret":"{DEFAULT_CLIENT_SECRET}"}}"#
        ))
        .send()
        .await
        .unwrap();
    let doc = IntegrationDoc::new("contoso", DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID, &secret);
    DynamoIntegrations::new(c.dynamodb.clone(), &table).put(&doc).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    sim.write_ca(&ca).unwrap();
    let base = sim.base_url().to_owned();
    // The poller's role for the process, the dispatcher's through its profile (as deployed).
    let profiles = dir.path().join("credentials");
    std::fs::write(
        &profiles,
        format!("[dispatch]\naws_access_key_id = {}\naws_secret_access_key = gate\n", stack.access_key(Principal::Dispatch)),
    )
    .unwrap();
    let poller_env = stack.env(Principal::Poller);
    let (bin_table, bin_queue, bin_jobs, bin_bucket, bin_ca) =
        (table.clone(), queue.clone(), jobs.clone(), bucket.clone(), ca.display().to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["poll", "--source", "defender_alerts", "--seconds", "120"])
            .env("STATE_TABLE", bin_table)
            .env("INTAKE_QUEUE_URL", bin_queue)
            .env("POLL_JOBS_QUEUE_URL", bin_jobs)
            .env("ARTIFACT_BUCKET", bin_bucket)
            .env("LOGIN_BASE_URL", &base)
            .env("GRAPH_BASE_URL", &base)
            .env("EXTRA_CA_BUNDLE_FILE", bin_ca)
            .env("ALLOW_NON_MICROSOFT_HOSTS", "true")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .envs(poller_env)
            .env("AWS_SHARED_CREDENTIALS_FILE", profiles)
            .env("DISPATCH_AWS_PROFILE", "dispatch")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["source"], "defender_alerts");
    assert_eq!(report["failed"], 0);
    assert_eq!((report["dispatch"]["due"].as_u64(), report["dispatch"]["enqueued"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!(report["jobs"][0]["end"], "done", "{report}");
    assert_eq!(report["integrations"][0]["integration_id"], "contoso");
    assert_eq!(report["integrations"][0]["outcome"], "completed");
    let delivered = report["delivered"].as_u64().unwrap();
    assert!(delivered > 0);
    let attrs = c.sqs.get_queue_attributes().queue_url(&queue).attribute_names(aws_sdk_sqs_attr()).send().await.unwrap();
    let waiting: u64 = attrs.attributes().and_then(|a| a.values().next()).and_then(|v| v.parse().ok()).unwrap();
    assert_eq!(waiting, delivered, "every reported message is on the queue");
    assert_eq!(stack.denials().await.unwrap(), Vec::<String>::new(), "IAM allowed the dispatcher's and the poller's calls");
}

fn aws_sdk_sqs_attr() -> aws_sdk_sqs::types::QueueAttributeName {
    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages
}
