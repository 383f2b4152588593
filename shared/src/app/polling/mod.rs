//! From Microsoft to the intake queue (DESIGN.md §3): the dispatch of poll jobs, a poll run and
//! its spans, the items that settle later, delivery, the quarantine of items that cannot be
//! delivered, and reported emails fetched with their reports.

pub mod deliver;
pub mod dispatch;
mod item_json;
pub mod origin;
pub mod poll;
pub mod poll_job;
pub mod quarantine;
pub mod reported_email;
pub mod settle;
pub mod span;
