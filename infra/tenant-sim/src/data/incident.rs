//! Incidents: groups of alerts whose state follows their alerts, rendered as
//! `microsoft.graph.security.incident` (security-incident.md; field order as
//! the security-list-incidents.md sample).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::alert::{AlertRecord, AlertVersion};
use super::enums;
use crate::odata::{Field, FilterSchema, Filterable, Prop, PropKind};
use crate::time::Instant;

/// The `$filter` properties security-list-incidents.md documents.
pub static INCIDENT_FILTER: FilterSchema = FilterSchema {
    entity: "incident",
    props: &[
        Prop { name: "assignedTo", kind: PropKind::String },
        Prop { name: "classification", kind: PropKind::Enum(enums::CLASSIFICATION) },
        Prop { name: "createdDateTime", kind: PropKind::DateTime },
        Prop { name: "determination", kind: PropKind::Enum(enums::DETERMINATION) },
        Prop { name: "lastUpdateDateTime", kind: PropKind::DateTime },
        Prop { name: "severity", kind: PropKind::Enum(enums::SEVERITY) },
        Prop { name: "status", kind: PropKind::Enum(enums::INCIDENT_STATUS) },
    ],
};

#[derive(Debug, Clone)]
pub struct IncidentRecord {
    pub id: String,
    pub tenant_id: String,
    pub display_name: String,
    pub description: String,
    pub assigned_to: Option<String>,
    pub custom_tags: Vec<String>,
    /// Some incidents wait for an approval of an automated action (`awaitingAction`).
    pub awaiting_action: bool,
    /// Indexes into the tenant's alerts.
    pub alerts: Vec<usize>,
    pub verbatim: Option<Arc<Map<String, Value>>>,
    /// Changes made to the incident itself, oldest first.
    pub edits: Vec<IncidentEdit>,
}

/// A change of the incident itself, not of an alert (security-incident-update.md: `PATCH`
/// assignedTo, classification, determination, status; security-incident-post-comments.md): a
/// new version of the incident at `at` (its `lastUpdateDateTime`), listed from `visible_at`.
#[derive(Debug, Clone)]
pub struct IncidentEdit {
    pub at: Instant,
    pub visible_at: Instant,
    pub status: Option<&'static str>,
    pub classification: Option<&'static str>,
    pub determination: Option<&'static str>,
    pub assigned_to: Option<String>,
    pub comment: Option<String>,
}

/// What an incident looks like at one moment, derived from its visible alerts.
#[derive(Debug, Clone)]
pub struct IncidentState<'a> {
    pub created: Instant,
    pub last_update: Instant,
    pub status: &'static str,
    pub severity: &'static str,
    pub classification: &'static str,
    pub determination: &'static str,
    pub assigned_to: Option<&'a str>,
    /// The comments posted on the incident (text, when).
    pub comments: Vec<(&'a str, Instant)>,
    pub alerts: Vec<(&'a AlertRecord, &'a AlertVersion)>,
}

impl IncidentRecord {
    /// None while none of its alerts is visible yet.
    pub fn state<'a>(&'a self, all: &'a [AlertRecord], now: Instant) -> Option<IncidentState<'a>> {
        let alerts: Vec<(&AlertRecord, &AlertVersion)> =
            self.alerts.iter().filter_map(|i| all.get(*i)).filter_map(|a| a.visible(now).map(|v| (a, v))).collect();
        if let Some(m) = &self.verbatim {
            let t = |k: &str| m.get(k).and_then(Value::as_str).and_then(|s| Instant::parse(s).ok()).unwrap_or_default();
            return Some(IncidentState {
                created: t("createdDateTime"),
                last_update: t("lastUpdateDateTime"),
                status: "active",
                severity: "unknown",
                classification: "unknown",
                determination: "unknown",
                assigned_to: None,
                comments: Vec::new(),
                alerts,
            });
        }
        let first = alerts.first()?;
        let created = alerts.iter().map(|(a, _)| a.created).min().unwrap_or(first.0.created);
        let last_update = alerts.iter().map(|(_, v)| v.last_update).max().unwrap_or(first.1.last_update);
        let all_resolved = alerts.iter().all(|(_, v)| v.status == "resolved");
        let status = if all_resolved {
            "resolved"
        } else if alerts.iter().any(|(_, v)| v.status == "inProgress") {
            "inProgress"
        } else if self.awaiting_action {
            "awaitingAction"
        } else {
            "active"
        };
        let rank = |s: &str| enums::SEVERITY.iter().position(|m| *m == s).unwrap_or(0);
        let severity = alerts.iter().map(|(a, _)| a.severity).max_by_key(|s| rank(s)).unwrap_or("unknown");
        let (classification, determination) =
            if all_resolved { (first.1.classification, first.1.determination) } else { ("unknown", "unknown") };
        let mut state = IncidentState {
            created,
            last_update,
            status,
            severity,
            classification,
            determination,
            assigned_to: self.assigned_to.as_deref(),
            comments: Vec::new(),
            alerts,
        };
        // The incident's own changes, as they become visible; a status or verdict set by hand
        // holds until an alert changes after it (Defender reopens an incident on new activity).
        let alerts_last = state.last_update;
        for e in self.edits.iter().filter(|e| e.visible_at <= now) {
            state.last_update = state.last_update.max(e.at);
            if e.at > alerts_last {
                state.status = e.status.unwrap_or(state.status);
                state.classification = e.classification.unwrap_or(state.classification);
                state.determination = e.determination.unwrap_or(state.determination);
            }
            if let Some(who) = &e.assigned_to {
                state.assigned_to = Some(who);
            }
            if let Some(text) = &e.comment {
                state.comments.push((text, e.at));
            }
        }
        Some(state)
    }
}

