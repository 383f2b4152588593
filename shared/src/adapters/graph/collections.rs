//! Graph collections as the poller reads them: a windowed OData query, the `@odata.nextLink`s
//! it returns (followed only to Graph's configured origin), and every page of a small collection
//! (an incident's alerts). Pages decode to each item's head and its untouched bytes.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::auth::Audience;
use super::client::{Call, MicrosoftHttp};
use super::settings::HttpSettings;
use crate::domain::alert::{Head, HeadSpec, Item, Rejected};
use crate::domain::integration::Credentials;
use crate::domain::polling::window::PagingError;
use crate::domain::time::GraphTime;
use crate::error::GraphError;
use crate::ports::{GraphQuery, Page};

/// Pages of a collection fetched at most by [`GraphCollections::collection`] (the navigations it
/// reads are small; this bounds a loop).
const MAX_COLLECTION_PAGES: usize = 50;

pub struct GraphCollections<'a> {
    http: &'a MicrosoftHttp,
    /// Graph's origin, without a trailing slash.
    base: &'a str,
}

#[derive(Deserialize)]
struct RawPage<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.count", default)]
    count: Option<u64>,
}

impl<'a> GraphCollections<'a> {
    pub(crate) fn new(http: &'a MicrosoftHttp, base: &'a str) -> Self {
        GraphCollections { http, base }
    }

    /// The URL of a query, with the filter in UTC and 7 digits.
    pub fn query_url(&self, q: &GraphQuery) -> String {
        let mut filter = format!("{field} ge {from} and {field} lt {to}", field = q.field, from = q.from, to = q.to);
        if let Some(more) = &q.and_filter {
            filter.push_str(&format!(" and ({more})"));
        }
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("$filter", &filter);
        if q.ordered {
            query.append_pair("$orderby", &format!("{} asc", q.field));
        }
        if let Some(select) = q.select {
            query.append_pair("$select", select);
        }
        query.append_pair("$top", &q.top.to_string());
        if q.counted {
            // The count is what proves a window read completely (window.rs).
            query.append_pair("$count", "true");
        }
        if q.skip > 0 {
            query.append_pair("$skip", &q.skip.to_string());
        }
        if let Some(expand) = q.expand {
            query.append_pair("$expand", expand);
        }
        format!("{}{}?{}", self.base, q.collection, query.finish())
    }

    pub async fn query(&self, creds: &Credentials, q: &GraphQuery) -> Result<Page, GraphError> {
        self.get_page(creds, &self.query_url(q), q.head).await
    }

    /// A link from an answer, followed only to Graph's configured origin.
    pub async fn link(&self, creds: &Credentials, url: &str, head: HeadSpec) -> Result<Page, GraphError> {
        self.check_link(url)?;
        self.get_page(creds, url, head).await
    }

    /// Every item of `path`, page after page. An item whose head does not decode still belongs
    /// to the collection: it is kept as it came, with an empty head, for the processor to judge.
    pub async fn collection(&self, creds: &Credentials, path: &str, head: HeadSpec) -> Result<Vec<Item>, GraphError> {
        let mut url = format!("{}{path}", self.base);
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..MAX_COLLECTION_PAGES {
            let page = self.get_page(creds, &url, head).await?;
            out.extend(page.items);
            for r in page.rejects {
                if let Ok(raw) = RawValue::from_string(r.raw) {
                    out.push(Item { head: Head { id: String::new(), version: GraphTime::default() }, raw });
                }
            }
            match page.next_link {
                Some(next) if seen.insert(next.clone()) => {
                    self.check_link(&next)?;
                    url = next
                }
                Some(_) => return Err(GraphError::Paging(PagingError::RepeatedLink)),
                None => return Ok(out),
            }
        }
        Err(GraphError::Decode { what: format!("the collection {path}"), detail: format!("more than {MAX_COLLECTION_PAGES} pages") })
    }

    /// One entity at `path`; None on 404. The response's own annotations (`@odata.context`)
    /// are dropped so that the item's bytes read as they do in a collection.
    pub async fn item(&self, creds: &Credentials, path: &str, head: HeadSpec) -> Result<Option<Item>, GraphError> {
        let url = format!("{}{path}", self.base);
        let body = match self.http.send(creds, &Call::get("Graph", Audience::Graph, &url)).await {
            Ok(b) => b,
            Err(GraphError::Http { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        decode_entity(&body, head).map(Some)
    }

    /// Refuses a URL from a response unless it is at Graph's configured origin.
    fn check_link(&self, url: &str) -> Result<(), GraphError> {
        if HttpSettings::same_origin(url, self.base) {
            return Ok(());
        }
        let origin = reqwest::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| "an unparsable URL".into());
        Err(GraphError::Paging(PagingError::ForeignLink { origin, expected: self.base.to_owned() }))
    }

    /// GETs one Graph page, retrying within the policy.
    async fn get_page(&self, creds: &Credentials, url: &str, head: HeadSpec) -> Result<Page, GraphError> {
        let body = self.http.send(creds, &Call::get("Graph", Audience::Graph, url)).await?;
        decode_page(&body, head)
    }
}

/// Decodes a Graph collection page: the items' heads, their raw bytes, and the next link.
pub fn decode_page(body: &[u8], head: HeadSpec) -> Result<Page, GraphError> {
    let (raw, items, rejects) = decode_items(body, "a Graph page", |r: &RawPage<'_>| &r.value, head)?;
    // Graph's word for more is a nextLink (paging.md): its absence ends a chain.
    let has_more = Some(raw.next_link.is_some());
    Ok(Page { items, next_link: raw.next_link, has_more, count: raw.count.and_then(|c| usize::try_from(c).ok()), rejects })
}

/// Decodes one entity as Graph returns it by id: its members, less the response's top-level
/// `@odata.context` (an item's own annotations such as `@odata.type` stay).
pub fn decode_entity(body: &[u8], head: HeadSpec) -> Result<Item, GraphError> {
    let bad = |detail: String| GraphError::Decode { what: "a Graph entity".into(), detail };
    let members: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let kept: serde_json::Map<String, serde_json::Value> = members.into_iter().filter(|(k, _)| k != "@odata.context").collect();
    let text = serde_json::to_string(&kept).map_err(|e| bad(e.to_string()))?;
    let raw = RawValue::from_string(text).map_err(|e| bad(e.to_string()))?;
    Item::decode(&raw, &head).map_err(|e| bad(e.to_string()))
}

/// Decodes a page of `what` whose items `items` finds; `R` is the page's envelope. An item
/// whose head does not decode is set aside with its reason rather than failing the page.
pub(crate) fn decode_items<'a, R: Deserialize<'a>>(
    body: &'a [u8],
    what: &str,
    items: impl FnOnce(&R) -> &[&'a RawValue],
    head: HeadSpec,
) -> Result<(R, Vec<Item>, Vec<Rejected>), GraphError> {
    let raw: R = serde_json::from_slice(body).map_err(|e| GraphError::Decode { what: what.into(), detail: e.to_string() })?;
    let mut decoded = Vec::new();
    let mut rejects = Vec::new();
    for r in items(&raw) {
        match Item::decode(r, &head) {
            Ok(i) => decoded.push(i),
            Err(e) => rejects.push(Rejected { raw: r.get().to_owned(), reason: e.to_string() }),
        }
    }
    Ok((raw, decoded, rejects))
}
