//! An alert and its versions over time, rendered in the shape of Graph's
//! `microsoft.graph.security.alert` (security-alert.md; field order as the
//! security-list-alerts_v2.md sample).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::enums;
use super::kinds::{self, AlertKind};
use super::pool::Pool;
use crate::ids;
use crate::odata::{Field, FilterSchema, Filterable, Prop, PropKind};
use crate::time::Instant;

/// The `$filter` properties security-list-alerts_v2.md documents.
pub static ALERT_FILTER: FilterSchema = FilterSchema {
    entity: "alert",
    props: &[
        Prop { name: "assignedTo", kind: PropKind::String },
        Prop { name: "classification", kind: PropKind::Enum(enums::CLASSIFICATION) },
        Prop { name: "determination", kind: PropKind::Enum(enums::DETERMINATION) },
        Prop { name: "createdDateTime", kind: PropKind::DateTime },
        Prop { name: "lastUpdateDateTime", kind: PropKind::DateTime },
        Prop { name: "severity", kind: PropKind::Enum(enums::SEVERITY) },
        Prop { name: "serviceSource", kind: PropKind::Enum(enums::SERVICE_SOURCE) },
        Prop { name: "status", kind: PropKind::Enum(enums::ALERT_STATUS) },
    ],
};

#[derive(Debug, Clone)]
pub struct Comment {
    pub text: String,
    pub by: String,
    pub at: Instant,
}

/// One state of an alert: what Graph returns between two of its updates.
#[derive(Debug, Clone)]
pub struct AlertVersion {
    pub last_update: Instant,
    /// When this version shows up in Graph: `last_update` plus ingestion latency.
    pub visible_at: Instant,
    pub status: &'static str,
    pub classification: &'static str,
    pub determination: &'static str,
    pub assigned_to: Option<String>,
    pub comments: Vec<Comment>,
    pub resolved: Option<Instant>,
}

#[derive(Debug, Clone)]
pub enum AlertBody {
    /// Rendered on demand from (seed, kind): memory stays small for 100k alerts.
    Generated { kind: AlertKind, seed: u64, big_evidence: bool },
    /// Served exactly as loaded (Microsoft's doc samples).
    Verbatim(Arc<Map<String, Value>>),
}

#[derive(Debug, Clone)]
pub struct AlertRecord {
    pub id: String,
    pub tenant_id: String,
    pub incident_id: String,
    pub created: Instant,
    pub first_activity: Instant,
    pub severity: &'static str,
    pub service_source: &'static str,
    pub detection_source: &'static str,
    pub body: AlertBody,
    /// Ascending by `last_update`.
    pub versions: Vec<AlertVersion>,
}

impl AlertRecord {
    /// The version Graph shows at `now`: the newest one already ingested.
    pub fn visible(&self, now: Instant) -> Option<&AlertVersion> {
        self.versions.iter().filter(|v| v.visible_at <= now).max_by_key(|v| v.last_update)
    }

    pub fn view<'a>(&'a self, v: &'a AlertVersion) -> AlertView<'a> {
        AlertView { rec: self, ver: v }
    }
}

#[derive(Clone, Copy)]
pub struct AlertView<'a> {
    pub rec: &'a AlertRecord,
    pub ver: &'a AlertVersion,
}

impl Filterable for AlertView<'_> {
    fn field(&self, prop: &Prop) -> Field<'_> {
        if let AlertBody::Verbatim(m) = &self.rec.body {
            return m.field(prop);
        }
        let s = |v: &'static str| Field::Str(Cow::Borrowed(v));
        match prop.name {
            "assignedTo" => self.ver.assigned_to.as_deref().map_or(Field::Null, |a| Field::Str(Cow::Borrowed(a))),
            "classification" => s(self.ver.classification),
            "determination" => s(self.ver.determination),
            "createdDateTime" => Field::Time(self.rec.created),
            "lastUpdateDateTime" => Field::Time(self.ver.last_update),
            "severity" => s(self.rec.severity),
            "serviceSource" => s(self.rec.service_source),
            "status" => s(self.ver.status),
            _ => Field::Null,
        }
    }
}