pub struct IncidentView<'a> {
    pub rec: &'a IncidentRecord,
    pub state: IncidentState<'a>,
}

impl Filterable for IncidentView<'_> {
    fn field(&self, prop: &Prop) -> Field<'_> {
        if let Some(m) = &self.rec.verbatim {
            return m.field(prop);
        }
        let s = |v: &'static str| Field::Str(Cow::Borrowed(v));
        match prop.name {
            "assignedTo" => self.state.assigned_to.map_or(Field::Null, |a| Field::Str(Cow::Borrowed(a))),
            "classification" => s(self.state.classification),
            "determination" => s(self.state.determination),
            "createdDateTime" => Field::Time(self.state.created),
            "lastUpdateDateTime" => Field::Time(self.state.last_update),
            "severity" => s(self.state.severity),
            "status" => s(self.state.status),
            _ => Field::Null,
        }
    }
}

impl IncidentView<'_> {
    pub fn time(&self, prop: &str) -> Instant {
        if let Some(m) = &self.rec.verbatim {
            return m.get(prop).and_then(Value::as_str).and_then(|s| Instant::parse(s).ok()).unwrap_or_default();
        }
        if prop == "createdDateTime" {
            self.state.created
        } else {
            self.state.last_update
        }
    }

    /// The incident without `alerts`; the caller appends them for `$expand`.
    pub fn render(&self, include_unknown: bool) -> Map<String, Value> {
        if let Some(m) = &self.rec.verbatim {
            let mut m = (**m).clone();
            m.remove("alerts");
            if let Some(Value::String(s)) = m.get_mut("status") {
                if !include_unknown && enums::needs_prefer(enums::INCIDENT_STATUS, s) {
                    *s = "unknownFutureValue".into();
                }
            }
            return m;
        }
        let r = self.rec;
        let st = &self.state;
        let tid = &r.tenant_id;
        let resolved = st.status == "resolved";
        let json = json!({
            "@odata.type": "#microsoft.graph.security.incident",
            "id": r.id,
            "incidentWebUrl": format!("https://security.microsoft.com/incidents/{}?tid={tid}", r.id),
            "redirectIncidentId": null,
            "tenantId": tid,
            "displayName": r.display_name,
            "createdDateTime": st.created.graph7(),
            "lastUpdateDateTime": st.last_update.graph7(),
            "assignedTo": st.assigned_to,
            "classification": st.classification,
            "determination": st.determination,
            "status": enums::visible(enums::INCIDENT_STATUS, st.status, include_unknown),
            "severity": st.severity,
            "customTags": r.custom_tags,
            // security-incident.md's alertComment: comment, createdByDisplayName, createdDateTime.
            "comments": st.comments.iter().map(|(text, at)| json!({"comment": text, "createdByDisplayName": "analyst@simulator", "createdDateTime": at.graph7()})).collect::<Vec<_>>(),
            "systemTags": [],
            "description": r.description,
            "summary": null,
            "resolvingComment": if resolved { Some("Resolved after investigation of all alerts.") } else { None },
            "lastModifiedBy": if resolved { st.assigned_to } else { Some("API-App:automated-investigation") },
            "priorityScore": 10 + (st.alerts.len() as i64 * 7).min(80),
        });
        match json {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}
