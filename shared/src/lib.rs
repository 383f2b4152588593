//! m365-ingest: pull Microsoft 365 / Defender security alerts into SQS.
//!
//! All logic lives here behind the traits of [`ports`]; the Lambda crates under `functions/`
//! and the local program only wire adapters together.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod lambda;
pub mod ports;
pub mod secret;
pub mod sources;

pub use domain::source::Source;
pub use domain::time::GraphTime;
pub use error::Error;
