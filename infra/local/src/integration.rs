//! `check` and `integration ...`: Test & Save and the management of saved integrations, on the
//! same code as the `check` Lambda. Microsoft's endpoints come from the environment
//! (LOGIN_BASE_URL, GRAPH_BASE_URL, MDE_BASE_URL, EXCHANGE_BASE_URL, CLOUD_APPS_BASE_URL,
//! EXTRA_CA_BUNDLE_FILE: the simulator in local runs); records and secrets from AWS
//! (STATE_TABLE and the SDK's usual variables: moto in local runs).

use futures_util::future::join_all;
use m365_ingest::adapters::aws::{
    credentials_for, load_sdk_config, AwsClients, DynamoCursorStore, DynamoEvidenceJobs, DynamoIntegrations, SecretsManagerSource,
};
use m365_ingest::adapters::graph::MicrosoftHttp;
use m365_ingest::adapters::local::{MemoryIntegrationStore, MemorySecrets};
use m365_ingest::app::evidence::restore::open_restores;
use m365_ingest::app::test_and_save::check::{Checker, CredentialInput, Report, Save, SaveMode, RELAXABLE};
use m365_ingest::config::{http_settings, CheckConfig};
use m365_ingest::domain::integration::doc::IntegrationDoc;
use m365_ingest::domain::integration::revision::{changes, Provenance};
use m365_ingest::domain::integration::Credentials;
use m365_ingest::lambda::check::check_retry_policy;
use m365_ingest::ports::{CursorKey, CursorStore, IntegrationStore, SecretWriter};
use m365_ingest::GraphTime;
use m365_ingest::Source;

use crate::args::{CheckOptions, CredentialOptions, IntegrationCommand};
use crate::Failure;

type AwsChecker = Checker<MicrosoftHttp, SecretsManagerSource, DynamoIntegrations, SecretsManagerSource>;

fn microsoft() -> Result<MicrosoftHttp, Failure> {
    let http = http_settings(&|k: &str| std::env::var(k).ok()).map_err(|e| Failure::Usage(e.to_string()))?;
    MicrosoftHttp::new(&http, check_retry_policy()).map_err(|e| Failure::Usage(e.to_string()))
}

async fn aws_checker() -> Result<(AwsChecker, String), Failure> {
    let config = CheckConfig::from_env().map_err(|e| Failure::Usage(e.to_string()))?;
    let sdk = load_sdk_config().await;
    let clients = AwsClients::new(&sdk);
    let app = m365_ingest::lambda::check::build_aws(&config, &clients).map_err(|e| Failure::Usage(e.to_string()))?;
    Ok((app, operator(&sdk).await?))
}

/// Who the operator is, as AWS knows them: what every revision this program saves records.
/// GetCallerIdentity needs no permission; without an answer nothing is saved.
async fn operator(sdk: &aws_config::SdkConfig) -> Result<String, Failure> {
    let me = aws_sdk_sts::Client::new(sdk).get_caller_identity().send().await.map_err(|e| {
        Failure::Run(format!(
            "cannot tell who you are (sts:GetCallerIdentity): {}",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        ))
    })?;
    let arn = me.arn().unwrap_or("an unnamed AWS principal");
    Ok(format!("operator {arn} (m365-ingest CLI)"))
}

fn relax(fields: Vec<String>) -> Result<Vec<String>, Failure> {
    match fields.iter().find(|f| !RELAXABLE.contains(&f.as_str())) {
        Some(bad) => Err(Failure::Usage(format!("--relax {bad}: not a guard rail; name one of {}", RELAXABLE.join(", ")))),
        None => Ok(fields),
    }
}

