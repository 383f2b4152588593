//! The process use case: an intake message in, filtered and deduplicated alerts out on the
//! output queue in the integration's format (DESIGN.md §1, §3 last point, §4).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use serde_json::value::RawValue;
use tracing::Instrument;

use crate::app::evidence::setup::StepOutcome;
use crate::app::polling::deliver::send_tracked;
use crate::app::processing::processor::Processor;
use crate::domain::envelope::sha256_hex;
use crate::domain::envelope::{revision_key, Envelope, INTAKE_SCHEMA};
use crate::domain::evidence::job::JobMessage;
use crate::domain::graph_alert::GraphAlert;
use crate::domain::integration::{Integration, OutputFormat};
use crate::domain::json_text;
use crate::domain::processing::context::ContextSection;
use crate::domain::processing::filter::{Decision, Filters};
use crate::domain::processing::incident::{without_alerts, AlertRef, IncidentFields, IncidentMessage, IncidentProcessing, INCIDENT_SCHEMA};
use crate::domain::processing::ocsf;
use crate::domain::processing::output::{AlertMessage, EvidenceRetrieval, MessageContext, Processing, TextReplaced};
use crate::domain::source::Source;
use crate::domain::sqs_text::escape_for_sqs;
use crate::domain::time::GraphTime;
use crate::error::{Error, QueueError};
use crate::ports::{ArtifactStore, Claim, Clock, DedupStore, ProcessPorts};
use crate::sources::Unit;

/// What happened to one intake message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Every alert in it was published, dropped by a filter, or had been published before.
    Done,
    /// Not finished; SQS should deliver it again (and, after its redrive count, to the DLQ).
    Retry(String),
}

/// Counts across a batch: published messages, duplicates, and drops per filter reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProcessCounts {
    pub alerts: usize,
    pub published: usize,
    pub duplicates: usize,
    /// Alerts kept until their evidence is final (`evidence.delivery = hold_until_final`), and
    /// held alerts that went out.
    pub held: usize,
    pub released: usize,
    pub dropped: BTreeMap<String, usize>,
    pub failed_messages: usize,
    /// Evidence jobs' steps taken, and how the jobs that ended ended (by outcome name).
    pub evidence_steps: usize,
    pub evidence_outcomes: BTreeMap<String, usize>,
    /// The oldest job that ended, from its creation to its end.
    pub evidence_max_age_secs: u64,
    /// Evidence steps left for SQS to deliver again: too little of the invocation was left.
    pub steps_not_started: usize,
    /// Restores whose cleanup the device did not confirm: a copy may be left (alarmed).
    pub restored_copies_left: usize,
    /// DLP alerts kept because `filters.dlp_modes` could not read their mode (filter.rs).
    pub dlp_mode_unknown: usize,
    /// Incident versions published (incidents mode), and those not published because the
    /// filters dropped every alert of theirs.
    pub incidents_published: usize,
    pub incidents_dropped: usize,
    /// Incident versions not sent: not even one alert's reference fits the output message.
    pub incidents_too_large: usize,
}

impl ProcessCounts {
    /// Adds another batch's counts to these.
    pub fn add(&mut self, other: ProcessCounts) {
        self.alerts += other.alerts;
        self.published += other.published;
        self.duplicates += other.duplicates;
        self.held += other.held;
        self.released += other.released;
        self.failed_messages += other.failed_messages;
        self.evidence_steps += other.evidence_steps;
        self.steps_not_started += other.steps_not_started;
        self.restored_copies_left += other.restored_copies_left;
        self.dlp_mode_unknown += other.dlp_mode_unknown;
        self.incidents_published += other.incidents_published;
        self.incidents_dropped += other.incidents_dropped;
        self.incidents_too_large += other.incidents_too_large;
        self.evidence_max_age_secs = self.evidence_max_age_secs.max(other.evidence_max_age_secs);
        for (reason, n) in other.dropped {
            *self.dropped.entry(reason).or_default() += n;
        }
        for (outcome, n) in other.evidence_outcomes {
            *self.evidence_outcomes.entry(outcome).or_default() += n;
        }
    }
}

/// One batch's run: the integrations it names, each with its compiled filters, and its counts.
pub struct BatchRun<'a, P: ProcessPorts> {
    p: &'a Processor<P>,
    integrations: HashMap<String, (Integration, Filters)>,
    counts: Mutex<ProcessCounts>,
    last_failure: Mutex<Option<String>>,
    /// Context lookups of this batch end by then.
    deadline: std::time::Instant,
    /// When the invocation ends (the Lambda's deadline), if known.
    ends: Option<std::time::Instant>,
}

