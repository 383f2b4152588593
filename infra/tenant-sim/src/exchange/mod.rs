//! Simulated Exchange Online admin API: `POST /adminapi/beta/{organization}/InvokeCommand`,
//! the REST endpoint behind the EXO V3 module. Microsoft does not document it as a public API;
//! the request and response shapes follow open-source callers (ms-apis.md §8, OSS-CIPP,
//! OSS-EXO2): `{"CmdletInput": {"CmdletName", "Parameters"}}` in, `{"value": [...]}` out.
//! App-only access needs `Exchange.ManageAsApp` and an Entra role on the app's service
//! principal, carried in the token's `wids` (app-only-auth-powershell-v2.md). Cmdlets answered:
//! Get-QuarantineMessage and Export-QuarantineMessage (quarantine.rs).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::entra::jwt::Jws;
use crate::entra::resources;
use crate::graph::context::{authorize_for, GraphCtx};
use crate::graph::error::GraphError;
use crate::http::{self, header_str};

pub mod quarantine;
use crate::state::Sim;

pub const ROLES: &[&str] = &["Exchange.ManageAsApp"];

/// Entra roles app-only-auth-powershell-v2.md lets an app hold for Exchange cmdlets.
const ASSIGNABLE_ROLES: &[&str] = &[
    "Compliance Administrator",
    "Exchange Administrator",
    "Global Administrator",
    "Global Reader",
    "Security Administrator",
    "Security Reader",
];

/// Entra roles that act on every user's quarantine (quarantine.md permissions: Security
/// Administrator, Global Administrator); the readers above may only look.
const EXPORT_ROLES: &[&str] = &["Global Administrator", "Security Administrator"];

pub fn routes() -> Router<Sim> {
    Router::new().route("/adminapi/beta/{organization}/InvokeCommand", post(invoke))
}

/// A cmdlet's failure as the REST endpoint reports it: the cmdlet's own message in
/// `error.details[].message` and `error.innererror.internalException.message` (OSS-CIPP reads
/// both; the shape is not documented by Microsoft).
fn cmdlet_error(ctx: &GraphCtx, status: StatusCode, exception: &str, message: &str) -> Response {
    let detail = format!("Ex{}|{exception}|{message}", &ctx.request_id[..6]);
    let body = json!({"error": {
        "code": if status == StatusCode::FORBIDDEN { "Forbidden" } else { "BadRequest" },
        "message": detail,
        "details": [{"code": "Context", "target": "", "message": detail}],
        "innererror": {"message": detail, "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
            "internalException": {"message": message, "type": exception}},
    }});
    ctx.stamp(http::json(status, &body, http::PLAIN_JSON))
}

async fn invoke(State(sim): State<Sim>, Path(org): Path<String>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    match invoke_inner(&sim, &org, &uri, &headers, &body, &mut ctx) {
        Ok(v) => ctx.stamp(http::json(StatusCode::OK, &v, http::PLAIN_JSON)),
        Err(Refusal::Auth(e)) => e.into_response(&ctx),
        Err(Refusal::Cmdlet { status, exception, message }) => cmdlet_error(&ctx, status, exception, &message),
    }
}