/// New credentials from the command line's options, for the document's tenant and app.
fn new_credentials(o: &CredentialOptions, doc: &IntegrationDoc) -> Result<Option<Credentials>, Failure> {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", p.display())));
    let given: serde_json::Map<String, serde_json::Value> = match o {
        CredentialOptions::Stored => return Ok(None),
        CredentialOptions::SecretEnv(var) => {
            let secret =
                std::env::var(var).map_err(|_| Failure::Usage(format!("--client-secret-env {var}: the variable {var} is not set")))?;
            [("client_secret".to_owned(), secret.into())].into_iter().collect()
        }
        CredentialOptions::File(path) => serde_json::from_str(&read(path)?).map_err(|_| {
            Failure::Usage(format!("{} is not a JSON object with client_secret, or certificate_pem + private_key_pem", path.display()))
        })?,
        CredentialOptions::Certificate { certificate, private_key } => {
            [("certificate_pem".to_owned(), read(certificate)?.into()), ("private_key_pem".to_owned(), read(private_key)?.into())]
                .into_iter()
                .collect()
        }
    };
    credentials_for("the credentials given", &doc.tenant_id, &doc.client_id, given).map(Some).map_err(|e| Failure::Usage(e.to_string()))
}

fn print(report: &Report, json: bool) -> Result<(), Failure> {
    if json {
        println!("{}", serde_json::to_string_pretty(report).unwrap_or_default());
    } else {
        print!("{}", report.to_text());
    }
    if report.passed && report.not_saved.is_none() {
        Ok(())
    } else {
        Err(Failure::Run(if report.passed { "the configuration passed but was not saved".into() } else { "Test & Save failed".into() }))
    }
}

/// `check CONFIG`: test only; nothing is written.
/// `check` saves nothing, so no revision records it.
const CHECK_ONLY: &str = "check (saves nothing)";

pub async fn check(o: CheckOptions) -> Result<(), Failure> {
    let doc = crate::docs::read_doc(&o.config)?;
    let creds = new_credentials(&o.credentials.options(), &doc)?;
    let report = match creds {
        Some(c) => {
            let checker = Checker {
                microsoft: microsoft()?,
                secrets: MemorySecrets::new(),
                store: MemoryIntegrationStore::new(),
                writer: MemorySecrets::new(),
                secret_prefix: String::new(),
            };
            checker.test_and_save(&doc, CredentialInput::New(c), SaveMode::No.by(CHECK_ONLY), GraphTime::now()).await
        }
        None => {
            let clients = AwsClients::new(&load_sdk_config().await);
            let checker = Checker {
                microsoft: microsoft()?,
                secrets: SecretsManagerSource::new(clients.secrets.clone()),
                store: MemoryIntegrationStore::new(),
                writer: MemorySecrets::new(),
                secret_prefix: String::new(),
            };
            checker.test_and_save(&doc, CredentialInput::Stored, SaveMode::No.by(CHECK_ONLY), GraphTime::now()).await
        }
    };
    print(&report, o.json)
}

