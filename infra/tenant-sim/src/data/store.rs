//! One tenant's security data: generated timeline plus verbatim doc samples,
//! with lookups by id and the changes tests make while a scenario runs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::alert::{AlertBody, AlertRecord, AlertVersion, Comment};
use super::generate::{self, Timeline};
use super::incident::IncidentRecord;
use super::pool::Pool;
use crate::ids;
use crate::scenario::TenantSpec;
use crate::time::Instant;

#[derive(Debug)]
pub struct TenantData {
    pub tenant_id: String,
    pub domain: String,
    pub pool: Pool,
    pub alerts: Vec<AlertRecord>,
    pub incidents: Vec<IncidentRecord>,
    alert_index: HashMap<String, usize>,
    incident_index: HashMap<String, usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("tenant {tenant}: {source}")]
    Plan { tenant: String, source: generate::PlanError },
    #[error("seed file {path}: {reason}")]
    Seed { path: String, reason: String },
}

/// A change to an alert, applied as a new version at the simulated `now`.
#[derive(Debug, Clone, Default)]
pub struct AlertChange {
    pub status: Option<&'static str>,
    pub classification: Option<&'static str>,
    pub determination: Option<&'static str>,
    pub assigned_to: Option<String>,
    pub comment: Option<String>,
}

impl TenantData {
    pub fn build(spec: &TenantSpec, tenant_no: usize, seed: u64, start: Instant) -> Result<Self, LoadError> {
        let mut rng = ids::rng(seed ^ tenant_no as u64, 0);
        let pool = Pool::generate(&mut rng, &spec.domain, spec.alerts.pool_size);
        let Timeline { alerts, incidents } = generate::generate(&spec.alerts, &spec.id, tenant_no, &pool, seed, start)
            .map_err(|source| LoadError::Plan { tenant: spec.id.clone(), source })?;
        let mut t = TenantData {
            tenant_id: spec.id.clone(),
            domain: spec.domain.clone(),
            pool,
            alerts,
            incidents,
            alert_index: HashMap::new(),
            incident_index: HashMap::new(),
        };
        for f in &spec.seed_files {
            t.load_seed_file(f)?;
        }
        t.reindex();
        Ok(t)
    }

    fn reindex(&mut self) {
        self.alert_index = self.alerts.iter().enumerate().map(|(i, a)| (a.id.clone(), i)).collect();
        self.incident_index = self.incidents.iter().enumerate().map(|(i, a)| (a.id.clone(), i)).collect();
    }

    pub fn alert(&self, id: &str) -> Option<&AlertRecord> {
        self.alert_index.get(id).and_then(|i| self.alerts.get(*i))
    }

    pub fn incident(&self, id: &str) -> Option<&IncidentRecord> {
        self.incident_index.get(id).and_then(|i| self.incidents.get(*i))
    }

