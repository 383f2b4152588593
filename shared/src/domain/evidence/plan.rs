//! Which evidence of an alert can be retrieved, and the names of how a retrieval ends (issue 13,
//! its first step: the processor's decision, before any job exists).
//!
//! - A **file** on a device: a `fileEvidence` with a name and a folder, on the device its own
//!   `mdeDeviceId` names or, failing that, the alert's only `deviceEvidence` (ms-apis.md §7,
//!   "Locating a quarantined file from an alert"). When antivirus acted on it (the alert's
//!   `detectionSource` is `antivirus`, or the file's `detectionStatus` is blocked/prevented, or
//!   its `remediationStatus` remediated/prevented/blocked) the file is no longer at its path: it
//!   is in quarantine, and only the opt-in restore path can collect it.
//! - An **email**, by its `internetMessageId` and `recipientEmailAddress`: an
//!   `analyzedMessageEvidence` that reached the recipient's mailbox (`deliveryLocation` inbox,
//!   junkFolder or deletedFolder) or quarantine, and the email a submission names. Where the
//!   alert says it went decides where it is looked for first, not only: zero-hour auto purge
//!   moves a delivered email to quarantine, and an admin releases a quarantined one to the
//!   inbox, after the alert was made (Get-QuarantineMessage is never called without an
//!   identity, §8; the mailbox is searched by `internetMessageId`, user-list-messages.md).
//!
//! One job per alert version and evidence item: the job's key is the alert's dedup key and the
//! item's own key, so a redelivered alert finds its job instead of starting another.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::domain::email::section::EmailSection;
use crate::domain::graph_alert::GraphAlert;
use crate::domain::integration::sections::EvidenceDoc;

/// One piece of evidence to retrieve.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EvidenceTarget {
    File {
        /// The Defender for Endpoint machine id.
        device_id: String,
        /// The folder, as the evidence gives it.
        folder: String,
        name: String,
        sha1: Option<String>,
        sha256: Option<String>,
        /// Antivirus acted on it: it is in quarantine, not at its path.
        quarantined_by_antivirus: bool,
    },
    Email {
        /// With its angle brackets, as Get-QuarantineMessage's `-MessageId` wants it.
        internet_message_id: String,
        recipient: String,
        /// Where the alert says the email went (jobs stored before issue 30 knew only quarantine).
        /// Not part of the key: the same email named by two alerts is one item.
        #[serde(default)]
        location: EmailLocation,
    },
}

/// Where an alert says its email went: the first place a job looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailLocation {
    #[default]
    Quarantine,
    /// The recipient's inbox, junk email or deleted items.
    Mailbox,
    /// A submission's email: the user reported it from their mailbox, unless it was quarantined.
    Reported,
}

/// Where an email is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailStore {
    /// The recipient's mailbox through Graph (`evidence.delivered_email`, Mail.Read).
    Mailbox,
    /// Exchange Online's quarantine (`evidence.quarantined_email`).
    Quarantine,
}

impl EmailLocation {
    /// The stores the integration may read, the likelier first.
    pub fn search_order(self, settings: &EvidenceDoc) -> Vec<EmailStore> {
        let order = match self {
            EmailLocation::Quarantine => [EmailStore::Quarantine, EmailStore::Mailbox],
            EmailLocation::Mailbox | EmailLocation::Reported => [EmailStore::Mailbox, EmailStore::Quarantine],
        };
        order
            .into_iter()
            .filter(|s| match s {
                EmailStore::Mailbox => settings.delivered_email,
                EmailStore::Quarantine => settings.quarantined_email,
            })
            .collect()
    }
}

impl EvidenceTarget {
    /// Whether the integration retrieves this kind of evidence.
    pub fn enabled(&self, settings: &EvidenceDoc) -> bool {
        match self {
            EvidenceTarget::File { .. } => settings.live_response_files,
            EvidenceTarget::Email { .. } => settings.delivered_email || settings.quarantined_email,
        }
    }

