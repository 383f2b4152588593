//! The reported emails of the simulator's phishing mailbox (item attachments, `.eml` files and
//! forwarded messages, fetched as Graph serves their MIME) read by the MIME reader: the keys
//! and indicators it gives match what Graph says of the same email.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use m365_ingest::domain::email::mime;
use support::*;
use tenant_sim::{Scenario, Simulator};

#[tokio::test]
async fn every_reported_email_of_the_mailbox_reads_with_its_keys_and_indicators() {
    let mut s = fixed(Scenario::default());
    s.tenants[0].mailbox.count = 30;
    s.tenants[0].alerts.to = "-1h".into();
    let sim = Simulator::start(s).await.unwrap();
    let (http, token) = graph_client(&sim).await;
    let get = |path: String| {
        let (http, token, base) = (http.clone(), token.clone(), sim.base_url().to_owned());
        async move { http.get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap().bytes().await.unwrap().to_vec() }
    };
    let list: serde_json::Value =
        serde_json::from_slice(&get(format!("/v1.0/users/{MAILBOX}/mailFolders/inbox/messages?$top=100")).await).unwrap();
    let messages = list["value"].as_array().unwrap();
    assert_eq!(messages.len(), 30);
    let mut read = 0;
    for m in messages {
        let id = m["id"].as_str().unwrap();
        let atts: serde_json::Value =
            serde_json::from_slice(&get(format!("/v1.0/users/{MAILBOX}/messages/{id}/attachments")).await).unwrap();
        let reported = match atts["value"].as_array().unwrap().first() {
            Some(a) => get(format!("/v1.0/users/{MAILBOX}/messages/{id}/attachments/{}/$value", a["id"].as_str().unwrap())).await,
            None => get(format!("/v1.0/users/{MAILBOX}/messages/{id}/$value")).await,
        };
        let p = mime::parse(&reported).unwrap();
        let mid = p.message_id.clone().unwrap();
        assert!(!mid.starts_with('<') && mid.contains('@'), "{mid}");
        assert_eq!(p.from.len(), 1);
        assert!(p.spf.is_some() && p.dkim.is_some() && p.dmarc.is_some(), "{p:?}");
        assert_eq!(p.received.len(), 1);
        assert!(!p.urls.is_empty() && p.urls.iter().all(|u| u.starts_with("https://")), "{:?}", p.urls);
        assert_eq!(p.attachments.len(), 1);
        assert_eq!(p.attachments[0].name.as_deref(), Some("document.html"));
        assert_eq!(p.attachments[0].sha256.len(), 64);
        if atts["value"].as_array().unwrap().is_empty() {
            // Forwarded as is: the listed message is the reported email.
            assert_eq!(m["internetMessageId"].as_str(), Some(format!("<{mid}>").as_str()));
        }
        read += 1;
    }
    assert_eq!(read, 30);
}

/// Through the product's Graph client: each report gives its reported email, by the way the
/// report carries it, and a message Graph no longer has gives none.
#[tokio::test]
async fn each_report_gives_its_reported_email_whichever_way_it_carries_it() {
    use m365_ingest::app::polling::reported_email::{fetch_reported_email, ReportedVia};
    use m365_ingest::sources::settings::PollSettings;
    let mut s = fixed(Scenario::default());
    s.tenants[0].mailbox.count = 30;
    s.tenants[0].alerts.to = "-1h".into();
    let w = world(s, PollSettings::default(), secret_creds()).await;
    let listed = fetch_json(&w.sim, &format!("/v1.0/users/{MAILBOX}/mailFolders/inbox/messages?$top=100")).await;
    let creds = secret_creds();
    let mut seen = std::collections::BTreeMap::new();
    for m in &listed {
        let id = m["id"].as_str().unwrap();
        let r = fetch_reported_email(&w.poller.graph, &creds, MAILBOX, id).await.unwrap().unwrap();
        *seen.entry(format!("{:?}", r.via)).or_insert(0) += 1;
        assert_eq!(r.via == ReportedVia::Message, m["hasAttachments"] == false, "{m}");
        assert_eq!(r.attachment_id.is_some(), r.via != ReportedVia::Message);
        let p = mime::parse(&r.mime).unwrap();
        assert!(p.spf.is_some() && !p.urls.is_empty(), "the phish itself, not the report around it: {p:?}");
    }
    assert_eq!(seen.len(), 3, "item, file and forwarded reports: {seen:?}");
    let gone = fetch_reported_email(&w.poller.graph, &creds, MAILBOX, "AAMkAgone=").await;
    assert!(matches!(gone, Ok(None)), "{gone:?}");
}

