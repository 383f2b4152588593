//! Evidence retrieval (issue 13): the processor plans each alert version's evidence and creates
//! its jobs; each message on the evidence-jobs queue moves one job on by one call
//! (domain/evidence_job.rs decides what the answer means), saves it, and either schedules the
//! next step as a delayed message or, once the job ended, publishes the evidence update that
//! names the alert version it belongs to. No step waits on a device: a running action is checked
//! again by a message that comes back later.
//!
//! Crash-safety: every step is repeatable. A step that dies after its call and before its save
//! is run again by SQS: a second start meets `ActiveRequestAlreadyExists` (the job waits and
//! starts again once the device is free), a download or an export writes the same key again, and
//! an update published but not marked is published again (consumers match updates by item id).

use std::time::Duration;

use futures_util::StreamExt;

use super::deliver::{safe_key, send_tracked, DeliverySettings};
use super::process::Processor;
use crate::domain::envelope::ObjectRef;
use crate::domain::evidence_job::{EvidenceJob, JobLimits, JobMessage, JobRecord, Next, Observation};
use crate::domain::evidence_plan::{self, job_key, EvidenceOutcome, EvidenceTarget};
use crate::domain::integration::{Credentials, Integration, OutputFormat};
use crate::domain::ocsf;
use crate::domain::output::{EmailSection, EvidenceItem, EvidenceRetrieval, EvidenceUpdate, EVIDENCE_UPDATE_SCHEMA};
use crate::domain::sqs_text::escape_for_sqs;
use crate::domain::time::GraphTime;
use crate::error::GraphError;
use crate::ports::evidence::{ArtifactUpload, ArtifactUploads, Download, EvidencePorts, SecretSource};
use crate::ports::{ArtifactStore, Clock, DelayQueue, EvidenceApi, EvidenceJobStore, ProcessPorts};
use crate::sources::Unit;

#[derive(Debug, Clone)]
pub struct EvidenceSettings {
    pub limits: JobLimits,
    /// The largest file kept (a GetFile may return up to 3 GB, ms-apis.md §7).
    pub max_file_bytes: u64,
    /// Job records outlive their job by this much (DynamoDB TTL).
    pub job_ttl: Duration,
}

impl Default for EvidenceSettings {
    fn default() -> Self {
        EvidenceSettings { limits: JobLimits::default(), max_file_bytes: 512 << 20, job_ttl: Duration::from_secs(14 * 24 * 3600) }
    }
}

/// Evidence retrieval's adapters and settings, beside the processor's own.
pub struct Evidence<E: EvidencePorts> {
    pub jobs: E::Jobs,
    pub steps: E::Steps,
    pub api: E::Api,
    pub secrets: E::Secrets,
    pub settings: EvidenceSettings,
}

/// What a step did, for counts and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The job moved on (or waits) and its next message is queued.
    Scheduled { delay: Duration },
    /// The job ended and its update was published; how long it took from its creation.
    Reported(EvidenceOutcome, Duration),
    /// Nothing to do: the job ended and was reported, another step moved it on, or it expired.
    Nothing,
}

/// An alert version's evidence as its message lists it, and the jobs to start once it is out.
pub struct Planned {
    pub retrieval: Option<EvidenceRetrieval>,
    pub starts: Vec<String>,
}

fn job_message(record: &JobRecord) -> String {
    JobMessage::new(&record.integration_id, &record.job.key).to_json()
}

