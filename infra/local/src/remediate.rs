//! `remediate`: one remediation request through the remediate function's code, on the
//! deployment's tables and queues (the functions' environment), as an operator would ask it.

use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};
use m365_ingest::app::response::remediate::Handled;
use m365_ingest::config::RemediateConfig;
use m365_ingest::domain::response::remediation::{Status, REQUEST_SCHEMA};
use m365_ingest::lambda::remediate::build_aws;

use crate::args::RemediateOptions;
use crate::Failure;

pub async fn run(o: RemediateOptions) -> Result<(), Failure> {
    let config = RemediateConfig::from_env().map_err(|e| Failure::Usage(e.to_string()))?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let r = build_aws(&config, &clients).map_err(|e| Failure::Usage(e.to_string()))?;
    let request_id = o.request_id.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("cli-{now:x}-{}", std::process::id())
    });
    let requested_by = format!("m365-ingest CLI ({})", std::env::var("USER").unwrap_or_else(|_| "operator".into()));
    let body = serde_json::json!({
        "schema": REQUEST_SCHEMA, "request_id": request_id, "integration_id": o.integration, "action": o.action,
        "user": o.user, "alert_ref": o.alert_ref, "reason": o.reason, "requested_by": requested_by, "dry_run": o.dry_run,
    });
    match r.handle(&body.to_string()).await {
        Handled::Ended(result) => {
            println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
            match result.status {
                Status::Done | Status::DryRun => Ok(()),
                Status::Rejected => Err(Failure::Usage(result.refusal.map(|r| r.reason).unwrap_or_default())),
                Status::Refused | Status::Failed => {
                    Err(Failure::Run(result.refusal.map(|r| format!("{}: {}", r.code, r.reason)).unwrap_or_default()))
                }
            }
        }
        Handled::Retry(why) => Err(Failure::Run(format!("not finished, try again: {why}"))),
    }
}
