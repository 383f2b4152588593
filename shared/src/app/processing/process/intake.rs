//! An intake message's preparation: decoded, its alerts filtered, claimed and rendered, ready
//! for the output queue.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::rendering::content_key;
use super::{BatchRun, Ready};
use crate::domain::envelope::{revision_key, sha256_hex, Envelope, INTAKE_SCHEMA};
use crate::domain::graph_alert::GraphAlert;
use crate::domain::integration::Integration;
use crate::domain::json_text;
use crate::domain::processing::filter::{Decision, Filters};
use crate::domain::processing::incident::AlertRef;
use crate::domain::processing::output::TextReplaced;
use crate::domain::source::Source;
use crate::ports::{ArtifactStore, Claim, Clock, DedupStore, ProcessPorts};

impl<P: ProcessPorts> BatchRun<'_, P> {
    /// Decodes, filters, claims and renders; returns what to send. A message that fails here
    /// releases the claims it took.
    pub(super) async fn prepare(&self, body: &str) -> Result<Vec<Ready>, String> {
        let env: Envelope = serde_json::from_str(body).map_err(|e| format!("not an intake envelope: {e}"))?;
        if env.schema != INTAKE_SCHEMA {
            return Err(format!("unknown intake schema `{}`", env.schema));
        }
        let (integration, filters) = self
            .integrations
            .get(&env.integration_id)
            .ok_or_else(|| format!("integration `{}` is not configured (removed?)", env.integration_id))?;
        let object: Box<RawValue> = match (&env.object, &env.object_ref) {
            (Some(o), _) => o.clone(),
            (None, Some(r)) => {
                let bytes = self.p.artifacts.get(&r.key).await.map_err(|e| e.to_string())?;
                if sha256_hex(&bytes) != r.sha256 {
                    return Err(format!("claim-check object {} does not match its sha256", r.key));
                }
                let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
                RawValue::from_string(text).map_err(|e| e.to_string())?
            }
            (None, None) => return Err("the envelope has neither object nor object_ref".into()),
        };
        let (object, text_replaced) = self.decodable(&env, object).await?;
        let mut ready: Vec<Ready> = Vec::new();
        if let Err(reason) = self.prepare_units(&env, integration, filters, &object, text_replaced.as_ref(), &mut ready).await {
            for r in &ready {
                if let Err(e) = self.p.dedup.release(&r.key, &self.p.settings.owner).await {
                    tracing::warn!(error = %e, "could not release a dedup claim; it expires on its own");
                }
            }
            return Err(reason);
        }
        Ok(ready)
    }

    /// The object as every field can be read: an escape that decodes to no character is read
    /// as U+FFFD, and Microsoft's bytes are kept (named by their content, so a redelivery
    /// stores nothing twice).
    async fn decodable(&self, env: &Envelope, object: Box<RawValue>) -> Result<(Box<RawValue>, Option<TextReplaced>), String> {
        let (replaced, count) = match json_text::replace_unpaired_surrogates(object.get()) {
            (Cow::Borrowed(_), _) => return Ok((object, None)),
            (Cow::Owned(text), count) => (text, count),
        };
        let original_bytes = self
            .p
            .artifacts
            .put(&content_key(&env.integration_id, object.get()), object.get().as_bytes().to_vec())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(alert = %env.id, count, "escapes of unpaired UTF-16 surrogates read as U+FFFD; Microsoft's bytes kept");
        let object = RawValue::from_string(replaced).map_err(|e| e.to_string())?;
        Ok((object, Some(TextReplaced { count, original_bytes })))
    }

    #[allow(clippy::too_many_arguments)]
    async fn prepare_units(
        &self,
        env: &Envelope,
        integration: &Integration,
        filters: &Filters,
        object: &RawValue,
        text_replaced: Option<&TextReplaced>,
        ready: &mut Vec<Ready>,
    ) -> Result<(), String> {
        let source = crate::sources::spec(env.source);
        let units = source.units(env, object)?;
        // Incidents mode: what became of each alert, for the incident's own message (other
        // sources collect nothing).
        let incidents = env.source == Source::DefenderIncidents;
        let mut refs: Vec<AlertRef> = Vec::new();
        let mut record = |r: AlertRef| {
            if incidents {
                refs.push(r);
            }
        };
        for unit in &units {
            self.count(|c| c.alerts += 1);
            if let Some((reason, detail)) = source.excluded(integration, unit) {
                tracing::debug!(alert = %unit.alert.id, reason = reason.as_str(), %detail, "alert excluded by its source's settings");
                self.count(|c| *c.dropped.entry(reason.as_str().to_owned()).or_default() += 1);
                record(AlertRef::dropped(&unit.alert, Some(unit.version), reason.as_str(), detail));
                continue;
            }
            let (passed, notes) = match filters.decide(env.source, &unit.alert) {
                Decision::Drop { reason, detail } => {
                    tracing::debug!(alert = %unit.alert.id, reason = reason.as_str(), %detail, "alert filtered out");
                    self.count(|c| *c.dropped.entry(reason.as_str().to_owned()).or_default() += 1);
                    record(AlertRef::dropped(&unit.alert, Some(unit.version), reason.as_str(), detail));
                    continue;
                }
                Decision::Pass { passed, mut notes } => {
                    if notes.iter().any(|n| n == crate::domain::processing::filter::DLP_MODE_UNKNOWN) {
                        self.count(|c| c.dlp_mode_unknown += 1);
                    }
                    notes.extend(source.note(integration, unit));
                    (passed, notes)
                }
            };
            let key = revision_key(env.source, &env.tenant_id, &unit.alert.id, unit.version, unit.revision);
            if incidents {
                record(AlertRef::published(&unit.alert, unit.version, key.clone()));
            }
            let now = self.p.clock.now();
            match self
                .p
                .dedup
                .claim(&key, &self.p.settings.owner, now, now.plus(self.p.settings.claim_for), now.plus(self.p.settings.dedup_ttl))
                .await
                .map_err(|e| e.to_string())?
            {
                Claim::Published => {
                    self.count(|c| c.duplicates += 1);
                    continue;
                }
                Claim::InFlight => return Err(format!("{key} is being published by another processor")),
                Claim::Fresh => {}
            }
            let planned = match self.p.plan_evidence(integration, unit, &key, env.source, now).await {
                Ok(p) => p,
                Err(e) => {
                    if let Err(re) = self.p.dedup.release(&key, &self.p.settings.owner).await {
                        tracing::warn!(error = %re, "could not release a dedup claim; it expires on its own");
                    }
                    return Err(e);
                }
            };
            let holds = self.p.holds(integration, planned.retrieval.as_ref());
            let items = planned.retrieval.as_ref().map(|r| r.items.clone()).unwrap_or_default();
            let mut starts = planned.starts;
            let context = self.p.context_of(integration, unit, self.deadline).await;
            let rendered =
                match self.p.render(env, integration, unit, &key, passed, notes, planned.retrieval, context, text_replaced, now).await {
                    // Kept until its evidence is final; marked like a published one, so a redelivery holds nothing twice.
                    Ok(bodies) if holds => match self.p.hold_alert(integration, &key, bodies, items, now).await {
                        Ok(first) => {
                            self.count(|c| c.held += 1);
                            starts.push(first);
                            Ok(Vec::new())
                        }
                        Err(e) => Err(e),
                    },
                    Ok(bodies) => Ok(bodies),
                    Err(e) => Err(e.to_string()),
                };
            match rendered {
                Ok(bodies) => ready.push(Ready { key, bodies, starts, incident: false }),
                Err(e) => {
                    if let Err(re) = self.p.dedup.release(&key, &self.p.settings.owner).await {
                        tracing::warn!(error = %re, "could not release a dedup claim; it expires on its own");
                    }
                    return Err(e);
                }
            }
        }
        if incidents {
            let alerts: Vec<&GraphAlert> = units.iter().map(|u| &u.alert).collect();
            self.prepare_incident(env, integration, object, refs, &alerts, ready).await?;
        }
        Ok(())
    }
}