enum Refusal {
    Auth(GraphError),
    Cmdlet { status: StatusCode, exception: &'static str, message: String },
}

impl From<GraphError> for Refusal {
    fn from(e: GraphError) -> Self {
        Refusal::Auth(e)
    }
}

fn cmdlet(exception: &'static str, message: impl Into<String>) -> Refusal {
    Refusal::Cmdlet { status: StatusCode::BAD_REQUEST, exception, message: message.into() }
}

/// Cmdlets an app may run per 5 seconds in a tenant before it is throttled. Microsoft publishes
/// no limit for the REST endpoint; Exchange Online's throttling policy names the budget
/// (`ExchangeMaxCmdlets` per `PowerShellMaxCmdletsTimePeriod`, New-ThrottlingPolicy.md) and
/// its long-published defaults are 25 per 5 s, which the simulator keeps per app per tenant and
/// answers with 429 and `Retry-After` (throttling.md's shape; the body is Graph's).
pub const CMDLETS_PER_WINDOW: u32 = 25;
pub const CMDLET_WINDOW_SECS: u64 = 5;

fn spend_cmdlet(sim: &Sim, ctx: &GraphCtx, who: &crate::graph::context::Principal) -> Result<(), Refusal> {
    let window = std::time::Duration::from_secs(CMDLET_WINDOW_SECS);
    crate::graph::quota::spend_on_arrival(sim, ctx, who, "exchange-cmdlets", CMDLETS_PER_WINDOW, window).map_err(Refusal::Auth)
}

fn holds(wids: &[String], roles: &[&str]) -> bool {
    roles.iter().filter_map(|r| resources::role_template_id(r)).any(|id| wids.iter().any(|w| w == id))
}

fn invoke_inner(
    sim: &Sim,
    org: &str,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &mut GraphCtx,
) -> Result<Value, Refusal> {
    let who = authorize_for(sim, headers, ctx, resources::EXCHANGE, ROLES)?;
    spend_cmdlet(sim, ctx, &who)?;
    let tenant = sim.directory().get(who.tenant_index).cloned().ok_or_else(|| GraphError::unauthorized("Invalid tenant."))?;
    if !org.eq_ignore_ascii_case(&tenant.domain) && !org.eq_ignore_ascii_case(&tenant.id) {
        return Err(GraphError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("The organization '{org}' was not found, or the token was issued for another tenant."),
        )
        .into());
    }
    let wids: Vec<String> = header_str(headers, "authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|t| Jws::parse(t.trim()))
        .and_then(|j| {
            j.claims.get("wids").and_then(|w| w.as_array()).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        })
        .unwrap_or_default();
    if !holds(&wids, ASSIGNABLE_ROLES) {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The role assigned to application isn't supported in this scenario.",
        )
        .into());
    }
    // The module routes every call by this header; without it the simulator refuses rather than
    // guess (what Exchange does then is not documented: README).
    let anchored = header_str(headers, "x-anchormailbox").is_some_and(|a| {
        ["UPN:", "APP:"].iter().any(|p| a.starts_with(p)) && a.contains("SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@")
    });
    if !anchored {
        return Err(
            GraphError::bad_request("The X-AnchorMailbox header is missing or does not name the organization's system mailbox.").into()
        );
    }
    let input: Value = serde_json::from_slice(body).map_err(|e| GraphError::bad_request(format!("The request body is not JSON: {e}")))?;
    let name = input.pointer("/CmdletInput/CmdletName").and_then(Value::as_str).unwrap_or_default();
    let params = input.pointer("/CmdletInput/Parameters").cloned().unwrap_or(json!({}));
    let not_recognized = || {
        cmdlet(
            "System.Management.Automation.CommandNotFoundException",
            format!("The term '{name}' is not recognized as a name of a cmdlet, function, script file, or executable program."),
        )
    };
    let rows: Vec<Value> = match name {
        "Get-QuarantineMessage" => get_quarantine_message(sim, who.tenant_index, &params, ctx.now)?,
        // Exchange RBAC hides the cmdlets a role does not grant (not documented for REST; README).
        "Export-QuarantineMessage" if !holds(&wids, EXPORT_ROLES) => return Err(not_recognized()),
        "Export-QuarantineMessage" => {
            let id = params.get("Identity").and_then(Value::as_str).unwrap_or_default();
            let found = quarantine::messages(sim, who.tenant_index).into_iter().find(|q| q.identity.eq_ignore_ascii_case(id));
            match found {
                Some(q) => vec![q.export()],
                None => {
                    return Err(cmdlet(
                        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
                        format!("The operation couldn't be performed because object '{id}' couldn't be found."),
                    ))
                }
            }
        }
        _ => return Err(not_recognized()),
    };
    // The REST endpoint pages with `Prefer: odata.maxpagesize` and a nextLink (OSS-CIPP).
    let max = header_str(headers, "prefer")
        .and_then(|p| p.split(',').find_map(|x| x.trim().strip_prefix("odata.maxpagesize=")))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1_000)
        .clamp(1, 1_000);
    let skip = crate::http::query_pairs(uri.query())
        .iter()
        .find(|(k, _)| k == "$skiptoken")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let page: Vec<Value> = rows.iter().skip(skip).take(max).cloned().collect();
    let mut out = json!({"@odata.context": format!("{}/adminapi/beta/{org}/$metadata#Collection(Exchange.GenericHashTable)", sim.base_url), "value": page});
    if skip + max < rows.len() {
        out["@odata.nextLink"] = json!(format!("{}/adminapi/beta/{org}/InvokeCommand?$skiptoken={}", sim.base_url, skip + max));
    }
    Ok(out)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// Get-QuarantineMessage (get-quarantinemessage.md): by `Identity` (detailed), or filtered by
