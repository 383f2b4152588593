//! AWS through moto's server on loopback: clients, and fresh resources per test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (in any nextest process) uses.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Clients pointed at moto. Refuses to run against anything but loopback.
pub async fn clients() -> AwsClients {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("AWS_ENDPOINT_URL is not set: run `bash infra/scripts/test.sh`, which starts moto on 127.0.0.1 and sets it")
    });
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "tests reach only loopback, not {endpoint}"
    );
    AwsClients::new(&load_sdk_config().await)
}

/// The state table as template.yaml defines it: `pk`/`sk` strings.
pub async fn table(c: &AwsClients) -> String {
    let name = unique("state");
    m365_ingest::adapters::aws::create_state_table(&c.dynamodb, &name).await.unwrap();
    name
}

/// The dedup table as template.yaml defines it: `pk` string only.
pub async fn dedup_table(c: &AwsClients) -> String {
    let name = unique("dedup");
    m365_ingest::adapters::aws::create_dedup_table(&c.dynamodb, &name).await.unwrap();
    name
}

pub async fn queue(c: &AwsClients) -> String {
    let name = unique("intake");
    c.sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap()
}

pub async fn bucket(c: &AwsClients) -> String {
    let name = unique("artifacts").to_lowercase();
    c.s3.create_bucket().bucket(&name).send().await.unwrap();
    name
}

/// Every message on the queue, deleted as read.
pub async fn drain(c: &AwsClients, url: &str) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let r = c.sqs.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(0).send().await.unwrap();
        let msgs = r.messages.unwrap_or_default();
        if msgs.is_empty() {
            return out;
        }
        for m in msgs {
            out.push(m.body.unwrap_or_default());
            c.sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle.unwrap()).send().await.unwrap();
        }
    }
    out
}

pub use m365_ingest::adapters::aws::Principal;

/// A stack of this test's own behind the IAM gate: resources are created with the harness's
/// rights and registered under the template's logical ids; each function's code runs with
/// `clients(Principal::…)`, so every call it makes is authorized against its policy in
/// template.yaml as AWS would authorize it.
pub struct Stack {
    pub gate: m365_ingest::adapters::aws::GateStack,
    /// The harness: creates resources and inspects them, with full rights.
    pub admin: AwsClients,
}

pub async fn stack() -> Stack {
    let admin = clients().await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let gate = m365_ingest::adapters::aws::GateStack::new(&load_sdk_config().await, &endpoint).await.unwrap();
    Stack { gate, admin }
}

impl Stack {
    /// Clients acting as `who`.
    pub fn clients(&self, who: Principal) -> AwsClients {
        self.gate.clients(who)
    }

    /// The state table (`StateTable`).
    pub async fn state_table(&self) -> String {
        let name = table(&self.admin).await;
        self.gate.register_named("StateTable", &name).await.unwrap();
        name
    }

    /// The dedup table (`DedupTable`).
    pub async fn dedup_table(&self) -> String {
        let name = dedup_table(&self.admin).await;
        self.gate.register_named("DedupTable", &name).await.unwrap();
        name
    }

    /// A queue of the template's (`IntakeQueue`, `OutputQueue`, ...): its URL.
    pub async fn queue(&self, logical: &str) -> String {
        let name = unique(&logical.to_lowercase());
        let url = self.admin.sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap();
        self.gate.register_queue(logical, &url).await.unwrap();
        url
    }

    /// The artifact bucket (`ArtifactBucket`).
    pub async fn bucket(&self) -> String {
        let name = bucket(&self.admin).await;
        self.gate.register_named("ArtifactBucket", &name).await.unwrap();
        name
    }

    /// What the gate denied this stack's functions (a test that provokes none asserts it empty).
    pub async fn denials(&self) -> Vec<String> {
        self.gate.denials().await.unwrap()
    }
}
