//! Reading one span `[from, to)` of a window completely, or learning that it cannot be read in
//! one go (window.rs says why a count, not a short page, is the proof).

use std::collections::HashSet;

use crate::domain::alert::{Item, Rejected};
use crate::domain::integration::{Credentials, Integration};
use crate::domain::polling::window::{is_complete, PagingError, Window};
use crate::domain::time::GraphTime;
use crate::error::{Error, GraphError};
use crate::ports::{GraphApi, PageRequest};
use crate::sources::{SourceSpec, SpanQuery};

/// What the span reader needs to know about the source and the run.
pub struct SpanSpec<'a> {
    pub source: &'static dyn SourceSpec,
    /// Whose window is read.
    pub integration: &'a Integration,
    pub top: usize,
    /// Offsets above this are refused (Graph: `$skip` 500); None: no cap.
    pub max_skip: Option<usize>,
    /// More items than this are not held at once: such a span is split instead.
    pub max_items: usize,
    /// Whole re-reads of a span that cannot be split (a tie), while each finds new items.
    pub tie_passes: usize,
}

/// What reading a span found.
pub struct SpanRead {
    /// Every distinct item received, in the order they came.
    pub items: Vec<Item>,
    /// Items that did not decode (each once), to be quarantined.
    pub rejects: Vec<Rejected>,
    /// The items add up to the count the API gave: nothing of the span is missing.
    pub complete: bool,
    /// The first response's versions, in the order they came (where to split).
    pub sample: Vec<GraphTime>,
    /// The latest count the API gave.
    pub count: Option<usize>,
    /// The most items one response returned (the server's real page size).
    pub largest_page: usize,
    /// Requests made.
    pub requests: usize,
    /// `$expand=alerts` was refused (incidents): read the span again without it.
    pub expand_dropped: bool,
    /// A page was larger than the client reads: ask for fewer items.
    pub too_large: Option<GraphError>,
}

