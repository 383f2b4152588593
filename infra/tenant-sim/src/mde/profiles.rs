//! `GET /api/files/{id}` (get-file-information.md): the profile of a file by SHA-1 or SHA-256 —
//! the documentation's sample file (fixture `mde_file_get.json`) and every file of the tenant's
//! alerts, with the API's limit of 100 calls a minute (and 1,500 an hour) per tenant.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::{error, refused};
use crate::entra::resources;
use crate::graph::context::{authorize_for, GraphCtx, Principal};
use crate::http;
use crate::state::Sim;

const FILE: &str = include_str!("../../tests/fixtures/microsoft-docs/mde_file_get.json");

/// get-file-information.md: File.Read.All.
pub const FILE_ROLES: &[&str] = &["File.Read.All"];

pub fn routes() -> Router<Sim> {
    Router::new().route("/api/files/{id}", get(file))
}

/// One call of `api` (machines, files, machineactions, libraryfiles) against its limits: 100 a
/// minute and 1,500 an hour per tenant (each API's page), answered over them with 429 and
/// `Retry-After` in seconds (common-errors.md). Err: the 429 to answer.
pub fn spend(sim: &Sim, ctx: &GraphCtx, who: &Principal, api: &str) -> Result<(), Box<Response>> {
    let spec = sim.mde.spec();
    let now = ctx.now;
    let minute = sim.mde.admit_api(who.tenant_index, &format!("{api}/minute"), now, spec.api_calls, spec.api_window_secs);
    let hour = minute.and_then(|()| sim.mde.admit_api(who.tenant_index, &format!("{api}/hour"), now, 1_500, 3_600));
    hour.map_err(|wait| {
        let mut r = Box::new(error(
            ctx,
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            &format!("API calls quota exceeded! Maximum allowed {} per minute.", spec.api_calls),
        ));
        if let Ok(v) = axum::http::HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert("retry-after", v);
        }
        r
    })
}

async fn file(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let who = match authorize_for(&sim, &headers, &mut ctx, resources::MDE, FILE_ROLES) {
        Ok(w) => w,
        Err(e) => return refused(&ctx, e),
    };
    if let Err(r) = spend(&sim, &ctx, &who, "files") {
        return *r;
    }
    let mut sample: Value = serde_json::from_str(FILE).unwrap_or_default();
    if let Some(o) = sample.as_object_mut() {
        o.remove("@odata.context");
    }
    let matches =
        |v: &Value| ["sha1", "sha256"].iter().any(|k| v.get(*k).and_then(Value::as_str).is_some_and(|h| h.eq_ignore_ascii_case(&id)));
    let found = if matches(&sample) {
        Some(sample)
    } else {
        let data = sim.data();
        data.get(who.tenant_index)
            .and_then(|t| t.pool.files.iter().find(|f| f.sha1.eq_ignore_ascii_case(&id) || f.sha256.eq_ignore_ascii_case(&id)))
            .map(|f| {
                let known_good = f.publisher.is_some();
                json!({
                    "sha1": f.sha1, "sha256": f.sha256, "md5": f.md5,
                    "globalPrevalence": if known_good { 1_250_000 } else { 3 },
                    "globalFirstObserved": "2026-10-30T11:02:13.0000000Z",
                    "globalLastObserved": "2026-11-26T08:40:00.0000000Z",
                    "size": f.size,
                    "fileType": if f.name.ends_with(".ps1") { "Script" } else { "APP" },
                    "isPeFile": f.name.ends_with(".exe") || f.name.ends_with(".dll"),
                    "filePublisher": f.publisher,
                    "fileProductName": null,
                    "signer": f.publisher,
                    "issuer": f.publisher.map(|_| "Microsoft Code Signing PCA 2011"),
                    "signerHash": null,
                    "isValidCertificate": known_good,
                    "determinationType": if known_good { "Clean" } else { "Malware" },
                    "determinationValue": if known_good { "" } else { "Trojan:Win32/Simulated" },
                })
            })
    };
    match found {
        Some(mut v) => {
            if let Some(o) = v.as_object_mut() {
                o.insert("@odata.context".into(), json!("https://api.security.microsoft.com/api/$metadata#Files/$entity"));
            }
            ctx.stamp(http::json(StatusCode::OK, &v, http::PLAIN_JSON))
        }
        None => error(&ctx, StatusCode::NOT_FOUND, "ResourceNotFound", &format!("File {id} was not found")),
    }
}
