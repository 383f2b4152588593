//! A run's reading: the window span by span, each delivered and committed once complete,
//! after the unsettled items the cursor follows.

use std::time::Instant;

use super::{Poller, RunEnd, RunSummary, SLICE_ENDED};
use crate::app::polling::deliver::deliver;
use crate::app::polling::item_json::with_children;
use crate::app::polling::origin::Context;
use crate::app::polling::quarantine::quarantine;
use crate::app::polling::reported_email::annotate;
use crate::app::polling::settle::{remember_unsettled, settle_pending, SettleSpec};
use crate::app::polling::span::{read_span, SpanSpec};
use crate::domain::alert::Item;
use crate::domain::integration::Integration;
use crate::domain::polling::window::{backfill_window, next_span_end, split_point, window, PagingError, Window};
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::{Error, GraphError};
use crate::ports::{CursorKey, CursorStore, GraphApi, Lane, PollPorts, SecretSource};

impl<P: PollPorts> Poller<P> {
    /// Reads the window span by span (window.rs), delivering and committing each span once it
    /// is proven complete.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run(
        &self,
        integration: &Integration,
        source: Source,
        key: &CursorKey,
        leased: crate::ports::Leased,
        now: GraphTime,
        (deadline, slice_end): (Instant, Option<Instant>),
        summary: &mut RunSummary,
    ) -> Result<RunEnd, Error> {
        let mut cursor = leased.cursor;
        let mut version = leased.version;
        let win = match key.lane {
            Lane::Live => window(&cursor, now, &integration.window),
            Lane::Backfill { from, to } => backfill_window(&cursor, now, &integration.window, from, to),
        };
        let kind = crate::sources::spec(source);
        // Only the live cursor follows unsettled items; a backfill delivers what it reads.
        let settling = key.lane == Lane::Live && cursor.pending_len() > 0;
        if win.is_none() && !settling {
            return Ok(RunEnd::NothingToRead);
        }
        let creds = self.secrets.load(&integration.secret_ref).await?;
        if !integration.owns(&creds) {
            // Another integration's secret (a crossed secret_ref): polling with it would read
            // another tenant's alerts under this integration's name.
            return Err(Error::Config(crate::error::ConfigError::CrossedSecret {
                integration: integration.id.clone(),
                secret_ref: integration.secret_ref.clone(),
                tenant_id: creds.tenant_id.clone(),
                client_id: creds.client_id.clone(),
            }));
        }
        kind.ready(integration)?;
        if let Some(why) = self.settings.cloud.unavailable(crate::domain::permissions::Feature::of_source(source)) {
            return Err(Error::Config(crate::error::ConfigError::Invalid {
                name: format!("integration `{}` sources.{source}", integration.id),
                value: "on".into(),
                hint: format!("{why}; this deployment serves {}: turn the source off (integration update)", self.settings.cloud.name()),
            }));
        }
        let top = kind.page_size(&self.settings).max(1);
        // The window field's smallest step (Cloud Apps counts milliseconds, Graph 100 ns ticks).
        let granularity = kind.granularity();
        let mut spec = SpanSpec {
            source: kind,
            integration,
            top,
            max_skip: kind.max_skip(&self.settings),
            max_items: top.saturating_mul(self.settings.max_span_pages.max(1)),
            tie_passes: self.settings.tie_passes,
        };
        let mut expand = kind.expands();
        // What a span should hold: whole pages, as many as fit in the span's limit with room to
        // spare for estimates that miss (so a span costs ⌈items / top⌉ requests, not one more for
        // a sliver), or one page once the API showed that only a single response can be trusted.
        let mut target = span_target(&spec);
        // No read runs into the safety margin; no send into the part of it kept for the commit
        // and the lease release (each bounded by the SDK's operation timeout).
        let read_by = deadline.checked_sub(self.settings.safety_margin).unwrap_or_else(Instant::now);
        let send_by = deadline.checked_sub(self.settings.safety_margin / 2).unwrap_or_else(Instant::now);
        let ctx = Context { integration_id: &integration.id, tenant_id: &integration.tenant_id, source, polled_at: now };
        if settling {
            let spec = SettleSpec {
                source: kind,
                per_run: self.settings.settle_per_run,
                within: self.settings.settle_within,
                // Within the time items are followed at all, with room for rounds to reach them.
                verdict_wait: kind.verdict_wait(integration).map(|w| w.min(self.settings.settle_within / 2)),
                delivery: &self.settings.delivery,
            };
            let settling = settle_pending(&self.graph, &creds, &spec, &mut cursor, &ctx, &self.queue, &self.artifacts);
            let Ok(settled) = tokio::time::timeout_at(read_by.into(), settling).await else {
                return Ok(RunEnd::Stopped("stopped before the Lambda deadline (unsettled items were being re-read)".into()));
            };
            let settled = settled?;
            version = self.cursors.commit(key, &self.settings.owner, version, &cursor).await?;
            summary.pages += settled.requests;
            summary.verdicts += settled.settled;
            summary.verdicts_waited_out += settled.waited_out;
            summary.unsettled_dropped += settled.expired + settled.refused;
            summary.delivered += settled.delivered.messages;
            summary.claim_checks += settled.delivered.claim_checks;
            summary.batches += settled.delivered.batches;
            summary.quarantined += settled.delivered.quarantined;
            tracing::debug!(settled = settled.settled, gone = settled.gone, expired = settled.expired, "unsettled items re-read");
        }
        let Some(win) = win else {
            return Ok(RunEnd::Done);
        };
        let mut span = win;
        let mut requests = 0usize;
        let cap = kind.request_cap(&self.settings);
        // Requests this run spent on items' own retrievals.
        let mut fetched = 0usize;
        // The last too-large span's start and count: a cut that removed nothing is stuck on a tie.
        let mut last_split: Option<(GraphTime, Option<usize>)> = None;
        loop {
            if Instant::now() + self.settings.safety_margin >= deadline {
                return Ok(RunEnd::Stopped("stopped before the Lambda deadline".into()));
            }
            if requests >= cap {
                return Ok(RunEnd::Stopped(format!("request cap of {cap} reached")));
            }
            let single_step = span.to.ticks() - span.from.ticks() <= granularity;
            // Reading stops at the margin, whatever a request or a retry's wait is doing then;
            // what was committed before stays committed.
            let reading = read_span(&self.graph, &creds, &spec, span, single_step, expand, cap - requests);
            let Ok(read) = tokio::time::timeout_at(read_by.into(), reading).await else {
                return Ok(RunEnd::Stopped("stopped before the Lambda deadline (a read was under way)".into()));
            };
            let read = read?;
            requests += read.requests;
            summary.pages += read.requests;
            if read.expand_dropped {
                expand = false;
                continue;
            }
            if let Some(e) = read.too_large {
                if spec.top == 1 {
                    return Err(e.into());
                }
                // Items this large (hundreds of evidence each): half as many per request.
                spec.top = (spec.top / 2).max(1);
                spec.max_items = spec.top.saturating_mul(self.settings.max_span_pages.max(1));
                target = target.min(span_target(&spec));
                tracing::warn!(top = spec.top, "a page was larger than the body limit; asking for fewer items");
                continue;
            }
            if !read.complete {
                if read.requests == 0 || requests >= cap {
                    return Ok(RunEnd::Stopped(format!("request cap of {cap} reached")));
                }
                if single_step {
                    let limit = read.count.unwrap_or(read.items.len());
                    return Err(GraphError::from(PagingError::TieTooLarge { at: span.from, limit }).into());
                }
                if read.count.is_none_or(|c| c <= spec.max_items) {
                    // Within what paging should reach, yet incomplete: this API's pages cannot be
                    // chained here (no link, `$skip` capped, order not kept). One response per span.
                    let one_page = read.largest_page.max(1);
                    target = target.min((one_page * 9 / 10).max(1));
                }
                let stuck = last_split == Some((span.from, read.count));
                last_split = Some((span.from, read.count));
                let cut = split_point(span.from, span.to, &read.sample, read.count, target, granularity, stuck);
                tracing::debug!(count = ?read.count, got = read.items.len(), from = %span.from, cut = %cut, "span too large, split");
                span = Window { from: span.from, to: cut };
                continue;
            }
            for r in &read.rejects {
                // Remembered by its bytes like a delivered version, so the overlap's re-read
                // does not set it aside (and alarm) again.
                let key = format!("\0{}", r.key());
                if !cursor.already_delivered(&key, GraphTime::default()) {
                    quarantine(&self.artifacts, &ctx, &r.raw, &r.reason).await?;
                    summary.quarantined += 1;
                }
                cursor.record(&key, span.to);
            }
            let received = read.items.len() + read.rejects.len();
            let decoded = read.items.len();
            let mut fresh: Vec<Item> = read.items.into_iter().filter(|i| !cursor.already_delivered(&i.head.id, i.head.version)).collect();
            summary.suppressed += decoded - fresh.len();
            // Nobody promised an order: deliver oldest first by our own sort.
            fresh.sort_by(|a, b| (a.head.version, &a.head.id).cmp(&(b.head.version, &b.head.id)));
            // What the items' own retrievals cost (a report's email): as many items as the cap
            // and the time allow are fetched and sent, oldest first (at least one per run); the
            // span is committed that far with its watermark unmoved (the sent ones remembered),
            // and the next run sends the rest, so a span of any size makes progress.
            let per_item = kind.requests_per_item();
            let take = match per_item {
                0 => fresh.len(),
                n => fresh.len().min((cap.saturating_sub(requests) / n).max(usize::from(fetched == 0))),
            };
            if take == 0 && !fresh.is_empty() {
                return Ok(RunEnd::Stopped(format!("request cap of {cap} reached")));
            }
            // Fetching alerts and sending end by the commit reserve; a span cut short is not
            // committed and is sent again by the next run (duplicates, never a gap).
            let sending = async {
                let (mut ready, mut missing) = (0, 0);
                for item in &mut fresh[..take] {
                    if ready > 0 && per_item > 0 && Instant::now() >= read_by {
                        break;
                    }
                    if let Some(children) = kind.children(item).filter(|_| !expand) {
                        let found = self.graph.collection(&creds, &children.path, children.head).await?;
                        item.raw = with_children(&item.raw, children.member, &found)?;
                    }
                    if let Some(at) = kind.reported_email(integration, item) {
                        missing += usize::from(!annotate(&self.graph, &creds, &self.artifacts, &ctx, &at, item).await?);
                    }
                    ready += 1;
                }
                // Submissions waiting for a verdict the integration may exclude go out later
                // (settle.rs), as many as the cursor can follow; the rest now.
                let mut held = std::collections::BTreeSet::new();
                if key.lane == Lane::Live {
                    let mut room = cursor.pending_room();
                    for i in fresh[..ready].iter().filter(|i| kind.held_for_verdict(integration, i)) {
                        if room > 0 && cursor.fits_pending(&i.head.id) {
                            room -= 1;
                            held.insert(i.head.id.clone());
                        }
                    }
                }
                let delivered = if held.is_empty() {
                    deliver(&fresh[..ready], &ctx, &self.queue, &self.artifacts, &self.settings.delivery).await
                } else {
                    let now: Vec<Item> = fresh[..ready].iter().filter(|i| !held.contains(&i.head.id)).cloned().collect();
                    deliver(&now, &ctx, &self.queue, &self.artifacts, &self.settings.delivery).await
                };
                delivered.map(|d| (ready, missing, d, held))
            };
            let Ok(d) = tokio::time::timeout_at(send_by.into(), sending).await else {
                return Ok(RunEnd::Stopped("stopped before the Lambda deadline (a span was being sent; it is sent again next run)".into()));
            };
            let (ready, missing, d, held) = d?;
            let sent = &fresh[..ready];
            requests += ready * per_item;
            summary.pages += ready * per_item;
            fetched += ready * per_item;
            for item in sent {
                cursor.record(&item.head.id, item.head.version);
            }
            if key.lane == Lane::Live {
                summary.unsettled_dropped += remember_unsettled(kind, &mut cursor, sent);
                for id in &held {
                    cursor.hold(id);
                }
                summary.held_for_verdict += held.len();
            }
            // Everything before the span was delivered; of the span, what was sent.
            let whole = ready == fresh.len();
            cursor.advance(if whole { span.to } else { span.from }, integration.window.overlap, self.settings.max_recent);
            version = self.cursors.commit(key, &self.settings.owner, version, &cursor).await?;
            summary.delivered += d.messages;
            summary.claim_checks += d.claim_checks;
            summary.batches += d.batches;
            summary.quarantined += d.quarantined;
            summary.reported_emails_missing += missing;
            if !whole {
                summary.watermark = cursor.watermark;
                return Ok(RunEnd::Stopped(format!(
                    "{ready} of a span's {} items sent before the request cap of {cap} or the deadline; the next run sends the rest",
                    fresh.len()
                )));
            }
            summary.watermark = cursor.watermark;
            tracing::debug!(items = fresh.len(), delivered = d.messages, watermark = ?cursor.watermark, "span committed");
            if span.to >= win.to {
                return Ok(RunEnd::Done);
            }
            if slice_end.is_some_and(|end| Instant::now() >= end) {
                return Ok(RunEnd::Stopped(SLICE_ENDED.into()));
            }
            let next_to = next_span_end(span, received, win.to, target, granularity);
            span = Window { from: span.to, to: next_to };
        }
    }
}

/// Items a span aims at: where a count proves a span, one page less 10%; otherwise the whole
/// pages that fit in 90% of its limit, less 3% for late arrivals.
fn span_target(spec: &SpanSpec<'_>) -> usize {
    if !spec.source.count_optional() {
        // A count proves one response (span.rs): a span is sized to one page, with room to
        // spare for estimates that miss.
        return (spec.top * 9 / 10).max(1);
    }
    let pages = (spec.max_items * 9 / 10 / spec.top.max(1)).max(1);
    (pages * spec.top * 97 / 100).max(1)
}
