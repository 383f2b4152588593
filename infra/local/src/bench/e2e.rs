//! `poll-bench --e2e`: CPU per alert on the path a deployment runs, beside the poller a user
//! would write instead, in the same run.
//!
//! For each size: the tenant simulator as its own process serving N alerts; DynamoDB, Secrets
//! Manager and S3 on moto; SQS answered by the soak's SQS-protocol stand-in in this process
//! (moto's SQS slows with queue depth), whose intake queues keep nothing. Then, as a user runs
//! it: `m365-ingest integration add` (Test & Save), and `m365-ingest poll --source
//! defender_alerts` as one process (dispatch, the poll job through the queue, every alert through
//! the AWS SDK's SendMessageBatch); then the Python peer (MSAL + requests + boto3) polling the
//! same tenant into its own queue. Each process is measured by the kernel (`--measure`): CPU
//! (user + system) and peak RSS of the whole process, start-up and imports included.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use m365_ingest::adapters::aws::{create_state_table, load_sdk_config, AwsClients};
use serde_json::Value;
use tenant_sim::scenario::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
use tokio::process::Command;

use super::sim_process::SimProcess;
use super::sqs::Sqs;

/// What the kernel counted for one process.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub cpu_secs: f64,
    pub sys_secs: f64,
    pub peak_rss_mib: f64,
}

pub struct Row {
    pub alerts: usize,
    /// Intake message bytes per alert (the Rust poller's; the peer's are within a few percent).
    pub message_bytes: f64,
    pub rust: Usage,
    pub python: Usage,
    /// `poll-bench --floor`: the path's transport alone (see floor.rs), this many alerts a message.
    pub floor: Usage,
    pub floor_alerts_per_message: usize,
}

/// The window both pollers read: the simulator's alerts span the last day.
const LOOKBACK_SECS: u64 = 48 * 3600;
const DELAY_SECS: u64 = 300;

fn sibling(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = me.with_file_name(name);
    if !path.exists() {
        return Err(format!("{} is missing: build it beside poll-bench (cargo build --release --bin {name})", path.display()));
    }
    Ok(path)
}

fn python() -> Result<PathBuf, String> {
    let p = std::env::var_os("BENCH_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".venv/bin/python"));
    if !p.exists() {
        return Err(format!(
            "{} is missing: the Python peer needs msal, requests and boto3 (infra/scripts/bench.sh installs them into .venv), or set BENCH_PYTHON",
            p.display()
        ));
    }
    Ok(p)
}

pub async fn run(sizes: &[usize]) -> Result<Vec<Row>, String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").map_err(|_| {
        "AWS_ENDPOINT_URL is not set: start moto first (`eval \"$(infra/scripts/moto.sh start)\"`), or use infra/scripts/bench.sh"
            .to_owned()
    })?;
    if !(endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:")) {
        return Err(format!("the benchmark runs against moto on loopback only, not {endpoint}"));
    }
    let (m365, tenant_sim, py) = (sibling("m365-ingest")?, sibling("tenant-sim")?, python()?);
    let dir = std::env::temp_dir().join(format!("poll-bench-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let aws = AwsClients::new(&load_sdk_config().await);
    let (sqs, sqs_endpoint) = Sqs::start().await?;
    let mut rows = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let run = format!("{}-{i}", std::process::id());
        let sim = SimProcess::start(&tenant_sim, &super::scenario::scenario(n), &dir).await?;
        let r = measure_pair(&Pair {
            n,
            run: &run,
            dir: &dir,
            m365: &m365,
            py: &py,
            sim: &sim,
            aws: &aws,
            sqs: &sqs,
            sqs_endpoint: &sqs_endpoint,
        })
        .await;
        sim.stop().await?;
        rows.push(r?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rows)
}

struct Pair<'a> {
    n: usize,
    run: &'a str,
    dir: &'a Path,
    m365: &'a Path,
    py: &'a Path,
    sim: &'a SimProcess,
    aws: &'a AwsClients,
    sqs: &'a Arc<Sqs>,
    sqs_endpoint: &'a str,
}

