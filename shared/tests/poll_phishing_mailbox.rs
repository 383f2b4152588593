//! The phishing-report mailbox end to end against the simulator: the window listed with
//! `$orderby` leading the `$filter`, the user's filter after it, `$select`, the nextLink chain
//! followed to its end (no `$count`, no rebuilt `$skip`); each new report's email retrieved
//! the way the report carries it, stored once by its SHA-256, parsed into the report; a report
//! gone before its email was read still delivered with the problem named; a mailbox outside
//! the app's access policy fails the run with the fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeMap;

use m365_ingest::app::polling::poll::Outcome;
use m365_ingest::domain::email::mime;
use m365_ingest::domain::envelope::Envelope;
use m365_ingest::domain::polling::mailbox_report::{note_of, ReportedEmailNote, ReportedVia};
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::sources::{path_segment, spec};
use m365_ingest::{GraphTime, Source};
use support::*;
use tenant_sim::{FaultKind, FaultSpec, Scenario};

/// Paths as they travel: the address and ids percent-encoded as one segment each.
fn inbox() -> String {
    format!("/v1.0/users/{}/mailFolders/inbox/messages", path_segment(MAILBOX))
}

fn messages() -> String {
    format!("/v1.0/users/{}/messages/", path_segment(MAILBOX))
}

fn scenario(count: usize) -> Scenario {
    let mut s = fixed(Scenario::default());
    s.tenants[0].alerts.count = 5;
    s.tenants[0].mailbox.count = count;
    s
}

fn envelopes(w: &World) -> Vec<Envelope> {
    w.queue.messages().iter().map(|m| serde_json::from_str::<Envelope>(m).unwrap()).collect()
}

fn note(e: &Envelope) -> ReportedEmailNote {
    note_of(e.object.as_ref().unwrap().get()).unwrap().expect("the poller's note")
}

/// (id → how the email is carried) of the reports a window at `now` must deliver.
fn due(w: &World, now: GraphTime) -> BTreeMap<String, &'static str> {
    let win = window();
    w.sim
        .mailbox_timeline(TENANT)
        .into_iter()
        .map(|(id, r, v, how)| (id, GraphTime::from_ticks(r.0), GraphTime::from_ticks(v.0), how))
        .filter(|(_, r, v, _)| *r >= now.minus(win.lookback) && *r < now.minus(win.ingestion_delay) && *v <= now)
        .map(|(id, _, _, how)| (id, how))
        .collect()
}

