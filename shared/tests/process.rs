//! The process use case on the local adapters: poll → intake → process → output, filters with
//! counts per reason, dedup under redelivery, and failures that never lose an alert.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryDedupStore};
use m365_ingest::app::processing::process::{MessageOutcome, ProcessCounts};
use m365_ingest::app::processing::processor::{ProcessSettings, Processor};
use m365_ingest::domain::integration::{Integration, OutputFormat};
use m365_ingest::domain::processing::filter::FilterDoc;
use m365_ingest::error::QueueError;
use m365_ingest::ports::{AlertQueue, ProcessWith, QueueEntry, SendReport};
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::Source;
use serde_json::{json, Value};
use support::*;
use tenant_sim::Scenario;

/// Intake messages from one poll of the default simulated tenant.
async fn intake(source: Source) -> (World, Vec<(String, String)>) {
    let w = world(fixed(Scenario::default()), PollSettings::default(), secret_creds()).await;
    w.poll(source).await;
    let msgs = w.queue.messages().into_iter().enumerate().map(|(i, m)| (format!("m{i}"), m)).collect();
    (w, msgs)
}

fn integration_with(filters: Value, output: OutputFormat, source: Source) -> Integration {
    let mut i = integration_for(source);
    i.filters = serde_json::from_value::<FilterDoc>(filters).unwrap();
    i.output = output;
    i
}

/// A processor and the integrations its batches name, with the counts of every batch so far.
struct Local<Q: AlertQueue + 'static> {
    p: Processor<ProcessWith<Arc<MemoryDedupStore>, Q, DirArtifactStore, SimTime>>,
    integrations: Vec<Integration>,
    counts: Mutex<ProcessCounts>,
}

impl<Q: AlertQueue + 'static> Local<Q> {
    fn new(dedup: Arc<MemoryDedupStore>, out: Q, w: &World, settings: ProcessSettings, integrations: Vec<Integration>) -> Self {
        let p = Processor::new(dedup, out, DirArtifactStore::new(w.dir.path().into()), SimTime(w.sim.clone()), settings);
        Local { p, integrations, counts: Mutex::new(ProcessCounts::default()) }
    }

    async fn process_batch(&self, msgs: &[(String, String)]) -> Vec<String> {
        let run = self.p.batch(self.integrations.clone());
        let failed = run.process_batch(msgs).await;
        self.add(run.take_counts());
        failed
    }

    async fn process_message(&self, body: &str) -> MessageOutcome {
        let run = self.p.batch(self.integrations.clone());
        let outcome = run.process_message(body).await;
        self.add(run.take_counts());
        outcome
    }

    fn add(&self, c: ProcessCounts) {
        self.counts.lock().unwrap().add(c);
    }

    fn take_counts(&self) -> ProcessCounts {
        std::mem::take(&mut self.counts.lock().unwrap())
    }
}

fn processor<Q: AlertQueue + 'static>(w: &World, out: Q, i: Integration) -> Local<Q> {
    Local::new(Arc::new(MemoryDedupStore::new()), out, w, ProcessSettings::default(), vec![i])
}

fn v1() -> jsonschema::Validator {
    let s: Value = serde_json::from_str(include_str!("../schemas/m365-ingest.alert.v1.schema.json")).unwrap();
    jsonschema::validator_for(&s).unwrap()
}

#[tokio::test]
async fn the_whole_path_publishes_every_passing_alert_once_with_reasons_for_the_rest() {
    let (w, msgs) = intake(Source::DefenderAlerts).await;
    let out = Arc::new(MemoryAlertQueue::new());
    let filters = json!({"severities": ["medium", "high"], "exclude_prelude": true, "title_excludes": ["impossible travel"], "dlp_modes": ["enforce"]});
    let p = processor(&w, out.clone(), integration_with(filters, OutputFormat::AlertV1, Source::DefenderAlerts));
    assert!(p.process_batch(&msgs).await.is_empty());
    let c = p.take_counts();
    assert_eq!(c.alerts, msgs.len());
    assert_eq!(c.published + c.dropped.values().sum::<usize>(), c.alerts, "{c:?}");
    assert!(c.dropped["severity"] > 0, "{c:?}");
    let schema = v1();
    for m in out.messages() {
        let v: Value = serde_json::from_str(&m).unwrap();
        assert!(schema.is_valid(&v), "{v}");
        assert!(["medium", "high"].contains(&v["severity"].as_str().unwrap()));
        assert!(!v["title"].as_str().unwrap().to_lowercase().contains("impossible travel"));
        assert_eq!(v["processing"]["filters_passed"][0], "severity");
    }
    assert_eq!(out.len(), c.published);
    // Redelivery of the whole batch publishes nothing new.
    assert!(p.process_batch(&msgs).await.is_empty());
    let again = p.take_counts();
    assert_eq!((again.published, again.duplicates), (0, c.published));
    assert_eq!(out.len(), c.published);
}

#[tokio::test]
async fn ocsf_and_both_formats() {
    let (w, msgs) = intake(Source::DefenderAlerts).await;
    let msgs = &msgs[..20];
    let out = Arc::new(MemoryAlertQueue::new());
    let p = processor(&w, out.clone(), integration_with(json!({}), OutputFormat::Both, Source::DefenderAlerts));
    assert!(p.process_batch(msgs).await.is_empty());
    let all: Vec<Value> = out.messages().iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    assert_eq!(all.len(), 40);
    assert_eq!(all.iter().filter(|m| m["class_uid"] == 2004).count(), 20);
    assert_eq!(all.iter().filter(|m| m["schema"] == "m365-ingest.alert.v1").count(), 20);
}

