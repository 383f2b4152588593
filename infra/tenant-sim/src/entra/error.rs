//! Entra ID's OAuth error responses (v2-oauth2-client-creds-grant-flow.md,
//! "Error response"; fixture entra_token_error_response.json).

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraError {
    pub status: StatusCode,
    /// OAuth error: invalid_request, invalid_client, unauthorized_client, invalid_scope, ...
    pub error: &'static str,
    pub code: u32,
    pub message: String,
}

impl EntraError {
    pub fn new(status: StatusCode, error: &'static str, code: u32, message: impl Into<String>) -> Self {
        EntraError { status, error, code, message: message.into() }
    }

    pub fn bad(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, code, message)
    }

    /// Client authentication failures are 401, as RFC 6749 §5.2 and Entra answer them.
    pub fn client(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", code, message)
    }

    pub fn missing(param: &str) -> Self {
        Self::bad("invalid_request", 900144, format!("The request body must contain the following parameter: '{param}'."))
    }

    pub fn into_response_at(self, now: Instant, trace_id: &str, correlation_id: &str) -> Response {
        let ts = now.entra();
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {ts}",
                self.code, self.message
            ),
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        let mut r = crate::http::json(self.status, &body, crate::http::PLAIN_JSON);
        r.headers_mut().insert("cache-control", HeaderValue::from_static("no-store, no-cache"));
        r
    }
}