pub async fn run(cmd: IntegrationCommand) -> Result<(), Failure> {
    let (app, operator) = aws_checker().await?;
    let store_err = |e: m365_ingest::error::CursorError| Failure::Run(e.to_string());
    let get = |id: &str| {
        let id = id.to_owned();
        let store = &app.store;
        async move {
            store
                .get(&id)
                .await
                .map_err(store_err)?
                .ok_or_else(|| Failure::Usage(format!("no integration `{id}`; `integration list` shows them")))
        }
    };
    match cmd {
        IntegrationCommand::Add(o) => save(&app, o, SaveMode::Create, operator).await,
        IntegrationCommand::Update(o) => save(&app, o, SaveMode::Update, operator).await,
        IntegrationCommand::Test { id, json } => {
            let record = get(&id).await?;
            let report = app.test_and_save(&record.doc, CredentialInput::Stored, SaveMode::No.by(CHECK_ONLY), GraphTime::now()).await;
            print(&report, json)
        }
        IntegrationCommand::Show { id } => {
            let record = get(&id).await?;
            println!("{}", serde_json::to_string_pretty(&record).unwrap_or_default());
            Ok(())
        }
        IntegrationCommand::Enable { id, relax: fields, json } => {
            // Re-enabling proves the integration still works before the poller picks it up.
            let mut record = get(&id).await?;
            record.doc.enabled = true;
            let request = Save { mode: SaveMode::Update, by: operator, relax: relax(fields)? };
            let report = app.test_and_save(&record.doc, CredentialInput::Stored, request, GraphTime::now()).await;
            print(&report, json)
        }
        IntegrationCommand::Disable { id } => {
            let before = get(&id).await?;
            let mut doc = before.doc.clone();
            doc.enabled = false;
            // Disabling relaxes nothing: it is saved without a test, and recorded like any revision.
            let provenance = Provenance { saved_by: operator, changes: changes(Some(&before.doc), &doc), relaxed: Vec::new() };
            let revision = app.store.save(&doc, Some(before.revision), GraphTime::now(), &provenance).await.map_err(store_err)?;
            println!("integration `{id}` disabled (revision {revision}); its cursors and secret are kept");
            Ok(())
        }
        IntegrationCommand::Remove { id, keep_secret } => {
            let record = get(&id).await?;
            // A restore may have put a copy of a quarantined file on a device: its cleanup runs
            // under the integration's credentials, so the integration stays until it is done.
            let dedup = std::env::var("DEDUP_TABLE").map_err(|_| {
                Failure::Usage(
                    "DEDUP_TABLE is not set: set it to the stack's DedupTable, where removal checks for restored copies left on devices"
                        .into(),
                )
            })?;
            let jobs = DynamoEvidenceJobs::new(AwsClients::new(&load_sdk_config().await).dynamodb, &dedup);
            let open = open_restores(&jobs, &id).await.map_err(store_err)?;
            if !open.is_empty() {
                let list: Vec<String> =
                    open.iter().map(|r| format!("  device {} folder {} (job {})", r.device_id, r.folder, r.job)).collect();
                return Err(Failure::Run(format!(
                    "integration `{id}` was not removed: {} restore(s) may hold a copy of a quarantined file on a device, and their \
                     cleanup runs with this integration's credentials; wait for the jobs to end (the hourly sweep ends them after \
                     their maximum wait); for a copy whose cleanup was not confirmed, delete its folder and antivirus exclusion by hand, \
                     then have someone with write access to the DedupTable (the operator policy only reads it) delete the item \
                     `evidence-restore#{id}`:\n{}",
                    open.len(),
                    list.join("\n")
                )));
            }
            let users = app.store.secret_users(&record.doc.secret_ref).await.map_err(store_err)?;
            let shared = users.iter().any(|user| *user != id);
            app.store.remove(&id).await.map_err(store_err)?;
            let secret = if keep_secret || shared {
                format!("secret `{}` kept{}", record.doc.secret_ref, if shared { " (another integration uses it)" } else { "" })
            } else {
                app.writer.delete(&record.doc.secret_ref).await.map_err(|e| Failure::Run(e.to_string()))?;
                format!("secret `{}` scheduled for deletion (recoverable for 7 days)", record.doc.secret_ref)
            };
            println!("integration `{id}` removed with its cursors; {secret}; other integrations are untouched");
            Ok(())
        }
        IntegrationCommand::List { json, limit, page_token } => list(&app, usize::from(limit), page_token.as_deref(), json).await,
        IntegrationCommand::Reindex => {
            let (records, entries) = app.store.reindex_secret_users().await.map_err(store_err)?;
            println!("{records} integration record(s) listed under their secrets ({entries} entries written)");
            Ok(())
        }
    }
}

