//! The soak's SQS: the actions the functions and the soak call, in the AWS JSON 1.0
//! protocol the SDK speaks, with SQS's semantics. moto's SQS cannot take the soak's depth: its
//! ReceiveMessage asks for the queue's attributes once per message it looks at, and those count
//! every message (py-spy on moto 5: 86 % of its time in `Queue.attributes` at 1,400 messages),
//! so each call took seconds and the whole moto server stalled.
//!
//! Reference: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/ (actions
//! SendMessage, SendMessageBatch (DelaySeconds 0 to 900), ReceiveMessage, DeleteMessage(Batch),
//! GetQueueAttributes; quotas in
//! sqs-quotas.html: 10 entries a batch, 1 MiB a message and a batch, the XML 1.0 character set).
//! Behaviour kept: visibility timeouts and receive counts, redrive to a DLQ after
//! `maxReceiveCount` receives, long polling, a new receipt handle on every receive (a delete
//! with an older one succeeds but deletes nothing, as the API reference warns it may), batch
//! and size limits, and refusing characters outside SQS's set per entry (`SenderFault`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use m365_ingest::domain::sqs_text::sqs_accepts;
use serde_json::{json, Value};
use tokio::sync::Notify;

const MAX_ENTRIES: usize = 10;
const MAX_BYTES: usize = 1 << 20;
const ACCOUNT: &str = "123456789012";

struct Message {
    id: String,
    body: String,
    sent_ms: u128,
    first_receive_ms: Option<u128>,
    receive_count: u32,
    visible_at: Instant,
    receipt: Option<String>,
}

struct Queue {
    visibility: Duration,
    /// (dead-letter queue name, maxReceiveCount)
    redrive: Option<(String, u32)>,
    /// By send order: receives favour older messages, as a standard queue roughly does.
    messages: BTreeMap<u64, Message>,
    /// A sink checks and counts what is sent but keeps nothing (a benchmark's intake queue of
    /// 100k alerts would otherwise hold half a gigabyte).
    sink: bool,
    /// Messages accepted and their body bytes, since the queue was created.
    accepted: u64,
    accepted_bytes: u64,
}

pub struct Sqs {
    base: String,
    queues: Mutex<HashMap<String, Queue>>,
    arrived: Notify,
    seq: AtomicU64,
    /// The IAM gate that authorizes each call as AWS would (`authorize_with`).
    gate: std::sync::OnceLock<(String, reqwest::Client)>,
    /// Bodies SQS took and then answered with an error for (an injected fault): their sender
    /// could not know, so a copy sent again is the fault's, not the product's.
    sent_then_failed: Mutex<Vec<(String, String)>>,
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

fn error(code: &str, message: &str) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = format!("AWS.SimpleQueueService.{code};Sender").parse() {
        headers.insert("x-amzn-query-error", v);
    }
    let body = json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": message}).to_string();
    (StatusCode::BAD_REQUEST, headers, body).into_response()
}

