//! `poll`: one pass of the poller's own code against configured endpoints: a real tenant and
//! real AWS, or the simulator and moto. Configured through the same environment variables as
//! the Lambda (STATE_TABLE, INTAKE_QUEUE_URL, ARTIFACT_BUCKET, LOGIN_BASE_URL, ...).

use std::time::{Duration, Instant};

use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};
use m365_ingest::config::PollerConfig;
use m365_ingest::lambda::poller::build_aws;

use crate::args::PollOptions;
use crate::Failure;

pub async fn run(o: PollOptions) -> Result<(), Failure> {
    let config = PollerConfig::from_env().map_err(|e| Failure::Usage(e.to_string()))?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let app = build_aws(&config, &clients).map_err(|e| Failure::Usage(e.to_string()))?;
    let event = serde_json::json!({"source": o.source.as_str()});
    let response = app.handle(&event, Instant::now() + Duration::from_secs(o.seconds)).await.map_err(|e| Failure::Run(e.to_string()))?;
    println!("{}", serde_json::to_string_pretty(&response).unwrap_or_default());
    if response.failed > 0 {
        return Err(Failure::Run(format!("{} integration(s) failed", response.failed)));
    }
    Ok(())
}
