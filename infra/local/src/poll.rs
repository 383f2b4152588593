//! `poll`: the deployment's path for one source, run from here against configured endpoints
//! (a real tenant and real AWS, or the simulator and moto): the dispatcher enqueues a job per
//! due pair, then jobs are taken off the poll-jobs queue and run by the poller's own code,
//! continuations included, as Lambda's event source mapping would, until none is left or the
//! time is up. Configured through the functions' environment variables (STATE_TABLE,
//! INTAKE_QUEUE_URL, POLL_JOBS_QUEUE_URL, ARTIFACT_BUCKET, LOGIN_BASE_URL, ...; DISPATCH_AWS_PROFILE
//! for the dispatcher's own credentials).

use std::time::{Duration, Instant};

use m365_ingest::adapters::aws::{load_sdk_config, load_sdk_config_for_profile, AwsClients};
use m365_ingest::config::{DispatchConfig, PollerConfig};
use m365_ingest::lambda::{dispatch, poller};

use crate::args::PollOptions;
use crate::event_source::{consume, Stop};
use crate::Failure;

/// Empty receives in a row that end the run (the jobs' continuations are sent before their
/// job is deleted, so an empty queue after a batch means no job is left).
const EMPTY_RECEIVES: usize = 2;

pub async fn run(o: PollOptions) -> Result<(), Failure> {
    let usage = |e: m365_ingest::error::ConfigError| Failure::Usage(e.to_string());
    let config = PollerConfig::from_env().map_err(usage)?;
    let dispatch_config = DispatchConfig::from_env().map_err(usage)?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let app = poller::build_aws(&config, &clients).map_err(|e| Failure::Usage(e.to_string()))?;
    // In AWS the dispatcher has a role of its own: DISPATCH_AWS_PROFILE runs it under a profile
    // for that role; the poller's steps (and the event source's receive and delete, which Lambda
    // does with the poller's role) use the process's credentials.
    let dispatch_clients = match std::env::var("DISPATCH_AWS_PROFILE") {
        Ok(profile) if !profile.is_empty() => AwsClients::new(&load_sdk_config_for_profile(&profile).await),
        _ => clients.clone(),
    };
    let dispatcher = dispatch::build_aws(&dispatch_config, &dispatch_clients);
    let event = serde_json::json!({"source": o.source.as_str()});
    let dispatched = dispatch::handle(&dispatcher, &event).await.map_err(|e| Failure::Run(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let stop = Stop { empty_receives: EMPTY_RECEIVES, deadline: Some(deadline) };
    // What the event source mapping does: a batch of up to 10 jobs per invocation; what
    // succeeded is deleted, the rest left to SQS.
    let consumed = consume(&clients.sqs, &config.poll_jobs_queue_url, 10, stop, |batch| async {
        let r = app.handle(batch, deadline).await;
        (r.response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect(), r.jobs)
    })
    .await
    .map_err(Failure::Run)?;
    let failed = consumed.failed;
    let jobs: Vec<_> = consumed.results.into_iter().flatten().collect();
    let runs: Vec<_> = jobs.iter().filter_map(|j| j.run.clone()).collect();
    let report = serde_json::json!({
        "source": o.source,
        "dispatch": dispatched,
        "jobs": jobs,
        "integrations": runs,
        "delivered": runs.iter().map(|r| r.delivered).sum::<usize>(),
        "failed": failed,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    if failed > 0 {
        return Err(Failure::Run(format!("{failed} poll job(s) failed; SQS delivers them again after the queue's visibility timeout")));
    }
    Ok(())
}
