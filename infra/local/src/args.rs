//! Command-line arguments, with errors that say what to type instead.

use std::path::PathBuf;

use m365_ingest::Source;

pub const USAGE: &str = "usage: m365-ingest demo [--out DIR] [--seed N] [--alerts N]
       m365-ingest poll --source defender_alerts|defender_incidents|cloud_apps [--seconds N]
       m365-ingest replay --source defender_alerts|defender_incidents|cloud_apps FILE [--tenant ID] [--integration ID]
       m365-ingest process FILE [--integrations FILE]
       m365-ingest check CONFIG [CREDENTIALS] [--json]
       m365-ingest integration add|update CONFIG [CREDENTIALS] [--json]
       m365-ingest integration test|show|enable|disable ID [--json]
       m365-ingest integration remove ID [--keep-secret]
       m365-ingest integration list [--json]
CONFIG: an integration document (.toml or .json). CREDENTIALS: --client-secret-env VAR,
  --credentials FILE (JSON: client_secret, or certificate_pem + private_key_pem), or
  --certificate FILE --private-key FILE; without them the secret named by secret_ref is used.";

pub struct DemoOptions {
    pub out: PathBuf,
    pub seed: u64,
    pub alerts: usize,
}

pub struct PollOptions {
    pub source: Source,
    pub seconds: u64,
}

pub struct ReplayOptions {
    pub source: Source,
    pub file: PathBuf,
    pub tenant: Option<String>,
    pub integration: String,
}