/// Each report as the processor will publish it: a valid v1 message whose email section holds
/// the reported email's headers and indicators, and a valid OCSF finding with its evidence.
#[tokio::test]
async fn each_report_renders_as_a_valid_alert_with_the_reported_emails_headers() {
    use m365_ingest::app::polling::reported_email::{fetch_reported_email, ReportedVia};
    use m365_ingest::domain::polling::mailbox_report;
    use m365_ingest::domain::processing::output::{AlertMessage, EvidenceRetrieval, MessageContext, Processing};
    use m365_ingest::sources::settings::PollSettings;
    use m365_ingest::{GraphTime, Source};
    let mut s = fixed(Scenario::default());
    s.tenants[0].mailbox.count = 20;
    s.tenants[0].alerts.to = "-1h".into();
    let w = world(s, PollSettings::default(), secret_creds()).await;
    let listed = fetch_json(&w.sim, &format!("/v1.0/users/{MAILBOX}/mailFolders/inbox/messages?$top=100")).await;
    let schema = |p: &str| {
        let text = std::fs::read_to_string(format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        jsonschema::validator_for(&serde_json::from_str::<serde_json::Value>(&text).unwrap()).unwrap()
    };
    let (v1, ocsf) = (schema("schemas/m365-ingest.alert.v1.schema.json"), schema("tests/fixtures/ocsf/detection_finding.schema.json"));
    let mut high = 0;
    for m in &listed {
        let r = fetch_reported_email(&w.poller.graph, &secret_creds(), MAILBOX, m["id"].as_str().unwrap()).await.unwrap().unwrap();
        let parsed = mime::parse(&r.mime).unwrap();
        let forwarded = r.via == ReportedVia::Message;
        let raw = m.to_string();
        let alert = mailbox_report::to_alert(&raw, Some(&parsed), forwarded).unwrap();
        let email = mailbox_report::email_section(&raw, Some(&parsed), forwarded).unwrap();
        let version = GraphTime::parse(m["receivedDateTime"].as_str().unwrap()).unwrap();
        let ctx = MessageContext {
            integration_id: "contoso",
            tenant_id: TENANT,
            source: Source::DefenderAlerts,
            dedup_key: format!("phishing_mailbox/{TENANT}/{}/{version}", alert.id),
            incident: None,
            email: Some(email),
            processing: Processing {
                processor: "m365-ingest/test".into(),
                processed_at: version,
                filters_passed: vec![],
                notes: vec![],
                evidence: EvidenceRetrieval { status: "not_requested".into(), ..EvidenceRetrieval::default() },
                text_replaced: None,
            },
        };
        let object = serde_json::value::RawValue::from_string(raw.clone()).unwrap();
        let msg: serde_json::Value = serde_json::from_str(&AlertMessage::build(&alert, version, &object, ctx).to_json()).unwrap();
        let errors: Vec<String> = v1.iter_errors(&msg).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{errors:?}\n{msg}");
        let h = &msg["email"]["headers"];
        assert_eq!(msg["email"]["internet_message_id"], format!("<{}>", h["message_id"].as_str().unwrap()));
        assert_eq!(msg["entities"]["files"][0]["sha256"], h["attachments"][0]["sha256"]);
        assert!(!msg["entities"]["urls"].as_array().unwrap().is_empty());
        assert_eq!(
            !forwarded,
            !msg["entities"]["mailboxes"].as_array().unwrap().is_empty(),
            "the reporter, when the report wraps the email"
        );
        high += usize::from(msg["severity"] == "high");
        assert_eq!(msg["severity"] == "high", h["dmarc"] == "fail");
        let f = m365_ingest::domain::processing::ocsf::detection_finding(&alert, &raw);
        let errors: Vec<String> = ocsf.iter_errors(&f).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{errors:?}\n{f}");
    }
    assert!(high > 0 && high < listed.len(), "DMARC failures raise severity: {high} of {}", listed.len());
}
