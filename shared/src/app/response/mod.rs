//! Acting on an alert: investigation queries and guarded remediation.

pub mod investigate;
pub mod remediate;
