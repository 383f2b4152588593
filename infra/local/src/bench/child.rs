//! One whole poll run in its own process, reporting its CPU time and peak RSS.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryCursorStore, StaticSecretSource};
use m365_ingest::app::polling::poll::{Outcome, Poller};
use m365_ingest::domain::integration::{Credential, Credentials, Integration};
use m365_ingest::ports::{PollWith, SystemClock};
use m365_ingest::secret::Secret;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::Source;
use tenant_sim::scenario::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};

/// utime + stime of this process in seconds, from /proc (clock ticks of 1/100 s on Linux).
pub fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size (VmHWM) in KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or(0)
}

pub async fn run(args: &[String]) -> ExitCode {
    let (Some(url), Some(ca), Some(n)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: poll-bench --child URL CA_FILE N");
        return ExitCode::from(2);
    };
    let ca_pem = match std::fs::read_to_string(ca) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot read {ca}: {e}");
            return ExitCode::from(2);
        }
    };
    let http = HttpSettings {
        login_base_url: url.clone(),
        graph_base_url: url.clone(),
        extra_ca_pem: Some(ca_pem),
        // CPU and memory are measured here, not Graph's pace.
        graph_rate: None,
        ..HttpSettings::default()
    };
    let graph = match MicrosoftHttp::new(&http, RetryPolicy::default()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let queue = Arc::new(MemoryAlertQueue::new().without_retention());
    let creds = Credentials {
        tenant_id: DEFAULT_TENANT_ID.into(),
        client_id: DEFAULT_CLIENT_ID.into(),
        credential: Credential::ClientSecret(Secret::new(DEFAULT_CLIENT_SECRET)),
    };
    let poller = Poller::<PollWith<_, _, _, _, _, _>> {
        graph,
        cursors: MemoryCursorStore::new(),
        queue: queue.clone(),
        artifacts: DirArtifactStore::new(std::env::temp_dir().join(format!("poll-bench-{}", std::process::id()))),
        secrets: StaticSecretSource::new().with("s", creds),
        clock: SystemClock,
        settings: PollSettings { max_pages: 100_000, ..PollSettings::default() },
    };
    let mut integration = Integration::new("bench", DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID, "s");
    integration.window.lookback = Duration::from_secs(48 * 3600);
    let before = cpu_secs();
    let s = poller.poll_one(&integration, Source::DefenderAlerts, Instant::now() + Duration::from_secs(3600)).await;
    let cpu = cpu_secs() - before;
    if s.outcome != Outcome::Completed {
        eprintln!("poll did not complete: {:?} (expected {n} alerts)", s.outcome);
        return ExitCode::FAILURE;
    }
    let out = serde_json::json!({
        "delivered": queue.len(), "pages": s.pages, "queue_calls": queue.calls(),
        "cpu_secs": cpu, "peak_rss_kib": peak_rss_kib(),
    });
    println!("{out}");
    ExitCode::SUCCESS
}
