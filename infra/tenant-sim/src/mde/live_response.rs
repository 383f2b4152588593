//! Live response (ms-apis.md §7):
//! - `POST /api/machines/{id}/runliveresponse` (run-live-response.md): 201 with the machine
//!   action; 10 calls a minute and 50 running sessions per tenant (429 beyond: the page's
//!   ms.date 2025-12-31 text; the older said 25); one session per device (400
//!   `ActiveRequestAlreadyExists`); commands in the order PutFile, RunScript, GetFile.
//! - `GET /api/machineactions/{id}` (get-machineaction-object.md): Pending while the device has
//!   not picked it up (an offline device's for up to 2 hours, then TimeOut: run-live-response.md,
//!   ms.date 2025-12-31; the older text said 3 days), InProgress while it runs, then Succeeded or
//!   Failed (GetFile of a path where nothing is).
//! - `GET /api/machineactions/{id}/GetLiveResponseResultDownloadLink(index={i})`
//!   (get-live-response-result.md, ms.date 2025-11-13: `Machine.ReadWrite.All` only):
//!   `{"value": <blob URL>}`, valid 30 minutes.
//!
//! Not documented, so the simulator's choice (README): how long a device takes, the message of a
//! failed command, and the answer for a result that does not exist (400 `InvalidRequest`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use sha2::Digest;

use super::blob;
use super::files;
use super::state::{Action, Failure, Status};
use super::{error, refused, LIVE_RESPONSE_ROLES, MACHINE_ROLES, RESULT_ROLES};
use crate::entra::resources;
use crate::graph::context::{authorize_for, GraphCtx};
use crate::http;
use crate::scenario::MdeSpec;
use crate::state::Sim;

pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/api/machines/{id}/runliveresponse", post(run))
        .route("/api/machineactions/{id}", get(action))
        .route("/api/machineactions/{id}/{operation}", get(result_link).post(cancel))
}

const ORDER: &[&str] = &["PutFile", "RunScript", "GetFile"];

/// A command as requested: its type and its (key, value) parameters.
type Command = (String, Vec<(String, String)>);

/// The request's commands and comment, or why they are refused.
fn commands(body: &[u8]) -> Result<(Vec<Command>, String), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("The request body is not valid JSON: {e}"))?;
    let list = v.get("Commands").and_then(Value::as_array).filter(|c| !c.is_empty()).ok_or("Commands is required")?;
    let mut out = Vec::new();
    let mut last = 0;
    for c in list {
        let kind = c.get("type").and_then(Value::as_str).unwrap_or_default();
        let rank = ORDER.iter().position(|k| *k == kind).ok_or_else(|| format!("Unknown command type '{kind}'"))?;
        if rank < last {
            return Err("Commands must be ordered PutFile, RunScript, GetFile".into());
        }
        last = rank;
        let params: Vec<(String, String)> = c
            .get("params")
            .and_then(Value::as_array)
            .map(|p| p.iter().filter_map(|kv| Some((kv.get("key")?.as_str()?.to_owned(), kv.get("value")?.as_str()?.to_owned()))).collect())
            .unwrap_or_default();
        let needs = match kind {
            "GetFile" => "Path",
            "PutFile" => "FileName",
            _ => "ScriptName",
        };
        if !params.iter().any(|(k, v)| k == needs && !v.is_empty()) {
            return Err(format!("{kind} requires the parameter {needs}"));
        }
        out.push((kind.to_owned(), params));
    }
    Ok((out, v.get("Comment").and_then(Value::as_str).unwrap_or_default().to_owned()))
}

