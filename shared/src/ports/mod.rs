//! The boundary between the use cases and the outside world. Each port has an AWS adapter and
//! a local one (`adapters/`); the local ones back the demo and double as test fakes.

mod bundle;
pub mod context;
pub mod evidence;
pub mod investigation;
pub mod remediation;

use std::future::Future;

pub use bundle::{JobPorts, JobsWith, PollPorts, PollWith, ProcessPorts, ProcessWith};
pub use context::{ContextAnswer, ContextApi, ContextRequest};
pub use evidence::{
    ArtifactUpload, ArtifactUploads, DelayQueue, EvidenceApi, EvidenceJobStore, EvidencePorts, EvidenceWith, NoEvidence, StoredRecord,
};

use std::time::Duration;

use crate::domain::alert::{HeadSpec, Item};
pub use crate::domain::budget::Rate;
use crate::domain::envelope::ObjectRef;
use crate::domain::integration::doc::IntegrationDoc;
use crate::domain::integration::{Credentials, Integration};
use crate::domain::permissions::{Api, TokenClaims};
use crate::domain::polling::cursor::Cursor;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::{ArtifactError, CursorError, GraphError, QueueError, SecretError};

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

/// Loads an integration's credentials by reference. Never logs what it loads.
pub trait SecretSource: Send + Sync {
    fn load(&self, secret_ref: &str) -> impl Future<Output = Result<Credentials, SecretError>> + Send;
}

/// A windowed query of a Graph collection, as a source module builds it: `field ge from and
/// field lt to`, ordered by `field` ascending where the collection accepts `$orderby` (the
/// order Graph needs to accept the filter on mailboxes, though not one it promises to keep),
/// `$top`, `$skip` when > 0, `$count=true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphQuery {
    /// The collection's path under Graph's origin, e.g. `/v1.0/security/alerts_v2`.
    pub collection: String,
    /// The property the window is on, e.g. `lastUpdateDateTime`.
    pub field: &'static str,
    pub from: GraphTime,
    pub to: GraphTime,
    pub top: usize,
    pub skip: usize,
    /// `$expand`, when asked for.
    pub expand: Option<&'static str>,
    /// Send `$orderby=field asc` (submissions refuse any `$orderby`).
    pub ordered: bool,
    /// Send `$count=true` (where Microsoft documents it: the count proves a span complete).
    pub counted: bool,
    /// The integration's own OData filter, AND-ed after the window (the window leads: Outlook
    /// needs the sorted property first).
    pub and_filter: Option<String>,
    /// `$select`: the members to return.
    pub select: Option<&'static str>,
    /// Which members of the items are their id and version.
    pub head: HeadSpec,
}

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    Graph(GraphQuery),
    /// A `@odata.nextLink` Graph returned, for items read with `head`.
    Link {
        url: String,
        head: HeadSpec,
    },
    /// Cloud Apps alerts at the tenant's portal: `date` from `from` (inclusive) to before `to`,
    /// oldest first, `skip`/`limit` (≤ 100).
    CloudApps {
        portal: String,
        from: GraphTime,
        to: GraphTime,
        skip: usize,
        limit: usize,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Item>,
    pub next_link: Option<String>,
    /// What the API said about more items (Cloud Apps' `hasNext`); None when it says nothing.
    pub has_more: Option<bool>,
    /// Items that could not be decoded (no usable id or version), with why: kept to be
    /// quarantined, never silently dropped, and counted towards the page's items.
    pub rejects: Vec<crate::domain::alert::Rejected>,
    /// How many items match the request's filter, as the API counts them (Graph's
    /// `@odata.count`, Cloud Apps' `total` unless `moreThanTotal`); None when it did not say.
    pub count: Option<usize>,
}

