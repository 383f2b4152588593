//! Command-line arguments (clap, derive): `--help` on every command, usage errors that say
//! what to type instead, shell completions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use m365_ingest::{GraphTime, Source};

#[derive(Parser)]
#[command(
    name = "m365-ingest",
    version,
    about = "m365-ingest's local program: the product on embedded defaults, and the operator's commands"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs the whole product on embedded defaults: Test & Save against simulated tenants,
    /// polling, the processor; writes NDJSON under --out.
    Demo(DemoOptions),
    /// The deployment's path for one source: dispatches the due integrations, then runs their
    /// poll jobs with the poller's code until none is left (the functions' environment).
    Poll(PollOptions),
    /// Polls a time range again for one integration on its own cursor (resumable; the live
    /// cursor is not touched); the processor's dedup drops what was published before.
    Backfill(BackfillOptions),
    /// Moves messages from a dead-letter queue back to the queue they came from.
    Redrive(RedriveOptions),
    /// Turns a saved Graph list response into intake envelopes (NDJSON on stdout).
    Replay(ReplayOptions),
    /// Runs intake envelopes (NDJSON) through the processor; output messages on stdout.
    Process(ProcessOptions),
    /// Test & Save without saving: proves an integration document's credentials and permissions.
    Check(CheckOptions),
    /// Revokes a user's sessions or disables the account, as the remediate function does it
    /// (the functions' environment: STATE_TABLE, DEDUP_TABLE, ACTIONS_RESULT_QUEUE_URL), within
    /// the integration's guard rails; prints the result.
    Remediate(RemediateOptions),
    /// Answers an investigation query as the query function does (the functions' environment:
    /// STATE_TABLE and Secrets Manager): the request as JSON, e.g.
    /// '{"kind": "hunting", "integration_id": "contoso", "query": "AlertInfo | take 10"}'.
    Query(QueryOptions),
    /// Creates the tables, queues and bucket template.yaml defines on the configured endpoint
    /// (AWS_ENDPOINT_URL: moto, LocalStack; or the credentials' account) and prints `export`
    /// lines for the functions' variables that name them: `eval "$(m365-ingest stack)"`.
    Stack(StackOptions),
    /// Manages saved integrations (STATE_TABLE) and their secrets (Secrets Manager).
    #[command(subcommand)]
    Integration(IntegrationCommand),
    /// Prints a completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

fn source(s: &str) -> Result<Source, String> {
    s.parse::<Source>().map_err(|e| e.to_string())
}

fn time(s: &str) -> Result<GraphTime, String> {
    GraphTime::parse(s).map_err(|e| e.to_string())
}

#[derive(Args)]
pub struct DemoOptions {
    /// Where intake.ndjson and output.ndjson go.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// The simulated tenants' seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Alerts in the first simulated tenant.
    #[arg(long, default_value_t = 500)]
    pub alerts: usize,
}

#[derive(Args)]
pub struct StackOptions {
    /// Every name starts with this (lower-case letters, digits and dashes).
    #[arg(long, default_value = "m365-ingest-local")]
    pub prefix: String,
}

#[derive(Args)]
pub struct PollOptions {
    /// defender_alerts, defender_incidents or cloud_apps.
    #[arg(long, value_parser = source)]
    pub source: Source,
    /// Stop taking jobs after this long.
    #[arg(long, default_value_t = 840)]
    pub seconds: u64,
}

#[derive(Args)]
pub struct BackfillOptions {
    /// The integration's id.
    #[arg(long)]
    pub integration: String,
    /// defender_alerts, defender_incidents or cloud_apps.
    #[arg(long, value_parser = source)]
    pub source: Source,
    /// Start of the range (inclusive), UTC.
    #[arg(long, value_parser = time)]
    pub from: GraphTime,
    /// End of the range (exclusive), UTC; capped at now minus the integration's ingestion delay.
    #[arg(long, value_parser = time)]
    pub to: GraphTime,
    /// Stop after this long; the same command resumes where it stopped.
    #[arg(long, default_value_t = 3_600)]
    pub seconds: u64,
}

#[derive(Args)]
pub struct QueryOptions {
    /// The query (JSON: kind hunting, cloud_apps_activities or context; docs/response.md), or @file.
    pub request: String,
}

