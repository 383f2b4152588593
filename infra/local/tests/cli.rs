//! The local program as a user runs it: demo, replay, and errors that say what to fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_m365-ingest");

fn fixture(name: &str) -> String {
    format!("{}/../tenant-sim/tests/fixtures/microsoft-docs/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn replay_turns_a_saved_graph_response_into_envelopes() {
    let out = Command::new(BIN).args(["replay", "--source", "defender_alerts", &fixture("graph_alerts_v2_list.json")]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    let e = &lines[0];
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(fixture("graph_alerts_v2_list.json")).unwrap()).unwrap();
    assert_eq!(e["schema"], "m365-ingest.intake.v1");
    assert_eq!(e["tenant_id"], "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c", "taken from the alert's tenantId");
    assert_eq!(e["version"], "2021-05-02T14:19:01.3266667Z");
    assert_eq!(
        e["dedup_key"],
        "defender_alerts/b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c/da637551227677560813_-961444813/2021-05-02T14:19:01.3266667Z"
    );
    assert_eq!(e["object"], sample["value"][0]);
}

#[test]
fn replay_of_incidents_keeps_each_incident_whole() {
    let out = Command::new(BIN)
        .args(["replay", "--source", "defender_incidents", &fixture("graph_incidents_list_expand_alerts.json"), "--integration", "acme"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let e: Value = serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(
        (e["source"].as_str(), e["integration_id"].as_str(), e["id"].as_str()),
        (Some("defender_incidents"), Some("acme"), Some("2972395"))
    );
    assert_eq!(e["object"]["alerts"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let not_json = dir.path().join("x.json");
    std::fs::write(&not_json, "{\"value\": [").unwrap();
    let no_version = dir.path().join("y.json");
    std::fs::write(&no_version, r#"{"value": [{"id": "a", "tenantId": "t"}]}"#).unwrap();
    let no_tenant = dir.path().join("z.json");
    std::fs::write(&no_tenant, r#"{"value": [{"id": "a", "lastUpdateDateTime": "2026-01-01T00:00:00Z"}]}"#).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (vec!["replay", "--source", "defender_alerts"], "the following required arguments were not provided:\n  <FILE>"),
        (
            vec!["replay", "--source", "alerts", "f.json"],
            "unknown source `alerts`: use one of defender_alerts, defender_incidents, cloud_apps",
        ),
        (vec!["replay", "--source", "defender_alerts", "/no/such.json"], "cannot read /no/such.json"),
        (vec!["replay", "--source", "defender_alerts", not_json.to_str().unwrap()], "is not a Graph list response"),
        (vec!["replay", "--source", "defender_alerts", no_version.to_str().unwrap()], "item 0 of `value`"),
        (vec!["replay", "--source", "defender_alerts", no_tenant.to_str().unwrap()], "pass --tenant ID"),
        (vec!["demo", "--alerts", "many"], "invalid value 'many' for '--alerts <ALERTS>'"),
        (vec!["demo", "--colour", "red"], "unexpected argument '--colour' found"),
        (vec!["poll"], "the following required arguments were not provided:\n  --source <SOURCE>"),
        (vec!["check", "c.toml", "--certificate", "c.pem"], "--private-key <FILE>"),
        (vec!["check", "c.toml", "--client-secret-env", "V", "--credentials", "f.json"], "cannot be used with"),
        (
            vec!["backfill", "--integration", "x", "--source", "defender_alerts", "--from", "2026-11-01", "--to", "2026-11-02T00:00:00Z"],
            "invalid value '2026-11-01' for '--from <FROM>'",
        ),
        (
            vec![
                "backfill",
                "--integration",
                "x",
                "--source",
                "defender_alerts",
                "--from",
                "2026-11-02T00:00:00Z",
                "--to",
                "2026-11-01T00:00:00Z",
            ],
            "--from (2026-11-02T00:00:00.0000000Z) must be before --to",
        ),
        (vec!["integration", "list", "--limit", "0"], "invalid value '0' for '--limit <LIMIT>'"),
        (vec!["redrive", "--from", "https://q", "--to", "https://q"], "--from and --to are the same queue"),
    ];
    for (args, needle) in cases {
        let out = Command::new(BIN).args(&args).env_remove("STATE_TABLE").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err.starts_with("m365-ingest: "), "{err}");
    }
}

#[test]
fn every_command_has_help_and_completions_are_generated() {
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no command is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: m365-ingest <COMMAND>"));
    for cmd in [
        vec!["--help"],
        vec!["demo", "--help"],
        vec!["poll", "--help"],
        vec!["backfill", "--help"],
        vec!["redrive", "--help"],
        vec!["replay", "--help"],
        vec!["process", "--help"],
        vec!["check", "--help"],
        vec!["integration", "--help"],
        vec!["integration", "list", "--help"],
        vec!["completions", "--help"],
    ] {
        let out = Command::new(BIN).args(&cmd).output().unwrap();
        assert!(out.status.success(), "{cmd:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: m365-ingest"), "{cmd:?}: {text}");
    }
    let help = String::from_utf8_lossy(&Command::new(BIN).args(["backfill", "--help"]).output().unwrap().stdout).into_owned();
    assert!(help.contains("--from <FROM>") && help.contains("resumes"), "{help}");
    let out = Command::new(BIN).args(["completions", "bash"]).output().unwrap();
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && script.contains("complete -F") && script.contains("backfill"), "{script}");
}

#[test]
fn poll_without_configuration_names_the_missing_variable() {
    let out = Command::new(BIN).args(["poll", "--source", "defender_alerts"]).env_remove("STATE_TABLE").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.trim_end().lines().count() == 1 && err.contains("STATE_TABLE is not set"), "{err}");
}

#[test]
fn demo_runs_the_slice_and_writes_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).args(["demo", "--out", dir.path().to_str().unwrap(), "--alerts", "120"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("contoso") && stdout.contains("defender_alerts") && stdout.contains("completed"), "{stdout}");
    assert!(stdout.contains("fabrikam") && stdout.contains("defender_incidents"), "{stdout}");
    let ndjson = std::fs::read_to_string(dir.path().join("intake.ndjson")).unwrap();
    let envelopes: Vec<Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(envelopes.len() > 100);
    let keys: std::collections::HashSet<&str> = envelopes.iter().map(|e| e["dedup_key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), envelopes.len(), "no alert version twice");
    // The whole path: the processor's output, per integration format, with drop reasons shown.
    assert!(stdout.contains("filtered out by severity"), "{stdout}");
    let output: Vec<Value> =
        std::fs::read_to_string(dir.path().join("output.ndjson")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(output.iter().any(|m| m["schema"] == "m365-ingest.alert.v1"));
    assert!(output.iter().any(|m| m["class_uid"] == 2004));
    assert!(
        output.iter().filter(|m| m["schema"] == "m365-ingest.alert.v1").all(|m| m["severity"] != "informational"),
        "contoso's filters applied"
    );
}

#[test]
fn process_turns_intake_envelopes_into_output_messages() {
    let dir = tempfile::tempdir().unwrap();
    let intake = dir.path().join("intake.ndjson");
    let out = Command::new(BIN).args(["replay", "--source", "defender_alerts", &fixture("graph_alerts_v2_list.json")]).output().unwrap();
    std::fs::write(&intake, &out.stdout).unwrap();
    let out = Command::new(BIN).args(["process", intake.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let msgs: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["schema"], "m365-ingest.alert.v1");
    assert_eq!(msgs[0]["entities"]["files"][0]["name"], "MsSense.exe");
    // With an integration that filters it out, nothing is published and the reason is counted.
    let integrations = dir.path().join("integrations.json");
    std::fs::write(&integrations, r#"[{"version":1,"id":"replay","tenant_id":"b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c","client_id":"0e7c1d2a-3b4c-4d5e-9f60-718293a4b5c6","secret_ref":"s","filters":{"severities":["high"]}}]"#).unwrap();
    let out =
        Command::new(BIN).args(["process", intake.to_str().unwrap(), "--integrations", integrations.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"severity\": 1"));
    // Bad input: one line, exit 2.
    std::fs::write(&intake, "{\"schema\": 5}\n").unwrap();
    let out = Command::new(BIN).args(["process", intake.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1 is not an intake envelope"));
    std::fs::write(&integrations, r#"[{"id":"x","tenant_id":"t","client_id":"c","secret_ref":"s"}]"#).unwrap();
    let out = Command::new(BIN)
        .args(["process", &fixture("graph_alerts_v2_list.json"), "--integrations", integrations.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
