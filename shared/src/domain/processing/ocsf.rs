//! The alert as an OCSF 1.8.0 Detection Finding (class_uid 2004), for Security Lake and SIEMs
//! that take OCSF without a mapping of their own. The Microsoft object is kept in `raw_data`.

mod alert;
mod attachments;
mod detection;
mod fields;
mod incident;

pub use attachments::{attach_context, attach_evidence, attach_text_replaced, evidence_of_item};
pub use detection::{activity, detection_finding, evidence_update};
pub use fields::OCSF_VERSION;
pub use incident::{incident_finding, without_alert_descriptions, UNASSIGNED_GROUP};