#[tokio::test]
async fn a_bad_message_is_reported_and_its_neighbours_are_published() {
    let (w, mut msgs) = intake(Source::DefenderAlerts).await;
    msgs.truncate(5);
    msgs.insert(2, ("poison".into(), "{\"not\": \"an envelope\"}".into()));
    let mut unknown: Value = serde_json::from_str(&msgs[0].1).unwrap();
    unknown["integration_id"] = json!("removed-integration");
    msgs.push(("orphan".into(), unknown.to_string()));
    let out = Arc::new(MemoryAlertQueue::new());
    let p = processor(&w, out.clone(), integration_with(json!({}), OutputFormat::AlertV1, Source::DefenderAlerts));
    assert_eq!(
        p.process_batch(&msgs).await.into_iter().collect::<std::collections::BTreeSet<_>>(),
        ["orphan".to_owned(), "poison".to_owned()].into()
    );
    assert_eq!(out.len(), 5);
}

/// An output queue that fails everything the first `n` calls.
struct FailingFirst {
    inner: MemoryAlertQueue,
    left: AtomicUsize,
}

impl AlertQueue for FailingFirst {
    async fn send_batch(&self, entries: &[QueueEntry]) -> Result<SendReport, QueueError> {
        if self.left.load(Ordering::SeqCst) > 0 {
            self.left.fetch_sub(1, Ordering::SeqCst);
            return Err(QueueError::Send { detail: "ServiceUnavailable".into(), retryable: true });
        }
        self.inner.send_batch(entries).await
    }
}

#[tokio::test]
async fn the_output_queue_is_called_in_batches_and_failed_sends_are_retried() {
    let (w, msgs) = intake(Source::DefenderAlerts).await;
    let msgs = &msgs[..25];
    // One failed call is absorbed by retrying its entries.
    let out = Arc::new(FailingFirst { inner: MemoryAlertQueue::new(), left: AtomicUsize::new(1) });
    let p = Local::new(Arc::new(MemoryDedupStore::new()), out.clone(), &w, fast(), vec![integration_for(Source::DefenderAlerts)]);
    assert!(p.process_batch(msgs).await.is_empty());
    assert_eq!(out.inner.len(), 25);
    assert_eq!(out.inner.calls(), 3, "25 messages in batches of 10, not one call each");
}

fn fast() -> ProcessSettings {
    let mut s = ProcessSettings::default();
    s.delivery.retry_delay = std::time::Duration::from_millis(1);
    s
}

#[tokio::test]
async fn a_publish_that_keeps_failing_is_retried_by_redelivery_and_published_once() {
    let (w, msgs) = intake(Source::DefenderAlerts).await;
    let msgs = &msgs[..3];
    let out = Arc::new(FailingFirst { inner: MemoryAlertQueue::new(), left: AtomicUsize::new(4) });
    let p = Local::new(Arc::new(MemoryDedupStore::new()), out.clone(), &w, fast(), vec![integration_for(Source::DefenderAlerts)]);
    let failed = p.process_batch(msgs).await;
    assert_eq!(failed.len(), 3, "every attempt failed: all three are reported");
    assert!(out.inner.is_empty());
    // SQS delivers them again: their keys were released, so they are published now, once.
    assert!(p.process_batch(msgs).await.is_empty());
    assert_eq!(out.inner.len(), 3);
    assert!(p.process_batch(msgs).await.is_empty());
    assert_eq!(out.inner.len(), 3);
}

#[tokio::test]
async fn claim_checked_intake_objects_are_fetched_and_checked() {
    let mut s = Scenario::default();
    s.tenants[0].alerts.big_evidence_fraction = 0.05;
    let settings = PollSettings {
        delivery: m365_ingest::sources::settings::DeliverySettings { max_message_bytes: 64 * 1024, ..Default::default() },
        ..PollSettings::default()
    };
    let w = world(fixed(s), settings, secret_creds()).await;
    let sum = w.poll(Source::DefenderAlerts).await;
    assert!(sum.claim_checks > 0);
    let msgs: Vec<(String, String)> =
        w.queue.messages().into_iter().filter(|m| m.contains("\"object_ref\"")).enumerate().map(|(i, m)| (format!("c{i}"), m)).collect();
    let out = Arc::new(MemoryAlertQueue::new());
    let p = processor(&w, out.clone(), integration_with(json!({}), OutputFormat::AlertV1, Source::DefenderAlerts));
    assert!(p.process_batch(&msgs).await.is_empty());
    assert_eq!(out.len(), msgs.len());
    for m in out.messages() {
        let v: Value = serde_json::from_str(&m).unwrap();
        assert!(v["original"]["evidence"].as_array().unwrap().len() >= 100 || v["original_ref"].is_object());
    }
    // A tampered object is refused, not published.
    let e: m365_ingest::domain::envelope::Envelope = serde_json::from_str(&msgs[0].1).unwrap();
    std::fs::write(w.dir.path().join(&e.object_ref.unwrap().key), b"{\"id\":\"x\",\"lastUpdateDateTime\":\"2026-01-01T00:00:00Z\"}")
        .unwrap();
    let p2 = processor(&w, Arc::new(MemoryAlertQueue::new()), integration_with(json!({}), OutputFormat::AlertV1, Source::DefenderAlerts));
    assert!(matches!(p2.process_message(&msgs[0].1).await, MessageOutcome::Retry(r) if r.contains("sha256")));
}

