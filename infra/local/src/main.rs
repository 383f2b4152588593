//! `m365-ingest`: the local program.
//!
//! ```text
//! m365-ingest demo   [--out DIR] [--seed N] [--alerts N]
//! m365-ingest poll   --source defender_alerts|defender_incidents|cloud_apps [--seconds N]
//! m365-ingest replay --source defender_alerts|defender_incidents FILE [--tenant ID] [--integration ID]
//! m365-ingest process FILE [--integrations FILE]
//! m365-ingest check CONFIG [CREDENTIALS] [--json]
//! m365-ingest integration add|update|test|show|enable|disable|remove|list ...
//! ```

mod args;
mod demo;
mod docs;
mod integration;
mod poll;
mod process;
mod replay;

use std::process::ExitCode;

use args::Command;

/// Every failure the program reports: bad input (exit 2) or a run that failed (exit 1).
pub enum Failure {
    Usage(String),
    Run(String),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LOG").unwrap_or_else(|_| "warn".into()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let result = match args::parse(std::env::args().skip(1)) {
        Err(e) => Err(Failure::Usage(e)),
        Ok(Command::Demo(o)) => demo::run(o).await,
        Ok(Command::Poll(o)) => poll::run(o).await,
        Ok(Command::Replay(o)) => replay::run(o).await,
        Ok(Command::Process(o)) => process::run(o).await,
        Ok(Command::Check(o)) => integration::check(o).await,
        Ok(Command::Integration(c)) => integration::run(c).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("m365-ingest: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Run(msg)) => {
            eprintln!("m365-ingest: {msg}");
            ExitCode::FAILURE
        }
    }
}
