//! The ports the remediator adds (issue 14): the directory it reads and acts on, and its
//! records (each request once, and the per-tenant count of actions an hour), kept in the
//! evidence records' store (the dedup table in AWS, with TTL).

use std::future::Future;

use super::evidence::{EvidenceJobStore, StoredRecord};
use super::{AlertQueue, Clock, IntegrationSource, SecretSource};
use crate::domain::integration::Credentials;
use crate::domain::response::remediation::{RemediationRequest, RemediationResult, Target};
use crate::domain::time::GraphTime;
use crate::error::GraphError;

/// Entra ID as the remediator reads and changes it (ms-apis.md §10).
///
/// Contract: `target` reads the user by object id or UPN with every directory role and group
/// it holds, nested ones included (`memberships_incomplete` when pages were left unread), or
/// None when there is no such user. `revoke_sessions` and `disable_account` act on an object id
/// and return Microsoft's refusal as `GraphError::Http` (403 for a user only a more privileged
/// app may change).
pub trait DirectoryActions: Send + Sync {
    fn target(&self, creds: &Credentials, user: &str) -> impl Future<Output = Result<Option<Target>, GraphError>> + Send;
    fn revoke_sessions(&self, creds: &Credentials, user_id: &str) -> impl Future<Output = Result<(), GraphError>> + Send;
    fn disable_account(&self, creds: &Credentials, user_id: &str) -> impl Future<Output = Result<(), GraphError>> + Send;
}

/// One request, from its arrival to its result: the idempotency record and the audit record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestRecord {
    /// `remediation/{integration}/{request id}`.
    pub key: String,
    pub request: Option<RemediationRequest>,
    pub claimed_by: String,
    pub claimed_at: GraphTime,
    /// Set once the request ended: what was done or why not.
    pub result: Option<RemediationResult>,
}

impl StoredRecord for RequestRecord {
    fn key(&self) -> &str {
        &self.key
    }
}

/// Actions done for a tenant in one clock hour.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RateRecord {
    /// `remediation-rate/{tenant}/{unix hour}`.
    pub key: String,
    pub done: u32,
    /// Who took each slot: the first 16 hex digits of SHA-256 of `{integration}/{request id}`,
    /// so that a request tried again (Microsoft failed it retryably after its slot was taken)
    /// keeps its slot instead of taking another. At most `max_actions_per_hour` (≤ 1,000) of
    /// them: 17 KB at most.
    #[serde(default)]
    pub holders: Vec<String>,
}

impl StoredRecord for RateRecord {
    fn key(&self) -> &str {
        &self.key
    }
}

/// What remediating needs.
pub trait RemediatePorts: Send + Sync + 'static {
    type Records: EvidenceJobStore;
    type Directory: DirectoryActions;
    /// The actions-result queue.
    type Results: AlertQueue;
    type Secrets: SecretSource;
    type Integrations: IntegrationSource;
    type Clock: Clock;
}

/// Remediation ports chosen one by one.
pub struct RemediateWith<R, D, Q, S, I, K>(std::marker::PhantomData<(R, D, Q, S, I, K)>);

impl<R, D, Q, S, I, K> RemediatePorts for RemediateWith<R, D, Q, S, I, K>
where
    R: EvidenceJobStore + 'static,
    D: DirectoryActions + 'static,
    Q: AlertQueue + 'static,
    S: SecretSource + 'static,
    I: IntegrationSource + 'static,
    K: Clock + 'static,
{
    type Records = R;
    type Directory = D;
    type Results = Q;
    type Secrets = S;
    type Integrations = I;
    type Clock = K;
}