impl AlertView<'_> {
    /// The sort key for `$orderby` on a date property.
    pub fn time(&self, prop: &str) -> Instant {
        match self.field(&Prop {
            name: match prop {
                "createdDateTime" => "createdDateTime",
                _ => "lastUpdateDateTime",
            },
            kind: PropKind::DateTime,
        }) {
            Field::Time(t) => t,
            _ => Instant::default(),
        }
    }

    /// The alert as Graph serialises it. `include_unknown` mirrors the
    /// `Prefer: include-unknown-enum-members` request header.
    pub fn render(&self, pool: &Pool, include_unknown: bool) -> Map<String, Value> {
        match &self.rec.body {
            AlertBody::Verbatim(m) => {
                let mut m = (**m).clone();
                mask_enums(&mut m, include_unknown);
                m
            }
            AlertBody::Generated { kind, seed, big_evidence } => self.render_generated(*kind, *seed, *big_evidence, pool, include_unknown),
        }
    }

    fn render_generated(&self, kind: AlertKind, seed: u64, big: bool, pool: &Pool, include_unknown: bool) -> Map<String, Value> {
        let r = self.rec;
        let v = self.ver;
        let mut rng = ids::rng(seed, 7);
        let b = kinds::build(kind, &mut rng, pool, r.created, big);
        let tid = &r.tenant_id;
        let mut evidence = b.evidence;
        for e in &mut evidence {
            if let Some(Value::String(s)) = e.get_mut("remediationStatus") {
                if enums::needs_prefer(enums::REMEDIATION_STATUS, s) && !include_unknown {
                    *s = "unknownFutureValue".into();
                }
            }
        }
        let comments: Vec<Value> =
            v.comments.iter().map(|c| json!({"comment": c.text, "createdByDisplayName": c.by, "createdDateTime": c.at.graph7()})).collect();
        let last_activity = r.first_activity.plus_secs((r.created.0 - r.first_activity.0) / 10_000_000 / 2);
        let json = json!({
            "@odata.type": "#microsoft.graph.security.alert",
            "id": r.id,
            "providerAlertId": r.id,
            "incidentId": r.incident_id,
            "status": v.status,
            "severity": r.severity,
            "classification": v.classification,
            "determination": v.determination,
            "serviceSource": enums::visible(enums::SERVICE_SOURCE, r.service_source, include_unknown),
            "detectionSource": enums::visible(enums::DETECTION_SOURCE, r.detection_source, include_unknown),
            "detectorId": b.detector_id,
            "tenantId": tid,
            "title": b.title,
            "description": b.description,
            "recommendedActions": b.recommended_actions,
            "category": b.category,
            "assignedTo": v.assigned_to,
            "alertWebUrl": format!("https://security.microsoft.com/alerts/{}?tid={tid}", r.id),
            "incidentWebUrl": format!("https://security.microsoft.com/incidents/{}?tid={tid}", r.incident_id),
            "actorDisplayName": b.actor_display_name,
            "threatDisplayName": b.threat_display_name,
            "threatFamilyName": b.threat_family_name,
            "mitreTechniques": b.mitre,
            "createdDateTime": r.created.graph7(),
            "lastUpdateDateTime": v.last_update.graph7(),
            "resolvedDateTime": v.resolved.map(Instant::graph7),
            "firstActivityDateTime": r.first_activity.graph3(),
            "lastActivityDateTime": last_activity.graph3(),
            "comments": comments,
            "evidence": evidence,
            "systemTags": b.system_tags,
            "investigationState": if r.service_source == "microsoftDefenderForEndpoint" { "successfullyRemediated" } else { "unknown" },
            "productName": b.product_name,
            "alertPolicyId": b.alert_policy_id,
            "additionalData": b.additional_data,
            "customDetails": {},
        });
        match json {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// Masks evolvable-enum members a caller did not opt in to, in a verbatim object.
pub fn mask_enums(m: &mut Map<String, Value>, include_unknown: bool) {
    if include_unknown {
        return;
    }
    for (key, members) in [("serviceSource", enums::SERVICE_SOURCE), ("detectionSource", enums::DETECTION_SOURCE)] {
        if let Some(Value::String(s)) = m.get_mut(key) {
            if enums::needs_prefer(members, s) {
                *s = "unknownFutureValue".into();
            }
        }
    }
    if let Some(Value::Array(ev)) = m.get_mut("evidence") {
        for e in ev {
            if let Some(Value::String(s)) = e.get_mut("remediationStatus") {
                if enums::needs_prefer(enums::REMEDIATION_STATUS, s) {
                    *s = "unknownFutureValue".into();
                }
            }
        }
    }
}