#[tokio::test]
async fn a_claim_held_by_a_live_processor_waits_and_a_dead_ones_expires() {
    let (w, msgs) = intake(Source::DefenderAlerts).await;
    let one = &msgs[..1];
    let dedup = Arc::new(MemoryDedupStore::new());
    let out = Arc::new(MemoryAlertQueue::new());
    let make = |owner: &str| {
        let settings = ProcessSettings { owner: owner.into(), ..ProcessSettings::default() };
        Local::new(dedup.clone(), out.clone(), &w, settings, vec![integration_for(Source::DefenderAlerts)])
    };
    // A processor claimed the key and died before publishing.
    let e: m365_ingest::domain::envelope::Envelope = serde_json::from_str(&one[0].1).unwrap();
    let key = format!("{}/{}/{}/{}", e.source, e.tenant_id, e.id, e.version);
    let now = w.now();
    use m365_ingest::ports::DedupStore;
    dedup
        .claim(&key, "dead", now, now.plus(std::time::Duration::from_secs(300)), now.plus(std::time::Duration::from_secs(86400)))
        .await
        .unwrap();
    let p = make("alive");
    assert!(matches!(p.process_message(&one[0].1).await, MessageOutcome::Retry(r) if r.contains("another processor")));
    assert!(out.is_empty());
    w.sim.clock().advance_secs(301);
    assert_eq!(p.process_message(&one[0].1).await, MessageOutcome::Done);
    assert_eq!(out.len(), 1);
}

fn incident_v1() -> jsonschema::Validator {
    let s: Value = serde_json::from_str(include_str!("../schemas/m365-ingest.incident.v1.schema.json")).unwrap();
    jsonschema::validator_for(&s).unwrap()
}

fn incident_finding_schema() -> jsonschema::Validator {
    let s: Value = serde_json::from_str(include_str!("fixtures/ocsf/incident_finding.schema.json")).unwrap();
    jsonschema::validator_for(&s).unwrap()
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value) {
    let errors: Vec<String> = v.iter_errors(doc).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:?}\n{doc}");
}

/// Issue 30 §1: in incidents mode each incident version is a message of its own
/// (`m365-ingest.incident.v1`) with its severity, status, classification, determination,
/// assignment, tags, comments and last update, and its alerts referenced: published when any
/// alert passes the filters, each published alert named by its own message's dedup key, each
/// dropped one listed with the filter's reason. Before, only the alerts went out, each carrying
/// the incident's id, name, status and URL.
#[tokio::test]
async fn incidents_are_published_as_incidents_with_their_alerts_filtered_one_by_one() {
    let (w, msgs) = intake(Source::DefenderIncidents).await;
    let out = Arc::new(MemoryAlertQueue::new());
    let p = processor(&w, out.clone(), integration_with(json!({"severities": ["high"]}), OutputFormat::AlertV1, Source::DefenderIncidents));
    assert!(p.process_batch(&msgs).await.is_empty());
    let c = p.take_counts();
    assert!(c.alerts > msgs.len(), "incidents carry several alerts: {c:?}");
    assert!(c.published > 0 && c.dropped["severity"] > 0);
    let all: Vec<Value> = out.messages().iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    let (incidents, alerts): (Vec<&Value>, Vec<&Value>) = all.iter().partition(|m| m["schema"] == "m365-ingest.incident.v1");
    assert_eq!(alerts.len(), c.published);
    for v in &alerts {
        assert_eq!(v["severity"], "high");
        assert_eq!(v["source"], "defender_incidents");
        assert_eq!(v["incident"]["id"].as_str(), v["original"]["incidentId"].as_str());
    }
    assert_eq!(incidents.len(), c.incidents_published);
    assert!(c.incidents_published > 0 && c.incidents_dropped > 0, "some incidents have no high alert: {c:?}");
    assert_eq!(c.incidents_published + c.incidents_dropped, msgs.len(), "{c:?}");
    let schema = incident_v1();
    let published: std::collections::HashSet<&str> = alerts.iter().map(|a| a["dedup_key"].as_str().unwrap()).collect();
    let (mut dropped, mut listed) = (0, 0);
    for i in &incidents {
        assert_valid(&schema, i);
        assert!(i["incident"]["severity"].is_string() && i["incident"]["status"].is_string(), "{i}");
        assert!(i["original"]["alerts"].is_null(), "the alerts are referenced, not copied");
        assert_eq!(i["original"]["id"], i["id"]);
        assert_eq!(i["version"].as_str(), i["original"]["lastUpdateDateTime"].as_str());
        for a in i["alerts"].as_array().unwrap() {
            listed += 1;
            match a["decision"].as_str().unwrap() {
                "published" => assert!(published.contains(a["dedup_key"].as_str().unwrap()), "{a}"),
                _ => {
                    assert_eq!(a["reason"], "severity", "{a}");
                    assert_ne!(a["severity"], "high");
                    dropped += 1;
                }
            }
        }
        assert!(i["alerts"].as_array().unwrap().iter().any(|a| a["decision"] == "published"), "published for an alert that passed");
    }
    assert!(dropped > 0 && listed > dropped);
    // A redelivery publishes nothing again.
    assert!(p.process_batch(&msgs).await.is_empty());
    let again = p.take_counts();
    assert_eq!((again.published, again.incidents_published), (0, 0), "{again:?}");
    assert_eq!(out.len(), all.len());
}

