//! The one call a step makes (live response, Graph, Exchange), by the job's next step and its
//! evidence, and what the answer means for the job.

use super::storage::{Stored, Want};
use super::{DELIVERED_EMAIL_PREFIX, QUARANTINED_EMAIL_PREFIX, QUARANTINE_DAYS};
use crate::app::evidence::observe::{observe_error, observe_mailbox_error};
use crate::app::evidence::restore::{cleanup_commands, restore_commands};
use crate::app::evidence::setup::Evidence;
use crate::app::polling::origin::safe_key;
use crate::app::processing::processor::Processor;
use crate::domain::evidence::index::{restores_set, RestoreEntry};
use crate::domain::evidence::job::{ActionStatus, JobRecord, Next, Observation};
use crate::domain::evidence::plan::{EmailLocation, EmailStore, EvidenceTarget};
use crate::domain::integration::{Credentials, Integration};
use crate::error::GraphError;
use crate::ports::evidence::LiveCommand;
use crate::ports::{Clock, EvidenceApi, EvidenceJobStore, ProcessPorts};

/// A job's identity of a message found in a recipient's mailbox (Exchange's quarantine
/// identities are `GUID\GUID`, never this).
const MAILBOX_IDENTITY: &str = "mailbox:";
/// Exports held in memory at once per process (each at most `MAX_EXPORT_ANSWER_BYTES`).
static EXPORTS_IN_FLIGHT: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

