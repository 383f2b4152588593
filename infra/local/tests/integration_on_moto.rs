//! The operator's commands end to end: `check` and `integration add|list|show|test|update|
//! disable|enable|remove` against the simulator as the tenants and moto as AWS, then a
//! `poll --source cloud_apps` of what was saved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use m365_ingest::adapters::aws::{load_sdk_config, AwsClients, GateStack, Principal};
use serde_json::Value;
use tenant_sim::scenario::{TenantSpec, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
use tenant_sim::{Scenario, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_m365-ingest");
const FABRIKAM: &str = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c";

struct Env {
    vars: Vec<(&'static str, String)>,
    stack: GateStack,
    /// A shared credentials file with the dispatcher's profile (`poll` runs it under its own role).
    profiles: String,
}

/// Who runs a command in AWS: Test & Save is the check function's code, `poll` the poller's
/// (its dispatch step the dispatcher's), the rest is the operator's (the template's OperatorPolicy).
fn principal(args: &[&str]) -> Principal {
    match args {
        ["check", ..] | ["integration", "add" | "update" | "enable" | "test", ..] => Principal::Check,
        ["poll", ..] => Principal::Poller,
        _ => Principal::Operator,
    }
}

impl Env {
    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.args(args).env("SIM_SECRET", DEFAULT_CLIENT_SECRET).env("WRONG_SECRET", "not-the-secret");
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c.env_remove("AWS_SESSION_TOKEN").env_remove("AWS_PROFILE");
        for (k, v) in self.stack.env(principal(args)) {
            c.env(k, v);
        }
        c.env("AWS_SHARED_CREDENTIALS_FILE", &self.profiles).env("DISPATCH_AWS_PROFILE", "dispatch");
        c.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_test_save_list_update_disable_and_remove_integrations() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL: run `bash infra/scripts/test.sh`, which starts moto");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "loopback only");
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let mut scenario = Scenario::default();
    scenario.tenants[0].alerts.count = 30;
    scenario.tenants.push(TenantSpec { id: FABRIKAM.into(), domain: "fabrikam.onmicrosoft.com".into(), ..TenantSpec::default() });
    scenario.tenants[1].cloud_apps.count = 150;
    let sim = Simulator::start(scenario).await.unwrap();
    let c = AwsClients::new(&load_sdk_config().await);
    let stack = GateStack::new(&load_sdk_config().await, &endpoint).await.unwrap();
    let suffix =
        format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos());
    let table = format!("ops-state-{suffix}");
    m365_ingest::adapters::aws::create_state_table(&c.dynamodb, &table).await.unwrap();
    stack.register_named("StateTable", &table).await.unwrap();
    let dedup = format!("ops-dedup-{suffix}");
    m365_ingest::adapters::aws::create_dedup_table(&c.dynamodb, &dedup).await.unwrap();
    stack.register_named("DedupTable", &dedup).await.unwrap();
    let queue = c.sqs.create_queue().queue_name(format!("ops-intake-{suffix}")).send().await.unwrap().queue_url.unwrap();
    stack.register_queue("IntakeQueue", &queue).await.unwrap();
    let jobs = c.sqs.create_queue().queue_name(format!("ops-jobs-{suffix}")).send().await.unwrap().queue_url.unwrap();
    stack.register_queue("PollJobsQueue", &jobs).await.unwrap();
    let bucket = format!("ops-artifacts-{suffix}");
    c.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    stack.register_named("ArtifactBucket", &bucket).await.unwrap();
    // The queues take an operator's messages (backfill, redrive) only when the stack names them.
    stack.parameter("OperatorPrincipalArns", &stack.role_arn(Principal::Operator)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let profiles = write(
        dir.path(),
        "credentials",
        &format!("[dispatch]\naws_access_key_id = {}\naws_secret_access_key = gate\n", stack.access_key(Principal::Dispatch)),
    );
    let ca = dir.path().join("ca.pem");
    sim.write_ca(&ca).unwrap();
    let base = sim.base_url().to_owned();
    let env = Env {
        vars: vec![
            ("STATE_TABLE", table.clone()),
            ("DEDUP_TABLE", dedup.clone()),
            ("INTAKE_QUEUE_URL", queue),
            ("POLL_JOBS_QUEUE_URL", jobs),
            ("ARTIFACT_BUCKET", bucket),
            ("LOGIN_BASE_URL", base.clone()),
            ("GRAPH_BASE_URL", base.clone()),
            ("MDE_BASE_URL", base.clone()),
            ("EXCHANGE_BASE_URL", base.clone()),
            ("CLOUD_APPS_BASE_URL", base.clone()),
            ("EXTRA_CA_BUNDLE_FILE", ca.display().to_string()),
            ("ALLOW_NON_MICROSOFT_HOSTS", "true".to_owned()),
        ],
        stack: stack.clone(),
        profiles,
    };
    let contoso_secret = format!("m365-ingest/contoso-{suffix}");
    let contoso = write(
        dir.path(),
        "contoso.toml",
        &format!(
            r#"version = 1
id = "contoso"
tenant_id = "{DEFAULT_TENANT_ID}"
client_id = "{DEFAULT_CLIENT_ID}"
secret_ref = "{contoso_secret}"

[polling]
interval = "5m"
lookback = "2d"

[filters]
severities = ["medium", "high"]
"#
        ),
    );
    let fabrikam_secret = format!("m365-ingest/fabrikam-{suffix}");
    let fabrikam = write(
        dir.path(),
        "fabrikam.json",
        &format!(
            r#"{{"version": 1, "id": "fabrikam", "tenant_id": "{FABRIKAM}", "client_id": "{DEFAULT_CLIENT_ID}", "secret_ref": "{fabrikam_secret}",
               "portal_url": "https://fabrikam.eu2.portal.cloudappsecurity.com", "polling": {{"interval": "1m", "lookback": "2d"}},
               "sources": {{"defender": "off", "cloud_apps": true}}}}"#
        ),
    );

    // A failing check: exit 1, the report says why, nothing is written.
    let out = env.run(&["integration", "add", &contoso, "--client-secret-env", "WRONG_SECRET"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL  defender_alerts") && text.contains("copy the secret's Value"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("not-the-secret") && !String::from_utf8_lossy(&out.stderr).contains("not-the-secret"));
    assert!(c.secrets.get_secret_value().secret_id(&contoso_secret).send().await.is_err(), "no secret written");

    // `check` tests without saving; a bad document is a usage error naming the field.
    let text = env.ok(&["check", &contoso, "--client-secret-env", "SIM_SECRET"]);
    assert!(text.contains("ok    defender_alerts") && text.contains("Passed: every enabled feature works."), "{text}");
    let bad = write(
        dir.path(),
        "bad.toml",
        "version = 1\nid = \"x\"\ntenant_id = \"t\"\nclient_id = \"c\"\nsecret_ref = \"s\"\ncolour = \"red\"\n",
    );
    let out = env.run(&["check", &bad]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("colour: unknown field `colour`"), "{}", String::from_utf8_lossy(&out.stderr));

    // Passing: saved with the credentials; JSON reports for machines.
    let text = env.ok(&["integration", "add", &contoso, "--client-secret-env", "SIM_SECRET"]);
    assert!(
        text.contains("Passed; saved as revision 1 by operator arn:aws:sts::") && text.contains("credentials in arn:aws:secretsmanager:"),
        "{text}"
    );
    let creds = write(dir.path(), "creds.json", &format!(r#"{{"client_secret": "{DEFAULT_CLIENT_SECRET}"}}"#));
    let report: Value = serde_json::from_str(&env.ok(&["integration", "add", &fabrikam, "--credentials", &creds, "--json"])).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["features"][0]["feature"], "cloud_apps");
    let out = env.run(&["integration", "add", &contoso]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("exists already"));

    let list = env.ok(&["integration", "list"]);
    assert!(list.contains("contoso") && list.contains("fabrikam") && list.contains("cloud_apps"), "{list}");
    let text = env.ok(&["integration", "reindex"]);
    assert!(text.contains("2 integration record(s) listed under their secrets"), "{text}");
    let shown: Value = serde_json::from_str(&env.ok(&["integration", "show", "fabrikam"])).unwrap();
    assert_eq!(shown["revision"], 1);
    assert_eq!(shown["doc"]["polling"]["interval"], "1m");
    assert!(!shown.to_string().contains(DEFAULT_CLIENT_SECRET));
    assert!(env.ok(&["integration", "test", "contoso"]).contains("ok    defender_alerts"));

    // A new revision with the stored secret; disable and re-enable (which tests again).
    assert!(env.ok(&["integration", "update", &contoso]).contains("saved as revision 2"));
    assert!(env.ok(&["integration", "disable", "contoso"]).contains("disabled (revision 3)"));
    let listed: Value = serde_json::from_str(&env.ok(&["integration", "list", "--json"])).unwrap();
    let contoso_listed = listed["integrations"].as_array().unwrap().iter().find(|i| i["doc"]["id"] == "contoso").unwrap();
    assert_eq!(contoso_listed["doc"]["enabled"], false);
    // Pages: one integration each, the token leads to the other.
    let first: Value = serde_json::from_str(&env.ok(&["integration", "list", "--json", "--limit", "1"])).unwrap();
    let token = first["next_page_token"].as_str().expect("a second page").to_owned();
    let second: Value = serde_json::from_str(&env.ok(&["integration", "list", "--json", "--limit", "1", "--page-token", &token])).unwrap();
    let ids: std::collections::BTreeSet<&str> =
        [&first, &second].iter().map(|p| p["integrations"][0]["doc"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["contoso", "fabrikam"].into_iter().collect());
    let out = env.run(&["integration", "list", "--page-token", "garbage"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(env.ok(&["integration", "enable", "contoso"]).contains("saved as revision 4"));
    // Each revision records who saved it (the principal AWS names) and what it changed.
    let shown: Value = serde_json::from_str(&env.ok(&["integration", "show", "contoso"])).unwrap();
    let saved_by = shown["provenance"]["saved_by"].as_str().unwrap();
    assert!(saved_by.starts_with("operator arn:aws:sts::") && saved_by.contains(":assumed-role/"), "{shown}");
    assert_eq!(shown["provenance"]["changes"][0]["field"], "enabled", "{shown}");
    assert_eq!(shown["provenance"]["changes"][0]["after"], true);
    // A revision that turns remediation to enforce is saved only when the command names it.
    let enforce = write(
        dir.path(),
        "contoso-enforce.toml",
        &format!(
            r#"version = 1
id = "contoso"
tenant_id = "{DEFAULT_TENANT_ID}"
client_id = "{DEFAULT_CLIENT_ID}"
secret_ref = "{contoso_secret}"

[polling]
interval = "5m"
lookback = "2d"

[filters]
severities = ["medium", "high"]

[features]
remediation = true

[remediation]
mode = "enforce"
"#
        ),
    );
    let out = env.run(&["integration", "update", &enforce]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("relaxes a guard rail") && text.contains("remediation.mode"), "{text}");
    let out = env.run(&["integration", "update", &enforce, "--relax", "remediation.enforce"]);
    assert_eq!(out.status.code(), Some(2), "an unknown guard rail is a usage error");
    let text = env.ok(&["integration", "update", &enforce, "--relax", "remediation.mode"]);
    assert!(text.contains("RELAXED remediation.mode") && text.contains("saved as revision 5"), "{text}");
    let revisions = c
        .dynamodb
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :p and begins_with(sk, :r)")
        .expression_attribute_values(":p", aws_sdk_dynamodb::types::AttributeValue::S("integration#contoso".into()))
        .expression_attribute_values(":r", aws_sdk_dynamodb::types::AttributeValue::S("revision#".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(revisions.count(), 5, "every revision kept on its own");
    let disabled = revisions.items()[2]["provenance"].as_s().unwrap();
    assert!(disabled.contains("OperatorRole") || disabled.contains("Operator"), "disable ran as the operator: {disabled}");

    // The poller polls the saved Cloud Apps integration through the same records and secrets.
    let polled: Value = serde_json::from_str(&env.ok(&["poll", "--source", "cloud_apps", "--seconds", "120"])).unwrap();
    assert_eq!(polled["integrations"].as_array().unwrap().len(), 1, "{polled}");
    assert_eq!(polled["integrations"][0]["integration_id"], "fabrikam");
    assert_eq!(polled["integrations"][0]["outcome"], "completed", "{polled}");
    let delivered = polled["delivered"].as_u64().unwrap();
    assert!(delivered > 100);
    // The listing shows each source's lag and last outcome.
    let text = env.ok(&["integration", "list"]);
    let row = text.lines().find(|l| l.starts_with("fabrikam")).unwrap();
    assert!(row.contains("cloud_apps") && row.ends_with("completed") && row.contains('m'), "{text}");
    let live_before = list_source(&env, "fabrikam", "cloud_apps");

    // A backfill reads a range again on its own cursor; the live cursor does not move, and
    // the same command run again has nothing left to do.
    let now = m365_ingest::GraphTime::now();
    let (from, to) =
        (now.minus(std::time::Duration::from_secs(40 * 3600)).to_string(), now.minus(std::time::Duration::from_secs(3600)).to_string());
    let args = ["backfill", "--integration", "fabrikam", "--source", "cloud_apps", "--from", &from, "--to", &to];
    let text = env.ok(&args);
    let sent: u64 = text.split("done, ").nth(1).and_then(|t| t.split(' ').next()).and_then(|n| n.parse().ok()).expect(&text);
    assert!(sent > 0, "{text}");
    assert!(env.ok(&args).contains("done, 0 alert versions sent"), "resumed: nothing left");
    assert_eq!(list_source(&env, "fabrikam", "cloud_apps"), live_before, "the live cursor is untouched");
    let out = env.run(&["backfill", "--integration", "nobody", "--source", "cloud_apps", "--from", &from, "--to", &to]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no integration `nobody`"));

    // An integration whose restore may hold a copy on a device is not removed; the refusal
    // names the device and folder.
    let entry = m365_ingest::domain::evidence::index::RestoreEntry {
        device_id: "d336c0ffee".into(),
        folder: "C:\\ProgramData\\m365-ingest\\restore\\ab12".into(),
        job: "cloud_apps/t/a/v/evidence/ab12".into(),
    };
    c.dynamodb
        .update_item()
        .table_name(&dedup)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("evidence-restore#fabrikam".into()))
        .update_expression("ADD s :e")
        .expression_attribute_values(":e", aws_sdk_dynamodb::types::AttributeValue::Ss(vec![entry.to_entry()]))
        .send()
        .await
        .unwrap();
    let out = env.run(&["integration", "remove", "fabrikam"]);
    assert_eq!(out.status.code(), Some(1));
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        why.contains("was not removed") && why.contains("device d336c0ffee folder C:\\ProgramData\\m365-ingest\\restore\\ab12"),
        "{why}"
    );
    assert!(env.ok(&["integration", "list"]).contains("fabrikam"), "still there");
    c.dynamodb
        .delete_item()
        .table_name(&dedup)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("evidence-restore#fabrikam".into()))
        .send()
        .await
        .unwrap();

    // Removing one leaves the other, its record, cursor and secret.
    let text = env.ok(&["integration", "remove", "fabrikam"]);
    assert!(text.contains("scheduled for deletion"), "{text}");
    assert!(c.secrets.get_secret_value().secret_id(&fabrikam_secret).send().await.is_err());
    assert!(c.secrets.get_secret_value().secret_id(&contoso_secret).send().await.is_ok());
    let list = env.ok(&["integration", "list"]);
    assert!(list.contains("contoso") && !list.contains("fabrikam"), "{list}");
    let out = env.run(&["integration", "show", "fabrikam"]);
    assert_eq!(out.status.code(), Some(2));
    let cursors = c
        .dynamodb
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", aws_sdk_dynamodb::types::AttributeValue::S("integration#fabrikam".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(cursors.count(), 0, "the removed integration's cursor is gone too");
    assert_eq!(stack.denials().await.unwrap(), Vec::<String>::new(), "IAM allowed every call of every command");
}

/// An integration's source as `integration list --json` shows it.
fn list_source(env: &Env, id: &str, source: &str) -> Value {
    let listed: Value = serde_json::from_str(&env.ok(&["integration", "list", "--json"])).unwrap();
    let mut status = listed["integrations"].as_array().unwrap().iter().find(|i| i["doc"]["id"] == id).unwrap()["sources"][source].clone();
    // The lag grows by itself; the rest is the cursor's.
    status.as_object_mut().unwrap().remove("lag_seconds");
    status
}
