//! The poller's configuration from its environment: names and URLs only, never secrets.

use std::time::Duration;

use crate::adapters::graph::HttpSettings;
use crate::domain::cloud::{Cloud, Hosts, ALLOW_STAND_INS};
use crate::error::ConfigError;
use crate::sources::settings::DeliverySettings;
use crate::sources::settings::PollSettings;

/// SQS rejects messages above 1 MiB (the AWS limit today; TOOLING.md §2).
pub const SQS_MAX_MESSAGE_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct PollerConfig {
    pub state_table: String,
    pub intake_queue_url: String,
    /// Where a job that ran out of its slice puts its continuation.
    pub poll_jobs_queue_url: String,
    /// How long one job polls before its continuation takes over (others get their turn).
    pub job_slice: Duration,
    /// How long a warm poller keeps an integration record it read.
    pub integration_cache: Duration,
    pub artifact_bucket: String,
    pub http: HttpSettings,
    pub poll: PollSettings,
}

fn required(get: &impl Fn(&str) -> Option<String>, name: &str, hint: &str) -> Result<String, ConfigError> {
    match get(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => Err(ConfigError::Missing { name: name.into(), hint: hint.into() }),
    }
}

fn number(get: &impl Fn(&str) -> Option<String>, name: &str, default: usize, min: usize, max: usize) -> Result<usize, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError::Invalid {
                name: name.into(),
                value: v,
                hint: format!("use a whole number from {min} to {max} (default {default})"),
            }),
        },
    }
}

fn https_url(get: &impl Fn(&str) -> Option<String>, name: &str, default: &str) -> Result<String, ConfigError> {
    // Empty is unset: the template passes "" for a host left to the cloud's preset.
    let v = get(name).filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_owned());
    let parsed = reqwest::Url::parse(&v).ok().filter(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()));
    let Some(u) = parsed.filter(|_| v.starts_with("https://")) else {
        return Err(ConfigError::Invalid { name: name.into(), value: v, hint: format!("use an https:// URL (default {default})") });
    };
    if !u.username().is_empty() || u.password().is_some() || v.contains('\\') {
        return Err(ConfigError::Invalid {
            name: name.into(),
            value: v,
            hint: format!("use a plain https:// URL, without credentials or a backslash (default {default})"),
        });
    }
    Ok(v.trim_end_matches('/').to_owned())
}

