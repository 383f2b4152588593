//! The blob host live response results download from (get-live-response-result.md: the link is
//! an Azure Blob SAS URL, valid 30 minutes). A host name of its own, as in Azure, so a client's
//! check of where a returned URL points is tested for real; errors in Azure Storage's XML shape
//! (storage-services-error-codes: `AuthenticationFailed` for an expired signature, `BlobNotFound`).
//! Whether a GetFile result is the raw file or an archive is not documented: the simulator
//! serves it as `mde.result_format` says, gzip unless told otherwise (README).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use std::io::Write;

use crate::http::header_str;
use crate::scenario::ResultFormat;
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
    let name = format!("{token}.bin");
    let bytes = match sim.mde.spec().result_format {
        ResultFormat::Raw => bytes,
        ResultFormat::Gzip => gzip(&bytes),
        ResultFormat::Zip => zip(&name, &bytes),
    };
    let mut r = Response::new(Body::from(bytes));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    r.headers_mut().insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
    r
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 2 + 64), flate2::Compression::fast());
    let _ = e.write_all(bytes);
    e.finish().unwrap_or_default()
}

/// One deflated entry, its sizes in the local header (APPNOTE 4.3.7), then the central
/// directory and its end.
pub fn zip(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::with_capacity(bytes.len() / 2 + 64), flate2::Compression::fast());
    let _ = e.write_all(bytes);
    let body = e.finish().unwrap_or_default();
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    let fields = |out: &mut Vec<u8>| {
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&8u16.to_le_bytes()); // deflate
        out.extend_from_slice(&[0, 0, 0x21, 0]); // 1980-01-01 00:00
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // extra
    };
    let mut out = b"PK\x03\x04".to_vec();
    fields(&mut out);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&body);
    let directory_at = out.len() as u32;
    out.extend_from_slice(b"PK\x01\x02");
    out.extend_from_slice(&20u16.to_le_bytes()); // made by
    fields(&mut out);
    out.extend_from_slice(&[0; 10]); // comment length, disk, internal and external attributes
    out.extend_from_slice(&0u32.to_le_bytes()); // the local header's offset
    out.extend_from_slice(name.as_bytes());
    let directory_len = out.len() as u32 - directory_at;
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&directory_len.to_le_bytes());
    out.extend_from_slice(&directory_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_zip_written_here_is_read_by_pythons_zipfile() {
        let z = super::zip("abc.bin", b"hello hello hello");
        let dir = std::env::temp_dir().join(format!("tenant-sim-zip-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("t.zip");
        let _ = std::fs::write(&path, &z);
        let python = std::env::var("TENANT_SIM_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = std::process::Command::new(python)
            .args(["-c", "import sys,zipfile;z=zipfile.ZipFile(sys.argv[1]);assert z.testzip() is None;print(z.namelist()[0], z.read(z.namelist()[0]).decode())"])
            .arg(&path)
            .output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)).unwrap_or_default();
        assert_eq!(text.trim(), "abc.bin hello hello hello");
    }
}