/// Reads `span` with at most `budget` requests. Where the API counts, one response proves a span
/// (its distinct items reach the count it came with); a span that needs more than one is
/// returned incomplete for the caller to split by time, since a chain of requests is not a
/// snapshot. A span that cannot be split (`single_step`: a tie) is paged (nextLink, or `$skip`
/// within its cap) and re-read from the start until a whole read finds nothing new. Where the
/// API does not count, the chain's end is the span's end, read twice.
pub async fn read_span<G: GraphApi>(
    graph: &G,
    creds: &Credentials,
    spec: &SpanSpec<'_>,
    span: Window,
    single_step: bool,
    expand: bool,
    budget: usize,
) -> Result<SpanRead, Error> {
    let mut read = SpanRead {
        items: Vec::new(),
        rejects: Vec::new(),
        complete: false,
        sample: Vec::new(),
        count: None,
        largest_page: 0,
        requests: 0,
        expand_dropped: false,
        too_large: None,
    };
    let mut seen: HashSet<String> = HashSet::new();
    // Items received since the count last changed: an item that left the span (an update moved
    // it on) counted in `seen` would make up for one that a shifted offset hid.
    let mut since_change: HashSet<String> = HashSet::new();
    let mut last_count: Option<usize> = None;
    // A tie, and a span whose end is only the end of a chain (no count), that took several
    // requests are read again: an item removed mid-chain (a report moved out of the inbox, an
    // alert updated) shifts the offsets behind it and can hide another, and ties may come back
    // in another order. One response is one snapshot and needs no second read.
    let passes = if single_step || spec.source.count_optional() { spec.tie_passes.max(2) } else { 1 };
    // Set once a re-read finds what the first read did not: the order is not stable here.
    let mut unstable = false;
    // The ids of the first response, in order: a re-read that answers otherwise shows the order
    // is not kept between requests.
    let mut first_ids: Option<Vec<String>> = None;
    for pass in 0..passes {
        let before = seen.len();
        let mut pass_requests = 0usize;
        let mut first_of_pass = true;
        let mut skip = 0usize;
        let mut links = HashSet::new();
        let mut request = first_request(spec, span, 0, expand);
        loop {
            if read.requests >= budget {
                return Ok(read);
            }
            let page = match graph.page(creds, &request).await {
                Ok(p) => p,
                Err(e @ GraphError::TooLarge { .. }) if !expand => {
                    // The caller asks for fewer items per page.
                    read.too_large = Some(e);
                    return Ok(read);
                }
                Err(e) if expand && (expand_refused(&e) || matches!(e, GraphError::TooLarge { .. })) => {
                    // Large tenants fail `$expand=alerts` (elastic/integrations#18144): list the
                    // incidents alone; the caller fetches each one's alerts.
                    // The span is read again from its start without it, so that no incident
                    // carries its alerts twice.
                    tracing::warn!(error = %e, "incidents with $expand=alerts failed; fetching alerts per incident");
                    read.expand_dropped = true;
                    read.requests += 1;
                    return Ok(read);
                }
                Err(e) => return Err(e.into()),
            };
            read.requests += 1;
            pass_requests += 1;
            if read.sample.is_empty() {
                read.sample = page.items.iter().map(|i| i.head.version).collect();
            }
            read.count = match page.count {
                Some(c) => Some(c),
                None if spec.source.count_optional() => None,
                None => return Err(GraphError::from(PagingError::NoCount { api: "Graph", field: "@odata.count" }).into()),
            };
            if read.count != last_count {
                since_change.clear();
                last_count = read.count;
            }
            // Offsets count every item the page held, decodable or not.
            let got = page.items.len() + page.rejects.len();
            read.largest_page = read.largest_page.max(got);
            if std::mem::take(&mut first_of_pass) {
                let ids: Vec<String> = page.items.iter().map(|i| i.head.id.clone()).collect();
                match &first_ids {
                    None => first_ids = Some(ids),
                    Some(f) => unstable |= *f != ids,
                }
            }
            // Cloud Apps sorts as asked (api-alerts-list.md): where its total is only a lower
            // bound, `hasNext: false` at the end of an unbroken chain is its word for the end.
            let said_end = spec.source.count_optional() && read.count.is_none() && page.has_more == Some(false);
            // An undecodable item counts among the items the API counted; it is named by its
            // bytes (ids never contain the prefix's `\0`).
            let mut in_response = HashSet::new();
            for item in page.items {
                in_response.insert(item.head.id.clone());
                if seen.insert(item.head.id.clone()) {
                    read.items.push(item);
                }
            }
            for r in page.rejects {
                let key = format!("\0{}", r.key());
                in_response.insert(key.clone());
                if seen.insert(key) {
                    read.rejects.push(r);
                }
            }
            let in_response = {
                let n = in_response.len();
                since_change.extend(in_response);
                n
            };
            // A count proves only the response it came with. A chain of requests is not a
            // snapshot: an item that leaves the span between two requests (an update moves it
            // past the span's end) shifts the offsets behind it, the next request skips the item
            // that moved into the gap, and the distinct items still reach the latest count, the
            // one that left having been counted (a soak lost an alert this way).
            if pass_requests == 1 && is_complete(in_response, read.count) {
                read.complete = true;
                return Ok(read);
            }
            if read.count.is_some() && !single_step {
                // More than one response holds it: the caller splits it to what one holds.
                return Ok(read);
            }
            if said_end {
                // One response, or a re-read that found nothing new: the chain is the span.
                if pass_requests == 1 || (pass > 0 && seen.len() == before) {
                    read.complete = true;
                    return Ok(read);
                }
                unstable |= pass > 0;
                break;
            }
            // Held at once: twice a span's limit, or a source's own bound for a tie (items sharing
            // one instant cannot be split by time).
            let limit = if single_step { spec.source.max_tie_items().max(spec.max_items) } else { spec.max_items };
            if got == 0 || seen.len() > limit.max(spec.top) * 2 {
                break;
            }
            // Offsets count every item served in this pass, through links too: where a chain
            // ends without a link, `$skip` goes on from where it ended, not from its start.
            skip += got;
            request = match page.next_link {
                Some(link) => {
                    if !links.insert(link.clone()) {
                        return Err(GraphError::from(PagingError::RepeatedLink).into());
                    }
                    PageRequest::Link { url: link, head: spec.source.head() }
                }
                None => {
                    if spec.max_skip.is_some_and(|max| skip > max) {
                        break;
                    }
                    first_request(spec, span, skip, expand)
                }
            };
        }
        // A tie read in several responses: a whole re-read found nothing new, and the items
        // received since the count last changed reach it. (One pass alone cannot be asked to:
        // where the order changes on every request, no pass of several pages holds them all.)
        if pass > 0 && seen.len() == before && is_complete(since_change.len(), read.count) {
            read.complete = true;
            return Ok(read);
        }
        // A re-read that finds nothing new where the order looked stable will not find more;
        // where it was not stable, every pass is a fresh sample, up to the bound.
        if pass > 0 {
            unstable |= seen.len() > before;
            // Stable answers repeat themselves: re-reading cannot find more.
            if !unstable {
                break;
            }
        }
    }
    Ok(read)
}

