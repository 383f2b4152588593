//! The deployed adapters as one bundle for every use case.

use super::{
    DynamoCursorStore, DynamoDedupStore, DynamoEvidenceJobs, DynamoIntegrations, DynamoSchedule, S3ArtifactStore, SecretsManagerSource,
    SqsAlertQueue,
};
use crate::adapters::graph::MicrosoftHttp;
use crate::ports::{EvidencePorts, JobPorts, PollPorts, ProcessPorts, SystemClock};

/// Every port on its AWS adapter (Microsoft over HTTPS).
pub struct Aws;

impl PollPorts for Aws {
    type Graph = MicrosoftHttp;
    type Cursors = DynamoCursorStore;
    type Queue = SqsAlertQueue;
    type Artifacts = S3ArtifactStore;
    type Secrets = SecretsManagerSource;
    type Clock = SystemClock;
}

impl JobPorts for Aws {
    type Integrations = DynamoIntegrations;
    type Schedule = DynamoSchedule;
    type Jobs = SqsAlertQueue;
}

impl ProcessPorts for Aws {
    type Dedup = DynamoDedupStore;
    type Output = SqsAlertQueue;
    type Artifacts = S3ArtifactStore;
    type Clock = SystemClock;
    type Evidence = Aws;
}

impl EvidencePorts for Aws {
    type Jobs = DynamoEvidenceJobs;
    /// The evidence-jobs queue.
    type Steps = SqsAlertQueue;
    type Api = MicrosoftHttp;
    type Secrets = SecretsManagerSource;
}
