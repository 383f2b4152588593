//! The batch's entry points: intake messages prepared, sent in full batches and marked
//! published; evidence-job messages each moving its job on.

use std::time::Duration;

use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use tracing::Instrument;

use super::{BatchRun, MessageOutcome, Ready, SentKey};
use crate::app::evidence::setup::StepOutcome;
use crate::app::polling::deliver::send_tracked;
use crate::domain::evidence::job::JobMessage;
use crate::ports::{DedupStore, ProcessPorts};

impl<P: ProcessPorts> BatchRun<'_, P> {
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

    /// One message on its own: the batch path with a batch of one.
    pub async fn process_message(&self, body: &str) -> MessageOutcome {
        let batch = [("message".to_owned(), body.to_owned())];
        if self.process_batch(&batch).await.is_empty() {
            MessageOutcome::Done
        } else {
            MessageOutcome::Retry(self.last_failure.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default())
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
}
