//! The processor function's app: an SQS batch in, `batchItemFailures` out, so one bad message
//! never blocks or re-runs the others.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use crate::adapters::aws::{
    Aws, AwsClients, DynamoDedupStore, DynamoEvidenceJobs, DynamoIntegrations, S3ArtifactStore, SecretsManagerSource, SqsAlertQueue,
};
use crate::adapters::graph::{MicrosoftHttp, RetryPolicy};
use crate::app::evidence::setup::Evidence;
use crate::app::integration_cache::IntegrationCache;
use crate::app::processing::process::ProcessCounts;
use crate::app::processing::processor::Processor;
use crate::config::ProcessorConfig;
use crate::domain::evidence::job::JOB_MESSAGE_SCHEMA;
use crate::error::Error;
use crate::ports::{IntegrationSource, ProcessPorts, SystemClock};

/// Built once per warm function: the processor and where its batches' integrations come from.
pub struct ProcessorApp<P: ProcessPorts, I> {
    pub processor: Processor<P>,
    pub integrations: I,
    /// The integrations batches named, read by key and kept briefly.
    pub cache: IntegrationCache,
}

pub type AwsProcessorApp = ProcessorApp<Aws, DynamoIntegrations>;

pub fn build_aws(config: &ProcessorConfig, clients: &AwsClients) -> Result<AwsProcessorApp, Error> {
    // The deployment's shared budgets: context lookups count against the same per-tenant
    // limits as every other instance's.
    let budget: std::sync::Arc<dyn crate::ports::RequestBudget> =
        std::sync::Arc::new(crate::adapters::aws::DynamoBudget::new(clients.dynamodb.clone(), &config.state_table));
    Ok(ProcessorApp {
        processor: Processor {
            dedup: DynamoDedupStore::new(clients.dynamodb.clone(), &config.dedup_table),
            output: SqsAlertQueue::new(clients.sqs.clone(), &config.output_queue_url),
            artifacts: S3ArtifactStore::new(clients.s3.clone(), &config.artifact_bucket),
            clock: SystemClock,
            settings: config.process.clone(),
            evidence: Some(Evidence {
                jobs: DynamoEvidenceJobs::new(clients.dynamodb.clone(), &config.dedup_table),
                steps: SqsAlertQueue::new(clients.sqs.clone(), &config.evidence_queue_url),
                // A step is one call: throttling waits for the job's next message, not in the batch.
                // Paced by the deployment's shared budget, as context lookups are.
                api: MicrosoftHttp::new(&config.http, RetryPolicy::one_step())?.with_budget(budget.clone()),
                secrets: SecretsManagerSource::new(clients.secrets.clone()),
                settings: config.evidence.clone(),
            }),
            // Context lookups: a quick retry at most, throttling becomes the part's status.
            context: Some(crate::app::processing::enrich::Enricher::new(
                std::sync::Arc::new(crate::adapters::graph::context::MicrosoftContext::new(
                    MicrosoftHttp::new(&config.http, RetryPolicy::context())?.with_budget(budget.clone()),
                    SecretsManagerSource::new(clients.secrets.clone()),
                    config.context_budget_wait,
                )),
                crate::app::processing::enrich::EnrichSettings::default(),
            )),
        },
        integrations: DynamoIntegrations::new(clients.dynamodb.clone(), &config.state_table),
        cache: IntegrationCache::new(config.integration_cache),
    })
}

/// Only the integration id of an intake envelope or an evidence-job message: which records a
/// batch needs, and which kind of message it is.
#[derive(serde::Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    integration_id: std::borrow::Cow<'a, str>,
}

fn is_job_message(body: &str) -> bool {
    // A job message starts with its schema (serde writes fields in order); an envelope starts
    // with its own, so no alert's content can make it look like a job.
    body.strip_prefix("{\"schema\":\"").is_some_and(|rest| rest.starts_with(JOB_MESSAGE_SCHEMA))
}

impl<P: ProcessPorts, I: IntegrationSource> ProcessorApp<P, I> {
    /// Processes the batch; returns the ids SQS should deliver again. `Err` only when nothing
    /// could be tried (the integrations could not be read): SQS then retries the whole batch.
    pub async fn handle(&self, event: SqsEvent) -> Result<(SqsBatchResponse, ProcessCounts), Error> {
        self.handle_until(event, None).await
    }

    /// `handle` knowing when the invocation ends: evidence steps are started only with a whole
    /// step's time left, the rest reported for SQS to deliver again.
    pub async fn handle_until(
        &self,
        event: SqsEvent,
        ends: Option<std::time::Instant>,
    ) -> Result<(SqsBatchResponse, ProcessCounts), Error> {
        // Only the integrations this batch names, by key: a message naming none (or one that
        // does not decode) fails on its own in the processor.
        let named: Vec<Named<'_>> =
            event.records.iter().filter_map(|r| r.body.as_deref()).filter_map(|b| serde_json::from_str(b).ok()).collect();
        let ids: Vec<&str> = named.iter().map(|n| n.integration_id.as_ref()).collect();
        let integrations = self.cache.lookup(&self.integrations, &ids).await?;
        drop(named);
        let mut run = self.processor.batch(integrations);
        if let Some(ends) = ends {
            run = run.until(ends);
        }
        let mut response = SqsBatchResponse::default();
        let mut messages = Vec::with_capacity(event.records.len());
        let mut steps = Vec::new();
        for r in event.records {
            match (r.message_id, r.body) {
                (Some(id), Some(body)) if is_job_message(&body) => steps.push((id, body)),
                (Some(id), Some(body)) => messages.push((id, body)),
                (Some(id), None) => {
                    tracing::warn!(message_id = %id, "message without a body; reported as failed");
                    response.add_failure(id);
                }
                (None, _) => {
                    tracing::error!("an SQS record without a message id cannot be reported; SQS redelivers it after its visibility timeout")
                }
            }
        }
        for id in run.process_batch(&messages).await {
            response.add_failure(id);
        }
        for id in run.step_batch(&steps).await {
            response.add_failure(id);
        }
        let counts = run.take_counts();
        tracing::info!(alerts = counts.alerts, published = counts.published, incidents = counts.incidents_published, duplicates = counts.duplicates, held = counts.held, released = counts.released, failed = counts.failed_messages, dropped = ?counts.dropped, "batch processed");
        Ok((response, counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_job_message_is_taken_for_one_whatever_an_alert_says() {
        let job = crate::domain::evidence::job::JobMessage::new("contoso", "k").to_json();
        assert!(is_job_message(&job));
        let envelope =
            format!(r#"{{"schema":"m365-ingest.intake.v1","integration_id":"contoso","object":{{"title":"{JOB_MESSAGE_SCHEMA}"}}}}"#);
        assert!(!is_job_message(&envelope));
        assert!(!is_job_message(&format!(" {job}")), "exactly as the processor writes it");
    }
}
