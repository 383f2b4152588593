//! The tenant's phishing-report mailbox as Graph serves it (data/mailbox.rs), and every other
//! user's mailbox holding the emails alerts say reached it (delivered, or released from
//! quarantine: exchange/quarantine.rs `delivered`), found by `internetMessageId`:
//! - `GET /v1.0/users/{id}/mailFolders/{folder}/messages` and `/v1.0/users/{id}/messages`
//!   (user-list-messages.md, mailfolder-list-messages.md): `$filter`, `$orderby`, `$select`,
//!   `$top` (default 10, at most 1000), `$count`, and `@odata.nextLink` carrying `$skip`;
//!   `$orderby` with `$filter` needs every sorted property in the filter, first and in the same
//!   order, else 400 `InefficientFilter` (user-list-messages.md "Using filter and orderby").
//! - `GET …/messages/{id}/$value` the message's MIME (message-get.md "Get MIME content").
//! - `GET …/messages/{id}/attachments`, `…/attachments/{id}` (with
//!   `$expand=microsoft.graph.itemattachment/item`) and `…/attachments/{id}/$value` (the
//!   attached message's MIME, or the file's bytes) (attachment-get.md).
//! - Mailboxes outside an app's application access policy answer 403 `ErrorAccessDenied`
//!   "Access to OData is disabled." (ms-apis.md §5); Outlook's limits per app and mailbox,
//!   4 requests at once and 10,000 per 10 minutes, answer 429 `ApplicationThrottled` with
//!   `Retry-After` (graph-throttling-limits.md).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::context::{authorize, GraphCtx, Principal};
use super::error::GraphError;
use crate::data::mailbox::{AttachmentKind, MailMessage};
use crate::http::{self, query_pairs};
use crate::odata::{CollectionQuery, FilterSchema, Prop, PropKind, QueryLimits};
use crate::state::Sim;

/// Listing needs any Mail read permission; bodies, MIME and attachments need more than
/// `Mail.ReadBasic.All` (permissions reference: ReadBasic excludes body and attachments).
pub const LIST_ROLES: &[&str] = &["Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite"];
pub const CONTENT_ROLES: &[&str] = &["Mail.Read", "Mail.ReadWrite"];

pub static MESSAGE_FILTER: FilterSchema = FilterSchema {
    entity: "message",
    props: &[
        Prop { name: "receivedDateTime", kind: PropKind::DateTime },
        Prop { name: "sentDateTime", kind: PropKind::DateTime },
        Prop { name: "createdDateTime", kind: PropKind::DateTime },
        Prop { name: "isRead", kind: PropKind::Bool },
        Prop { name: "hasAttachments", kind: PropKind::Bool },
        Prop { name: "subject", kind: PropKind::String },
        Prop { name: "importance", kind: PropKind::String },
        Prop { name: "inferenceClassification", kind: PropKind::String },
        Prop { name: "from/emailAddress/address", kind: PropKind::String },
        Prop { name: "sender/emailAddress/address", kind: PropKind::String },
        // message.md: the RFC 2822 Message-ID, brackets and all; `eq` finds one email.
        Prop { name: "internetMessageId", kind: PropKind::String },
    ],
};

fn limits() -> QueryLimits {
    QueryLimits {
        schema: &MESSAGE_FILTER,
        default_top: 10,
        max_top: 1000,
        clamp_top: false,
        max_skip: usize::MAX,
        orderable: &["receivedDateTime", "sentDateTime", "createdDateTime", "subject", "importance"],
        expandable: &[],
        include_unknown: false,
    }
}

const WINDOW_SECS: i64 = 600;
const REQUESTS_PER_WINDOW: usize = 10_000;
const CONCURRENT: usize = 4;

/// A request admitted under the mailbox's limits; leaving it frees its slot.
pub(crate) struct Admitted {
    sim: Sim,
    key: (String, String),
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut gates = self.sim.mail_gates.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = gates.get_mut(&self.key) {
            g.in_flight = g.in_flight.saturating_sub(1);
        }
    }
}

pub(crate) fn admit(sim: &Sim, who: &Principal, mailbox: &str, ctx: &GraphCtx) -> Result<Admitted, GraphError> {
    let key = (who.client_id.clone(), mailbox.to_ascii_lowercase());
    let mut gates = sim.mail_gates.lock().unwrap_or_else(|p| p.into_inner());
    let g = gates.entry(key.clone()).or_default();
    if ctx.now.0 - g.window_start.0 >= WINDOW_SECS * 10_000_000 {
        g.window_start = ctx.now;
        g.in_window = 0;
    }
    let throttled = |message: &str, retry: i64| GraphError {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "ApplicationThrottled",
        message: message.into(),
        retry_after_secs: Some(u64::try_from(retry.max(1)).unwrap_or(1)),
    };
    if g.in_flight >= CONCURRENT {
        return Err(throttled("Application is over its MailboxConcurrency limit.", 1));
    }
    if g.in_window >= REQUESTS_PER_WINDOW {
        let left = WINDOW_SECS - (ctx.now.0 - g.window_start.0) / 10_000_000;
        return Err(throttled("Application is over its request limit for this mailbox.", left));
    }
    g.in_flight += 1;
    g.in_window += 1;
    Ok(Admitted { sim: sim.clone(), key })
}

