//! The soak's Lambda service: a schedule that invokes the dispatcher (sometimes two at once),
//! SQS event source mappings that feed poll jobs to pollers and the intake queue to processors,
//! a consumer of the output queue, and random SIGKILLs of any of those processes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName};
use m365_ingest::GraphTime;
use rand::Rng;
use serde_json::{json, Value};

use super::lambda::{Function, Instance, Outcome};
use super::world::{Resources, DISPATCH_TIMEOUT, POLLER_TIMEOUT, PROCESSOR_TIMEOUT};

/// One integration run the poller reported as completed: its window was read to `watermark`.
#[derive(Debug, Clone)]
pub struct CompletedRun {
    pub integration: String,
    pub started: GraphTime,
    pub ended: GraphTime,
    pub watermark: GraphTime,
}

#[derive(Default)]
pub struct Tally {
    pub dispatch_invocations: AtomicU64,
    pub overlapping_dispatches: AtomicU64,
    pub jobs_enqueued: AtomicU64,
    pub dispatcher_kills: AtomicU64,
    pub dispatcher_errors: AtomicU64,
    pub poll_invocations: AtomicU64,
    pub job_item_failures: AtomicU64,
    pub poller_kills: AtomicU64,
    pub poller_errors: AtomicU64,
    pub processor_invocations: AtomicU64,
    pub processor_kills: AtomicU64,
    pub processor_errors: AtomicU64,
    pub processor_item_failures: AtomicU64,
    pub crashes: AtomicU64,
    pub output_messages: AtomicU64,
    /// (tenant, alert id, version) → times published.
    pub published: Mutex<HashMap<(String, String, GraphTime), u32>>,
    /// Versions in a batch whose processor died: published, perhaps, but never marked.
    pub in_killed_batches: Mutex<HashSet<(String, String, GraphTime)>>,
    /// With AWS faults on: versions the processor reported failed (an AWS error after it may
    /// have published); the output copies SQS took before failing the send are added at the end.
    pub after_aws_errors: Mutex<HashSet<(String, String, GraphTime)>>,
    pub aws_faults: AtomicBool,
}

/// What the pollers' run records (their metric lines) say, read from their logs at the end.
#[derive(Debug, Default)]
pub struct Runs {
    pub completed: Vec<CompletedRun>,
    pub partial: u64,
    pub failed: u64,
    pub skipped_for_a_lease: u64,
    pub delivered_to_intake: u64,
    pub quarantined: u64,
    /// Why runs failed (the first few).
    pub failures: Vec<String>,
}

/// Reads every poller log in `dir`: one metric line per run (telemetry.rs) names the
/// integration, its outcome, when it started, its watermark, and when it was written.
pub fn runs_from_logs(dir: &std::path::Path) -> Result<Runs, String> {
    let mut runs = Runs::default();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("poller-") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).map_err(|e| format!("cannot read {name}: {e}"))?;
        for line in text.lines().filter(|l| l.contains("\"CloudWatchMetrics\"")) {
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            runs.quarantined += v["ItemsQuarantined"].as_f64().unwrap_or(0.0) as u64;
            let Some(integration) = v["IntegrationId"].as_str() else { continue };
            runs.delivered_to_intake += v["AlertsSent"].as_f64().unwrap_or(0.0) as u64;
            let at = |k: &str| v[k].as_str().and_then(|t| GraphTime::parse(t).ok());
            let ended = v["_aws"]["Timestamp"].as_i64().map(|ms| GraphTime::from_ticks(ms * 10_000));
            match v["Outcome"]["outcome"].as_str().unwrap_or("") {
                "completed" => {
                    if let (Some(started), Some(ended), Some(watermark)) = (at("StartedAt"), ended, at("Watermark")) {
                        runs.completed.push(CompletedRun { integration: integration.to_owned(), started, ended, watermark });
                    }
                }
                "partial" => runs.partial += 1,
                "failed" => {
                    runs.failed += 1;
                    if runs.failures.len() < 10 {
                        runs.failures.push(format!("{integration}: {}", v["Outcome"]["error"].as_str().unwrap_or("?")));
                    }
                }
                _ if v["Outcome"]["reason"].as_str().is_some_and(|r| r.starts_with("another run holds the lease")) => {
                    runs.skipped_for_a_lease += 1
                }
                _ => {}
            }
        }
    }
    Ok(runs)
}

/// (tenant, alert id, version) of an intake envelope or an output message.
pub fn version_key(body: &str) -> (String, String, GraphTime) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let version = v["version"].as_str().and_then(|t| GraphTime::parse(t).ok()).unwrap_or_default();
    (v["tenant_id"].as_str().unwrap_or("?").to_owned(), v["id"].as_str().unwrap_or("?").to_owned(), version)
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Kills are on while `killing` is set.
pub struct Chaos {
    pub killing: AtomicBool,
    pub kill_rate: f64,
}

impl Chaos {
    fn kill_after(&self, within: Duration) -> Option<Duration> {
        let mut rng = rand::thread_rng();
        (self.killing.load(Ordering::Relaxed) && rng.gen_bool(self.kill_rate)).then(|| within.mul_f64(rng.gen::<f64>()))
    }
}

