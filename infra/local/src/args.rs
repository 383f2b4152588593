//! Command-line arguments, with errors that say what to type instead.

use std::path::PathBuf;

use m365_ingest::Source;

pub const USAGE: &str = "usage: m365-ingest demo [--out DIR] [--seed N] [--alerts N]
       m365-ingest poll --source defender_alerts|defender_incidents [--seconds N]
       m365-ingest replay --source defender_alerts|defender_incidents FILE [--tenant ID] [--integration ID]
       m365-ingest process FILE [--integrations FILE]";

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

pub enum Command {
    Process(ProcessOptions),
    Demo(DemoOptions),
    Poll(PollOptions),
    Replay(ReplayOptions),
}

pub fn parse(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut args = args.peekable();
    let command = args.next().ok_or_else(|| format!("no command given\n{USAGE}"))?;
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut positional: Vec<String> = Vec::new();
    while let Some(a) = args.next() {
        if let Some(name) = a.strip_prefix("--") {
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
        v.ok_or_else(|| "--source is required: defender_alerts or defender_incidents".to_owned())?
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