impl Sqs {
    /// Serves on a loopback port; returns it and the endpoint URL for `AWS_ENDPOINT_URL_SQS`.
    pub async fn start() -> Result<(Arc<Sqs>, String), String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("SQS stand-in: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let base = format!("http://{addr}");
        let sqs = Arc::new(Sqs {
            base: base.clone(),
            queues: Mutex::new(HashMap::new()),
            arrived: Notify::new(),
            seq: AtomicU64::new(0),
            gate: std::sync::OnceLock::new(),
            sent_then_failed: Mutex::new(Vec::new()),
        });
        let app = Router::new().route("/", post(dispatch)).with_state(sqs.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("soak: the SQS stand-in stopped: {e}");
            }
        });
        Ok((sqs, base))
    }

    /// From now on every call signed with a function's key is authorized by the IAM gate at
    /// `endpoint` against that function's policy, as SQS would; a denied call is answered with
    /// AccessDenied and the gate records it.
    #[allow(dead_code, reason = "the soak's; poll-bench and scale leave it off")]
    pub fn authorize_with(&self, endpoint: &str) -> Result<(), String> {
        let client = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
        self.gate.set((endpoint.trim_end_matches('/').to_owned(), client)).map_err(|_| "the gate is set already".to_owned())
    }

    /// What the gate says of a call: allowed as it is (None), answered for it (a denial or an
    /// injected 500), or allowed with entries to fail or an error to send once it is applied.
    async fn authorized(&self, headers: &HeaderMap, target: &str, input: &Value) -> Option<GateAnswer> {
        let (endpoint, client) = self.gate.get()?;
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        let key = auth.split("Credential=").nth(1).and_then(|c| c.split('/').next()).unwrap_or("");
        // A batch is authorized as its single action (the SQS API reference's permissions).
        let action = match target.trim_start_matches("AmazonSQS.") {
            "SendMessageBatch" => "SendMessage",
            "DeleteMessageBatch" => "DeleteMessage",
            "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
            other => other,
        };
        let name = queue_name(input).unwrap_or_default();
        let entry_ids: Vec<Value> = input["Entries"].as_array().map(|a| a.iter().map(|e| e["Id"].clone()).collect()).unwrap_or_default();
        let check = json!({
            "access_key": key,
            "service": "sqs",
            "action": format!("sqs:{action}"),
            "resource": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"),
            "entry_ids": if target.ends_with("SendMessageBatch") { entry_ids } else { Vec::new() },
        });
        let answer: Value = match client.post(format!("{endpoint}/_gate/authorize")).json(&check).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(e) => return Some(GateAnswer::Respond(error("InternalError", &format!("the IAM gate did not answer: {e}")))),
        };
        if answer["allowed"].as_bool() == Some(true) {
            return match answer["fault"].as_str() {
                Some("500") => Some(GateAnswer::Respond(internal_error())),
                Some("500_after") => Some(GateAnswer::ErrorAfter),
                _ => answer["failed_entries"]
                    .as_array()
                    .map(|ids| GateAnswer::FailEntries(ids.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())),
            };
        }
        let mut headers = HeaderMap::new();
        if let Ok(v) = "AccessDenied;Sender".parse() {
            headers.insert("x-amzn-query-error", v);
        }
        let message = answer["reason"].as_str().unwrap_or("denied").to_owned();
        let body = json!({"__type": "com.amazon.coral.service#AccessDeniedException", "message": message}).to_string();
        Some(GateAnswer::Respond((StatusCode::FORBIDDEN, headers, body).into_response()))
    }

    /// Every body sent to `queue` and then answered with an error (see `sent_then_failed`).
    #[allow(dead_code, reason = "the soak's; poll-bench and scale inject no faults")]
    pub fn sent_then_failed(&self, queue: &str) -> Vec<String> {
        let name = queue.rsplit('/').next().unwrap_or(queue);
        let all = self.sent_then_failed.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().filter(|(q, _)| q == name).map(|(_, body)| body.clone()).collect()
    }

    /// Creates a queue; returns its URL.
    pub fn create(&self, name: &str, visibility: Duration, redrive: Option<(&str, u32)>) -> String {
        let q = Queue {
            visibility,
            redrive: redrive.map(|(d, n)| (d.to_owned(), n)),
            messages: BTreeMap::new(),
            sink: false,
            accepted: 0,
            accepted_bytes: 0,
        };
        self.lock().insert(name.to_owned(), q);
        format!("{}/{ACCOUNT}/{name}", self.base)
    }

    /// Creates a queue that answers sends as SQS does but keeps no message; returns its URL.
    #[allow(dead_code, reason = "poll-bench's sink; the soak and scale read their queues")]
    pub fn create_sink(&self, name: &str) -> String {
        let url = self.create(name, Duration::from_secs(30), None);
        if let Some(q) = self.lock().get_mut(name) {
            q.sink = true;
        }
        url
    }

    /// Messages a queue accepted since it was created, and their body bytes.
    #[allow(dead_code, reason = "poll-bench's sink; the soak and scale read their queues")]
    pub fn accepted(&self, name: &str) -> (u64, u64) {
        self.lock().get(name).map_or((0, 0), |q| (q.accepted, q.accepted_bytes))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send_batch(&self, input: &Value) -> Response {
        let Some(name) = queue_name(input) else { return error("QueueDoesNotExist", "no QueueUrl") };
        let entries = input["Entries"].as_array().cloned().unwrap_or_default();
        if entries.is_empty() {
            return error("EmptyBatchRequest", "the batch has no entries");
        }
        if entries.len() > MAX_ENTRIES {
            return error("TooManyEntriesInBatchRequest", &format!("{} entries; at most {MAX_ENTRIES}", entries.len()));
        }
        let ids: Vec<&str> = entries.iter().map(|e| e["Id"].as_str().unwrap_or("")).collect();
        if (1..ids.len()).any(|i| ids[..i].contains(&ids[i])) {
            return error("BatchEntryIdsNotDistinct", "two entries share an Id");
        }
        let total: usize = entries.iter().map(|e| e["MessageBody"].as_str().map_or(0, str::len)).sum();
        if total > MAX_BYTES {
            return error("BatchRequestTooLong", &format!("the batch is {total} bytes; at most {MAX_BYTES}"));
        }
        let mut queues = self.lock();
        let Some(q) = queues.get_mut(&name) else { return error("QueueDoesNotExist", &name) };
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        for e in &entries {
            let id = e["Id"].as_str().unwrap_or("").to_owned();
            let body = e["MessageBody"].as_str().unwrap_or("");
            if body.is_empty() || body.len() > MAX_BYTES {
                failed
                    .push(json!({"Id": id, "Code": "InvalidParameterValue", "Message": "body empty or above 1 MiB", "SenderFault": true}));
                continue;
            }
            if !body.chars().all(sqs_accepts) {
                failed
                    .push(json!({"Id": id, "Code": "InvalidMessageContents", "Message": "Invalid characters found", "SenderFault": true}));
                continue;
            }
            // DelaySeconds: 0 to 900 (SendMessageBatchRequestEntry); the queue's own is 0.
            let delay = match &e["DelaySeconds"] {
                Value::Null => 0,
                v => match v.as_u64().filter(|d| *d <= 900) {
                    Some(d) => d,
                    None => {
                        failed.push(
                            json!({"Id": id, "Code": "InvalidParameterValue", "Message": "DelaySeconds must be 0 to 900", "SenderFault": true}),
                        );
                        continue;
                    }
                },
            };
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            let message_id = format!("{:08x}-0000-4000-8000-{n:012x}", std::process::id());
            q.accepted += 1;
            q.accepted_bytes += body.len() as u64;
            ok.push(json!({"Id": id, "MessageId": message_id, "MD5OfMessageBody": md5_hex(body.as_bytes())}));
            if q.sink {
                continue;
            }
            q.messages.insert(
                n,
                Message {
                    id: message_id.clone(),
                    body: body.to_owned(),
                    sent_ms: now_ms(),
                    first_receive_ms: None,
                    receive_count: 0,
                    visible_at: Instant::now() + Duration::from_secs(delay),
                    receipt: None,
                },
            );
        }
        drop(queues);
        self.arrived.notify_waiters();
        json!({"Successful": ok, "Failed": failed}).to_string().into_response()
    }

    /// SendMessage: one entry of a batch, answered as SendMessage answers (an entry's failure is
    /// the call's error).
    async fn send_one(&self, input: &Value) -> Response {
        let mut entry = json!({"Id": "0", "MessageBody": input["MessageBody"]});
        if !input["DelaySeconds"].is_null() {
            entry["DelaySeconds"] = input["DelaySeconds"].clone();
        }
        let answer = self.send_batch(&json!({"QueueUrl": input["QueueUrl"], "Entries": [entry]}));
        if !answer.status().is_success() {
            return answer;
        }
        let Ok(bytes) = axum::body::to_bytes(answer.into_body(), MAX_BYTES).await else { return internal_error() };
        let doc: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(f) = doc["Failed"].as_array().and_then(|f| f.first()) {
            return error(f["Code"].as_str().unwrap_or("InvalidParameterValue"), f["Message"].as_str().unwrap_or("refused"));
        }
        let ok = &doc["Successful"][0];
        json!({"MessageId": ok["MessageId"], "MD5OfMessageBody": ok["MD5OfMessageBody"]}).to_string().into_response()
    }

    /// One pass over the queue: up to `max` visible messages, marked received.
    /// None when there is no such queue.
    fn take(&self, name: &str, max: usize, visibility: Option<Duration>) -> Option<Vec<Value>> {
        let mut queues = self.lock();
        let q = queues.get_mut(name)?;
        let now = Instant::now();
        let hide = visibility.unwrap_or(q.visibility);
        let redrive = q.redrive.clone();
        let mut out = Vec::new();
        let mut dead = Vec::new();
        for (seq, m) in q.messages.iter_mut() {
            if out.len() >= max {
                break;
            }
            if m.visible_at > now {
                continue;
            }
            if let Some((_, limit)) = &redrive {
                if m.receive_count >= *limit {
                    dead.push(*seq);
                    continue;
                }
            }
            m.receive_count += 1;
            let at = now_ms();
            m.first_receive_ms.get_or_insert(at);
            m.visible_at = now + hide;
            let receipt = format!("{}#{}#{}", m.id, m.receive_count, self.seq.fetch_add(1, Ordering::Relaxed));
            m.receipt = Some(receipt.clone());
            out.push(json!({
                "MessageId": m.id,
                "ReceiptHandle": receipt,
                "Body": m.body,
                "Attributes": {
                    "ApproximateReceiveCount": m.receive_count.to_string(),
                    "SentTimestamp": m.sent_ms.to_string(),
                    "ApproximateFirstReceiveTimestamp": m.first_receive_ms.unwrap_or(at).to_string(),
                    "SenderId": "AIDASOAK",
                }
            }));
        }
        if let Some((dlq, _)) = redrive {
            let moved: Vec<Message> = dead.iter().filter_map(|s| q.messages.remove(s)).collect();
            if let Some(d) = queues.get_mut(&dlq) {
                for mut m in moved {
                    m.visible_at = now;
                    m.receipt = None;
                    d.messages.insert(self.seq.fetch_add(1, Ordering::Relaxed), m);
                }
            }
        }
        Some(out)
    }

    async fn receive(&self, input: &Value) -> Response {
        let Some(name) = queue_name(input) else { return error("QueueDoesNotExist", "no QueueUrl") };
        let max = input["MaxNumberOfMessages"].as_u64().unwrap_or(1);
        if !(1..=10).contains(&max) {
            return error("InvalidParameterValue", "MaxNumberOfMessages must be 1 to 10");
        }
        let wait = Duration::from_secs(input["WaitTimeSeconds"].as_u64().unwrap_or(0).min(20));
        let visibility = input["VisibilityTimeout"].as_u64().map(Duration::from_secs);
        let until = Instant::now() + wait;
        loop {
            let notified = self.arrived.notified();
            match self.take(&name, max as usize, visibility) {
                None => return error("QueueDoesNotExist", &name),
                Some(m) if !m.is_empty() || Instant::now() >= until => return json!({"Messages": m}).to_string().into_response(),
                Some(_) => {}
            }
            // Woken by a send, or every 100 ms for messages whose visibility ran out.
            let _ = tokio::time::timeout(until.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)), notified).await;
        }
    }

    fn delete_batch(&self, input: &Value) -> Response {
        let Some(name) = queue_name(input) else { return error("QueueDoesNotExist", "no QueueUrl") };
        let entries = input["Entries"].as_array().cloned().unwrap_or_default();
        if entries.len() > MAX_ENTRIES {
            return error("TooManyEntriesInBatchRequest", "at most 10 entries");
        }
        let mut queues = self.lock();
        let Some(q) = queues.get_mut(&name) else { return error("QueueDoesNotExist", &name) };
        let mut ok = Vec::new();
        for e in &entries {
            let receipt = e["ReceiptHandle"].as_str().unwrap_or("");
            let current = q.messages.iter().find(|(_, m)| m.receipt.as_deref() == Some(receipt)).map(|(s, _)| *s);
            if let Some(s) = current {
                q.messages.remove(&s);
            }
            ok.push(json!({"Id": e["Id"]}));
        }
        json!({"Successful": ok, "Failed": []}).to_string().into_response()
    }

    /// DeleteMessage: as one entry of a batch (an unknown or stale receipt deletes nothing).
    fn delete_one(&self, input: &Value) -> Response {
        let Some(url) = input["QueueUrl"].as_str() else { return error("QueueDoesNotExist", "no QueueUrl") };
        let batch = json!({"QueueUrl": url, "Entries": [{"Id": "0", "ReceiptHandle": input["ReceiptHandle"]}]});
        let r = self.delete_batch(&batch);
        if r.status() != StatusCode::OK {
            return r;
        }
        "{}".into_response()
    }

    fn attributes(&self, input: &Value) -> Response {
        let Some(name) = queue_name(input) else { return error("QueueDoesNotExist", "no QueueUrl") };
        let queues = self.lock();
        let Some(q) = queues.get(&name) else { return error("QueueDoesNotExist", &name) };
        let now = Instant::now();
        let visible = q.messages.values().filter(|m| m.visible_at <= now).count();
        let attrs = json!({
            "ApproximateNumberOfMessages": visible.to_string(),
            "ApproximateNumberOfMessagesNotVisible": (q.messages.len() - visible).to_string(),
            "QueueArn": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"),
            "VisibilityTimeout": q.visibility.as_secs().to_string(),
        });
        json!({"Attributes": attrs}).to_string().into_response()
    }
}

