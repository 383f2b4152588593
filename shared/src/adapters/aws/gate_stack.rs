//! A test stack on moto behind the IAM gate (`infra/aws-gate`): the resources a test, the soak
//! or the scale run created, registered under the template's logical ids, and each function's
//! credentials. A call signed with a function's key is authorized against that function's
//! policy in template.yaml, as AWS would authorize its role; the harness keeps full rights to
//! create and inspect.

use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};

use super::AwsClients;

/// The principals whose policies the gate enforces: the template's functions (by logical id)
/// and the operator (the template's `OperatorPolicy`, docs/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    Dispatch,
    Poller,
    Check,
    Processor,
    Query,
    Remediate,
    Operator,
}

impl Principal {
    pub fn logical_id(self) -> &'static str {
        match self {
            Principal::Dispatch => "DispatchFunction",
            Principal::Poller => "PollerFunction",
            Principal::Check => "CheckFunction",
            Principal::Processor => "ProcessorFunction",
            Principal::Query => "QueryFunction",
            Principal::Remediate => "RemediateFunction",
            Principal::Operator => "Operator",
        }
    }
}

/// One stack's registration with the gate.
#[derive(Debug, Clone)]
pub struct GateStack {
    id: String,
    endpoint: String,
    sdk: aws_config::SdkConfig,
    http: reqwest::Client,
}

impl GateStack {
    /// A stack with a fresh id (any process, any test: none share one), registered with no
    /// resources yet. Fails when the endpoint is not the gate (plain moto has no `/_gate/`).
    pub async fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> Result<Self, String> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = format!("s{:x}{:x}{n:x}", std::process::id(), nanos % 0xffff_ffff);
        crate::adapters::graph::settings::install_crypto_provider();
        let stack = GateStack {
            id,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            sdk: sdk.clone(),
            http: reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?,
        };
        stack.post(serde_json::json!({})).await?;
        Ok(stack)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    async fn post(&self, body: serde_json::Value) -> Result<(), String> {
        let url = format!("{}/_gate/stacks/{}", self.endpoint, self.id);
        let r = self.http.post(&url).json(&body).send().await.map_err(|e| format!("the IAM gate at {}: {e}", self.endpoint))?;
        if !r.status().is_success() {
            let text = r.text().await.unwrap_or_default();
            return Err(format!(
                "{} is not the IAM gate (or refused the stack: {text}); start it with `eval \"$(infra/scripts/moto.sh start)\"`",
                self.endpoint
            ));
        }
        Ok(())
    }

    /// A table or bucket created under `logical` (the template's logical id).
    pub async fn register_named(&self, logical: &str, name: &str) -> Result<(), String> {
        self.post(serde_json::json!({"resources": {logical: {"name": name}}})).await
    }

    /// A queue created under `logical`.
    pub async fn register_queue(&self, logical: &str, url: &str) -> Result<(), String> {
        let name = url.rsplit('/').next().unwrap_or(url);
        self.post(serde_json::json!({"resources": {logical: {"name": name, "url": url}}})).await
    }

    /// Template parameters the stack was "deployed" with (SecretPrefix, ...).
    pub async fn parameter(&self, name: &str, value: &str) -> Result<(), String> {
        self.post(serde_json::json!({"parameters": {name: value}})).await
    }

    /// This stack's test provokes denials on purpose: they do not fail the run.
    pub async fn expect_denials(&self) -> Result<(), String> {
        self.post(serde_json::json!({"denials_expected": true})).await
    }

    /// AWS-side faults at these rates (0–1 per call; kinds in infra/aws-gate/faults.py) for the
    /// calls of this stack's functions, drawn from `seed`.
    pub async fn inject_faults(&self, rates: &serde_json::Value, seed: u64) -> Result<(), String> {
        self.post(serde_json::json!({"faults": {"rates": rates, "seed": seed}})).await
    }

    /// How many faults of each kind the gate injected so far.
    pub async fn injected_faults(&self) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let url = format!("{}/_gate/faults?stack={}", self.endpoint, self.id);
        let v: serde_json::Value = self.http.get(&url).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        Ok(v["injected"].as_object().cloned().unwrap_or_default())
    }

    /// The ARN the gate gives `principal`'s role in this stack (what `aws:PrincipalArn` is).
    pub fn role_arn(&self, principal: Principal) -> String {
        format!("arn:aws:iam::123456789012:role/{}-{}Role", self.id, principal.logical_id())
    }

    /// The access key the gate knows as `principal` of this stack.
    pub fn access_key(&self, principal: Principal) -> String {
        format!("{}.{}", self.id, principal.logical_id())
    }

    pub fn sdk_config(&self, principal: Principal) -> aws_config::SdkConfig {
        let creds = Credentials::new(self.access_key(principal), "gate", None, None, "m365-ingest-gate");
        self.sdk.to_builder().credentials_provider(SharedCredentialsProvider::new(creds)).build()
    }

    /// Clients that act as `principal`.
    pub fn clients(&self, principal: Principal) -> AwsClients {
        AwsClients::new(&self.sdk_config(principal))
    }

    /// The environment a process of `principal` runs with (a Lambda gets its role's keys so);
    /// the caller removes `AWS_SESSION_TOKEN` and `AWS_PROFILE`.
    pub fn env(&self, principal: Principal) -> Vec<(&'static str, String)> {
        vec![("AWS_ACCESS_KEY_ID", self.access_key(principal)), ("AWS_SECRET_ACCESS_KEY", "gate".to_owned())]
    }

    /// What the gate denied this stack's principals so far: one line each, function, action
    /// and resource.
    pub async fn denials(&self) -> Result<Vec<String>, String> {
        let url = format!("{}/_gate/denials?stack={}", self.endpoint, self.id);
        let v: serde_json::Value = self.http.get(&url).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        Ok(v["denials"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| {
                        format!(
                            "{} {} on {}",
                            d["function"].as_str().unwrap_or("?"),
                            d["action"].as_str().unwrap_or("?"),
                            d["resource"].as_str().unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}