#[tokio::test]
async fn every_report_is_delivered_once_with_its_email_stored_and_parsed() {
    let w = world(scenario(130), PollSettings::default(), secret_creds()).await;
    let s = w.poll(Source::PhishingMailbox).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let want = due(&w, w.now());
    assert!(want.len() > 60, "the window holds more than a page: {}", want.len());
    let got = envelopes(&w);
    let ids: BTreeMap<String, &Envelope> = got.iter().map(|e| (e.id.clone(), e)).collect();
    assert_eq!(ids.len(), got.len(), "each once");
    assert_eq!(ids.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "every due report, nothing else");

    // The listing as Outlook needs it: the window leads the filter, $orderby on it, $select;
    // no $count; pages chained by the links Graph gave.
    let listings: Vec<_> = w.sim.requests().matching(&inbox());
    assert!(listings.len() >= want.len().div_ceil(50), "{} listings", listings.len());
    for c in &listings {
        assert_eq!(c.status, 200, "{c:?}");
        assert!(c.query_value("$filter").unwrap().starts_with("receivedDateTime ge "), "{c:?}");
        assert_eq!(c.query_value("$orderby"), Some("receivedDateTime asc"));
        assert!(c.query_value("$select").unwrap().contains("internetMessageId"));
        assert!(c.query_value("$count").is_none(), "{c:?}");
    }
    assert!(listings.iter().any(|c| c.query_value("$skip").is_some()), "the chain was followed");

    let root = w.dir.path();
    let mut by_way = BTreeMap::new();
    for e in &got {
        let n = note(e);
        let way = match n.via.unwrap() {
            ReportedVia::ItemAttachment => "item",
            ReportedVia::FileAttachment => "file",
            ReportedVia::Message => "message",
        };
        assert_eq!(way, want[&e.id], "{}: the email is read where the report carries it", e.id);
        *by_way.entry(way).or_insert(0) += 1;
        assert_eq!(n.problem, None);
        // Stored once by its bytes, as the store says; the parse is of those bytes.
        let r = n.mime.clone().unwrap();
        assert!(r.key.starts_with("reported-email/contoso/") && r.key.ends_with(&format!("{}.eml", r.sha256)), "{}", r.key);
        assert_eq!(r.content_type.as_deref(), Some("message/rfc822"));
        let bytes = std::fs::read(root.join(&r.key)).unwrap();
        assert_eq!(bytes.len() as u64, r.size);
        assert_eq!(n.parsed.as_ref(), Some(&mime::parse(&bytes).unwrap()));
        // The processor's view comes from what the poller delivered, without calling Microsoft.
        let units = spec(Source::PhishingMailbox).units(e, e.object.as_ref().unwrap()).unwrap();
        assert_eq!(units.len(), 1);
        let u = &units[0];
        assert!(u.alert.title.as_deref().unwrap().starts_with("Reported email: "));
        let evidence = u.evidence.as_ref().unwrap();
        assert_eq!((evidence.status.as_str(), evidence.artifacts.len()), ("retrieved", 1));
        let section = u.email.as_ref().unwrap();
        assert_eq!(section.internet_message_id, n.parsed.as_ref().unwrap().message_id.as_ref().map(|m| format!("<{m}>")));
    }
    assert_eq!(by_way.len(), 3, "the scenario carries emails all three ways: {by_way:?}");
    // One attachments listing and one MIME download per report.
    let mime_reads = w.sim.requests().matching(&messages()).iter().filter(|c| c.path.ends_with("/$value")).count();
    assert_eq!(mime_reads, got.len());
    assert_eq!(s.pages, listings.len() + 2 * got.len(), "every request is counted: {s:?}");

    // Reports that arrive later are delivered by the next run, alone; none is read again.
    let raised = w.sim.raise_reports(TENANT, 7, 20);
    w.sim.clock().advance_secs(900);
    let before = got.len();
    let s = w.poll(Source::PhishingMailbox).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let later = envelopes(&w);
    let new: Vec<String> = later[before..].iter().map(|e| e.id.clone()).collect();
    let mut expected: Vec<String> = due(&w, w.now()).into_keys().filter(|id| !ids.contains_key(id)).collect();
    expected.sort();
    let mut sorted = new.clone();
    sorted.sort();
    assert_eq!(sorted, expected);
    assert!(raised.iter().all(|id| new.contains(id)), "the raised reports are among them");
    let mime_reads2 = w.sim.requests().matching(&messages()).iter().filter(|c| c.path.ends_with("/$value")).count();
    assert_eq!(mime_reads2 - mime_reads, new.len(), "only the new reports' emails are read");
}

#[tokio::test]
async fn the_users_filter_follows_the_window_and_is_applied() {
    let w = world(scenario(60), PollSettings::default(), secret_creds()).await;
    let mut i = integration_for(Source::PhishingMailbox);
    i.phishing_mailbox.as_mut().unwrap().filter = Some("hasAttachments eq true".into());
    let s = w.poller.poll_one(&i, Source::PhishingMailbox, std::time::Instant::now() + std::time::Duration::from_secs(600)).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let want: Vec<String> = due(&w, w.now()).into_iter().filter(|(_, how)| *how != "message").map(|(id, _)| id).collect();
    let mut got: Vec<String> = envelopes(&w).into_iter().map(|e| e.id).collect();
    got.sort();
    assert_eq!(got, want, "only reports with an attachment");
    for c in w.sim.requests().matching(&inbox()) {
        assert!(c.query_value("$filter").unwrap().ends_with(" and (hasAttachments eq true)"), "{c:?}");
    }
}