/// How an API's refusal bears on a job: passing (busy, throttled, down) or final (with why).
fn observe_error(e: &GraphError) -> Observation {
    match e {
        GraphError::Http { status: 400, code, .. } if code == "ActiveRequestAlreadyExists" => Observation::Busy,
        GraphError::Http { status: 429, .. } | GraphError::Throttled { .. } => Observation::Busy,
        GraphError::Http { status: 404, message, .. } => Observation::NotFound(message.clone()),
        GraphError::Http { status: 400, message, .. } if message.contains("is not recognized") => Observation::Refused(format!(
            "{message} (Exchange offers a cmdlet only to a role that grants it: give the app's service principal the Entra role \
             Security Administrator, or add it to the Quarantine Administrator role group)"
        )),
        GraphError::Http { status: 400 | 401 | 403, api, code, message } => {
            Observation::Refused(format!("{api} answered {code}: {message}"))
        }
        GraphError::Token { retryable: false, .. } | GraphError::Credential(_) => Observation::Refused(e.to_string()),
        e => Observation::Transient(e.to_string()),
    }
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
        if !doc.live_response_files && !doc.quarantined_email {
            return Ok(Planned { retrieval: None, starts: Vec::new() });
        }
        let email: Option<&EmailSection> = unit.email.as_ref().filter(|e| e.submission.is_some());
        let targets = evidence_plan::plan(&unit.alert, email);
        if targets.is_empty() {
            let retrieval = EvidenceRetrieval {
                status: "not_applicable".into(),
                reason: Some("the alert names no file on a device and no quarantined email".into()),
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
            } else if matches!(target, EvidenceTarget::File { quarantined_by_antivirus: true, .. }) {
                let mut j = EvidenceJob::disabled(key, target, now);
                if let crate::domain::evidence_job::Phase::Done { detail, .. } = &mut j.phase {
                    *detail = Some(
                        "antivirus quarantined this file, so it is no longer at its path; collecting it from the quarantine \
                         (a restore on the device) is not offered"
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
                alert_version: unit.version,
                dedup_key: dedup_key.to_owned(),
                title: unit.alert.title.as_deref().unwrap_or_default().chars().take(512).collect(),
                severity: unit.alert.severity.clone(),
                reported: false,
            };
            let (stored, _) = ev.jobs.create(&record, now.plus(ev.settings.job_ttl)).await.map_err(|e| e.to_string())?;
            if !stored.reported {
                starts.push(job_message(&stored));
            }
            items.push(EvidenceItem::of(&stored.job));
        }
        Ok(Planned { retrieval: Some(EvidenceRetrieval::of_items(items)), starts })
    }

    /// Queues the first step of each job (after its alert went out).
    pub(crate) async fn start_jobs(&self, starts: &[String]) -> Result<(), String> {
        let Some(ev) = &self.evidence else { return Ok(()) };
        for body in starts {
            ev.steps.send_delayed(body, Duration::ZERO).await.map_err(|e| format!("could not queue an evidence job: {e}"))?;
        }
        Ok(())
    }

    /// Moves the job of one evidence-jobs message on by one step. `Err`: nothing was decided,
    /// SQS should deliver the message again.
    pub async fn step_evidence(&self, integration: &Integration, message: &JobMessage) -> Result<StepOutcome, String> {
        let ev = self.evidence.as_ref().ok_or("this processor has no evidence retrieval")?;
        let Some((mut record, mut version)) = ev.jobs.get(&message.job).await.map_err(|e| e.to_string())? else {
            tracing::warn!(job = %message.job, "no such evidence job (expired?); message dropped");
            return Ok(StepOutcome::Nothing);
        };
        let limits = &ev.settings.limits;
        let now = self.clock.now();
        let expires = now.plus(ev.settings.job_ttl);
        if record.job.outcome().is_none() {
            let next = record.job.next(now, limits);
            match next {
                Next::WaitUntil(at) => return self.schedule(ev, &record, at.since(now)).await,
                Next::Finished => {}
                call => {
                    let creds = ev.secrets.load(&integration.secret_ref).await.map_err(|e| e.to_string())?;
                    let observation = self.call(ev, integration, &creds, &record, call).await;
                    tracing::info!(job = %record.job.key, observation = ?observation, "evidence step");
                    record.job.observe(observation, now, limits);
                }
            }
            version = match ev.jobs.save(&record, version, expires).await {
                Ok(v) => v,
                Err(crate::error::CursorError::LeaseLost { .. }) => return Ok(StepOutcome::Nothing),
                Err(e) => return Err(e.to_string()),
            };
            if record.job.outcome().is_none() {
                let delay = match record.job.next(now, limits) {
                    Next::WaitUntil(at) => at.since(now),
                    _ => Duration::ZERO,
                };
                return self.schedule(ev, &record, delay).await;
            }
        }
        if record.reported {
            return Ok(StepOutcome::Nothing);
        }
        let outcome = record.job.outcome().unwrap_or(EvidenceOutcome::TimedOut);
        self.publish_update(integration, &record, now).await?;
        record.reported = true;
        match ev.jobs.save(&record, version, expires).await {
            // Published twice at worst: the update carries its item's id.
            Ok(_) | Err(crate::error::CursorError::LeaseLost { .. }) => {
                Ok(StepOutcome::Reported(outcome, now.since(record.job.created_at)))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn schedule(&self, ev: &Evidence<P::Evidence>, record: &JobRecord, delay: Duration) -> Result<StepOutcome, String> {
        ev.steps.send_delayed(&job_message(record), delay).await.map_err(|e| format!("could not queue the job's next step: {e}"))?;
        Ok(StepOutcome::Scheduled { delay })
    }

    /// Makes the one call the job needs and tells what it answered.
    async fn call(
        &self,
        ev: &Evidence<P::Evidence>,
        integration: &Integration,
        creds: &Credentials,
        record: &JobRecord,
        next: Next,
    ) -> Observation {
        let target = &record.job.target;
        match (next, target) {
            (Next::Start, EvidenceTarget::File { device_id, .. }) => {
                let path = target.path().unwrap_or_default();
                match ev.api.run_get_file(creds, device_id, &path).await {
                    Ok(action_id) => Observation::Started { action_id },
                    Err(e) => observe_error(&e),
                }
            }
            (Next::Start, EvidenceTarget::Email { internet_message_id, recipient }) => {
                let Some(org) = integration.organization_id.as_deref() else {
                    return Observation::Refused(
                        "the integration has no organization_id (its *.onmicrosoft.com domain), which Exchange Online needs".into(),
                    );
                };
                match ev.api.find_quarantined(creds, org, internet_message_id, recipient).await {
                    Ok(ids) => match ids.into_iter().next() {
                        Some(identity) => Observation::Found { identity },
                        None => Observation::NotFound(format!(
                            "no message with Message-ID {internet_message_id} for {recipient} is in quarantine"
                        )),
                    },
                    Err(e) => observe_error(&e),
                }
            }
            (Next::CheckAction(id), _) => match ev.api.machine_action(creds, &id).await {
                Ok(report) => {
                    if !report.errors.is_empty() {
                        tracing::info!(action = %id, errors = ?report.errors, "the live response reported errors");
                    }
                    Observation::Action(report.status)
                }
                Err(e) => observe_error(&e),
            },
            (Next::Download(id), EvidenceTarget::File { name, sha1, sha256, .. }) => {
                // A link lives 30 minutes (§7): one that expired on the way is asked for again.
                for attempt in 0..2 {
                    let url = match ev.api.result_link(creds, &id).await {
                        Ok(u) => u,
                        Err(e) => return observe_error(&e),
                    };
                    match ev.api.download(&url).await {
                        Ok(d) => {
                            let key = format!("evidence/{}/{}/{}", safe_key(&integration.id), target.key(), safe_key(name));
                            return self.store_file(ev, d, &key, sha1.as_deref(), sha256.as_deref()).await;
                        }
                        Err(GraphError::Http { status: 403 | 404, .. }) if attempt == 0 => continue,
                        Err(GraphError::Decode { detail, .. }) => {
                            return Observation::Refused(format!("the result link was not followed: {detail}"))
                        }
                        Err(e) => return Observation::Transient(format!("the result download failed: {e}")),
                    }
                }
                Observation::Transient("the result link was refused twice (expired?)".into())
            }
            (Next::Export(identity), EvidenceTarget::Email { .. }) => {
                let Some(org) = integration.organization_id.as_deref() else {
                    return Observation::Refused("the integration has no organization_id".into());
                };
                match ev.api.export_quarantined(creds, org, &identity).await {
                    Ok(eml) => {
                        let key =
                            format!("quarantined-email/{}/{}.eml", safe_key(&integration.id), crate::domain::envelope::sha256_hex(&eml));
                        match self.artifacts.put(&key, eml).await {
                            Ok(r) => Observation::Stored(r),
                            Err(e) => Observation::Transient(e.to_string()),
                        }
                    }
                    Err(GraphError::TooLarge { size, limit, .. }) => {
                        Observation::TooLarge { size: size.unwrap_or(limit as u64), limit: limit as u64 }
                    }
                    Err(e) => observe_error(&e),
                }
            }
            (next, _) => Observation::Transient(format!("a step {next:?} that does not fit the job's evidence")),
        }
    }

    /// Streams a download to the artifact store, counting its size and hashing it on the way;
    /// nothing is kept when it is too large or is not the file the alert names.
    async fn store_file(
        &self,
        ev: &Evidence<P::Evidence>,
        mut d: Download,
        key: &str,
        sha1: Option<&str>,
        sha256: Option<&str>,
    ) -> Observation {
        let limit = ev.settings.max_file_bytes;
        if let Some(size) = d.length.filter(|l| *l > limit) {
            return Observation::TooLarge { size, limit };
        }
        let mut upload = match self.artifacts.begin(key, "application/octet-stream").await {
            Ok(u) => u,
            Err(e) => return Observation::Transient(e.to_string()),
        };
        let mut h1 = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
        let mut h256 = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size = 0u64;
        while let Some(chunk) = d.chunks.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    upload.abort().await;
                    return Observation::Transient(e.to_string());
                }
            };
            size += chunk.len() as u64;
            if size > limit {
                upload.abort().await;
                return Observation::TooLarge { size, limit };
            }
            h1.update(&chunk);
            h256.update(&chunk);
            if let Err(e) = upload.write(&chunk).await {
                upload.abort().await;
                return Observation::Transient(e.to_string());
            }
        }
        let hex = |d: ring::digest::Digest| d.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>();
        let (got1, got256) = (hex(h1.finish()), hex(h256.finish()));
        let mismatch = match (sha256, sha1) {
            (Some(want), _) if !want.eq_ignore_ascii_case(&got256) => Some((want.to_owned(), got256.clone())),
            (None, Some(want)) if !want.eq_ignore_ascii_case(&got1) => Some((want.to_owned(), got1)),
            _ => None,
        };
        if let Some((expected, got)) = mismatch {
            upload.abort().await;
            return Observation::HashMismatch { expected, got };
        }
        match upload.finish(got256, size).await {
            Ok(r) => Observation::Stored(r),
            Err(e) => Observation::Transient(e.to_string()),
        }
    }

    /// Publishes a job's end on the output queue, for the alert version it belongs to.
    async fn publish_update(&self, integration: &Integration, record: &JobRecord, now: GraphTime) -> Result<(), String> {
        let mut item = EvidenceItem::of(&record.job);
        if let (Some(r), "email") = (&item.artifact, item.kind.as_str()) {
            item.headers = self.email_headers(r).await;
        }
        let update = EvidenceUpdate {
            schema: EVIDENCE_UPDATE_SCHEMA.into(),
            integration_id: record.integration_id.clone(),
            tenant_id: record.tenant_id.clone(),
            source: record.source,
            alert_id: record.alert_id.clone(),
            alert_version: record.alert_version,
            dedup_key: record.dedup_key.clone(),
            processed_at: now,
            item,
        };
        // In the integration's format, as its alerts are.
        let mut bodies = Vec::new();
        if matches!(integration.output, OutputFormat::AlertV1 | OutputFormat::Both) {
            bodies.push(escape_for_sqs(serde_json::to_string(&update).map_err(|e| e.to_string())?));
        }
        if matches!(integration.output, OutputFormat::Ocsf | OutputFormat::Both) {
            bodies.push(escape_for_sqs(ocsf::evidence_update(&update, &record.title, record.severity.as_deref()).to_string()));
        }
        let delivery: &DeliverySettings = &self.settings.delivery;
        if send_tracked(&self.output, &bodies, delivery).await.iter().all(|s| *s) {
            Ok(())
        } else {
            Err(format!("the evidence update of {} was not accepted by the output queue", record.job.key))
        }
    }

    /// A retrieved email's headers, read back from the store (the update may be published by a
    /// later step than the export).
    async fn email_headers(&self, r: &ObjectRef) -> Option<crate::domain::output::EmailHeaders> {
        let bytes = self.artifacts.get(&r.key).await.ok()?;
        crate::domain::mime::parse(&bytes).ok()
    }
}
