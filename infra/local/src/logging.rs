//! The local program's logs: what `RUST_LOG` (or `LOG`) asks for goes to stderr; without
//! either, the command's default. Warnings and the retries Microsoft asked for (the adapters
//! mark those events `expected_retry`) are counted whatever is printed, so a run's summary can
//! say how many there were instead of printing one line per retry.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, EnvFilter, Layer};

static WARNINGS: AtomicU64 = AtomicU64::new(0);
static EXPECTED_RETRIES: AtomicU64 = AtomicU64::new(0);

/// Logs to stderr at the level `RUST_LOG` or `LOG` sets, else at `default` (e.g. "warn").
pub fn init(default: &str) {
    let printed =
        EnvFilter::try_from_env("RUST_LOG").or_else(|_| EnvFilter::try_from_env("LOG")).unwrap_or_else(|_| EnvFilter::new(default));
    let shown = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_filter(printed);
    // The counter sees warnings everywhere and the adapters' debug lines it looks for.
    let counted =
        Counter.with_filter(filter::Targets::new().with_default(Level::WARN).with_target("m365_ingest::adapters::graph", Level::DEBUG));
    tracing_subscriber::registry().with(shown).with(counted).init();
}

/// Warnings (and errors) logged so far, printed or not.
pub fn warnings() -> u64 {
    WARNINGS.load(Ordering::Relaxed)
}

/// Retries Microsoft asked for (throttling with a Retry-After, a token refreshed) so far.
pub fn expected_retries() -> u64 {
    EXPECTED_RETRIES.load(Ordering::Relaxed)
}

struct Counter;

impl<S: Subscriber> Layer<S> for Counter {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() <= Level::WARN {
            WARNINGS.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut message = Message(false);
        event.record(&mut message);
        if message.0 {
            EXPECTED_RETRIES.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether an event is marked `expected_retry = true`.
struct Message(bool);

impl Visit for Message {
    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "expected_retry" {
            self.0 = value;
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_retries_are_counted_and_warnings_apart() {
        let subscriber = tracing_subscriber::registry().with(Counter.with_filter(filter::Targets::new().with_default(Level::DEBUG)));
        let (w, r) = (warnings(), expected_retries());
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(expected_retry = true, api = "Graph", attempt = 1, "throttled, retrying as asked");
            tracing::debug!(expected_retry = true, api = "Graph", "token refused, refreshing once");
            tracing::debug!(expected_retry = false, "something else");
            tracing::debug!("and something else");
            tracing::warn!(api = "Graph", "request failed, retrying");
            tracing::error!("broken");
        });
        assert_eq!((warnings() - w, expected_retries() - r), (2, 2));
    }
}