/// Where Microsoft is: the cloud's production hosts by default (MICROSOFT_CLOUD, Global unless
/// set), any of them overridden (a Defender for Endpoint geo host; the simulator in local runs).
pub fn http_settings(get: &impl Fn(&str) -> Option<String>) -> Result<HttpSettings, ConfigError> {
    let extra_ca_pem = match get("EXTRA_CA_BUNDLE_FILE") {
        None => None,
        Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| ConfigError::Invalid {
            name: "EXTRA_CA_BUNDLE_FILE".into(),
            value: path.clone(),
            hint: format!("cannot read it ({e}); point it at a PEM file of extra trusted CA certificates, or unset it"),
        })?),
    };
    let cloud = match get("MICROSOFT_CLOUD").filter(|v| !v.trim().is_empty()) {
        None => Cloud::Global,
        Some(v) => Cloud::parse(&v).map_err(|hint| ConfigError::Invalid { name: "MICROSOFT_CLOUD".into(), value: v, hint })?,
    };
    let preset = cloud.endpoints();
    let cloud_apps_base_override = match get("CLOUD_APPS_BASE_URL") {
        None => None,
        Some(_) => Some(https_url(get, "CLOUD_APPS_BASE_URL", "")?),
    };
    let login_base_url = https_url(get, "LOGIN_BASE_URL", preset.login)?;
    let graph_base_url = https_url(get, "GRAPH_BASE_URL", preset.graph)?;
    let mde_base_url = https_url(get, "MDE_BASE_URL", preset.mde)?;
    let exchange_base_url = https_url(get, "EXCHANGE_BASE_URL", preset.exchange)?;
    let hosts = match get(ALLOW_STAND_INS).as_deref().map(str::trim) {
        None | Some("") | Some("false") => Hosts::MicrosoftOnly,
        Some("true") => Hosts::StandInsAllowed,
        Some(v) => {
            return Err(ConfigError::Invalid {
                name: ALLOW_STAND_INS.into(),
                value: v.into(),
                hint: "use true only in a test stack pointed at a stand-in of Microsoft, or leave it unset".into(),
            })
        }
    };
    if cloud_apps_base_override.is_some() && hosts == Hosts::MicrosoftOnly {
        return Err(ConfigError::Invalid {
            name: "CLOUD_APPS_BASE_URL".into(),
            value: get("CLOUD_APPS_BASE_URL").unwrap_or_default(),
            hint: format!("it sends every Cloud Apps call to one stand-in: only a test stack sets it, with {ALLOW_STAND_INS}=true"),
        });
    }
    let scopes = cloud.scopes(&login_base_url, &graph_base_url, &mde_base_url, &exchange_base_url, hosts).map_err(|m| {
        let value = get(m.variable).unwrap_or_default();
        ConfigError::Invalid { name: m.variable.into(), value, hint: m.hint }
    })?;
    Ok(HttpSettings {
        cloud,
        scopes,
        login_base_url,
        graph_base_url,
        mde_base_url,
        exchange_base_url,
        cloud_apps_base_override,
        extra_ca_pem,
        ..HttpSettings::default()
    })
}

/// Read only in local runs against the simulator: never set by template.yaml.
const LOCAL_ONLY: [&str; 3] = ["EXTRA_CA_BUNDLE_FILE", "CLOUD_APPS_BASE_URL", ALLOW_STAND_INS];

