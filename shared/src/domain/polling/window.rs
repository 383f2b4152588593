//! The read window of one poll, and how it is cut into spans that can be read completely.
//!
//! Microsoft promises neither an order for `alerts_v2` (`$orderby` is undocumented there) nor a
//! stable order of equal timestamps between requests, and a page shorter than `$top` does not
//! prove the end. What it does document is `$count`: the number of items that match the
//! filter. So a span `[from, to)` counts as read only when the distinct items received reach
//! that count; a span that holds more than can be read is split by time, never paged past with
//! offsets whose order nobody promised. Items are ordered client-side before delivery.

use std::time::Duration;

use crate::domain::polling::cursor::Cursor;
use crate::domain::time::GraphTime;

/// Timing settings of a source for one integration (DESIGN.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSettings {
    /// First run reads this far back.
    pub lookback: Duration,
    /// Graph shows alerts minutes after their `lastUpdateDateTime`; the window ends this long ago.
    pub ingestion_delay: Duration,
    /// Each run re-reads this far behind the watermark to catch late arrivals.
    pub overlap: Duration,
}

/// `[from, to)` on the source's window field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: GraphTime,
    pub to: GraphTime,
}

/// The window to read now, or None when the delay leaves nothing new to read yet.
pub fn window(cursor: &Cursor, now: GraphTime, s: &WindowSettings) -> Option<Window> {
    let from = match cursor.watermark {
        Some(w) => w.minus(s.overlap),
        None => now.minus(s.lookback),
    };
    let to = now.minus(s.ingestion_delay);
    (from < to).then_some(Window { from, to })
}

/// A backfill's next window: from where it stopped (or its start) to its end, and never past
/// now minus the ingestion delay. No overlap: the range is history, and what changes later is
/// the live cursor's.
pub fn backfill_window(cursor: &Cursor, now: GraphTime, s: &WindowSettings, from: GraphTime, to: GraphTime) -> Option<Window> {
    let start = cursor.watermark.map_or(from, |w| w.max(from));
    let end = to.min(now.minus(s.ingestion_delay));
    (start < end).then_some(Window { from: start, to: end })
}

/// Why paging cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    #[error(
        "more than {limit} items share the timestamp {at}; they cannot be read completely (split by time is impossible, paging is capped)"
    )]
    TieTooLarge { at: GraphTime, limit: usize },
    #[error("the API returned the same next link twice; stopping instead of looping")]
    RepeatedLink,
    #[error("a response linked to {origin}, not to the configured {expected}; the link was not followed and no token was sent there")]
    ForeignLink { origin: String, expected: String },
    #[error("{api} did not say how many items match (no {field} although it was asked for), so no page can prove a window complete")]
    NoCount { api: &'static str, field: &'static str },
}

/// Whether a span was read completely: the distinct items received reach the number the API
/// said match. Without a count nothing is proven.
pub fn is_complete(distinct: usize, count: Option<usize>) -> bool {
    count.is_some_and(|n| distinct >= n)
}

