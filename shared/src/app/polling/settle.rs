//! Items delivered before they settled (a submission still under analysis) are re-read by id,
//! a bounded number per run and each in turn, and delivered once more when they settle; the
//! caller commits the cursor that forgets them in the same step, so a crash in between sends
//! the settled item again (the processor's dedup removes it), never loses it.

use std::time::Duration;

use crate::app::polling::deliver::{deliver, Delivered};
use crate::app::polling::origin::Context;
use crate::domain::integration::Credentials;
use crate::domain::polling::cursor::{Cursor, PendingRefused};
use crate::error::Error;
use crate::ports::{AlertQueue, ArtifactStore, GraphApi};
use crate::sources::settings::DeliverySettings;
use crate::sources::SourceSpec;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Items found settled and delivered again.
    pub settled: usize,
    /// Items Graph no longer has (404): forgotten.
    pub gone: usize,
    /// Items that had not settled within the settle time: forgotten, their verdict never sent.
    pub expired: usize,
    /// Items Graph refused to give for good (not a 404, not retryable): forgotten, logged.
    pub refused: usize,
    /// Items held for their verdict that waited the integration's `verdict_wait` for it in
    /// vain: delivered without it, still followed.
    pub waited_out: usize,
    /// Requests made.
    pub requests: usize,
    pub delivered: Delivered,
}

pub struct SettleSpec<'a> {
    pub source: &'static dyn SourceSpec,
    pub per_run: usize,
    pub within: Duration,
    /// How long an item held for its verdict waits for it (by its version) before it is
    /// delivered without it.
    pub verdict_wait: Option<Duration>,
    pub delivery: &'a DeliverySettings,
}

/// Re-reads the next round of `cursor`'s unsettled items and delivers those that settled;
/// updates `cursor` (the caller commits it). The settle time counts back from `ctx.polled_at`.
pub async fn settle_pending<G: GraphApi>(
    graph: &G,
    creds: &Credentials,
    spec: &SettleSpec<'_>,
    cursor: &mut Cursor,
    ctx: &Context<'_>,
    queue: &impl AlertQueue,
    artifacts: &impl ArtifactStore,
) -> Result<Settled, Error> {
    let held_before = cursor.held_len();
    let mut out = Settled { expired: cursor.expire_pending(ctx.polled_at.minus(spec.within)), ..Settled::default() };
    if cursor.held_len() < held_before {
        tracing::error!(
            lost = held_before - cursor.held_len(),
            "submissions held for their verdict were not reached before the settle time; they were never delivered"
        );
    }
    if out.expired > 0 {
        tracing::warn!(expired = out.expired, within = ?spec.within, "unsettled items got no verdict in time; they are no longer re-read");
    }
    let head = spec.source.head();
    let mut ready = Vec::new();
    let mut waited_out = Vec::new();
    let mut gone = Vec::new();
    let wait_ends = spec.verdict_wait.map(|w| ctx.polled_at.minus(w));
    for (id, version) in cursor.pending_round(spec.per_run) {
        let Some(path) = spec.source.item_path(&id) else {
            gone.push(id);
            continue;
        };
        out.requests += 1;
        match graph.item(creds, &path, head).await {
            Ok(None) => gone.push(id),
            // Held for a verdict that has not come in the time allowed: it goes without it.
            Ok(Some(item)) if spec.source.unsettled(&item) => {
                if cursor.is_held(&id) && wait_ends.is_some_and(|end| version < end) {
                    waited_out.push(item);
                }
            }
            Ok(Some(item)) => ready.push(item),
            // Throttled or down past the client's retries: the rest wait for the next run, and
            // the window is still read.
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "re-reading unsettled items stopped for this run");
                break;
            }
            // A held item was never delivered: a refusal (a revoked consent, an expired
            // credential) must not forget it; it is asked again next run, until its settle time.
            Err(e) if cursor.is_held(&id) => {
                tracing::warn!(%id, error = %e, "a submission held for its verdict could not be re-read; kept for the next run");
                break;
            }
            // One item Graph will not give (a 400, a 403) must not hold up the others forever.
            Err(e) => {
                tracing::warn!(%id, error = %e, "an unsettled item could not be re-read; it is no longer followed");
                out.refused += 1;
                gone.push(id);
            }
        }
    }
    out.delivered = if waited_out.is_empty() {
        deliver(&ready, ctx, queue, artifacts, spec.delivery).await?
    } else {
        let both: Vec<crate::domain::alert::Item> = ready.iter().chain(&waited_out).cloned().collect();
        deliver(&both, ctx, queue, artifacts, spec.delivery).await?
    };
    out.settled = ready.len();
    out.waited_out = waited_out.len();
    for item in &waited_out {
        cursor.unhold(&item.head.id);
    }
    out.gone = gone.len() - out.refused;
    for item in &ready {
        cursor.settle(&item.head.id);
        cursor.record(&item.head.id, item.head.version);
    }
    for id in &gone {
        cursor.settle(id);
    }
    Ok(out)
}

