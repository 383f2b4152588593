//! From page items to confirmed intake messages: envelopes, claim checks for large objects,
//! SendMessageBatch-sized batches, and bounded retries of failed entries.

use crate::domain::alert::Item;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::app::polling::origin::{safe_key, Context};
use crate::app::polling::quarantine::quarantine;
use crate::domain::backoff;
use crate::domain::envelope::sha256_hex;
use crate::domain::envelope::{revision_key, ObjectRef, INTAKE_SCHEMA};
use crate::domain::source::Source;
use crate::domain::sqs_text::escape_for_sqs;
use crate::domain::time::GraphTime;
use crate::error::{Error, QueueError};
use crate::ports::{AlertQueue, ArtifactStore, FailedEntry, QueueEntry, MAX_BATCH_ENTRIES};
use crate::sources::settings::DeliverySettings;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub messages: usize,
    pub claim_checks: usize,
    pub batches: usize,
    /// Items the queue refused for good, set aside in the artifact store instead.
    pub quarantined: usize,
}

/// Builds one message body per item (claim-checking the large ones) and sends them in
/// SendMessageBatch-sized batches as they fill, so at most one batch of bodies is in memory.
/// Returns when every message was accepted by the queue, or refused for good and quarantined.
pub async fn deliver(
    items: &[Item],
    ctx: &Context<'_>,
    queue: &impl AlertQueue,
    artifacts: &impl ArtifactStore,
    s: &DeliverySettings,
) -> Result<Delivered, Error> {
    let mut out = Delivered::default();
    let mut batch: Vec<(usize, String)> = Vec::with_capacity(MAX_BATCH_ENTRIES);
    let mut batch_bytes = 0;
    for (index, item) in items.iter().enumerate() {
        let body = envelope_body(item, ctx, artifacts, s, &mut out).await?;
        if !batch.is_empty() && (batch.len() == MAX_BATCH_ENTRIES || batch_bytes + body.len() > s.max_batch_bytes) {
            flush(items, std::mem::take(&mut batch), ctx, queue, artifacts, s, &mut out).await?;
            batch_bytes = 0;
        }
        batch_bytes += body.len();
        batch.push((index, body));
    }
    if !batch.is_empty() {
        flush(items, batch, ctx, queue, artifacts, s, &mut out).await?;
    }
    Ok(out)
}

/// Sends one batch; what the queue refuses for good is quarantined, with the queue's reason.
async fn flush(
    items: &[Item],
    batch: Vec<(usize, String)>,
    ctx: &Context<'_>,
    queue: &impl AlertQueue,
    artifacts: &impl ArtifactStore,
    s: &DeliverySettings,
    out: &mut Delivered,
) -> Result<(), Error> {
    let size = batch.len();
    let (indices, bodies): (Vec<usize>, Vec<String>) = batch.into_iter().unzip();
    let refused = send_confirmed(queue, bodies, s).await?;
    for (position, reason) in &refused {
        if let Some(index) = indices.get(*position) {
            quarantine(artifacts, ctx, items[*index].raw.get(), &format!("the intake queue refused it: {reason}")).await?;
        }
    }
    out.batches += 1;
    out.messages += size - refused.len();
    out.quarantined += refused.len();
    Ok(())
}

/// The envelope as written: `Envelope`'s fields, borrowing the alert's bytes instead of
/// copying them (the hot path; a test keeps both shapes identical).
#[derive(Serialize)]
struct Outgoing<'a> {
    schema: &'a str,
    integration_id: &'a str,
    tenant_id: &'a str,
    source: Source,
    id: &'a str,
    version: GraphTime,
    dedup_key: &'a str,
    polled_at: GraphTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_ref: Option<&'a ObjectRef>,
}

