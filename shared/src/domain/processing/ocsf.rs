//! The alert as an OCSF 1.8.0 Detection Finding (class_uid 2004), for Security Lake and SIEMs
//! that take OCSF without a mapping of their own. The Microsoft object is kept in `raw_data`.

use serde_json::{json, Map, Value};

use crate::domain::graph_alert::{Evidence, FileDetails, GraphAlert};
use crate::domain::time::GraphTime;

pub const OCSF_VERSION: &str = "1.8.0";

fn ms(s: Option<&str>) -> Option<i64> {
    s.and_then(|s| GraphTime::parse(s).ok()).map(|t| t.ticks() / 10_000)
}

/// A JSON object that leaves out absent values (OCSF rejects nulls).
struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Self {
        Obj(Map::new())
    }
    fn set(mut self, k: &str, v: impl Into<Value>) -> Self {
        self.0.insert(k.into(), v.into());
        self
    }
    fn opt<T: Into<Value>>(mut self, k: &str, v: Option<T>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), v.into());
        }
        self
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// Create when the alert is new (created = last updated), Close when resolved, Update otherwise.
pub fn activity(a: &GraphAlert) -> (u8, &'static str) {
    lifecycle(a.status.as_deref() == Some("resolved"), a.created_date_time.as_deref(), a.last_update_date_time.as_deref())
}

/// A finding's activity: Close once closed, Create while never updated, Update otherwise.
fn lifecycle(closed: bool, created: Option<&str>, updated: Option<&str>) -> (u8, &'static str) {
    if closed {
        (3, "Close")
    } else if created.is_some() && ms(created) == ms(updated) {
        (1, "Create")
    } else {
        (2, "Update")
    }
}

/// The attributes a finding of class `class` opens with: its category, class, activity and
/// type, and its severity, status and verdict by id and caption.
fn finding_head(class: (u32, &str), activity: (u8, &str), severity: (u8, &str), status: (u8, &str), verdict: (u8, &str)) -> Obj {
    let ((class_uid, class_name), (activity_id, activity_name)) = (class, activity);
    Obj::new()
        .set("activity_id", activity_id)
        .set("activity_name", activity_name)
        .set("category_uid", 2)
        .set("category_name", "Findings")
        .set("class_uid", class_uid)
        .set("class_name", class_name)
        .set("type_uid", class_uid * 100 + u32::from(activity_id))
        .set("type_name", format!("{class_name}: {activity_name}"))
        .set("severity_id", severity.0)
        .set("severity", severity.1)
        .set("status_id", status.0)
        .set("status", status.1)
        .set("verdict_id", verdict.0)
        .set("verdict", verdict.1)
}

fn severity(s: Option<&str>) -> (u8, &'static str) {
    match s {
        Some("informational") => (1, "Informational"),
        Some("low") => (2, "Low"),
        Some("medium") => (3, "Medium"),
        Some("high") => (4, "High"),
        _ => (0, "Unknown"),
    }
}

fn status(s: Option<&str>) -> (u8, &'static str) {
    match s {
        Some("new") => (1, "New"),
        Some("inProgress") => (2, "In Progress"),
        Some("resolved") => (4, "Resolved"),
        _ => (0, "Unknown"),
    }
}

fn verdict(v: Option<&str>) -> (u8, &'static str) {
    match v {
        Some("falsePositive") => (1, "False Positive"),
        Some("truePositive") | Some("malicious") => (2, "True Positive"),
        Some("suspicious") => (4, "Suspicious"),
        Some("informationalExpectedActivity") | Some("noThreatsFound") => (5, "Benign"),
        _ => (0, "Unknown"),
    }
}

fn product(service_source: Option<&str>) -> &'static str {
    match service_source {
        Some("microsoftDefenderForEndpoint") => "Microsoft Defender for Endpoint",
        Some("microsoftDefenderForIdentity") => "Microsoft Defender for Identity",
        Some("microsoftDefenderForCloudApps") => "Microsoft Defender for Cloud Apps",
        Some("microsoftDefenderForOffice365") => "Microsoft Defender for Office 365",
        Some("azureAdIdentityProtection") => "Microsoft Entra ID Protection",
        Some("dataLossPrevention") => "Microsoft Purview Data Loss Prevention",
        Some("microsoftSentinel") => "Microsoft Sentinel",
        Some("microsoftDefenderForCloud") => "Microsoft Defender for Cloud",
        Some("microsoftInsiderRiskManagement") => "Microsoft Purview Insider Risk Management",
        Some("microsoftAppGovernance") => "App governance",
        _ => "Microsoft Defender XDR",
    }
}

