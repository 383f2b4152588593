//! Microsoft's own client library, MSAL for Python, gets tokens from the simulator with a
//! client secret and with a certificate (both thumbprint forms), through instance discovery
//! and the OpenID configuration, exactly as it would from login.microsoftonline.com.
//!
//! Needs `TENANT_SIM_PYTHON`: a Python with `msal` installed (infra/scripts/test.sh sets it up).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{claims, fixed_scenario, Harness, CLIENT, GRAPH_SCOPE, SECRET, TENANT};
use serde_json::{json, Value};
use tenant_sim::scenario::CertificateSpec;
use tenant_sim::testing::ClientCertificate;

fn python() -> String {
    std::env::var("TENANT_SIM_PYTHON").unwrap_or_else(|_| {
        panic!("TENANT_SIM_PYTHON is not set: run `bash infra/scripts/test.sh`, which installs MSAL into .venv and sets it")
    })
}

fn run_msal(args: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/msal_token.py");
    let mut child = Command::new(python()).arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(args.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "msal script failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_gets_tokens_with_a_secret_and_with_certificates() {
    let cert = ClientCertificate::generate(11).unwrap();
    let mut scenario = fixed_scenario();
    // MSAL signs with the real clock; keep the simulated one on it.
    scenario.clock = Default::default();
    scenario.tenants[0].alerts.count = 5;
    scenario.tenants[0].apps[0].certificates = vec![CertificateSpec { pem: Some(cert.cert_pem.clone()), pem_file: None }];
    let h = Harness::start(scenario).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let key = dir.path().join("key.pem");
    let crt = dir.path().join("cert.pem");
    h.sim.write_ca(&ca).unwrap();
    std::fs::write(&key, &cert.key_pem).unwrap();
    std::fs::write(&crt, &cert.cert_pem).unwrap();
    let base = json!({
        "authority": format!("{}/{TENANT}", h.sim.base_url()),
        "instance_discovery": format!("{}/common/discovery/instance", h.sim.base_url()),
        "ca_file": ca, "client_id": CLIENT, "scope": GRAPH_SCOPE,
    });
    let with = |extra: Value| {
        let mut v = base.clone();
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    let cases = [
        ("secret", with(json!({"secret": SECRET})), "1"),
        ("thumbprint (RS256, x5t)", with(json!({"private_key_file": key, "thumbprint": cert.sha1_hex()})), "2"),
        ("certificate (PS256, x5t#S256)", with(json!({"private_key_file": key, "certificate_file": crt})), "2"),
    ];
    for (name, args, acr) in cases {
        let h2 = &h;
        let result = tokio::task::block_in_place(|| run_msal(&args));
        let token = result["access_token"].as_str().unwrap_or_else(|| panic!("{name}: {result}"));
        let c = claims(token);
        assert_eq!(c["appidacr"], acr, "{name}");
        assert!(c["roles"].as_array().unwrap().contains(&json!("SecurityAlert.Read.All")), "{name}");
        assert_eq!(result["token_type"], "Bearer");
        assert_eq!(result["_cached_second_call"], true, "{name}: MSAL should cache the token");
        // The token works on Graph.
        let (status, _, _) = h2.get("/v1.0/security/alerts_v2?$top=1", token, false).await;
        assert_eq!(status, 200, "{name}");
    }
    // MSAL went through instance discovery and the OpenID configuration first.
    assert!(h.sim.requests().count("/common/discovery/instance") >= 1);
    assert!(h.sim.requests().count(&format!("/{TENANT}/v2.0/.well-known/openid-configuration")) >= 1);
    assert_eq!(h.sim.requests().count(&format!("/{TENANT}/oauth2/v2.0/token")), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_reports_a_wrong_secret_with_the_entra_error() {
    let mut scenario = fixed_scenario();
    scenario.clock = Default::default();
    scenario.tenants[0].alerts.count = 0;
    let h = Harness::start(scenario).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    h.sim.write_ca(&ca).unwrap();
    let args = json!({
        "authority": format!("{}/{TENANT}", h.sim.base_url()),
        "instance_discovery": format!("{}/common/discovery/instance", h.sim.base_url()),
        "ca_file": ca, "client_id": CLIENT, "scope": GRAPH_SCOPE, "secret": "not-the-secret",
        "validate_authority": false,
    });
    let result = tokio::task::block_in_place(|| run_msal(&args));
    assert_eq!(result["error"], "invalid_client", "{result}");
    assert_eq!(result["error_codes"], json!([7000215]));
}
