//! The dispatch function's app: the schedule's event names a source; its due pairs become
//! poll jobs.

use serde_json::Value;

use super::events::source_of;
use crate::adapters::aws::{AwsClients, DynamoSchedule, SqsAlertQueue};
use crate::app::polling::dispatch::{DispatchSummary, Dispatcher};
use crate::config::DispatchConfig;
use crate::error::Error;
use crate::ports::{AlertQueue, Clock, ScheduleStore, SystemClock};

pub type AwsDispatcher = Dispatcher<DynamoSchedule, SqsAlertQueue, SystemClock>;

pub fn build_aws(config: &DispatchConfig, clients: &AwsClients) -> AwsDispatcher {
    Dispatcher {
        schedule: DynamoSchedule::new(clients.dynamodb.clone(), &config.state_table),
        jobs: SqsAlertQueue::new(clients.sqs.clone(), &config.poll_jobs_queue_url),
        clock: SystemClock,
        settings: config.dispatch,
    }
}

/// Decodes the schedule's event and dispatches its source.
pub async fn handle<S: ScheduleStore, Q: AlertQueue, K: Clock>(d: &Dispatcher<S, Q, K>, event: &Value) -> Result<DispatchSummary, Error> {
    let source = source_of(event)?;
    let summary = d.dispatch(source).await?;
    tracing::info!(source = %source, due = summary.due, enqueued = summary.enqueued, taken = summary.taken, not_sent = summary.not_sent, "dispatched");
    Ok(summary)
}
