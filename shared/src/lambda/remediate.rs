//! The remediate function's app: remediation requests from their SQS queue, one at a time, a
//! failed one reported in `batchItemFailures` (SQS delivers it again, then to the DLQ).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use crate::adapters::aws::{AwsClients, DynamoBudget, DynamoEvidenceJobs, DynamoIntegrations, SecretsManagerSource, SqsAlertQueue};
use crate::adapters::graph::{MicrosoftHttp, RetryPolicy};
use crate::app::integration_cache::{Cached, IntegrationCache};
use crate::app::response::remediate::{Handled, Remediator};
use crate::config::RemediateConfig;
use crate::error::Error;
use crate::ports::remediation::{RemediatePorts, RemediateWith};
use crate::ports::SystemClock;

pub type AwsRemediator = Remediator<
    RemediateWith<DynamoEvidenceJobs, MicrosoftHttp, SqsAlertQueue, SecretsManagerSource, Cached<DynamoIntegrations>, SystemClock>,
>;

pub fn build_aws(config: &RemediateConfig, clients: &AwsClients) -> Result<AwsRemediator, Error> {
    let budget: std::sync::Arc<dyn crate::ports::RequestBudget> =
        std::sync::Arc::new(DynamoBudget::new(clients.dynamodb.clone(), &config.state_table));
    Ok(Remediator {
        records: DynamoEvidenceJobs::new(clients.dynamodb.clone(), &config.dedup_table),
        // A write is not retried for long: a request that cannot go through now is delivered again.
        directory: MicrosoftHttp::new(&config.http, RetryPolicy::one_step())?.with_budget(budget),
        results: SqsAlertQueue::new(clients.sqs.clone(), &config.results_queue_url),
        secrets: SecretsManagerSource::new(clients.secrets.clone()),
        integrations: Cached::new(
            DynamoIntegrations::new(clients.dynamodb.clone(), &config.state_table),
            IntegrationCache::new(config.integration_cache),
        ),
        clock: SystemClock,
        settings: config.settings.clone(),
    })
}

/// Handles a batch; requests one after another, so the hourly cap and the audit see them in order.
pub async fn handle<P: RemediatePorts>(r: &Remediator<P>, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let Some(id) = record.message_id else {
            tracing::error!("an SQS record without a message id cannot be reported; SQS redelivers it after its visibility timeout");
            continue;
        };
        // SQS's own word for who sent it (the request's requested_by is only its claim).
        let sender = record.attributes.get("SenderId").map(String::as_str);
        match r.handle_sent_by(record.body.as_deref().unwrap_or_default(), sender).await {
            Handled::Ended(_) => {}
            Handled::Retry(reason) => {
                tracing::warn!(message_id = %id, %reason, "remediation request not finished; SQS will deliver it again");
                response.add_failure(id);
            }
        }
    }
    response
}
