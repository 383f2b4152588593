//! `poll-bench`: measures the poll path and prints ratios from one run (never a timed test).
//!
//! 1. CPU per alert of the poll path's own work on a page (decode the heads and raw bytes, skip
//!    what was delivered, build and batch the envelopes, advance the cursor) against merely
//!    parsing the same bytes into a `serde_json::Value`, in this process, same pages.
//! 2. Whole poll runs in child processes (so their memory is theirs alone) against the
//!    simulator in this one: peak RSS for 1k and 100k alerts, CPU per alert including TLS and
//!    HTTP, and Graph requests and queue calls against the minimum (⌈N/1000⌉, ⌈N/10⌉).
//!
//! `cargo run --release --bin poll-bench [-- --sizes 1000,10000,100000]`
//! `cargo run --release --bin poll-bench -- --init target/release/bootstrap:poller target/release/bootstrap:processor`
//! `cargo run --release --bin poll-bench -- --budget` (moto running): per-tenant request budgets.
//! `cargo run --release --bin poll-bench -- --e2e [--sizes 20000,100000]` (moto running): whole
//! processes on a deployment's path beside the Python peer (`infra/scripts/bench.sh` does all).

mod budget;
mod child;
mod cpu;
mod e2e;
mod floor;
mod init;
mod measure;
mod scenario;
#[path = "../soak/sim_process.rs"]
mod sim_process;
#[path = "../soak/sqs.rs"]
mod sqs;

use std::process::{Command, ExitCode};

use serde_json::Value;

#[tokio::main]
async fn main() -> ExitCode {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child::run(&args[1..]).await;
    }
    if args.first().map(String::as_str) == Some("--measure") {
        return measure::run(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--floor") {
        // Its own one-thread runtime, as `m365-ingest` runs, on a thread of its own.
        let floor = std::thread::spawn(floor::run).join().unwrap_or_else(|_| Err("the floor panicked".into()));
        return match floor {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("poll-bench --floor: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.first().map(String::as_str) == Some("--budget") {
        return match budget::run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("poll-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.first().map(String::as_str) == Some("--init") {
        for binary in &args[1..] {
            let path = binary.rsplit_once(':').map_or(binary.as_str(), |(path, _)| path);
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            match init::measure(binary, 15) {
                Ok(ms) => println!("{binary}: {:.1} MB, init {ms:.1} ms (median of 15 starts, no network)", size as f64 / 1e6),
                Err(e) => {
                    eprintln!("poll-bench: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        return ExitCode::SUCCESS;
    }
    let sizes: Vec<usize> = match args.iter().position(|a| a == "--sizes").and_then(|i| args.get(i + 1)) {
        Some(list) => match list.split(',').map(str::parse).collect() {
            Ok(v) => v,
            Err(_) => {
                eprintln!("poll-bench: --sizes takes numbers like 1000,100000");
                return ExitCode::from(2);
            }
        },
        None if args.iter().any(|a| a == "--e2e") => vec![20_000, 100_000],
        None => vec![1_000, 10_000, 100_000],
    };
    if args.iter().any(|a| a == "--e2e") {
        return match e2e::run(&sizes).await {
            Ok(rows) => {
                e2e::print(&rows);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("poll-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&sizes).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("poll-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(sizes: &[usize]) -> Result<(), String> {
    let cpu = cpu::measure(10_000).await?;
    println!(
        "poll path CPU vs parsing the same bytes (10,000 alerts, {:.1} KB average, median of {} rounds)",
        cpu.avg_alert_bytes / 1024.0,
        cpu.rounds
    );
    println!("  serde_json::Value parse  {:>8.2} µs/alert", cpu.parse_us);
    println!("  poll path work           {:>8.2} µs/alert", cpu.path_us);
    println!("  ratio                    {:>8.2}   (target ≤ 1.5)", cpu.path_us / cpu.parse_us);
    println!();
    println!("whole runs in a child process, simulator in this one");
    println!(
        "{:>8} {:>10} {:>13} {:>15} {:>10} {:>7} {:>12} {:>7}",
        "alerts", "peak RSS", "CPU µs/alert", "CPU vs parse", "Graph req", "/ min", "queue calls", "/ min"
    );
    let mut rss = Vec::new();
    for &n in sizes {
        let (sim, ca) = scenario::start(n).await?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = Command::new(exe)
            .args(["--child", sim.base_url(), &ca.display().to_string(), &n.to_string()])
            .output()
            .map_err(|e| format!("cannot start the child: {e}"))?;
        if !out.status.success() {
            return Err(format!("child for {n} alerts failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let r: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("child output: {e}"))?;
        let delivered = r["delivered"].as_u64().unwrap_or(0) as usize;
        if delivered != n {
            return Err(format!("the child delivered {delivered} of {n} alerts"));
        }
        let graph = sim.requests().count("/v1.0/security/alerts_v2");
        let cpu_us = r["cpu_secs"].as_f64().unwrap_or(0.0) * 1e6 / n as f64;
        let rss_mib = r["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0;
        rss.push(rss_mib);
        let calls = r["queue_calls"].as_u64().unwrap_or(0) as f64;
        println!(
            "{:>8} {:>6.1} MiB {:>13.1} {:>15.2} {:>10} {:>7.3} {:>12} {:>7.3}",
            n,
            rss_mib,
            cpu_us,
            cpu_us / cpu.parse_us,
            graph,
            graph as f64 / n.div_ceil(1000) as f64,
            calls,
            calls / n.div_ceil(10) as f64
        );
        sim.shutdown().await;
    }
    if let (Some(first), Some(last)) = (rss.first(), rss.last()) {
        println!("peak RSS, largest run / smallest run: {:.2}", last / first);
    }
    if rss.len() >= 3 {
        let (a, b) = (rss[rss.len() - 2], rss[rss.len() - 1]);
        println!("peak RSS, largest run / the one before: {:.2} (flat = 1.00; target: flat in N and under 64 MiB)", b / a);
    }
    Ok(())
}
