//! The ports evidence retrieval adds (issue 13): Defender for Endpoint's live response and
//! Exchange Online's quarantine, the job records, the queue that moves jobs on later, and
//! uploads streamed to the artifact store.

use std::future::Future;
use std::time::Duration;

use futures_util::stream::BoxStream;

use crate::domain::envelope::ObjectRef;
use crate::domain::evidence::hold::HoldRecord;
use crate::domain::evidence::job::{ActionStatus, JobRecord};
use crate::domain::integration::Credentials;
use crate::domain::time::GraphTime;
use crate::error::{ArtifactError, CursorError, GraphError, QueueError, SecretError};

/// A live response machine action as its `GET` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionReport {
    pub status: ActionStatus,
    /// The commands' `errors`, for a failed one.
    pub errors: Vec<String>,
    /// The action's `errorHResult` (0 or absent when none).
    pub error_hresult: Option<i64>,
}

/// A download under way: its announced length and its bytes as they come.
pub struct Download {
    pub length: Option<u64>,
    pub chunks: BoxStream<'static, Result<bytes::Bytes, GraphError>>,
}

/// One live response command (run-live-response.md), in the order the API wants them:
/// RunScript before GetFile.
#[derive(Clone, PartialEq, Eq)]
pub enum LiveCommand {
    /// A script of the tenant's library with its `Args`.
    RunScript {
        script: String,
        args: String,
    },
    GetFile {
        path: String,
    },
}

/// A script's arguments may carry a restore's key (`-KeyB64`): never printed.
impl std::fmt::Debug for LiveCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveCommand::RunScript { script, args } => {
                let shown: Vec<&str> = args
                    .split(' ')
                    .scan(false, |key, w| {
                        let out = if *key { "<redacted>" } else { w };
                        *key = w == "-KeyB64";
                        Some(out)
                    })
                    .collect();
                f.debug_struct("RunScript").field("script", script).field("args", &shown.join(" ")).finish()
            }
            LiveCommand::GetFile { path } => f.debug_struct("GetFile").field("path", path).finish(),
        }
    }
}

/// A file for the tenant's live response library (upload-library.md, at most 20 MB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryUpload<'a> {
    pub file_name: &'a str,
    pub bytes: &'a [u8],
    pub description: &'a str,
    pub parameters_description: &'a str,
}