impl PollerConfig {
    /// Every variable the poller reads, which template.yaml sets (a test holds both to this);
    /// EXTRA_CA_BUNDLE_FILE is for local stand-ins only.
    pub const VARIABLES: &'static [&'static str] = &[
        "STATE_TABLE",
        "INTAKE_QUEUE_URL",
        "POLL_JOBS_QUEUE_URL",
        "JOB_SLICE_SECS",
        "INTEGRATION_CACHE_SECS",
        "ARTIFACT_BUCKET",
        "MICROSOFT_CLOUD",
        "LOGIN_BASE_URL",
        "GRAPH_BASE_URL",
        "MDE_BASE_URL",
        "EXCHANGE_BASE_URL",
        "MAX_MESSAGE_BYTES",
        "ALERT_PAGE_SIZE",
        "INCIDENT_PAGE_SIZE",
        "POLL_CONCURRENCY",
        "SAFETY_MARGIN_SECS",
        "MAX_PAGES_PER_RUN",
        "GRAPH_REQUESTS_PER_MINUTE",
    ];
    /// Read but set by the Lambda service or only in local runs.
    pub const NOT_IN_TEMPLATE: &'static [&'static str] = &[LOCAL_ONLY[0], LOCAL_ONLY[1], LOCAL_ONLY[2], "AWS_LAMBDA_LOG_STREAM_NAME"];

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get`, so tests pass a map instead of the environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let state_table =
            required(&get, "STATE_TABLE", "set it to the DynamoDB state table's name (template.yaml sets it from StateTable)")?;
        let intake_queue_url =
            required(&get, "INTAKE_QUEUE_URL", "set it to the intake queue's URL (template.yaml sets it from IntakeQueue)")?;
        let poll_jobs_queue_url =
            required(&get, "POLL_JOBS_QUEUE_URL", "set it to the poll-jobs queue's URL (template.yaml sets it from PollJobsQueue)")?;
        let job_slice = Duration::from_secs(number(&get, "JOB_SLICE_SECS", 120, 10, 840)? as u64);
        let integration_cache = Duration::from_secs(number(&get, "INTEGRATION_CACHE_SECS", 60, 0, 3_600)? as u64);
        let artifact_bucket =
            required(&get, "ARTIFACT_BUCKET", "set it to the artifacts bucket's name (template.yaml sets it from ArtifactBucket)")?;
        let mut http = http_settings(&get)?;
        // Per app per tenant, shared by every poller (0: not paced; 429s alone hold it back).
        http.graph_rate = match number(&get, "GRAPH_REQUESTS_PER_MINUTE", 150, 0, 100_000)? {
            0 => None,
            n => Some(crate::ports::Rate { requests: n as u32, window: Duration::from_secs(60) }),
        };
        let d = PollSettings::default();
        let max_message_bytes = number(&get, "MAX_MESSAGE_BYTES", SQS_MAX_MESSAGE_BYTES, 16 * 1024, SQS_MAX_MESSAGE_BYTES)?;
        let poll = PollSettings {
            alert_page_size: number(&get, "ALERT_PAGE_SIZE", d.alert_page_size, 1, 1000)?,
            incident_page_size: number(&get, "INCIDENT_PAGE_SIZE", d.incident_page_size, 1, 50)?,
            concurrency: number(&get, "POLL_CONCURRENCY", d.concurrency, 1, 64)?,
            safety_margin: Duration::from_secs(number(&get, "SAFETY_MARGIN_SECS", d.safety_margin.as_secs() as usize, 5, 600)? as u64),
            max_pages: number(&get, "MAX_PAGES_PER_RUN", d.max_pages, 1, 100_000)?,
            delivery: DeliverySettings { max_message_bytes, max_batch_bytes: SQS_MAX_MESSAGE_BYTES, ..DeliverySettings::default() },
            // The log stream names this execution environment: a distinct lease owner per instance.
            owner: get("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|| format!("poller-{}", std::process::id())),
            cloud: http.cloud,
            ..d
        };
        Ok(PollerConfig { state_table, intake_queue_url, poll_jobs_queue_url, job_slice, integration_cache, artifact_bucket, http, poll })
    }
}

/// The dispatch function's configuration: where the schedule is and where jobs go.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    pub state_table: String,
    pub poll_jobs_queue_url: String,
    pub dispatch: crate::app::polling::dispatch::DispatchSettings,
}

impl DispatchConfig {
    pub const VARIABLES: &'static [&'static str] = &["STATE_TABLE", "POLL_JOBS_QUEUE_URL", "DISPATCH_GUARD_SECS", "MAX_JOBS_PER_DISPATCH"];
    pub const NOT_IN_TEMPLATE: &'static [&'static str] = &[];

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = crate::app::polling::dispatch::DispatchSettings::default();
        Ok(DispatchConfig {
            state_table: required(
                &get,
                "STATE_TABLE",
                "set it to the DynamoDB state table's name (template.yaml sets it from StateTable)",
            )?,
            poll_jobs_queue_url: required(
                &get,
                "POLL_JOBS_QUEUE_URL",
                "set it to the poll-jobs queue's URL (template.yaml sets it from PollJobsQueue)",
            )?,
            dispatch: crate::app::polling::dispatch::DispatchSettings {
                // Longer than a job can run (the poller's timeout), or a running pair is enqueued again.
                guard: Duration::from_secs(number(&get, "DISPATCH_GUARD_SECS", d.guard.as_secs() as usize, 60, 86_400)? as u64),
                max_jobs: number(&get, "MAX_JOBS_PER_DISPATCH", d.max_jobs, 1, 100_000)?,
            },
        })
    }
}

/// The Test & Save function's configuration: where records go and where Microsoft is.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub state_table: String,
    /// Secrets under this name prefix only (the stack's SecretPrefix).
    pub secret_prefix: String,
    pub http: HttpSettings,
}

impl CheckConfig {
    pub const VARIABLES: &'static [&'static str] =
        &["STATE_TABLE", "SECRET_PREFIX", "MICROSOFT_CLOUD", "LOGIN_BASE_URL", "GRAPH_BASE_URL", "MDE_BASE_URL", "EXCHANGE_BASE_URL"];
    pub const NOT_IN_TEMPLATE: &'static [&'static str] = &LOCAL_ONLY;

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(CheckConfig {
            state_table: required(
                &get,
                "STATE_TABLE",
                "set it to the DynamoDB state table's name (template.yaml sets it from StateTable)",
            )?,
            // Unset in local runs: any secret name.
            secret_prefix: get("SECRET_PREFIX").unwrap_or_default(),
            http: http_settings(&get)?,
        })
    }
}

/// The processor's configuration from its environment.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub state_table: String,
    pub dedup_table: String,
    /// How long a warm processor keeps an integration record it read.
    pub integration_cache: Duration,
    pub output_queue_url: String,
    pub artifact_bucket: String,
    pub process: crate::app::processing::processor::ProcessSettings,
    /// The evidence-jobs queue: its messages move evidence jobs on.
    pub evidence_queue_url: String,
    /// Where Defender for Endpoint and Exchange Online are, for evidence retrieval.
    pub http: HttpSettings,
    pub evidence: crate::app::evidence::setup::EvidenceSettings,
    /// The longest a context lookup waits for its tenant's request budget before its part is
    /// reported `throttled` (sign-ins allow 5 requests per 10 s per tenant).
    pub context_budget_wait: Duration,
}

impl ProcessorConfig {
    /// Every variable the processor reads, which template.yaml sets.
    pub const VARIABLES: &'static [&'static str] = &[
        "STATE_TABLE",
        "DEDUP_TABLE",
        "OUTPUT_QUEUE_URL",
        "ARTIFACT_BUCKET",
        "MAX_MESSAGE_BYTES",
        "PROCESS_CONCURRENCY",
        "DEDUP_CLAIM_SECS",
        "INTEGRATION_CACHE_SECS",
        "EVIDENCE_QUEUE_URL",
        "EVIDENCE_MAX_WAIT_SECS",
        "EVIDENCE_MAX_FILE_BYTES",
        "EVIDENCE_STEP_SECS",
        "CONTEXT_BUDGET_WAIT_SECS",
        "MICROSOFT_CLOUD",
        "LOGIN_BASE_URL",
        "GRAPH_BASE_URL",
        "MDE_BASE_URL",
        "EXCHANGE_BASE_URL",
    ];
    pub const NOT_IN_TEMPLATE: &'static [&'static str] = &[LOCAL_ONLY[0], LOCAL_ONLY[1], LOCAL_ONLY[2], "AWS_LAMBDA_LOG_STREAM_NAME"];

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = crate::app::processing::processor::ProcessSettings::default();
        let max_message_bytes = number(&get, "MAX_MESSAGE_BYTES", SQS_MAX_MESSAGE_BYTES, 16 * 1024, SQS_MAX_MESSAGE_BYTES)?;
        Ok(ProcessorConfig {
            state_table: required(
                &get,
                "STATE_TABLE",
                "set it to the DynamoDB state table's name (template.yaml sets it from StateTable)",
            )?,
            dedup_table: required(
                &get,
                "DEDUP_TABLE",
                "set it to the DynamoDB dedup table's name (template.yaml sets it from DedupTable)",
            )?,
            integration_cache: Duration::from_secs(number(&get, "INTEGRATION_CACHE_SECS", 60, 0, 3_600)? as u64),
            output_queue_url: required(
                &get,
                "OUTPUT_QUEUE_URL",
                "set it to the output queue's URL (template.yaml sets it from OutputQueue)",
            )?,
            artifact_bucket: required(
                &get,
                "ARTIFACT_BUCKET",
                "set it to the artifacts bucket's name (template.yaml sets it from ArtifactBucket)",
            )?,
            process: crate::app::processing::processor::ProcessSettings {
                concurrency: number(&get, "PROCESS_CONCURRENCY", d.concurrency, 1, 64)?,
                // A claim must outlive the processor's timeout, or a slow live processor loses it.
                claim_for: Duration::from_secs(number(&get, "DEDUP_CLAIM_SECS", d.claim_for.as_secs() as usize, 10, 3_600)? as u64),
                delivery: DeliverySettings { max_message_bytes, max_batch_bytes: SQS_MAX_MESSAGE_BYTES, ..DeliverySettings::default() },
                owner: get("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|| format!("processor-{}", std::process::id())),
                ..d
            },
            evidence_queue_url: required(
                &get,
                "EVIDENCE_QUEUE_URL",
                "set it to the evidence-jobs queue's URL (template.yaml sets it from EvidenceJobsQueue)",
            )?,
            http: http_settings(&get)?,
            evidence: {
                let e = crate::app::evidence::setup::EvidenceSettings::default();
                crate::app::evidence::setup::EvidenceSettings {
                    limits: crate::domain::evidence::job::JobLimits {
                        // The whole job's bound; an offline device ends it sooner (JobLimits::offline_window).
                        max_wait: Duration::from_secs(number(
                            &get,
                            "EVIDENCE_MAX_WAIT_SECS",
                            e.limits.max_wait.as_secs() as usize,
                            600,
                            3 * 86_400,
                        )? as u64),
                        ..e.limits
                    },
                    // GetFile returns at most 3 GB (ms-apis.md §7).
                    max_file_bytes: number(&get, "EVIDENCE_MAX_FILE_BYTES", e.max_file_bytes as usize, 1 << 20, 3 << 30)? as u64,
                    step_time: Duration::from_secs(number(&get, "EVIDENCE_STEP_SECS", e.step_time.as_secs() as usize, 10, 900)? as u64),
                    ..e
                }
            },
            context_budget_wait: Duration::from_secs(number(&get, "CONTEXT_BUDGET_WAIT_SECS", 2, 0, 30)? as u64),
        })
    }
}

/// The `remediate` function's configuration.
#[derive(Debug, Clone)]
pub struct RemediateConfig {
    pub state_table: String,
    /// Where request and rate records are kept (with TTL): the dedup table.
    pub dedup_table: String,
    pub integration_cache: Duration,
    /// The actions-result queue.
    pub results_queue_url: String,
    pub http: HttpSettings,
    pub settings: crate::app::response::remediate::RemediateSettings,
}

impl RemediateConfig {
    pub const VARIABLES: &'static [&'static str] = &[
        "STATE_TABLE",
        "DEDUP_TABLE",
        "INTEGRATION_CACHE_SECS",
        "ACTIONS_RESULT_QUEUE_URL",
        "REMEDIATION_AUDIT_DAYS",
        "MICROSOFT_CLOUD",
        "LOGIN_BASE_URL",
        "GRAPH_BASE_URL",
        "MDE_BASE_URL",
        "EXCHANGE_BASE_URL",
    ];
    pub const NOT_IN_TEMPLATE: &'static [&'static str] = &[LOCAL_ONLY[0], LOCAL_ONLY[1], LOCAL_ONLY[2], "AWS_LAMBDA_LOG_STREAM_NAME"];

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = crate::app::response::remediate::RemediateSettings::default();
        Ok(RemediateConfig {
            state_table: required(
                &get,
                "STATE_TABLE",
                "set it to the DynamoDB state table's name (template.yaml sets it from StateTable)",
            )?,
            dedup_table: required(
                &get,
                "DEDUP_TABLE",
                "set it to the DynamoDB dedup table's name (template.yaml sets it from DedupTable)",
            )?,
            integration_cache: Duration::from_secs(number(&get, "INTEGRATION_CACHE_SECS", 60, 0, 3_600)? as u64),
            results_queue_url: required(
                &get,
                "ACTIONS_RESULT_QUEUE_URL",
                "set it to the actions-result queue's URL (template.yaml sets it from ActionsResultQueue)",
            )?,
            http: http_settings(&get)?,
            settings: crate::app::response::remediate::RemediateSettings {
                keep_for: Duration::from_secs(number(&get, "REMEDIATION_AUDIT_DAYS", 400, 1, 3_650)? as u64 * 86_400),
                owner: get("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|| format!("remediate-{}", std::process::id())),
                ..d
            },
        })
    }
}

/// The `query` function's configuration.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    pub state_table: String,
    pub integration_cache: Duration,
    pub http: HttpSettings,
    /// The longest a lookup waits for its tenant's budget before it is reported throttled.
    pub budget_wait: Duration,
}

impl QueryConfig {
    pub const VARIABLES: &'static [&'static str] = &[
        "STATE_TABLE",
        "INTEGRATION_CACHE_SECS",
        "CONTEXT_BUDGET_WAIT_SECS",
        "MICROSOFT_CLOUD",
        "LOGIN_BASE_URL",
        "GRAPH_BASE_URL",
        "MDE_BASE_URL",
        "EXCHANGE_BASE_URL",
    ];
    pub const NOT_IN_TEMPLATE: &'static [&'static str] = &LOCAL_ONLY;

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(QueryConfig {
            state_table: required(
                &get,
                "STATE_TABLE",
                "set it to the DynamoDB state table's name (template.yaml sets it from StateTable)",
            )?,
            integration_cache: Duration::from_secs(number(&get, "INTEGRATION_CACHE_SECS", 60, 0, 3_600)? as u64),
            budget_wait: Duration::from_secs(number(&get, "CONTEXT_BUDGET_WAIT_SECS", 2, 0, 30)? as u64),
            http: http_settings(&get)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    const BASE: &[(&str, &str)] =
        &[("STATE_TABLE", "t"), ("INTAKE_QUEUE_URL", "https://sqs/q"), ("POLL_JOBS_QUEUE_URL", "https://sqs/j"), ("ARTIFACT_BUCKET", "b")];

    #[test]
    fn defaults_are_microsofts_endpoints_and_sqs_limits() {
        let c = PollerConfig::from_lookup(env(BASE)).unwrap();
        assert_eq!(c.http.graph_base_url, "https://graph.microsoft.com");
        assert_eq!(c.http.login_base_url, "https://login.microsoftonline.com");
        assert_eq!(c.poll.delivery.max_message_bytes, 1 << 20);
        assert_eq!(c.poll.alert_page_size, 1000);
    }

    #[test]
    fn a_cloud_preset_sets_every_host_and_scope_and_a_host_of_another_cloud_is_refused() {
        use crate::domain::permissions::Api;
        let mut high = BASE.to_vec();
        high.extend([("MICROSOFT_CLOUD", "GCCHigh"), ("GRAPH_BASE_URL", ""), ("MDE_BASE_URL", "")]);
        let c = PollerConfig::from_lookup(env(&high)).unwrap();
        assert_eq!(c.http.cloud, Cloud::GccHigh);
        assert_eq!(c.poll.cloud, Cloud::GccHigh, "the poller refuses what the cloud lacks");
        assert_eq!(c.http.login_base_url, "https://login.microsoftonline.us");
        assert_eq!(c.http.graph_base_url, "https://graph.microsoft.us", "an empty host is the preset's");
        assert_eq!(c.http.exchange_base_url, "https://outlook.office365.us");
        assert_eq!(c.http.scopes.of(Api::Graph), "https://graph.microsoft.us/.default");
        assert_eq!(c.http.scopes.of(Api::DefenderForEndpoint), "https://api-gov.securitycenter.microsoft.us/.default");
        high.push(("EXCHANGE_BASE_URL", "https://outlook.office365.com/"));
        let e = PollerConfig::from_lookup(env(&high)).unwrap_err().to_string();
        assert!(e.starts_with("EXCHANGE_BASE_URL = `https://outlook.office365.com/` is invalid:"), "{e}");
        assert!(e.contains("MICROSOFT_CLOUD is GCCHigh") && e.contains("use https://outlook.office365.us"), "{e}");
        let mut bad = BASE.to_vec();
        bad.push(("MICROSOFT_CLOUD", "usgov"));
        let e = PollerConfig::from_lookup(env(&bad)).unwrap_err().to_string();
        assert!(e.contains("MICROSOFT_CLOUD = `usgov` is invalid: use one of Global, GCC, GCCHigh, DoD"), "{e}");
    }

    #[test]
    fn a_host_microsoft_does_not_publish_is_refused_at_start_unless_a_test_stack_allows_stand_ins() {
        let mut typo = BASE.to_vec();
        typo.push(("GRAPH_BASE_URL", "https://graph.microsft.com"));
        let e = PollerConfig::from_lookup(env(&typo)).unwrap_err().to_string();
        assert!(e.starts_with("GRAPH_BASE_URL = `https://graph.microsft.com` is invalid:"), "{e}");
        assert!(e.contains("use https://graph.microsoft.com") && e.contains("ALLOW_NON_MICROSOFT_HOSTS"), "{e}");
        let mut stand_in = BASE.to_vec();
        stand_in.extend(["LOGIN_BASE_URL", "GRAPH_BASE_URL", "MDE_BASE_URL", "EXCHANGE_BASE_URL"].map(|k| (k, "https://127.0.0.1:4443")));
        let e = PollerConfig::from_lookup(env(&stand_in)).unwrap_err().to_string();
        assert!(e.starts_with("LOGIN_BASE_URL = `https://127.0.0.1:4443` is invalid:"), "{e}");
        stand_in.push(("ALLOW_NON_MICROSOFT_HOSTS", "true"));
        let c = PollerConfig::from_lookup(env(&stand_in)).unwrap();
        assert_eq!(c.http.graph_base_url, "https://127.0.0.1:4443");
        assert_eq!(c.http.scopes, crate::domain::cloud::Scopes::default(), "a stand-in gets the cloud's scopes");
        *stand_in.last_mut().unwrap() = ("ALLOW_NON_MICROSOFT_HOSTS", "yes");
        let e = PollerConfig::from_lookup(env(&stand_in)).unwrap_err().to_string();
        assert!(e.starts_with("ALLOW_NON_MICROSOFT_HOSTS = `yes` is invalid: use true only in a test stack"), "{e}");
    }

    /// Records the names a configuration asks for.
    fn asked(read: impl Fn(&dyn Fn(&str) -> Option<String>)) -> std::collections::BTreeSet<String> {
        let names = std::sync::Mutex::new(std::collections::BTreeSet::new());
        let all: HashMap<&str, &str> = BASE
            .iter()
            .copied()
            .chain([
                ("OUTPUT_QUEUE_URL", "https://sqs/o"),
                ("DEDUP_TABLE", "d"),
                ("EVIDENCE_QUEUE_URL", "https://sqs/e"),
                ("ACTIONS_RESULT_QUEUE_URL", "https://sqs/r"),
            ])
            .collect();
        read(&|k: &str| {
            names.lock().unwrap().insert(k.to_owned());
            all.get(k).map(|v| v.to_string())
        });
        names.into_inner().unwrap()
    }

    #[test]
    fn the_variable_lists_are_what_the_code_reads() {
        let poller = asked(|get| {
            PollerConfig::from_lookup(get).unwrap();
        });
        let want: std::collections::BTreeSet<String> =
            PollerConfig::VARIABLES.iter().chain(PollerConfig::NOT_IN_TEMPLATE).map(|s| s.to_string()).collect();
        assert_eq!(poller, want);
        let processor = asked(|get| {
            ProcessorConfig::from_lookup(get).unwrap();
        });
        let want: std::collections::BTreeSet<String> =
            ProcessorConfig::VARIABLES.iter().chain(ProcessorConfig::NOT_IN_TEMPLATE).map(|s| s.to_string()).collect();
        assert_eq!(processor, want);
        let check = asked(|get| {
            CheckConfig::from_lookup(get).unwrap();
        });
        let want: std::collections::BTreeSet<String> =
            CheckConfig::VARIABLES.iter().chain(CheckConfig::NOT_IN_TEMPLATE).map(|s| s.to_string()).collect();
        assert_eq!(check, want);
        let query = asked(|get| {
            QueryConfig::from_lookup(get).unwrap();
        });
        let want: std::collections::BTreeSet<String> =
            QueryConfig::VARIABLES.iter().chain(QueryConfig::NOT_IN_TEMPLATE).map(|s| s.to_string()).collect();
        assert_eq!(query, want);
        let remediate = asked(|get| {
            RemediateConfig::from_lookup(get).unwrap();
        });
        let want: std::collections::BTreeSet<String> =
            RemediateConfig::VARIABLES.iter().chain(RemediateConfig::NOT_IN_TEMPLATE).map(|s| s.to_string()).collect();
        assert_eq!(remediate, want);
        let dispatch = asked(|get| {
            DispatchConfig::from_lookup(get).unwrap();
        });
        let want: std::collections::BTreeSet<String> =
            DispatchConfig::VARIABLES.iter().chain(DispatchConfig::NOT_IN_TEMPLATE).map(|s| s.to_string()).collect();
        assert_eq!(dispatch, want);
    }

    #[test]
    fn errors_name_the_variable_and_the_fix() {
        let e = PollerConfig::from_lookup(env(&BASE[1..])).unwrap_err().to_string();
        assert!(e.starts_with("STATE_TABLE is not set: set it to"), "{e}");
        let mut bad = BASE.to_vec();
        bad.push(("ALERT_PAGE_SIZE", "5000"));
        let e = PollerConfig::from_lookup(env(&bad)).unwrap_err().to_string();
        assert!(e.contains("ALERT_PAGE_SIZE = `5000` is invalid: use a whole number from 1 to 1000"), "{e}");
        let mut bad = BASE.to_vec();
        bad.push(("GRAPH_BASE_URL", "http://graph.local"));
        assert!(PollerConfig::from_lookup(env(&bad)).unwrap_err().to_string().contains("https://"));
        let mut bad = BASE.to_vec();
        bad.push(("EXTRA_CA_BUNDLE_FILE", "/no/such.pem"));
        assert!(PollerConfig::from_lookup(env(&bad)).unwrap_err().to_string().contains("EXTRA_CA_BUNDLE_FILE"));
    }

    #[test]
    fn the_dedup_claim_is_configurable_within_bounds() {
        let base = [
            ("STATE_TABLE", "t"),
            ("DEDUP_TABLE", "d"),
            ("OUTPUT_QUEUE_URL", "https://sqs/o"),
            ("ARTIFACT_BUCKET", "b"),
            ("EVIDENCE_QUEUE_URL", "https://sqs/e"),
        ];
        assert_eq!(ProcessorConfig::from_lookup(env(&base)).unwrap().process.claim_for, Duration::from_secs(300));
        let mut short = base.to_vec();
        short.push(("DEDUP_CLAIM_SECS", "25"));
        assert_eq!(ProcessorConfig::from_lookup(env(&short)).unwrap().process.claim_for, Duration::from_secs(25));
        let mut bad = base.to_vec();
        bad.push(("DEDUP_CLAIM_SECS", "1"));
        let e = ProcessorConfig::from_lookup(env(&bad)).unwrap_err().to_string();
        assert!(e.contains("DEDUP_CLAIM_SECS = `1` is invalid: use a whole number from 10 to 3600"), "{e}");
    }
}
