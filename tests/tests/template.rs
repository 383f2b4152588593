//! template.yaml against the code: every function crate is deployed (in the one bootstrap),
//! with every variable its configuration reads, and the SQS wiring AWS advises.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use m365_ingest::config::{CheckConfig, DispatchConfig, PollerConfig, ProcessorConfig, QueryConfig, RemediateConfig};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn template() -> String {
    std::fs::read_to_string(root().join("template.yaml")).unwrap()
}

/// The lines of a top-level resource (two-space indent) up to the next one.
fn resource<'a>(t: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines = t.lines().skip_while(|l| *l != format!("  {name}:"));
    let Some(_) = lines.next() else { return Vec::new() };
    lines.take_while(|l| l.is_empty() || l.starts_with("   ")).collect()
}

/// The function resource whose `Handler` names `function` (every function runs the one
/// bootstrap, functions/bootstrap).
fn function_resource<'a>(t: &'a str, function: &str) -> Option<(String, Vec<&'a str>)> {
    let names: Vec<String> = t
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':').to_owned())
        .collect();
    names
        .into_iter()
        .map(|n| (n.clone(), resource(t, &n)))
        .find(|(_, body)| body.iter().any(|l| l.trim() == format!("Handler: {function}")))
}

fn number(body: &[&str], key: &str) -> u64 {
    body.iter().find_map(|l| l.trim().strip_prefix(&format!("{key}: "))).unwrap_or_else(|| panic!("{key} missing")).trim().parse().unwrap()
}

#[test]
fn every_function_crate_is_a_function_of_the_one_bootstrap_in_the_template() {
    let t = template();
    let mut crates: Vec<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists() && e.file_name() != "bootstrap")
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    assert_eq!(crates, vec!["check", "dispatch", "poller", "processor", "query", "remediate"]);
    let bootstrap = std::fs::read_to_string(root().join("functions/bootstrap/src/main.rs")).unwrap();
    let manifest = std::fs::read_to_string(root().join("functions/bootstrap/Cargo.toml")).unwrap();
    for c in &crates {
        let (name, body) = function_resource(&t, c).unwrap_or_else(|| panic!("no resource with Handler: {c}"));
        assert!(body.iter().any(|l| l.trim() == "Type: AWS::Serverless::Function"), "{name}");
        assert!(body.iter().any(|l| l.trim() == "BuildMethod: rust-cargolambda"), "{name}");
        assert!(body.iter().any(|l| l.trim() == "CodeUri: functions/bootstrap"), "{name} must run the one bootstrap");
        assert!(manifest.contains(&format!("{c} = {{ path = \"../{c}\" }}")), "the bootstrap does not link {c}");
        assert!(bootstrap.contains(&format!("\"{c}\" => {c}::serve().await")), "the bootstrap does not serve {c}");
    }
    // Every function resource is one of them: none runs a Handler the bootstrap does not know.
    let functions = t.lines().filter(|l| l.trim() == "Type: AWS::Serverless::Function").count();
    let handlers = t.lines().filter(|l| l.trim().starts_with("Handler: ")).count();
    assert_eq!((functions, handlers), (crates.len(), crates.len()));
}

#[test]
fn every_variable_a_function_reads_is_set_for_it() {
    let t = template();
    for (dir, vars) in [
        ("check", CheckConfig::VARIABLES),
        ("dispatch", DispatchConfig::VARIABLES),
        ("poller", PollerConfig::VARIABLES),
        ("processor", ProcessorConfig::VARIABLES),
        ("remediate", RemediateConfig::VARIABLES),
        ("query", QueryConfig::VARIABLES),
    ] {
        let (name, body) = function_resource(&t, dir).unwrap();
        for v in vars {
            assert!(body.iter().any(|l| l.trim_start().starts_with(&format!("{v}:"))), "{name} does not set {v}");
        }
    }
}

