//! The layer in front of every endpoint: applies injected faults and records the request.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;

use crate::entra::error::EntraError;
use crate::faults::FaultKind;
use crate::graph::context::{bearer_uti, GraphCtx};
use crate::graph::error::GraphError;
use crate::http::query_pairs;
use crate::record::{Caller, RecordedRequest};
use crate::state::Sim;

/// The lists whose first request is throttled when the scenario says so (`throttle_first_list`).
const SECURITY_LISTS: &[&str] = &["/v1.0/security/alerts_v2", "/v1.0/security/incidents", "/beta/security/threatSubmission/emailThreats"];

/// Bodies bigger than this are not buffered for truncation (the simulator's own pages are far smaller).
const MAX_BUFFERED_BODY: usize = 256 * 1024 * 1024;

pub async fn shape(State(sim): State<Sim>, mut req: Request, next: Next) -> Response {
    if let Ok(v) = HeaderValue::from_str(&sim.limits.stamp().to_string()) {
        req.headers_mut().insert(crate::limits::ARRIVAL_HEADER, v);
    }
    let path = req.uri().path().to_owned();
    let is_entra = path.contains("/oauth2/");
    let spec = sim.graph_spec();
    let fault = sim.faults.decide(&path).or_else(|| {
        (spec.throttle_first_list && SECURITY_LISTS.contains(&path.as_str()) && sim.first_request_to(&path))
            .then_some(FaultKind::Throttle { retry_after_secs: 1 })
    });
    let latency = if is_entra { 0 } else { spec.latency_ms };
    // Recorded on arrival, so a request whose client gives up (a timeout) is in the log too.
    let index = sim.log.push(RecordedRequest {
        method: req.method().to_string(),
        path,
        query: query_pairs(req.uri().query()),
        status: 0,
        at: sim.clock.now(),
        fault: fault.as_ref().map(|f| f.name().to_owned()),
        client_id: None,
    });
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let response = match fault {
        None => next.run(req).await,
        Some(FaultKind::Slow { delay_ms }) => {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            next.run(req).await
        }
        Some(FaultKind::Throttle { retry_after_secs }) => {
            error_response(&sim, &path_of(&req), is_entra, 429, Some(retry_after_secs), req.headers())
        }
        Some(FaultKind::Status { status, retry_after_secs }) => {
            error_response(&sim, &path_of(&req), is_entra, status, retry_after_secs, req.headers())
        }
        Some(FaultKind::ExpireToken) => {
            if let Some(uti) = bearer_uti(req.headers()) {
                sim.expire_token(&uti);
            }
            next.run(req).await
        }
        Some(FaultKind::Truncate) => truncate(next.run(req).await).await,
    };
    sim.log.answer(index, response.status().as_u16(), response.extensions().get::<Caller>().map(|c| c.0.clone()));
    response
}

fn path_of(req: &Request) -> String {
    req.uri().path().to_owned()
}

/// A fault's answer in the shape of the API it stands in for: Entra's, Cloud Apps'
/// `{"detail"}` (its error bodies are undocumented: README), Defender for Endpoint's
/// `{"error": {code, message, target}}` (common-errors.md), or Graph's.
fn error_response(sim: &Sim, path: &str, is_entra: bool, status: u16, retry_after: Option<u64>, headers: &HeaderMap) -> Response {
    if is_entra {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let (error, aadsts) = if status == 429 { ("temporarily_unavailable", 90033) } else { ("server_error", 90033) };
        let mut r = EntraError::new(code, error, aadsts, "A transient error has occurred. Please try again.").into_response_at(
            sim.clock.now(),
            &sim.guid(),
            &sim.guid(),
        );
        if let Some(s) = retry_after {
            r.headers_mut().insert("retry-after", HeaderValue::from(s));
        }
        return r;
    }
    let ctx = GraphCtx::new(sim, headers);
    let graph = GraphError::for_status(status, retry_after);
    let mut r = if path.starts_with("/api/v1/") {
        ctx.stamp(crate::http::json(graph.status, &serde_json::json!({"detail": graph.message}), crate::http::PLAIN_JSON))
    } else if path.starts_with("/api/") {
        crate::mde::error(&ctx, graph.status, graph.code, &graph.message)
    } else {
        return graph.into_response(&ctx);
    };
    if let Some(s) = retry_after {
        r.headers_mut().insert("retry-after", HeaderValue::from(s));
    }
    r
}

/// Keeps the announced `Content-Length` but sends only the first half of the
/// body, then fails the stream: the client sees a connection cut mid-body.
async fn truncate(r: Response) -> Response {
    let (mut parts, body) = r.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BUFFERED_BODY).await else {
        return Response::from_parts(parts, Body::empty());
    };
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let half = bytes.slice(..bytes.len() / 2);
    Response::from_parts(parts, Body::new(Truncated { head: Some(half) }))
}

struct Truncated {
    head: Option<Bytes>,
}

impl http_body::Body for Truncated {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.head.take() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None => Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "simulated truncated response")))),
        }
    }
}