impl<P: ProcessPorts> Processor<P> {
    /// Makes the one call the job needs and tells what it answered.
    pub(super) async fn call(
        &self,
        ev: &Evidence<P::Evidence>,
        integration: &Integration,
        creds: &Credentials,
        record: &JobRecord,
        next: Next,
    ) -> Observation {
        let target = &record.job.target;
        match (next, target) {
            (Next::Verify, _) => crate::app::evidence::microsoft_copy::verify(&ev.api, creds, integration, record).await,
            (Next::Start, EvidenceTarget::File { device_id, .. }) => {
                let commands = if target.is_restore() {
                    let commands = match restore_commands(&record.job) {
                        Ok(c) => c,
                        Err(ends) => return *ends,
                    };
                    if let Err(waits) = self.ensure_restore_script(ev, creds, &record.job.key, &record.tenant_id, self.clock.now()).await {
                        return waits;
                    }
                    // Listed before it can reach the device: what a restore leaves there is
                    // always found by its integration (removal, the alarm), never by a scan.
                    if let Some(entry) = RestoreEntry::of(&record.job) {
                        // No expiry: a copy left on a device stays listed until someone clears it.
                        if let Err(e) = ev.jobs.set_add(&restores_set(&integration.id), &entry.to_entry(), None).await {
                            return Observation::Transient(format!("the restore could not be listed: {e}"));
                        }
                    }
                    commands
                } else {
                    vec![LiveCommand::GetFile { path: target.path().unwrap_or_default() }]
                };
                match ev.api.run_live_response(creds, device_id, &commands).await {
                    Ok(action_id) => Observation::Started { action_id },
                    Err(e) => observe_error(&e),
                }
            }
            (Next::Cleanup(restore_action), EvidenceTarget::File { device_id, .. }) => {
                // A restore still waiting for the device never runs: cancelled. One that ended
                // (the cancel is refused) or ran is cleaned up by the script either way.
                if let Err(e) = ev.api.cancel_action(creds, &restore_action).await {
                    tracing::debug!(action = %restore_action, error = %e, "the restore was not cancelled (it had ended)");
                }
                match ev.api.run_live_response(creds, device_id, &cleanup_commands(&record.job)).await {
                    Ok(action_id) => Observation::CleanupStarted { action_id },
                    Err(e) => observe_error(&e),
                }
            }
            (Next::Start, EvidenceTarget::Email { internet_message_id, recipient, location }) => {
                self.find_email(ev, integration, creds, internet_message_id, recipient, *location).await
            }
            (Next::CheckAction(id), _) => match ev.api.machine_action(creds, &id).await {
                Ok(report) => {
                    if !report.errors.is_empty() {
                        tracing::info!(action = %id, errors = ?report.errors, "the live response reported errors");
                    }
                    match report.status {
                        ActionStatus::Failed => Observation::ActionFailed { hresult: report.error_hresult, errors: report.errors },
                        status => Observation::Action(status),
                    }
                }
                Err(e) => observe_error(&e),
            },
            (Next::Download(id), EvidenceTarget::File { name, sha1, sha256, .. }) => {
                // A restore's copy comes encrypted with the job's key (restore_secret.rs).
                let secret = match (target.is_restore(), record.job.restore.as_ref()) {
                    (false, _) => None,
                    (true, Some(s)) if s.is_well_formed() => Some(s),
                    (true, _) => return Observation::Refused("the job has no key to open the restored copy with".into()),
                };
                // A link lives 30 minutes (§7): one that expired on the way is asked for again.
                for attempt in 0..2 {
                    // The restore's GetFile is its second command.
                    let index = usize::from(target.is_restore());
                    let url = match ev.api.result_link(creds, &id, index).await {
                        Ok(u) => u,
                        Err(e) => return observe_error(&e),
                    };
                    match ev.api.download(&url).await {
                        Ok(d) => {
                            let key = format!("evidence/{}/{}/{}", safe_key(&integration.id), target.key(), safe_key(name));
                            let want = Want { sha1: sha1.as_deref(), sha256: sha256.as_deref() };
                            return match self.store_file(ev, d, &key, want, true, secret).await {
                                Stored::Observed(o) => o,
                                // The file is itself a gzip or a zip, sent as it is: kept as it came.
                                Stored::IsTheArchive => match ev.api.download(&url).await {
                                    Ok(d) => match self.store_file(ev, d, &key, want, false, secret).await {
                                        Stored::Observed(o) => o,
                                        Stored::IsTheArchive => Observation::Transient("the result changed between two downloads".into()),
                                    },
                                    Err(e) => Observation::Transient(format!("the result download failed: {e}")),
                                },
                            };
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
            (Next::Export(identity), EvidenceTarget::Email { recipient, .. }) if identity.starts_with(MAILBOX_IDENTITY) => {
                let identity_found = &identity;
                let id = &identity[MAILBOX_IDENTITY.len()..];
                let Ok(_turn) = EXPORTS_IN_FLIGHT.acquire().await else {
                    return Observation::Transient("the export gate closed".into());
                };
                match ev.api.mailbox_mime(creds, recipient, id).await {
                    Ok(mime) => {
                        let key = format!("{DELIVERED_EMAIL_PREFIX}{}/{}.eml", safe_key(&integration.id), target.key());
                        self.store_mime(ev, mime, &key).await
                    }
                    Err(GraphError::TooLarge { size, limit, .. }) => {
                        Observation::TooLarge { size: size.unwrap_or(limit as u64), limit: limit as u64 }
                    }
                    // Gone from where it was found (deleted, or purged to quarantine since): it
                    // is looked for again, where it may be now.
                    Err(GraphError::Http { status: 404, .. }) => {
                        let EvidenceTarget::Email { internet_message_id, location, .. } = target else {
                            return Observation::Transient("a step that does not fit the job's evidence".into());
                        };
                        match self.find_email(ev, integration, creds, internet_message_id, recipient, *location).await {
                            // Still listed where it was: the export is tried again later.
                            Observation::Found { identity } if identity == *identity_found => {
                                Observation::Transient(format!("{recipient}'s mailbox lists the message but answered 404 for its MIME"))
                            }
                            other => other,
                        }
                    }
                    Err(e) => observe_mailbox_error(&e, recipient),
                }
            }
            (Next::Export(identity), EvidenceTarget::Email { .. }) => {
                let Some(org) = integration.organization_id.as_deref() else {
                    return Observation::Refused("the integration has no organization_id".into());
                };
                // Exports in flight at once, each holding Exchange's answer: the bound that keeps a
                // batch of large messages inside the function's memory.
                let Ok(_turn) = EXPORTS_IN_FLIGHT.acquire().await else {
                    return Observation::Transient("the export gate closed".into());
                };
                match ev.api.export_quarantined(creds, org, &identity).await {
                    Ok(export) => {
                        let key = format!("{QUARANTINED_EMAIL_PREFIX}{}/{}.eml", safe_key(&integration.id), target.key());
                        self.store_export(ev, export, &key).await
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

    /// Looks for an email in the stores the integration reads, where the alert says it went
    /// first: found in one is the job's identity there (a mailbox's prefixed), otherwise why not.
    async fn find_email(
        &self,
        ev: &Evidence<P::Evidence>,
        integration: &Integration,
        creds: &Credentials,
        message_id: &str,
        recipient: &str,
        location: EmailLocation,
    ) -> Observation {
        let mut missed = Vec::new();
        let mut refused = None;
        // A store that failed for a passing reason: the other is still searched (the email may
        // be there), and the step comes back if neither finds it.
        let mut passing = None;
        for store in location.search_order(&integration.evidence) {
            let answer = match store {
                EmailStore::Mailbox => match ev.api.find_in_mailbox(creds, recipient, message_id).await {
                    Ok(ids) => Ok(ids.into_iter().next().map(|id| format!("{MAILBOX_IDENTITY}{id}"))),
                    Err(e) => Err(observe_mailbox_error(&e, recipient)),
                },
                EmailStore::Quarantine => match integration.organization_id.as_deref() {
                    None => Err(Observation::Refused(
                        "the integration has no organization_id (its *.onmicrosoft.com domain), which Exchange Online needs".into(),
                    )),
                    Some(org) => {
                        // Quarantine keeps a message 30 days, and the cmdlet searches 30 days at most.
                        let since = self.clock.now().minus(QUARANTINE_DAYS);
                        match ev.api.find_quarantined(creds, org, message_id, recipient, since).await {
                            Ok(ids) => Ok(ids.into_iter().next()),
                            Err(e) => Err(observe_error(&e)),
                        }
                    }
                },
            };
            let place = match store {
                EmailStore::Mailbox => format!("{recipient}'s mailbox"),
                EmailStore::Quarantine => "quarantine".to_owned(),
            };
            match answer {
                Ok(Some(identity)) => return Observation::Found { identity },
                Ok(None) => missed.push(place),
                Err(Observation::NotFound(why)) => missed.push(format!("{place} ({why})")),
                Err(Observation::Refused(why)) => {
                    refused.get_or_insert(why);
                }
                Err(other) => {
                    passing.get_or_insert(other);
                }
            }
        }
        if let Some(again) = passing {
            return again;
        }
        // A refusal names its fix: the email may well be where it could not be looked for.
        match refused {
            None if missed.is_empty() => Observation::Refused(
                "the integration reads neither mailboxes nor quarantine now (evidence.delivered_email, evidence.quarantined_email)".into(),
            ),
            Some(why) if missed.is_empty() => Observation::Refused(why),
            Some(why) => Observation::Refused(format!("no message with Message-ID {message_id} is in {}; and {why}", missed.join(" or "))),
            None => Observation::NotFound(format!("no message with Message-ID {message_id} for {recipient} is in {}", missed.join(" or "))),
        }
    }
}
