//! Use cases, generic over the ports, one folder per capability: polling (from Microsoft to the
//! intake queue), processing (from the intake queue to the output queue), evidence (the jobs
//! that fetch an alert's files and emails), response (investigation queries and remediation)
//! and Test & Save.

pub mod evidence;
pub mod integration_cache;
pub mod polling;
pub mod processing;
pub mod response;
pub mod test_and_save;
