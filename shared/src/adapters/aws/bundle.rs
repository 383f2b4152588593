//! The deployed adapters as one bundle for every use case.

use super::{
    DynamoCursorStore, DynamoDedupStore, DynamoIntegrations, DynamoSchedule, S3ArtifactStore, SecretsManagerSource, SqsAlertQueue,
};
use crate::adapters::graph::MicrosoftHttp;
use crate::ports::{JobPorts, PollPorts, ProcessPorts, SystemClock};

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
}
