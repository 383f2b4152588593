//! The live response library (live-response-library-methods.md):
//! - `POST /api/libraryfiles` (upload-library.md): `multipart/form-data` with `File` (required),
//!   `Description`, `ParametersDescription`, `HasParameters`, `OverrideIfExists`; 200 with the
//!   library file; 400 for a bad body; at most 20 MB; `Library.Manage`.
//! - `GET /api/libraryfiles` (list-library-files.md): `{"value": [...]}`; `Library.Manage`.
//!
//! Not documented, so the simulator's choice (README): the 400's code and message for a file
//! over 20 MB, for a missing `File` and for an existing file without `OverrideIfExists`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use sha2::Digest;
use std::sync::Arc;

use super::state::LibraryFile;
use super::{error, refused};
use crate::entra::resources;
use crate::graph::context::{authorize_for, GraphCtx};
use crate::http;
use crate::state::Sim;

/// upload-library.md: "File max size limitation is 20MB".
pub const MAX_LIBRARY_FILE_BYTES: usize = 20 * 1024 * 1024;
pub const LIBRARY_ROLES: &[&str] = &["Library.Manage"];

pub fn routes() -> Router<Sim> {
    // The form around a 20 MB file is larger than axum's 2 MB default; beyond this, 413.
    Router::new()
        .route("/api/libraryfiles", get(list).post(upload))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_LIBRARY_FILE_BYTES + (1 << 20)))
}

fn render(f: &LibraryFile) -> Value {
    json!({
        "fileName": f.name, "sha256": f.sha256, "description": f.description,
        "creationTime": f.created.graph7(), "lastUpdatedTime": f.updated.graph7(), "createdBy": f.created_by,
        "hasParameters": f.has_parameters, "parametersDescription": f.parameters_description,
    })
}

async fn list(State(sim): State<Sim>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let who = match authorize_for(&sim, &headers, &mut ctx, resources::MDE, LIBRARY_ROLES) {
        Ok(w) => w,
        Err(e) => return refused(&ctx, e),
    };
    let files: Vec<Value> = sim.mde.library(who.tenant_index).iter().map(render).collect();
    let body = json!({"@odata.context": "https://api.security.microsoft.com/api/$metadata#LibraryFiles", "value": files});
    ctx.stamp(http::json(StatusCode::OK, &body, http::PLAIN_JSON))
}

/// One part of a `multipart/form-data` body: its field name, file name and content.
struct Part {
    name: String,
    file_name: Option<String>,
    content: Vec<u8>,
}

/// The parts of a `multipart/form-data` body (RFC 7578), or why it is not one.
fn parts(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| content_type.trim_start().to_ascii_lowercase().starts_with("multipart/form-data") && !b.is_empty())
        .ok_or("Content-Type must be multipart/form-data with a boundary")?;
    let delimiter = format!("--{boundary}").into_bytes();
    let mut out = Vec::new();
    let mut rest = body;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let start = find(rest, &delimiter).ok_or("the body has no part")?;
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Ok(out);
        }
        rest = rest.strip_prefix(b"\r\n").ok_or("a boundary is not followed by CRLF")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("a part has no header end")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        rest = &rest[head_end + 4..];
        let mut end_marker = b"\r\n".to_vec();
        end_marker.extend_from_slice(&delimiter);
        let end = find(rest, &end_marker).ok_or("a part is not closed by the boundary")?;
        let disposition = head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition:")).unwrap_or_default();
        let param = |key: &str| {
            disposition.split(';').map(str::trim).find_map(|p| p.strip_prefix(&format!("{key}="))).map(|v| v.trim_matches('"').to_owned())
        };
        let name = param("name").ok_or("a part has no name")?;
        out.push(Part { name, file_name: param("filename"), content: rest[..end].to_vec() });
        rest = &rest[end + end_marker.len()..];
    }
}

async fn upload(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let who = match authorize_for(&sim, &headers, &mut ctx, resources::MDE, LIBRARY_ROLES) {
        Ok(w) => w,
        Err(e) => return refused(&ctx, e),
    };
    if let Err(r) = super::profiles::spend(&sim, &ctx, &who, "libraryfiles") {
        return *r;
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let parts = match parts(content_type, &body) {
        Ok(p) => p,
        Err(why) => return error(&ctx, StatusCode::BAD_REQUEST, "BadRequest", &why),
    };
    let field = |n: &str| parts.iter().find(|p| p.name.eq_ignore_ascii_case(n)).map(|p| String::from_utf8_lossy(&p.content).into_owned());
    let Some(file) = parts.iter().find(|p| p.name == "File") else {
        return error(&ctx, StatusCode::BAD_REQUEST, "BadRequest", "File is required");
    };
    let Some(name) = file.file_name.clone().filter(|n| !n.is_empty()) else {
        return error(&ctx, StatusCode::BAD_REQUEST, "BadRequest", "The File part has no file name");
    };
    if file.content.len() > MAX_LIBRARY_FILE_BYTES {
        return error(&ctx, StatusCode::BAD_REQUEST, "BadRequest", "File max size limitation is 20MB");
    }
    let truthy = |n: &str| field(n).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let now = ctx.now;
    let stored = LibraryFile {
        name: name.clone(),
        sha256: sha2::Sha256::digest(&file.content).iter().map(|b| format!("{b:02x}")).collect(),
        bytes: Arc::new(file.content.clone()),
        description: field("Description").unwrap_or_default(),
        has_parameters: truthy("HasParameters"),
        parameters_description: field("ParametersDescription").unwrap_or_default(),
        created: now,
        updated: now,
        created_by: who.client_id,
    };
    match sim.mde.put_library_file(who.tenant_index, stored, truthy("OverrideIfExists")) {
        Some(f) => {
            let mut body = render(&f);
            body["@odata.context"] = json!("https://api.security.microsoft.com/api/$metadata#LibraryFiles/$entity");
            ctx.stamp(http::json(StatusCode::OK, &body, http::PLAIN_JSON))
        }
        None => error(
            &ctx,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("A library file named {name} exists; set OverrideIfExists to replace it"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_is_read_part_by_part() {
        let body = b"--b1\r\nContent-Disposition: form-data; name=\"File\"; filename=\"s.ps1\"\r\nContent-Type: application/octet-stream\r\n\r\nline1\r\nline2\r\n--b1\r\nContent-Disposition: form-data; name=\"HasParameters\"\r\n\r\ntrue\r\n--b1--\r\n";
        let p = parts("multipart/form-data; boundary=b1", body).unwrap_or_default();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].file_name.as_deref(), p[0].content.as_slice()),
            ("File", Some("s.ps1"), &b"line1\r\nline2"[..])
        );
        assert_eq!(p[1].content, b"true");
        assert!(parts("application/json", body).is_err());
        assert!(parts("multipart/form-data; boundary=b1", b"--b1\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nopen").is_err());
    }
}