    /// The item's part of its job key: stable for the same evidence, whatever the alert's
    /// other members (ids are case-folded where Microsoft's are case-insensitive).
    pub fn key(&self) -> String {
        let text = match self {
            EvidenceTarget::File { device_id, folder, name, .. } => {
                format!("file\n{}\n{}\n{}", device_id.to_ascii_lowercase(), folder.to_lowercase(), name.to_lowercase())
            }
            EvidenceTarget::Email { internet_message_id, recipient, .. } => {
                format!("email\n{internet_message_id}\n{}", recipient.to_ascii_lowercase())
            }
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        digest.as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A file antivirus quarantined: collected only by a restore on the device.
    pub fn is_restore(&self) -> bool {
        matches!(self, EvidenceTarget::File { quarantined_by_antivirus: true, .. })
    }

    /// Where version 1 of the restore script put this file: a folder named by the item's key,
    /// which anyone who knows the alert can compute. Only the cleanup of a job that version
    /// started uses it; a new job's folder is its [`RestoreSecret`](crate::domain::evidence::restore_secret::RestoreSecret)'s.
    pub fn legacy_restore_folder(&self) -> String {
        format!("{LEGACY_RESTORE_ROOT}{}", self.key())
    }

    /// The full path of a file (the folder and the name, joined as the device's platform does).
    pub fn path(&self) -> Option<String> {
        let EvidenceTarget::File { folder, name, .. } = self else { return None };
        let sep = if folder.contains('\\') || folder.chars().nth(1) == Some(':') { '\\' } else { '/' };
        Some(if folder.ends_with(sep) { format!("{folder}{name}") } else { format!("{folder}{sep}{name}") })
    }
}

/// The folder under which the restore script works (m365-ingest-restore.ps1 builds no other):
/// under Program Files, where only administrators can create a folder or a junction.
pub const RESTORE_ROOT: &str = "C:\\Program Files\\m365-ingest\\restore\\";
/// Where version 1 worked (ProgramData, where any user can create first).
pub const LEGACY_RESTORE_ROOT: &str = "C:\\ProgramData\\m365-ingest\\restore\\";

/// The most bytes a target's strings take: a job record stays a few KB, whatever an alert
/// carries (a Windows path is at most 32,767 characters; real ones are far shorter).
pub const MAX_TARGET_BYTES: usize = 4_096;

impl EvidenceTarget {
    fn fits(&self) -> bool {
        let size = match self {
            EvidenceTarget::File { device_id, folder, name, sha1, sha256, .. } => {
                device_id.len() + folder.len() + name.len() + sha1.as_ref().map_or(0, String::len) + sha256.as_ref().map_or(0, String::len)
            }
            EvidenceTarget::Email { internet_message_id, recipient, .. } => internet_message_id.len() + recipient.len(),
        };
        size <= MAX_TARGET_BYTES
    }
}

/// The key of the job that retrieves `target` for the alert version `dedup_key`.
pub fn job_key(dedup_key: &str, target: &EvidenceTarget) -> String {
    format!("{dedup_key}/evidence/{}", target.key())
}

/// How a retrieval ended: the `status` of an evidence item in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceOutcome {
    Retrieved,
    NotFound,
    DeviceOffline,
    TimedOut,
    /// Microsoft refused (a missing role, a device group without Live Response); the reason is kept.
    Refused,
    TooLarge,
    /// The integration does not retrieve this kind of evidence.
    Disabled,
}

impl EvidenceOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceOutcome::Retrieved => "retrieved",
            EvidenceOutcome::NotFound => "not_found",
            EvidenceOutcome::DeviceOffline => "device_offline",
            EvidenceOutcome::TimedOut => "timed_out",
            EvidenceOutcome::Refused => "refused",
            EvidenceOutcome::TooLarge => "too_large",
            EvidenceOutcome::Disabled => "disabled",
        }
    }
}