/// SQS answers each accepted message with the MD5 of its body (hex), which SDKs may verify.
fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The gate's word on a call (`Sqs::authorized`).
enum GateAnswer {
    Respond(Response),
    /// Apply the call, then answer 500 (SQS may fail after it sent).
    ErrorAfter,
    /// These batch entries fail (InternalError, not the sender's fault); the others are sent.
    FailEntries(Vec<String>),
}

fn internal_error() -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = "InternalError;Receiver".parse() {
        headers.insert("x-amzn-query-error", v);
    }
    let body = json!({"__type": "com.amazonaws.sqs#InternalError", "message": "We encountered an internal error. Please try again."});
    (StatusCode::INTERNAL_SERVER_ERROR, headers, body.to_string()).into_response()
}

fn queue_name(input: &Value) -> Option<String> {
    input["QueueUrl"].as_str().and_then(|u| u.rsplit('/').next()).map(str::to_owned)
}

async fn dispatch(State(sqs): State<Arc<Sqs>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Ok(input) = serde_json::from_slice::<Value>(&body) else { return error("InvalidParameterValue", "the body is not JSON") };
    let mut input = input;
    let (mut after_error, mut failing) = (false, Vec::new());
    match sqs.authorized(&headers, target, &input).await {
        None => {}
        Some(GateAnswer::Respond(r)) => return r,
        Some(GateAnswer::ErrorAfter) => after_error = true,
        Some(GateAnswer::FailEntries(ids)) => {
            if let Some(entries) = input["Entries"].as_array_mut() {
                entries.retain(|e| !e["Id"].as_str().is_some_and(|id| ids.iter().any(|f| f == id)));
            }
            failing = ids;
        }
    }
    let answer = serve(&sqs, target, &input).await;
    if after_error {
        if answer.status().is_success() {
            let bodies: Option<Vec<String>> =
                input["Entries"].as_array().map(|a| a.iter().filter_map(|e| e["MessageBody"].as_str().map(str::to_owned)).collect());
            let queue = queue_name(&input).unwrap_or_default();
            let mut taken = sqs.sent_then_failed.lock().unwrap_or_else(|p| p.into_inner());
            let bodies = bodies.unwrap_or_else(|| input["MessageBody"].as_str().map(str::to_owned).into_iter().collect());
            taken.extend(bodies.into_iter().map(|b| (queue.clone(), b)));
        }
        return internal_error();
    }
    if failing.is_empty() {
        return answer;
    }
    with_failed_entries(answer, &failing).await
}

