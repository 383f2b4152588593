//! Items delivered before they settled (a submission still under analysis) are re-read by id,
//! a bounded number per run and each in turn, and delivered once more when they settle; the
//! caller commits the cursor that forgets them in the same step, so a crash in between sends
//! the settled item again (the processor's dedup removes it), never loses it.

use std::time::Duration;

use super::deliver::{deliver, Context, Delivered, DeliverySettings};
use crate::domain::cursor::{Cursor, PendingRefused};
use crate::domain::integration::Credentials;
use crate::error::Error;
use crate::ports::{AlertQueue, ArtifactStore, GraphApi};
use crate::sources::SourceSpec;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Items found settled and delivered again.
    pub settled: usize,
    /// Items Graph no longer has (404): forgotten.
    pub gone: usize,
    /// Items that had not settled within the settle time: forgotten, their verdict never sent.
    pub expired: usize,
    /// Requests made.
    pub requests: usize,
    pub delivered: Delivered,
}

pub struct SettleSpec<'a> {
    pub source: &'static dyn SourceSpec,
    pub per_run: usize,
    pub within: Duration,
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
    let mut out = Settled { expired: cursor.expire_pending(ctx.polled_at.minus(spec.within)), ..Settled::default() };
    if out.expired > 0 {
        tracing::warn!(expired = out.expired, within = ?spec.within, "unsettled items got no verdict in time; they are no longer re-read");
    }
    let head = spec.source.head();
    let mut ready = Vec::new();
    let mut gone = Vec::new();
    for (id, _) in cursor.pending_round(spec.per_run) {
        let Some(path) = spec.source.item_path(&id) else {
            gone.push(id);
            continue;
        };
        out.requests += 1;
        match graph.item(creds, &path, head).await? {
            None => gone.push(id),
            Some(item) if spec.source.unsettled(&item) => {}
            Some(item) => ready.push(item),
        }
    }
    out.delivered = deliver(&ready, ctx, queue, artifacts, spec.delivery).await?;
    out.settled = ready.len();
    out.gone = gone.len();
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