/// The most evidence items one alert version asks for: an alert naming hundreds of files gets
/// the first of them, never hundreds of Live Response sessions.
pub const MAX_TARGETS: usize = 10;

/// The evidence of one alert (and, for a submission or a mailbox report, its email), each once,
/// in the alert's order, at most [`MAX_TARGETS`].
pub fn plan(alert: &GraphAlert, email: Option<&EmailSection>) -> Vec<EvidenceTarget> {
    plan_up_to(alert, email, MAX_TARGETS)
}

/// The item `target` names, as Microsoft's own copy of its alert names it (re-read by id before
/// anything is asked of a device or of Exchange): an intake message is never trusted to say
/// which file to take from which device. Err: why the job must not go on. A file Microsoft's
/// copy gives no hash for is refused: what a device returned could not be checked.
pub fn confirm(target: &EvidenceTarget, microsoft: &GraphAlert, email: Option<&EmailSection>) -> Result<EvidenceTarget, String> {
    let key = target.key();
    let Some(theirs) = plan_up_to(microsoft, email, usize::MAX).into_iter().find(|t| t.key() == key) else {
        let what = match target {
            EvidenceTarget::File { .. } => "this file on this device",
            EvidenceTarget::Email { .. } => "this email for this recipient",
        };
        return Err(format!(
            "Microsoft's copy of the alert, read by id, does not name {what}: the request did not come from Microsoft's alert, \
             so nothing was asked of the device or of Exchange"
        ));
    };
    if let EvidenceTarget::File { sha1: None, sha256: None, .. } = &theirs {
        return Err("Microsoft's copy of the alert gives no hash of this file, so the bytes a device returned could not be checked \
                    against it: GetFile was not run"
            .into());
    }
    Ok(theirs)
}

fn plan_up_to(alert: &GraphAlert, email: Option<&EmailSection>, max: usize) -> Vec<EvidenceTarget> {
    let antivirus_alert = alert.detection_source.as_deref() == Some("antivirus");
    let devices: BTreeSet<&str> = alert
        .evidence
        .iter()
        .filter(|e| e.kind() == "deviceEvidence")
        .filter_map(|e| e.mde_device_id.as_deref())
        .filter(|d| !d.is_empty())
        .collect();
    let only_device = (devices.len() == 1).then(|| devices.iter().next().copied()).flatten();
    let mut out: Vec<EvidenceTarget> = Vec::new();
    // Once by key: the first naming decides where an email is looked for first.
    let mut push = |t: EvidenceTarget| {
        if t.fits() && !out.iter().any(|o| o.key() == t.key()) && out.len() < max {
            out.push(t);
        }
    };
    for e in &alert.evidence {
        match e.kind() {
            "fileEvidence" => {
                let Some(f) = &e.file_details else { continue };
                let (Some(name), Some(folder)) = (nonempty(&f.file_name), nonempty(&f.file_path)) else { continue };
                let Some(device) = nonempty(&e.mde_device_id).or(only_device) else { continue };
                let acted = antivirus_alert
                    || matches!(e.detection_status.as_deref(), Some("blocked" | "prevented"))
                    || matches!(e.remediation_status.as_deref(), Some("remediated" | "prevented" | "blocked"));
                push(EvidenceTarget::File {
                    device_id: device.to_owned(),
                    folder: folder.to_owned(),
                    name: name.to_owned(),
                    sha1: nonempty(&f.sha1).map(str::to_ascii_lowercase),
                    sha256: nonempty(&f.sha256).map(str::to_ascii_lowercase),
                    quarantined_by_antivirus: acted,
                });
            }
            "analyzedMessageEvidence" => {
                // security-analyzedmessageevidence.md's documented values; `external`, `failed`,
                // `dropped` and `forwarded` never reached a mailbox of the tenant.
                let location = match e.delivery_location.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    Some("quarantine") => EmailLocation::Quarantine,
                    Some("inbox" | "junkfolder" | "deletedfolder") => EmailLocation::Mailbox,
                    _ => continue,
                };
                if let Some(t) = email_target(e.internet_message_id.as_deref(), e.recipient_email_address.as_deref(), location) {
                    push(t);
                }
            }
            _ => {}
        }
    }
    if let Some(t) = email.and_then(|m| email_target(m.internet_message_id.as_deref(), m.recipient.as_deref(), EmailLocation::Reported)) {
        push(t);
    }
    out
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// An email by its `Message-ID` (bracketed as the header has it) and recipient.
fn email_target(message_id: Option<&str>, recipient: Option<&str>, location: EmailLocation) -> Option<EvidenceTarget> {
    let id = message_id.map(str::trim).filter(|s| !s.is_empty())?;
    let recipient = recipient.map(str::trim).filter(|s| s.contains('@'))?;
    let bracketed = if id.starts_with('<') && id.ends_with('>') { id.to_owned() } else { format!("<{}>", id.trim_matches(['<', '>'])) };
    Some(EvidenceTarget::Email { internet_message_id: bracketed, recipient: recipient.to_owned(), location })
}

