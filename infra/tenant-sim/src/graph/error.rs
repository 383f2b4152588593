//! Graph's error shape: `{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::context::GraphCtx;
use crate::http;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GraphError { status, code, message: message.into(), retry_after_secs: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// The shape of a fault-injected status: 429 TooManyRequests, 503 ServiceUnavailable, ...
    pub fn for_status(status: u16, retry_after_secs: Option<u64>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (code, message) = match status.as_u16() {
            429 => ("TooManyRequests", "Too many requests."),
            500 => ("InternalServerError", "An internal server error occurred."),
            502 => ("BadGateway", "The server received an invalid response from an upstream server."),
            503 => ("ServiceUnavailable", "The service is temporarily unavailable. Try again later."),
            504 => ("GatewayTimeout", "The gateway did not receive a response in time."),
            _ => ("UnknownError", "The request failed."),
        };
        GraphError { status, code, message: message.into(), retry_after_secs }
    }

    pub fn into_response(self, ctx: &GraphCtx) -> Response {
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": ctx.now.seconds_no_zone(),
                    "request-id": ctx.request_id,
                    "client-request-id": ctx.client_request_id,
                }
            }
        });
        let mut r = http::json(self.status, &body, http::PLAIN_JSON);
        let h = r.headers_mut();
        if let Some(s) = self.retry_after_secs {
            h.insert("retry-after", HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                "www-authenticate",
                HeaderValue::from_static("Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\""),
            );
        }
        ctx.stamp(r)
    }
}