#[tokio::test]
async fn a_report_whose_email_is_gone_is_still_delivered_with_the_problem_named() {
    let w = world(scenario(20), PollSettings::default(), secret_creds()).await;
    let gone = due(&w, w.now()).into_keys().next().unwrap();
    // Deleted between the listing and the reading of its email: Graph answers 404.
    let path = format!("{}{}/", messages(), path_segment(&gone));
    w.sim.inject(FaultSpec::new(&path, FaultKind::Status { status: 404, retry_after_secs: None }));
    let s = w.poll(Source::PhishingMailbox).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let got = envelopes(&w);
    let e = got.iter().find(|e| e.id == gone).expect("delivered all the same");
    let n = note(e);
    assert!(n.mime.is_none() && n.parsed.is_none());
    assert!(n.problem.as_deref().unwrap().contains("deleted or moved"), "{n:?}");
    let u = spec(Source::PhishingMailbox).units(e, e.object.as_ref().unwrap()).unwrap().pop().unwrap();
    let evidence = u.evidence.unwrap();
    assert_eq!(evidence.status, "failed");
    assert!(evidence.reason.unwrap().contains("deleted or moved"));
    assert!(got.iter().filter(|e| e.id != gone).all(|e| note(e).mime.is_some()), "the others have their email");
    assert_eq!(s.reported_emails_missing, 1, "{s:?}");
}

#[tokio::test]
async fn a_mailbox_outside_the_apps_access_policy_fails_the_run_with_the_fix() {
    let mut s = scenario(10);
    s.tenants[0].apps[0].mailbox_scope = Some(vec!["someone-else@contoso.onmicrosoft.com".into()]);
    let w = world(s, PollSettings::default(), secret_creds()).await;
    let s = w.poll(Source::PhishingMailbox).await;
    let Outcome::Failed { error, retryable } = &s.outcome else { panic!("{s:?}") };
    assert!(!retryable, "{error}");
    assert!(error.contains("ErrorAccessDenied") || error.contains("Access to OData is disabled"), "{error}");
    assert!(w.queue.messages().is_empty());
}

#[tokio::test]
async fn a_reported_email_larger_than_the_body_cap_is_named_and_the_report_still_delivered() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let sim = std::sync::Arc::new(tenant_sim::Simulator::start(scenario(6)).await.unwrap());
    // A page of one message (about 1.4 KB) fits; some reported emails' MIME does not.
    let capped = |base: &str, ca: &str| m365_ingest::adapters::graph::HttpSettings {
        max_body_bytes: 1_450,
        ..m365_ingest::adapters::graph::HttpSettings::simulator(base, ca)
    };
    let settings = PollSettings { mailbox_page_size: 1, ..PollSettings::default() };
    let w = world_with(sim, capped, m365_ingest::adapters::graph::RetryPolicy::quick(), settings, secret_creds());
    let s = w.poll(Source::PhishingMailbox).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    let got = envelopes(&w);
    assert_eq!(got.len(), due(&w, w.now()).len());
    let problems: Vec<String> = got.iter().filter_map(|e| note(e).problem).collect();
    assert!(!problems.is_empty(), "some emails are over the cap");
    assert_eq!(s.reported_emails_missing, problems.len(), "counted");
    for p in &problems {
        assert!(p.contains("not stored") && p.contains("1450"), "{p}");
    }
}

#[tokio::test]
async fn a_campaign_reported_in_one_second_is_sent_across_runs_each_report_once() {
    // 400 reports received in the same second: one tie, more than a span and than one run's cap.
    let settings = PollSettings { mailbox_requests_per_run: 300, ..PollSettings::default() };
    let w = world(scenario(0), settings, secret_creds()).await;
    let raised = w.sim.raise_reports(TENANT, 400, 20);
    w.sim.clock().advance_secs(600);
    let mut runs = 0;
    loop {
        let s = w.poll(Source::PhishingMailbox).await;
        runs += 1;
        assert!(!matches!(s.outcome, Outcome::Failed { .. }), "{s:?}");
        assert!(s.pages <= 300, "within the cap: {s:?}");
        if s.outcome == Outcome::Completed || runs > 20 {
            break;
        }
        let Outcome::Partial { reason } = &s.outcome else { panic!("{s:?}") };
        assert!(reason.contains("the next run sends the rest") || reason.contains("request cap"), "{reason}");
    }
    assert!(runs > 2, "the campaign took several runs: {runs}");
    let got = envelopes(&w);
    let ids: std::collections::BTreeSet<String> = got.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), got.len(), "each once");
    let raised: std::collections::BTreeSet<String> = raised.into_iter().collect();
    assert_eq!((ids.len(), raised.len()), (400, 400));
    assert!(ids == raised, "every report of the campaign");
}