/// Microsoft Graph as the poller uses it. Implementations keep tokens per tenant and audience,
/// retry throttling and transient failures within bounds, and refresh a token once on 401.
pub trait GraphApi: Send + Sync {
    fn page(&self, creds: &Credentials, request: &PageRequest) -> impl Future<Output = Result<Page, GraphError>> + Send;
    /// Every item of a Graph collection (`path` under Graph's origin, e.g. an incident's
    /// alerts), every page; items whose head does not decode are kept with an empty head.
    fn collection(&self, creds: &Credentials, path: &str, head: HeadSpec) -> impl Future<Output = Result<Vec<Item>, GraphError>> + Send;
    /// One entity of Graph (`path` under Graph's origin), without the response's own
    /// `@odata.*` annotations so that it reads as it does in a collection; None when Graph
    /// answers 404 (it no longer exists).
    fn item(&self, creds: &Credentials, path: &str, head: HeadSpec) -> impl Future<Output = Result<Option<Item>, GraphError>> + Send;
    /// The raw bytes at `path` under Graph's origin (a message's or an attachment's `$value`),
    /// at most the client's body cap (`TooLarge` beyond); None when Graph answers 404.
    fn content(&self, creds: &Credentials, path: &str) -> impl Future<Output = Result<Option<Vec<u8>>, GraphError>> + Send;
    /// (429 answers, retries) of one API so far, for metrics; adapters that do not count
    /// report zeros.
    fn counters(&self, _api: Api) -> (u64, u64) {
        (0, 0)
    }
}

/// Which budget a request counts against: a tenant's API, per app where Microsoft counts per app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BudgetKey {
    pub tenant_id: String,
    /// Some when the limit is per app per tenant (Graph), None when per tenant (Cloud Apps).
    pub client_id: Option<String>,
    pub api: Api,
    /// The resource a limit is kept per, under the app: a mailbox for Outlook's limits.
    pub scope: Option<String>,
}

/// The requests a tenant's API allows, shared by every function instance that calls on its
/// behalf (DynamoDB in AWS: pollers on many instances share one budget per tenant).
///
/// Contract: `admit` returns once one request may go under `rate`, having waited as long as the
/// budget says, and tells how long that was; requests admitted for one key never exceed the
/// rate in any window. A budget whose store fails still paces (within this instance) and never
/// fails the call: Microsoft's 429 stays the backstop.
pub trait RequestBudget: Send + Sync {
    fn admit<'a>(&'a self, key: &'a BudgetKey, rate: Rate) -> futures_util::future::BoxFuture<'a, Duration>;
    /// Like `admit`, but only when the request may go within `max_wait`: None (and nothing
    /// taken from the budget) when it would have to wait longer.
    fn admit_within<'a>(
        &'a self,
        key: &'a BudgetKey,
        rate: Rate,
        max_wait: Duration,
    ) -> futures_util::future::BoxFuture<'a, Option<Duration>>;
    /// Takes one of `limit` slots of `key` for requests in flight at once (Outlook's 4 per app
    /// per mailbox), across every instance that shares the budget, waiting at most `max_wait`;
    /// None when no slot freed up in time (nothing held). The slot is held until the [`Hold`]
    /// is released or dropped; a holder that vanishes (a frozen or crashed instance) loses its
    /// slot when `lease` ends. A store that fails holds within this instance.
    fn hold<'a>(
        &'a self,
        key: &'a BudgetKey,
        limit: u32,
        lease: Duration,
        max_wait: Duration,
    ) -> futures_util::future::BoxFuture<'a, Option<Hold>>;
}