pub struct ProcessOptions {
    pub file: PathBuf,
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

pub struct CheckOptions {
    pub config: PathBuf,
    pub credentials: CredentialOptions,
    pub json: bool,
}

pub enum IntegrationCommand {
    Add(CheckOptions),
    Update(CheckOptions),
    Test { id: String, json: bool },
    Show { id: String },
    Enable { id: String, json: bool },
    Disable { id: String },
    Remove { id: String, keep_secret: bool },
    List { json: bool },
}

pub enum Command {
    Check(CheckOptions),
    Integration(IntegrationCommand),
    Process(ProcessOptions),
    Demo(DemoOptions),
    Poll(PollOptions),
    Replay(ReplayOptions),
}

/// Flags that take no value.
const SWITCHES: &[&str] = &["json", "keep-secret"];

fn one_path(positional: &mut Vec<String>, missing: &str) -> Result<PathBuf, String> {
    match positional.len() {
        0 => Err(format!("{missing}\n{USAGE}")),
        _ => Ok(PathBuf::from(positional.remove(0))),
    }
}

fn credentials(flags: &mut Vec<(String, String)>) -> Result<CredentialOptions, String> {
    let mut take = |name: &str| flags.iter().position(|(n, _)| n == name).map(|i| flags.remove(i).1);
    let (env, file, cert, key) = (take("client-secret-env"), take("credentials"), take("certificate"), take("private-key"));
    match (env, file, cert, key) {
        (None, None, None, None) => Ok(CredentialOptions::Stored),
        (Some(v), None, None, None) => Ok(CredentialOptions::SecretEnv(v)),
        (None, Some(f), None, None) => Ok(CredentialOptions::File(PathBuf::from(f))),
        (None, None, Some(c), Some(k)) => {
            Ok(CredentialOptions::Certificate { certificate: PathBuf::from(c), private_key: PathBuf::from(k) })
        }
        (None, None, Some(_), None) => Err("--certificate needs --private-key FILE too".into()),
        (None, None, None, Some(_)) => Err("--private-key needs --certificate FILE too".into()),
        _ => Err("give one of --client-secret-env, --credentials, or --certificate with --private-key".into()),
    }
}

pub fn parse(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut args = args.peekable();
    let command = args.next().ok_or_else(|| format!("no command given\n{USAGE}"))?;
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut positional: Vec<String> = Vec::new();
    while let Some(a) = args.next() {
        if let Some(name) = a.strip_prefix("--") {
            if SWITCHES.contains(&name) {
                flags.push((name.to_owned(), String::new()));
                continue;
            }
            let value = args.next().ok_or_else(|| format!("--{name} needs a value\n{USAGE}"))?;
            flags.push((name.to_owned(), value));
        } else {
            positional.push(a);
        }
    }
    let take = |flags: &mut Vec<(String, String)>, name: &str| flags.iter().position(|(n, _)| n == name).map(|i| flags.remove(i).1);
    let number = |v: Option<String>, name: &str, default: u64| -> Result<u64, String> {
        v.map_or(Ok(default), |s| s.parse().map_err(|_| format!("--{name} takes a whole number, not `{s}`")))
    };
    let source = |v: Option<String>| -> Result<Source, String> {
        v.ok_or_else(|| "--source is required: defender_alerts, defender_incidents or cloud_apps".to_owned())?
            .parse::<Source>()
            .map_err(|e| e.to_string())
    };
    let cmd = match command.as_str() {
        "demo" => Command::Demo(DemoOptions {
            out: PathBuf::from(take(&mut flags, "out").unwrap_or_else(|| "out".into())),
            seed: number(take(&mut flags, "seed"), "seed", 7)?,
            alerts: number(take(&mut flags, "alerts"), "alerts", 500)? as usize,
        }),
        "poll" => Command::Poll(PollOptions {
            source: source(take(&mut flags, "source"))?,
            seconds: number(take(&mut flags, "seconds"), "seconds", 840)?,
        }),
        "replay" => {
            let source = source(take(&mut flags, "source"))?;
            let file = match positional.len() {
                1 => PathBuf::from(positional.remove(0)),
                0 => return Err(format!("replay needs the FILE of a saved Graph response\n{USAGE}")),
                _ => return Err(format!("replay takes one FILE, got {}", positional.len())),
            };
            Command::Replay(ReplayOptions {
                source,
                file,
                tenant: take(&mut flags, "tenant"),
                integration: take(&mut flags, "integration").unwrap_or_else(|| "replay".into()),
            })
        }
        "process" => {
            let file = match positional.len() {
                1 => PathBuf::from(positional.remove(0)),
                0 => return Err(format!("process needs the FILE of intake envelopes (NDJSON)\n{USAGE}")),
                _ => return Err(format!("process takes one FILE, got {}", positional.len())),
            };
            Command::Process(ProcessOptions { file, integrations: take(&mut flags, "integrations").map(PathBuf::from) })
        }
        "check" => {
            let config = one_path(&mut positional, "check needs the CONFIG file of an integration document")?;
            Command::Check(CheckOptions { config, credentials: credentials(&mut flags)?, json: take(&mut flags, "json").is_some() })
        }
        "integration" => {
            if positional.is_empty() {
                return Err(format!("integration needs a subcommand: add, update, test, show, enable, disable, remove or list\n{USAGE}"));
            }
            let sub = positional.remove(0);
            let json = take(&mut flags, "json").is_some();
            let id = |positional: &mut Vec<String>| -> Result<String, String> {
                match positional.len() {
                    1 => Ok(positional.remove(0)),
                    _ => Err(format!("integration {sub} needs the integration's ID\n{USAGE}")),
                }
            };
            let cmd = match sub.as_str() {
                "add" | "update" => {
                    let config = one_path(&mut positional, &format!("integration {sub} needs the CONFIG file of an integration document"))?;
                    let o = CheckOptions { config, credentials: credentials(&mut flags)?, json };
                    if sub == "add" {
                        IntegrationCommand::Add(o)
                    } else {
                        IntegrationCommand::Update(o)
                    }
                }
                "test" => IntegrationCommand::Test { id: id(&mut positional)?, json },
                "show" => IntegrationCommand::Show { id: id(&mut positional)? },
                "enable" => IntegrationCommand::Enable { id: id(&mut positional)?, json },
                "disable" => IntegrationCommand::Disable { id: id(&mut positional)? },
                "remove" => IntegrationCommand::Remove { id: id(&mut positional)?, keep_secret: take(&mut flags, "keep-secret").is_some() },
                "list" => IntegrationCommand::List { json },
                other => {
                    return Err(format!(
                        "unknown integration subcommand `{other}`: use add, update, test, show, enable, disable, remove or list"
                    ))
                }
            };
            Command::Integration(cmd)
        }
        "-h" | "--help" | "help" => return Err(USAGE.to_owned()),
        other => return Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    if let Some((name, _)) = flags.first() {
        return Err(format!("unknown option --{name} for `{command}`\n{USAGE}"));
    }
    if !positional.is_empty() {
        return Err(format!("unexpected argument `{}`\n{USAGE}", positional[0]));
    }
    Ok(cmd)
}