/// auth-limit-mailbox-access.md: a mailbox outside the app's application access policy.
fn out_of_scope() -> GraphError {
    GraphError::new(StatusCode::FORBIDDEN, "ErrorAccessDenied", "Access to OData is disabled.")
}

/// The app's mailbox scope holds `address`, or it has none. An application access policy limits
/// mail, mailbox settings, calendars and contacts alike (auth-limit-mailbox-access.md).
pub(crate) fn in_scope(sim: &Sim, who: &Principal, address: &str) -> Result<(), GraphError> {
    let directory = sim.directory();
    let scope = directory
        .get(who.tenant_index)
        .and_then(|t| t.apps.iter().find(|a| a.client_id == who.client_id))
        .and_then(|a| a.mailbox_scope.clone());
    match scope {
        Some(s) if !s.iter().any(|m| m.eq_ignore_ascii_case(address)) => Err(out_of_scope()),
        _ => Ok(()),
    }
}

/// Whose messages a request reads.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// The tenant's reporting mailbox (its index).
    Reporting(usize),
    /// Another user's mailbox: the emails alerts say reached it (tenant index, address).
    Recipient(usize, String),
}

/// The mailbox `user` names (its address, case-insensitively); an address outside the tenant
/// is Graph's 404; one the app's policy excludes, 403.
fn resolve(sim: &Sim, who: &Principal, user: &str) -> Result<Store, GraphError> {
    let directory = sim.directory();
    let tenant = directory.get(who.tenant_index).ok_or_else(|| GraphError::not_found("tenant"))?;
    let in_tenant = user.rsplit_once('@').is_some_and(|(_, d)| d.eq_ignore_ascii_case(&tenant.domain));
    if !in_tenant {
        return Err(GraphError::new(StatusCode::NOT_FOUND, "ErrorInvalidUser", format!("The requested user '{user}' is invalid.")));
    }
    let scope = tenant.apps.iter().find(|a| a.client_id == who.client_id).and_then(|a| a.mailbox_scope.clone());
    if scope.is_some_and(|s| !s.iter().any(|m| m.eq_ignore_ascii_case(user))) {
        return Err(out_of_scope());
    }
    let mailboxes = sim.mailboxes();
    let reporting = mailboxes.get(who.tenant_index).is_some_and(|(address, _)| address.eq_ignore_ascii_case(user));
    Ok(if reporting { Store::Reporting(who.tenant_index) } else { Store::Recipient(who.tenant_index, user.to_ascii_lowercase()) })
}