/// A SendMessageBatch answer with the entries the gate failed added to `Failed`.
async fn with_failed_entries(answer: Response, failing: &[String]) -> Response {
    let (parts, body) = answer.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BYTES * 2).await else { return internal_error() };
    let mut doc: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({}));
    if !parts.status.is_success() {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    let failed = failing
        .iter()
        .map(|id| json!({"Id": id, "SenderFault": false, "Code": "InternalError", "Message": "We encountered an internal error."}));
    match doc["Failed"].as_array_mut() {
        Some(list) => list.extend(failed),
        None => doc["Failed"] = Value::Array(failed.collect()),
    }
    doc.to_string().into_response()
}

async fn serve(sqs: &Sqs, target: &str, input: &Value) -> Response {
    match target {
        "AmazonSQS.SendMessageBatch" => sqs.send_batch(input),
        "AmazonSQS.SendMessage" => sqs.send_one(input).await,
        "AmazonSQS.ReceiveMessage" => sqs.receive(input).await,
        "AmazonSQS.DeleteMessageBatch" => sqs.delete_batch(input),
        "AmazonSQS.DeleteMessage" => sqs.delete_one(input),
        "AmazonSQS.GetQueueAttributes" => sqs.attributes(input),
        other => error("UnsupportedOperation", &format!("the soak's SQS does not serve {other}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn stand_in() -> Sqs {
        Sqs {
            base: "http://sqs".into(),
            queues: Mutex::new(HashMap::new()),
            arrived: Notify::new(),
            seq: AtomicU64::new(0),
            gate: std::sync::OnceLock::new(),
            sent_then_failed: Mutex::new(Vec::new()),
        }
    }

    fn send(sqs: &Sqs, queue: &str, bodies: &[&str]) -> Response {
        let entries: Vec<Value> = bodies.iter().enumerate().map(|(i, b)| json!({"Id": i.to_string(), "MessageBody": b})).collect();
        sqs.send_batch(&json!({"QueueUrl": format!("http://sqs/{ACCOUNT}/{queue}"), "Entries": entries}))
    }

    #[test]
    fn receives_count_until_the_redrive_moves_a_message_to_its_dlq() {
        let sqs = stand_in();
        sqs.create("dlq", Duration::from_secs(30), None);
        sqs.create("q", Duration::ZERO, Some(("dlq", 2)));
        send(&sqs, "q", &["one"]);
        let first = sqs.take("q", 10, None).unwrap();
        assert_eq!(first[0]["Attributes"]["ApproximateReceiveCount"], "1");
        let second = sqs.take("q", 10, None).unwrap();
        assert_eq!(second[0]["Attributes"]["ApproximateReceiveCount"], "2");
        assert_ne!(first[0]["ReceiptHandle"], second[0]["ReceiptHandle"], "a new receipt handle per receive");
        assert!(sqs.take("q", 10, None).unwrap().is_empty(), "the third receive finds it moved");
        assert_eq!(sqs.take("dlq", 10, None).unwrap()[0]["Body"], "one");
    }

    #[test]
    fn a_received_message_stays_hidden_and_only_its_latest_receipt_deletes_it() {
        let sqs = stand_in();
        let url = sqs.create("q", Duration::from_secs(30), None);
        send(&sqs, "q", &["one"]);
        let got = sqs.take("q", 10, Some(Duration::ZERO)).unwrap();
        let stale = got[0]["ReceiptHandle"].clone();
        let again = sqs.take("q", 10, None).unwrap();
        assert!(sqs.take("q", 10, None).unwrap().is_empty(), "hidden for its visibility timeout");
        sqs.delete_batch(&json!({"QueueUrl": url, "Entries": [{"Id": "0", "ReceiptHandle": stale}]}));
        assert_eq!(sqs.lock()["q"].messages.len(), 1, "an older receipt deletes nothing");
        sqs.delete_batch(&json!({"QueueUrl": url, "Entries": [{"Id": "0", "ReceiptHandle": again[0]["ReceiptHandle"]}]}));
        assert!(sqs.lock()["q"].messages.is_empty());
    }

    #[tokio::test]
    async fn a_delayed_message_is_hidden_until_its_delay_and_a_delay_past_900_s_is_refused() {
        let sqs = stand_in();
        let url = sqs.create("q", Duration::from_secs(30), None);
        let sent = sqs.send_one(&json!({"QueueUrl": url, "MessageBody": "later", "DelaySeconds": 60})).await;
        assert_eq!(sent.status(), StatusCode::OK);
        assert!(sqs.take("q", 10, None).unwrap().is_empty(), "hidden for its delay");
        assert_eq!(sqs.send_one(&json!({"QueueUrl": url, "MessageBody": "now"})).await.status(), StatusCode::OK);
        assert_eq!(sqs.take("q", 10, None).unwrap()[0]["Body"], "now");
        let refused = sqs.send_one(&json!({"QueueUrl": url, "MessageBody": "x", "DelaySeconds": 901})).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert_eq!(sqs.lock()["q"].messages.len(), 2);
    }

    #[test]
    fn batches_and_bodies_outside_the_limits_are_refused() {
        let sqs = stand_in();
        sqs.create("q", Duration::from_secs(30), None);
        assert_eq!(send(&sqs, "q", &["x"; 11]).status(), StatusCode::BAD_REQUEST);
        assert_eq!(send(&sqs, "q", &["ok", "bad\u{FFFF}"]).status(), StatusCode::OK);
        assert_eq!(sqs.lock()["q"].messages.len(), 1, "the entry with a refused character failed alone");
    }
}
