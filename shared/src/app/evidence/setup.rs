//! Where the processor and the evidence driver meet: evidence retrieval's adapters and settings
//! (which the processor holds) and what a step did (which the processor counts).

use std::time::Duration;

use crate::domain::evidence::job::JobLimits;
use crate::domain::evidence::plan::EvidenceOutcome;
use crate::ports::evidence::EvidencePorts;

#[derive(Debug, Clone)]
pub struct EvidenceSettings {
    pub limits: JobLimits,
    /// The largest file kept (a GetFile may return up to 3 GB, ms-apis.md §7).
    pub max_file_bytes: u64,
    /// Job records outlive their job by this much (DynamoDB TTL).
    pub job_ttl: Duration,
    /// The longest one step may take (a call, or a file streamed to S3): a step still running
    /// then is cut off and tried again, and a batch starts no step with less time left.
    pub step_time: Duration,
}

impl Default for EvidenceSettings {
    fn default() -> Self {
        EvidenceSettings {
            limits: JobLimits::default(),
            max_file_bytes: 512 << 20,
            job_ttl: Duration::from_secs(14 * 24 * 3600),
            step_time: Duration::from_secs(60),
        }
    }
}

/// Evidence retrieval's adapters and settings, beside the processor's own.
pub struct Evidence<E: EvidencePorts> {
    pub jobs: E::Jobs,
    pub steps: E::Steps,
    pub api: E::Api,
    pub secrets: E::Secrets,
    pub settings: EvidenceSettings,
}

/// What a step did, for counts and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The job moved on (or waits) and its next message is queued.
    Scheduled { delay: Duration },
    /// The job ended and its update was published; how long it took from its creation, and
    /// whether it left a restored copy on a device (its cleanup not confirmed).
    Reported { outcome: EvidenceOutcome, age: Duration, copy_left: bool },
    /// A held alert went out.
    Released,
    /// Nothing to do: the job ended and was reported, another step moved it on, or it expired.
    Nothing,
    /// Not taken: too little of the invocation was left for a whole step (SQS delivers it again).
    NotStarted,
}