/// Holds the request as long as the scenario says, so concurrent ones overlap.
pub(crate) async fn hold(sim: &Sim) {
    let ms = sim.graph_spec().mailbox_latency_ms;
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Runs `answer` for an authorized, admitted mailbox request.
async fn serve(
    sim: Sim,
    headers: &HeaderMap,
    user: &str,
    roles: &[&str],
    answer: impl FnOnce(&Sim, &GraphCtx, &Store) -> Result<Response, GraphError>,
) -> Response {
    let mut ctx = GraphCtx::new(&sim, headers);
    let gate = (|| {
        let who = authorize(&sim, headers, &mut ctx, roles)?;
        let mailbox = resolve(&sim, &who, user)?;
        Ok::<_, GraphError>((admit(&sim, &who, user, &ctx)?, mailbox))
    })();
    let (admitted, mailbox) = match gate {
        Ok(g) => g,
        Err(e) => return e.into_response(&ctx),
    };
    hold(&sim).await;
    let r = answer(&sim, &ctx, &mailbox).map(|r| ctx.stamp(r)).unwrap_or_else(|e| e.into_response(&ctx));
    drop(admitted);
    r
}

fn visible(sim: &Sim, mailbox: &Store, ctx: &GraphCtx) -> Vec<MailMessage> {
    match mailbox {
        Store::Reporting(i) => {
            let all = sim.mailboxes();
            all.get(*i).map(|(_, m)| m.iter().filter(|m| m.visible <= ctx.now).cloned().collect()).unwrap_or_default()
        }
        Store::Recipient(tenant, address) => {
            recipient_messages(sim, *tenant, address).into_iter().filter(|m| m.visible <= ctx.now).collect()
        }
    }
}

/// The emails alerts say reached `address` (exchange/quarantine.rs `delivered`), as Graph lists
/// them (message.md): the same `internetMessageId`, times in whole seconds (message.md's
/// examples), the folder it is in, and its MIME through `$value`. Visible from its alert on.
fn recipient_messages(sim: &Sim, tenant: usize, address: &str) -> Vec<MailMessage> {
    crate::exchange::quarantine::delivered(sim, tenant)
        .into_iter()
        .filter(|(q, _, _)| q.recipient.eq_ignore_ascii_case(address))
        .map(|(q, folder, created)| {
            let received = crate::time::Instant::from_unix_seconds(q.received.unix_seconds());
            let id = format!("AAMkAD{}=", q.identity.replace(['\\', '-'], ""));
            let address_of = |a: &str| serde_json::json!({"emailAddress": {"name": a, "address": a}});
            let body = serde_json::json!({
                "id": id,
                "internetMessageId": q.message_id,
                "subject": q.subject,
                "from": address_of(&q.sender),
                "sender": address_of(&q.sender),
                "toRecipients": [address_of(&q.recipient)],
                "receivedDateTime": received.seconds_z(),
                "sentDateTime": received.seconds_z(),
                "createdDateTime": received.seconds_z(),
                "hasAttachments": false,
                "isRead": false,
                "importance": "normal",
                "inferenceClassification": "focused",
                "parentFolderId": format!("AAMkA{folder}="),
            });
            MailMessage {
                id,
                received,
                visible: created.max(received),
                body: body.as_object().cloned().unwrap_or_default(),
                mime: q.mime(),
                attachments: Vec::new(),
            }
        })
        .collect()
}

fn list(sim: &Sim, ctx: &GraphCtx, mailbox: &Store, path: &str, query: Option<&str>, user: &str) -> Result<Response, GraphError> {
    let pairs = query_pairs(query);
    let q = CollectionQuery::parse(&pairs.iter().filter(|(k, _)| k != "$select").cloned().collect::<Vec<_>>(), &limits())
        .map_err(|e| GraphError::bad_request(e.message))?;
    if let (Some(f), false) = (&q.filter, q.order.is_empty()) {
        let named = f.properties();
        let sorted: Vec<&str> = q.order.iter().map(|o| o.prop).collect();
        if named.len() < sorted.len() || named[..sorted.len()] != sorted[..] {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "InefficientFilter",
                "The restriction or sort order is too complex for this operation.",
            ));
        }
    }
    let select: Option<Vec<String>> =
        pairs.iter().find(|(k, _)| k == "$select").map(|(_, v)| v.split(',').map(|s| s.trim().to_owned()).collect());
    let mut items: Vec<Map<String, Value>> =
        visible(sim, mailbox, ctx).into_iter().map(|m| m.body).filter(|m| q.filter.as_ref().is_none_or(|f| f.matches(m))).collect();
    if sim.graph_spec().shuffle_ties {
        // No document promises an order of messages received in the same second: a fresh one
        // on every request, which the stable sorts below keep.
        super::collection::shuffle(&mut items, sim.random());
    }
    // Newest first unless asked otherwise (the documented default for messages).
    let key = |m: &Map<String, Value>, p: &str| m.get(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    items.sort_by_key(|m| std::cmp::Reverse(key(m, "receivedDateTime")));
    for o in q.order.iter().rev() {
        items.sort_by(|a, b| if o.desc { key(b, o.prop).cmp(&key(a, o.prop)) } else { key(a, o.prop).cmp(&key(b, o.prop)) });
    }
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(q.offset)
        .take(q.top)
        .map(|mut m| {
            if let Some(s) = &select {
                m.retain(|k, _| k == "id" || s.iter().any(|x| x == k));
            }
            let mut out = Map::new();
            out.insert("@odata.etag".into(), Value::String(format!("W/\"{}\"", m.get("id").and_then(Value::as_str).unwrap_or_default())));
            out.extend(m);
            Value::Object(out)
        })
        .collect();
    let mut body = Map::new();
    body.insert("@odata.context".into(), Value::String(format!("{}/v1.0/$metadata#users('{user}')/messages", sim.base_url)));
    if q.count {
        body.insert("@odata.count".into(), Value::from(total));
    }
    let next = q.offset + page.len();
    if next < total && !page.is_empty() {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs.iter().filter(|(k, _)| k != "$skip") {
            ser.append_pair(k, v);
        }
        ser.append_pair("$skip", &next.to_string());
        body.insert("@odata.nextLink".into(), Value::String(format!("{}{path}?{}", sim.base_url, ser.finish())));
    }
    body.insert("value".into(), Value::Array(page));
    Ok(http::json(StatusCode::OK, &Value::Object(body), http::ODATA_JSON))
}