/// Where to cut the span `[from, to)` that held `count` items, more than one read returns,
/// so that `[from, cut)` holds about `target`. `sample` is what a response returned, in the
/// order it came; `granularity` is the smallest step of the window field (1 tick for Graph,
/// 1 ms for Cloud Apps). The result is strictly inside the span and at least one step past
/// `from`; correctness never depends on it, only the number of requests does. `stuck` says
/// the last cut at this `from` left the count as it was (the items sit together, a tie): then
/// the cut closes in on the sample itself.
pub fn split_point(
    from: GraphTime,
    to: GraphTime,
    sample: &[GraphTime],
    count: Option<usize>,
    target: usize,
    granularity: i64,
    stuck: bool,
) -> GraphTime {
    let min_cut = GraphTime::from_ticks(from.ticks().saturating_add(granularity));
    let mut sorted: Vec<GraphTime> = sample.iter().copied().filter(|v| *v >= from && *v < to).collect();
    let returned_ascending = sample.windows(2).all(|w| w[0] <= w[1]);
    sorted.sort_unstable();
    let target = target.max(1);
    let guess = if sorted.is_empty() {
        None
    } else if stuck {
        // Before the sample's last timestamp (so a tie there is left to a span of its own),
        // or, where the whole sample sits on `from`, one step: the tie alone.
        let last = sorted[sorted.len() - 1];
        Some(if last > from { last } else { from })
    } else if returned_ascending && target < sorted.len() {
        // Asked order honoured: the sample is most likely the span's first items.
        Some(sorted[target])
    } else if returned_ascending {
        // The first items end at `last`; the count says how many lie between it and `to`.
        // Spread evenly there, `target` is reached this far past `last`.
        let last = sorted[sorted.len() - 1];
        let rest = count.unwrap_or(sorted.len() * 2).saturating_sub(sorted.len()).max(1) as i128;
        let more = i128::from(to.ticks() - last.ticks()) * (target - sorted.len()) as i128 / rest;
        Some(GraphTime::from_ticks(last.ticks().saturating_add(i64::try_from(more).unwrap_or(i64::MAX / 2)).saturating_add(granularity)))
    } else {
        // Any other order: the sample stands for the whole span; take the quantile.
        let n = count.unwrap_or(sorted.len()).max(sorted.len());
        let j = (sorted.len() as u128 * target as u128 / n as u128) as usize;
        Some(sorted[j.min(sorted.len() - 1)])
    };
    let midpoint = GraphTime::from_ticks(from.ticks() + (to.ticks() - from.ticks()) / 2);
    // Whole steps past `from`, rounded down: a cut never lands on or past `to`, so every split
    // shrinks the span.
    let inside = |t: GraphTime| {
        let c = align_down(t, from, granularity).max(min_cut);
        (c < to).then_some(c)
    };
    let cut = match guess {
        // The sample sits on `from` (a tie there): isolate it.
        Some(g) if g <= from => Some(min_cut),
        Some(g) => inside(g),
        None => None,
    };
    cut.or_else(|| inside(midpoint)).unwrap_or(min_cut).min(to)
}

/// The end of the next span to try after `[from, to)` was read with `items` items: a span of
/// the same density holding about `target`, within `end`. An empty span doubles.
pub fn next_span_end(read: Window, items: usize, end: GraphTime, target: usize, granularity: i64) -> GraphTime {
    let width = (read.to.ticks() - read.from.ticks()).max(granularity) as i128;
    let next = if items == 0 { width * 2 } else { width * target.max(1) as i128 / items as i128 };
    let next = next.clamp(i128::from(granularity), i128::from(i64::MAX / 2)) as i64;
    let from = read.to;
    if end.ticks() - from.ticks() <= next {
        return end;
    }
    align(GraphTime::from_ticks(from.ticks() + next), from, granularity).min(end)
}

/// Rounds `t` down to a whole number of `granularity` steps past `from`.
fn align_down(t: GraphTime, from: GraphTime, granularity: i64) -> GraphTime {
    if granularity <= 1 {
        return t;
    }
    let steps = (t.ticks() - from.ticks()).div_euclid(granularity);
    GraphTime::from_ticks(from.ticks() + steps * granularity)
}

/// Rounds `t` up to a whole number of `granularity` steps past `from`.
fn align(t: GraphTime, from: GraphTime, granularity: i64) -> GraphTime {
    if granularity <= 1 {
        return t;
    }
    let steps = (t.ticks() - from.ticks() + granularity - 1).div_euclid(granularity);
    GraphTime::from_ticks(from.ticks() + steps.max(1) * granularity)
}

#[cfg(test)]
mod tests {
    use crate::domain::polling::window::*;

    fn t(s: i64) -> GraphTime {
        GraphTime::from_unix_seconds(s)
    }

    const S: WindowSettings = WindowSettings {
        lookback: Duration::from_secs(86_400),
        ingestion_delay: Duration::from_secs(300),
        overlap: Duration::from_secs(900),
    };

    #[test]
    fn first_run_looks_back_then_overlaps_the_watermark() {
        let now = t(100_000);
        assert_eq!(window(&Cursor::default(), now, &S), Some(Window { from: t(100_000 - 86_400), to: t(99_700) }));
        let c = Cursor::at(t(99_000));
        assert_eq!(window(&c, now, &S), Some(Window { from: t(98_100), to: t(99_700) }));
    }

    #[test]
    fn a_backfill_walks_its_range_without_overlap_and_stops_at_its_end() {
        let now = t(100_000);
        assert_eq!(backfill_window(&Cursor::default(), now, &S, t(10_000), t(20_000)), Some(Window { from: t(10_000), to: t(20_000) }));
        assert_eq!(backfill_window(&Cursor::at(t(15_000)), now, &S, t(10_000), t(20_000)), Some(Window { from: t(15_000), to: t(20_000) }));
        assert_eq!(backfill_window(&Cursor::at(t(20_000)), now, &S, t(10_000), t(20_000)), None, "done");
        // An end in the future is held to the ingestion delay, as the live window is.
        assert_eq!(backfill_window(&Cursor::default(), now, &S, t(90_000), t(200_000)), Some(Window { from: t(90_000), to: t(99_700) }));
    }