async fn run(State(sim): State<Sim>, Path(machine): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let who = match authorize_for(&sim, &headers, &mut ctx, resources::MDE, LIVE_RESPONSE_ROLES) {
        Ok(w) => w,
        Err(e) => return refused(&ctx, e),
    };
    let tenant = who.tenant_index;
    let device = sim.data().get(tenant).and_then(|t| t.pool.devices.iter().find(|d| d.mde_id.eq_ignore_ascii_case(&machine)).cloned());
    let Some(device) = device else {
        return error(&ctx, StatusCode::NOT_FOUND, "ResourceNotFound", &format!("Machine {machine} was not found"));
    };
    let (commands, comment) = match commands(&body) {
        Ok(c) => c,
        Err(why) => return error(&ctx, StatusCode::BAD_REQUEST, "InvalidRequestBody", &why),
    };
    let spec = sim.mde.spec();
    if !spec.live_response {
        // common-errors.md's code for a feature the tenant has off; which code live response
        // answers when its Advanced feature is off is not documented (README).
        return error(&ctx, StatusCode::FORBIDDEN, "DisabledFeature", "Tenant feature isn't enabled.");
    }
    if !spec.live_response_servers && device.os_platform.starts_with("WindowsServer") {
        // "Live response for servers" is its own Advanced feature (advanced-features.md); the
        // answer when it is off is undocumented: the documented code of a feature left off.
        return error(&ctx, StatusCode::FORBIDDEN, "DisabledFeature", "Tenant feature isn't enabled.");
    }
    if spec.no_automation_groups.iter().any(|g| g.eq_ignore_ascii_case(device.rbac_group_name)) {
        // run-live-response.md: a device group without an automated remediation level must get
        // "at least the minimum Remediation Level". The answer is the one a caller reported
        // (MicrosoftDocs/microsoft-365-docs#6054, 2021-08-17), which that sentence answered.
        return error(
            &ctx,
            StatusCode::FORBIDDEN,
            "DisallowedOperation",
            "This device has no automation level assigned to it. You'll need to at least enable the minimum Remediation Level for a given Device Group.",
        );
    }
    let now = ctx.now;
    let (sessions, busy) = sim.mde.running(tenant, &device.mde_id, now, &spec);
    if busy {
        return error(
            &ctx,
            StatusCode::BAD_REQUEST,
            "ActiveRequestAlreadyExists",
            "Action is already in progress on this device; wait for it to complete or cancel it",
        );
    }
    if sessions >= spec.max_sessions {
        return error(
            &ctx,
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "The number of concurrent live response sessions reached its limit",
        );
    }
    if !sim.mde.admit_run(tenant, now, spec.runs_per_minute) {
        let mut r =
            error(&ctx, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Too many requests: runliveresponse allows 10 calls per minute");
        // common-errors.md: a 429 says in Retry-After how many seconds to wait.
        r.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("60"));
        return r;
    }
    let online = sim.mde.online(tenant, &device.mde_id);
    let a = Action {
        id: sim.guid(),
        tenant,
        machine_id: device.mde_id.clone(),
        requestor: who.client_id,
        comment,
        commands,
        created: now,
        picked_up: online.then(|| now.plus_secs(spec.pickup_secs)),
        result: None,
        cancelled: None,
        upload_secs: 0,
    };
    let a = Action { upload_secs: upload_time(&sim, &a), ..a };
    let body = render(&a, &device.dns_name, Status::Pending);
    sim.mde.insert(a);
    ctx.stamp(http::json(StatusCode::CREATED, &body, http::PLAIN_JSON))
}

/// m365-ingest's restore script carries this line; the simulator runs what it says on a device
/// (README: RunScript). Any other library script runs with no effect.
pub const RESTORE_MARKER: &str = "m365-ingest:restore-quarantined-file";

/// Where the restore script (version 2) keeps a job's folder.
pub const RESTORE_ROOT: &str = "C:\\Program Files\\m365-ingest\\restore\\";

/// What version 2 of the restore script does (shared/scripts/m365-ingest-restore.ps1): restores
/// the file quarantined from `-PathB64`, checks its hash, leaves it encrypted under `-KeyB64` as
/// `<job folder>\<sha256>.enc` (the file itself and its exclusion gone in the same run);
/// `-Job J -Cleanup` removes the job's folder.
fn restore_v2(sim: &Sim, a: &Action, job: &str, arg: &dyn Fn(&str) -> Option<String>, cleanup: bool) -> (i64, String) {
    use base64::Engine;
    if job.len() != 32 || !job.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return (2, "usage: -Job <32 lower-case hex digits> ...".to_owned());
    }
    let folder = format!("{RESTORE_ROOT}{job}");
    if cleanup {
        sim.mde.clean(a.tenant, &a.machine_id, &folder);
        return (0, format!("removed {folder}"));
    }
    let b64 = |k: &str| arg(k).and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok());
    let (Some(sha256), Some(path), Some(key)) = (arg("sha256"), b64("pathb64"), b64("keyb64")) else {
        return (2, "usage: -Job <hex> (-Sha256 <hex> -PathB64 <base64> -KeyB64 <base64> | -Cleanup)".to_owned());
    };
    let path = String::from_utf8_lossy(&path).into_owned();
    if sha256.len() != 64 || !sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return (2, "usage: -Sha256 takes 64 lower-case hex digits".to_owned());
    }
    let leaf = path.rsplit(['\\', '/']).next().unwrap_or_default();
    if leaf.is_empty() || leaf.contains('%') {
        return (1, format!("the file's name cannot be restored safely: {leaf}"));
    }
    let Some(f) = super::files::quarantined_from(sim, a.tenant, &a.machine_id, &path) else {
        return (1, format!("MpCmdRun restored no file for {path} (exit code 2): no quarantined item with that path"));
    };
    let hash: String = sha2::Sha256::digest(&f.bytes).iter().map(|b| format!("{b:02x}")).collect();
    if !hash.eq_ignore_ascii_case(&sha256) {
        return (1, format!("the restored file's SHA-256 is {hash}, not {sha256}"));
    }
    let Some(sealed) = super::sealed::seal(&key, &f.bytes) else {
        return (2, "-KeyB64 must carry 48 bytes (a 32-byte key, a 16-byte IV)".to_owned());
    };
    let at = format!("{folder}\\{}.enc", sha256.to_ascii_lowercase());
    sim.mde.restore(a.tenant, &a.machine_id, &at, Arc::new(sealed));
    (0, format!("restored {sha256} to {at} (encrypted; the file itself and its exclusion removed)"))
}

