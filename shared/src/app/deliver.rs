//! From page items to confirmed intake messages: envelopes, claim checks for large objects,
//! SendMessageBatch-sized batches, and bounded retries of failed entries.

use std::time::Duration;

use crate::domain::alert::Item;
use crate::domain::envelope::{dedup_key, Envelope, INTAKE_SCHEMA};
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::{Error, QueueError};
use crate::ports::{AlertQueue, ArtifactStore, QueueEntry, MAX_BATCH_ENTRIES};

#[derive(Debug, Clone, Copy)]
pub struct DeliverySettings {
    /// Largest message body; larger objects go to the artifact store. SQS takes 1 MiB today
    /// (moto and AWS alike, TOOLING.md §2); configurable lower.
    pub max_message_bytes: usize,
    /// Largest SendMessageBatch payload (the same 1 MiB on AWS).
    pub max_batch_bytes: usize,
    /// Attempts per batch for entries that failed retryably.
    pub send_attempts: u32,
    pub retry_delay: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings { max_message_bytes: 1 << 20, max_batch_bytes: 1 << 20, send_attempts: 4, retry_delay: Duration::from_millis(200) }
    }
}

pub struct Context<'a> {
    pub integration_id: &'a str,
    pub tenant_id: &'a str,
    pub source: Source,
    pub polled_at: GraphTime,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub messages: usize,
    pub claim_checks: usize,
    pub batches: usize,
}

/// Builds one message body per item (claim-checking the large ones) and sends them all.
/// Returns only when every message was accepted by the queue.
pub async fn deliver(
    items: &[Item],
    ctx: &Context<'_>,
    queue: &impl AlertQueue,
    artifacts: &impl ArtifactStore,
    s: &DeliverySettings,
) -> Result<Delivered, Error> {
    let mut out = Delivered::default();
    let mut bodies = Vec::with_capacity(items.len());
    for item in items {
        let mut env = Envelope {
            schema: INTAKE_SCHEMA.into(),
            integration_id: ctx.integration_id.into(),
            tenant_id: ctx.tenant_id.into(),
            source: ctx.source,
            id: item.head.id.clone(),
            version: item.head.version,
            dedup_key: dedup_key(ctx.source, ctx.tenant_id, &item.head.id, item.head.version),
            polled_at: ctx.polled_at,
            object: Some(item.raw.clone()),
            object_ref: None,
        };
        let mut body = env.to_json();
        if body.len() > s.max_message_bytes {
            let key =
                format!("intake/{}/{}/{}/{}.json", ctx.integration_id, ctx.source, safe_key(&item.head.id), item.head.version.ticks());
            let r = artifacts.put(&key, item.raw.get().as_bytes().to_vec()).await?;
            env.object = None;
            env.object_ref = Some(r);
            body = env.to_json();
            if body.len() > s.max_message_bytes {
                return Err(QueueError::TooLarge { size: body.len(), limit: s.max_message_bytes }.into());
            }
            out.claim_checks += 1;
        }
        bodies.push(body);
    }
    for batch in batches(&bodies, s.max_batch_bytes) {
        send_confirmed(queue, batch, s).await?;
        out.batches += 1;
        out.messages += batch.len();
    }
    Ok(out)
}

/// Splits bodies into runs of at most 10 entries and `max_bytes` bytes.
pub fn batches(bodies: &[String], max_bytes: usize) -> Vec<&[String]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, b) in bodies.iter().enumerate() {
        let n = i - start;
        if n > 0 && (n == MAX_BATCH_ENTRIES || size + b.len() > max_bytes) {
            out.push(&bodies[start..i]);
            start = i;
            size = 0;
        }
        size += b.len();
    }
    if start < bodies.len() {
        out.push(&bodies[start..]);
    }
    out
}

async fn send_confirmed(queue: &impl AlertQueue, batch: &[String], s: &DeliverySettings) -> Result<(), Error> {
    let mut pending: Vec<QueueEntry> = batch.iter().enumerate().map(|(i, b)| QueueEntry { id: i.to_string(), body: b.clone() }).collect();
    let total = pending.len();
    let mut attempt = 1;
    loop {
        let report = queue.send_batch(&pending).await?;
        if report.failed.is_empty() {
            return Ok(());
        }
        if let Some(f) = report.failed.iter().find(|f| !f.retryable) {
            return Err(QueueError::Undelivered { failed: report.failed.len(), total, attempts: attempt, reason: f.reason.clone() }.into());
        }
        if attempt >= s.send_attempts {
            let reason = report.failed.first().map(|f| f.reason.clone()).unwrap_or_default();
            return Err(QueueError::Undelivered { failed: report.failed.len(), total, attempts: attempt, reason }.into());
        }
        tracing::warn!(failed = report.failed.len(), attempt, "some intake messages were not accepted, retrying them");
        pending.retain(|e| report.failed.iter().any(|f| f.id == e.id));
        attempt += 1;
        tokio::time::sleep(s.retry_delay * attempt).await;
    }
}

/// Alert ids are safe already; anything else becomes `_`, so a key never walks directories.
fn safe_key(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_entry_count_and_bytes() {
        let bodies: Vec<String> = (0..25).map(|_| "x".repeat(100)).collect();
        let b = batches(&bodies, 1 << 20);
        assert_eq!(b.iter().map(|x| x.len()).collect::<Vec<_>>(), vec![10, 10, 5]);
        let b = batches(&bodies, 350);
        assert!(b.iter().all(|x| x.len() <= 3));
        assert_eq!(b.iter().map(|x| x.len()).sum::<usize>(), 25);
        let big = vec!["y".repeat(500)];
        assert_eq!(batches(&big, 100).len(), 1, "a single oversize body still forms its own batch");
    }

    #[test]
    fn keys_stay_inside_their_folder() {
        assert_eq!(safe_key("da637_-96"), "da637_-96");
        assert_eq!(safe_key("../../etc"), ".._.._etc");
    }
}
