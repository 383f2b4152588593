//! The cursor protocol's state and windows, and the items some sources read (email
//! submissions, phishing-mailbox reports, Cloud Apps alerts).

pub mod cloud_apps_alert;
pub mod cursor;
pub mod email_submission;
pub mod mailbox_report;
pub mod window;