/// A claimed key, whether every message rendered for it was accepted by the output queue (or
/// it was held: nothing to send), and the evidence jobs to start once it was.
struct SentKey {
    key: String,
    sent: bool,
    held: bool,
    incident: bool,
    starts: Vec<(String, Duration)>,
}

/// The rendered messages of one claimed key (none when its alert is held for its evidence),
/// and its evidence jobs' first messages.
struct Ready {
    key: String,
    bodies: Vec<String>,
    starts: Vec<(String, Duration)>,
    /// An incident version's message (incidents mode), not an alert's.
    incident: bool,
}

impl<P: ProcessPorts> Processor<P> {
    /// The alert's context, when the integration asks for any and this processor can look it up.
    async fn context_of(&self, integration: &Integration, unit: &Unit, batch_deadline: std::time::Instant) -> Option<ContextSection> {
        let enricher = self.context.as_ref()?;
        // Most integrations ask for no context: nothing is built for their alerts.
        if !integration.enrichment.asks(&integration.features) {
            return None;
        }
        let a = &unit.alert;
        let at =
            crate::app::processing::enrich::alert_time(a.first_activity_date_time.as_deref(), a.created_date_time.as_deref(), unit.version);
        enricher.context(integration, &crate::domain::entities::entities(a), at, batch_deadline).await
    }
}

impl<P: ProcessPorts> Processor<P> {
    /// A run for one batch. Integrations whose filters do not compile are left out (they were
    /// checked at save time; their messages fail and reach the DLQ rather than pass unfiltered).
    pub fn batch(&self, integrations: Vec<Integration>) -> BatchRun<'_, P> {
        let integrations = integrations
            .into_iter()
            .filter_map(|i| match i.filters.validate() {
                Ok(f) => Some((i.id.clone(), (i, f))),
                Err(e) => {
                    tracing::error!(integration = %i.id, problem = %e, "integration filters invalid; its messages will fail");
                    None
                }
            })
            .collect();
        let per_batch = self.context.as_ref().map_or(std::time::Duration::ZERO, |c| c.settings().per_batch);
        BatchRun {
            p: self,
            integrations,
            counts: Mutex::new(ProcessCounts::default()),
            last_failure: Mutex::new(None),
            deadline: std::time::Instant::now() + per_batch,
            ends: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn render(
        &self,
        env: &Envelope,
        integration: &Integration,
        unit: &Unit,
        key: &str,
        passed: Vec<&'static str>,
        notes: Vec<String>,
        evidence: Option<EvidenceRetrieval>,
        context: Option<ContextSection>,
        text_replaced: Option<&TextReplaced>,
        now: GraphTime,
    ) -> Result<Vec<String>, Error> {
        let max = self.settings.delivery.max_message_bytes;
        let ocsf_evidence = evidence.clone().filter(|_| matches!(integration.output, OutputFormat::Ocsf | OutputFormat::Both));
        let mut out = Vec::new();
        if matches!(integration.output, OutputFormat::AlertV1 | OutputFormat::Both) {
            let ctx = MessageContext {
                integration_id: &env.integration_id,
                tenant_id: &env.tenant_id,
                source: env.source,
                dedup_key: key.to_owned(),
                incident: unit.incident.clone(),
                email: unit.email.clone(),
                processing: Processing {
                    processor: concat!("m365-ingest/", env!("CARGO_PKG_VERSION")).into(),
                    processed_at: now,
                    filters_passed: passed.iter().map(|s| (*s).to_owned()).collect(),
                    notes,
                    evidence: evidence.or_else(|| unit.evidence.clone()).unwrap_or_else(|| EvidenceRetrieval {
                        status: "not_requested".into(),
                        reason: Some("evidence retrieval is not enabled for this integration".into()),
                        ..EvidenceRetrieval::default()
                    }),
                    text_replaced: text_replaced.cloned(),
                },
            };
            let mut msg = AlertMessage::build(&unit.alert, unit.version, &unit.raw, ctx);
            msg.context = context.clone();
            // Escaped before measuring: an escape is six bytes where the character was up to three.
            let mut body = escape_for_sqs(msg.to_json());
            if body.len() > max {
                msg.original = None;
                msg.original_ref =
                    Some(self.artifacts.put(&content_key(&env.integration_id, unit.raw.get()), unit.raw.get().as_bytes().to_vec()).await?);
                body = escape_for_sqs(msg.to_json());
            }
            if body.len() > max {
                return Err(QueueError::TooLarge { size: body.len(), limit: max }.into());
            }
            out.push(body);
        }
        if matches!(integration.output, OutputFormat::Ocsf | OutputFormat::Both) {
            let mut finding = ocsf::detection_finding(&unit.alert, unit.raw.get());
            // The alert's items (pending or ended), by the ids its evidence updates name.
            if let Some(r) = &ocsf_evidence {
                ocsf::attach_evidence(&mut finding, r);
            }
            if let Some(c) = &context {
                ocsf::attach_context(&mut finding, c);
            }
            if let Some(t) = text_replaced {
                ocsf::attach_text_replaced(&mut finding, t);
            }
            let mut body = escape_for_sqs(finding.to_string());
            if body.len() > max {
                let r = self.artifacts.put(&content_key(&env.integration_id, unit.raw.get()), unit.raw.get().as_bytes().to_vec()).await?;
                if let Some(o) = finding.as_object_mut() {
                    o.remove("raw_data");
                    if let Some(u) = o.get_mut("unmapped").and_then(|u| u.as_object_mut()) {
                        u.insert(
                            "original_ref".into(),
                            serde_json::json!({"bucket": r.bucket, "key": r.key, "size": r.size, "sha256": r.sha256}),
                        );
                    }
                }
                body = escape_for_sqs(finding.to_string());
            }
            if body.len() > max {
                return Err(QueueError::TooLarge { size: body.len(), limit: max }.into());
            }
            out.push(body);
        }
        Ok(out)
    }
}

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
    /// The same run, knowing when its invocation ends (steps are started only with a whole
    /// step's time left).
    pub fn until(mut self, ends: std::time::Instant) -> Self {
        self.ends = Some(ends);
        self
    }

