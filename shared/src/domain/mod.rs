//! Pure domain logic: no I/O, no async.

pub mod alert;
pub mod cursor;
pub mod envelope;
pub mod filter;
pub mod graph_alert;
pub mod integration;
pub mod ocsf;
pub mod output;
pub mod source;
pub mod time;
pub mod window;
