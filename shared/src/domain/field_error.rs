//! A field of a document that is not acceptable, and how to fix it: what every validation
//! (the integration document, its remediation section) reports.

use serde::Serialize;

/// One field that is not acceptable, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path, e.g. `polling.lookback` or `filters.severities[1]`.
    pub field: String,
    pub problem: String,
}
