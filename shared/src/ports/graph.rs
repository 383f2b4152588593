//! What the poller reads from Microsoft: a source's windowed query (Graph or Cloud Apps), the
//! page that answers it, and the port that reads them.

use std::future::Future;

use crate::domain::alert::{HeadSpec, Item};
use crate::domain::integration::Credentials;
use crate::domain::permissions::Api;
use crate::domain::time::GraphTime;
use crate::error::GraphError;

/// A windowed query of a Graph collection, as a source module builds it: `field ge from and
/// field lt to`, ordered by `field` ascending where the collection accepts `$orderby` (the
/// order Graph needs to accept the filter on mailboxes, though not one it promises to keep),
/// `$top`, `$skip` when > 0, `$count=true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphQuery {
    /// The collection's path under Graph's origin, e.g. `/v1.0/security/alerts_v2`.
    pub collection: String,
    /// The property the window is on, e.g. `lastUpdateDateTime`.
    pub field: &'static str,
    pub from: GraphTime,
    pub to: GraphTime,
    pub top: usize,
    pub skip: usize,
    /// `$expand`, when asked for.
    pub expand: Option<&'static str>,
    /// Send `$orderby=field asc` (submissions refuse any `$orderby`).
    pub ordered: bool,
    /// Send `$count=true` (where Microsoft documents it: the count proves a span complete).
    pub counted: bool,
    /// The integration's own OData filter, AND-ed after the window (the window leads: Outlook
    /// needs the sorted property first).
    pub and_filter: Option<String>,
    /// `$select`: the members to return.
    pub select: Option<&'static str>,
    /// Which members of the items are their id and version.
    pub head: HeadSpec,
}

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    Graph(GraphQuery),
    /// A `@odata.nextLink` Graph returned, for items read with `head`.
    Link {
        url: String,
        head: HeadSpec,
    },
    /// Cloud Apps alerts at the tenant's portal: `date` from `from` (inclusive) to before `to`,
    /// oldest first, `skip`/`limit` (≤ 100).
    CloudApps {
        portal: String,
        from: GraphTime,
        to: GraphTime,
        skip: usize,
        limit: usize,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Item>,
    pub next_link: Option<String>,
    /// What the API said about more items (Cloud Apps' `hasNext`); None when it says nothing.
    pub has_more: Option<bool>,
    /// Items that could not be decoded (no usable id or version), with why: kept to be
    /// quarantined, never silently dropped, and counted towards the page's items.
    pub rejects: Vec<crate::domain::alert::Rejected>,
    /// How many items match the request's filter, as the API counts them (Graph's
    /// `@odata.count`, Cloud Apps' `total` unless `moreThanTotal`); None when it did not say.
    pub count: Option<usize>,
}

/// Microsoft Graph as the poller uses it. Implementations keep tokens per tenant and audience,
/// retry throttling and transient failures within bounds, and refresh a token once on 401.
pub trait GraphApi: Send + Sync {
    fn page(&self, creds: &Credentials, request: &PageRequest) -> impl Future<Output = Result<Page, GraphError>> + Send;
    /// Every item of a Graph collection (`path` under Graph's origin, e.g. an incident's
    /// alerts), every page; items whose head does not decode are kept with an empty head.
    fn collection(&self, creds: &Credentials, path: &str, head: HeadSpec) -> impl Future<Output = Result<Vec<Item>, GraphError>> + Send;
    /// One entity of Graph (`path` under Graph's origin), without the response's own
    /// `@odata.*` annotations so that it reads as it does in a collection; None when Graph
    /// answers 404 (it no longer exists).
    fn item(&self, creds: &Credentials, path: &str, head: HeadSpec) -> impl Future<Output = Result<Option<Item>, GraphError>> + Send;
    /// The raw bytes at `path` under Graph's origin (a message's or an attachment's `$value`),
    /// at most the client's body cap (`TooLarge` beyond); None when Graph answers 404.
    fn content(&self, creds: &Credentials, path: &str) -> impl Future<Output = Result<Option<Vec<u8>>, GraphError>> + Send;
    /// (429 answers, retries) of one API so far, for metrics; adapters that do not count
    /// report zeros.
    fn counters(&self, _api: Api) -> (u64, u64) {
        (0, 0)
    }
}

/// A shared adapter is the adapter: lets one store or queue serve several use cases.
mod shared_impls {
    use std::sync::Arc;

    use super::*;

    impl<T: GraphApi> GraphApi for Arc<T> {
        fn page(&self, creds: &Credentials, request: &PageRequest) -> impl Future<Output = Result<Page, GraphError>> + Send {
            (**self).page(creds, request)
        }
        fn collection(
            &self,
            creds: &Credentials,
            path: &str,
            head: HeadSpec,
        ) -> impl Future<Output = Result<Vec<Item>, GraphError>> + Send {
            (**self).collection(creds, path, head)
        }
        fn item(&self, creds: &Credentials, path: &str, head: HeadSpec) -> impl Future<Output = Result<Option<Item>, GraphError>> + Send {
            (**self).item(creds, path, head)
        }
        fn content(&self, creds: &Credentials, path: &str) -> impl Future<Output = Result<Option<Vec<u8>>, GraphError>> + Send {
            (**self).content(creds, path)
        }
        fn counters(&self, api: Api) -> (u64, u64) {
            (**self).counters(api)
        }
    }
}
