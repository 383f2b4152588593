//! One SDK configuration and one client per service, built once per process.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;

type HttpResponse = aws_sdk_dynamodb::config::http::HttpResponse;

/// Loads region, credentials and endpoints the standard way (`AWS_REGION`,
/// `AWS_ENDPOINT_URL[_<SERVICE>]`, ...) with rustls on ring as the TLS stack.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).http_client(https_client()).timeout_config(timeouts()).load().await
}

fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build_https()
}

/// The same configuration with the credentials of a named profile of the shared config and
/// credentials files (a profile that assumes a function's role, say), whatever the process's
/// own credentials are.
pub async fn load_sdk_config_for_profile(profile: &str) -> aws_config::SdkConfig {
    let provider = aws_config::provider_config::ProviderConfig::without_region().with_http_client(https_client());
    let creds = aws_config::profile::ProfileFileCredentialsProvider::builder().configure(&provider).profile_name(profile).build();
    let base = load_sdk_config().await;
    base.to_builder().credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(creds)).build()
}

#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        // Path-style addressing works everywhere, including endpoints like moto's where
        // `bucket.host` does not resolve.
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(true).build();
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
            secrets: aws_sdk_secretsmanager::Client::new(config),
        }
    }
}

/// Error codes AWS services answer when a caller should slow down and try again. The SDK
/// retries these itself a few times; one that still comes back is retryable for our callers
/// too (the next attempt, or the next run), never a permanent failure.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "TransactionInProgressException",
    "LimitExceededException",
];

/// Whether an SDK error is worth retrying: throttling (by code), timeouts, dispatch failures,
/// unreadable responses and 5xx answers.
pub(crate) fn sdk_retryable<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(ctx) => {
            ctx.raw().status().as_u16() >= 500 || ctx.err().code().is_some_and(|c| THROTTLING_CODES.contains(&c))
        }
        _ => false,
    }
}

/// Operation timeouts for every AWS call: a hung connection must not eat the Lambda's time.
/// An attempt gets 6 s (a 1 MiB SendMessageBatch or claim-check put takes well under one);
/// the whole operation, the SDK's own retries included, 15 s: a cursor commit started at the
/// poller's send cut-off still ends before the Lambda does (poll.rs `safety_margin`).
pub fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(6))
        .operation_timeout(Duration::from_secs(15))
        .build()
}

/// The error text without the SDK's debug noise.
pub(crate) fn describe<E: std::error::Error>(e: &E) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A state-table failure as the ports report it.
pub(crate) fn store_err<E: ProvideErrorMetadata + std::error::Error + 'static>(e: &SdkError<E, HttpResponse>) -> crate::error::CursorError {
    crate::error::CursorError::Store { detail: describe(e), retryable: sdk_retryable(e) }
}
