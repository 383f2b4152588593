//! Emails as attackers write them: MIME parsed within bounds, and the email section of the
//! output contract.

pub mod mime;
pub mod mime_guard;
pub mod section;