/// Defender for Endpoint and Exchange Online as evidence retrieval calls them. Errors are the
/// API's own (`GraphError::Http` with status and code), for the job to tell passing from final.
pub trait EvidenceApi: Send + Sync {
    /// `runliveresponse` with these commands; returns the machine action's id.
    fn run_live_response(
        &self,
        creds: &Credentials,
        device_id: &str,
        commands: &[LiveCommand],
    ) -> impl Future<Output = Result<String, GraphError>> + Send;
    fn machine_action(&self, creds: &Credentials, action_id: &str) -> impl Future<Output = Result<ActionReport, GraphError>> + Send;
    /// `GetLiveResponseResultDownloadLink(index=…)` of the command at `index`: a fresh link every call.
    fn result_link(&self, creds: &Credentials, action_id: &str, index: usize) -> impl Future<Output = Result<String, GraphError>> + Send;
    /// `POST machineactions/{id}/cancel` of an action that has not ended.
    fn cancel_action(&self, creds: &Credentials, action_id: &str) -> impl Future<Output = Result<(), GraphError>> + Send;
    /// `POST libraryfiles`, replacing a file of the same name.
    fn upload_library(&self, creds: &Credentials, file: &LibraryUpload<'_>) -> impl Future<Output = Result<(), GraphError>> + Send;
    /// Starts downloading a result link, only from an allowed blob host (`Decode` otherwise:
    /// the URL is never requested).
    fn download(&self, url: &str) -> impl Future<Output = Result<Download, GraphError>> + Send;
    /// The identities of the quarantined messages with this `Message-ID` for this recipient,
    /// received since `since`.
    fn find_quarantined(
        &self,
        creds: &Credentials,
        organization: &str,
        message_id: &str,
        recipient: &str,
        since: crate::domain::time::GraphTime,
    ) -> impl Future<Output = Result<Vec<String>, GraphError>> + Send;
    /// Export-QuarantineMessage of one identity: Exchange's answer as it came, with where its
    /// Base64 `Eml` lies in it (decoded on the way to the artifact store, never whole).
    fn export_quarantined(
        &self,
        creds: &Credentials,
        organization: &str,
        identity: &str,
    ) -> impl Future<Output = Result<ExportedEml, GraphError>> + Send;
    /// The Graph ids of the messages in `mailbox` with this Internet Message-ID
    /// (user-list-messages.md: `$filter=internetMessageId eq '…'`).
    fn find_in_mailbox(
        &self,
        creds: &Credentials,
        mailbox: &str,
        message_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, GraphError>> + Send;
    /// A mailbox message's MIME (`/messages/{id}/$value`, message-get.md), at most
    /// [`MAX_EXPORT_ANSWER_BYTES`] (`TooLarge` beyond).
    fn mailbox_mime(&self, creds: &Credentials, mailbox: &str, id: &str) -> impl Future<Output = Result<bytes::Bytes, GraphError>> + Send;
    /// One Graph entity by its path (an alert, an incident with its alerts, a submission):
    /// Microsoft's copy, which plans evidence. None: Microsoft has no such entity.
    fn microsoft_copy(
        &self,
        creds: &Credentials,
        path: &str,
        head: crate::domain::alert::HeadSpec,
    ) -> impl Future<Output = Result<Option<crate::domain::alert::Item>, GraphError>> + Send;
}

/// The largest Export-QuarantineMessage answer read: its Base64 is 4/3 of the message, so this
/// takes a message of some 48 MB (Exchange Online's limit is 150 MB; a larger one ends
/// `too_large`), and two in flight stay well inside a 256 MB function. A mailbox message's
/// MIME is read up to the same bound.
pub const MAX_EXPORT_ANSWER_BYTES: usize = 64 << 20;

/// An export as Exchange answered it: the answer's bytes (one copy) and the range of its Base64
/// `Eml`.
#[derive(Debug, Clone)]
pub struct ExportedEml {
    pub answer: bytes::Bytes,
    pub eml: std::ops::Range<usize>,
}

impl ExportedEml {
    /// An export of `eml` (tests, and an answer whose string had JSON escapes).
    pub fn of_base64(base64: String) -> Self {
        let len = base64.len();
        ExportedEml { answer: bytes::Bytes::from(base64.into_bytes()), eml: 0..len }
    }

    pub fn base64(&self) -> &[u8] {
        self.answer.get(self.eml.clone()).unwrap_or_default()
    }
}

/// A record of evidence retrieval kept under its own key: a job, or an alert's hold.
pub trait StoredRecord: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static {
    fn key(&self) -> &str;
}

impl StoredRecord for JobRecord {
    fn key(&self) -> &str {
        &self.job.key
    }
}

impl StoredRecord for LibraryRecord {
    fn key(&self) -> &str {
        &self.key
    }
}

/// A script m365-ingest puts in a tenant's live response library: uploaded once per tenant and
/// script version (`library/{tenant}/{file name}`), by the job that claimed the upload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LibraryRecord {
    pub key: String,
    pub sha256: String,
    /// Set once the library took it.
    pub uploaded_at: Option<GraphTime>,
    pub claimed_by: String,
    pub claimed_at: GraphTime,
}

impl StoredRecord for HoldRecord {
    fn key(&self) -> &str {
        &self.key
    }
}

/// Evidence jobs and holds (a DynamoDB item each, with TTL).
///
/// Contract: `create` stores the record unless one exists under its key and returns the stored
/// one with its version (a redelivered alert finds its job); `get` reads it; `save` writes only
/// if the stored version is still `expected` (`LeaseLost` otherwise: another step moved it on)
/// and returns the new version.
pub trait EvidenceJobStore: Send + Sync {
    fn create<R: StoredRecord>(&self, record: &R, expires_at: GraphTime) -> impl Future<Output = Result<(R, u64), CursorError>> + Send;
    fn get<R: StoredRecord>(&self, key: &str) -> impl Future<Output = Result<Option<(R, u64)>, CursorError>> + Send;
    fn save<R: StoredRecord>(
        &self,
        record: &R,
        expected: u64,
        expires_at: GraphTime,
    ) -> impl Future<Output = Result<u64, CursorError>> + Send;
    /// Adds `entry` to the set kept under `key` (an index found by key: the jobs due in an
    /// hour, an integration's open restores), creating it; the set expires with `expires_at`
    /// (None: it never expires).
    fn set_add(&self, key: &str, entry: &str, expires_at: Option<GraphTime>) -> impl Future<Output = Result<(), CursorError>> + Send;
    fn set_remove(&self, key: &str, entry: &str) -> impl Future<Output = Result<(), CursorError>> + Send;
    /// The set's entries, sorted (none when it does not exist).
    fn set_members(&self, key: &str) -> impl Future<Output = Result<Vec<String>, CursorError>> + Send;
}

/// The most SQS delays a message (DelaySeconds).
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// A queue whose messages can be held back (the evidence-jobs queue: SQS DelaySeconds, at most
/// [`MAX_DELAY`]).
pub trait DelayQueue: Send + Sync {
    fn send_delayed(&self, body: &str, delay: Duration) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// An object written as its bytes arrive; nothing is stored until `finish`.
pub trait ArtifactUpload: Send {
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = Result<(), ArtifactError>> + Send;
    /// Stores the object; `sha256` and `size` are the caller's count of what it wrote.
    fn finish(self, sha256: String, size: u64) -> impl Future<Output = Result<ObjectRef, ArtifactError>> + Send;
    /// Drops what was written.
    fn abort(self) -> impl Future<Output = ()> + Send;
}

/// Uploads of objects too large to hold in memory (S3 multipart in AWS).
pub trait ArtifactUploads: Send + Sync {
    type Upload: ArtifactUpload;
    fn begin(&self, key: &str, content_type: &str) -> impl Future<Output = Result<Self::Upload, ArtifactError>> + Send;
}

/// Loads credentials (re-exported for the evidence bundle).
pub use super::SecretSource;

/// What evidence retrieval runs on.
pub trait EvidencePorts: Send + Sync + 'static {
    type Jobs: EvidenceJobStore;
    /// The evidence-jobs queue.
    type Steps: DelayQueue;
    type Api: EvidenceApi;
    type Secrets: SecretSource;
}

/// Evidence ports chosen one by one.
pub struct EvidenceWith<J, S, M, C>(std::marker::PhantomData<(J, S, M, C)>);

impl<J, S, M, C> EvidencePorts for EvidenceWith<J, S, M, C>
where
    J: EvidenceJobStore + 'static,
    S: DelayQueue + 'static,
    M: EvidenceApi + 'static,
    C: SecretSource + 'static,
{
    type Jobs = J;
    type Steps = S;
    type Api = M;
    type Secrets = C;
}

/// A processor without evidence retrieval (tools that only render): nothing of this type exists.
#[derive(Debug)]
pub enum Unavailable {}

/// The ports of a processor without evidence retrieval.
pub struct NoEvidence;

impl EvidencePorts for NoEvidence {
    type Jobs = Unavailable;
    type Steps = Unavailable;
    type Api = Unavailable;
    type Secrets = Unavailable;
}

impl EvidenceJobStore for Unavailable {
    async fn create<R: StoredRecord>(&self, _: &R, _: GraphTime) -> Result<(R, u64), CursorError> {
        match *self {}
    }
    async fn get<R: StoredRecord>(&self, _: &str) -> Result<Option<(R, u64)>, CursorError> {
        match *self {}
    }
    async fn save<R: StoredRecord>(&self, _: &R, _: u64, _: GraphTime) -> Result<u64, CursorError> {
        match *self {}
    }
    async fn set_add(&self, _: &str, _: &str, _: Option<GraphTime>) -> Result<(), CursorError> {
        match *self {}
    }
    async fn set_remove(&self, _: &str, _: &str) -> Result<(), CursorError> {
        match *self {}
    }
    async fn set_members(&self, _: &str) -> Result<Vec<String>, CursorError> {
        match *self {}
    }
}

impl DelayQueue for Unavailable {
    async fn send_delayed(&self, _: &str, _: Duration) -> Result<(), QueueError> {
        match *self {}
    }
}

impl SecretSource for Unavailable {
    async fn load(&self, _: &str) -> Result<Credentials, SecretError> {
        match *self {}
    }
}

impl EvidenceApi for Unavailable {
    async fn run_live_response(&self, _: &Credentials, _: &str, _: &[LiveCommand]) -> Result<String, GraphError> {
        match *self {}
    }
    async fn cancel_action(&self, _: &Credentials, _: &str) -> Result<(), GraphError> {
        match *self {}
    }
    async fn upload_library(&self, _: &Credentials, _: &LibraryUpload<'_>) -> Result<(), GraphError> {
        match *self {}
    }
    async fn machine_action(&self, _: &Credentials, _: &str) -> Result<ActionReport, GraphError> {
        match *self {}
    }
    async fn result_link(&self, _: &Credentials, _: &str, _: usize) -> Result<String, GraphError> {
        match *self {}
    }
    async fn download(&self, _: &str) -> Result<Download, GraphError> {
        match *self {}
    }
    async fn find_quarantined(
        &self,
        _: &Credentials,
        _: &str,
        _: &str,
        _: &str,
        _: crate::domain::time::GraphTime,
    ) -> Result<Vec<String>, GraphError> {
        match *self {}
    }
    async fn export_quarantined(&self, _: &Credentials, _: &str, _: &str) -> Result<ExportedEml, GraphError> {
        match *self {}
    }
    async fn find_in_mailbox(&self, _: &Credentials, _: &str, _: &str) -> Result<Vec<String>, GraphError> {
        match *self {}
    }
    async fn mailbox_mime(&self, _: &Credentials, _: &str, _: &str) -> Result<bytes::Bytes, GraphError> {
        match *self {}
    }
    async fn microsoft_copy(
        &self,
        _: &Credentials,
        _: &str,
        _: crate::domain::alert::HeadSpec,
    ) -> Result<Option<crate::domain::alert::Item>, GraphError> {
        match *self {}
    }
}

mod shared_impls {
    use std::sync::Arc;

