//! The configured integrations: where their documents are kept, revision by revision, and
//! their credentials (loaded by the functions, written by Test & Save).

use std::future::Future;

use crate::domain::integration::doc::IntegrationDoc;
use crate::domain::integration::{Credentials, Integration};
use crate::domain::time::GraphTime;
use crate::error::{CursorError, SecretError};

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

/// Loads an integration's credentials by reference. Never logs what it loads.
pub trait SecretSource: Send + Sync {
    fn load(&self, secret_ref: &str) -> impl Future<Output = Result<Credentials, SecretError>> + Send;
}

/// Writes integration credentials (Secrets Manager in AWS). Never logs what it writes.
pub trait SecretWriter: Send + Sync {
    /// Creates the secret `name`, or stores a new value in it; returns its reference (ARN).
    fn put(&self, name: &str, credentials: &Credentials) -> impl Future<Output = Result<String, SecretError>> + Send;
    /// Deletes the secret; a secret that does not exist is not an error.
    fn delete(&self, name: &str) -> impl Future<Output = Result<(), SecretError>> + Send;
}

/// A shared adapter is the adapter: lets one store or queue serve several use cases.
mod shared_impls {
    use std::sync::Arc;

    use super::*;

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
}