#[cfg(test)]
mod tests {
    use crate::domain::evidence::plan::*;
    use crate::domain::graph_alert::{Evidence, FileDetails};

    fn file(device: Option<&str>, folder: &str, name: &str, status: Option<&str>) -> Evidence {
        Evidence {
            odata_type: "#microsoft.graph.security.fileEvidence".into(),
            mde_device_id: device.map(str::to_owned),
            detection_status: status.map(str::to_owned),
            file_details: Some(FileDetails {
                file_name: Some(name.into()),
                file_path: Some(folder.into()),
                sha1: Some("AB12".into()),
                sha256: None,
                ..FileDetails::default()
            }),
            ..Evidence::default()
        }
    }

    fn device(id: &str) -> Evidence {
        Evidence { odata_type: "#microsoft.graph.security.deviceEvidence".into(), mde_device_id: Some(id.into()), ..Evidence::default() }
    }

    fn message(location: &str, id: &str, to: &str) -> Evidence {
        Evidence {
            odata_type: "#microsoft.graph.security.analyzedMessageEvidence".into(),
            delivery_location: Some(location.into()),
            internet_message_id: Some(id.into()),
            recipient_email_address: Some(to.into()),
            ..Evidence::default()
        }
    }

    #[test]
    fn a_file_is_found_on_its_own_device_or_the_alerts_only_one() {
        let mut a = GraphAlert { detection_source: Some("microsoftDefenderForEndpoint".into()), ..GraphAlert::default() };
        a.evidence =
            vec![device("dev1"), file(None, "C:\\Users\\x\\Downloads", "a.exe", None), file(Some("dev2"), "/tmp", "b.sh", Some("blocked"))];
        let p = plan(&a, None);
        assert_eq!(p.len(), 2);
        assert!(
            matches!(&p[0], EvidenceTarget::File { device_id, quarantined_by_antivirus: false, sha1: Some(s), .. } if device_id == "dev1" && s == "ab12")
        );
        assert_eq!(p[0].path().as_deref(), Some("C:\\Users\\x\\Downloads\\a.exe"));
        assert!(matches!(&p[1], EvidenceTarget::File { device_id, quarantined_by_antivirus: true, .. } if device_id == "dev2"));
        assert_eq!(p[1].path().as_deref(), Some("/tmp/b.sh"));
        // Two devices and a file that names none: which one is not known, so none is asked.
        a.evidence = vec![device("dev1"), device("dev2"), file(None, "C:\\x", "a.exe", None)];
        assert!(plan(&a, None).is_empty());
    }