impl Outgoing<'_> {
    fn to_json(&self) -> String {
        // Sized up front: grown from serde_json's default, the object was copied six times.
        let mut out = Vec::with_capacity(self.object.map_or(0, |o| o.get().len()) + 512);
        // Plain strings and a RawValue cannot fail to serialise, and serde_json writes UTF-8.
        if serde_json::to_writer(&mut out, self).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

async fn envelope_body(
    item: &Item,
    ctx: &Context<'_>,
    artifacts: &impl ArtifactStore,
    s: &DeliverySettings,
    out: &mut Delivered,
) -> Result<String, Error> {
    let revision = crate::sources::spec(ctx.source).revision(item);
    let dedup = revision_key(ctx.source, ctx.tenant_id, &item.head.id, item.head.version, revision);
    let mut env = Outgoing {
        schema: INTAKE_SCHEMA,
        integration_id: ctx.integration_id,
        tenant_id: ctx.tenant_id,
        source: ctx.source,
        id: &item.head.id,
        version: item.head.version,
        dedup_key: &dedup,
        polled_at: ctx.polled_at,
        object: Some(&item.raw),
        object_ref: None,
    };
    // Escaped before measuring: an escape is six bytes where the character was up to three.
    let body = escape_for_sqs(env.to_json());
    if body.len() <= s.max_message_bytes {
        return Ok(body);
    }
    // Named by content: a re-send with other bytes gets another object, so no message ever
    // points at an object that was overwritten after it was sent.
    let bytes = item.raw.get().as_bytes();
    let key = format!("intake/{}/{}/{}/{}.json", safe_key(ctx.integration_id), ctx.source, safe_key(&item.head.id), sha256_hex(bytes));
    let r = artifacts.put(&key, bytes.to_vec()).await?;
    env.object = None;
    env.object_ref = Some(&r);
    let body = escape_for_sqs(env.to_json());
    if body.len() > s.max_message_bytes {
        return Err(QueueError::TooLarge { size: body.len(), limit: s.max_message_bytes }.into());
    }
    out.claim_checks += 1;
    Ok(body)
}

/// Sends `batch` until every entry is accepted or refused for good (returned, by position,
/// with the queue's reason); retryable failures are retried within the attempts.
async fn send_confirmed(queue: &impl AlertQueue, batch: Vec<String>, s: &DeliverySettings) -> Result<Vec<(usize, String)>, Error> {
    let mut pending: Vec<QueueEntry> = batch.into_iter().enumerate().map(|(i, body)| QueueEntry { id: i.to_string(), body }).collect();
    let total = pending.len();
    let mut refused = Vec::new();
    let mut attempt = 1;
    loop {
        let failed = match queue.send_batch(&pending).await {
            Ok(report) => report.failed,
            // The call failed as a whole (throttled, timed out): every entry is sent again.
            Err(e) if e.is_retryable() => {
                pending.iter().map(|p| FailedEntry { id: p.id.clone(), retryable: true, reason: e.to_string() }).collect()
            }
            Err(e) => return Err(e.into()),
        };
        // Refused for good (the sender's fault): no retry will change that.
        for f in failed.iter().filter(|f| !f.retryable) {
            if let Ok(i) = f.id.parse::<usize>() {
                refused.push((i, f.reason.clone()));
            }
        }
        let retry: Vec<&FailedEntry> = failed.iter().filter(|f| f.retryable).collect();
        if retry.is_empty() {
            return Ok(refused);
        }
        if attempt >= s.send_attempts {
            let reason = retry.first().map(|f| f.reason.clone()).unwrap_or_default();
            return Err(QueueError::Undelivered { failed: retry.len(), total, attempts: attempt, reason }.into());
        }
        tracing::warn!(failed = retry.len(), attempt, "some intake messages were not accepted, retrying them");
        pending.retain(|e| retry.iter().any(|f| f.id == e.id));
        tokio::time::sleep(retry_wait(s, attempt)).await;
        attempt += 1;
    }
}

/// The wait before retry `attempt` (1 = the first retry): doubling, capped, jittered.
fn retry_wait(s: &DeliverySettings, attempt: u32) -> std::time::Duration {
    backoff::jittered(s.retry_delay, attempt, s.retry_delay * 16, backoff::random_u32())
}

/// Sends every body in SendMessageBatch-sized batches (≤ 10 entries, ≤ `max_batch_bytes`),
/// retrying entries that failed retryably, bounded; returns, per body, whether it was accepted.
pub async fn send_tracked(queue: &impl AlertQueue, bodies: &[String], s: &DeliverySettings) -> Vec<bool> {
    let mut sent = vec![false; bodies.len()];
    let mut start = 0;
    while start < bodies.len() {
        let mut end = start;
        let mut size = 0;
        while end < bodies.len() && end - start < MAX_BATCH_ENTRIES && (end == start || size + bodies[end].len() <= s.max_batch_bytes) {
            size += bodies[end].len();
            end += 1;
        }
        let mut pending: Vec<QueueEntry> =
            (start..end).map(|i| QueueEntry { id: i.to_string(), body: escape_for_sqs(bodies[i].clone()) }).collect();
        for attempt in 1..=s.send_attempts {
            let failed: Vec<(String, bool)> = match queue.send_batch(&pending).await {
                // A call that failed as a whole fails every entry, retryably when the error is.
                Ok(r) => r.failed.into_iter().map(|f| (f.id, f.retryable)).collect(),
                Err(e) => pending.iter().map(|p| (p.id.clone(), e.is_retryable())).collect(),
            };
            for p in &pending {
                if !failed.iter().any(|(id, _)| *id == p.id) {
                    if let Ok(i) = p.id.parse::<usize>() {
                        sent[i] = true;
                    }
                }
            }
            pending.retain(|p| failed.iter().any(|(id, retry)| *id == p.id && *retry));
            if pending.is_empty() || attempt == s.send_attempts {
                break;
            }
            tracing::warn!(failed = pending.len(), attempt, "some output messages were not accepted, retrying them");
            tokio::time::sleep(retry_wait(s, attempt)).await;
        }
        start = end;
    }
    sent
}

#[cfg(test)]
mod tests {
    use crate::adapters::local::{DirArtifactStore, MemoryAlertQueue};
    use crate::app::polling::deliver::*;
    use crate::domain::envelope::Envelope;
    use std::time::Duration;

    fn items(n: usize, size: usize) -> Vec<Item> {
        (0..n)
            .map(|i| {
                let raw = format!(r#"{{"id":"a{i}","lastUpdateDateTime":"2026-01-01T00:00:00.0000001Z","pad":"{}"}}"#, "x".repeat(size));
                Item::decode(&RawValue::from_string(raw).unwrap(), &crate::sources::GRAPH_SECURITY_HEAD).unwrap()
            })
            .collect()
    }

    fn ctx() -> Context<'static> {
        Context { integration_id: "i", tenant_id: "t", source: Source::DefenderAlerts, polled_at: GraphTime::from_unix_seconds(1) }
    }

    #[tokio::test]
    async fn batches_respect_entry_count_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let q = MemoryAlertQueue::new();
        let d = deliver(&items(25, 10), &ctx(), &q, &DirArtifactStore::new(dir.path().into()), &DeliverySettings::default()).await.unwrap();
        assert_eq!((d.messages, d.batches, q.calls()), (25, 3, 3));
        let q = MemoryAlertQueue::new();
        let s = DeliverySettings { max_batch_bytes: 1000, ..DeliverySettings::default() };
        let d = deliver(&items(25, 200), &ctx(), &q, &DirArtifactStore::new(dir.path().into()), &s).await.unwrap();
        assert_eq!(d.messages, 25);
        assert!(d.batches >= 9, "at most 2 bodies of ~400 bytes per 1000-byte batch: {d:?}");
    }

    #[tokio::test]
    async fn the_written_shape_is_the_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let q = MemoryAlertQueue::new();
        deliver(&items(1, 5), &ctx(), &q, &DirArtifactStore::new(dir.path().into()), &DeliverySettings::default()).await.unwrap();
        let body = q.messages().remove(0);
        let e: Envelope = serde_json::from_str(&body).unwrap();
        assert_eq!(e.to_json(), body, "Outgoing and Envelope serialise alike");
    }

    #[tokio::test]
    async fn a_body_that_escaping_makes_too_large_is_claim_checked_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        // 3,000 bytes of U+FFFF (1,000 characters SQS refuses) become 6,000 bytes of escapes.
        let raw = format!(r#"{{"id":"a","lastUpdateDateTime":"2026-01-01T00:00:00.0000001Z","subject":"{}"}}"#, "\u{FFFF}".repeat(1_000));
        let item = Item::decode(&RawValue::from_string(raw).unwrap(), &crate::sources::GRAPH_SECURITY_HEAD).unwrap();
        let s = DeliverySettings { max_message_bytes: 4_000, ..DeliverySettings::default() };
        let q = MemoryAlertQueue::new();
        let d = deliver(&[item], &ctx(), &q, &DirArtifactStore::new(dir.path().into()), &s).await.unwrap();
        assert_eq!((d.messages, d.claim_checks, d.quarantined), (1, 1, 0), "{d:?}");
        assert!(q.messages()[0].len() <= 4_000);
    }

    /// Fails every entry whose body contains `marker` the first `times` attempts.
    struct Flaky {
        inner: MemoryAlertQueue,
        marker: &'static str,
        times: std::sync::Mutex<u32>,
        retryable: bool,
    }

    impl AlertQueue for Flaky {
        async fn send_batch(&self, entries: &[QueueEntry]) -> Result<crate::ports::SendReport, QueueError> {
            let fail = {
                let mut t = self.times.lock().unwrap();
                let f = *t > 0;
                *t = t.saturating_sub(1);
                f
            };
            let (bad, good): (Vec<_>, Vec<_>) = entries.iter().cloned().partition(|e| fail && e.body.contains(self.marker));
            self.inner.send_batch(&good).await?;
            Ok(crate::ports::SendReport {
                failed: bad
                    .into_iter()
                    .map(|e| crate::ports::FailedEntry { id: e.id, retryable: self.retryable, reason: "InternalError: try again".into() })
                    .collect(),
            })
        }
    }

    #[tokio::test]
    async fn failed_entries_are_retried_until_accepted_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let s = DeliverySettings { retry_delay: Duration::from_millis(1), ..DeliverySettings::default() };
        let q = Flaky { inner: MemoryAlertQueue::new(), marker: "\"a3\"", times: std::sync::Mutex::new(2), retryable: true };
        let d = deliver(&items(5, 10), &ctx(), &q, &DirArtifactStore::new(dir.path().into()), &s).await.unwrap();
        assert_eq!(d.messages, 5);
        assert_eq!(q.inner.len(), 5, "each accepted once");
        assert_eq!(q.inner.calls(), 3, "the failed entry alone was sent again, twice");
        // Failing beyond the attempts, or for good, is an error: the page is not committed.
        let q = Flaky { inner: MemoryAlertQueue::new(), marker: "\"a3\"", times: std::sync::Mutex::new(10), retryable: true };
        let e = deliver(&items(5, 10), &ctx(), &q, &DirArtifactStore::new(dir.path().into()), &s).await.unwrap_err();
        assert!(matches!(e, Error::Queue(QueueError::Undelivered { failed: 1, attempts: 4, .. })), "{e:?}");
        // Refused for good: set aside with the queue's reason, and the others delivered.
        let q = Flaky { inner: MemoryAlertQueue::new(), marker: "\"a3\"", times: std::sync::Mutex::new(1), retryable: false };
        let d = deliver(&items(5, 10), &ctx(), &q, &DirArtifactStore::new(dir.path().into()), &s).await.unwrap();
        assert_eq!((d.messages, d.quarantined, q.inner.len()), (4, 1, 4));
        let quarantined: Vec<_> = std::fs::read_dir(dir.path().join("quarantine/i/defender_alerts")).unwrap().collect();
        assert_eq!(quarantined.len(), 1);
    }

    #[test]
    fn keys_stay_inside_their_folder() {
        assert_eq!(safe_key("da637_-96"), "da637_-96");
        assert_eq!(safe_key("../../etc"), ".._.._etc");
    }
}