/// How a shared slot is given back: a write to the store, awaited or left to run.
pub type Release = Box<dyn FnOnce() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// A slot among a key's concurrent requests ([`RequestBudget::hold`]). [`Hold::release`] gives it
/// back before returning; a hold dropped instead (a caller's future cancelled at its deadline)
/// gives it back in the background, so a lookup that timed out does not keep its slot until the
/// lease ends.
#[must_use = "the slot is held until this is released or dropped"]
pub struct Hold {
    shared: Option<Release>,
    /// This instance's slot, kept until the shared one is given back: a waiter here goes
    /// for the shared slot only once it is free.
    local: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Hold {
    pub fn new(local: Option<tokio::sync::OwnedSemaphorePermit>, shared: Option<Release>) -> Self {
        Hold { shared, local }
    }

    /// Gives the slot back, the shared one first. The write runs as its own task, so a caller
    /// cancelled while waiting for it (a lookup at its deadline) still gives the slot back.
    pub async fn release(mut self) {
        let (shared, local) = (self.shared.take(), self.local.take());
        if let Some(release) = shared {
            let giving = tokio::spawn(async move {
                release().await;
                drop(local);
            });
            let _ = giving.await;
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(release) = self.shared.take() {
            let local = self.local.take();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    release().await;
                    drop(local);
                });
            }
        }
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold").field("shared", &self.shared.is_some()).field("local", &self.local.is_some()).finish()
    }
}

/// The configured integrations.
pub trait IntegrationSource: Send + Sync {
    fn integrations(&self) -> impl Future<Output = Result<Vec<Integration>, CursorError>> + Send;
    /// One integration by its id: a read by key, never a listing. None when there is no record
    /// or it no longer validates (logged).
    fn integration(&self, id: &str) -> impl Future<Output = Result<Option<Integration>, CursorError>> + Send;
}

/// A saved integration document with its revision: 1 on the first save, one more each save.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IntegrationRecord {
    pub doc: IntegrationDoc,
    pub revision: u64,
    pub saved_at: GraphTime,
    /// Who saved this revision and what it changed (None: saved before revisions kept it).
    pub provenance: Option<crate::domain::integration::revision::Provenance>,
}

/// Where integration documents are kept (the state table in AWS).
///
/// Contract: `save` writes `doc` as revision `expected + 1`, or as revision 1 when `expected`
/// is None and no record exists; otherwise it writes nothing and returns `Conflict` (someone
/// saved in between, or the id is taken). `remove` deletes the record and every item kept
/// under the integration (its cursors), nothing of any other integration, and says whether a
/// record existed. `list` is sorted by id.
pub trait IntegrationStore: Send + Sync {
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<IntegrationRecord>, CursorError>> + Send;
    fn list(&self) -> impl Future<Output = Result<Vec<IntegrationRecord>, CursorError>> + Send;
    /// Saves `doc` as the next revision with what it records beside it (who saved it, what
    /// changed); each revision is also kept on its own (`revision#<n>`) for audit.
    fn save(
        &self,
        doc: &IntegrationDoc,
        expected: Option<u64>,
        at: GraphTime,
        provenance: &crate::domain::integration::revision::Provenance,
    ) -> impl Future<Output = Result<u64, CursorError>> + Send;
    fn remove(&self, id: &str) -> impl Future<Output = Result<bool, CursorError>> + Send;
    /// The ids of the saved integrations whose record names `secret_ref`, found by key (in AWS
    /// the functions may not list the table).
    fn secret_users(&self, secret_ref: &str) -> impl Future<Output = Result<Vec<String>, CursorError>> + Send;
}

/// Writes integration credentials (Secrets Manager in AWS). Never logs what it writes.
pub trait SecretWriter: Send + Sync {
    /// Creates the secret `name`, or stores a new value in it; returns its reference (ARN).
    fn put(&self, name: &str, credentials: &Credentials) -> impl Future<Output = Result<String, SecretError>> + Send;
    /// Deletes the secret; a secret that does not exist is not an error.
    fn delete(&self, name: &str) -> impl Future<Output = Result<(), SecretError>> + Send;
}

/// A single small call that proves an API answers this app (Test & Save).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The first request the poller makes for a source's window, as it makes it.
    FirstPage(PageRequest),
    /// One activity of the last day at the tenant's portal, as investigation queries read them.
    CloudAppsActivities {
        portal: String,
        since: GraphTime,
    },
    Machines,
    /// The quarantine lookup the evidence jobs make (`Get-QuarantineMessage` over the 30 days
    /// Exchange keeps, from `since`), then the export of the first message found, if any.
    Exchange {
        organization: String,
        since: GraphTime,
    },
}