#[derive(Args)]
pub struct RemediateOptions {
    #[arg(long)]
    pub integration: String,
    /// revoke_sessions or disable_account.
    #[arg(long, value_parser = ["revoke_sessions", "disable_account"])]
    pub action: String,
    /// The user's object id or UPN.
    #[arg(long)]
    pub user: String,
    /// The alert this acts on (its dedup_key or id).
    #[arg(long)]
    pub alert_ref: String,
    #[arg(long)]
    pub reason: String,
    /// This request's id: the same id again is acknowledged, not repeated (default: a new one).
    #[arg(long)]
    pub request_id: Option<String>,
    /// Check every rule and say what would be done; do nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct RedriveOptions {
    /// The dead-letter queue's URL (stack outputs IntakeDeadLetterQueueUrl, PollJobsDeadLetterQueueUrl).
    #[arg(long)]
    pub from: String,
    /// The queue to move them to (IntakeQueueUrl, PollJobsQueueUrl).
    #[arg(long)]
    pub to: String,
    /// Move at most this many.
    #[arg(long)]
    pub max: Option<usize>,
    /// Count and show what would move; move nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct ReplayOptions {
    /// defender_alerts, defender_incidents or cloud_apps.
    #[arg(long, value_parser = source)]
    pub source: Source,
    /// A saved Graph list response: {"value": [...]}.
    pub file: PathBuf,
    /// The tenant, when the items do not carry tenantId.
    #[arg(long)]
    pub tenant: Option<String>,
    /// The integration id the envelopes name.
    #[arg(long, default_value = "replay")]
    pub integration: String,
}

#[derive(Args)]
pub struct ProcessOptions {
    /// Intake envelopes, one JSON object per line.
    pub file: PathBuf,
    /// Integration documents (a JSON array, or TOML) whose filters and outputs apply.
    #[arg(long)]
    pub integrations: Option<PathBuf>,
}

/// Where new credentials come from; `Stored` = the secret the document names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialOptions {
    Stored,
    SecretEnv(String),
    File(PathBuf),
    Certificate { certificate: PathBuf, private_key: PathBuf },
}

#[derive(Args)]
pub struct CredentialArgs {
    /// The client secret, read from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with_all = ["credentials", "certificate"])]
    pub client_secret_env: Option<String>,
    /// A JSON file: client_secret, or certificate_pem + private_key_pem.
    #[arg(long, value_name = "FILE", conflicts_with = "certificate")]
    pub credentials: Option<PathBuf>,
    /// The app's certificate (PEM); needs --private-key.
    #[arg(long, value_name = "FILE", requires = "private_key")]
    pub certificate: Option<PathBuf>,
    /// The certificate's private key (PEM); needs --certificate.
    #[arg(long, value_name = "FILE", requires = "certificate")]
    pub private_key: Option<PathBuf>,
}

impl CredentialArgs {
    pub fn options(&self) -> CredentialOptions {
        match (&self.client_secret_env, &self.credentials, &self.certificate, &self.private_key) {
            (Some(v), _, _, _) => CredentialOptions::SecretEnv(v.clone()),
            (_, Some(f), _, _) => CredentialOptions::File(f.clone()),
            (_, _, Some(c), Some(k)) => CredentialOptions::Certificate { certificate: c.clone(), private_key: k.clone() },
            _ => CredentialOptions::Stored,
        }
    }
}

#[derive(Args)]
pub struct CheckOptions {
    /// An integration document (.toml or .json).
    pub config: PathBuf,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Allows this revision to relax a guard rail (remediation.mode,
    /// remediation.protect_privileged_roles, remediation.protected_users,
    /// remediation.protected_groups, filters); each relaxed one must be named.
    #[arg(long = "relax", value_name = "FIELD")]
    pub relax: Vec<String>,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum IntegrationCommand {
    /// Test & Save a new integration.
    Add(CheckOptions),
    /// Test & Save a new revision of an integration.
    Update(CheckOptions),
    /// Test & Save the saved record with its stored secret; nothing is written.
    Test {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Prints the saved record.
    Show { id: String },
    /// Enables an integration (tested first).
    Enable {
        id: String,
        /// Allows re-enabling a revision that relaxes a guard rail (see `update --relax`).
        #[arg(long = "relax", value_name = "FIELD")]
        relax: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Disables an integration; its cursors and secret are kept.
    Disable { id: String },
    /// Removes an integration with its cursors; schedules its secret for deletion.
    Remove {
        id: String,
        /// Keep the secret.
        #[arg(long)]
        keep_secret: bool,
    },
    /// Lists every record under its secret (`secret#<secret_ref>`), as each save does: once after
    /// upgrading from a version whose records were not, so Test & Save sees which share a secret.
    Reindex,
    /// Lists integrations page by page, with each source's lag and last outcome.
    List {
        /// JSON lines, one integration each.
        #[arg(long)]
        json: bool,
        /// Integrations per page (the rest: pass the printed --page-token).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Where the previous page stopped.
        #[arg(long)]
        page_token: Option<String>,
    },
}
