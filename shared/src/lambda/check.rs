//! The `check` function's app: Test & Save on its AWS adapters.
//!
//! Event (JSON): `{"config": <integration document>, "credentials": {...}?, "save": "test" | "create" | "upsert"}`.
//! Without `credentials` the secret the document's `secret_ref` names is tested; with them
//! (`client_secret`, or `certificate_pem` + `private_key_pem`), they are tested and, on a pass,
//! written to that secret. `save` defaults to `upsert`: a passing configuration becomes the
//! integration's next revision. The answer is the report; it never holds a credential.

use serde::Deserialize;
use serde_json::Value;

use crate::adapters::aws::{credentials_for, AwsClients, DynamoIntegrations, SecretsManagerSource};
use crate::adapters::graph::{MicrosoftHttp, RetryPolicy};
use crate::app::check::{Checker, CredentialInput, Report, SaveMode};
use crate::config::CheckConfig;
use crate::domain::integration_doc::{self, FieldError};
use crate::domain::time::GraphTime;
use crate::error::Error;
use crate::ports::{IntegrationStore, MicrosoftProbe, SecretSource, SecretWriter};

pub type AwsCheckApp = Checker<MicrosoftHttp, SecretsManagerSource, DynamoIntegrations, SecretsManagerSource>;

/// Test & Save answers while the admin waits: a short retry budget.
pub fn check_retry_policy() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, budget: std::time::Duration::from_secs(20), ..RetryPolicy::default() }
}

pub fn build_aws(config: &CheckConfig, clients: &AwsClients) -> Result<AwsCheckApp, Error> {
    Ok(Checker {
        microsoft: MicrosoftHttp::new(&config.http, check_retry_policy())?,
        secrets: SecretsManagerSource::new(clients.secrets.clone()),
        store: DynamoIntegrations::new(clients.dynamodb.clone(), &config.state_table),
        writer: SecretsManagerSource::new(clients.secrets.clone()),
        secret_prefix: config.secret_prefix.clone(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    config: Value,
    /// The secret's credential fields; checked by the secret format's own rules.
    #[serde(default)]
    credentials: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    save: Option<String>,
}

fn problem(id: &str, field: &str, text: String, now: GraphTime) -> Report {
    let mut r = Report::failed(id, vec![FieldError { field: field.into(), problem: text }], now);
    r.not_saved = Some("the request was not valid".into());
    r
}

/// Runs one Test & Save request; bad requests come back as a failed report naming the field.
pub async fn handle<M, S, I, W>(app: &Checker<M, S, I, W>, event: &Value, now: GraphTime) -> Report
where
    M: MicrosoftProbe,
    S: SecretSource,
    I: IntegrationStore,
    W: SecretWriter,
{
    let event: Event = match serde_path_to_error::deserialize(event) {
        Ok(e) => e,
        // `credentials` may be a secret of the wrong type: name the field, never the value.
        Err(e) => {
            let field = e.path().to_string();
            return problem("?", &field, crate::secret::serde_message_without_values(e.inner()), now);
        }
    };
    let doc = match integration_doc::from_json(&event.config.to_string()) {
        Ok(d) => d,
        Err(e) => {
            let first = e.errors.into_iter().next().unwrap_or(FieldError { field: "config".into(), problem: "invalid".into() });
            return problem("?", &format!("config.{}", first.field), first.problem, now);
        }
    };
    let save = match event.save.as_deref().unwrap_or("upsert") {
        "test" => SaveMode::No,
        "create" => SaveMode::Create,
        "upsert" => SaveMode::Update,
        other => return problem(&doc.id, "save", format!("`{other}` is not a save mode: use test, create or upsert"), now),
    };
    let input = match event.credentials {
        None => CredentialInput::Stored,
        Some(given) => match credentials_for("credentials", &doc.tenant_id, &doc.client_id, given) {
            Ok(creds) => CredentialInput::New(creds),
            Err(e) => return problem(&doc.id, "credentials", e.to_string(), now),
        },
    };
    app.test_and_save(&doc, input, save, now).await
}
