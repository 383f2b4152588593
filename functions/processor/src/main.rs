//! The `processor` Lambda: consumes the intake queue, publishes to the output queue.

mod handler;

use lambda_runtime::{run, service_fn, tracing, Error};
use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};
use m365_ingest::config::ProcessorConfig;
use m365_ingest::lambda::processor::build_aws;

// One thread: a function of 256 MB has a fraction of a vCPU, and its work is waiting on the
// network; a multi-threaded runtime only adds cross-thread wake-ups (measured: issue 11, item 7).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = ProcessorConfig::from_env()?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let app = build_aws(&config, &clients)?;
    run(service_fn(|event| handler::handle(&app, event))).await
}