fn file(f: &FileDetails) -> Option<Value> {
    let name = f.file_name.clone()?;
    let hashes: Vec<Value> = [(2, "SHA-1", &f.sha1), (3, "SHA-256", &f.sha256), (1, "MD5", &f.md5)]
        .into_iter()
        .filter_map(|(id, alg, v)| v.as_ref().map(|v| json!({"algorithm_id": id, "algorithm": alg, "value": v})))
        .collect();
    let path = f.file_path.as_ref().map(|p| format!("{}\\{name}", p.trim_end_matches(['\\', '/'])));
    Some(
        Obj::new()
            .set("name", name)
            .set("type_id", 1)
            .set("type", "Regular File")
            .opt("path", path)
            .opt("parent_folder", f.file_path.clone())
            .opt("size", f.file_size)
            .opt("company_name", f.file_publisher.clone())
            .opt("hashes", (!hashes.is_empty()).then_some(Value::Array(hashes)))
            .done(),
    )
}

fn evidence(e: &Evidence) -> Option<Value> {
    let (vid, vname) = verdict(e.verdict.as_deref());
    let base = Obj::new().set("verdict_id", vid).set("verdict", vname);
    let artifact = match e.kind() {
        "deviceEvidence" => {
            if e.mde_device_id.is_none() && e.device_dns_name.is_none() {
                return None;
            }
            let d = Obj::new()
                .opt("uid", e.mde_device_id.clone())
                .opt("hostname", e.device_dns_name.clone())
                .set("type_id", 0)
                .set("type", "Unknown");
            ("device", d.done())
        }
        "fileEvidence" => ("file", file(e.file_details.as_ref()?)?),
        "processEvidence" => {
            let user = e.user_account.as_ref().and_then(|u| {
                u.account_name
                    .as_ref()
                    .map(|n| Obj::new().set("name", n.clone()).opt("domain", u.domain_name.clone()).opt("uid", u.user_sid.clone()).done())
            });
            let p = Obj::new()
                .set("pid", e.process_id.unwrap_or(0))
                .opt("name", e.image_file.as_ref().and_then(|f| f.file_name.clone()))
                .opt("cmd_line", e.process_command_line.clone())
                .opt("file", e.image_file.as_ref().and_then(file))
                .opt("user", user);
            ("process", p.done())
        }
        "userEvidence" | "mailboxEvidence" => {
            let u = e.user_account.as_ref();
            let name =
                u.and_then(|u| u.user_principal_name.clone().or_else(|| u.account_name.clone())).or_else(|| e.primary_address.clone())?;
            let user = Obj::new()
                .set("name", name)
                .opt("uid", u.and_then(|u| u.azure_ad_user_id.clone().or_else(|| u.user_sid.clone())))
                .opt("domain", u.and_then(|u| u.domain_name.clone()));
            ("user", user.done())
        }
        "analyzedMessageEvidence" | "submissionMailEvidence" => {
            let from = e.p1_sender.as_ref().and_then(|s| s.email_address.as_deref()).or(e.sender.as_deref()).and_then(address);
            let to = e.recipient_email_address.as_deref().or(e.recipient.as_deref()).and_then(address);
            if from.is_none() && to.is_none() {
                // The class requires one of them, as an address.
                return None;
            }
            let ip = e.sender_ip.as_deref().filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
            let email = Obj::new()
                .opt("from", from)
                .opt("to", to.map(|t| vec![t]))
                .opt("message_uid", e.internet_message_id.clone())
                .opt("uid", e.network_message_id.clone())
                .opt("subject", e.subject.clone())
                .opt("x_originating_ip", ip.map(|ip| vec![ip.to_owned()]));
            ("email", email.done())
        }
        "ipEvidence" => ("src_endpoint", json!({"ip": e.ip_address.clone()?})),
        "urlEvidence" => ("url", json!({"url_string": e.url.clone()?})),
        _ => return None,
    };
    Some(base.set(artifact.0, artifact.1).done())
}

