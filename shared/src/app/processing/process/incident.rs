//! Incidents mode: an incident version's own message, claimed by its version and fitted to the
//! output message; its alerts go out as ever.

use std::collections::HashMap;

use serde_json::value::RawValue;

use super::rendering::content_key;
use super::{BatchRun, Ready};
use crate::app::processing::processor::Processor;
use crate::domain::envelope::{revision_key, Envelope};
use crate::domain::graph_alert::GraphAlert;
use crate::domain::integration::{Integration, OutputFormat};
use crate::domain::processing::incident::{without_alerts, AlertRef, IncidentFields, IncidentMessage, IncidentProcessing, INCIDENT_SCHEMA};
use crate::domain::processing::ocsf;
use crate::domain::sqs_text::escape_for_sqs;
use crate::error::Error;
use crate::ports::{ArtifactStore, Claim, Clock, DedupStore, ProcessPorts};

impl<P: ProcessPorts> Processor<P> {
    /// An incident version in the integration's formats, fitted to the output message: its
    /// original goes to the artifact store, then (each said in `processing.notes`) its comments
    /// and the alerts' descriptions are left out, then the references to dropped alerts, then
    /// half the rest at a time. None when not even one alert's reference fits: the incident is
    /// not sent, and its alerts go out as ever (an incident never costs an alert).
    async fn render_incident(
        &self,
        integration: &Integration,
        mut msg: IncidentMessage,
        mut alerts: Vec<&GraphAlert>,
    ) -> Result<Option<Vec<String>>, Error> {
        let max = self.settings.delivery.max_message_bytes;
        let (v1, ocsf_too) = (
            matches!(integration.output, OutputFormat::AlertV1 | OutputFormat::Both),
            matches!(integration.output, OutputFormat::Ocsf | OutputFormat::Both),
        );
        let mut brief = false;
        // Bounded: each step leaves something out, and halving ends at one reference.
        for step in 0usize.. {
            let mut out = Vec::new();
            if v1 {
                out.push(escape_for_sqs(msg.to_json()));
            }
            if ocsf_too {
                let mut finding = ocsf::incident_finding(&msg, &alerts);
                if brief {
                    ocsf::without_alert_descriptions(&mut finding);
                }
                out.push(escape_for_sqs(finding.to_string()));
            }
            if out.iter().all(|b| b.len() <= max) {
                return Ok(Some(out));
            }
            let note = match step {
                0 => {
                    if let Some(original) = msg.original.take() {
                        let text = original.to_string();
                        msg.original_ref = Some(self.artifacts.put(&content_key(&integration.id, &text), text.into_bytes()).await?);
                    }
                    continue;
                }
                1 => {
                    msg.incident.comments.clear();
                    brief = true;
                    "its comments (comments_total says how many) and, in OCSF, its alerts' descriptions".to_owned()
                }
                2 => {
                    msg.alerts.retain(AlertRef::is_published);
                    let kept: std::collections::HashSet<&str> = msg.alerts.iter().map(|a| a.id.as_str()).collect();
                    alerts.retain(|a| kept.contains(a.id.as_str()));
                    "the references to its dropped alerts".to_owned()
                }
                _ if msg.alerts.len() > 1 => {
                    let half = msg.alerts.len() / 2;
                    msg.alerts.truncate(half);
                    alerts.truncate(half);
                    format!("all but {half} references to its published alerts")
                }
                _ => return Ok(None),
            };
            msg.processing.notes.push(format!("{note} were left out to fit the output message ({max} bytes)"));
        }
        Ok(None)
    }
}

impl<P: ProcessPorts> BatchRun<'_, P> {
    /// An incident version's own message, when any of its alerts passed the filters (its
    /// dropped alerts listed as such); claimed by the incident's version, so a change of the
    /// incident alone (status, owner, classification, a comment) goes out once, and a
    /// redelivery publishes nothing twice.
    pub(super) async fn prepare_incident(
        &self,
        env: &Envelope,
        integration: &Integration,
        object: &RawValue,
        refs: Vec<AlertRef>,
        alerts: &[&GraphAlert],
        ready: &mut Vec<Ready>,
    ) -> Result<(), String> {
        if !IncidentMessage::any_published(&refs) {
            self.count(|c| c.incidents_dropped += 1);
            return Ok(());
        }
        let incident: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(object.get()).map_err(|e| format!("the incident does not parse: {e}"))?;
        let fields = IncidentFields::of(&incident);
        // The envelope's id: the poller read it as the incident's head, never empty.
        let key = revision_key(env.source, &env.tenant_id, &env.id, env.version, Some("incident"));
        let now = self.p.clock.now();
        let settings = &self.p.settings;
        match self
            .p
            .dedup
            .claim(&key, &settings.owner, now, now.plus(settings.claim_for), now.plus(settings.dedup_ttl))
            .await
            .map_err(|e| e.to_string())?
        {
            Claim::Published => {
                self.count(|c| c.duplicates += 1);
                return Ok(());
            }
            Claim::InFlight => return Err(format!("{key} is being published by another processor")),
            Claim::Fresh => {}
        }
        let alerts_total = refs.len();
        // The published ones first: they stay listed when a long incident is cut.
        let mut refs = refs;
        refs.sort_by_key(|r| !r.is_published());
        let order: HashMap<&str, usize> = refs.iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();
        let mut alerts = alerts.to_vec();
        alerts.sort_by_key(|a| order.get(a.id.as_str()).copied().unwrap_or(usize::MAX));
        alerts.truncate(crate::domain::processing::incident::MAX_LISTED_ALERTS);
        let msg = IncidentMessage {
            schema: INCIDENT_SCHEMA,
            integration_id: env.integration_id.clone(),
            tenant_id: env.tenant_id.clone(),
            source: env.source,
            id: env.id.clone(),
            version: env.version,
            dedup_key: key.clone(),
            incident: fields,
            alerts: refs.into_iter().take(crate::domain::processing::incident::MAX_LISTED_ALERTS).collect(),
            alerts_total,
            processing: IncidentProcessing {
                processor: concat!("m365-ingest/", env!("CARGO_PKG_VERSION")).into(),
                processed_at: now,
                notes: Vec::new(),
            },
            original: Some(without_alerts(&incident)),
            original_ref: None,
        };
        match self.p.render_incident(integration, msg, alerts).await {
            Ok(Some(bodies)) => {
                ready.push(Ready { key, bodies, starts: Vec::new(), incident: true });
                Ok(())
            }
            Ok(None) => {
                tracing::error!(incident = %env.id, "the incident does not fit an output message even with one alert reference; not sent (its alerts are)");
                self.count(|c| c.incidents_too_large += 1);
                if let Err(re) = self.p.dedup.release(&key, &settings.owner).await {
                    tracing::warn!(error = %re, "could not release a dedup claim; it expires on its own");
                }
                Ok(())
            }
            Err(e) => {
                if let Err(re) = self.p.dedup.release(&key, &settings.owner).await {
                    tracing::warn!(error = %re, "could not release a dedup claim; it expires on its own");
                }
                Err(e.to_string())
            }
        }
    }
}
