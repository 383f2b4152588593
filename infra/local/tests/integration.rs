//! Every integration test of the local program in one binary (`autotests = false` in Cargo.toml): one
//! compile and link instead of 5; nextest still runs each test in a process of its own.

mod cli;
mod integration_on_moto;
mod poll_on_moto;
mod query_and_remediate_on_moto;
mod redrive_on_moto;
