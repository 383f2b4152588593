//! Sovereign clouds (issue 14 §4): the simulator's tenant lives in GCC High or DoD, where only
//! that cloud's token scopes are issued and only its audiences accepted; Test & Save and the
//! poller run in the matching preset, and a deployment of another cloud is refused by Entra ID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::Arc;

use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::app::test_and_save::check::{check, Status};
use m365_ingest::domain::cloud::Cloud;
use m365_ingest::domain::integration::doc::IntegrationDoc;
use m365_ingest::domain::integration::sections::MailboxDoc;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::{GraphTime, Source};
use support::*;
use tenant_sim::entra::resources::Cloud as SimCloud;
use tenant_sim::scenario::DEFAULT_CLIENT_ID;
use tenant_sim::testing::ClientCertificate;
use tenant_sim::{Scenario, Simulator};

/// Friendly: these count the calls made and ask endpoints directly, once.
fn scenario_in(cloud: SimCloud, cert: &ClientCertificate) -> Scenario {
    let mut s = Scenario::friendly();
    s.tenants[0].cloud = cloud;
    s.tenants[0].apps[0].certificates = vec![tenant_sim::scenario::CertificateSpec { pem: Some(cert.cert_pem.clone()), pem_file: None }];
    s
}

fn settings_in(sim: &Simulator, cloud: Cloud) -> HttpSettings {
    HttpSettings::simulator(sim.base_url(), sim.ca_pem()).in_cloud(cloud).unwrap()
}

async fn api_in(sim: &Simulator, cloud: Cloud) -> MicrosoftHttp {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    MicrosoftHttp::new(&settings_in(sim, cloud), RetryPolicy::quick()).unwrap()
}

/// Every feature Microsoft offers in the US Government clouds, with a GCC High portal.
fn government_doc(portal: &str) -> IntegrationDoc {
    let mut d = IntegrationDoc::new("contoso", TENANT, DEFAULT_CLIENT_ID, "m365-ingest/contoso");
    d.organization_id = Some("contoso.onmicrosoft.com".into());
    d.portal_url = Some(portal.into());
    d.sources.cloud_apps = true;
    d.sources.phishing_mailbox = Some(MailboxDoc { address: "phish@contoso.onmicrosoft.com".into(), filter: None });
    d.evidence.live_response_files = true;
    d.evidence.quarantined_email = true;
    d.features.investigation = true;
    d.features.user_context = true;
    d.features.remediation = true;
    d
}

#[tokio::test]
async fn test_and_save_passes_in_gcc_high_and_dod_with_each_clouds_own_scopes() {
    for (sim_cloud, cloud) in [(SimCloud::GccHigh, Cloud::GccHigh), (SimCloud::Dod, Cloud::Dod)] {
        let cert = ClientCertificate::generate(41).unwrap();
        let sim = Simulator::start(scenario_in(sim_cloud, &cert)).await.unwrap();
        let api = api_in(&sim, cloud).await;
        let r =
            check(&api, &government_doc("https://contoso.us5.portal.cloudappsecurity.us"), Ok(cert_creds(&cert)), GraphTime::now()).await;
        assert!(r.passed, "{cloud:?}\n{}", r.to_text());
        assert!(r.features.iter().all(|f| f.status == Status::Ok));
        // One token per API, each from the tenant's cloud (the simulator issues no other).
        assert_eq!(sim.requests().count(&format!("/{TENANT}/oauth2/v2.0/token")), 4);
        assert_eq!(sim.requests().count("/v1.0/security/alerts_v2"), 1);
    }
}

#[tokio::test]
async fn a_deployment_of_another_cloud_is_refused_by_entra_id_with_the_fix() {
    let cert = ClientCertificate::generate(42).unwrap();
    let sim = Simulator::start(scenario_in(SimCloud::GccHigh, &cert)).await.unwrap();
    let commercial = api_in(&sim, Cloud::Global).await;
    let mut doc = government_doc("https://contoso.us5.portal.cloudappsecurity.us");
    doc.sources.cloud_apps = false;
    doc.sources.phishing_mailbox = None;
    doc.evidence = Default::default();
    let r = check(&commercial, &doc, Ok(cert_creds(&cert)), GraphTime::now()).await;
    assert!(!r.passed);
    let line = r.features.iter().find(|f| f.feature == "defender_alerts").unwrap();
    assert!(line.detail.contains("AADSTS500011"), "{}", r.to_text());
    assert!(line.fix.as_deref().unwrap_or_default().contains("MicrosoftCloud"), "{}", r.to_text());
    assert_eq!(sim.requests().count("/v1.0/security"), 0, "no Graph call without a token");
}

#[tokio::test]
async fn what_microsoft_does_not_offer_in_the_cloud_is_refused_before_any_call() {
    let cert = ClientCertificate::generate(43).unwrap();
    let sim = Simulator::start(scenario_in(SimCloud::Dod, &cert)).await.unwrap();
    let api = api_in(&sim, Cloud::Dod).await;
    let mut doc = government_doc("https://contoso.us2.portal.cloudappsecurity.com");
    doc.sources.email_submissions.enabled = true;
    let r = check(&api, &doc, Ok(cert_creds(&cert)), GraphTime::now()).await;
    assert!(!r.passed);
    let text = r.to_text();
    let submissions = r.problems.iter().find(|p| p.field == "sources.email_submissions").expect(&text);
    assert!(submissions.problem.contains("global service only") && submissions.problem.contains("US Government L5"), "{text}");
    let portal = r.problems.iter().find(|p| p.field == "portal_url").expect(&text);
    assert!(portal.problem.contains("*.portal.cloudappsecurity.us"), "{text}");
    assert!(sim.requests().all().is_empty(), "refused before any request: {:?}", sim.requests().all());
}

#[tokio::test]
async fn the_simulator_in_a_government_cloud_offers_no_email_submissions_and_the_poller_does_not_ask() {
    let cert = ClientCertificate::generate(44).unwrap();
    let sim = Arc::new(Simulator::start(fixed(scenario_in(SimCloud::GccHigh, &cert))).await.unwrap());
    // Asked anyway (a token of the right cloud), the simulator answers as for an unknown segment.
    let (client, token) = client_for(&sim, "https://graph.microsoft.us/.default").await;
    let resp =
        client.get(format!("{}/beta/security/threatSubmission/emailThreats", sim.base_url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // The poller in the GCC High preset refuses the source with the reason and asks nothing.
    let settings = PollSettings { cloud: Cloud::GccHigh, ..PollSettings::default() };
    let w = world_with(
        sim.clone(),
        |b, ca| HttpSettings::simulator(b, ca).in_cloud(Cloud::GccHigh).unwrap(),
        RetryPolicy::quick(),
        settings,
        secret_creds(),
    );
    sim.requests().clear();
    let r = w.poll(Source::EmailSubmissions).await;
    let text = format!("{r:?}");
    assert!(matches!(r.outcome, m365_ingest::app::polling::poll::Outcome::Failed { .. }) && text.contains("global service only"), "{text}");
    assert_eq!(sim.requests().count("/beta/security/threatSubmission"), 0);
    // Alerts are offered: the same poller reads and delivers them.
    let r = w.poll(Source::DefenderAlerts).await;
    assert!(matches!(r.outcome, m365_ingest::app::polling::poll::Outcome::Completed), "{r:?}");
    assert!(!w.delivered().is_empty(), "alerts delivered in GCC High");
}
