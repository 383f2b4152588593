//! The `tenant-sim` binary: flags, scenario files, and errors that say what to fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use tenant_sim::Scenario;

const BIN: &str = env!("CARGO_BIN_EXE_tenant-sim");

#[test]
fn print_scenario_emits_a_loadable_scenario() {
    let out = Command::new(BIN).args(["--print-scenario", "--seed", "42"]).output().unwrap();
    assert!(out.status.success());
    let s: Scenario = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s.seed, 42);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    std::fs::write(&path, &out.stdout).unwrap();
    assert_eq!(Scenario::from_file(&path).unwrap().seed, 42);
}

#[test]
fn the_example_scenario_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/example.json");
    let out = Command::new(BIN).args(["--scenario", path, "--print-scenario"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_input_exits_2_with_a_message_that_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.json");
    std::fs::write(&typo, r#"{"seed": 1, "tenants": [{"id": "t", "alertz": {}}]}"#).unwrap();
    for (args, needle) in [
        (vec!["--scenario", "/no/such/file.json"], "/no/such/file.json"),
        (vec!["--scenario", typo.to_str().unwrap()], "unknown field `alertz`"),
        (vec!["--port", "http"], "--port"),
        (vec!["--frobnicate"], "unknown argument `--frobnicate`"),
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err.trim().lines().count() <= 2, "short: {err}");
    }
}

#[test]
fn the_binary_serves_on_the_port_it_prints_and_writes_its_ca() {
    common::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--ca-out", ca.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    // Kept open until the end: closed, the simulator's next banner line would hit a broken pipe.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut first).unwrap();
    let base = first.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(base.starts_with("https://127.0.0.1:"), "{first}");
    let pem = std::fs::read(&ca).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let http = reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()]).build().unwrap();
        http.get(format!("{base}/{}/v2.0/.well-known/openid-configuration", common::TENANT)).send().await.unwrap().status().as_u16()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    drop(out);
    assert_eq!(status, 200);
}

#[test]
fn a_security_limit_that_admits_nothing_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    std::fs::write(&path, r#"{"graph": {"security_limit": {"requests": 0, "window_secs": 60}}}"#).unwrap();
    let err = Scenario::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("graph.security_limit") && err.contains("150"), "{err}");
}
