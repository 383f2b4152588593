//! `query`: one investigation query through the query function's code, on the deployment's
//! table and secrets (the functions' environment); the answer as JSON on stdout.

use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};
use m365_ingest::config::QueryConfig;
use m365_ingest::lambda::query::build_aws;

use crate::args::QueryOptions;
use crate::Failure;

pub async fn run(o: QueryOptions) -> Result<(), Failure> {
    let text = match o.request.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| Failure::Usage(format!("cannot read {path}: {e}")))?,
        None => o.request,
    };
    let request: serde_json::Value = serde_json::from_str(&text).map_err(|e| Failure::Usage(format!("the request is not JSON: {e}")))?;
    let config = QueryConfig::from_env().map_err(|e| Failure::Usage(e.to_string()))?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let app = build_aws(&config, &clients).map_err(|e| Failure::Usage(e.to_string()))?;
    let result = app.run(request).await;
    println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
    match &result.error {
        None => Ok(()),
        Some(e) if e.code == "invalid_query" => Err(Failure::Usage(e.message.clone())),
        Some(e) => Err(Failure::Run(format!(
            "{}: {}{}",
            e.code,
            e.message,
            e.retry_after_secs.map(|s| format!(" (ask again in {s} s)")).unwrap_or_default()
        ))),
    }
}