fn message(sim: &Sim, ctx: &GraphCtx, mailbox: &Store, id: &str) -> Result<MailMessage, GraphError> {
    visible(sim, mailbox, ctx).into_iter().find(|m| m.id == id).ok_or_else(not_in_store)
}

fn not_in_store() -> GraphError {
    GraphError::new(StatusCode::NOT_FOUND, "ErrorItemNotFound", "The specified object was not found in the store.")
}

fn attachment_of<'a>(m: &'a MailMessage, id: &str) -> Result<&'a crate::data::mailbox::MailAttachment, GraphError> {
    m.attachments.iter().find(|a| a.id == id).ok_or_else(not_in_store)
}

fn raw(content_type: &str, bytes: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(bytes));
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert("content-type", v);
    }
    r
}

/// `GET /v1.0/users/{id}/mailFolders/{folder}/messages`: the inbox by its well-known name
/// (mailfolder.md "Well-known folder names") or its id.
pub async fn folder_messages(
    State(sim): State<Sim>,
    Path((user, folder)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    serve(sim, &headers, &user, LIST_ROLES, |sim, ctx, mailbox| {
        if !folder.eq_ignore_ascii_case("inbox") && folder != "AAMkAInbox=" {
            return Err(GraphError::new(
                StatusCode::NOT_FOUND,
                "ErrorItemNotFound",
                "The specified folder could not be found in the store.",
            ));
        }
        list(sim, ctx, mailbox, uri.path(), uri.query(), &user)
    })
    .await
}

/// `GET /v1.0/users/{id}/messages` of the reporting mailbox.
pub async fn mailbox_messages(sim: Sim, user: String, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    serve(sim, &headers, &user, LIST_ROLES, |sim, ctx, mailbox| list(sim, ctx, mailbox, uri.path(), uri.query(), &user)).await
}

/// `GET /v1.0/users/{id}/messages/{id}/$value`.
pub async fn message_mime(State(sim): State<Sim>, Path((user, id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    serve(sim, &headers, &user, CONTENT_ROLES, |sim, ctx, mailbox| {
        Ok(raw("text/plain", message(sim, ctx, mailbox, &id)?.mime.into_bytes()))
    })
    .await
}

/// `GET /v1.0/users/{id}/messages/{id}/attachments`.
pub async fn attachments(State(sim): State<Sim>, Path((user, id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    serve(sim, &headers, &user, CONTENT_ROLES, |sim, ctx, mailbox| {
        let m = message(sim, ctx, mailbox, &id)?;
        let value: Vec<Value> = m.attachments.iter().map(|a| a.resource(m.received)).collect();
        let body = serde_json::json!({
            "@odata.context": format!("{}/v1.0/$metadata#users('{user}')/messages('{id}')/attachments", sim.base_url),
            "value": value,
        });
        Ok(http::json(StatusCode::OK, &body, http::ODATA_JSON))
    })
    .await
}

/// `GET /v1.0/users/{id}/messages/{id}/attachments/{id}` (item with
/// `$expand=microsoft.graph.itemattachment/item`).
pub async fn attachment(
    State(sim): State<Sim>,
    Path((user, id, attachment)): Path<(String, String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    serve(sim, &headers, &user, CONTENT_ROLES, |sim, ctx, mailbox| {
        let m = message(sim, ctx, mailbox, &id)?;
        let a = attachment_of(&m, &attachment)?;
        let mut v = a.resource(m.received);
        let expand = query_pairs(uri.query())
            .into_iter()
            .any(|(k, e)| k == "$expand" && e.eq_ignore_ascii_case("microsoft.graph.itemattachment/item"));
        if let (true, AttachmentKind::Item { item, .. }, Some(o)) = (expand, &a.kind, v.as_object_mut()) {
            o.insert("item".into(), Value::Object(item.clone()));
        }
        Ok(http::json(StatusCode::OK, &v, http::ODATA_JSON))
    })
    .await
}

/// `GET /v1.0/users/{id}/messages/{id}/attachments/{id}/$value`.
pub async fn attachment_raw(
    State(sim): State<Sim>,
    Path((user, id, attachment)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    serve(sim, &headers, &user, CONTENT_ROLES, |sim, ctx, mailbox| {
        let m = message(sim, ctx, mailbox, &id)?;
        let a = attachment_of(&m, &attachment)?;
        let (content_type, bytes) = a.raw();
        Ok(raw(content_type, bytes))
    })
    .await
}