/// Microsoft as Test & Save sees it: tokens with their claims, and one call per API.
pub trait MicrosoftProbe: Send + Sync {
    /// The Microsoft cloud these calls go to: what it does not offer is refused before any call.
    fn cloud(&self) -> crate::domain::cloud::Cloud;
    fn claims(&self, creds: &Credentials, api: Api) -> impl Future<Output = Result<TokenClaims, GraphError>> + Send;
    /// Makes the call; returns how many items came back.
    fn probe(&self, creds: &Credentials, probe: &Probe) -> impl Future<Output = Result<usize, GraphError>> + Send;
    /// The first page of a source's request, as the poller reads it: its items, for the filters.
    fn first_page(&self, creds: &Credentials, request: &PageRequest) -> impl Future<Output = Result<Page, GraphError>> + Send;
    /// One real call per context part, as the processor makes it, on a user and a device the
    /// tenant lists (a file by a hash any tenant may ask about).
    fn context(
        &self,
        creds: &Credentials,
        parts: &[crate::domain::processing::context::ContextPart],
        now: GraphTime,
    ) -> impl Future<Output = ContextProbe> + Send;
    /// The delivered-email jobs' search (by an Internet Message-ID no email has) on `mailbox`,
    /// or on a user the tenant lists with a mailbox; the mailbox it was made on.
    fn mailbox_search(&self, creds: &Credentials, mailbox: Option<&str>) -> impl Future<Output = (Option<String>, PartCall)> + Send;
}

/// How Test & Save's context calls went: on whom, and each part's call.
#[derive(Debug, Default)]
pub struct ContextProbe {
    /// The user's UPN and the device's id the calls were made on, where the tenant listed one.
    pub user: Option<String>,
    pub device: Option<String>,
    pub parts: Vec<(crate::domain::processing::context::ContextPart, PartCall)>,
}

/// One context part's test call.
#[derive(Debug)]
pub enum PartCall {
    /// Microsoft answered with the entity or collection.
    Answered,
    /// Microsoft answered 404: the call was allowed, the subject has none (a file no tenant saw).
    Missing,
    Failed(GraphError),
    /// Not made: nothing to make it on, and why.
    Unreached(String),
}

/// "Now" on the window field's clock. Production reads the system clock; tests that drive the
/// tenant simulator read its clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> GraphTime;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> GraphTime {
        GraphTime::now()
    }
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

    impl<T: SecretWriter> SecretWriter for Arc<T> {
        fn put(&self, name: &str, credentials: &Credentials) -> impl Future<Output = Result<String, SecretError>> + Send {
            (**self).put(name, credentials)
        }
        fn delete(&self, name: &str) -> impl Future<Output = Result<(), SecretError>> + Send {
            (**self).delete(name)
        }
    }

    impl<T: SecretSource> SecretSource for Arc<T> {
        fn load(&self, secret_ref: &str) -> impl Future<Output = Result<Credentials, SecretError>> + Send {
            (**self).load(secret_ref)
        }
    }

    impl<T: GraphApi> GraphApi for Arc<T> {
        fn page(&self, creds: &Credentials, request: &PageRequest) -> impl Future<Output = Result<Page, GraphError>> + Send {
            (**self).page(creds, request)
        }
        fn collection(
            &self,
            creds: &Credentials,
            path: &str,
            head: HeadSpec,
        ) -> impl Future<Output = Result<Vec<Item>, GraphError>> + Send {
            (**self).collection(creds, path, head)
        }
        fn item(&self, creds: &Credentials, path: &str, head: HeadSpec) -> impl Future<Output = Result<Option<Item>, GraphError>> + Send {
            (**self).item(creds, path, head)
        }
        fn content(&self, creds: &Credentials, path: &str) -> impl Future<Output = Result<Option<Vec<u8>>, GraphError>> + Send {
            (**self).content(creds, path)
        }
        fn counters(&self, api: Api) -> (u64, u64) {
            (**self).counters(api)
        }
    }
}