    #[test]
    fn antivirus_detections_are_in_quarantine_and_duplicates_are_asked_once() {
        let mut a = GraphAlert { detection_source: Some("antivirus".into()), ..GraphAlert::default() };
        a.evidence = vec![device("d"), file(None, "C:\\x", "a.exe", None), file(Some("d"), "C:\\x", "a.exe", None)];
        let p = plan(&a, None);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(matches!(&p[0], EvidenceTarget::File { quarantined_by_antivirus: true, .. }));
        a.evidence = (0..40).map(|i| file(Some("d"), "C:\\x", &format!("{i}.exe"), None)).collect();
        assert_eq!(plan(&a, None).len(), MAX_TARGETS);
    }

    #[test]
    fn emails_that_reached_a_mailbox_or_quarantine_and_reported_ones_are_asked_for_by_id_and_recipient() {
        let a = GraphAlert {
            evidence: vec![
                message("inbox", "<in@x>", "u@contoso.com"),
                message("quarantine", "q@x", "U@contoso.com"),
                message("quarantine", "<no-recipient@x>", ""),
                message("junkFolder", "<junk@x>", "u@contoso.com"),
                message("failed", "<failed@x>", "u@contoso.com"),
                message("external", "<out@x>", "u@fabrikam.com"),
            ],
            ..GraphAlert::default()
        };
        let email =
            EmailSection { internet_message_id: Some("<q@x>".into()), recipient: Some("U@contoso.com".into()), ..EmailSection::default() };
        let at = |id: &str, to: &str, location| EvidenceTarget::Email { internet_message_id: id.into(), recipient: to.into(), location };
        let p = plan(&a, Some(&email));
        assert_eq!(
            p,
            vec![
                at("<in@x>", "u@contoso.com", EmailLocation::Mailbox),
                at("<q@x>", "U@contoso.com", EmailLocation::Quarantine),
                at("<junk@x>", "u@contoso.com", EmailLocation::Mailbox),
            ],
            "bracketed, once, where the alert says it went; never one that left the tenant or failed"
        );
        let reported = plan(&GraphAlert::default(), Some(&email));
        assert_eq!(reported, vec![at("<q@x>", "U@contoso.com", EmailLocation::Reported)]);
        assert_eq!(reported[0].key(), p[1].key(), "where an email went is not part of its key");
        let off = EvidenceDoc::default();
        assert!(!p[0].enabled(&off));
        let delivered = EvidenceDoc { delivered_email: true, ..off.clone() };
        let quarantined = EvidenceDoc { quarantined_email: true, ..off.clone() };
        let both = EvidenceDoc { delivered_email: true, quarantined_email: true, ..off };
        assert!(p.iter().all(|t| t.enabled(&delivered) && t.enabled(&quarantined)));
        assert_eq!(EmailLocation::Mailbox.search_order(&both), vec![EmailStore::Mailbox, EmailStore::Quarantine]);
        assert_eq!(EmailLocation::Reported.search_order(&both), vec![EmailStore::Mailbox, EmailStore::Quarantine]);
        assert_eq!(EmailLocation::Quarantine.search_order(&both), vec![EmailStore::Quarantine, EmailStore::Mailbox]);
        assert_eq!(EmailLocation::Mailbox.search_order(&quarantined), vec![EmailStore::Quarantine]);
        assert_eq!(EmailLocation::Quarantine.search_order(&delivered), vec![EmailStore::Mailbox]);
        // A job stored before the location existed was a quarantined email's.
        let old: EvidenceTarget =
            serde_json::from_str(r#"{"kind":"email","internet_message_id":"<q@x>","recipient":"u@contoso.com"}"#).unwrap();
        assert_eq!(old, at("<q@x>", "u@contoso.com", EmailLocation::Quarantine));
    }

    #[test]
    fn a_target_goes_on_only_as_microsofts_copy_names_it_and_a_file_only_with_a_hash() {
        let mut theirs = GraphAlert { detection_source: Some("microsoftDefenderForEndpoint".into()), ..GraphAlert::default() };
        theirs.evidence = vec![device("dev1"), file(None, "C:\\x", "a.exe", Some("blocked"))];
        let at = |device: &str, folder: &str, name: &str| EvidenceTarget::File {
            device_id: device.into(),
            folder: folder.into(),
            name: name.into(),
            sha1: Some("forged".into()),
            sha256: None,
            quarantined_by_antivirus: false,
        };
        let claimed = at("dev1", "C:\\x", "A.EXE");
        let confirmed = confirm(&claimed, &theirs, None).unwrap();
        assert!(
            matches!(&confirmed, EvidenceTarget::File { sha1: Some(h), quarantined_by_antivirus: true, .. } if h == "ab12"),
            "Microsoft's hashes and verdict, not the message's: {confirmed:?}"
        );
        let forged = at("dev1", "C:\\Windows\\System32\\config", "SAM");
        assert!(confirm(&forged, &theirs, None).unwrap_err().contains("does not name this file on this device"));
        let other_device = at("dev9", "C:\\x", "a.exe");
        assert!(confirm(&other_device, &theirs, None).is_err());
        let mut unhashed = file(None, "C:\\x", "a.exe", None);
        if let Some(f) = unhashed.file_details.as_mut() {
            f.sha1 = None;
        }
        theirs.evidence = vec![device("dev1"), unhashed];
        assert!(confirm(&claimed, &theirs, None).unwrap_err().contains("no hash"));
        // Beyond the first MAX_TARGETS of Microsoft's copy, an item is still Microsoft's.
        theirs.evidence = (0..30).map(|i| file(Some("dev1"), "C:\\x", &format!("{i}.exe"), None)).collect();
        let late = at("dev1", "C:\\x", "29.exe");
        assert!(confirm(&late, &theirs, None).is_ok());
        let email = EvidenceTarget::Email {
            internet_message_id: "<q@x>".into(),
            recipient: "u@contoso.com".into(),
            location: EmailLocation::Mailbox,
        };
        let msg = GraphAlert { evidence: vec![message("quarantine", "<q@x>", "U@contoso.com")], ..GraphAlert::default() };
        assert!(
            matches!(confirm(&email, &msg, None), Ok(EvidenceTarget::Email { location: EmailLocation::Quarantine, .. })),
            "where Microsoft's copy says it went"
        );
        let other = GraphAlert { evidence: vec![message("inbox", "<other@x>", "u@contoso.com")], ..GraphAlert::default() };
        assert!(confirm(&email, &other, None).unwrap_err().contains("this email for this recipient"));
        let failed = GraphAlert { evidence: vec![message("failed", "<q@x>", "u@contoso.com")], ..GraphAlert::default() };
        assert!(confirm(&email, &failed, None).is_err(), "an email that never reached the tenant is not asked for");
    }

    #[test]
    fn a_job_key_names_the_alert_version_and_the_item_whatever_the_case() {
        let t = |id: &str, to: &str| EvidenceTarget::Email {
            internet_message_id: id.into(),
            recipient: to.into(),
            location: EmailLocation::default(),
        };
        let k = job_key("defender_alerts/t/a1/2026-11-26T10:00:00.0000000Z", &t("<q@x>", "U@contoso.com"));
        assert!(k.starts_with("defender_alerts/t/a1/2026-11-26T10:00:00.0000000Z/evidence/"), "{k}");
        assert_eq!(k, job_key("defender_alerts/t/a1/2026-11-26T10:00:00.0000000Z", &t("<q@x>", "u@contoso.com")));
        assert_ne!(
            k,
            job_key("defender_alerts/t/a1/2026-11-26T10:00:00.0000000Z", &t("<Q@x>", "u@contoso.com")),
            "Message-IDs are case-sensitive"
        );
        assert_eq!(EvidenceOutcome::DeviceOffline.as_str(), "device_offline");
        assert_eq!(serde_json::to_string(&EvidenceOutcome::TooLarge).ok().as_deref(), Some("\"too_large\""));
    }
}
