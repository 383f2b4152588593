//! The tenant's security data: alerts, incidents, their evidence, and how they change over time.

pub mod alert;
pub mod enums;
pub mod evidence;
pub mod generate;
pub mod incident;
pub mod kinds;
pub mod mailbox;
pub mod pool;
pub mod store;
pub mod submission;

pub use alert::{AlertRecord, AlertVersion};
pub use incident::IncidentRecord;
pub use store::{AlertChange, TenantData};
