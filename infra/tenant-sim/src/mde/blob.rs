//! The blob host live response results download from (get-live-response-result.md: the link is
//! an Azure Blob SAS URL, valid 30 minutes). A host name of its own, as in Azure, so a client's
//! check of where a returned URL points is tested for real; errors in Azure Storage's XML shape
//! (storage-services-error-codes: `AuthenticationFailed` for an expired signature, `BlobNotFound`).
//! Whether a GetFile result is the raw file or an archive is not documented: the simulator
//! serves the raw file (README).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::http::header_str;
use crate::state::Sim;
use crate::time::Instant;

/// The blob host's name; the simulator's certificate carries it, and clients resolve it to the
/// simulator's address.
pub const BLOB_HOST: &str = "tenantsim.blob.core.windows.net";

pub fn routes() -> Router<Sim> {
    Router::new().route("/investigation-actions-data/{action}/CustomPlaybookCommandOutput/{token}", get(download))
}

/// A result link for `token` on the blob host, expiring at `expires`.
pub fn url(sim: &Sim, action: &str, token: &str, expires: Instant) -> String {
    let port = sim.base_url.rsplit(':').next().unwrap_or("443");
    let se: String = form_urlencoded::byte_serialize(expires.seconds_no_zone().as_bytes()).collect();
    format!(
        "https://{BLOB_HOST}:{port}/investigation-actions-data/{action}/CustomPlaybookCommandOutput/{token}?se={se}Z&sp=r&sv=2019-07-07&sr=b&sig=simulated%3D"
    )
}

fn storage_error(status: StatusCode, code: &str, message: &str) -> Response {
    let xml = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>");
    let mut r = Response::new(Body::from(xml));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    r.headers_mut().insert("x-ms-error-code", HeaderValue::from_str(code).unwrap_or(HeaderValue::from_static("Error")));
    r
}

async fn download(State(sim): State<Sim>, Path((_action, token)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let host = header_str(&headers, "host").unwrap_or_default();
    if host.split(':').next() != Some(BLOB_HOST) {
        // Not the blob host: the API hosts know no such path.
        let body = serde_json::json!({"error": {"code": "BadRequest", "message": "Resource not found for the segment of this request."}});
        return crate::http::json(StatusCode::BAD_REQUEST, &body, crate::http::PLAIN_JSON);
    }
    let Some((link, tamper)) = sim.mde.download(&token) else {
        return storage_error(StatusCode::NOT_FOUND, "BlobNotFound", "The specified blob does not exist.");
    };
    if sim.clock.now() >= link.expires {
        return storage_error(
            StatusCode::FORBIDDEN,
            "AuthenticationFailed",
            "Server failed to authenticate the request. Signature not valid in the specified time frame.",
        );
    }
    let mut bytes = (*link.bytes).clone();
    if tamper {
        if let Some(b) = bytes.first_mut() {
            *b ^= 0x20;
        }
    }
    let mut r = Response::new(Body::from(bytes));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    r.headers_mut().insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
    r
}