/// An incident whose only change is its own (status, owner, classification, a comment, each
/// bumping its `lastUpdateDateTime`) is a new incident version on the output, once, with no
/// alert published again. Before, it published nothing (dedup keys were the alerts' versions).
#[tokio::test]
async fn an_incident_only_change_is_a_new_incident_version_once() {
    let (w, msgs) = intake(Source::DefenderIncidents).await;
    let out = Arc::new(MemoryAlertQueue::new());
    let p = processor(&w, out.clone(), integration_with(json!({}), OutputFormat::Both, Source::DefenderIncidents));
    let first = &msgs[..1];
    assert!(p.process_batch(first).await.is_empty());
    p.take_counts();
    let before = out.len();
    let mut env: Value = serde_json::from_str(&first[0].1).unwrap();
    let object = env["object"].clone();
    let mut incident: Value = if object.is_string() { serde_json::from_str(object.as_str().unwrap()).unwrap() } else { object };
    let version = m365_ingest::domain::time::GraphTime::parse(incident["lastUpdateDateTime"].as_str().unwrap()).unwrap();
    let later = version.plus(std::time::Duration::from_secs(600)).to_string();
    incident["lastUpdateDateTime"] = json!(later);
    incident["status"] = json!("inProgress");
    incident["assignedTo"] = json!("soc.analyst@contoso.onmicrosoft.com");
    incident["classification"] = json!("truePositive");
    incident["comments"] = json!([{"comment": "Taking this one", "createdByDisplayName": "SOC Analyst", "createdDateTime": later}]);
    env["object"] = incident;
    env["version"] = json!(later);
    env["dedup_key"] = json!(format!("defender_incidents/{}/{}/{later}", env["tenant_id"].as_str().unwrap(), env["id"].as_str().unwrap()));
    let changed = vec![("m-changed".to_owned(), env.to_string())];
    assert!(p.process_batch(&changed).await.is_empty());
    let c = p.take_counts();
    let new: Vec<Value> = out.messages()[before..].iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    assert_eq!(new.len(), 2, "the incident's new version in both formats, and no alert again: {new:?}");
    let v1 = new.iter().find(|m| m["schema"] == "m365-ingest.incident.v1").unwrap();
    assert_valid(&incident_v1(), v1);
    assert_eq!(v1["version"].as_str(), Some(later.as_str()));
    assert_eq!(v1["incident"]["status"], "inProgress");
    assert_eq!(v1["incident"]["assigned_to"], "soc.analyst@contoso.onmicrosoft.com");
    assert_eq!(v1["incident"]["classification"], "truePositive");
    assert_eq!(v1["incident"]["comments"][0]["comment"], "Taking this one");
    assert!(v1["alerts"].as_array().unwrap().iter().all(|a| a["decision"] == "published"));
    let finding = new.iter().find(|m| m["class_uid"] == 2005).unwrap();
    assert_valid(&incident_finding_schema(), finding);
    assert_eq!((finding["status_id"].as_u64(), finding["verdict_id"].as_u64()), (Some(2), Some(2)));
    assert_eq!(finding["assignee"]["name"], "soc.analyst@contoso.onmicrosoft.com");
    assert!(c.duplicates > 0 && c.published == 0, "the alerts were published before: {c:?}");
    // Once: delivered again, nothing new.
    assert!(p.process_batch(&changed).await.is_empty());
    assert_eq!(out.len(), before + 2);
}

/// End to end on the simulator: an analyst takes an incident in the portal (owner, status and a
/// comment, its alerts untouched); the next poll delivers the incident's new version and the
/// processor publishes it once, as the incident's, with nothing of its alerts again.
#[tokio::test]
async fn an_incident_taken_in_the_portal_is_polled_and_published_again_once() {
    let (w, msgs) = intake(Source::DefenderIncidents).await;
    let out = Arc::new(MemoryAlertQueue::new());
    let p = processor(&w, out.clone(), integration_with(json!({}), OutputFormat::AlertV1, Source::DefenderIncidents));
    assert!(p.process_batch(&msgs).await.is_empty());
    p.take_counts();
    let before = out.len();
    let env: Value = serde_json::from_str(&msgs[0].1).unwrap();
    let id = env["id"].as_str().unwrap();
    let change = tenant_sim::AlertChange {
        status: Some("inProgress"),
        assigned_to: Some("soc.lead@contoso.onmicrosoft.com".into()),
        comment: Some("Taking this one".into()),
        ..Default::default()
    };
    assert!(w.sim.update_incident(TENANT, id, change, 0).is_some());
    w.sim.clock().advance_secs(301);
    w.poll(Source::DefenderIncidents).await;
    let again: Vec<(String, String)> =
        w.queue.messages().into_iter().enumerate().skip(msgs.len()).map(|(i, m)| (format!("m{i}"), m)).collect();
    assert!(!again.is_empty(), "the incident's new version is delivered");
    assert!(p.process_batch(&again).await.is_empty());
    // Other incidents move on in the meantime; of this one, only its own new version.
    let new: Vec<Value> = out.messages()[before..].iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    let ours: Vec<&Value> = new.iter().filter(|m| m["id"] == id || m["incident"]["id"] == id).collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    let i = ours[0];
    assert_valid(&incident_v1(), i);
    assert_eq!((i["id"].as_str(), i["incident"]["status"].as_str()), (Some(id), Some("inProgress")));
    assert_eq!(i["incident"]["assigned_to"], "soc.lead@contoso.onmicrosoft.com");
    assert_eq!(i["incident"]["comments"][0]["comment"], "Taking this one");
    assert_eq!(i["incident"]["comments"][0]["created_by"], "analyst@simulator");
    assert!(i["alerts"].as_array().unwrap().iter().all(|a| a["decision"] == "published"));
    let after = out.len();
    // Delivered again: nothing new.
    assert!(p.process_batch(&again).await.is_empty());
    assert_eq!(out.len(), after);
}

