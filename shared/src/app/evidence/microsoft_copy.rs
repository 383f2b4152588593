//! Evidence is taken only as Microsoft's copy of the alert names it (issue 28 §2). The intake
//! queue accepts messages only from the stack's own roles, but a job's first call still reads
//! the alert by id from Microsoft (or its incident, or the submission) and goes on only with
//! the item Microsoft names: a forged or altered intake message can never choose which file a
//! live response takes from which device, nor which email Exchange exports.
//!
//! Where each copy is read:
//! - a Defender alert: `GET /security/alerts_v2/{id}` (security-get-alert.md);
//! - an alert of an incident: `GET /security/incidents/{id}?$expand=alerts` (security-get-incident.md:
//!   `$expand` of `alerts` is supported), so an incidents-mode integration needs no alert permission;
//! - an email threat submission: `GET /beta/security/threatSubmission/emailThreats/{id}`
//!   (security-emailthreatsubmission-get.md).

use serde_json::Value;

use crate::domain::email::section::EmailSection;
use crate::domain::evidence::job::{JobRecord, Observation};
use crate::domain::evidence::plan as evidence_plan;
use crate::domain::graph_alert::GraphAlert;
use crate::domain::integration::{Credentials, Integration};
use crate::domain::source::Source;
use crate::ports::EvidenceApi;
use crate::sources::{path_segment, GRAPH_SECURITY_HEAD};

/// Reads Microsoft's copy of the job's alert and tells whether the job may go on, and with
/// which target.
pub(crate) async fn verify<A: EvidenceApi>(api: &A, creds: &Credentials, integration: &Integration, record: &JobRecord) -> Observation {
    let (alert, email) = match read(api, creds, record).await {
        Ok(Some(copy)) => copy,
        Ok(None) => {
            return Observation::Refused(format!(
                "Microsoft has no {} `{}` in this tenant: the request did not come from Microsoft's alert, so nothing was asked of \
                 the device or of Exchange",
                what(record.source),
                record.alert_id
            ))
        }
        Err(observation) => return observation,
    };
    match evidence_plan::confirm(&record.job.target, &alert, email.as_ref()) {
        Err(why) => Observation::Refused(why),
        Ok(target) if target.is_restore() && non_windows(&alert, &target).is_some() => Observation::Refused(format!(
            "Microsoft's copy of the alert says the device runs {}: the restore script is PowerShell, which live response runs on \
             Windows devices only (Linux and macOS run bash scripts), so a file antivirus quarantined there is not collected",
            non_windows(&alert, &target).unwrap_or_default()
        )),
        Ok(target) if target.is_restore() && !integration.evidence.restore_quarantined_files => Observation::NotWanted(
            "Microsoft's copy of the alert says antivirus quarantined this file, so it is no longer at its path; collecting it \
             needs a restore on the device (evidence.restore_quarantined_files, off for this integration: read docs/evidence.md's risk \
             first)"
                .into(),
        ),
        Ok(target) => Observation::Verified(target),
    }
}

/// The device's OS when Microsoft's copy names one that is not Windows.
fn non_windows(alert: &GraphAlert, target: &evidence_plan::EvidenceTarget) -> Option<String> {
    let evidence_plan::EvidenceTarget::File { device_id, .. } = target else { return None };
    let os = alert
        .evidence
        .iter()
        .find(|e| e.mde_device_id.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(device_id)) && e.os_platform.is_some())?
        .os_platform
        .clone()?;
    (!os.to_ascii_lowercase().starts_with("windows")).then_some(os)
}

fn what(source: Source) -> &'static str {
    match source {
        Source::EmailSubmissions => "submission",
        Source::DefenderIncidents => "alert in incident",
        _ => "alert",
    }
}

type Copy = (GraphAlert, Option<EmailSection>);

/// Read as the processor read the intake copy: an escape no string can hold is U+FFFD in both.
fn decodable(item: &crate::domain::alert::Item) -> std::borrow::Cow<'_, str> {
    crate::domain::json_text::replace_unpaired_surrogates(item.raw.get()).0
}

async fn read<A: EvidenceApi>(api: &A, creds: &Credentials, record: &JobRecord) -> Result<Option<Copy>, Observation> {
    let undecodable = |e: serde_json::Error| Observation::Refused(format!("Microsoft's copy of the alert does not parse: {e}"));
    let get = |path: String, head| async move {
        match api.microsoft_copy(creds, &path, head).await {
            Ok(item) => Ok(item),
            // A copy larger than the client reads will not be smaller next time.
            Err(crate::error::GraphError::TooLarge { size, limit, .. }) => Err(Observation::Refused(format!(
                "Microsoft's copy of the alert is larger ({}) than the {limit} bytes read, so it could not be checked",
                size.map_or_else(|| "unknown".to_owned(), |s| format!("{s} bytes"))
            ))),
            Err(e) => Err(crate::app::evidence::observe::observe_error(&e)),
        }
    };
    match (record.source, record.incident_id.as_deref()) {
        (Source::DefenderIncidents, Some(incident)) => {
            let path = format!("/v1.0/security/incidents/{}?$expand=alerts", path_segment(incident));
            let Some(item) = get(path, GRAPH_SECURITY_HEAD).await? else { return Ok(None) };
            let incident: Value = serde_json::from_str(&decodable(&item)).map_err(undecodable)?;
            let found = incident
                .get("alerts")
                .and_then(Value::as_array)
                .and_then(|alerts| alerts.iter().find(|a| a.get("id").and_then(Value::as_str) == Some(record.alert_id.as_str())));
            match found {
                Some(a) => Ok(Some((serde_json::from_value(a.clone()).map_err(undecodable)?, None))),
                None => Ok(None),
            }
        }
        (Source::DefenderAlerts | Source::DefenderIncidents, _) => {
            let path = format!("/v1.0/security/alerts_v2/{}", path_segment(&record.alert_id));
            let Some(item) = get(path, GRAPH_SECURITY_HEAD).await? else { return Ok(None) };
            Ok(Some((serde_json::from_str(&decodable(&item)).map_err(undecodable)?, None)))
        }
        (Source::EmailSubmissions, _) => {
            let spec = crate::sources::spec(Source::EmailSubmissions);
            let Some(path) = spec.item_path(&record.alert_id) else { return Ok(None) };
            let Some(item) = get(path, spec.head()).await? else { return Ok(None) };
            let object = &*decodable(&item);
            let alert = crate::domain::polling::email_submission::to_alert(object).map_err(undecodable)?;
            let email = crate::domain::polling::email_submission::email_section(object).map_err(undecodable)?;
            Ok(Some((alert, Some(email))))
        }
        (source @ (Source::CloudApps | Source::PhishingMailbox), _) => {
            Err(Observation::Refused(format!("{source} items name no evidence retrieval plans from, so this request is not Microsoft's")))
        }
    }
}