/// A script's `Args` as `-Name value` pairs and `-Switch`es (values are single words or
/// single-quoted).
fn script_args(args: &str) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut words = Vec::new();
    let mut quoted: Option<String> = None;
    for w in args.split_whitespace() {
        match &mut quoted {
            Some(q) => {
                q.push(' ');
                q.push_str(w);
                if w.ends_with('\'') {
                    words.push(q.trim_matches('\'').to_owned());
                    quoted = None;
                }
            }
            None if w.starts_with('\'') && !(w.len() > 1 && w.ends_with('\'')) => quoted = Some(w.to_owned()),
            None => words.push(w.trim_matches('\'').to_owned()),
        }
    }
    for w in words {
        match (w.strip_prefix('-'), out.last_mut()) {
            (Some(name), _) => out.push((name.to_ascii_lowercase(), None)),
            (None, Some((_, v @ None))) => *v = Some(w),
            (None, _) => {}
        }
    }
    out
}

/// Runs one RunScript on the device: the script must be in the tenant's library; the restore
/// script (version 2, [`restore_v2`]) restores a quarantined file into the job's folder,
/// encrypted, or with `-Cleanup` removes the folder (`-Folder F -Cleanup`: version 1's cleanup). Returns the transcript
/// (get-live-response-result.md: script_name, exit_code, script_output, script_errors).
fn run_script(sim: &Sim, a: &Action, params: &[(String, String)]) -> Result<Vec<u8>, Failure> {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let name = param("ScriptName");
    let script = sim
        .mde
        .library_file(a.tenant, &name)
        .ok_or_else(|| Failure::not_found(format!("Script {name} was not found in the live response library")))?;
    let text = String::from_utf8_lossy(&script.bytes);
    // Live response on Linux and macOS runs bash scripts (live-response.md's command table): a
    // PowerShell script there fails (the failure's code and words are not documented).
    let os = sim
        .data()
        .get(a.tenant)
        .and_then(|t| t.pool.devices.iter().find(|d| d.mde_id.eq_ignore_ascii_case(&a.machine_id)).map(|d| d.os_platform))
        .unwrap_or("Windows10");
    if name.to_ascii_lowercase().ends_with(".ps1") && !os.starts_with("Windows") {
        return Err(Failure::not_supported(format!("Script {name} cannot run on {os}: PowerShell scripts run on Windows devices")));
    }
    // An Authenticode-signed PowerShell script ends with its signature block.
    if !sim.mde.spec().unsigned_scripts && !text.contains("# SIG # Begin signature block") {
        return Err(Failure::unsigned(format!("Script {name} is not signed, and unsigned script execution is not allowed on this tenant")));
    }
    let (exit_code, output) = if text.contains(RESTORE_MARKER) {
        let args = script_args(&param("Args"));
        let arg = |k: &str| args.iter().find(|(n, _)| n == k).and_then(|(_, v)| v.clone());
        let switch = |k: &str| args.iter().any(|(n, _)| n == k);
        match (arg("folder"), arg("sha256")) {
            _ if arg("job").is_some() => restore_v2(sim, a, &arg("job").unwrap_or_default(), &arg, switch("cleanup")),
            (Some(folder), _) if switch("cleanup") => {
                let n = sim.mde.clean(a.tenant, &a.machine_id, &folder);
                (0, format!("removed {n} restored file(s) and the exclusion of {folder}"))
            }
            // Version 1 put the file in the clear in a folder anyone could predict; only its
            // cleanup (of a restore it made before an upgrade) still runs.
            _ => (2, "usage: -Job <hex> (-Sha256 <hex> -PathB64 <base64> -KeyB64 <base64> | -Cleanup)".to_owned()),
        }
    } else {
        (0, String::new())
    };
    let transcript = json!({"script_name": name, "exit_code": exit_code, "script_output": output, "script_errors": ""});
    Ok(transcript.to_string().into_bytes())
}

