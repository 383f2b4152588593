//! Every integration test of the tenant simulator in one binary (`autotests = false` in Cargo.toml): one
//! compile and link instead of 12; nextest still runs each test in a process of its own.

mod cli;
mod cloud_apps_and_probes;
mod common;
mod directory_roles;
mod email_submissions;
mod entra_tokens;
mod faults_and_record;
mod fixtures_served_verbatim;
mod graph_queries;
mod live_response_and_quarantine;
mod msal_python;
mod phishing_mailbox;
mod scenario_timeline;