async fn measure_pair(p: &Pair<'_>) -> Result<Row, String> {
    let table = format!("bench-{}", p.run);
    create_state_table(&p.aws.dynamodb, &table).await.map_err(|e| format!("cannot create the state table: {e}"))?;
    let bucket = format!("bench-{}", p.run);
    p.aws.s3.create_bucket().bucket(&bucket).send().await.map_err(|e| format!("cannot create the bucket: {e:?}"))?;
    let poll_jobs = p.sqs.create(&format!("bench-{}-poll-jobs", p.run), Duration::from_secs(1800), None);
    let (intake_name, peer_name, floor_name) =
        (format!("bench-{}-intake", p.run), format!("bench-{}-peer", p.run), format!("bench-{}-floor", p.run));
    let intake = p.sqs.create_sink(&intake_name);
    let peer_queue = p.sqs.create_sink(&peer_name);
    let floor_queue = p.sqs.create_sink(&floor_name);
    let id = format!("bench-{}", p.run);
    let secret_id = format!("m365-ingest/{id}");
    let doc = p.dir.join(format!("{id}.toml"));
    let text = format!(
        "version = 1\nid = \"{id}\"\ntenant_id = \"{DEFAULT_TENANT_ID}\"\nclient_id = \"{DEFAULT_CLIENT_ID}\"\nsecret_ref = \"{secret_id}\"\n\
         [polling]\nlookback = \"{LOOKBACK_SECS}s\"\ningestion_delay = \"{DELAY_SECS}s\"\n[sources]\ndefender = \"alerts\"\n"
    );
    std::fs::write(&doc, text).map_err(|e| format!("cannot write {}: {e}", doc.display()))?;
    let base = &p.sim.base_url;
    let ca = p.sim.ca_file.display().to_string();
    let env: Vec<(&str, String)> = vec![
        ("STATE_TABLE", table.clone()),
        ("INTAKE_QUEUE_URL", intake),
        ("POLL_JOBS_QUEUE_URL", poll_jobs),
        ("ARTIFACT_BUCKET", bucket),
        ("LOGIN_BASE_URL", base.clone()),
        ("GRAPH_BASE_URL", base.clone()),
        ("MDE_BASE_URL", base.clone()),
        ("EXCHANGE_BASE_URL", base.clone()),
        ("EXTRA_CA_BUNDLE_FILE", ca),
        ("ALLOW_NON_MICROSOFT_HOSTS", "true".to_owned()),
        ("AWS_ENDPOINT_URL_SQS", p.sqs_endpoint.to_owned()),
        ("BENCH_CLIENT_SECRET", DEFAULT_CLIENT_SECRET.to_owned()),
    ];
    let add = Command::new(p.m365)
        .args(["integration", "add"])
        .arg(&doc)
        .args(["--client-secret-env", "BENCH_CLIENT_SECRET"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .map_err(|e| format!("cannot run m365-ingest integration add: {e}"))?;
    if !add.status.success() {
        return Err(format!(
            "m365-ingest integration add failed:\n{}{}",
            String::from_utf8_lossy(&add.stdout),
            String::from_utf8_lossy(&add.stderr)
        ));
    }
    let m365 = p.m365.display().to_string();
    // A profiler in front of the Rust run, e.g. POLL_BENCH_PROFILER="perf record -g -o perf.data --"
    // (its own overhead is then in the figures).
    let profiler = std::env::var("POLL_BENCH_PROFILER").unwrap_or_default();
    let mut cmd: Vec<&str> = profiler.split_whitespace().collect();
    cmd.extend([m365.as_str(), "poll", "--source", "defender_alerts"]);
    let rust = measured(p.dir, "rust", &cmd, &env).await?;
    let (delivered, message_bytes) = p.sqs.accepted(&intake_name);
    check_delivered("m365-ingest poll", delivered, p.n, &rust.1)?;

    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bench/python_peer.py");
    let mut peer_env = env.clone();
    peer_env.extend([
        ("PEER_SECRET_ID", secret_id),
        ("PEER_TENANT_ID", DEFAULT_TENANT_ID.to_owned()),
        ("PEER_CLIENT_ID", DEFAULT_CLIENT_ID.to_owned()),
        ("PEER_QUEUE_URL", peer_queue),
        ("PEER_STATE_TABLE", table),
        ("PEER_LOOKBACK_SECS", LOOKBACK_SECS.to_string()),
        ("PEER_DELAY_SECS", DELAY_SECS.to_string()),
    ]);
    let py = p.py.display().to_string();
    let python = measured(p.dir, "python", &[&py, peer], &peer_env).await?;
    let (delivered, _) = p.sqs.accepted(&peer_name);
    check_delivered("the Python peer", delivered, p.n, &python.1)?;

    peer_env.extend([("FLOOR_QUEUE_URL", floor_queue), ("FLOOR_ALERTS", p.n.to_string())]);
    let me = std::env::current_exe().map_err(|e| e.to_string())?.display().to_string();
    let floor = measured(p.dir, "floor", &[&me, "--floor"], &peer_env).await?;
    let (sent, _) = p.sqs.accepted(&floor_name);
    let per_message = super::floor::alerts_per_message()?;
    let expected = super::floor::messages_for(p.n, per_message);
    if sent as usize != expected {
        return Err(format!("poll-bench --floor sent {sent} messages where {expected} were due; it printed:\n{}", floor.1));
    }
    Ok(Row {
        alerts: p.n,
        message_bytes: message_bytes as f64 / p.n as f64,
        rust: rust.0,
        python: python.0,
        floor: floor.0,
        floor_alerts_per_message: per_message,
    })
}

/// Runs one command under `--measure`; returns what the kernel counted and what it printed.
async fn measured(dir: &Path, label: &str, cmd: &[&str], env: &[(&str, String)]) -> Result<(Usage, String), String> {
    let usage_file = dir.join(format!("{label}.usage.json"));
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(me)
        .arg("--measure")
        .arg(&usage_file)
        .args(cmd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", cmd[0]))?;
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("{} failed:\n{printed}{}", cmd.join(" "), String::from_utf8_lossy(&out.stderr)));
    }
    let text = std::fs::read_to_string(&usage_file).map_err(|e| format!("cannot read {}: {e}", usage_file.display()))?;
    let u: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", usage_file.display()))?;
    let f = |k: &str| u[k].as_f64().unwrap_or(0.0);
    let usage = Usage { cpu_secs: f("user_secs") + f("sys_secs"), sys_secs: f("sys_secs"), peak_rss_mib: f("peak_rss_kib") / 1024.0 };
    Ok((usage, printed))
}

fn check_delivered(who: &str, delivered: u64, n: usize, printed: &str) -> Result<(), String> {
    if delivered as usize != n {
        return Err(format!("{who} sent {delivered} messages for {n} alerts; it printed:\n{printed}"));
    }
    Ok(())
}

pub fn print(rows: &[Row]) {
    println!("whole processes on a deployment's path: `m365-ingest poll` (AWS SDK; SQS stand-in, moto) vs the Python peer (MSAL + requests + boto3)");
    println!(
        "{:>8} {:>9} {:>13} {:>9} {:>10} {:>13} {:>9} {:>10} {:>11} {:>14} {:>12}",
        "alerts",
        "B/message",
        "Rust µs/alert",
        "of it sys",
        "Rust RSS",
        "Py µs/alert",
        "of it sys",
        "Py RSS",
        "Py / Rust",
        "floor µs/alert",
        "Py / floor"
    );
    for r in rows {
        let per = |u: &Usage| u.cpu_secs * 1e6 / r.alerts as f64;
        let sys = |u: &Usage| u.sys_secs * 1e6 / r.alerts as f64;
        println!(
            "{:>8} {:>9.0} {:>13.1} {:>9.1} {:>6.1} MiB {:>13.1} {:>9.1} {:>6.1} MiB {:>10.1}× {:>14.1} {:>11.1}×",
            r.alerts,
            r.message_bytes,
            per(&r.rust),
            sys(&r.rust),
            r.rust.peak_rss_mib,
            per(&r.python),
            sys(&r.python),
            r.python.peak_rss_mib,
            per(&r.python) / per(&r.rust),
            per(&r.floor),
            per(&r.python) / per(&r.floor)
        );
    }
    println!("(CPU = user + system time of the whole process, start-up included; target: Python / Rust ≥ 20, Rust RSS ≤ 64 MiB at 100k)");
    let per_message = rows.first().map_or(1, |r| r.floor_alerts_per_message);
    let shape = if per_message == 1 { "the same messages".to_owned() } else { format!("the same bytes as {per_message} alerts a message") };
    println!("(floor = the same pages over TLS and {shape} through the SDK, nothing parsed or built: no poller on this path spends less; Py / floor is the most any can reach)");
}