    /// Loads a Graph list response (`{"value": [...]}`) of alerts or incidents
    /// to be served exactly as written.
    pub fn load_seed_file(&mut self, path: &Path) -> Result<(), LoadError> {
        let err = |reason: String| LoadError::Seed { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let v: Value = serde_json::from_str(&crate::wtf16::stand_ins_for_escapes(&text)).map_err(|e| err(e.to_string()))?;
        self.load_seed_value(&v).map_err(err)
    }

    pub fn load_seed_value(&mut self, v: &Value) -> Result<(), String> {
        let items = v.get("value").and_then(Value::as_array).ok_or("expected an object with a `value` array")?;
        for item in items {
            let obj = item.as_object().ok_or("every item of `value` must be an object")?;
            match obj.get("@odata.type").and_then(Value::as_str) {
                Some("#microsoft.graph.security.alert") => {
                    self.push_verbatim_alert(obj.clone())?;
                }
                Some("#microsoft.graph.security.incident") => {
                    let mut inc = obj.clone();
                    let mut members = Vec::new();
                    if let Some(Value::Array(alerts)) = inc.remove("alerts") {
                        for a in alerts {
                            let a = a.as_object().ok_or("incident alerts must be objects")?.clone();
                            members.push(self.push_verbatim_alert(a)?);
                        }
                    }
                    let id = inc.get("id").and_then(Value::as_str).ok_or("incident without `id`")?.to_owned();
                    self.incidents.push(IncidentRecord {
                        id,
                        tenant_id: self.tenant_id.clone(),
                        display_name: String::new(),
                        description: String::new(),
                        assigned_to: None,
                        custom_tags: Vec::new(),
                        awaiting_action: false,
                        alerts: members,
                        verbatim: Some(Arc::new(inc)),
                        edits: Vec::new(),
                    });
                }
                other => return Err(format!("unsupported @odata.type {other:?}; expected a security alert or incident")),
            }
        }
        self.reindex();
        Ok(())
    }

    fn push_verbatim_alert(&mut self, obj: Map<String, Value>) -> Result<usize, String> {
        let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        let id = s("id").ok_or("alert without `id`")?;
        if let Some(i) = self.alert_index.get(&id) {
            return Ok(*i);
        }
        let time = |k: &str| -> Result<Instant, String> {
            let v = s(k).ok_or(format!("alert {id} has no `{k}`"))?;
            Instant::parse(&v).map_err(|e| e.to_string())
        };
        let last_update = time("lastUpdateDateTime")?;
        let created = time("createdDateTime")?;
        self.alerts.push(AlertRecord {
            id: id.clone(),
            tenant_id: self.tenant_id.clone(),
            incident_id: s("incidentId").unwrap_or_default(),
            created,
            first_activity: created,
            severity: "unknown",
            service_source: "unknown",
            detection_source: "unknown",
            body: AlertBody::Verbatim(Arc::new(obj)),
            versions: vec![AlertVersion {
                last_update,
                visible_at: last_update,
                status: "new",
                classification: "unknown",
                determination: "unknown",
                assigned_to: None,
                comments: Vec::new(),
                resolved: None,
            }],
        });
        let i = self.alerts.len() - 1;
        self.alert_index.insert(id, i);
        Ok(i)
    }

    /// Records a change to a generated alert at `now`, visible `latency_secs` later.
    /// Returns the new `lastUpdateDateTime`, or None for an unknown or verbatim alert.
    pub fn update_alert(&mut self, id: &str, change: AlertChange, now: Instant, latency_secs: i64) -> Option<Instant> {
        let i = *self.alert_index.get(id)?;
        let a = self.alerts.get_mut(i)?;
        if matches!(a.body, AlertBody::Verbatim(_)) {
            return None;
        }
        let mut v = a.versions.last()?.clone();
        // lastUpdateDateTime only moves forward, even if the clock was set back.
        let at = now.max(v.last_update.plus_ticks(1));
        v.last_update = at;
        v.visible_at = at.plus_secs(latency_secs);
        if let Some(s) = change.status {
            v.status = s;
            v.resolved = (s == "resolved").then_some(at);
        }
        if let Some(c) = change.classification {
            v.classification = c;
        }
        if let Some(d) = change.determination {
            v.determination = d;
        }
        if change.assigned_to.is_some() {
            v.assigned_to = change.assigned_to;
        }
        if let Some(text) = change.comment {
            v.comments.push(Comment { text, by: "analyst@simulator".into(), at });
        }
        a.versions.push(v);
        Some(at)
    }

    /// Changes the incident itself now (its alerts unchanged): a new version of the incident,
    /// its `lastUpdateDateTime` after every earlier one of it and of its alerts visible now
    /// (their later versions, still to come on the timeline, come after it).
    pub fn update_incident(&mut self, id: &str, change: AlertChange, now: Instant, latency_secs: i64) -> Option<Instant> {
        let alerts = &self.alerts;
        let inc = self.incidents.iter_mut().find(|i| i.id == id && i.verbatim.is_none())?;
        let latest = inc
            .alerts
            .iter()
            .filter_map(|i| alerts.get(*i))
            .filter_map(|a| a.visible(now).map(|v| v.last_update))
            .chain(inc.edits.iter().map(|e| e.at))
            .max()
            .unwrap_or(now);
        let at = now.max(latest.plus_ticks(1));
        inc.edits.push(crate::data::incident::IncidentEdit {
            at,
            visible_at: at.plus_secs(latency_secs),
            status: change.status,
            classification: change.classification,
            determination: change.determination,
            assigned_to: change.assigned_to,
            comment: change.comment,
        });
        Some(at)
    }

    /// Raises new alerts whose `lastUpdateDateTime` is exactly `at` (one
    /// instant for all: a tie), each visible `latency_secs` later, in a new incident.
    pub fn raise_alerts(&mut self, count: usize, at: Instant, latency_secs: i64, seed: u64) -> Vec<String> {
        let tenant_no = 0xA000 + self.alerts.len();
        let plan = crate::scenario::AlertPlan {
            count,
            incidents: 1,
            from: "0s".into(),
            to: "1s".into(),
            latency_min_secs: latency_secs,
            latency_max_secs: latency_secs,
            update_fraction: 0.0,
            tie_groups: 0,
            big_evidence_fraction: 0.0,
            ..Default::default()
        };
        let Ok(Timeline { alerts, incidents }) = generate::generate(&plan, &self.tenant_id, tenant_no, &self.pool, seed, at) else {
            return Vec::new();
        };
        let offset = self.alerts.len();
        let mut ids_out = Vec::new();
        for mut a in alerts {
            for v in &mut a.versions {
                v.last_update = at;
                v.visible_at = at.plus_secs(latency_secs);
            }
            a.created = a.created.min(at);
            ids_out.push(a.id.clone());
            self.alerts.push(a);
        }
        for mut inc in incidents {
            inc.alerts = inc.alerts.iter().map(|i| i + offset).collect();
            self.incidents.push(inc);
        }
        self.reindex();
        ids_out
    }
}