/// Warm instances of one function, started on demand like Lambda's execution environments.
pub struct Pool {
    function: Function,
    idle: Mutex<Vec<Instance>>,
    started: AtomicU64,
}

impl Pool {
    pub fn new(function: Function) -> Self {
        Pool { function, idle: Mutex::new(Vec::new()), started: AtomicU64::new(0) }
    }

    async fn take(&self) -> Result<Instance, String> {
        let warm = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match warm {
            Some(i) => Ok(i),
            None => self.function.start(self.started.fetch_add(1, Ordering::Relaxed) as usize).await,
        }
    }

    fn give_back(&self, i: Instance) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(i);
    }

    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Runs one invocation on a warm or new instance; a killed or crashed one is not reused.
    async fn invoke(&self, event: &Value, timeout: Duration, kill_after: Option<Duration>, tally: &Tally) -> Result<Outcome, String> {
        let mut instance = self.take().await?;
        let outcome = instance.invoke(event, timeout, kill_after).await;
        match &outcome {
            Outcome::Killed => {}
            Outcome::Crashed(why) => {
                add(&tally.crashes, 1);
                eprintln!("soak: {} crashed: {why}", self.function.name);
            }
            _ => self.give_back(instance),
        }
        Ok(outcome)
    }
}

/// One scheduled invocation of the dispatcher.
pub async fn dispatch_once(dispatchers: &Pool, chaos: &Chaos, tally: &Tally) -> Result<(), String> {
    let event = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {"source": "defender_alerts"}});
    add(&tally.dispatch_invocations, 1);
    // A dispatch takes a few hundred milliseconds: kills land between reserving and sending.
    let kill = chaos.kill_after(Duration::from_millis(400));
    match dispatchers.invoke(&event, DISPATCH_TIMEOUT, kill, tally).await? {
        Outcome::Response(r) => add(&tally.jobs_enqueued, r["enqueued"].as_u64().unwrap_or(0)),
        Outcome::Killed => add(&tally.dispatcher_kills, 1),
        Outcome::Error(e) => {
            add(&tally.dispatcher_errors, 1);
            eprintln!("soak: dispatcher error: {e}");
        }
        Outcome::Crashed(_) => {}
    }
    Ok(())
}

/// The schedule: a dispatch every `every`, now and then a second one at once (two schedules
/// firing together, or a retry overlapping a slow run).
pub async fn schedule(dispatchers: Arc<Pool>, chaos: Arc<Chaos>, tally: Arc<Tally>, every: Duration, until: Instant) {
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < until {
        let (overlap, pause) = {
            let mut rng = rand::thread_rng();
            (rng.gen_bool(0.3), every.mul_f64(rng.gen_range(0.5..1.5)))
        };
        for _ in 0..if overlap { 2 } else { 1 } {
            let (p, c, t) = (dispatchers.clone(), chaos.clone(), tally.clone());
            tasks.spawn(async move {
                if let Err(e) = dispatch_once(&p, &c, &t).await {
                    eprintln!("soak: {e}");
                }
            });
        }
        if overlap {
            add(&tally.overlapping_dispatches, 1);
        }
        tokio::time::sleep(pause).await;
    }
    while tasks.join_next().await.is_some() {}
}

/// Up to 10 messages of `queue` as Lambda's SQS event records; none when the queue is empty.
pub async fn receive(res: &Resources, queue: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let received = res
        .aws
        .sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await;
    match received {
        Ok(r) => r.messages.unwrap_or_default(),
        Err(e) => {
            eprintln!("soak: receive from {queue} failed: {e:?}");
            tokio::time::sleep(Duration::from_secs(1)).await;
            Vec::new()
        }
    }
}

pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attrs: serde_json::Map<String, Value> =
                m.attributes.iter().flatten().map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone()))).collect();
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": attrs,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({"Records": records})
}

pub fn reported_failures(r: &Value) -> Vec<String> {
    r["batchItemFailures"].as_array().into_iter().flatten().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned)).collect()
}

/// What the event source mapping does after a response: delete what did not fail.
pub async fn delete_done(res: &Resources, queue: &str, messages: &[aws_sdk_sqs::types::Message], failed: &[String]) {
    let done: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.message_id.as_deref().is_some_and(|id| !failed.iter().any(|f| f == id)))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder().id(i.to_string()).set_receipt_handle(m.receipt_handle.clone()).build().ok()
        })
        .collect();
    if !done.is_empty() {
        if let Err(e) = res.aws.sqs.delete_message_batch().queue_url(queue).set_entries(Some(done)).send().await {
            eprintln!("soak: delete from {queue} failed (the messages come back): {e:?}");
        }
    }
}

