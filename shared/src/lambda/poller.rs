//! The poller function's app: a batch of poll jobs off the poll-jobs queue in,
//! `batchItemFailures` out, so a tenant that fails is retried on its own and never delays
//! another.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::adapters::aws::{
    Aws, AwsClients, DynamoBudget, DynamoCursorStore, DynamoIntegrations, DynamoSchedule, S3ArtifactStore, SecretsManagerSource,
    SqsAlertQueue,
};
use crate::adapters::graph::{MicrosoftHttp, RetryPolicy};
use crate::app::integration_cache::IntegrationCache;
use crate::app::polling::dispatch::{PollJob, JOB_SCHEMA};
use crate::app::polling::poll::{Poller, RunSummary};
use crate::app::polling::poll_job::JobEnd;
use crate::config::PollerConfig;
use crate::domain::permissions::Api;
use crate::domain::source::Source;
use crate::error::Error;
use crate::ports::{GraphApi, JobPorts, SystemClock};

/// The poll use case and what running jobs needs besides.
pub struct PollerApp<P: JobPorts> {
    pub poller: Poller<P>,
    pub integrations: P::Integrations,
    /// The integrations jobs named, read by key and kept briefly.
    pub cache: IntegrationCache,
    pub schedule: P::Schedule,
    /// Where continuations go: the poll-jobs queue.
    pub jobs: P::Jobs,
    /// How long one job polls before it hands the rest to its continuation.
    pub slice: Duration,
}

/// What became of one job of the batch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JobReport {
    pub message_id: String,
    pub integration_id: Option<String>,
    pub source: Option<Source>,
    /// done, continued, retry, dropped, or invalid (not a poll job: it goes to the DLQ).
    pub end: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSummary>,
}

/// What one invocation did.
#[derive(Debug, Clone)]
pub struct JobsResponse {
    /// The jobs SQS should deliver again.
    pub response: SqsBatchResponse,
    pub jobs: Vec<JobReport>,
    /// 429 answers and retries during this invocation, per API (`graph`, `cloud_apps`).
    pub calls: Vec<(&'static str, u64, u64)>,
}

impl JobsResponse {
    pub fn runs(&self) -> impl Iterator<Item = &RunSummary> {
        self.jobs.iter().filter_map(|j| j.run.as_ref())
    }
}

/// The deployed adapters.
pub type AwsPollerApp = PollerApp<Aws>;

pub fn build_aws(config: &PollerConfig, clients: &AwsClients) -> Result<AwsPollerApp, Error> {
    Ok(PollerApp {
        poller: Poller {
            graph: MicrosoftHttp::new(&config.http, RetryPolicy::default())?
                .with_budget(std::sync::Arc::new(DynamoBudget::new(clients.dynamodb.clone(), &config.state_table))),
            cursors: DynamoCursorStore::new(clients.dynamodb.clone(), &config.state_table),
            queue: SqsAlertQueue::new(clients.sqs.clone(), &config.intake_queue_url),
            artifacts: S3ArtifactStore::new(clients.s3.clone(), &config.artifact_bucket),
            secrets: SecretsManagerSource::new(clients.secrets.clone()),
            clock: SystemClock,
            settings: config.poll.clone(),
        },
        integrations: DynamoIntegrations::new(clients.dynamodb.clone(), &config.state_table),
        cache: IntegrationCache::new(config.integration_cache),
        schedule: DynamoSchedule::new(clients.dynamodb.clone(), &config.state_table),
        jobs: SqsAlertQueue::new(clients.sqs.clone(), &config.poll_jobs_queue_url),
        slice: config.job_slice,
    })
}

/// The APIs the throttling metrics are kept for, with their metric names.
const COUNTED: [(Api, &str); 2] = [(Api::Graph, "graph"), (Api::CloudApps, "cloud_apps")];

impl<P: JobPorts> PollerApp<P> {
    /// Runs the batch's jobs, a few at a time, each until its slice or `deadline` ends.
    pub async fn handle(&self, event: SqsEvent, deadline: Instant) -> JobsResponse {
        let before: Vec<(u64, u64)> = COUNTED.iter().map(|(api, _)| self.poller.graph.counters(*api)).collect();
        let jobs: Vec<JobReport> = stream::iter(event.records)
            .map(|r| async move {
                let id = r.message_id.unwrap_or_default();
                self.run_one(id, r.body.as_deref(), deadline).await
            })
            .buffer_unordered(self.poller.settings.concurrency.max(1))
            .collect()
            .await;
        let calls = COUNTED
            .iter()
            .zip(before)
            .map(|((api, name), (t0, r0))| {
                let (t1, r1) = self.poller.graph.counters(*api);
                (*name, t1 - t0, r1 - r0)
            })
            .collect();
        let mut response = SqsBatchResponse::default();
        for j in jobs.iter().filter(|j| matches!(j.end, "retry" | "invalid")) {
            if j.message_id.is_empty() {
                tracing::error!("an SQS record without a message id cannot be reported; SQS redelivers it after its visibility timeout");
            } else {
                response.add_failure(j.message_id.clone());
            }
        }
        JobsResponse { response, jobs, calls }
    }

    async fn run_one(&self, message_id: String, body: Option<&str>, deadline: Instant) -> JobReport {
        let mut report = JobReport { message_id, integration_id: None, source: None, end: "invalid", reason: None, run: None };
        let job: PollJob = match body.map(serde_json::from_str::<PollJob>) {
            Some(Ok(job)) if job.schema == JOB_SCHEMA => job,
            Some(Ok(job)) => {
                report.reason = Some(format!("unknown poll job schema `{}` (this poller reads {JOB_SCHEMA})", job.schema));
                return report;
            }
            Some(Err(e)) => {
                report.reason = Some(format!("not a poll job: {e}"));
                return report;
            }
            None => {
                report.reason = Some("a message without a body".into());
                return report;
            }
        };
        report.integration_id = Some(job.integration_id.clone());
        report.source = Some(job.source);
        // After the slice no new span starts; only the invocation's deadline cuts a read short.
        let slice_end = Instant::now() + self.slice;
        let (end, run) = self.poller.run_job(&job, &self.integrations, &self.cache, &self.schedule, &self.jobs, deadline, slice_end).await;
        report.run = run;
        (report.end, report.reason) = match end {
            JobEnd::Done => ("done", None),
            JobEnd::Continued => ("continued", None),
            JobEnd::Retry(why) => ("retry", Some(why)),
            JobEnd::Dropped(why) => ("dropped", Some(why)),
        };
        match report.end {
            "invalid" | "retry" => {
                tracing::warn!(message_id = %report.message_id, job = ?body, reason = ?report.reason, "poll job not finished; SQS delivers it again")
            }
            _ => tracing::info!(integration = %job.integration_id, source = %job.source, end = report.end, "poll job"),
        }
        report
    }
}
