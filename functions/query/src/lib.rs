//! The `query` Lambda: investigation queries (advanced hunting, Cloud Apps activities, context)
//! against one integration's tenant, invoked synchronously by callers with IAM permission; the
//! answer (or a clear error, retryable when the tenant throttled) is the response.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};
use m365_ingest::config::QueryConfig;
use m365_ingest::lambda::query::build_aws;

/// Serves the function's invocations until the runtime stops it (`bootstrap` calls it when the
/// function's `Handler` names this function).
pub async fn serve() -> Result<(), Error> {
    let config = QueryConfig::from_env()?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let app = build_aws(&config, &clients)?;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let app = &app;
        async move { Ok::<_, Error>(app.run(event.payload).await) }
    }))
    .await
}
