//! The `query` Lambda: investigation queries (advanced hunting, Cloud Apps activities, context)
//! against one integration's tenant, invoked synchronously by callers with IAM permission; the
//! answer (or a clear error, retryable when the tenant throttled) is the response.

use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};
use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};
use m365_ingest::config::QueryConfig;
use m365_ingest::lambda::query::build_aws;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = QueryConfig::from_env()?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let app = build_aws(&config, &clients)?;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let app = &app;
        async move { Ok::<_, Error>(app.run(event.payload).await) }
    }))
    .await
}
