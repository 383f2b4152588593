//! `poll-bench --measure FILE CMD [ARGS...]`: runs one command as this process's only child and
//! writes what the kernel counted for it to FILE as JSON: user and system CPU seconds and peak
//! RSS (`getrusage(RUSAGE_CHILDREN)` after the wait, exact where sampling /proc would miss the
//! end). The end-to-end benchmark measures the Rust poller and the Python peer through it.

use std::process::{Command, ExitCode};

use nix::sys::resource::{getrusage, UsageWho};

pub fn run(args: &[String]) -> ExitCode {
    let (Some(out), Some(cmd)) = (args.first(), args.get(1)) else {
        eprintln!("usage: poll-bench --measure FILE CMD [ARGS...]");
        return ExitCode::from(2);
    };
    let status = match Command::new(cmd).args(&args[2..]).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("poll-bench --measure: cannot start {cmd}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let usage = match getrusage(UsageWho::RUSAGE_CHILDREN) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("poll-bench --measure: getrusage: {e}");
            return ExitCode::FAILURE;
        }
    };
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let report = serde_json::json!({
        "exit_code": status.code(),
        "user_secs": secs(usage.user_time()),
        "sys_secs": secs(usage.system_time()),
        // Linux counts ru_maxrss in KiB.
        "peak_rss_kib": usage.max_rss(),
    });
    if let Err(e) = std::fs::write(out, report.to_string()) {
        eprintln!("poll-bench --measure: cannot write {out}: {e}");
        return ExitCode::FAILURE;
    }
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
