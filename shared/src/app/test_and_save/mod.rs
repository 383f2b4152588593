//! Test & Save: an integration checked against its tenant before it is saved, with the fix for
//! each problem, and the filters tried on what the tenant holds.

pub mod advice;
pub mod check;
pub mod filter_preview;
