//! An alert's evidence (issue 13): the jobs that fetch its files and emails, one call per step,
//! driven by the evidence-jobs queue; the opt-in restore of quarantined files; Microsoft's copy
//! of an alert checked before a job acts on it.

pub mod driver;
mod file_intake;
mod microsoft_copy;
mod observe;
pub mod restore;
pub mod setup;
