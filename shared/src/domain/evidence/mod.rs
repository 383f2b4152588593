//! An alert's evidence: what to fetch (plan), each job's state machine, the index of due jobs
//! and restores, alerts held for their evidence, and what results unpack to.

pub mod hold;
pub mod index;
pub mod job;
pub mod plan;
pub mod restore_secret;
pub mod result_archive;