/// Seconds a device takes to upload `len` bytes at `mde.device_upload_bytes_per_sec` (0: at once).
fn upload_secs(spec: &MdeSpec, len: usize) -> u64 {
    match spec.device_upload_bytes_per_sec {
        0 => 0,
        rate => (len as u64).div_ceil(rate),
    }
}

/// How long the action's GetFiles upload after its commands ran, from the files on the device
/// now, each at most GetFile's time limit (past it the command fails with ERROR_TIMEOUT after
/// the limit, not before: live-response.md's per-command limits).
fn upload_time(sim: &Sim, a: &Action) -> i64 {
    let spec = sim.mde.spec();
    a.commands
        .iter()
        .filter(|(kind, _)| kind == "GetFile")
        .filter_map(|(_, params)| params.iter().find(|(k, _)| k == "Path").map(|(_, v)| v.clone()))
        .filter_map(|path| files::at_path(sim, a.tenant, &a.machine_id, &path))
        .filter(|f| f.bytes.len() as u64 <= spec.getfile_max_bytes)
        .map(|f| upload_secs(&spec, f.bytes.len()).min(spec.getfile_timeout_secs) as i64)
        .sum()
}

/// Decides what the device's commands did, once it has run them: each RunScript in order, then
/// GetFile (a failing command stops the rest, run-live-response.md).
fn settle(sim: &Sim, a: &Action, ran: bool) -> Option<Result<Arc<Vec<u8>>, Failure>> {
    if !ran || a.result.is_some() {
        return a.result.clone();
    }
    let spec = sim.mde.spec();
    let max = spec.getfile_max_bytes;
    let upload_secs = |len: usize| upload_secs(&spec, len);
    let mut last: Result<Vec<u8>, Failure> = Ok(Vec::new());
    for (i, (kind, params)) in a.commands.iter().enumerate() {
        last = match kind.as_str() {
            "RunScript" => run_script(sim, a, params),
            "GetFile" => {
                let path = params.iter().find(|(k, _)| k == "Path").map(|(_, v)| v.clone()).unwrap_or_default();
                match files::at_path(sim, a.tenant, &a.machine_id, &path) {
                    Some(f) if f.bytes.len() as u64 > max => {
                        Err(Failure::too_large(format!("File {path} is larger than the {max} bytes GetFile collects")))
                    }
                    Some(f) if upload_secs(f.bytes.len()) > spec.getfile_timeout_secs => Err(Failure::timed_out(format!(
                        "Command timed out: collecting {path} took longer than {} seconds",
                        spec.getfile_timeout_secs
                    ))),
                    Some(f) => Ok(f.bytes),
                    None => Err(Failure::not_found(format!("File {path} was not found on the device"))),
                }
            }
            _ => Ok(Vec::new()),
        };
        if let Err(f) = &mut last {
            f.command = i;
            break;
        }
    }
    let r = last.map(Arc::new);
    sim.mde.set_result(&a.id, r.clone());
    Some(r)
}

fn render(a: &Action, dns_name: &str, status: Status) -> Value {
    let result = a.result.clone();
    let last = a.commands.len().saturating_sub(1);
    // A failing command stops the rest (run-live-response.md): they stay Created.
    let failed = match &result {
        Some(Err(f)) => Some(f.command),
        _ => None,
    };
    let commands: Vec<Value> = a
        .commands
        .iter()
        .enumerate()
        .map(|(i, (kind, params))| {
            let (command_status, errors) = match (status, &result) {
                (Status::Pending | Status::Cancelled, _) => ("Created", vec![]),
                (Status::InProgress, _) => (if i == 0 { "InProgress" } else { "Created" }, vec![]),
                (Status::Failed, Some(Err(why))) if i == failed.unwrap_or(last) => ("Failed", vec![why.message.clone()]),
                (Status::Failed, Some(Err(_))) if failed.is_some_and(|f| i > f) => ("Created", vec![]),
                (Status::TimeOut, _) => ("Created", vec![]),
                _ => ("Completed", vec![]),
            };
            json!({
                "index": i, "startTime": null, "endTime": null, "commandStatus": command_status, "errors": errors,
                "command": {"type": kind, "params": params.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>()},
            })
        })
        .collect();
    json!({
        "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#MachineActions/$entity",
        "id": a.id, "type": "LiveResponse", "requestor": a.requestor, "requestorComment": a.comment,
        "status": status.as_str(), "machineId": a.machine_id, "computerDnsName": dns_name,
        "creationDateTimeUtc": a.created.graph7(), "lastUpdateDateTimeUtc": a.created.graph7(),
        "errorHResult": match (status, &result) {
            (Status::Failed, Some(Err(f))) => f.hresult,
            _ => 0,
        },
        "commands": commands,
    })
}