    /// Counts since the last call, then reset.
    pub fn take_counts(&self) -> ProcessCounts {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn count(&self, f: impl FnOnce(&mut ProcessCounts)) {
        f(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Handles a batch of (message id, body); returns the ids SQS should deliver again.
    ///
    /// Three steps, so the output queue is called in full batches across messages: prepare
    /// each message (decode, filter, claim, render); send every rendered message, retrying
    /// failed entries; then mark each key published, or release its claim when any of its
    /// messages was not accepted (that intake message is retried and publishes then).
    pub async fn process_batch(&self, messages: &[(String, String)]) -> Vec<String> {
        let prepared: Vec<(String, Result<Vec<Ready>, String>)> =
            stream::iter(messages)
                .map(|(id, body)| async move {
                    (id.clone(), self.prepare(body).instrument(tracing::info_span!("message", message_id = %id)).await)
                })
                .buffer_unordered(self.p.settings.concurrency.max(1))
                .collect()
                .await;
        let bodies: Vec<String> =
            prepared.iter().filter_map(|(_, r)| r.as_ref().ok()).flatten().flat_map(|r| r.bodies.iter().cloned()).collect();
        let sent = send_tracked(&self.p.output, &bodies, &self.p.settings.delivery).await;
        // Which keys went out in full, message by message.
        let mut at = 0;
        let settled: Vec<(String, Result<Vec<SentKey>, String>)> = prepared
            .into_iter()
            .map(|(id, result)| {
                let keys = result.map(|ready| {
                    ready
                        .into_iter()
                        .map(|r| {
                            let ok = sent[at..at + r.bodies.len()].iter().all(|s| *s);
                            at += r.bodies.len();
                            SentKey { key: r.key, sent: ok, held: r.bodies.is_empty(), incident: r.incident, starts: r.starts }
                        })
                        .collect()
                });
                (id, keys)
            })
            .collect();
        // All marks at once: a crash between the send and its mark publishes that key again on
        // redelivery, so the time between the two is kept to one round trip.
        let outcomes: Vec<(String, Result<(), String>)> = stream::iter(settled)
            .map(|(id, keys)| async move {
                let outcome = match keys {
                    Err(reason) => Err(reason),
                    Ok(keys) => {
                        let results: Vec<Result<(), String>> = join_all(keys.iter().map(|k| self.settle(k))).await;
                        results.into_iter().filter_map(Result::err).next_back().map_or(Ok(()), Err)
                    }
                };
                (id, outcome)
            })
            .buffer_unordered(messages.len().max(1))
            .collect()
            .await;
        let mut failed = Vec::new();
        for (id, outcome) in outcomes {
            if let Err(reason) = outcome {
                tracing::warn!(message_id = %id, %reason, "message not finished; SQS will deliver it again");
                self.count(|c| c.failed_messages += 1);
                *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                failed.push(id);
            }
        }
        failed
    }

    /// Marks a sent key published, or frees the claim of one that was not confirmed so the
    /// redelivery publishes it.
    async fn settle(&self, k: &SentKey) -> Result<(), String> {
        let (key, starts) = (k.key.as_str(), &k.starts);
        if k.sent {
            // Not marked until its jobs are queued: a redelivery publishes again and queues them.
            self.p.start_jobs(starts).await?;
            match self.p.dedup.published(key, &self.p.settings.owner).await {
                Ok(()) => {
                    if k.incident {
                        self.count(|c| c.incidents_published += 1);
                    } else if !k.held {
                        self.count(|c| c.published += 1);
                    }
                    Ok(())
                }
                // Published but not marked: the claim expires and a redelivery publishes again.
                Err(e) => Err(format!("{key} was published but not marked: {e}")),
            }
        } else {
            if let Err(e) = self.p.dedup.release(key, &self.p.settings.owner).await {
                tracing::warn!(error = %e, "could not release the dedup claim; it expires on its own");
            }
            Err(format!("publishing {key} failed"))
        }
    }

    /// Moves on the evidence job of each evidence-jobs message; returns the ids SQS should
    /// deliver again. One job's failure never holds back another's.
    pub async fn step_batch(&self, messages: &[(String, String)]) -> Vec<String> {
        let step_time = self.p.evidence.as_ref().map_or(Duration::from_secs(60), |e| e.settings.step_time);
        let results: Vec<(String, Result<StepOutcome, String>)> = stream::iter(messages)
            .map(|(id, body)| async move {
                // Started only with a whole step's time left: a step cut off by the invocation's
                // end would count as a failed receive, and enough of those dead-letter the job.
                if let Some(ends) = self.ends {
                    let left = ends.saturating_duration_since(std::time::Instant::now());
                    if left < step_time {
                        tracing::info!(message_id = %id, left_secs = left.as_secs(), step_secs = step_time.as_secs(), "evidence step not started: too little of the invocation left; SQS delivers it again");
                        return (id.clone(), Ok(StepOutcome::NotStarted));
                    }
                }
                let outcome = async {
                    let m: JobMessage = serde_json::from_str(body).map_err(|e| format!("not an evidence-job message: {e}"))?;
                    let Some((integration, _)) = self.integrations.get(&m.integration_id) else {
                        tracing::warn!(integration = %m.integration_id, job = %m.job, "the job's integration is gone; its job stops here");
                        return Ok(StepOutcome::Nothing);
                    };
                    match tokio::time::timeout(step_time, self.p.step_evidence(integration, &m)).await {
                        Ok(r) => r,
                        // Nothing of a step counts until its job record is saved: one cut off is
                        // simply taken again (an upload it began is aborted by the bucket's rule).
                        Err(_) => Err(format!("the step took longer than {}s; it is tried again", step_time.as_secs())),
                    }
                }
                .instrument(tracing::info_span!("evidence_job", message_id = %id))
                .await;
                (id.clone(), outcome)
            })
            .buffer_unordered(self.p.settings.concurrency.max(1))
            .collect()
            .await;
        let mut failed = Vec::new();
        for (id, r) in results {
            match r {
                Ok(StepOutcome::NotStarted) => {
                    self.count(|c| c.steps_not_started += 1);
                    failed.push(id);
                }
                Ok(o) => self.count(|c| {
                    c.evidence_steps += 1;
                    match o {
                        StepOutcome::Reported { outcome, age, copy_left } => {
                            c.restored_copies_left += usize::from(copy_left);
                            *c.evidence_outcomes.entry(outcome.as_str().to_owned()).or_default() += 1;
                            c.evidence_max_age_secs = c.evidence_max_age_secs.max(age.as_secs());
                        }
                        StepOutcome::Released => c.released += 1,
                        StepOutcome::Scheduled { .. } | StepOutcome::Nothing | StepOutcome::NotStarted => {}
                    }
                }),
                Err(reason) => {
                    tracing::warn!(message_id = %id, %reason, "evidence step not finished; SQS will deliver it again");
                    self.count(|c| c.failed_messages += 1);
                    failed.push(id);
                }
            }
        }
        failed
    }

    /// One message on its own: the batch path with a batch of one.
    pub async fn process_message(&self, body: &str) -> MessageOutcome {
        let batch = [("message".to_owned(), body.to_owned())];
        if self.process_batch(&batch).await.is_empty() {
            MessageOutcome::Done
        } else {
            MessageOutcome::Retry(self.last_failure.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default())
        }
    }

    /// Decodes, filters, claims and renders; returns what to send. A message that fails here
    /// releases the claims it took.
    async fn prepare(&self, body: &str) -> Result<Vec<Ready>, String> {
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

    /// An incident version's own message, when any of its alerts passed the filters (its
    /// dropped alerts listed as such); claimed by the incident's version, so a change of the
    /// incident alone (status, owner, classification, a comment) goes out once, and a
    /// redelivery publishes nothing twice.
    async fn prepare_incident(
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

/// Where an original too large for its output message goes: named by its content, so a later
/// publish never overwrites an object an earlier message points to.
fn content_key(integration_id: &str, raw: &str) -> String {
    format!("output/{}/{}.json", crate::app::polling::origin::safe_key(integration_id), sha256_hex(raw.as_bytes()))
}
