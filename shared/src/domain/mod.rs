//! Pure domain logic: no I/O, no async.

pub mod alert;
pub mod backoff;
pub mod budget;
pub mod cloud_apps_alert;
pub mod context;
pub mod cursor;
pub mod directory_roles;
pub mod duration_text;
pub mod email_submission;
pub mod envelope;
pub mod evidence_hold;
pub mod evidence_job;
pub mod evidence_plan;
pub mod filter;
pub mod graph_alert;
pub mod integration;
pub mod integration_doc;
pub mod mailbox_report;
pub mod mime;
pub mod ocsf;
pub mod output;
pub mod permissions;
pub mod source;
pub mod sqs_text;
pub mod time;
pub mod window;