/// An incident too long for the output message is fitted to it (its original to the bucket,
/// then its comments and its alerts' descriptions left out, each said in its notes), valid in
/// both formats; one that cannot fit even with one alert reference is not sent and counted, and
/// its alerts go out as ever. Before, a long incident failed its intake message, alerts and all,
/// until the dead-letter queue (found in review).
#[tokio::test]
async fn a_long_incident_is_fitted_to_the_message_and_never_costs_its_alerts() {
    let (w, msgs) = intake(Source::DefenderIncidents).await;
    let max = 16 * 1024;
    let settings = ProcessSettings {
        delivery: m365_ingest::sources::settings::DeliverySettings { max_message_bytes: max, ..Default::default() },
        ..ProcessSettings::default()
    };
    let edited = |f: &dyn Fn(&mut Value)| {
        let mut env: Value = serde_json::from_str(&msgs[0].1).unwrap();
        f(&mut env["object"]);
        vec![("long".to_owned(), env.to_string())]
    };
    let chatty = edited(&|i: &mut Value| {
        i["comments"] = (0..50)
            .map(|n| json!({"comment": "c".repeat(1_000), "createdByDisplayName": "SOC", "createdDateTime": format!("2026-11-26T10:{n:02}:00Z")}))
            .collect();
    });
    let out = Arc::new(MemoryAlertQueue::new());
    let p = Local::new(
        Arc::new(MemoryDedupStore::new()),
        out.clone(),
        &w,
        settings.clone(),
        vec![integration_with(json!({}), OutputFormat::Both, Source::DefenderIncidents)],
    );
    assert!(p.process_batch(&chatty).await.is_empty());
    let c = p.take_counts();
    let all: Vec<Value> = out.messages().iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    assert!(out.messages().iter().all(|m| m.len() <= max));
    let v1 = all.iter().find(|m| m["schema"] == "m365-ingest.incident.v1").expect("the incident, fitted");
    assert_valid(&incident_v1(), v1);
    assert_eq!((v1["incident"]["comments"].as_array().map(Vec::len), v1["incident"]["comments_total"].as_u64()), (Some(0), Some(50)));
    assert!(v1["original_ref"]["key"].is_string() && v1["original"].is_null());
    assert!(v1["processing"]["notes"][0].as_str().unwrap().contains("its comments"), "{v1}");
    assert_valid(&incident_finding_schema(), all.iter().find(|m| m["class_uid"] == 2005).unwrap());
    assert_eq!((c.incidents_published, c.published), (1, all.iter().filter(|m| m["schema"] == "m365-ingest.alert.v1").count()));
    // Its own fields alone past the message (names of 4,000 three-byte characters): not sent.
    let huge = edited(&|i: &mut Value| {
        i["displayName"] = json!("€".repeat(4_000));
        i["description"] = json!("€".repeat(4_000));
    });
    let out = Arc::new(MemoryAlertQueue::new());
    let p = Local::new(
        Arc::new(MemoryDedupStore::new()),
        out.clone(),
        &w,
        settings,
        vec![integration_with(json!({}), OutputFormat::AlertV1, Source::DefenderIncidents)],
    );
    assert!(p.process_batch(&huge).await.is_empty(), "the intake message is done: its alerts are published");
    let c = p.take_counts();
    assert_eq!((c.incidents_too_large, c.incidents_published), (1, 0), "{c:?}");
    assert!(c.published > 0 && out.len() == c.published);
}

/// Every incident in OCSF is an Incident Finding (2005) valid against the official 1.8.0 class,
/// beside its alerts' Detection Findings.
#[tokio::test]
async fn incidents_in_ocsf_are_incident_findings_valid_against_the_official_class() {
    let (w, msgs) = intake(Source::DefenderIncidents).await;
    let out = Arc::new(MemoryAlertQueue::new());
    let p = processor(&w, out.clone(), integration_with(json!({}), OutputFormat::Ocsf, Source::DefenderIncidents));
    assert!(p.process_batch(&msgs).await.is_empty());
    let c = p.take_counts();
    let all: Vec<Value> = out.messages().iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    let findings: Vec<&Value> = all.iter().filter(|m| m["class_uid"] == 2005).collect();
    assert_eq!(findings.len(), msgs.len());
    assert_eq!(c.incidents_published, msgs.len());
    assert_eq!(all.iter().filter(|m| m["class_uid"] == 2004).count(), c.published);
    let schema = incident_finding_schema();
    for f in &findings {
        assert_valid(&schema, f);
        assert!(!f["finding_info_list"].as_array().unwrap().is_empty());
    }
    assert!(findings.iter().any(|f| f["assignee_group"]["name"] == "Unassigned") || findings.iter().all(|f| f["assignee"].is_object()));
}

