//! The processor as each function builds it once: its adapters, its settings, and the evidence
//! retrieval and context lookups it may have. The batch (process.rs) and the evidence driver
//! (evidence/driver.rs, evidence/restore.rs) each add their methods; neither imports the other.

use std::time::Duration;

use crate::app::evidence::setup::Evidence;
use crate::app::processing::enrich::Enricher;
use crate::ports::{AlertQueue, ArtifactStore, ArtifactUploads, Clock, DedupStore, EvidencePorts, ProcessPorts, ProcessWith};
use crate::sources::settings::DeliverySettings;

#[derive(Debug, Clone)]
pub struct ProcessSettings {
    /// Messages of one SQS batch handled at once.
    pub concurrency: usize,
    /// A claim lives this long; a processor that died holding one is taken over after it.
    pub claim_for: Duration,
    /// Dedup keys live this long: longer than any overlap or redelivery (DynamoDB TTL).
    pub dedup_ttl: Duration,
    pub delivery: DeliverySettings,
    /// Identifies this processor instance in claims.
    pub owner: String,
}

impl Default for ProcessSettings {
    fn default() -> Self {
        ProcessSettings {
            concurrency: 8,
            claim_for: Duration::from_secs(300),
            dedup_ttl: Duration::from_secs(14 * 24 * 3600),
            delivery: DeliverySettings::default(),
            owner: "processor".into(),
        }
    }
}

/// Built once per warm function; each batch runs with the integrations it names.
pub struct Processor<P: ProcessPorts> {
    pub dedup: P::Dedup,
    pub output: P::Output,
    pub artifacts: P::Artifacts,
    pub clock: P::Clock,
    pub settings: ProcessSettings,
    /// Evidence retrieval, where this processor has its queue and Microsoft's APIs.
    pub evidence: Option<Evidence<P::Evidence>>,
    /// Context lookups, where this processor reaches Microsoft's APIs.
    pub context: Option<Enricher>,
}

impl<D, Q, A, K> Processor<ProcessWith<D, Q, A, K>>
where
    D: DedupStore + 'static,
    Q: AlertQueue + 'static,
    A: ArtifactStore + ArtifactUploads + 'static,
    K: Clock + 'static,
{
    pub fn new(dedup: D, output: Q, artifacts: A, clock: K, settings: ProcessSettings) -> Self {
        Processor { dedup, output, artifacts, clock, settings, evidence: None, context: None }
    }

    /// The same processor with evidence retrieval on these adapters.
    pub fn with_evidence<E: EvidencePorts>(self, evidence: Evidence<E>) -> Processor<ProcessWith<D, Q, A, K, E>> {
        let Processor { dedup, output, artifacts, clock, settings, context, .. } = self;
        Processor { dedup, output, artifacts, clock, settings, evidence: Some(evidence), context }
    }
}

impl<P: ProcessPorts> Processor<P> {
    /// The same processor adding context to alerts through `enricher`.
    pub fn with_context(mut self, enricher: Enricher) -> Self {
        self.context = Some(enricher);
        self
    }
}
