//! Lambda's SQS event source mapping in miniature, for the local program's `poll` and the scale
//! run: batches off a queue into a handler, what it did not fail deleted in one batch call, as
//! the mapping does, until the queue stays empty (or the time is up).

use std::future::Future;
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;

/// When consuming stops: after this many empty receives in a row, or at the deadline.
pub struct Stop {
    pub empty_receives: usize,
    pub deadline: Option<Instant>,
}

/// What a run of the mapping did.
pub struct Consumed<T> {
    /// What each invocation returned beside its failures.
    pub results: Vec<T>,
    /// Messages the handler failed (left on the queue for SQS to deliver again).
    pub failed: usize,
    /// Seconds spent inside the handler.
    pub busy_secs: f64,
}

/// Receives up to `batch` messages at a time from `queue` and hands them to `handle`, which
/// returns the ids of the messages it failed and a result of its own.
pub async fn consume<T, F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    batch: i32,
    stop: Stop,
    mut handle: F,
) -> Result<Consumed<T>, String>
where
    F: FnMut(SqsEvent) -> Fut,
    Fut: Future<Output = (Vec<String>, T)>,
{
    let mut out = Consumed { results: Vec::new(), failed: 0, busy_secs: 0.0 };
    let mut empty = 0;
    while empty < stop.empty_receives && stop.deadline.is_none_or(|d| Instant::now() < d) {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(batch)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| format!("receiving from {queue}: {}", DisplayErrorContext(&e)))?;
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|m| {
                let mut r = SqsMessage::default();
                r.message_id = m.message_id.clone();
                r.body = m.body.clone();
                r
            })
            .collect();
        let started = Instant::now();
        let (failed, result) = handle(event).await;
        out.busy_secs += started.elapsed().as_secs_f64();
        out.failed += failed.len();
        out.results.push(result);
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !failed.iter().any(|f| Some(f.as_str()) == m.message_id.as_deref()))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder().id(i.to_string()).set_receipt_handle(m.receipt_handle.clone()).build().ok()
            })
            .collect();
        if !done.is_empty() {
            let answer = sqs
                .delete_message_batch()
                .queue_url(queue)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| format!("deleting from {queue}: {}", DisplayErrorContext(&e)))?;
            // A message not deleted comes back after the visibility timeout: say so now.
            if let Some(f) = answer.failed().first() {
                return Err(format!(
                    "deleting from {queue}: {} message(s) refused, e.g. {}: {}",
                    answer.failed().len(),
                    f.code(),
                    f.message().unwrap_or_default()
                ));
            }
        }
    }
    Ok(out)
}