/// An address as OCSF's email_t takes it (local part of the allowed characters, `@`, a
/// dotted domain); anything else is left out rather than failing the finding.
fn address(s: &str) -> Option<String> {
    let (local, domain) = s.split_once('@')?;
    let local_ok = !local.is_empty() && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+,-./=?^_`{|}~".contains(&b));
    let (first, rest) = domain.split_once('.')?;
    let label = |t: &str, dots: bool| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || (dots && b == b'.'));
    (local_ok && label(first, false) && label(rest, true)).then(|| s.to_owned())
}

/// MITRE ids like `T1564.001` as OCSF attacks (technique and sub-technique by id).
fn attacks(techniques: &[String]) -> Vec<Value> {
    techniques
        .iter()
        .map(|t| match t.split_once('.') {
            Some((tech, _)) => json!({"technique": {"uid": tech}, "sub_technique": {"uid": t}}),
            None => json!({"technique": {"uid": t}}),
        })
        .collect()
}

/// What an alert found, as a Detection Finding's `finding_info` and an Incident Finding's
/// `finding_info_list` entries carry it.
fn finding_info(a: &GraphAlert) -> Obj {
    let analytic = a.detector_id.as_ref().map(|d| json!({"uid": d, "type_id": 0, "type": "Unknown"}));
    Obj::new()
        .set("uid", a.id.clone())
        .opt("uid_alt", a.provider_alert_id.clone())
        .opt("title", a.title.clone())
        .opt("desc", a.description.clone())
        .opt("types", a.category.clone().map(|c| vec![c]))
        .opt("src_url", a.alert_web_url.clone())
        .opt("created_time", ms(a.created_date_time.as_deref()))
        .opt("modified_time", ms(a.last_update_date_time.as_deref()))
        .opt("first_seen_time", ms(a.first_activity_date_time.as_deref()))
        .opt("last_seen_time", ms(a.last_activity_date_time.as_deref()))
        .opt("analytic", analytic)
        .opt("attacks", (!a.mitre_techniques.is_empty()).then(|| attacks(&a.mitre_techniques)))
}

/// An incident's status as OCSF's (the fixture README's mapping): `active` is the open state,
/// `redirected` (merged into another) is closed.
fn incident_status(s: Option<&str>) -> (u8, &'static str) {
    match s {
        Some("active") => (1, "New"),
        Some("inProgress") => (2, "In Progress"),
        Some("awaitingAction") => (3, "On Hold"),
        Some("resolved") => (4, "Resolved"),
        Some("redirected") => (5, "Closed"),
        _ => (0, "Unknown"),
    }
}

/// The name OCSF's Incident Finding gives an incident nobody is assigned: the class requires
/// an assignee or an assignee group, and Graph's `assignedTo` is empty until someone takes it.
pub const UNASSIGNED_GROUP: &str = "Unassigned";

/// Renders an incident version as an Incident Finding (class 2005); `alerts` are the incident's
/// alerts as Graph gave them (each also a Detection Finding of its own when published).
pub fn incident_finding(m: &crate::domain::processing::incident::IncidentMessage, alerts: &[&GraphAlert]) -> Value {
    let f = &m.incident;
    let closed = matches!(f.status.as_deref(), Some("resolved" | "redirected"));
    let activity = lifecycle(closed, f.created_at.as_deref(), f.last_update_at.as_deref());
    let updated = ms(f.last_update_at.as_deref());
    let start = alerts.iter().filter_map(|a| ms(a.first_activity_date_time.as_deref())).min();
    let end = alerts.iter().filter_map(|a| ms(a.last_activity_date_time.as_deref())).max();
    let listed: Vec<Value> =
        alerts.iter().take(crate::domain::processing::incident::MAX_LISTED_ALERTS).map(|a| finding_info(a).done()).collect();
    let metadata = Obj::new()
        .set("version", OCSF_VERSION)
        .set("profiles", vec!["incident"])
        .set("product", json!({"name": "Microsoft Defender XDR", "vendor_name": "Microsoft"}))
        .set("uid", m.dedup_key.clone())
        .set("original_event_uid", f.id.clone())
        .set("correlation_uid", f.id.clone())
        .set("tenant_uid", m.tenant_id.clone())
        .opt("modified_time", updated)
        .opt("labels", (!f.tags.is_empty()).then(|| f.tags.clone()));
    let (assignee, group) = match &f.assigned_to {
        Some(who) => (Some(json!({"name": who})), None),
        None => (None, Some(json!({"name": UNASSIGNED_GROUP}))),
    };
    let comments: Vec<Value> = f
        .comments
        .iter()
        .map(|c| {
            Obj::new()
                .set("comment", c.comment.clone())
                .opt("createdBy", c.created_by.clone())
                .opt("createdTime", c.created_at.clone())
                .done()
        })
        .collect();
    let unmapped = Obj::new()
        .opt("determination", f.determination.clone())
        .opt("classification", f.classification.clone())
        .opt("systemTags", (!f.system_tags.is_empty()).then(|| f.system_tags.clone()))
        .opt("comments", (!comments.is_empty()).then_some(comments))
        .set("commentsTotal", f.comments_total)
        .opt("summary", f.summary.clone())
        .opt("resolvingComment", f.resolving_comment.clone())
        .opt("lastModifiedBy", f.last_modified_by.clone())
        .opt("priorityScore", f.priority_score)
        .opt("redirectIncidentId", f.redirect_incident_id.clone())
        .set("dedup_key", m.dedup_key.clone())
        .set("alerts", serde_json::to_value(&m.alerts).unwrap_or_default())
        .set("alertsTotal", m.alerts_total);
    let head = finding_head(
        (2005, "Incident Finding"),
        activity,
        severity(f.severity.as_deref()),
        incident_status(f.status.as_deref()),
        verdict(f.classification.as_deref()),
    );
    head.set("time", ms(f.created_at.as_deref()).or(updated).unwrap_or(0))
        .opt("start_time", start)
        .opt("end_time", end)
        .opt("message", f.display_name.clone())
        .opt("desc", f.description.clone())
        .opt("src_url", f.web_url.clone())
        .opt("assignee", assignee)
        .opt("assignee_group", group)
        .opt("comment", f.comments.last().map(|c| c.comment.clone()))
        .set("metadata", metadata.done())
        .set("finding_info_list", listed)
        .set("unmapped", unmapped.done())
        .done()
}

/// An Incident Finding without its alerts' descriptions (each alert's own Detection Finding
/// keeps its own): what a long incident leaves out first to fit a message.
pub fn without_alert_descriptions(finding: &mut Value) {
    for f in finding.get_mut("finding_info_list").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(o) = f.as_object_mut() {
            o.remove("desc");
        }
    }
    if let Some(u) = finding.pointer_mut("/unmapped").and_then(Value::as_object_mut) {
        u.remove("comments");
    }
}

/// Renders a Detection Finding; `raw` is the Microsoft object as received.
pub fn detection_finding(a: &GraphAlert, raw: &str) -> Value {
    let head = finding_head(
        (2004, "Detection Finding"),
        activity(a),
        severity(a.severity.as_deref()),
        status(a.status.as_deref()),
        verdict(a.classification.as_deref()),
    );
    let updated = ms(a.last_update_date_time.as_deref());
    let finding = finding_info(a);
    let feature = a.detection_source.as_ref().map(|d| json!({"name": d}));
    let metadata = Obj::new()
        .set("version", OCSF_VERSION)
        .set("profiles", vec!["security_control"])
        .set(
            "product",
            Obj::new().set("name", product(a.service_source.as_deref())).set("vendor_name", "Microsoft").opt("feature", feature).done(),
        )
        .set("uid", a.id.clone())
        .opt("correlation_uid", a.incident_id.clone())
        .opt("tenant_uid", a.tenant_id.clone())
        .opt("modified_time", updated);
    let evidences: Vec<Value> = a.evidence.iter().filter_map(evidence).collect();
    let resources: Vec<Value> = a
        .evidence
        .iter()
        .filter(|e| e.kind() == "deviceEvidence")
        .filter_map(|e| {
            e.mde_device_id
                .as_ref()
                .map(|id| Obj::new().set("uid", id.clone()).opt("name", e.device_dns_name.clone()).set("type", "Device").done())
        })
        .collect();
    let mut unmapped = Obj::new()
        .opt("classification", a.classification.clone())
        .opt("determination", a.determination.clone())
        .opt("serviceSource", a.service_source.clone())
        .opt("incidentWebUrl", a.incident_web_url.clone())
        .opt("threatDisplayName", a.threat_display_name.clone());
    let other: Vec<&str> = a.evidence.iter().filter(|e| evidence(e).is_none()).map(Evidence::kind).collect();
    if !other.is_empty() {
        unmapped = unmapped.set("unmappedEvidenceTypes", other);
    }
    head.set("time", updated.or(ms(a.created_date_time.as_deref())).unwrap_or(0))
        .opt("start_time", ms(a.first_activity_date_time.as_deref()))
        .opt("end_time", ms(a.last_activity_date_time.as_deref()))
        .opt("message", a.title.clone())
        .set("is_alert", true)
        .set("metadata", metadata.done())
        .set("finding_info", finding.done())
        .opt("evidences", (!evidences.is_empty()).then_some(evidences))
        .opt("resources", (!resources.is_empty()).then_some(resources))
        .opt("remediation", a.recommended_actions.clone().map(|d| json!({"desc": d})))
        .set("raw_data", raw)
        .set("unmapped", unmapped.done())
        .done()
}

/// One evidence item as an OCSF evidence artifact: the file (at its `s3://` uri once stored)
/// and its device, or the email and, once stored, its `.eml`.
pub fn evidence_of_item(item: &crate::domain::processing::output::EvidenceItem) -> Value {
    let stored = item.artifact.as_ref().map(|r| {
        let name = r.key.rsplit('/').next().unwrap_or(&r.key).to_owned();
        Obj::new()
            .set("name", name)
            .set("type_id", 1)
            .set("type", "Regular File")
            .set("uri", format!("s3://{}/{}", r.bucket, r.key))
            .set("size", r.size)
            .opt("mime_type", r.content_type.clone())
            .set("hashes", vec![json!({"algorithm_id": 3, "algorithm": "SHA-256", "value": r.sha256})])
            .done()
    });
    let mut evidence = Obj::new().set("name", format!("{} evidence: {}", item.kind, item.status)).set("uid", item.id.clone());
    match item.kind.as_str() {
        "file" => {
            let hashes: Vec<Value> = [(2, "SHA-1", &item.sha1), (3, "SHA-256", &item.sha256)]
                .into_iter()
                .filter_map(|(id, alg, v)| v.as_ref().map(|v| json!({"algorithm_id": id, "algorithm": alg, "value": v})))
                .collect();
            let name = item.path.as_deref().and_then(|p| p.rsplit(['\\', '/']).next()).unwrap_or("file").to_owned();
            let file = stored.unwrap_or_else(|| Obj::new().set("name", name).set("type_id", 1).set("type", "Regular File").done());
            let mut file = file;
            if let Some(o) = file.as_object_mut() {
                if let Some(p) = &item.path {
                    o.insert("path".into(), json!(p));
                }
                if !hashes.is_empty() {
                    o.insert("hashes".into(), Value::Array(hashes));
                }
            }
            evidence = evidence.set("file", file);
            if let Some(d) = &item.device_id {
                evidence = evidence.set("device", json!({"uid": d, "type_id": 0, "type": "Unknown"}));
            }
        }
        _ => {
            let mut email = Obj::new().opt("message_uid", item.internet_message_id.clone());
            if let Some(to) = item.recipient.as_deref().and_then(address) {
                email = email.set("to", vec![to]);
            }
            if let Some(h) = &item.headers {
                email = email.opt("subject", h.subject.clone());
            }
            evidence = evidence.set("email", email.done()).opt("file", stored);
        }
    }
    evidence.done()
}

/// The alert's context as OCSF enrichments (one per user, device and file, the data being the
/// v1 message's object for it), and how each part went under `unmapped.m365ingest_enrichment`.
pub fn attach_context(finding: &mut Value, c: &crate::domain::processing::context::ContextSection) -> Option<()> {
    let o = finding.as_object_mut()?;
    let mut enrichments: Vec<Value> = Vec::new();
    for u in &c.users {
        let value = u.upn.clone().or_else(|| u.id.clone()).unwrap_or_default();
        enrichments.push(json!({"name": "user", "value": value, "type": "user_context", "provider": "Microsoft Graph", "data": u}));
    }
    for d in &c.devices {
        enrichments.push(
            json!({"name": "device", "value": d.id, "type": "device_context", "provider": "Microsoft Defender for Endpoint", "data": d}),
        );
    }
    for f in &c.files {
        enrichments.push(
            json!({"name": "file", "value": f.hash, "type": "file_context", "provider": "Microsoft Defender for Endpoint", "data": f}),
        );
    }
    if !enrichments.is_empty() {
        o.entry("enrichments").or_insert_with(|| Value::Array(Vec::new())).as_array_mut()?.extend(enrichments);
    }
    let unmapped = o.entry("unmapped").or_insert_with(|| json!({})).as_object_mut()?;
    unmapped.insert("m365ingest_enrichment".into(), serde_json::to_value(&c.enrichment).ok()?);
    Some(())
}

/// Puts an alert's evidence into its finding: each item in `evidences` (a stored file or `.eml`
/// at its `s3://` uri) and `unmapped.m365ingest_evidence` = `{status, delivery, released_at,
/// items: [{id, kind, status, detail}]}`, the ids the evidence updates name. `None` when the
/// finding is not an object.
pub fn attach_evidence(finding: &mut Value, r: &crate::domain::processing::output::EvidenceRetrieval) -> Option<()> {
    let o = finding.as_object_mut()?;
    if !r.items.is_empty() {
        let evidences = o.entry("evidences").or_insert_with(|| Value::Array(Vec::new())).as_array_mut()?;
        evidences.extend(r.items.iter().map(evidence_of_item));
    }
    let listed: Vec<Value> = r.items.iter().map(|i| json!({"id": i.id, "kind": i.kind, "status": i.status, "detail": i.detail})).collect();
    let unmapped = o.entry("unmapped").or_insert_with(|| Value::Object(Default::default())).as_object_mut()?;
    let mut ev = json!({"status": r.status, "items": listed});
    if let Some(reason) = &r.reason {
        ev["reason"] = json!(reason);
    }
    if let Some(d) = &r.delivery {
        ev["delivery"] = json!(d);
    }
    if let Some(t) = &r.released_at {
        ev["released_at"] = json!(t.to_string());
    }
    unmapped.insert("m365ingest_evidence".into(), ev);
    Some(())
}

/// Says in `unmapped.m365ingest_text_replaced` = `{count, original_bytes}` that escapes which
/// decode to no character were read as U+FFFD in the finding and its `raw_data`, and where
/// Microsoft's bytes are.
pub fn attach_text_replaced(finding: &mut Value, t: &crate::domain::processing::output::TextReplaced) -> Option<()> {
    let unmapped = finding.as_object_mut()?.entry("unmapped").or_insert_with(|| json!({})).as_object_mut()?;
    unmapped.insert("m365ingest_text_replaced".into(), serde_json::to_value(t).ok()?);
    Some(())
}

/// An evidence update as a Detection Finding of activity Update: the same finding (`uid` = the
/// alert id), with the retrieved file or email as its evidence (`file.uri` = where it is stored)
/// and how the job ended in `unmapped.m365ingest_evidence`.
pub fn evidence_update(u: &crate::domain::processing::output::EvidenceUpdate, title: &str, alert_severity: Option<&str>) -> Value {
    let (severity_id, severity_name) = severity(alert_severity);
    let item = &u.item;
    let time = u.processed_at.ticks() / 10_000;
    let unmapped = json!({"m365ingest_evidence": {
        "status": item.status, "detail": item.detail, "dedup_key": u.dedup_key, "alert_version": u.alert_version.to_string(),
        "integration_id": u.integration_id,
    }});
    Obj::new()
        .set("activity_id", 2)
        .set("activity_name", "Update")
        .set("category_uid", 2)
        .set("category_name", "Findings")
        .set("class_uid", 2004)
        .set("class_name", "Detection Finding")
        .set("type_uid", 200_402)
        .set("type_name", "Detection Finding: Update")
        .set("severity_id", severity_id)
        .set("severity", severity_name)
        .set("time", time)
        .set("message", format!("{} evidence {}: {title}", item.kind, item.status))
        .set("is_alert", true)
        .set(
            "metadata",
            json!({"version": OCSF_VERSION, "profiles": ["security_control"], "uid": item.id,
                   "product": {"name": "m365-ingest evidence retrieval", "vendor_name": "m365-ingest"},
                   "tenant_uid": u.tenant_id, "modified_time": time}),
        )
        .set("finding_info", json!({"uid": u.alert_id, "title": title, "modified_time": time}))
        .set("evidences", vec![evidence_of_item(item)])
        .set("unmapped", unmapped)
        .done()
}