fn dns_name(sim: &Sim, a: &Action) -> String {
    sim.data()
        .get(a.tenant)
        .and_then(|t| t.pool.devices.iter().find(|d| d.mde_id == a.machine_id).map(|d| d.dns_name.clone()))
        .unwrap_or_default()
}

/// The action as its tenant may see it, moved on to now.
fn find(sim: &Sim, headers: &HeaderMap, ctx: &mut GraphCtx, id: &str) -> Result<(Action, Status), Box<Response>> {
    let who = authorize_for(sim, headers, ctx, resources::MDE, MACHINE_ROLES).map_err(|e| Box::new(refused(ctx, e)))?;
    super::profiles::spend(sim, ctx, &who, "machineactions")?;
    let Some(mut a) = sim.mde.action(id).filter(|a| a.tenant == who.tenant_index) else {
        return Err(Box::new(error(ctx, StatusCode::NOT_FOUND, "ResourceNotFound", &format!("Machine action {id} was not found"))));
    };
    let spec = sim.mde.spec();
    a.result = settle(sim, &a, a.commands_ran(ctx.now, &spec));
    let status = a.status(ctx.now, &spec);
    Ok((a, status))
}

async fn action(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    match find(&sim, &headers, &mut ctx, &id) {
        Ok((a, status)) => {
            let body = render(&a, &dns_name(&sim, &a), status);
            ctx.stamp(http::json(StatusCode::OK, &body, http::PLAIN_JSON))
        }
        Err(r) => *r,
    }
}

/// `POST /api/machineactions/{id}/cancel` (cancel-machine-action.md): 200 with the action;
/// 404 for an unknown one. Cancelling an action that already ended answers 400 `InvalidRequest`
/// (not documented: the simulator's choice).
async fn cancel(State(sim): State<Sim>, Path((id, operation)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    if operation != "cancel" {
        return error(&ctx, StatusCode::NOT_FOUND, "ResourceNotFound", &format!("No operation {operation} on machine actions"));
    }
    if let Err(e) = authorize_for(&sim, &headers, &mut ctx, resources::MDE, LIVE_RESPONSE_ROLES) {
        return refused(&ctx, e);
    }
    let (a, status) = match find(&sim, &headers, &mut ctx, &id) {
        Ok(found) => found,
        Err(r) => return *r,
    };
    if status.is_terminal() || !sim.mde.cancel(&a.id, ctx.now) {
        return error(
            &ctx,
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            &format!("Machine action {id} is in a final state ({})", status.as_str()),
        );
    }
    let a = sim.mde.action(&a.id).unwrap_or(a);
    let body = render(&a, &dns_name(&sim, &a), Status::Cancelled);
    ctx.stamp(http::json(StatusCode::OK, &body, http::PLAIN_JSON))
}

async fn result_link(State(sim): State<Sim>, Path((id, operation)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let Some(index) = operation
        .strip_prefix("GetLiveResponseResultDownloadLink(index=")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|i| i.parse::<usize>().ok())
    else {
        return error(&ctx, StatusCode::NOT_FOUND, "ResourceNotFound", &format!("No operation {operation} on machine actions"));
    };
    if let Err(e) = authorize_for(&sim, &headers, &mut ctx, resources::MDE, RESULT_ROLES) {
        return refused(&ctx, e);
    }
    let (a, status) = match find(&sim, &headers, &mut ctx, &id) {
        Ok(found) => found,
        Err(r) => return *r,
    };
    let is_get_file = a.commands.get(index).is_some_and(|(k, _)| k == "GetFile");
    let bytes = match (&a.result, status) {
        (Some(Ok(b)), Status::Succeeded) if is_get_file => b.clone(),
        _ => {
            return error(
                &ctx,
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                &format!("Command {index} of action {id} has no result to download"),
            )
        }
    };
    let token = crate::ids::hex(&mut crate::ids::rng(sim.random(), 0xB1), 16);
    let expires = sim.mde.link(token.clone(), bytes, ctx.now);
    let body = json!({
        "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#Edm.String",
        "value": blob::url(&sim, &a.id, &token, expires),
    });
    ctx.stamp(http::json(StatusCode::OK, &body, http::PLAIN_JSON))
}