#[tokio::test]
async fn cloud_apps_alerts_are_filtered_and_published_in_both_formats() {
    let (w, msgs) = intake(Source::CloudApps).await;
    assert!(msgs.len() > 20, "{}", msgs.len());
    let out = Arc::new(MemoryAlertQueue::new());
    let p = processor(&w, out.clone(), integration_with(json!({"severities": ["medium", "high"]}), OutputFormat::Both, Source::CloudApps));
    assert!(p.process_batch(&msgs).await.is_empty());
    let c = p.take_counts();
    assert!(c.published > 0 && c.dropped["severity"] > 0, "{c:?}");
    let schema = v1();
    let all: Vec<Value> = out.messages().iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    for v in all.iter().filter(|m| m["schema"] == "m365-ingest.alert.v1") {
        assert!(schema.is_valid(v), "{v}");
        assert_eq!(v["source"], "cloud_apps");
        assert_eq!(v["detection_source"], "cloudAppSecurity");
        assert!(v["original"]["_id"].is_string(), "the Cloud Apps alert travels untouched");
        assert!(!v["entities"]["users"].as_array().unwrap().is_empty());
    }
    assert_eq!(all.iter().filter(|m| m["class_uid"] == 2004).count(), c.published);
}

/// Detection sources are a Defender-alert setting (issue 30 §2): an allow-list set as the vendor's
/// guide sets it keeps every email threat submission (they carry no detectionSource) and every
/// Cloud Apps alert, and still decides Defender's alerts.
#[tokio::test]
async fn detection_sources_decide_defender_alerts_only() {
    let allow = json!({"detection_sources": ["microsoftDefenderForEndpoint"]});
    for source in [Source::EmailSubmissions, Source::CloudApps, Source::DefenderAlerts] {
        let (w, msgs) = intake(source).await;
        assert!(!msgs.is_empty(), "{source}: the scenario has items");
        let out = Arc::new(MemoryAlertQueue::new());
        let p = processor(&w, out.clone(), integration_with(allow.clone(), OutputFormat::AlertV1, source));
        assert!(p.process_batch(&msgs).await.is_empty());
        let c = p.take_counts();
        let by_source = c.dropped.get("detection_source").copied().unwrap_or_default();
        let published: Vec<Value> = out.messages().iter().map(|m| serde_json::from_str(m).unwrap()).collect();
        if source == Source::DefenderAlerts {
            assert!(by_source > 0 && c.published > 0, "Defender's alerts are decided by it: {c:?}");
            assert!(published.iter().all(|v| v["detection_source"] == "microsoftDefenderForEndpoint"), "only the allowed source");
        } else {
            assert_eq!(by_source, 0, "{source}: none dropped by a Defender-alert setting: {c:?}");
            assert!(c.published > 0 && published.iter().all(|v| v["source"] == source.as_str()), "{source}: {c:?}");
        }
    }
}

/// A DLP alert whose mode the filter cannot read (no Microsoft document says where an alert
/// carries it) is kept, noted and counted (`DlpModeUnknown`), never dropped in silence (issue 30 §2).
#[tokio::test]
async fn dlp_alerts_without_a_readable_mode_are_kept_and_counted() {
    let mut s = fixed(Scenario::default());
    s.tenants[0].alerts.count = 20;
    s.tenants[0].alerts.mix = std::collections::BTreeMap::from([(tenant_sim::data::kinds::AlertKind::Dlp, 1)]);
    let w = world(s, PollSettings::default(), secret_creds()).await;
    w.poll(Source::DefenderAlerts).await;
    // The simulator's DLP alerts carry no mode (no document names one); half are given the
    // Management Activity API's names the filter would read, were Microsoft to send them.
    let msgs: Vec<(String, String)> = w
        .queue
        .messages()
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let mut env: Value = serde_json::from_str(&m).unwrap();
            if i % 2 == 1 {
                env["object"]["additionalData"] = json!({"PolicyDetails": [{"Rules": [{"RuleMode": "Enforce"}]}]});
            }
            (format!("m{i}"), env.to_string())
        })
        .collect();
    let bare = msgs.len().div_ceil(2);
    let out = Arc::new(MemoryAlertQueue::new());
    let p = processor(&w, out.clone(), integration_with(json!({"dlp_modes": ["enforce"]}), OutputFormat::AlertV1, Source::DefenderAlerts));
    assert!(p.process_batch(&msgs).await.is_empty());
    let c = p.take_counts();
    assert_eq!(c.dlp_mode_unknown, bare, "{c:?}");
    let noted = out
        .messages()
        .iter()
        .map(|m| serde_json::from_str::<Value>(m).unwrap())
        .filter(|v| v["processing"]["notes"].to_string().contains("names no enforcement mode"))
        .count();
    assert_eq!(noted, bare, "each kept with its note");
    let record = m365_ingest::lambda::telemetry::process_records(&c, m365_ingest::GraphTime::now()).remove(0);
    assert!(record.contains(&format!("\"DlpModeUnknown\":{bare}")), "{record}");
}

