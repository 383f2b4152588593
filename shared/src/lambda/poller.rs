//! The poller function's app: AWS adapters around the poll use case.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::events::source_of;
use crate::adapters::aws::{AwsClients, DynamoCursorStore, DynamoIntegrations, S3ArtifactStore, SecretsManagerSource, SqsAlertQueue};
use crate::adapters::graph::{HttpGraphApi, RetryPolicy};
use crate::app::poll::{Outcome, Poller, RunSummary};
use crate::config::PollerConfig;
use crate::domain::source::Source;
use crate::error::Error;
use crate::ports::{AlertQueue, ArtifactStore, Clock, CursorStore, GraphApi, IntegrationSource, SecretSource, SystemClock};

/// The app as deployed: every port on its AWS adapter.
pub type AwsPollerApp =
    PollerApp<HttpGraphApi, DynamoCursorStore, SqsAlertQueue, S3ArtifactStore, SecretsManagerSource, SystemClock, DynamoIntegrations>;

/// The poll use case and where its integrations come from.
pub struct PollerApp<G, C, Q, A, S, K, I> {
    pub poller: Poller<G, C, Q, A, S, K>,
    pub integrations: I,
}

/// What one invocation did, per integration.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PollResponse {
    pub source: Source,
    pub integrations: Vec<RunSummary>,
    pub delivered: usize,
    pub failed: usize,
    /// Graph answers of 429 and retries during this invocation.
    pub graph_throttled: u64,
    pub graph_retried: u64,
}

pub fn build_aws(config: &PollerConfig, clients: &AwsClients) -> Result<AwsPollerApp, Error> {
    Ok(PollerApp {
        poller: Poller {
            graph: HttpGraphApi::new(&config.http, RetryPolicy::default())?,
            cursors: DynamoCursorStore::new(clients.dynamodb.clone(), &config.state_table),
            queue: SqsAlertQueue::new(clients.sqs.clone(), &config.intake_queue_url),
            artifacts: S3ArtifactStore::new(clients.s3.clone(), &config.artifact_bucket),
            secrets: SecretsManagerSource::new(clients.secrets.clone()),
            clock: SystemClock,
            settings: config.poll.clone(),
        },
        integrations: DynamoIntegrations::new(clients.dynamodb.clone(), &config.state_table),
    })
}

impl<G, C, Q, A, S, K, I> PollerApp<G, C, Q, A, S, K, I>
where
    G: GraphApi,
    C: CursorStore,
    Q: AlertQueue,
    A: ArtifactStore,
    S: SecretSource,
    K: Clock,
    I: IntegrationSource,
{
    /// Polls every due integration for the event's source until `deadline`.
    pub async fn handle(&self, event: &Value, deadline: Instant) -> Result<PollResponse, Error> {
        let source = source_of(event)?;
        let integrations = self.integrations.integrations().await?;
        let (t0, r0) = self.poller.graph.counters();
        let summaries = self.poller.poll_all(source, &integrations, deadline).await;
        let (t1, r1) = self.poller.graph.counters();
        let delivered = summaries.iter().map(|s| s.delivered).sum();
        let failed = summaries.iter().filter(|s| matches!(s.outcome, Outcome::Failed { .. })).count();
        Ok(PollResponse { source, integrations: summaries, delivered, failed, graph_throttled: t1 - t0, graph_retried: r1 - r0 })
    }
}