/// One page of integrations, each source with its cursor's lag and last outcome.
async fn list(app: &AwsChecker, limit: usize, token: Option<&str>, json: bool) -> Result<(), Failure> {
    let store_err = |e: m365_ingest::error::CursorError| Failure::Run(e.to_string());
    let (records, next) = app.store.page(limit, token).await.map_err(|e| match e {
        m365_ingest::error::CursorError::Store { retryable: false, detail } if detail.contains("page token") => Failure::Usage(detail),
        e => store_err(e),
    })?;
    let config = CheckConfig::from_env().map_err(|e| Failure::Usage(e.to_string()))?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let cursors = DynamoCursorStore::new(clients.dynamodb.clone(), &config.state_table);
    let now = GraphTime::now();
    let mut rows = Vec::new();
    for r in records {
        let sources: Vec<Source> = Source::ALL.into_iter().filter(|s| polls(&r.doc, *s)).collect();
        let keys: Vec<CursorKey> = sources.iter().map(|s| CursorKey::live(r.doc.id.clone(), *s)).collect();
        let statuses = join_all(keys.iter().map(|k| cursors.status(k))).await;
        let mut per_source = serde_json::Map::new();
        for (source, status) in sources.iter().zip(statuses) {
            let status = status.map_err(store_err)?.unwrap_or_default();
            let lag = status.watermark.map(|w| (now.ticks() - w.ticks()) / 10_000_000);
            per_source.insert(
                source.to_string(),
                serde_json::json!({"lag_seconds": lag, "watermark": status.watermark, "last_run": status.last_run,
                    "last_outcome": status.last_outcome, "leased_until": status.leased_until}),
            );
        }
        rows.push((r, per_source));
    }
    if json {
        let integrations: Vec<serde_json::Value> = rows
            .iter()
            .map(|(r, sources)| serde_json::json!({"doc": r.doc, "revision": r.revision, "saved_at": r.saved_at, "sources": sources}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"integrations": integrations, "next_page_token": next})).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "{:<24} {:<7} {:>4}  {:<36}  {:<18} {:>9}  {:<20}  LAST OUTCOME",
        "ID", "ENABLED", "REV", "TENANT", "SOURCE", "LAG", "LAST RUN"
    );
    for (r, sources) in &rows {
        let d = &r.doc;
        if sources.is_empty() {
            println!("{:<24} {:<7} {:>4}  {:<36}  (no source)", d.id, d.enabled, r.revision, d.tenant_id);
        }
        for (source, st) in sources {
            let lag = st["lag_seconds"].as_i64().map_or_else(|| "-".to_owned(), human);
            let last_run = st["last_run"].as_str().map_or("never", |t| t.get(..19).unwrap_or(t));
            println!(
                "{:<24} {:<7} {:>4}  {:<36}  {:<18} {:>9}  {:<20}  {}",
                d.id,
                d.enabled,
                r.revision,
                d.tenant_id,
                source,
                lag,
                last_run,
                st["last_outcome"].as_str().unwrap_or("-")
            );
        }
    }
    if let Some(next) = next {
        println!("more: integration list --limit {limit} --page-token {next}");
    }
    Ok(())
}

/// The sources a document polls, whether or not it is enabled (a disabled one still has cursors).
fn polls(doc: &IntegrationDoc, source: Source) -> bool {
    match source {
        Source::CloudApps => doc.sources.cloud_apps,
        Source::EmailSubmissions => doc.sources.email_submissions.enabled,
        Source::PhishingMailbox => doc.sources.phishing_mailbox.is_some(),
        Source::DefenderAlerts | Source::DefenderIncidents => doc.sources.defender.source() == Some(source),
    }
}

/// Seconds as `3d 4h`, `2h 5m`, `7m 12s` or `40s`.
fn human(secs: i64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

async fn save(app: &AwsChecker, o: CheckOptions, mode: SaveMode, operator: String) -> Result<(), Failure> {
    let doc = crate::docs::read_doc(&o.config)?;
    let input = match new_credentials(&o.credentials.options(), &doc)? {
        Some(c) => CredentialInput::New(c),
        None => CredentialInput::Stored,
    };
    let request = Save { mode, by: operator, relax: relax(o.relax)? };
    let report = app.test_and_save(&doc, input, request, GraphTime::now()).await;
    print(&report, o.json)
}