/// The pollers' event source mapping: poll jobs in batches of up to 10; what a poller reports
/// as failed (or everything, when it dies) comes back after the visibility timeout.
pub async fn feed_pollers(res: Arc<Resources>, pollers: Arc<Pool>, chaos: Arc<Chaos>, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let messages = receive(&res, &res.poll_jobs).await;
        if messages.is_empty() {
            continue;
        }
        add(&tally.poll_invocations, 1);
        // A job of a few hundred alerts takes about a second: kills land inside runs.
        let kill = chaos.kill_after(Duration::from_millis(1_500));
        let event = sqs_event(&messages, "arn:aws:sqs:us-east-1:123456789012:soak-poll-jobs");
        let failed = match pollers.invoke(&event, POLLER_TIMEOUT, kill, &tally).await {
            Ok(Outcome::Response(r)) => reported_failures(&r),
            Ok(Outcome::Killed) => {
                add(&tally.poller_kills, 1);
                continue;
            }
            Ok(Outcome::Crashed(_)) => continue,
            Ok(Outcome::Error(e)) => {
                add(&tally.poller_errors, 1);
                eprintln!("soak: poller error: {e}");
                continue;
            }
            Err(e) => {
                eprintln!("soak: {e}");
                continue;
            }
        };
        add(&tally.job_item_failures, failed.len() as u64);
        delete_done(&res, &res.poll_jobs, &messages, &failed).await;
    }
}

/// The event source mapping: batches of up to 10 from the intake queue to a processor; what it
/// reports as failed (or everything, when it dies) comes back after the visibility timeout.
pub async fn feed_processors(res: Arc<Resources>, processors: Arc<Pool>, chaos: Arc<Chaos>, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let messages = receive(&res, &res.intake).await;
        if messages.is_empty() {
            continue;
        }
        add(&tally.processor_invocations, 1);
        let kill = chaos.kill_after(Duration::from_millis(800));
        let event = sqs_event(&messages, "arn:aws:sqs:us-east-1:123456789012:soak-intake");
        let outcome = match processors.invoke(&event, PROCESSOR_TIMEOUT, kill, &tally).await {
            Ok(o) => o,
            Err(e) => {
                eprintln!("soak: {e}");
                continue;
            }
        };
        let failed: Vec<String> = match outcome {
            Outcome::Response(r) => reported_failures(&r),
            Outcome::Killed | Outcome::Crashed(_) => {
                if matches!(outcome, Outcome::Killed) {
                    add(&tally.processor_kills, 1);
                }
                let mut risk = tally.in_killed_batches.lock().unwrap_or_else(|p| p.into_inner());
                risk.extend(messages.iter().map(|m| version_key(m.body.as_deref().unwrap_or(""))));
                continue;
            }
            Outcome::Error(e) => {
                add(&tally.processor_errors, 1);
                eprintln!("soak: processor error: {e}");
                if tally.aws_faults.load(Ordering::Relaxed) {
                    let mut risk = tally.after_aws_errors.lock().unwrap_or_else(|p| p.into_inner());
                    risk.extend(messages.iter().map(|m| version_key(m.body.as_deref().unwrap_or(""))));
                }
                continue;
            }
        };
        add(&tally.processor_item_failures, failed.len() as u64);
        if tally.aws_faults.load(Ordering::Relaxed) && !failed.is_empty() {
            // A message reported failed may have been published before the AWS error that failed
            // it (its mark, say): SQS delivers it again and it may be published again.
            let mut risk = tally.after_aws_errors.lock().unwrap_or_else(|p| p.into_inner());
            risk.extend(
                messages
                    .iter()
                    .filter(|m| m.message_id.as_ref().is_some_and(|id| failed.contains(id)))
                    .map(|m| version_key(m.body.as_deref().unwrap_or(""))),
            );
        }
        delete_done(&res, &res.intake, &messages, &failed).await;
    }
}

/// The downstream consumer: reads and deletes every output message, counting each version.
pub async fn consume_output(res: Arc<Resources>, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        if drain_once(&res, &tally).await == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One receive from the output queue; returns how many messages it took.
pub async fn drain_once(res: &Resources, tally: &Tally) -> usize {
    let r = match res.aws.sqs.receive_message().queue_url(&res.output).max_number_of_messages(10).wait_time_seconds(1).send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("soak: output receive failed: {e:?}");
            return 0;
        }
    };
    let messages = r.messages.unwrap_or_default();
    let mut entries = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let key = version_key(m.body.as_deref().unwrap_or(""));
        *tally.published.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
        add(&tally.output_messages, 1);
        if let Ok(e) = DeleteMessageBatchRequestEntry::builder().id(i.to_string()).set_receipt_handle(m.receipt_handle.clone()).build() {
            entries.push(e);
        }
    }
    if !entries.is_empty() {
        if let Err(e) = res.aws.sqs.delete_message_batch().queue_url(&res.output).set_entries(Some(entries)).send().await {
            eprintln!("soak: output delete failed: {e:?}");
        }
    }
    messages.len()
}

/// Messages on a queue, visible or in flight.
pub async fn depth(res: &Resources, url: &str) -> u64 {
    let r = res
        .aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await;
    let Ok(r) = r else { return u64::MAX };
    let a = r.attributes.unwrap_or_default();
    let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(QueueAttributeName::ApproximateNumberOfMessages) + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}
