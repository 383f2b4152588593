//! The boundary between the use cases and the outside world. Each port has an AWS adapter and
//! a local one (`adapters/`); the local ones back the demo and double as test fakes.

mod budget;
mod bundle;
mod clock;
pub mod context;
mod cursors;
mod delivery;
pub mod evidence;
mod graph;
mod integrations;
pub mod investigation;
mod probe;
pub mod remediation;

pub use budget::{BudgetKey, Hold, Release, RequestBudget};
pub use bundle::{JobPorts, JobsWith, PollPorts, PollWith, ProcessPorts, ProcessWith};
pub use clock::{Clock, SystemClock};
pub use context::{ContextAnswer, ContextApi, ContextRequest};
pub use cursors::{CursorKey, CursorStatus, CursorStore, DueEntry, Lane, Leased, Ran, ScheduleStore};
pub use delivery::{AlertQueue, ArtifactStore, Claim, DedupStore, FailedEntry, QueueEntry, SendReport, MAX_BATCH_ENTRIES};
pub use evidence::{
    ArtifactUpload, ArtifactUploads, DelayQueue, EvidenceApi, EvidenceJobStore, EvidencePorts, EvidenceWith, NoEvidence, StoredRecord,
};
pub use graph::{GraphApi, GraphQuery, Page, PageRequest};
pub use integrations::{IntegrationRecord, IntegrationSource, IntegrationStore, SecretSource, SecretWriter};
pub use probe::{ContextProbe, MicrosoftProbe, PartCall, Probe};

pub use crate::domain::budget::Rate;
