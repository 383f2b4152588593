//! One SDK configuration and one client per service, built once per process.

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls;

/// Loads region, credentials and endpoints the standard way (`AWS_REGION`,
/// `AWS_ENDPOINT_URL[_<SERVICE>]`, ...) with rustls on ring as the TLS stack.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    let http =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http).load().await
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

/// Whether an SDK error is worth retrying: throttling, timeouts, dispatch failures and 5xx.
pub(crate) fn sdk_retryable<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool {
    use aws_sdk_dynamodb::error::SdkError;
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) | SdkError::ConstructionFailure(_) => false,
        _ => false,
    }
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
