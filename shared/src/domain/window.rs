//! The read window of one poll, and how paging moves through it.

use std::time::Duration;

use super::cursor::Cursor;
use super::time::GraphTime;

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

/// Where the next page comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPage {
    /// Query again from this boundary (`ge`), skipping `skip` items that share it.
    Boundary { from: GraphTime, skip: usize },
    /// Follow Graph's link: only to page through a block of equal timestamps.
    Link(String),
    /// The window is read to its end.
    Done,
}

/// What paging learned from one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageOutcome {
    pub next: NextPage,
    /// Everything before this was delivered (given the page's items were).
    pub safe_watermark: GraphTime,
}

/// Why paging cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    #[error("more than {limit} alerts share lastUpdateDateTime {at} and Graph gave no nextLink to page through them")]
    TieTooLarge { at: GraphTime, limit: usize },
    #[error("Graph returned the same nextLink twice; stopping instead of looping")]
    RepeatedLink,
    #[error("Graph returned items out of order (ascending lastUpdateDateTime was asked)")]
    OutOfOrder,
}

/// Decides the next page after a page read from `current` (its boundary and skip).
///
/// Paging moves the `ge` boundary to the last timestamp seen, rather than following offset
/// links: an alert updated while paging leaves its old place and offsets shift, which can
/// skip an unseen alert (Elastic moved the same way, elastic/integrations#20348). A link is
/// followed only when a whole page shares one timestamp, where the boundary cannot move.
pub fn after_page(
    current_from: GraphTime,
    current_skip: usize,
    versions: &[GraphTime],
    top: usize,
    next_link: Option<&str>,
    window: &Window,
    max_skip: usize,
) -> Result<PageOutcome, PagingError> {
    if versions.windows(2).any(|w| w[0] > w[1]) {
        return Err(PagingError::OutOfOrder);
    }
    let full = versions.len() >= top || next_link.is_some();
    let Some(&last) = versions.last() else {
        return Ok(PageOutcome { next: NextPage::Done, safe_watermark: window.to });
    };
    if !full {
        return Ok(PageOutcome { next: NextPage::Done, safe_watermark: window.to });
    }
    if last > current_from {
        return Ok(PageOutcome { next: NextPage::Boundary { from: last, skip: 0 }, safe_watermark: last });
    }
    // The whole page sits on `current_from`.
    if let Some(link) = next_link {
        return Ok(PageOutcome { next: NextPage::Link(link.to_owned()), safe_watermark: last });
    }
    let skip = current_skip + versions.len();
    if skip > max_skip {
        return Err(PagingError::TieTooLarge { at: last, limit: max_skip + top });
    }
    Ok(PageOutcome { next: NextPage::Boundary { from: last, skip }, safe_watermark: last })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let c = Cursor { watermark: Some(t(99_000)), ..Cursor::default() };
        assert_eq!(window(&c, now, &S), Some(Window { from: t(98_100), to: t(99_700) }));
    }

    #[test]
    fn nothing_to_read_inside_the_delay() {
        let c = Cursor { watermark: Some(t(100_000)), ..Cursor::default() };
        assert_eq!(window(&c, t(100_100), &WindowSettings { overlap: Duration::ZERO, ..S }), None);
    }

    const W: Window = Window { from: GraphTime::from_ticks(0), to: GraphTime::from_ticks(1_000_000_000) };

    #[test]
    fn a_short_page_ends_the_window() {
        let o = after_page(t(0), 0, &[t(1), t(2)], 3, None, &W, 500);
        assert_eq!(o, Ok(PageOutcome { next: NextPage::Done, safe_watermark: W.to }));
        let o = after_page(t(0), 0, &[], 3, None, &W, 500);
        assert_eq!(o.map(|o| o.next), Ok(NextPage::Done));
    }

    #[test]
    fn a_full_page_moves_the_boundary_to_its_last_timestamp() {
        let o = after_page(t(0), 0, &[t(1), t(2), t(2)], 3, Some("https://x/next"), &W, 500);
        assert_eq!(o, Ok(PageOutcome { next: NextPage::Boundary { from: t(2), skip: 0 }, safe_watermark: t(2) }));
    }

    #[test]
    fn a_page_of_one_timestamp_follows_the_link_or_skips() {
        let o = after_page(t(2), 0, &[t(2), t(2), t(2)], 3, Some("https://x/next"), &W, 500);
        assert_eq!(o.map(|o| o.next), Ok(NextPage::Link("https://x/next".into())));
        let o = after_page(t(2), 3, &[t(2), t(2), t(2)], 3, None, &W, 500);
        assert_eq!(o.map(|o| o.next), Ok(NextPage::Boundary { from: t(2), skip: 6 }));
        let o = after_page(t(2), 498, &[t(2), t(2), t(2)], 3, None, &W, 500);
        assert!(matches!(o, Err(PagingError::TieTooLarge { .. })));
    }

    #[test]
    fn out_of_order_pages_are_refused() {
        assert_eq!(after_page(t(0), 0, &[t(2), t(1)], 3, None, &W, 500), Err(PagingError::OutOfOrder));
    }
}
