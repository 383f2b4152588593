//! How alerts travel: the queues they are sent on (at least once), the store for objects too
//! large for a message, and the processor's dedup keys.

use std::future::Future;

use crate::domain::envelope::ObjectRef;
use crate::domain::time::GraphTime;
use crate::error::{ArtifactError, CursorError, QueueError};

/// One message for the intake queue; `id` is unique within a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub id: String,
    pub retryable: bool,
    pub reason: String,
}

/// Which entries of a batch were not accepted; the others were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    pub failed: Vec<FailedEntry>,
}

/// The intake queue. `send_batch` takes at most [`MAX_BATCH_ENTRIES`] entries within the
/// configured batch size; it reports per-entry failures instead of failing the call, and
/// returns `Err` only when nothing could be attempted. Sending is at-least-once.
pub trait AlertQueue: Send + Sync {
    fn send_batch(&self, entries: &[QueueEntry]) -> impl Future<Output = Result<SendReport, QueueError>> + Send;
}

/// SQS SendMessageBatch takes at most 10 entries.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// Where objects too large for a message go. `put` is idempotent for the same key and bytes;
/// `get` returns what was put under `key`.
pub trait ArtifactStore: Send + Sync {
    fn put(&self, key: &str, bytes: Vec<u8>) -> impl Future<Output = Result<ObjectRef, ArtifactError>> + Send;
    fn get(&self, key: &str) -> impl Future<Output = Result<Vec<u8>, ArtifactError>> + Send;
}

/// What a dedup claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours to publish: nobody published it, and no live claim by another processor exists.
    Fresh,
    /// Published before: skip it.
    Published,
    /// Another processor holds a live claim: try again later.
    InFlight,
}

/// The processor's dedup keys (DESIGN.md §3, last point).
///
/// Contract: `claim` returns `Fresh` and records a claim by `owner` until `claim_until` when the
/// key is unknown, or claimed with an expired claim; `Published` when it was marked published;
/// `InFlight` while a claim is live, the caller's own included. `published` marks the key published (kept
/// until `expires_at`, longer than any overlap). `release` drops `owner`'s claim so a retry can
/// claim at once. A crash between publishing and `published` leaves a claim that expires:
/// the next delivery publishes again (a duplicate), never nothing.
pub trait DedupStore: Send + Sync {
    fn claim(
        &self,
        key: &str,
        owner: &str,
        now: GraphTime,
        claim_until: GraphTime,
        expires_at: GraphTime,
    ) -> impl Future<Output = Result<Claim, CursorError>> + Send;
    fn published(&self, key: &str, owner: &str) -> impl Future<Output = Result<(), CursorError>> + Send;
    fn release(&self, key: &str, owner: &str) -> impl Future<Output = Result<(), CursorError>> + Send;
}

/// A shared adapter is the adapter: lets one store or queue serve several use cases.
mod shared_impls {
    use std::sync::Arc;

    use super::*;

    impl<T: AlertQueue> AlertQueue for Arc<T> {
        fn send_batch(&self, entries: &[QueueEntry]) -> impl Future<Output = Result<SendReport, QueueError>> + Send {
            (**self).send_batch(entries)
        }
    }

    impl<T: ArtifactStore> ArtifactStore for Arc<T> {
        fn put(&self, key: &str, bytes: Vec<u8>) -> impl Future<Output = Result<ObjectRef, ArtifactError>> + Send {
            (**self).put(key, bytes)
        }
        fn get(&self, key: &str) -> impl Future<Output = Result<Vec<u8>, ArtifactError>> + Send {
            (**self).get(key)
        }
    }

    impl<T: DedupStore> DedupStore for Arc<T> {
        fn claim(
            &self,
            key: &str,
            owner: &str,
            now: GraphTime,
            claim_until: GraphTime,
            expires_at: GraphTime,
        ) -> impl Future<Output = Result<Claim, CursorError>> + Send {
            (**self).claim(key, owner, now, claim_until, expires_at)
        }
        fn published(&self, key: &str, owner: &str) -> impl Future<Output = Result<(), CursorError>> + Send {
            (**self).published(key, owner)
        }
        fn release(&self, key: &str, owner: &str) -> impl Future<Output = Result<(), CursorError>> + Send {
            (**self).release(key, owner)
        }
    }
}
