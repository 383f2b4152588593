//! Planning an alert version's evidence: its jobs created (or found from an earlier delivery)
//! and the messages that start them.

use std::time::Duration;

use super::job_message;
use crate::app::processing::processor::Processor;
use crate::domain::email::section::EmailSection;
use crate::domain::evidence::hold::hold_key;
use crate::domain::evidence::index::due_set;
use crate::domain::evidence::job::{EvidenceJob, JobRecord};
use crate::domain::evidence::plan::{self as evidence_plan, job_key};
use crate::domain::integration::sections::EvidenceDelivery;
use crate::domain::integration::Integration;
use crate::domain::processing::output::{EvidenceItem, EvidenceRetrieval};
use crate::domain::time::GraphTime;
use crate::ports::{DelayQueue, EvidenceJobStore, ProcessPorts};
use crate::sources::Unit;

/// An alert version's evidence as its message lists it, and the messages that start its jobs
/// once it is out (with their delays).
pub struct Planned {
    pub retrieval: Option<EvidenceRetrieval>,
    pub starts: Vec<(String, Duration)>,
}

impl<P: ProcessPorts> Processor<P> {
    /// The evidence of one alert version: its items (jobs created, or found from an earlier
    /// delivery), or why there are none.
    pub(crate) async fn plan_evidence(
        &self,
        env_integration: &Integration,
        unit: &Unit,
        dedup_key: &str,
        source: crate::domain::source::Source,
        now: GraphTime,
    ) -> Result<Planned, String> {
        if unit.evidence.is_some() {
            // A phishing-mailbox report: its email came from the mailbox itself.
            return Ok(Planned { retrieval: None, starts: Vec::new() });
        }
        let doc = &env_integration.evidence;
        if !doc.live_response_files && !doc.quarantined_email && !doc.delivered_email {
            return Ok(Planned { retrieval: None, starts: Vec::new() });
        }
        let email: Option<&EmailSection> = unit.email.as_ref().filter(|e| e.submission.is_some());
        let targets = evidence_plan::plan(&unit.alert, email);
        if targets.is_empty() {
            let retrieval = EvidenceRetrieval {
                status: "not_applicable".into(),
                reason: Some("the alert names no file on a device and no email that reached a mailbox or quarantine".into()),
                ..EvidenceRetrieval::default()
            };
            return Ok(Planned { retrieval: Some(retrieval), starts: Vec::new() });
        }
        let Some(ev) = &self.evidence else {
            // A local tool's processor (`process`): the deployed one retrieves.
            let retrieval = EvidenceRetrieval {
                status: "not_requested".into(),
                reason: Some("this processor runs without evidence retrieval (no evidence-jobs queue); the deployed one retrieves".into()),
                ..EvidenceRetrieval::default()
            };
            return Ok(Planned { retrieval: Some(retrieval), starts: Vec::new() });
        };
        let mut items = Vec::new();
        let mut starts = Vec::new();
        for target in targets {
            let key = job_key(dedup_key, &target);
            let job = if !target.enabled(doc) {
                EvidenceJob::disabled(key, target, now)
            } else if target.is_restore() && !doc.restore_quarantined_files {
                let mut j = EvidenceJob::disabled(key, target, now);
                if let crate::domain::evidence::job::Phase::Done { detail, .. } = &mut j.phase {
                    *detail = Some(
                        "antivirus quarantined this file, so it is no longer at its path; collecting it needs a restore on the \
                         device (evidence.restore_quarantined_files, off for this integration: read docs/evidence.md's risk first)"
                            .into(),
                    );
                }
                j
            } else {
                EvidenceJob::new(key, target, now)
            };
            if job.outcome().is_some() {
                items.push(EvidenceItem::of(&job));
                continue;
            }
            let record = JobRecord {
                job,
                integration_id: env_integration.id.clone(),
                tenant_id: env_integration.tenant_id.clone(),
                source,
                alert_id: unit.alert.id.clone(),
                incident_id: unit.incident.as_ref().map(|i| i.id.clone()),
                alert_version: unit.version,
                dedup_key: dedup_key.to_owned(),
                title: unit.alert.title.as_deref().unwrap_or_default().chars().take(512).collect(),
                severity: unit.alert.severity.clone(),
                reported: false,
                hold: (doc.delivery == EvidenceDelivery::HoldUntilFinal).then(|| hold_key(dedup_key)),
            };
            let (stored, _) = ev.jobs.create(&record, now.plus(ev.settings.job_ttl)).await.map_err(|e| e.to_string())?;
            if !stored.reported {
                // Listed by its deadline for the sweep, should its messages ever be lost. The
                // sweep is a safety net: a listing that fails does not hold the alert back.
                let set = due_set(stored.job.created_at.plus(ev.settings.limits.max_wait), &stored.job.key);
                if let Err(e) = ev.jobs.set_add(&set, &stored.job.key, Some(now.plus(ev.settings.job_ttl))).await {
                    tracing::warn!(job = %stored.job.key, error = %e, "the job is not listed for the sweep");
                }
                starts.push((job_message(&stored), Duration::ZERO));
            }
            items.push(EvidenceItem::of(&stored.job));
        }
        Ok(Planned { retrieval: Some(EvidenceRetrieval::of_items(items)), starts })
    }

    /// Queues the first step of each job (after its alert went out or was held).
    pub(crate) async fn start_jobs(&self, starts: &[(String, Duration)]) -> Result<(), String> {
        let Some(ev) = &self.evidence else { return Ok(()) };
        for (body, delay) in starts {
            ev.steps.send_delayed(body, *delay).await.map_err(|e| format!("could not queue an evidence job: {e}"))?;
        }
        Ok(())
    }
}