#[tokio::test]
async fn submissions_are_published_pending_then_final_and_excluded_verdicts_dropped() {
    let mut s = fixed(Scenario::default());
    s.tenants[0].submissions.count = 120;
    s.tenants[0].submissions.analysis_min_secs = 1800;
    s.tenants[0].submissions.analysis_max_secs = 3600;
    let w = world(s, PollSettings::default(), secret_creds()).await;
    w.poll(Source::EmailSubmissions).await;
    w.sim.clock().advance_secs(3 * 3600);
    w.poll(Source::EmailSubmissions).await;
    let msgs: Vec<(String, String)> = w.queue.messages().into_iter().enumerate().map(|(i, m)| (format!("m{i}"), m)).collect();
    let out = Arc::new(MemoryAlertQueue::new());
    let mut i = integration_with(json!({}), OutputFormat::Both, Source::EmailSubmissions);
    i.email_submissions.excluded_result_categories = vec!["notJunk".into(), "unknownFutureValue".into()];
    let p = processor(&w, out.clone(), i);
    assert!(p.process_batch(&msgs).await.is_empty());
    // Redelivered, nothing is published twice.
    assert!(p.process_batch(&msgs).await.is_empty());
    let c = p.take_counts();
    let excluded = c.dropped.get("email_result_category").copied().unwrap_or_default();
    assert!(excluded > 0, "{c:?}");
    let schema = v1();
    let all: Vec<Value> = out.messages().iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    let v1s: Vec<&Value> = all.iter().filter(|m| m["schema"] == "m365-ingest.alert.v1").collect();
    let keys: std::collections::BTreeSet<&str> = v1s.iter().map(|v| v["dedup_key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), v1s.len(), "each key once");
    for v in &v1s {
        assert!(schema.is_valid(v), "{v}");
        assert_eq!(v["source"], "email_submissions");
        let key = v["dedup_key"].as_str().unwrap();
        let revision = v["email"]["submission"]["revision"].as_str().unwrap();
        assert!(key.ends_with(&format!("/{revision}")), "the email section says which revision: {key}");
        let status = v["original"]["status"].as_str().unwrap_or_default();
        let category = v["original"]["result"]["category"].as_str();
        if key.ends_with("/pending") {
            assert!(!matches!(status, "succeeded" | "failed"), "{v}");
            // Excluded categories make the poller wait for a verdict: a pending one went because
            // the wait ran out, and says so.
            assert!(v["processing"]["notes"].to_string().contains("passed on without Microsoft's verdict"), "{v}");
        } else {
            assert!(key.ends_with("/final"), "{key}");
            assert!(!matches!(category, Some("notJunk" | "unknownFutureValue")), "excluded verdicts are dropped: {v}");
        }
    }
    // A submission first seen pending comes out twice: the same id and version, two revisions.
    let pending: Vec<&str> =
        v1s.iter().filter(|v| v["dedup_key"].as_str().unwrap().ends_with("/pending")).map(|v| v["id"].as_str().unwrap()).collect();
    assert!(!pending.is_empty());
    let finals: std::collections::BTreeSet<&str> =
        v1s.iter().filter(|v| v["dedup_key"].as_str().unwrap().ends_with("/final")).map(|v| v["id"].as_str().unwrap()).collect();
    assert!(pending.iter().any(|id| finals.contains(id)), "a pending one's verdict followed");
    assert_eq!((v1s.len(), all.iter().filter(|m| m["class_uid"] == 2004).count()), (c.published, c.published), "both formats: {c:?}");
}

#[tokio::test]
async fn mailbox_reports_are_published_with_their_email_and_its_stored_mime() {
    let mut s = fixed(Scenario::default());
    s.tenants[0].mailbox.count = 60;
    let w = world(s, PollSettings::default(), secret_creds()).await;
    w.poll(Source::PhishingMailbox).await;
    let msgs: Vec<(String, String)> = w.queue.messages().into_iter().enumerate().map(|(i, m)| (format!("m{i}"), m)).collect();
    assert!(msgs.len() > 30, "{}", msgs.len());
    let out = Arc::new(MemoryAlertQueue::new());
    // High: the receiving server saw the sender fail DMARC.
    let p = processor(&w, out.clone(), integration_with(json!({"severities": ["high"]}), OutputFormat::Both, Source::PhishingMailbox));
    assert!(p.process_batch(&msgs).await.is_empty());
    assert!(p.process_batch(&msgs).await.is_empty(), "redelivered");
    let c = p.take_counts();
    assert!(c.published > 0 && c.dropped["severity"] > 0, "{c:?}");
    let (schema, ocsf) = (v1(), {
        let s: Value = serde_json::from_str(include_str!("fixtures/ocsf/detection_finding.schema.json")).unwrap();
        jsonschema::validator_for(&s).unwrap()
    });
    let all: Vec<Value> = out.messages().iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    let v1s: Vec<&Value> = all.iter().filter(|m| m["schema"] == "m365-ingest.alert.v1").collect();
    assert_eq!(v1s.len(), c.published, "each once");
    for v in &v1s {
        let e: Vec<String> = schema.iter_errors(v).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(e.is_empty(), "{e:?}");
        assert_eq!((v["source"].as_str(), v["severity"].as_str()), (Some("phishing_mailbox"), Some("high")));
        let headers = &v["email"]["headers"];
        assert_eq!(headers["dmarc"], "fail");
        assert!(v["email"]["internet_message_id"].as_str().unwrap().starts_with('<'));
        assert!(!headers["urls"].as_array().unwrap().is_empty());
        let evidence = &v["processing"]["evidence"];
        assert_eq!(evidence["status"], "retrieved");
        let mime = &evidence["artifacts"][0];
        assert_eq!(mime["content_type"], "message/rfc822");
        let bytes = std::fs::read(w.dir.path().join(mime["key"].as_str().unwrap())).unwrap();
        assert_eq!(
            m365_ingest::domain::email::mime::parse(&bytes).unwrap().message_id.map(|m| format!("<{m}>")),
            v["email"]["internet_message_id"].as_str().map(str::to_owned)
        );
    }
    let findings: Vec<&Value> = all.iter().filter(|m| m["class_uid"] == 2004).collect();
    assert_eq!(findings.len(), c.published);
    for f in findings {
        let e: Vec<String> = ocsf.iter_errors(f).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(e.is_empty(), "{e:?}");
        assert!(
            f["evidences"].as_array().unwrap().iter().any(|e| e["email"].is_object()),
            "the reported email is an OCSF email evidence: {f}"
        );
    }
}

/// An alert as Graph serves a Windows file name holding an unpaired UTF-16 surrogate: the
/// escape `\ud800` is valid JSON syntax, but no Rust string holds it (json_text.rs).
#[tokio::test]
async fn text_no_string_can_hold_is_published_visibly_replaced_with_microsofts_bytes_kept() {
    use m365_ingest::ports::ArtifactStore;
    let page: Value =
        serde_json::from_str(include_str!("../../infra/tenant-sim/tests/fixtures/microsoft-docs/graph_alerts_v2_list.json")).unwrap();
    let mut alert = page["value"][0].clone();
    alert["id"] = json!("da-unpaired-surrogate");
    alert["createdDateTime"] = json!("2026-11-26T10:58:00.0000000Z");
    alert["lastUpdateDateTime"] = json!("2026-11-26T11:00:00.0000000Z");
    alert["title"] = json!("Suspicious file HIGH_ALONE.exe");
    alert["evidence"][1]["fileDetails"]["fileName"] = json!("invoiceLOW_ALONE.pdf.exe");
    let served = json!({"value": [alert]}).to_string().replace("HIGH_ALONE", "\\ud800").replace("LOW_ALONE", "\\udc01");
    let seeds = tempfile::tempdir().unwrap();
    let seed = seeds.path().join("alerts.json");
    std::fs::write(&seed, &served).unwrap();
    let mut s = Scenario::default();
    s.tenants[0].seed_files = vec![seed];
    let w = world(fixed(s), PollSettings::default(), secret_creds()).await;
    w.poll(Source::DefenderAlerts).await;
    let ours: Vec<(String, String)> =
        w.queue.messages().into_iter().filter(|m| m.contains("da-unpaired-surrogate")).map(|m| ("m".to_owned(), m)).collect();
    assert_eq!(ours.len(), 1, "the poller passes the alert on as Graph served it");
    assert!(ours[0].1.contains(r"\ud800"));

    let out = Arc::new(MemoryAlertQueue::new());
    let p = processor(&w, out.clone(), integration_with(json!({}), OutputFormat::Both, Source::DefenderAlerts));
    assert_eq!(p.process_batch(&ours).await, Vec::<String>::new(), "the alert is published, not sent to the DLQ");
    let published: Vec<Value> = out.messages().iter().map(|m| serde_json::from_str(m).expect("a strict parser reads it")).collect();
    assert_eq!(published.len(), 2);
    let message = published.iter().find(|m| m["schema"] == "m365-ingest.alert.v1").unwrap();
    assert!(v1().is_valid(message), "{message}");
    assert_eq!(message["title"], "Suspicious file \u{fffd}.exe");
    assert_eq!(message["original"]["evidence"][1]["fileDetails"]["fileName"], "invoice\u{fffd}.pdf.exe");
    let replaced = &message["processing"]["text_replaced"];
    assert_eq!(replaced["count"], 2);
    let key = replaced["original_bytes"]["key"].as_str().unwrap();
    let bytes = DirArtifactStore::new(w.dir.path().into()).get(key).await.unwrap();
    let kept = String::from_utf8(bytes).unwrap();
    assert!(kept.contains(r"Suspicious file \ud800.exe") && kept.contains(r"invoice\udc01.pdf.exe"), "{kept}");
    assert_eq!(replaced["original_bytes"]["sha256"], m365_ingest::domain::envelope::sha256_hex(kept.as_bytes()));

    let finding = published.iter().find(|m| m["class_uid"] == 2004).unwrap();
    assert_eq!(finding["finding_info"]["title"], "Suspicious file \u{fffd}.exe");
    assert_eq!(finding["unmapped"]["m365ingest_text_replaced"]["original_bytes"]["key"], key);
    let raw: Value = serde_json::from_str(finding["raw_data"].as_str().unwrap()).expect("raw_data is JSON every parser reads");
    assert_eq!(raw["title"], "Suspicious file \u{fffd}.exe");
}
