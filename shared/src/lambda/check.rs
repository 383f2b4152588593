//! The `check` function's app: Test & Save on its AWS adapters.
//!
//! Event (JSON): `{"config": <integration document>, "credentials": {...}?, "save": "test" | "create" | "upsert"}`.
//! Without `credentials` the secret the document's `secret_ref` names is tested; with them
//! (`client_secret`, or `certificate_pem` + `private_key_pem`), they are tested and, on a pass,
//! written to that secret. `save` defaults to `upsert`: a passing configuration becomes the
//! integration's next revision. The answer is the report; it never holds a credential.
//!
//! A revision records who saved it: this invocation (the function and its request id, which
//! the Invoke call's CloudTrail data event carries with the caller's IAM principal) and the
//! requester the event names (`requested_by`, as the caller states it). A revision that relaxes
//! a guard rail is saved only when `relax` names each relaxed field.

use serde::Deserialize;
use serde_json::Value;

use crate::adapters::aws::{credentials_for, AwsClients, DynamoBudget, DynamoIntegrations, SecretsManagerSource};
use crate::adapters::graph::{MicrosoftHttp, RetryPolicy};
use crate::app::test_and_save::check::{Checker, CredentialInput, Report, Save, SaveMode, RELAXABLE};
use crate::config::CheckConfig;
use crate::domain::field_error::FieldError;
use crate::domain::integration::doc as integration_doc;
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
        // The tenant's budgets and Outlook's mailbox slots are the deployment's: a probe counts
        // against them like any other request.
        microsoft: MicrosoftHttp::new(&config.http, check_retry_policy())?
            .with_budget(std::sync::Arc::new(DynamoBudget::new(clients.dynamodb.clone(), &config.state_table))),
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
    /// Guard-rail relaxations the caller means (app/test_and_save/check.rs `RELAXABLE`).
    #[serde(default)]
    relax: Vec<String>,
    /// Who asked, as the caller (a console) states it.
    #[serde(default)]
    requested_by: Option<String>,
}

/// The invocation a request came in: what a revision records as its author.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub request_id: String,
    pub function_arn: String,
}

impl Invocation {
    fn author(&self, requested_by: Option<&str>) -> String {
        let stated = requested_by
            .map(|r| r.chars().filter(|c| !c.is_control()).take(256).collect::<String>())
            .filter(|r| !r.trim().is_empty())
            .map(|r| format!(", requested by {r} (as the caller states)"))
            .unwrap_or_default();
        format!("check function {} request {}{stated}", self.function_arn, self.request_id)
    }
}

fn problem(id: &str, field: &str, text: String, now: GraphTime) -> Report {
    let mut r = Report::failed(id, vec![FieldError { field: field.into(), problem: text }], now);
    r.not_saved = Some("the request was not valid".into());
    r
}

/// Runs one Test & Save request; bad requests come back as a failed report naming the field.
pub async fn handle<M, S, I, W>(app: &Checker<M, S, I, W>, event: &Value, invocation: &Invocation, now: GraphTime) -> Report
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
    if let Some((i, bad)) = event.relax.iter().enumerate().find(|(_, r)| !RELAXABLE.contains(&r.as_str())) {
        return problem(&doc.id, &format!("relax[{i}]"), format!("`{bad}` is not a guard rail: name one of {}", RELAXABLE.join(", ")), now);
    }
    let save = Save { mode: save, by: invocation.author(event.requested_by.as_deref()), relax: event.relax };
    let input = match event.credentials {
        None => CredentialInput::Stored,
        Some(given) => match credentials_for("credentials", &doc.tenant_id, &doc.client_id, given) {
            Ok(creds) => CredentialInput::New(creds),
            Err(e) => return problem(&doc.id, "credentials", e.to_string(), now),
        },
    };
    app.test_and_save(&doc, input, save, now).await
}
