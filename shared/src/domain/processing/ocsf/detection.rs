//! The Detection Finding (class 2004) of an alert, and of an evidence update to it.

use serde_json::{json, Value};

use super::alert::{evidence, finding_info, product};
use super::attachments::evidence_of_item;
use super::fields::{finding_head, lifecycle, ms, severity, status, verdict, Obj, OCSF_VERSION};
use crate::domain::graph_alert::{Evidence, GraphAlert};

/// Create when the alert is new (created = last updated), Close when resolved, Update otherwise.
pub fn activity(a: &GraphAlert) -> (u8, &'static str) {
    lifecycle(a.status.as_deref() == Some("resolved"), a.created_date_time.as_deref(), a.last_update_date_time.as_deref())
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