/// `MessageId`, `RecipientAddress`, `SenderAddress` and the received dates (default the last 16
/// days; an older start than 30 days is ignored and the last 30 answered), paged by `Page` and `PageSize` (1–1000, default 100). An `Identity` that
/// matches nothing returns every item, as the documentation warns.
fn get_quarantine_message(sim: &Sim, tenant: usize, params: &Value, now: crate::time::Instant) -> Result<Vec<Value>, Refusal> {
    let all = quarantine::messages(sim, tenant);
    if let Some(id) = params.get("Identity").and_then(Value::as_str) {
        if let Some(q) = all.iter().find(|q| q.identity.eq_ignore_ascii_case(id)) {
            return Ok(vec![q.row(true)]);
        }
    }
    let number = |k: &str, default: usize| -> Result<usize, Refusal> {
        match params.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_u64().map(|n| n as usize).filter(|n| (1..=1_000).contains(n)).ok_or_else(|| {
                cmdlet(
                    "System.Management.Automation.ParameterBindingException",
                    format!("Cannot validate argument on parameter '{k}'. The argument must be between 1 and 1000."),
                )
            }),
        }
    };
    let (page, size) = (number("Page", 1)?, number("PageSize", 100)?);
    let date = |k: &str| params.get(k).and_then(Value::as_str).and_then(|s| crate::time::Instant::parse(s).ok());
    // "By default ... the last 16 days. The maximum value for this parameter is 30 days. If you
    // use a value that's older than 30 days, the value is ignored and only data for the last 30
    // days is returned." (Get-QuarantineMessage.md, changed 2026-02-27.)
    let oldest = now.plus_secs(-30 * 86_400);
    let start = date("StartReceivedDate").unwrap_or(now.plus_secs(-16 * 86_400)).max(oldest);
    let end = date("EndReceivedDate").unwrap_or(now.plus_secs(1));
    let message_id = params.get("MessageId").and_then(Value::as_str).map(str::to_owned);
    let recipients: Vec<String> = strings(params.get("RecipientAddress")).into_iter().map(|r| r.to_lowercase()).collect();
    let senders: Vec<String> = strings(params.get("SenderAddress")).into_iter().map(|r| r.to_lowercase()).collect();
    Ok(all
        .iter()
        .filter(|q| q.received >= start && q.received < end)
        .filter(|q| message_id.as_deref().is_none_or(|m| m == q.message_id))
        .filter(|q| recipients.is_empty() || recipients.contains(&q.recipient.to_lowercase()))
        .filter(|q| senders.is_empty() || senders.contains(&q.sender.to_lowercase()))
        .skip((page - 1) * size)
        .take(size)
        .map(|q| q.row(false))
        .collect())
}
