//! The `dispatch` Lambda: one schedule per source; each run enqueues a poll job per due pair.

use lambda_runtime::{run, service_fn, Diagnostic, Error, LambdaEvent};
use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};
use m365_ingest::app::polling::dispatch::DispatchSummary;
use m365_ingest::config::DispatchConfig;
use m365_ingest::lambda::{dispatch, telemetry};
use m365_ingest::ports::Clock;
use serde_json::Value;

/// Serves the function's invocations until the runtime stops it (`bootstrap` calls it when the
/// function's `Handler` names this function).
pub async fn serve() -> Result<(), Error> {
    let config = DispatchConfig::from_env()?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let app = dispatch::build_aws(&config, &clients);
    run(service_fn(|event: LambdaEvent<Value>| {
        let app = &app;
        async move {
            let summary: DispatchSummary = dispatch::handle(app, &event.payload).await.map_err(|e| Diagnostic {
                error_type: if e.is_retryable() { "Retryable" } else { "Permanent" }.into(),
                error_message: e.to_string(),
            })?;
            telemetry::emit(&telemetry::dispatch_records(&summary, app.clock.now()));
            Ok::<_, Diagnostic>(summary)
        }
    }))
    .await
}
