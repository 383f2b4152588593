//! Small response helpers shared by every API module.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

pub const PLAIN_JSON: &str = "application/json; charset=utf-8";
/// What Graph sends on collection and entity responses.
pub const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

pub fn json(status: StatusCode, body: &serde_json::Value, content_type: &'static str) -> Response {
    let bytes = crate::wtf16::escape_stand_ins(serde_json::to_vec(body).unwrap_or_default());
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Decoded query pairs, in order, keeping repeats (Graph rejects repeated system options).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

pub fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}
