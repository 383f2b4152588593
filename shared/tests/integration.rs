//! Every integration test of m365-ingest in one binary (`autotests = false` in Cargo.toml): one
//! compile and link instead of 28; nextest still runs each test in a process of its own.

mod budget;
mod check;
mod context;
mod contract_aws;
mod evidence_aws;
mod evidence_plan;
mod filters;
mod graph_client;
mod iam;
mod investigate;
mod mime_reported_email;
mod output_contract;
mod poll_bad_items;
mod poll_burst;
mod poll_cloud_apps;
mod poll_credentials_and_size;
mod poll_email_submissions;
mod poll_jobs;
mod poll_limits;
mod poll_many_integrations;
mod poll_phishing_mailbox;
mod poll_protocol;
mod poll_simulator;
mod process;
mod process_aws;
mod remediate;
mod schedule;
mod sovereign;
mod support;
