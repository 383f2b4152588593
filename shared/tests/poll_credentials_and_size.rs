//! Certificate credentials end to end, claim checks for large alerts, and no secret in any log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use m365_ingest::app::polling::poll::Outcome;
use m365_ingest::domain::envelope::Envelope;
use m365_ingest::domain::integration::{Credential, Credentials};
use m365_ingest::secret::Secret;
use m365_ingest::sources::settings::DeliverySettings;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::Source;
use support::*;
use tenant_sim::scenario::{CertificateSpec, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use tenant_sim::testing::ClientCertificate;
use tenant_sim::{FaultKind, FaultSpec, Scenario};

fn cert_scenario(cert: &ClientCertificate) -> Scenario {
    let mut s = Scenario::default();
    s.tenants[0].apps[0].certificates = vec![CertificateSpec { pem: Some(cert.cert_pem.clone()), pem_file: None }];
    s.tenants[0].apps[0].secrets.clear();
    s
}

#[tokio::test]
async fn certificate_credentials_poll_like_a_secret() {
    let cert = ClientCertificate::generate(21).unwrap();
    // Assertions are signed with the real clock: run the simulator on it.
    let w = world(Scenario { ..cert_scenario(&cert) }, PollSettings::default(), cert_creds(&cert)).await;
    let s = w.poll(Source::DefenderAlerts).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    assert!(s.delivered > 100);
    let token_calls = w.sim.requests().matching(&format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(token_calls.len(), 1, "one token, cached for every page");
    assert_eq!(token_calls[0].status, 200);
}

#[tokio::test]
async fn a_wrong_secret_fails_the_run_with_entras_reason() {
    let bad = Credentials {
        tenant_id: TENANT.into(),
        client_id: DEFAULT_CLIENT_ID.into(),
        credential: Credential::ClientSecret(Secret::new("wrong-secret")),
    };
    let w = world(fixed(Scenario::default()), PollSettings::default(), bad).await;
    let s = w.poll(Source::DefenderAlerts).await;
    match &s.outcome {
        Outcome::Failed { error, retryable } => {
            assert!(!retryable);
            assert!(error.contains("invalid_client") && error.contains("AADSTS7000215"), "{error}");
            assert!(!error.contains("wrong-secret"));
        }
        o => panic!("{o:?}"),
    }
    assert!(w.queue.is_empty());
}

#[tokio::test]
async fn alerts_too_large_for_a_message_travel_by_claim_check() {
    let mut s = Scenario::default();
    s.tenants[0].alerts.big_evidence_fraction = 0.05;
    let settings = PollSettings {
        delivery: DeliverySettings { max_message_bytes: 64 * 1024, max_batch_bytes: 256 * 1024, ..DeliverySettings::default() },
        ..PollSettings::default()
    };
    let w = world(fixed(s), settings, secret_creds()).await;
    let sum = w.poll(Source::DefenderAlerts).await;
    assert_eq!(sum.outcome, Outcome::Completed);
    assert!(sum.claim_checks > 0, "{sum:?}");
    let mut refs = 0;
    for m in w.queue.messages() {
        assert!(m.len() <= 64 * 1024);
        let e: Envelope = serde_json::from_str(&m).unwrap();
        if let Some(r) = e.object_ref {
            refs += 1;
            assert!(e.object.is_none());
            let bytes = std::fs::read(w.dir.path().join(&r.key)).unwrap();
            assert_eq!(bytes.len() as u64, r.size);
            let obj: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(obj["id"], e.id.as_str());
            assert_eq!(m365_ingest::adapters::local::sha256_hex(&bytes), r.sha256);
        }
    }
    assert_eq!(refs, sum.claim_checks);
    assert!(w.queue.calls() >= sum.delivered.div_ceil(10));
}

#[test]
fn a_whole_poll_logs_no_secret_token_or_key() {
    let cert = ClientCertificate::generate(22).unwrap();
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || sink.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (token, outcomes) = rt.block_on(async {
        let mut s = cert_scenario(&cert);
        s.tenants[0].apps[0].secrets = vec![tenant_sim::scenario::SecretSpec { value: DEFAULT_CLIENT_SECRET.into(), expires: None }];
        s.faults = vec![
            FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::Throttle { retry_after_secs: 1 }).on(&[2]),
            FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::ExpireToken).on(&[3]),
        ];
        let w = world(s, PollSettings { alert_page_size: 100, ..PollSettings::default() }, cert_creds(&cert)).await;
        let a = w.poll(Source::DefenderAlerts).await;
        // The same tenant with the client secret, and a failing one.
        let ws = world(fixed(Scenario::default()), PollSettings::default(), secret_creds()).await;
        let b = ws.poll(Source::DefenderAlerts).await;
        let token = ws.poller.graph.tokens().token(&secret_creds(), m365_ingest::adapters::graph::Audience::Graph).await.unwrap();
        tracing::info!(creds = ?secret_creds(), cert = ?cert_creds(&cert), "credentials as the code would print them");
        (token, vec![a.outcome, b.outcome])
    });
    assert!(outcomes.iter().all(|o| *o == Outcome::Completed), "{outcomes:?}");
    let text = captured.text();
    assert!(text.contains("retrying"), "the capture holds the run's logs");
    assert!(!text.contains(DEFAULT_CLIENT_SECRET), "client secret logged");
    assert!(!text.contains(token.expose()), "access token logged");
    assert!(!text.contains(&token.expose()[..40]), "access token prefix logged");
    let key_line = cert.key_pem.lines().nth(3).unwrap();
    assert!(!text.contains(key_line), "private key logged");
    assert!(!text.contains("eyJ"), "something JWT-like was logged");
}

/// A secret_ref that names another tenant's or app's credentials is refused before any call,
/// and counted for the crossed-credentials alarm.
#[tokio::test]
async fn a_secret_of_another_app_is_refused_and_counted() {
    let crossed = Credentials { client_id: "11111111-2222-4333-8444-555555555555".into(), ..secret_creds() };
    let w = world(fixed(Scenario::default()), PollSettings::default(), crossed).await;
    let s = w.poll(Source::DefenderAlerts).await;
    match &s.outcome {
        Outcome::Failed { error, retryable } => {
            assert!(!retryable);
            assert!(error.contains("holds credentials for tenant") && error.contains("11111111-2222-4333-8444-555555555555"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(s.credentials_refused);
    assert!(w.sim.requests().all().is_empty(), "no token was asked for, no alert read");
    let records = m365_ingest::lambda::telemetry::poll_records(&[s], w.now(), &[]);
    assert!(records.iter().any(|r| r.contains("\"CredentialsRefused\":1.0")), "{records:?}");
}