/// Remembers the delivered items of `source` that have not settled; returns how many could
/// not be (the cursor's list is full, or an id too long to keep): their verdict is not sent.
pub fn remember_unsettled<'a>(
    source: &dyn SourceSpec,
    cursor: &mut Cursor,
    items: impl IntoIterator<Item = &'a crate::domain::alert::Item>,
) -> usize {
    let mut refused = 0;
    for item in items {
        if source.unsettled(item) {
            if let Err(why) = cursor.add_pending(&item.head.id, item.head.version) {
                refused += 1;
                let why = match why {
                    PendingRefused::Full => "the cursor's unsettled list is full",
                    PendingRefused::LongId => "its id is too long to keep",
                };
                tracing::warn!(id = %item.head.id, why, "an unsettled item is not followed; its later verdict will not be delivered");
            }
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::value::RawValue;

    use crate::adapters::local::{DirArtifactStore, MemoryAlertQueue};
    use crate::app::polling::settle::*;
    use crate::domain::alert::{HeadSpec, Item};
    use crate::domain::integration::Credential;
    use crate::domain::time::GraphTime;
    use crate::error::GraphError;
    use crate::ports::{Page, PageRequest};
    use crate::secret::Secret;
    use crate::sources::spec;
    use crate::Source;

    /// Graph by id: `gone` is 404, `wait` still running, `done` analysed.
    struct ById;

    impl GraphApi for ById {
        async fn page(&self, _: &Credentials, r: &PageRequest) -> Result<Page, GraphError> {
            panic!("only items are read here: {r:?}")
        }
        async fn collection(&self, _: &Credentials, path: &str, _: HeadSpec) -> Result<Vec<Item>, GraphError> {
            panic!("only items are read here: {path}")
        }
        async fn content(&self, _: &Credentials, path: &str) -> Result<Option<Vec<u8>>, GraphError> {
            panic!("only items are read here: {path}")
        }
        async fn item(&self, _: &Credentials, path: &str, head: HeadSpec) -> Result<Option<Item>, GraphError> {
            let id = path.rsplit('/').next().unwrap_or_default();
            let status = match id {
                "gone" => return Ok(None),
                "bad" => return Err(GraphError::Http { api: "Graph", status: 400, code: "BadRequest".into(), message: "no".into() }),
                "busy" => {
                    return Err(GraphError::Http { api: "Graph", status: 429, code: "TooManyRequests".into(), message: "slow down".into() })
                }
                "wait" => "running",
                _ => "succeeded",
            };
            let json = format!(
                r#"{{"id":"{id}","createdDateTime":"2026-11-26T10:00:00Z","status":"{status}","result":{{"category":"phishing"}}}}"#
            );
            let raw = RawValue::from_string(json).map_err(|e| GraphError::Decode { what: "test".into(), detail: e.to_string() })?;
            Item::decode(&raw, &head).map(Some).map_err(|e| GraphError::Decode { what: "test".into(), detail: e.to_string() })
        }
    }

    #[tokio::test]
    async fn settled_items_are_sent_gone_ones_forgotten_and_waiting_ones_kept() {
        let created = GraphTime::parse("2026-11-26T10:00:00Z").unwrap_or_default();
        let mut cursor = Cursor::default();
        for id in ["done", "gone", "wait"] {
            assert_eq!(cursor.add_pending(id, created), Ok(()));
        }
        assert_eq!(cursor.add_pending("stale", created.minus(Duration::from_secs(8 * 86_400))), Ok(()));
        let creds = Credentials { tenant_id: "t".into(), client_id: "c".into(), credential: Credential::ClientSecret(Secret::new("s")) };
        let queue = MemoryAlertQueue::new();
        let dir = tempfile::tempdir().unwrap();
        let artifacts = DirArtifactStore::new(dir.path().to_owned());
        let delivery = DeliverySettings::default();
        let settle = SettleSpec {
            verdict_wait: None,
            source: spec(Source::EmailSubmissions),
            per_run: 10,
            within: Duration::from_secs(7 * 86_400),
            delivery: &delivery,
        };
        let ctx = Context {
            integration_id: "i",
            tenant_id: "t",
            source: Source::EmailSubmissions,
            polled_at: created.plus(Duration::from_secs(3600)),
        };
        let out = settle_pending(&ById, &creds, &settle, &mut cursor, &ctx, &queue, &artifacts).await.map_err(|e| e.to_string());
        let out = out.unwrap_or_default();
        assert_eq!((out.settled, out.gone, out.expired, out.requests, out.delivered.messages), (1, 1, 1, 3, 1));
        assert_eq!(cursor.pending(), [("wait", created)]);
        // One Graph refuses for good is forgotten and counted; throttling ends the round early.
        for id in ["bad", "busy", "done2"] {
            assert_eq!(cursor.add_pending(id, created), Ok(()));
        }
        let out = settle_pending(&ById, &creds, &settle, &mut cursor, &ctx, &queue, &artifacts).await.map_err(|e| e.to_string());
        let out = out.unwrap_or_default();
        assert_eq!((out.refused, out.gone, out.settled), (1, 0, 0), "{out:?}");
        let left: Vec<&str> = cursor.pending().into_iter().map(|(id, _)| id).collect();
        assert_eq!(left, ["busy", "done2", "wait"], "after the 429 the round stopped; they wait for the next run");
        assert!(cursor.already_delivered("done", created), "the settled one is remembered as delivered");
        let sent = queue.messages();
        assert!(sent.len() == 1 && sent[0].contains(r#""id":"done""#) && sent[0].contains("succeeded"), "{sent:?}");
    }
}
