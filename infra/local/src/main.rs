//! `m365-ingest`: the local program. `m365-ingest --help` lists its commands, and
//! `m365-ingest COMMAND --help` explains each.

mod args;
mod backfill;
mod demo;
mod docs;
mod event_source;
mod integration;
mod logging;
mod poll;
mod process;
mod query;
mod redrive;
mod remediate;
mod replay;
mod stack;

use std::process::ExitCode;

use args::{Cli, Command};
use clap::{CommandFactory, Parser};

/// Every failure the program reports: bad input (exit 2) or a run that failed (exit 1).
pub enum Failure {
    Usage(String),
    Run(String),
}

// One thread, as in the functions whose code the commands run (functions/*/src/main.rs say why).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    // The demo counts its warnings in its summary (its simulated tenants fail on purpose);
    // every other command prints them.
    logging::init(if matches!(cli.command, Command::Demo(_)) { "error" } else { "warn" });
    let result = match cli.command {
        Command::Demo(o) => demo::run(o).await,
        Command::Poll(o) => poll::run(o).await,
        Command::Backfill(o) => backfill::run(o).await,
        Command::Redrive(o) => redrive::run(o).await,
        Command::Replay(o) => replay::run(o).await,
        Command::Process(o) => process::run(o).await,
        Command::Check(o) => integration::check(o).await,
        Command::Remediate(o) => remediate::run(o).await,
        Command::Query(o) => query::run(o).await,
        Command::Integration(c) => integration::run(c).await,
        Command::Stack(o) => stack::run(o).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "m365-ingest", &mut std::io::stdout());
            Ok(())
        }
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

/// Help and the version go to stdout with status 0; a usage error is clap's message, prefixed
/// like every other error, with status 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        // Nothing to do when stdout is closed.
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(2);
    }
    let text = e.render().to_string();
    eprint!("m365-ingest: {}", text.strip_prefix("error: ").unwrap_or(&text));
    ExitCode::from(2)
}
