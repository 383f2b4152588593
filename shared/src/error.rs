//! Errors per layer; each says whether trying again can help and names what to fix.

use std::time::Duration;

use crate::domain::polling::window::PagingError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set: {hint}")]
    Missing { name: String, hint: String },
    #[error("{name} = `{value}` is invalid: {hint}")]
    Invalid { name: String, value: String, hint: String },
    #[error("integration `{integration}`: the secret `{secret_ref}` holds credentials for tenant {tenant_id} / app {client_id}, not this integration's; it was not used (point secret_ref at this integration's own secret)")]
    CrossedSecret { integration: String, secret_ref: String, tenant_id: String, client_id: String },
}

/// Failures talking to Entra ID or Graph. Never carries a token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("Entra ID refused the token request ({code}): {description}")]
    Token { code: String, description: String, retryable: bool },
    #[error("{api} answered {status} {code}: {message}")]
    Http { api: &'static str, status: u16, code: String, message: String },
    #[error("{api} throttled the request {attempts} times in a row (last Retry-After {retry_after:?}){said}")]
    Throttled {
        api: &'static str,
        attempts: u32,
        retry_after: Option<Duration>,
        /// `; Microsoft said: …` with the last 429's message (which limit was reached, as
        /// security-api-overview.md says to read it), or empty.
        said: String,
    },
    #[error("{api}: the tenant's request budget has no slot within {within:?}; the request was not sent")]
    OverBudget { api: &'static str, within: Duration },
    #[error("network error calling {what}: {detail}")]
    Transport { what: String, detail: String },
    #[error("cannot read the response of {what}: {detail}")]
    Decode { what: String, detail: String },
    #[error(transparent)]
    Paging(#[from] PagingError),
    #[error("credential problem: {0}")]
    Credential(String),
    #[error("{api} answered with more than {limit} bytes{}; the answer was not read (fewer items per request would fit)", size.map(|s| format!(" ({s} announced)")).unwrap_or_default())]
    TooLarge { api: &'static str, size: Option<u64>, limit: usize },
}

impl GraphError {
    pub fn is_retryable(&self) -> bool {
        match self {
            GraphError::Token { retryable, .. } => *retryable,
            GraphError::Http { status, .. } => *status == 429 || *status >= 500,
            GraphError::Throttled { .. } | GraphError::OverBudget { .. } | GraphError::Transport { .. } | GraphError::Decode { .. } => true,
            GraphError::Paging(_) | GraphError::Credential(_) | GraphError::TooLarge { .. } => false,
        }
    }

    /// A tenant without Entra ID P1/P2 asking for sign-in logs (resources/signin.md; the
    /// message, "Neither tenant is B2C or tenant doesn't have premium license", is entra-docs'
    /// howto-analyze-activity-logs-with-microsoft-graph.md; the code is what callers meet).
    pub fn is_unlicensed(&self) -> bool {
        matches!(self, GraphError::Http { status: 403, code, message, .. }
            if code == "Authentication_RequestFromNonPremiumTenantOrB2CTenant" || message.contains("premium license"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("another run holds the lease on {key} until {until}")]
    LeaseHeld { key: String, until: String },
    #[error("the lease on {key} was lost (expired and taken, or the cursor changed underneath)")]
    LeaseLost { key: String },
    #[error("the cursor of {key} is unreadable: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("cursor store error: {detail}")]
    Store { detail: String, retryable: bool },
    #[error("{key} was not saved: {detail}")]
    Conflict { key: String, detail: String },
}

impl CursorError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, CursorError::Store { retryable: true, .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("queue error: {detail}")]
    Send { detail: String, retryable: bool },
    #[error("{failed} of {total} messages could not be sent after {attempts} attempts: {reason}")]
    Undelivered { failed: usize, total: usize, attempts: u32, reason: String },
    #[error("a message of {size} bytes exceeds the {limit}-byte limit even as a claim check")]
    TooLarge { size: usize, limit: usize },
}

impl QueueError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, QueueError::Send { retryable: true, .. } | QueueError::Undelivered { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact store error: {detail}")]
    Put { detail: String, retryable: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret `{secret_ref}` was not found: create it or fix the integration's secret reference")]
    NotFound { secret_ref: String },
    #[error("secret `{secret_ref}` is invalid: {problem}")]
    Invalid { secret_ref: String, problem: String },
    #[error("secret store error: {detail}")]
    Store { detail: String, retryable: bool },
}

/// Everything a poll can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Cursor(#[from] CursorError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_) => false,
            Error::Graph(e) => e.is_retryable(),
            Error::Cursor(e) => e.is_retryable(),
            Error::Queue(e) => e.is_retryable(),
            Error::Artifact(ArtifactError::Put { retryable, .. }) => *retryable,
            Error::Secret(SecretError::Store { retryable, .. }) => *retryable,
            Error::Secret(_) => false,
        }
    }
}