fn first_request(spec: &SpanSpec<'_>, span: Window, skip: usize, expand: bool) -> PageRequest {
    spec.source.request(&SpanQuery {
        from: span.from,
        to: span.to,
        top: spec.top,
        skip,
        expand: expand && spec.source.expands(),
        integration: spec.integration,
    })
}

/// A refusal of `$expand` that the per-incident route can avoid: server errors and timeouts
/// after retries, or a 400 about the expansion.
fn expand_refused(e: &GraphError) -> bool {
    matches!(e, GraphError::Http { status, .. } if *status >= 500 || *status == 400)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use serde_json::value::RawValue;

    use crate::app::polling::span::*;
    use crate::domain::alert::HeadSpec;
    use crate::domain::integration::Credential;
    use crate::ports::Page;
    use crate::secret::Secret;
    use crate::sources::spec;
    use crate::Source;

    const AT: &str = "2026-11-26T10:00:00.1234567Z";

    /// Graph answering a script of pages in order, whatever is asked.
    struct Scripted(Mutex<VecDeque<(Vec<&'static str>, usize)>>);

    impl GraphApi for Scripted {
        async fn page(&self, _: &Credentials, _: &PageRequest) -> Result<Page, GraphError> {
            let (ids, count) = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front().unwrap_or((Vec::new(), 0));
            let head = spec(Source::DefenderAlerts).head();
            let mut items = Vec::new();
            for id in ids {
                let raw = RawValue::from_string(format!(r#"{{"id":"{id}","lastUpdateDateTime":"{AT}"}}"#))
                    .map_err(|e| GraphError::Decode { what: "test".into(), detail: e.to_string() })?;
                items.push(Item::decode(&raw, &head).map_err(|e| GraphError::Decode { what: "test".into(), detail: e.to_string() })?);
            }
            Ok(Page { items, next_link: None, has_more: None, rejects: Vec::new(), count: Some(count) })
        }
        async fn collection(&self, _: &Credentials, path: &str, _: HeadSpec) -> Result<Vec<Item>, GraphError> {
            Err(GraphError::Decode { what: path.into(), detail: "not scripted".into() })
        }
        async fn item(&self, _: &Credentials, path: &str, _: HeadSpec) -> Result<Option<Item>, GraphError> {
            Err(GraphError::Decode { what: path.into(), detail: "not scripted".into() })
        }
        async fn content(&self, _: &Credentials, path: &str) -> Result<Option<Vec<u8>>, GraphError> {
            Err(GraphError::Decode { what: path.into(), detail: "not scripted".into() })
        }
    }

    /// A tie of five read two at a time: X is updated (leaves) after the first page, so Y slides
    /// into the offset already read; the second pass comes back in another order and finds
    /// nothing new, and every item ever received (X among them) reaches the new count of four.
    /// Only what was received since the count last changed proves the tie: Y is read.
    #[tokio::test]
    async fn a_tie_is_proven_by_what_came_since_its_count_changed_not_by_everything_ever_received() {
        let script = vec![
            (vec!["P", "X"], 5),
            (vec!["Q", "R"], 4),
            (vec![], 4),
            // Pass 2: another order, nothing new; three of four since the count changed.
            (vec!["P", "Q"], 4),
            (vec!["R", "P"], 4),
            (vec![], 4),
            (vec!["P", "Y"], 4),
            (vec!["Q", "R"], 4),
            (vec![], 4),
            (vec!["Y", "P"], 4),
            (vec!["R", "Q"], 4),
            (vec![], 4),
        ];
        let graph = Scripted(Mutex::new(script.into()));
        let integration = Integration::new("i", "t", "c", "s");
        let creds = Credentials { tenant_id: "t".into(), client_id: "c".into(), credential: Credential::ClientSecret(Secret::new("s")) };
        let spec = SpanSpec {
            source: spec(Source::DefenderAlerts),
            integration: &integration,
            top: 2,
            max_skip: Some(500),
            max_items: 6,
            tie_passes: 20,
        };
        let at = GraphTime::parse(AT).unwrap_or_default();
        let tie = Window { from: at, to: GraphTime::from_ticks(at.ticks() + 1) };
        let read = read_span(&graph, &creds, &spec, tie, true, false, 100).await.map_err(|e| e.to_string());
        let read = read.unwrap_or_else(|e| panic!("{e}"));
        assert!(read.complete);
        let ids: HashSet<&str> = read.items.iter().map(|i| i.head.id.as_str()).collect();
        assert!(ids.contains("Y"), "{ids:?}");
        assert_eq!(read.requests, 12, "proven by the fourth pass");
    }
}
