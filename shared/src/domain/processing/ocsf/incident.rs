//! The Incident Finding (class 2005) of an incident version, and its shortened form.

use serde_json::{json, Value};

use super::alert::finding_info;
use super::fields::{finding_head, lifecycle, ms, severity, verdict, Obj, OCSF_VERSION};
use crate::domain::graph_alert::GraphAlert;

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