#[test]
fn remediation_requests_are_reported_one_by_one_and_their_queue_outlasts_the_function() {
    let t = template();
    let (_, f) = function_resource(&t, "remediate").unwrap();
    assert!(f.iter().any(|l| l.contains("FunctionResponseTypes: [ReportBatchItemFailures]")));
    assert!(f.iter().any(|l| l.contains("Queue: !GetAtt RemediationQueue.Arn")));
    let q = resource(&t, "RemediationQueue");
    assert!(number(&q, "VisibilityTimeout") >= 6 * number(&f, "Timeout"));
    assert!(q.iter().any(|l| l.contains("deadLetterTargetArn: !GetAtt RemediationDeadLetterQueue.Arn")));
    // Its records only: the dedup table's remediation keys.
    assert!(f.iter().any(|l| l.contains(r#"dynamodb:LeadingKeys: ["remediation/*", "remediation-rate/*"]"#)));
}

#[test]
fn the_processor_reports_partial_batches_and_the_queue_outlasts_it() {
    let t = template();
    let (_, processor) = function_resource(&t, "processor").unwrap();
    assert!(processor.iter().any(|l| l.contains("FunctionResponseTypes: [ReportBatchItemFailures]")));
    assert!(processor.iter().any(|l| l.contains("Queue: !GetAtt IntakeQueue.Arn")));
    let timeout = number(&processor, "Timeout");
    let queue = resource(&t, "IntakeQueue");
    assert!(number(&queue, "VisibilityTimeout") >= 6 * timeout, "AWS advises a visibility timeout of at least 6x the function timeout");
    assert!(queue.iter().any(|l| l.contains("deadLetterTargetArn: !GetAtt IntakeDeadLetterQueue.Arn")));
}

#[test]
fn poll_jobs_fan_out_through_a_queue_that_outlasts_the_poller() {
    let t = template();
    let (_, poller) = function_resource(&t, "poller").unwrap();
    assert!(poller.iter().any(|l| l.contains("FunctionResponseTypes: [ReportBatchItemFailures]")));
    assert!(poller.iter().any(|l| l.contains("Queue: !GetAtt PollJobsQueue.Arn")));
    assert!(poller.iter().any(|l| l.contains("MaximumConcurrency: !Ref PollerMaxConcurrency")));
    let timeout = number(&poller, "Timeout");
    let queue = resource(&t, "PollJobsQueue");
    assert!(number(&queue, "VisibilityTimeout") >= 6 * timeout, "AWS advises a visibility timeout of at least 6x the function timeout");
    assert!(queue.iter().any(|l| l.contains("deadLetterTargetArn: !GetAtt PollJobsDeadLetterQueue.Arn")));
    let (_, dispatch) = function_resource(&t, "dispatch").unwrap();
    let guard: u64 = dispatch
        .iter()
        .find_map(|l| l.trim().strip_prefix("DISPATCH_GUARD_SECS: "))
        .and_then(|v| v.trim_matches('"').parse().ok())
        .expect("DISPATCH_GUARD_SECS");
    assert!(guard > timeout, "a dispatched pair must not be enqueued again while its job can still run");
    for alarm in ["PollJobsDeadLetterAlarm", "PollJobAgeAlarm"] {
        assert!(!resource(&t, alarm).is_empty(), "no {alarm}");
    }
}

/// The metric Test & Save emits for a relaxed guard rail (lambda/telemetry.rs `check_records`)
/// is the one the alarm watches.
#[test]
fn a_relaxed_guard_rail_is_alarmed_on_the_metric_the_check_function_emits() {
    let t = template();
    let alarm = resource(&t, "GuardRailRelaxedAlarm");
    let line = |key: &str| alarm.iter().find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_owned())).unwrap_or_default();
    assert_eq!(line("MetricName: "), "GuardRailRelaxations");
    assert_eq!(line("Namespace: "), m365_ingest::lambda::telemetry::NAMESPACE);
    assert_eq!(line("Dimensions: "), "[{ Name: Function, Value: check }]");
    assert_eq!(line("Threshold: "), "0");
    assert!(line("AlarmActions: ").contains("AlarmTopicArn"));
}

/// Lambda throttles a batch beyond the reserved concurrency, and SQS counts each throttled
/// receive towards maxReceiveCount: a function whose event sources together may run more
/// instances than it reserves loses messages to its DLQs under load.
#[test]
fn every_function_reserves_what_its_event_sources_may_run_at_once() {
    let t = template();
    for dir in ["poller", "processor", "remediate"] {
        let (name, body) = function_resource(&t, dir).unwrap();
        let reserved = body.iter().find_map(|l| l.trim().strip_prefix("ReservedConcurrentExecutions: ")).unwrap().trim();
        let sources: Vec<&str> = body.iter().filter_map(|l| l.trim().strip_prefix("MaximumConcurrency: ")).map(str::trim).collect();
        assert!(!sources.is_empty(), "{name} has queue event sources");
        if let Some(param) = reserved.strip_prefix("!Ref ") {
            assert_eq!(sources, vec![format!("!Ref {param}")], "{name}: one source at the same parameter");
            continue;
        }
        let sum: u64 = sources.iter().map(|n| n.parse::<u64>().unwrap_or_else(|_| panic!("{name}: {n}"))).sum();
        assert!(reserved.parse::<u64>().unwrap() >= sum, "{name} reserves {reserved}, its event sources may run {sum}");
    }
}

/// The processor's dedup-table keys start with their source (and its restore script's record
/// with `library/`); a source added without its prefix here would be denied every claim in AWS.
#[test]
fn the_processor_may_write_the_dedup_keys_of_every_source_and_no_others() {
    let t = template();
    let (_, body) = function_resource(&t, "processor").unwrap();
    let line = body.iter().find(|l| l.contains("dynamodb:LeadingKeys") && l.contains("defender_alerts/*")).expect("a key condition");
    let listed = line.matches("/*\"").count();
    assert_eq!(listed, m365_ingest::Source::ALL.len() + 1, "the sources and the restore script's record: {line}");
    assert!(line.contains("\"library/*\""), "{line}");
    // The evidence jobs' indexes (domain/evidence/index.rs), and nothing else.
    assert_eq!(line.matches("#*\"").count(), 2, "{line}");
    for index in ["evidence-due#*", "evidence-restore#*"] {
        assert!(line.contains(&format!("\"{index}\"")), "{index} missing: {line}");
    }
    for source in m365_ingest::Source::ALL {
        assert!(line.contains(&format!("\"{source}/*\"")), "{source} missing: {line}");
    }
}

#[test]
fn no_function_scans_the_state_table() {
    let t = template();
    // The operator's `integration list` is the product's one listing; no function lists.
    let scans = t.lines().filter(|l| l.contains("dynamodb:Scan")).count();
    let operator = resource(&t, "OperatorPolicy").iter().filter(|l| l.contains("dynamodb:Scan")).count();
    assert_eq!((scans, operator), (1, 1), "every function's access path is by key or by the Due index");
    let (_, dispatch) = function_resource(&t, "dispatch").unwrap();
    assert!(
        dispatch.iter().any(|l| l.contains("Resource: !Sub \"${StateTable.Arn}/index/Due\"")),
        "the dispatcher queries the Due index only"
    );
}

#[test]
fn no_policy_grants_a_wildcard_action() {
    let t = template();
    for l in t.lines().filter(|l| l.contains("Action:")) {
        if l.contains("s3:*") {
            assert!(t.contains("Effect: Deny"), "s3:* only in the TLS-only deny statement");
            continue;
        }
        assert!(!l.contains('*'), "wildcard action: {l}");
    }
}

#[test]
fn every_source_has_a_schedule_and_a_cursor_lag_alarm() {
    let t = template();
    let (_, dispatch) = function_resource(&t, "dispatch").unwrap();
    for source in m365_ingest::Source::ALL {
        let input = format!("Input: '{{\"source\": \"{source}\"}}'");
        assert!(dispatch.iter().any(|l| l.trim() == input), "no schedule for {source}");
        assert!(t.contains(&format!("Dimensions: [{{ Name: Source, Value: {source} }}]")), "no cursor lag alarm for {source}");
        assert!(t.contains(&format!("[\"m365-ingest\", \"AlertsSent\", \"Source\", \"{source}\"]")), "{source} not on the dashboard");
    }
}

#[test]
fn each_microsoft_cloud_preset_is_the_codes_and_every_function_reads_the_cloud() {
    use m365_ingest::domain::cloud::{Cloud, CLOUD_NAMES};
    let t = template();
    let mapping = resource(&t, "MicrosoftClouds");
    let mut found = Vec::new();
    let mut current: Option<Cloud> = None;
    for line in mapping {
        if let Some(name) = line.strip_prefix("    ").filter(|l| !l.starts_with(' ')).and_then(|l| l.strip_suffix(':')) {
            current = Some(Cloud::parse(name).unwrap_or_else(|e| panic!("mapping key {name}: {e}")));
            continue;
        }
        let Some((key, url)) = line.trim().split_once(": ") else { continue };
        let cloud = current.expect("a key under a cloud");
        let e = cloud.endpoints();
        let want = match key {
            "Login" => e.login,
            "Graph" => e.graph,
            "Mde" => e.mde,
            "Exchange" => e.exchange,
            other => panic!("unexpected key {other}"),
        };
        assert_eq!(url, want, "{} {key}", cloud.name());
        found.push((cloud, key.to_owned()));
    }
    assert_eq!(found.len(), CLOUD_NAMES.len() * 4, "every cloud, every host: {found:?}");
    let allowed = format!("AllowedValues: [{}]", CLOUD_NAMES.map(|(n, _)| n).join(", "));
    assert!(resource(&t, "MicrosoftCloud").iter().any(|l| l.trim() == allowed), "the parameter offers each cloud: {allowed}");
    for host in ["LOGIN", "GRAPH", "MDE", "EXCHANGE"] {
        let set = t.lines().filter(|l| l.trim().starts_with(&format!("{host}_BASE_URL: !If [Has"))).count();
        assert_eq!(set, 5, "{host}_BASE_URL falls back to the preset in every function that calls Microsoft");
    }
    assert_eq!(t.lines().filter(|l| l.trim() == "MICROSOFT_CLOUD: !Ref MicrosoftCloud").count(), 5);
}
