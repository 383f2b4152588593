//! `redrive`: messages of a dead-letter queue back to the queue they came from, once the cause
//! is fixed. Each message is sent to the target before it is deleted from the DLQ: a failure
//! between the two leaves a copy in both (the processor's dedup and the poll job's check make
//! that harmless), never none.

use std::time::{Duration, Instant};

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry};
use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};

use crate::args::RedriveOptions;
use crate::Failure;

/// Receives that found nothing, in a row, before the DLQ counts as empty.
const EMPTY_RECEIVES: usize = 2;
/// The whole move is bounded in time; run it again for the rest.
const MAX_TIME: Duration = Duration::from_secs(900);

fn sqs_err<E: std::error::Error + 'static, R: std::fmt::Debug>(what: &str, e: aws_sdk_sqs::error::SdkError<E, R>) -> Failure {
    Failure::Run(format!("{what}: {}", DisplayErrorContext(&e)))
}

pub async fn run(o: RedriveOptions) -> Result<(), Failure> {
    if o.from == o.to {
        return Err(Failure::Usage("--from and --to are the same queue".into()));
    }
    let clients = AwsClients::new(&load_sdk_config().await);
    let sqs = &clients.sqs;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&o.from)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| sqs_err("reading --from", e))?;
    let waiting: usize =
        attrs.attributes().and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages)).and_then(|v| v.parse().ok()).unwrap_or(0);
    // The target must exist before anything moves.
    sqs.get_queue_attributes()
        .queue_url(&o.to)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sqs_err("reading --to", e))?;
    let limit = o.max.unwrap_or(usize::MAX);
    if o.dry_run {
        // A look that hides nothing: visibility 0 leaves every message where it was.
        let peek = sqs
            .receive_message()
            .queue_url(&o.from)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| sqs_err("peeking at --from", e))?;
        println!("dry run: about {waiting} message(s) in {}; {} would move to {}", o.from, waiting.min(limit), o.to);
        for m in peek.messages() {
            println!("  {} {}", m.message_id().unwrap_or("?"), summary(m.body().unwrap_or("")));
        }
        return Ok(());
    }
    let started = Instant::now();
    let (mut moved, mut failed, mut empty) = (0usize, 0usize, 0usize);
    while moved + failed < limit && empty < EMPTY_RECEIVES && started.elapsed() < MAX_TIME {
        let want = (limit - moved - failed).min(10) as i32;
        let got = sqs
            .receive_message()
            .queue_url(&o.from)
            .max_number_of_messages(want)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| sqs_err("receiving from --from", e))?;
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        let entries: Vec<SendMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| SendMessageBatchRequestEntry::builder().id(i.to_string()).set_message_body(m.body.clone()).build().ok())
            .collect();
        let sent =
            sqs.send_message_batch().queue_url(&o.to).set_entries(Some(entries)).send().await.map_err(|e| sqs_err("sending to --to", e))?;
        for f in sent.failed() {
            eprintln!("redrive: message {} not accepted by --to ({}); it stays in --from", f.id(), f.message().unwrap_or(f.code()));
        }
        failed += sent.failed().len();
        let deletes: Vec<DeleteMessageBatchRequestEntry> = sent
            .successful()
            .iter()
            .filter_map(|ok| {
                let m = ok.id().parse::<usize>().ok().and_then(|i| messages.get(i))?;
                DeleteMessageBatchRequestEntry::builder().id(ok.id()).set_receipt_handle(m.receipt_handle.clone()).build().ok()
            })
            .collect();
        if !deletes.is_empty() {
            let n = deletes.len();
            sqs.delete_message_batch()
                .queue_url(&o.from)
                .set_entries(Some(deletes))
                .send()
                .await
                .map_err(|e| sqs_err("deleting from --from", e))?;
            moved += n;
        }
    }
    println!("moved {moved} message(s) from {} to {}; {failed} not accepted (left in --from)", o.from, o.to);
    if failed > 0 {
        return Err(Failure::Run(format!("{failed} message(s) were not moved")));
    }
    Ok(())
}

/// What a message is, in a few words: an intake envelope's alert or a poll job's pair.
fn summary(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let field = |k: &str| v[k].as_str().unwrap_or("?").to_owned();
    match v["schema"].as_str() {
        Some("m365-ingest.intake.v1") => {
            format!("intake: {} {} {} @ {}", field("integration_id"), field("source"), field("id"), field("version"))
        }
        Some("m365-ingest.poll-job.v1") => format!("poll job: {} {}", field("integration_id"), field("source")),
        _ => format!("{} bytes", body.len()),
    }
}
