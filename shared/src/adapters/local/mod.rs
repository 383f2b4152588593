//! Local adapters: real implementations on memory and files that back the local program
//! and serve as the tests' fakes.

mod dir_artifacts;
mod memory_cursor;
mod memory_dedup;
mod memory_delay_queue;
mod memory_evidence_jobs;
mod memory_integrations;
mod memory_queue;
mod memory_schedule;
mod static_config;

pub use dir_artifacts::{sha256_hex, DirArtifactStore};
pub use memory_cursor::MemoryCursorStore;
pub use memory_dedup::MemoryDedupStore;
pub use memory_delay_queue::MemoryDelayQueue;
pub use memory_evidence_jobs::MemoryEvidenceJobs;
pub use memory_integrations::{MemoryIntegrationStore, MemorySecrets};
pub use memory_queue::MemoryAlertQueue;
pub use memory_schedule::MemorySchedule;
pub use static_config::{StaticIntegrations, StaticSecretSource};
