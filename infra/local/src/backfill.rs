//! `backfill`: one integration's source read again over `[from, to)` on a cursor of its own
//! (resumable, the live cursor never touched), with the poller's code and the functions'
//! environment. What was published before is dropped by the processor's dedup.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};
use m365_ingest::app::polling::poll::{Outcome, RunSummary};
use m365_ingest::config::PollerConfig;
use m365_ingest::lambda::poller::build_aws;
use m365_ingest::ports::{Clock, IntegrationSource};
use m365_ingest::GraphTime;

use crate::args::BackfillOptions;
use crate::Failure;

/// One run reads at most this long, so progress shows and a kill loses little.
const RUN_SLICE: Duration = Duration::from_secs(240);
/// Failed runs in a row before the backfill gives up (it resumes when run again).
const MAX_FAILURES: u32 = 5;

pub async fn run(o: BackfillOptions) -> Result<(), Failure> {
    if o.from >= o.to {
        return Err(Failure::Usage(format!("--from ({}) must be before --to ({})", o.from, o.to)));
    }
    let config = PollerConfig::from_env().map_err(|e| Failure::Usage(e.to_string()))?;
    let clients = AwsClients::new(&load_sdk_config().await);
    let app = build_aws(&config, &clients).map_err(|e| Failure::Usage(e.to_string()))?;
    let integration = app
        .integrations
        .integration(&o.integration)
        .await
        .map_err(|e| Failure::Run(e.to_string()))?
        .ok_or_else(|| Failure::Usage(format!("no integration `{}`; `integration list` shows them", o.integration)))?;
    if !integration.polls(o.source) {
        return Err(Failure::Usage(format!(
            "integration `{}` does not poll {} (disabled, or the source is not among its sources): enable it or pick one of its sources",
            o.integration, o.source
        )));
    }
    let end = o.to.min(app.poller.clock.now().minus(integration.window.ingestion_delay));
    if end < o.to {
        eprintln!("backfill: --to is within the ingestion delay; reading up to {end} now (run the same command later for the rest)");
    }
    let mut progress = Progress::new(&o, end);
    let stop_at = Instant::now() + Duration::from_secs(o.seconds);
    let (mut delivered, mut failures) = (0usize, 0u32);
    loop {
        if Instant::now() >= stop_at {
            progress.finish();
            return Err(Failure::Run(format!("stopped after {} s; run the same command to resume", o.seconds)));
        }
        // A run starts no span after its slice, and only the overall stop cuts one short.
        let s = app.poller.backfill(&integration, o.source, o.from, o.to, stop_at, Instant::now() + RUN_SLICE).await;
        delivered += s.delivered;
        progress.show(&s, delivered);
        match &s.outcome {
            Outcome::Completed if s.watermark.is_some_and(|w| w >= end) => break,
            Outcome::Completed | Outcome::Partial { .. } => failures = 0,
            Outcome::Skipped { reason } if reason.starts_with("nothing to read") => break,
            Outcome::Skipped { reason } => {
                progress.finish();
                return Err(Failure::Run(format!(
                    "{reason}: another backfill of this range is running, or one was killed (its lease expires)"
                )));
            }
            Outcome::Failed { error, retryable } => {
                failures += 1;
                if !retryable || failures >= MAX_FAILURES {
                    progress.finish();
                    return Err(Failure::Run(format!("{error} (run the same command to resume)")));
                }
                tokio::time::sleep(Duration::from_secs(1 << failures)).await;
            }
        }
    }
    progress.finish();
    println!(
        "backfill of {}/{} from {} to {end}: done, {delivered} alert versions sent to the intake queue this time",
        o.integration, o.source, o.from
    );
    Ok(())
}

/// A bar on a terminal, a line per run otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    label: String,
    from: GraphTime,
    span: i64,
}

impl Progress {
    fn new(o: &BackfillOptions, end: GraphTime) -> Self {
        let span = (end.ticks() - o.from.ticks()).max(1);
        let label = format!("{}/{}", o.integration, o.source);
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(1_000);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {percent:>3}% {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.clone());
            bar
        });
        Progress { bar, label, from: o.from, span }
    }

    fn show(&mut self, s: &RunSummary, delivered: usize) {
        let done = s.watermark.map_or(0, |w| ((w.ticks() - self.from.ticks()).clamp(0, self.span) * 1_000 / self.span) as u64);
        let at = s.watermark.map_or_else(|| "not started".to_owned(), |w| w.to_string());
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(format!("{delivered} sent, at {at}"));
            }
            None => {
                let mut err = std::io::stderr().lock();
                // Progress lines are best effort.
                let _ =
                    writeln!(err, "backfill {}: {}.{}% at {at}, {delivered} sent, {}", self.label, done / 10, done % 10, s.outcome.brief());
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}
