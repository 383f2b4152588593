//! Test & Save: prove an integration's credentials and permissions before anything is saved
//! (DESIGN.md §6; ms-apis.md §1 on `roles`). For each API the enabled features need, get a
//! token and read its `roles`; compare them with each feature's permissions; then make one
//! small real call per feature that reads data. Only a passing configuration is saved.

mod calls;
mod features;
mod report;
mod save;

pub use features::check;
pub use report::{FeatureResult, Report, Saved, Status};
pub use save::{Checker, CredentialInput, Save, SaveMode, RELAXABLE};