    #[test]
    fn nothing_to_read_inside_the_delay() {
        let c = Cursor::at(t(100_000));
        assert_eq!(window(&c, t(100_100), &WindowSettings { overlap: Duration::ZERO, ..S }), None);
    }

    #[test]
    fn only_a_count_proves_a_span_complete() {
        assert!(is_complete(3, Some(3)));
        assert!(is_complete(4, Some(3)), "an item that left the span while it was read");
        assert!(!is_complete(2, Some(3)), "a short page is not the end");
        assert!(!is_complete(1000, None));
    }

    #[test]
    fn an_ascending_sample_is_cut_after_the_target() {
        let sample: Vec<GraphTime> = (0..10).map(|i| t(100 + i)).collect();
        assert_eq!(split_point(t(100), t(1000), &sample, Some(50), 8, 1, false), t(108));
    }

    #[test]
    fn an_ascending_sample_smaller_than_the_target_is_extrapolated() {
        // The first ten of 110 end at 600 s; the other 100 lie in the 400 s after: five more
        // reach 20 s past the last.
        let sample: Vec<GraphTime> = (1..=10).map(|i| t(500 + i * 10)).collect();
        assert_eq!(split_point(t(0), t(1000), &sample, Some(110), 15, 1, false), GraphTime::from_ticks(t(620).ticks() + 1));
    }

    #[test]
    fn an_unordered_sample_is_cut_at_its_quantile() {
        // 10 of 100 items, spread over the span: a target of 20 is about the 2nd sample item.
        let sample: Vec<GraphTime> = [900, 100, 500, 300, 700, 200, 800, 400, 600, 150].iter().map(|s| t(*s)).collect();
        assert_eq!(split_point(t(0), t(1000), &sample, Some(100), 20, 1, false), t(200));
    }

    #[test]
    fn a_cut_is_always_inside_the_span_and_past_its_start() {
        // The whole sample at `from` (a tie): one step past it.
        let c = split_point(t(5), t(10), &[t(5), t(5)], Some(9), 1, 1, false);
        assert_eq!(c, GraphTime::from_ticks(t(5).ticks() + 1));
        // Nothing usable: the midpoint.
        assert_eq!(split_point(t(0), t(10), &[], None, 5, 1, false), t(5));
        // Milliseconds for Cloud Apps.
        let c = split_point(t(0), t(10), &[t(0)], Some(9), 1, 10_000, false);
        assert_eq!(c.ticks(), 10_000);
    }

    /// A tie bigger than a span may hold, at the end of the span: cuts that left the count as it
    /// was close in on it, and then isolate it.
    #[test]
    fn a_stuck_split_isolates_the_tie() {
        let tie = t(500);
        let sample = vec![tie; 5];
        assert_eq!(split_point(t(0), t(1000), &sample, Some(20), 8, 1, true), tie, "the span before the tie");
        assert_eq!(split_point(tie, t(1000), &sample, Some(20), 8, 1, true), GraphTime::from_ticks(tie.ticks() + 1), "the tie alone");
    }

    /// A guess a fraction of a step below `to` must not round back up to `to`.
    #[test]
    fn every_split_shrinks_the_span() {
        let to = GraphTime::from_ticks(1_000_000);
        let sample = [GraphTime::from_ticks(0), GraphTime::from_ticks(600_000)];
        let c = split_point(GraphTime::from_ticks(0), to, &sample, Some(9), 3, 10_000, false);
        assert!(c < to && c.ticks() % 10_000 == 0, "{c:?}");
        for to in [20_001, 30_000, 1_000_000] {
            let c = split_point(
                GraphTime::from_ticks(0),
                GraphTime::from_ticks(to),
                &[GraphTime::from_ticks(to - 1)],
                Some(5),
                1,
                10_000,
                false,
            );
            assert!(c.ticks() > 0 && c.ticks() < to, "{to}: {c:?}");
        }
    }

    #[test]
    fn the_next_span_follows_the_density_read() {
        let read = Window { from: t(0), to: t(100) };
        assert_eq!(next_span_end(read, 50, t(10_000), 100, 1), t(300));
        assert_eq!(next_span_end(read, 0, t(10_000), 100, 1), t(300), "an empty span doubles");
        assert_eq!(next_span_end(read, 1, t(150), 100, 1), t(150), "never past the window");
    }
}
