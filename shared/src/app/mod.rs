//! Use cases, generic over the ports.

pub mod advice;
pub mod check;
pub mod deliver;
pub mod dispatch;
pub mod enrich;
pub mod evidence;
mod evidence_observe;
pub mod evidence_setup;
mod file_intake;
pub mod filter_preview;
pub mod integration_cache;
pub mod investigate;
mod item_json;
mod microsoft_copy;
pub mod origin;
pub mod poll;
pub mod poll_job;
pub mod process;
pub mod processor;
pub mod quarantine;
pub mod remediate;
pub mod reported_email;
pub mod restore;
pub mod settle;
pub mod span;
