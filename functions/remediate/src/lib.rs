//! The `remediate` Lambda: consumes the remediation queue; each request is checked against its
//! integration's guard rails, carried out at most once, and announced on the actions-result
//! queue with its audit record kept.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};
use m365_ingest::config::RemediateConfig;
use m365_ingest::lambda::remediate::{build_aws, handle};

/// Serves the function's invocations until the runtime stops it (`bootstrap` calls it when the
/// function's `Handler` names this function).
pub async fn serve() -> Result<(), Error> {
    let config = RemediateConfig::from_env()?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let app = build_aws(&config, &clients)?;
    run(service_fn(|event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
        let app = &app;
        async move { Ok::<_, Error>(handle(app, event.payload).await) }
    }))
    .await
}
