//! Defender alerts: Graph `GET /v1.0/security/alerts_v2` (security-list-alerts_v2.md), windowed
//! on `lastUpdateDateTime`, up to 1,000 per page.

use serde_json::value::RawValue;

use super::{graph_query, SourceSpec, SpanQuery, Unit, GRAPH_SECURITY_HEAD};
use crate::domain::alert::HeadSpec;
use crate::domain::envelope::Envelope;
use crate::domain::graph_alert::GraphAlert;
use crate::domain::source::Source;
use crate::ports::PageRequest;
use crate::sources::settings::PollSettings;

pub struct DefenderAlerts;

impl SourceSpec for DefenderAlerts {
    fn source(&self) -> Source {
        Source::DefenderAlerts
    }
    fn head(&self) -> HeadSpec {
        GRAPH_SECURITY_HEAD
    }
    fn page_size(&self, settings: &PollSettings) -> usize {
        settings.alert_page_size
    }
    fn request(&self, q: &SpanQuery<'_>) -> PageRequest {
        graph_query("/v1.0/security/alerts_v2", GRAPH_SECURITY_HEAD, q, None, true)
    }
    fn units(&self, envelope: &Envelope, object: &RawValue) -> Result<Vec<Unit>, String> {
        let alert: GraphAlert = serde_json::from_str(object.get()).map_err(|e| format!("the alert does not parse: {e}"))?;
        Ok(vec![Unit::plain(alert, object, envelope.version)])
    }
}
