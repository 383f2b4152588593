//! One bad item never stops a tenant: an item that does not decode, or that the queue refuses
//! for good, is quarantined with its reason and the cursor moves past it; characters SQS refuses
//! are escaped, not dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use m365_ingest::adapters::graph::collections::decode_page;
use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryCursorStore, StaticSecretSource};
use m365_ingest::app::polling::poll::{Outcome, Poller};
use m365_ingest::domain::alert::{HeadSpec, Item};
use m365_ingest::domain::envelope::Envelope;
use m365_ingest::domain::integration::Credentials;
use m365_ingest::error::{GraphError, QueueError};
use m365_ingest::ports::{AlertQueue, Clock, FailedEntry, GraphApi, GraphQuery, Page, PageRequest, PollWith, QueueEntry, SendReport};
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::{GraphTime, Source};
use support::*;

/// Graph as one fixed answer: the items whose lastUpdateDateTime falls in the asked window,
/// with the count Graph would give. Undecodable items are always in the answer (Graph filters
/// on a value they may lack; here they match).
struct OnePage {
    items: Vec<String>,
}

impl GraphApi for OnePage {
    async fn page(&self, _: &Credentials, request: &PageRequest) -> Result<Page, GraphError> {
        let PageRequest::Graph(GraphQuery { from, to, .. }) = request else { panic!("{request:?}") };
        let matching: Vec<&String> = self
            .items
            .iter()
            .filter(|i| {
                let v: serde_json::Value = serde_json::from_str(i).unwrap();
                match v["lastUpdateDateTime"].as_str().and_then(|t| GraphTime::parse(t).ok()) {
                    Some(t) => t >= *from && t < *to,
                    None => true,
                }
            })
            .collect();
        let body = format!(
            r#"{{"@odata.count":{},"value":[{}]}}"#,
            matching.len(),
            matching.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
        );
        decode_page(body.as_bytes(), m365_ingest::sources::GRAPH_SECURITY_HEAD)
    }

    async fn collection(&self, _: &Credentials, _: &str, _: HeadSpec) -> Result<Vec<Item>, GraphError> {
        Ok(Vec::new())
    }

    /// Alerts settle at once: nothing here is read by id.
    async fn item(&self, _: &Credentials, path: &str, _: HeadSpec) -> Result<Option<Item>, GraphError> {
        panic!("no source of this test reads items by id: {path}")
    }

    async fn content(&self, _: &Credentials, path: &str) -> Result<Option<Vec<u8>>, GraphError> {
        panic!("no source of this test reads content: {path}")
    }
}

struct Fixed(GraphTime);
impl Clock for Fixed {
    fn now(&self) -> GraphTime {
        self.0
    }
}

/// Refuses, for good, every entry whose body contains `marker` (as SQS does a sender fault).
struct Refusing {
    inner: MemoryAlertQueue,
    marker: &'static str,
}

impl AlertQueue for Refusing {
    async fn send_batch(&self, entries: &[QueueEntry]) -> Result<SendReport, QueueError> {
        let (bad, good): (Vec<_>, Vec<_>) = entries.iter().cloned().partition(|e| e.body.contains(self.marker));
        let mut report = self.inner.send_batch(&good).await?;
        report.failed.extend(bad.into_iter().map(|e| FailedEntry {
            id: e.id,
            retryable: false,
            reason: "InvalidParameterValue: refused".into(),
        }));
        Ok(report)
    }
}

fn alert(id: &str, at: &str, title: &str) -> String {
    serde_json::json!({"id": id, "lastUpdateDateTime": at, "title": title}).to_string()
}

fn poller<Q: AlertQueue + 'static>(
    items: Vec<String>,
    queue: Q,
    dir: &std::path::Path,
) -> Poller<PollWith<OnePage, Arc<MemoryCursorStore>, Q, DirArtifactStore, StaticSecretSource, Fixed>> {
    Poller {
        graph: OnePage { items },
        cursors: Arc::new(MemoryCursorStore::new()),
        queue,
        artifacts: DirArtifactStore::new(dir.to_owned()),
        secrets: StaticSecretSource::new().with("contoso-secret", secret_creds()),
        clock: Fixed(GraphTime::parse("2026-11-26T12:00:00Z").unwrap()),
        settings: PollSettings::default(),
    }
}

