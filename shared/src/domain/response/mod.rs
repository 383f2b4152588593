//! Investigation queries and remediation actions.

pub mod investigation;
pub mod remediation;
