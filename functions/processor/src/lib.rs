//! The `processor` Lambda: consumes the intake queue, publishes to the output queue.

mod handler;

use lambda_runtime::{run, service_fn, Error};
use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};
use m365_ingest::config::ProcessorConfig;
use m365_ingest::lambda::processor::build_aws;

/// Serves the function's invocations until the runtime stops it (`bootstrap` calls it when the
/// function's `Handler` names this function).
pub async fn serve() -> Result<(), Error> {
    let config = ProcessorConfig::from_env()?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let app = build_aws(&config, &clients)?;
    run(service_fn(|event| handler::handle(&app, event))).await
}
