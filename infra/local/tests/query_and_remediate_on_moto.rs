//! `m365-ingest query` and `m365-ingest remediate` against the simulator and moto, each under
//! its function's role (the IAM gate holds every call to the query's and the remediator's
//! policies in template.yaml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use m365_ingest::adapters::aws::{load_sdk_config, AwsClients, DynamoIntegrations, GateStack, Principal};
use m365_ingest::domain::integration::doc::IntegrationDoc;
use serde_json::Value;
use tenant_sim::scenario::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
use tenant_sim::{Scenario, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_m365-ingest");

fn run(stack: &GateStack, who: Principal, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("AWS_SESSION_TOKEN").env_remove("AWS_PROFILE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.envs(stack.env(who));
    c.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_remediate_run_under_their_functions_roles() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL: run `bash infra/scripts/test.sh`, which starts moto");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "loopback only");
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let sim = Simulator::start(Scenario::default()).await.unwrap();
    let c = AwsClients::new(&load_sdk_config().await);
    let stack = GateStack::new(&load_sdk_config().await, &endpoint).await.unwrap();
    let suffix =
        format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos());
    let (table, dedup) = (format!("qr-state-{suffix}"), format!("qr-dedup-{suffix}"));
    m365_ingest::adapters::aws::create_state_table(&c.dynamodb, &table).await.unwrap();
    m365_ingest::adapters::aws::create_dedup_table(&c.dynamodb, &dedup).await.unwrap();
    let results = c.sqs.create_queue().queue_name(format!("qr-results-{suffix}")).send().await.unwrap().queue_url.unwrap();
    stack.register_named("StateTable", &table).await.unwrap();
    stack.register_named("DedupTable", &dedup).await.unwrap();
    stack.register_queue("ActionsResultQueue", &results).await.unwrap();
    let secret = format!("m365-ingest/qr-{suffix}");
    c.secrets
        .create_secret()
        .name(&secret)
        .secret_string(format!(
            r#"{{"tenant_id":"{DEFAULT_TENANT_ID}","client_id":"{DEFAULT_CLIENT_ID}","client_secret":"{DEFAULT_CLIENT_SECRET}"}}"#
        ))
        .send()
        .await
        .unwrap();
    let mut doc = IntegrationDoc::new("contoso", DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID, &secret);
    doc.features.investigation = true;
    doc.features.remediation = true;
    DynamoIntegrations::new(c.dynamodb.clone(), &table).put(&doc).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    sim.write_ca(&ca).unwrap();
    let base = sim.base_url().to_owned();
    let env = vec![
        ("STATE_TABLE", table.clone()),
        ("DEDUP_TABLE", dedup.clone()),
        ("ACTIONS_RESULT_QUEUE_URL", results.clone()),
        ("LOGIN_BASE_URL", base.clone()),
        ("GRAPH_BASE_URL", base.clone()),
        ("MDE_BASE_URL", base.clone()),
        ("EXCHANGE_BASE_URL", base.clone()),
        ("EXTRA_CA_BUNDLE_FILE", ca.display().to_string()),
        ("ALLOW_NON_MICROSOFT_HOSTS", "true".to_owned()),
    ];

    let query = r#"{"kind": "hunting", "integration_id": "contoso", "query": "AlertInfo | take 3", "hours": 48}"#;
    let (s, e) = (stack.clone(), env.clone());
    let out = tokio::task::spawn_blocking(move || run(&s, Principal::Query, &e, &["query", query])).await.unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(answer["error"].is_null(), "{answer}");

    let user = sim.people(DEFAULT_TENANT_ID)[5].1.clone();
    let (s, e) = (stack.clone(), env.clone());
    let args = [
        "remediate",
        "--integration",
        "contoso",
        "--action",
        "revoke_sessions",
        "--user",
        &user,
        "--alert-ref",
        "a1",
        "--reason",
        "test",
        "--dry-run",
    ]
    .map(str::to_owned);
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&s, Principal::Remediate, &e, &args)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "dry_run", "{result}");
    assert_eq!(stack.denials().await.unwrap(), Vec::<String>::new(), "IAM allowed every call of both");
}
