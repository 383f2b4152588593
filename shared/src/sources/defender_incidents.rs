//! Defender incidents: Graph `GET /v1.0/security/incidents` (security-list-incidents.md) with
//! their alerts, `$expand=alerts` first and, where a tenant's incidents are too large for that
//! (elastic/integrations#18144), each incident's `/alerts` fetched on its own.

use serde_json::value::RawValue;

use super::{graph_query, Children, SourceSpec, SpanQuery, Unit, GRAPH_SECURITY_HEAD};
use crate::domain::alert::{HeadSpec, Item};
use crate::domain::envelope::Envelope;
use crate::domain::graph_alert::{GraphAlert, GraphIncident};
use crate::domain::processing::output::IncidentRef;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::ports::PageRequest;
use crate::sources::settings::PollSettings;

pub struct DefenderIncidents;

impl SourceSpec for DefenderIncidents {
    fn source(&self) -> Source {
        Source::DefenderIncidents
    }
    fn head(&self) -> HeadSpec {
        GRAPH_SECURITY_HEAD
    }
    fn page_size(&self, settings: &PollSettings) -> usize {
        settings.incident_page_size
    }
    fn request(&self, q: &SpanQuery<'_>) -> PageRequest {
        graph_query("/v1.0/security/incidents", GRAPH_SECURITY_HEAD, q, q.expand.then_some("alerts"), true)
    }
    fn expands(&self) -> bool {
        true
    }
    fn children(&self, item: &Item) -> Option<Children> {
        let id = super::path_segment(&item.head.id);
        Some(Children { path: format!("/v1.0/security/incidents/{id}/alerts"), member: "alerts", head: GRAPH_SECURITY_HEAD })
    }
    fn units(&self, _envelope: &Envelope, object: &RawValue) -> Result<Vec<Unit>, String> {
        let inc: GraphIncident = serde_json::from_str(object.get()).map_err(|e| format!("the incident does not parse: {e}"))?;
        let incident = IncidentRef {
            id: inc.id.clone(),
            display_name: inc.display_name.clone(),
            status: inc.status.clone(),
            web_url: inc.incident_web_url.clone(),
        };
        inc.alerts
            .iter()
            .map(|v| {
                let alert: GraphAlert =
                    serde_json::from_value(v.clone()).map_err(|e| format!("an alert of incident {} does not parse: {e}", inc.id))?;
                let version = alert
                    .last_update_date_time
                    .as_deref()
                    .and_then(|t| GraphTime::parse(t).ok())
                    .ok_or_else(|| format!("alert {} has no lastUpdateDateTime", alert.id))?;
                let raw = RawValue::from_string(v.to_string()).map_err(|e| e.to_string())?;
                Ok(Unit { alert, raw, version, incident: Some(incident.clone()), revision: None, email: None, evidence: None })
            })
            .collect()
    }
}