    use super::*;

    impl<T: EvidenceJobStore> EvidenceJobStore for Arc<T> {
        fn create<R: StoredRecord>(&self, record: &R, expires_at: GraphTime) -> impl Future<Output = Result<(R, u64), CursorError>> + Send {
            (**self).create(record, expires_at)
        }
        fn get<R: StoredRecord>(&self, key: &str) -> impl Future<Output = Result<Option<(R, u64)>, CursorError>> + Send {
            (**self).get(key)
        }
        fn save<R: StoredRecord>(
            &self,
            record: &R,
            expected: u64,
            expires_at: GraphTime,
        ) -> impl Future<Output = Result<u64, CursorError>> + Send {
            (**self).save(record, expected, expires_at)
        }
        fn set_add(&self, key: &str, entry: &str, expires_at: Option<GraphTime>) -> impl Future<Output = Result<(), CursorError>> + Send {
            (**self).set_add(key, entry, expires_at)
        }
        fn set_remove(&self, key: &str, entry: &str) -> impl Future<Output = Result<(), CursorError>> + Send {
            (**self).set_remove(key, entry)
        }
        fn set_members(&self, key: &str) -> impl Future<Output = Result<Vec<String>, CursorError>> + Send {
            (**self).set_members(key)
        }
    }

    impl<T: DelayQueue> DelayQueue for Arc<T> {
        fn send_delayed(&self, body: &str, delay: Duration) -> impl Future<Output = Result<(), QueueError>> + Send {
            (**self).send_delayed(body, delay)
        }
    }

    impl<T: ArtifactUploads> ArtifactUploads for Arc<T> {
        type Upload = T::Upload;
        fn begin(&self, key: &str, content_type: &str) -> impl Future<Output = Result<Self::Upload, ArtifactError>> + Send {
            (**self).begin(key, content_type)
        }
    }
}
