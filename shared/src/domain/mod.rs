//! Pure domain logic: no I/O, no async. What every capability shares sits here; the rest is in
//! one folder per capability, as in `app`.

pub mod action_failure;
pub mod alert;
pub mod backoff;
pub mod budget;
pub mod cloud;
pub mod duration_text;
pub mod email;
pub mod entities;
pub mod envelope;
pub mod evidence;
pub mod field_error;
pub mod graph_alert;
pub mod integration;
pub mod json_text;
pub mod permissions;
pub mod polling;
pub mod processing;
pub mod response;
pub mod source;
pub mod sqs_text;
pub mod time;