fn quarantined(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(dir.join("quarantine/contoso/defender_alerts")) else { return Vec::new() };
    entries.map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap()).collect()
}

#[tokio::test]
async fn an_item_that_does_not_decode_is_quarantined_and_the_cursor_moves_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let items = vec![
        alert("a1", "2026-11-26T11:00:00Z", "first"),
        r#"{"id":"broken","title":"no lastUpdateDateTime"}"#.to_owned(),
        r#"{"id":42,"lastUpdateDateTime":"2026-11-26T11:01:00Z"}"#.to_owned(),
        alert("a2", "2026-11-26T11:02:00Z", "second"),
    ];
    let queue = Arc::new(MemoryAlertQueue::new());
    let p = poller(items, queue.clone(), dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = p.poll_one(&integration(), Source::DefenderAlerts, deadline).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    assert_eq!((s.delivered, s.quarantined), (2, 2), "{s:?}");
    let q = quarantined(dir.path());
    assert_eq!(q.len(), 2);
    assert!(q
        .iter()
        .all(|r| r["schema"] == "m365-ingest.quarantine.v1" && r["reason"].as_str().unwrap().contains("no usable id and version")));
    assert!(q.iter().any(|r| r["object"]["id"] == "broken"), "the item is kept as it came");
    assert!(s.watermark.is_some_and(|w| w > GraphTime::parse("2026-11-26T11:02:00Z").unwrap()), "{s:?}");
    // The overlap's re-read neither delivers nor quarantines them again.
    let again = p.poll_one(&integration(), Source::DefenderAlerts, deadline).await;
    assert_eq!((again.outcome.clone(), again.delivered, again.quarantined), (Outcome::Completed, 0, 0), "{again:?}");
}

#[tokio::test]
async fn characters_sqs_refuses_are_escaped_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let title = "Urgent: invoice \u{FFFF}\u{FFFE} overdue";
    let queue = Arc::new(MemoryAlertQueue::new());
    let p = poller(vec![alert("a1", "2026-11-26T11:00:00Z", title)], queue.clone(), dir.path());
    let s = p.poll_one(&integration(), Source::DefenderAlerts, Instant::now() + Duration::from_secs(60)).await;
    assert_eq!((s.outcome.clone(), s.delivered, s.quarantined), (Outcome::Completed, 1, 0), "{s:?}");
    let body = queue.messages().remove(0);
    assert!(body.contains("\\uffff\\ufffe"), "{body}");
    let e: Envelope = serde_json::from_str(&body).unwrap();
    let object: serde_json::Value = serde_json::from_str(e.object.unwrap().get()).unwrap();
    assert_eq!(object["title"], title, "the same text arrives");
}

#[tokio::test]
async fn an_item_the_queue_refuses_for_good_is_quarantined_and_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let items = vec![
        alert("a1", "2026-11-26T11:00:00Z", "ok"),
        alert("poison", "2026-11-26T11:01:00Z", "REFUSE-ME"),
        alert("a3", "2026-11-26T11:02:00Z", "ok"),
    ];
    let queue = Arc::new(Refusing { inner: MemoryAlertQueue::new(), marker: "REFUSE-ME" });
    let p = poller(items, queue.clone(), dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = p.poll_one(&integration(), Source::DefenderAlerts, deadline).await;
    assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    assert_eq!((s.delivered, s.quarantined), (2, 1), "{s:?}");
    let q = quarantined(dir.path());
    assert_eq!(q.len(), 1);
    assert!(q[0]["reason"].as_str().unwrap().contains("the intake queue refused it: InvalidParameterValue"), "{}", q[0]);
    // The next run re-reads the overlap and sends nothing again.
    let again = p.poll_one(&integration(), Source::DefenderAlerts, deadline).await;
    assert_eq!((again.delivered, again.quarantined), (0, 0), "{again:?}");
    assert_eq!(queue.inner.len(), 2);
}
