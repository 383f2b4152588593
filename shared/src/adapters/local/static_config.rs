//! Integrations and credentials given up front (the local program's embedded defaults).

use std::collections::HashMap;

use crate::domain::integration::{Credentials, Integration};
use crate::error::{CursorError, SecretError};
use crate::ports::{IntegrationSource, SecretSource};

#[derive(Debug, Clone, Default)]
pub struct StaticSecretSource {
    secrets: HashMap<String, Credentials>,
}

impl StaticSecretSource {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, secret_ref: &str, creds: Credentials) -> Self {
        self.secrets.insert(secret_ref.to_owned(), creds);
        self
    }
}

impl SecretSource for StaticSecretSource {
    async fn load(&self, secret_ref: &str) -> Result<Credentials, SecretError> {
        self.secrets.get(secret_ref).cloned().ok_or_else(|| SecretError::NotFound { secret_ref: secret_ref.to_owned() })
    }
}

#[derive(Debug, Clone, Default)]
pub struct StaticIntegrations(pub Vec<Integration>);

impl IntegrationSource for StaticIntegrations {
    async fn integrations(&self) -> Result<Vec<Integration>, CursorError> {
        Ok(self.0.clone())
    }

    async fn integration(&self, id: &str) -> Result<Option<Integration>, CursorError> {
        Ok(self.0.iter().find(|i| i.id == id).cloned())
    }
}
