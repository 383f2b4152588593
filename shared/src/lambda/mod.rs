//! What the Lambda functions share: event decoding and the assembled apps.

pub mod check;
pub mod dispatch;
pub mod events;
pub mod poller;
pub mod processor;
pub mod query;
pub mod remediate;
pub mod telemetry;
