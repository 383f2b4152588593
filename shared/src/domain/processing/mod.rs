//! What the processor decides and writes: filters, context, the output contract and its OCSF
//! rendering, incidents as incidents.

pub mod context;
pub mod directory_roles;
pub mod filter;
pub mod incident;
pub mod ocsf;
pub mod output;
