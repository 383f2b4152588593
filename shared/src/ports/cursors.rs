//! What polling keeps between runs: each (integration, source) pair's cursor, the lease that
//! keeps two runs off it, and the schedule of when each pair is next due.

use std::future::Future;

use crate::domain::polling::cursor::Cursor;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::CursorError;

/// Identifies one cursor: (integration, source) and its lane.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CursorKey {
    pub integration_id: String,
    pub source: Source,
    pub lane: Lane,
}

/// Which cursor of a pair: the live one the schedule moves, or a backfill of a fixed range
/// with its own cursor and lease, which never touches the live one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    #[default]
    Live,
    Backfill {
        from: GraphTime,
        to: GraphTime,
    },
}

impl CursorKey {
    pub fn live(integration_id: impl Into<String>, source: Source) -> Self {
        CursorKey { integration_id: integration_id.into(), source, lane: Lane::Live }
    }

    pub fn backfill(integration_id: impl Into<String>, source: Source, from: GraphTime, to: GraphTime) -> Self {
        CursorKey { integration_id: integration_id.into(), source, lane: Lane::Backfill { from, to } }
    }
}

impl std::fmt::Display for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.lane {
            Lane::Live => write!(f, "{}/{}", self.integration_id, self.source),
            Lane::Backfill { from, to } => write!(f, "{}/{} backfill {from}..{to}", self.integration_id, self.source),
        }
    }
}

/// How a run ended, as its cursor remembers it for operators (`integration list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub at: GraphTime,
    /// `completed`, `partial: <why>`, `failed: <error>`, `skipped: <why>`; bounded in length.
    pub outcome: String,
}

/// What an operator sees of a cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CursorStatus {
    pub watermark: Option<GraphTime>,
    pub last_run: Option<GraphTime>,
    pub last_outcome: Option<String>,
    /// Until when a run holds it, when one does.
    pub leased_until: Option<String>,
}

/// A cursor under a lease, with the store's version for conditional commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub cursor: Cursor,
    pub version: u64,
    /// When a run last finished on this cursor (for "is it due").
    pub last_run: Option<GraphTime>,
}

/// Cursors and the leases that keep two runs off one cursor.
///
/// Contract: `acquire` succeeds when no lease exists, the lease expired before `now`, or
/// `owner` already holds it; otherwise `LeaseHeld`. `commit` writes only if `owner` still
/// holds the lease and the version is `expected_version` (else `LeaseLost`), and returns the
/// new version. `release` drops the lease if `owner` holds it and, when given, records when the
/// run started and how it ended; it is idempotent. `status` reads what an operator sees (None:
/// no cursor yet). Store failures are `Store { retryable }`.
pub trait CursorStore: Send + Sync {
    fn acquire(
        &self,
        key: &CursorKey,
        owner: &str,
        now: GraphTime,
        expires: GraphTime,
    ) -> impl Future<Output = Result<Leased, CursorError>> + Send;
    fn commit(
        &self,
        key: &CursorKey,
        owner: &str,
        expected_version: u64,
        cursor: &Cursor,
    ) -> impl Future<Output = Result<u64, CursorError>> + Send;
    fn release(&self, key: &CursorKey, owner: &str, ran: Option<&Ran>) -> impl Future<Output = Result<(), CursorError>> + Send;
    fn status(&self, key: &CursorKey) -> impl Future<Output = Result<Option<CursorStatus>, CursorError>> + Send;
}

/// When one (integration, source) pair is next due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEntry {
    pub key: CursorKey,
    pub at: GraphTime,
}

/// The schedule: when each (integration, source) pair is next due, found by a query on a key
/// (oldest first), never by listing integrations.
///
/// Contract: `set` creates or moves a pair's entry; `due` returns entries at or before `now`,
/// oldest first, at most `limit`; `reserve` moves an entry to `until` only if it is still at
/// `entry.at` (false: another dispatcher moved it first); `remove` deletes it (idempotent).
pub trait ScheduleStore: Send + Sync {
    fn set(&self, key: &CursorKey, at: GraphTime) -> impl Future<Output = Result<(), CursorError>> + Send;
    fn due(&self, source: Source, now: GraphTime, limit: usize) -> impl Future<Output = Result<Vec<DueEntry>, CursorError>> + Send;
    fn reserve(&self, entry: &DueEntry, until: GraphTime) -> impl Future<Output = Result<bool, CursorError>> + Send;
    fn remove(&self, key: &CursorKey) -> impl Future<Output = Result<(), CursorError>> + Send;
}

/// A shared adapter is the adapter: lets one store or queue serve several use cases.
mod shared_impls {
    use std::sync::Arc;

    use super::*;

    impl<T: CursorStore> CursorStore for Arc<T> {
        fn acquire(
            &self,
            key: &CursorKey,
            owner: &str,
            now: GraphTime,
            expires: GraphTime,
        ) -> impl Future<Output = Result<Leased, CursorError>> + Send {
            (**self).acquire(key, owner, now, expires)
        }
        fn commit(
            &self,
            key: &CursorKey,
            owner: &str,
            expected_version: u64,
            cursor: &Cursor,
        ) -> impl Future<Output = Result<u64, CursorError>> + Send {
            (**self).commit(key, owner, expected_version, cursor)
        }
        fn release(&self, key: &CursorKey, owner: &str, ran: Option<&Ran>) -> impl Future<Output = Result<(), CursorError>> + Send {
            (**self).release(key, owner, ran)
        }
        fn status(&self, key: &CursorKey) -> impl Future<Output = Result<Option<CursorStatus>, CursorError>> + Send {
            (**self).status(key)
        }
    }
}
