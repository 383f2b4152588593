//! Use cases, generic over the ports.

pub mod advice;
pub mod check;
pub mod deliver;
pub mod dispatch;
pub mod enrich;
pub mod evidence;
mod file_intake;
pub mod filter_preview;
pub mod integration_cache;
pub mod investigate;
mod microsoft_copy;
pub mod poll;
pub mod poll_job;
pub mod process;
pub mod quarantine;
pub mod remediate;
pub mod reported_email;
pub mod restore;
pub mod settle;
pub mod span;
