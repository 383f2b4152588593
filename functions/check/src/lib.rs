//! The `check` Lambda: Test & Save for one integration per invocation.

mod handler;

use lambda_runtime::{run, service_fn, Error};
use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};
use m365_ingest::config::CheckConfig;
use m365_ingest::lambda::check::build_aws;

/// Serves the function's invocations until the runtime stops it (`bootstrap` calls it when the
/// function's `Handler` names this function).
pub async fn serve() -> Result<(), Error> {
    let config = CheckConfig::from_env()?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let app = build_aws(&config, &clients)?;
    run(service_fn(|event| handler::handle(&app, event))).await
}
