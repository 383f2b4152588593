//! The intake queue on SQS: SendMessageBatch, with per-entry failures reported.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;

use super::sdk::{describe, sdk_retryable};
use crate::error::QueueError;
use crate::ports::{AlertQueue, FailedEntry, QueueEntry, SendReport, MAX_BATCH_ENTRIES};

#[derive(Debug, Clone)]
pub struct SqsAlertQueue {
    client: Client,
    queue_url: String,
}

impl SqsAlertQueue {
    pub fn new(client: Client, queue_url: &str) -> Self {
        SqsAlertQueue { client, queue_url: queue_url.to_owned() }
    }
}

impl AlertQueue for SqsAlertQueue {
    async fn send_batch(&self, entries: &[QueueEntry]) -> Result<SendReport, QueueError> {
        if entries.len() > MAX_BATCH_ENTRIES {
            return Err(QueueError::Send {
                detail: format!("{} entries; SendMessageBatch takes at most {MAX_BATCH_ENTRIES}", entries.len()),
                retryable: false,
            });
        }
        let batch = entries
            .iter()
            .map(|e| SendMessageBatchRequestEntry::builder().id(&e.id).message_body(&e.body).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueueError::Send { detail: e.to_string(), retryable: false })?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(batch))
            .send()
            .await
            .map_err(|e| QueueError::Send { detail: describe(&e), retryable: sdk_retryable(&e) })?;
        Ok(SendReport {
            failed: out
                .failed()
                .iter()
                .map(|f| FailedEntry {
                    id: f.id().to_owned(),
                    // The sender's fault (a bad message) will fail again; the service's may not.
                    retryable: !f.sender_fault(),
                    reason: format!("{}: {}", f.code(), f.message().unwrap_or_default()),
                })
                .collect(),
        })
    }
}
