//! Integration records and credentials in memory, with the same contracts as the AWS
//! adapters (the contract tests run against both).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::domain::integration::doc::IntegrationDoc;
use crate::domain::integration::revision::Provenance;
use crate::domain::integration::{Credentials, Integration};
use crate::domain::time::GraphTime;
use crate::error::{CursorError, SecretError};
use crate::ports::{IntegrationRecord, IntegrationSource, IntegrationStore, SecretSource, SecretWriter};

#[derive(Debug, Default)]
pub struct MemoryIntegrationStore {
    records: Mutex<BTreeMap<String, IntegrationRecord>>,
    /// Every revision saved, in order.
    history: Mutex<Vec<IntegrationRecord>>,
}

impl MemoryIntegrationStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The revisions saved of `id`, oldest first.
    pub fn revisions(&self, id: &str) -> Vec<IntegrationRecord> {
        self.history.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|r| r.doc.id == id).cloned().collect()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, IntegrationRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl IntegrationStore for MemoryIntegrationStore {
    async fn get(&self, id: &str) -> Result<Option<IntegrationRecord>, CursorError> {
        Ok(self.records().get(id).cloned())
    }

    async fn list(&self) -> Result<Vec<IntegrationRecord>, CursorError> {
        Ok(self.records().values().cloned().collect())
    }

    async fn save(&self, doc: &IntegrationDoc, expected: Option<u64>, at: GraphTime, provenance: &Provenance) -> Result<u64, CursorError> {
        let mut records = self.records();
        let current = records.get(&doc.id).map(|r| r.revision);
        if current != expected {
            return Err(CursorError::Conflict {
                key: format!("integration `{}`", doc.id),
                detail: match (expected, current) {
                    (None, Some(_)) => "an integration with this id exists already".into(),
                    (Some(r), _) => format!("it changed since revision {r} was read; read it again and retry"),
                    (None, None) => "unexpected".into(),
                },
            });
        }
        let revision = expected.unwrap_or(0) + 1;
        let record = IntegrationRecord { doc: doc.clone(), revision, saved_at: at, provenance: Some(provenance.clone()) };
        self.history.lock().unwrap_or_else(|p| p.into_inner()).push(record.clone());
        records.insert(doc.id.clone(), record);
        Ok(revision)
    }

    async fn remove(&self, id: &str) -> Result<bool, CursorError> {
        Ok(self.records().remove(id).is_some())
    }

    async fn secret_users(&self, secret_ref: &str) -> Result<Vec<String>, CursorError> {
        Ok(self.records().values().filter(|r| r.doc.secret_ref == secret_ref).map(|r| r.doc.id.clone()).collect())
    }
}

impl IntegrationSource for MemoryIntegrationStore {
    async fn integrations(&self) -> Result<Vec<Integration>, CursorError> {
        Ok(self.records().values().filter_map(|r| r.doc.validate().ok()).collect())
    }

    async fn integration(&self, id: &str) -> Result<Option<Integration>, CursorError> {
        Ok(self.records().get(id).and_then(|r| r.doc.validate().ok()))
    }
}

/// Credentials by name, readable and writable.
#[derive(Debug, Default)]
pub struct MemorySecrets {
    secrets: Mutex<BTreeMap<String, Credentials>>,
}

impl MemorySecrets {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn names(&self) -> Vec<String> {
        self.secrets.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }
}

impl SecretSource for MemorySecrets {
    async fn load(&self, secret_ref: &str) -> Result<Credentials, SecretError> {
        self.secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(secret_ref)
            .cloned()
            .ok_or_else(|| SecretError::NotFound { secret_ref: secret_ref.to_owned() })
    }
}

impl SecretWriter for MemorySecrets {
    async fn put(&self, name: &str, credentials: &Credentials) -> Result<String, SecretError> {
        self.secrets.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), credentials.clone());
        Ok(format!("memory:{name}"))
    }

    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.secrets.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        Ok(())
    }
}
