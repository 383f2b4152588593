//! What the soak and the scale run both stand up for a run: the state and dedup tables and the
//! artifact bucket on moto as template.yaml defines them, the queues on the SQS stand-in
//! (soak/sqs.rs says why), each registered with the IAM gate under its logical id in the
//! template, and the variables that point the functions' code at the tenant simulator.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use m365_ingest::adapters::aws::{create_dedup_table, create_state_table, AwsClients, GateStack};

use crate::sqs::Sqs;

/// A queue of the template as a run scales it: its logical id, visibility timeout, and where
/// it redrives (the dead-letter queue's logical id, created first, and the receives before).
pub struct QueueSpec {
    pub logical: &'static str,
    pub visibility: Duration,
    pub redrive: Option<(&'static str, u32)>,
}

pub struct RunStack {
    pub table: String,
    pub dedup_table: String,
    pub bucket: String,
    /// Each queue's URL by its logical id.
    pub queues: BTreeMap<&'static str, String>,
}

impl RunStack {
    /// The URL of the queue with logical id `logical` (one the run created).
    pub fn queue(&self, logical: &str) -> String {
        self.queues.get(logical).cloned().unwrap_or_default()
    }
}

/// Creates the run's resources, named after `prefix`, and registers them with `gate`; the SQS
/// stand-in then asks the gate at `endpoint` about every call.
pub async fn create(
    aws: &AwsClients,
    gate: &GateStack,
    sqs: &Sqs,
    endpoint: &str,
    prefix: &str,
    queues: &[QueueSpec],
) -> Result<RunStack, String> {
    let (table, dedup_table, bucket) = (prefix.to_owned(), format!("{prefix}-dedup"), format!("{prefix}-artifacts"));
    create_state_table(&aws.dynamodb, &table).await.map_err(|e| format!("cannot create the state table: {e}"))?;
    create_dedup_table(&aws.dynamodb, &dedup_table).await.map_err(|e| format!("cannot create the dedup table: {e}"))?;
    aws.s3.create_bucket().bucket(&bucket).send().await.map_err(|e| format!("cannot create the bucket: {e:?}"))?;
    for (logical, name) in [("StateTable", &table), ("DedupTable", &dedup_table), ("ArtifactBucket", &bucket)] {
        gate.register_named(logical, name).await?;
    }
    let mut urls = BTreeMap::new();
    for q in queues {
        let redrive = match q.redrive {
            Some((dlq, receives)) if urls.contains_key(dlq) => Some((format!("{prefix}-{dlq}"), receives)),
            Some((dlq, _)) => return Err(format!("{}'s dead-letter queue {dlq} must come before it", q.logical)),
            None => None,
        };
        let url = sqs.create(&format!("{prefix}-{}", q.logical), q.visibility, redrive.as_ref().map(|(d, n)| (d.as_str(), *n)));
        gate.register_queue(q.logical, &url).await?;
        urls.insert(q.logical, url);
    }
    sqs.authorize_with(endpoint)?;
    Ok(RunStack { table, dedup_table, bucket, queues: urls })
}

/// The variables that point the functions' code at the tenant simulator serving `base_url`
/// with the CA in `ca_file` (docs/simulator.md).
pub fn simulator_variables(base_url: &str, ca_file: &Path) -> [(&'static str, String); 6] {
    [
        ("LOGIN_BASE_URL", base_url.to_owned()),
        ("GRAPH_BASE_URL", base_url.to_owned()),
        ("MDE_BASE_URL", base_url.to_owned()),
        ("EXCHANGE_BASE_URL", base_url.to_owned()),
        ("EXTRA_CA_BUNDLE_FILE", ca_file.display().to_string()),
        ("ALLOW_NON_MICROSOFT_HOSTS", "true".to_owned()),
    ]
}
