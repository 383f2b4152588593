//! Sorting, paging and the envelope of a Graph collection response
//! (`@odata.context`, `@odata.count`, `@odata.nextLink`, `value`).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use super::context::GraphCtx;
use crate::http;
use crate::odata::query::encode_skiptoken;
use crate::odata::CollectionQuery;
use crate::time::Instant;

/// How a list answer departs from the friendliest reading of the query, within what Microsoft
/// documents (scenario.rs `GraphSpec`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Shaping {
    pub ignore_orderby: bool,
    pub shuffle_ties: bool,
    pub page_cap: usize,
    /// Seeds this request's shuffle of ties.
    pub salt: u64,
}

impl Shaping {
    pub fn of(sim: &crate::state::SimState, spec: &crate::scenario::GraphSpec) -> Self {
        Shaping { ignore_orderby: spec.ignore_orderby, shuffle_ties: spec.shuffle_ties, page_cap: spec.page_cap, salt: sim.random() }
    }
}

/// Puts `items` in an order drawn from `salt` (Fisher–Yates): before a stable sort, items that
/// sort equal come out in a new order on every request.
pub fn shuffle<T>(items: &mut [T], salt: u64) {
    let mut rng = crate::ids::rng(salt, 0x5A);
    for i in (1..items.len()).rev() {
        let j = rand::Rng::gen_range(&mut rng, 0..=i);
        items.swap(i, j);
    }
}

/// Sorts `items` by the query's `$orderby` (default: newest `createdDateTime`
/// first, as the list pages say) and cuts the requested page. Returns the page,
/// the total match count and whether a nextLink should follow.
pub fn page<T>(mut items: Vec<T>, q: &CollectionQuery, time: impl Fn(&T, &str) -> Instant, shape: Shaping) -> (Vec<T>, usize, bool) {
    if shape.shuffle_ties {
        // A fresh order for equal keys on every request: the stable sort below keeps it.
        shuffle(&mut items, shape.salt);
    }
    if q.order.is_empty() || shape.ignore_orderby {
        items.sort_by_key(|b| std::cmp::Reverse(time(b, "createdDateTime")));
    } else {
        items.sort_by(|a, b| {
            for o in &q.order {
                let (x, y) = (time(a, o.prop), time(b, o.prop));
                let ord = if o.desc { y.cmp(&x) } else { x.cmp(&y) };
                if ord.is_ne() {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    let total = items.len();
    let start = q.offset.min(total);
    let mut end = start.saturating_add(q.top).min(total);
    let mut more = end < total;
    if shape.page_cap > 0 && end - start > shape.page_cap {
        end = start + shape.page_cap;
        more = false;
    }
    let page: Vec<T> = items.into_iter().skip(start).take(end - start).collect();
    (page, total, more)
}

/// A directory-style list's query limits: 100 items by default, `$top` up to 999, no `$skip`,
/// no `$orderby` or `$expand`, filtered on `schema`.
pub fn directory_limits(schema: &'static crate::odata::FilterSchema, include_unknown: bool) -> crate::odata::QueryLimits {
    crate::odata::QueryLimits {
        schema,
        default_top: 100,
        max_top: 999,
        clamp_top: false,
        max_skip: 0,
        orderable: &[],
        expandable: &[],
        include_unknown,
    }
}

/// The query's page of `items` in their order: (page, total, whether more follow).
pub fn cut(items: Vec<Value>, q: &CollectionQuery) -> (Vec<Value>, usize, bool) {
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(q.offset).take(q.top).collect();
    let more = q.offset + page.len() < total;
    (page, total, more)
}

pub struct Envelope<'a> {
    pub base_url: &'a str,
    /// Request path, e.g. `/v1.0/security/alerts_v2`.
    pub path: &'a str,
    /// After `$metadata#`, e.g. `security/alerts_v2`.
    pub context: &'a str,
    pub omit_next_link: bool,
}

pub fn respond(ctx: &GraphCtx, env: &Envelope<'_>, q: &CollectionQuery, items: Vec<Value>, total: usize, more: bool) -> Response {
    let mut m = Map::new();
    let version = env.path.trim_start_matches('/').split('/').next().unwrap_or("v1.0");
    m.insert("@odata.context".into(), Value::String(format!("{}/{version}/$metadata#{}", env.base_url, env.context)));
    if q.count {
        m.insert("@odata.count".into(), Value::from(total));
    }
    if more && !env.omit_next_link {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &q.carry {
            ser.append_pair(k, v);
        }
        ser.append_pair("$skiptoken", &encode_skiptoken(q.offset + items.len()));
        m.insert("@odata.nextLink".into(), Value::String(format!("{}{}?{}", env.base_url, env.path, ser.finish())));
    }
    m.insert("value".into(), Value::Array(items));
    ctx.stamp(http::json(StatusCode::OK, &Value::Object(m), http::ODATA_JSON))
}

/// A single entity: `@odata.context` first, then its properties.
pub fn respond_entity(ctx: &GraphCtx, base_url: &str, context: &str, entity: Map<String, Value>) -> Response {
    let mut m = Map::new();
    m.insert("@odata.context".into(), Value::String(format!("{base_url}/v1.0/$metadata#{context}/$entity")));
    m.extend(entity);
    ctx.stamp(http::json(StatusCode::OK, &Value::Object(m), http::ODATA_JSON))
}
