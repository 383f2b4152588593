//! The opt-in restore of files antivirus quarantined (`evidence.restore_quarantined_files`,
//! issue 13 §3): m365-ingest's own script in the tenant's live response library (uploaded once
//! per tenant and script version), run by live response to put the file back on disk in a
//! folder of its own, GetFile to collect it, then the script again with `-Cleanup`.
//!
//! Nothing an alert says reaches the device's command line as text: the folder is built from
//! the item's key (hex), the hash is checked to be 64 hex digits, and the original path goes
//! Base64-encoded.

use base64::Engine;

use super::evidence::Evidence;
use super::process::Processor;
use crate::domain::evidence_job::Observation;
use crate::domain::evidence_plan::EvidenceTarget;
use crate::domain::integration::Credentials;
use crate::domain::time::GraphTime;
use crate::ports::evidence::{LibraryRecord, LibraryUpload, LiveCommand};
use crate::ports::{EvidenceApi, EvidenceJobStore, ProcessPorts};

/// The script, as it goes to the library (shared/scripts/m365-ingest-restore.ps1).
pub const RESTORE_SCRIPT: &[u8] = include_bytes!("../../scripts/m365-ingest-restore.ps1");
/// Its library name: a new version of the script is a new file, never a changed one under a
/// name a running action may use.
pub const RESTORE_SCRIPT_NAME: &str = "m365-ingest-restore-v1.ps1";

fn hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The integration's restores that may hold a copy on a device (under way, or whose cleanup
/// was not confirmed): read by key, as `integration remove` and the alarm's runbook need them.
pub async fn open_restores(
    jobs: &impl EvidenceJobStore,
    integration_id: &str,
) -> Result<Vec<crate::domain::evidence_index::RestoreEntry>, crate::error::CursorError> {
    let set = crate::domain::evidence_index::restores_set(integration_id);
    Ok(jobs.set_members(&set).await?.iter().filter_map(|e| crate::domain::evidence_index::RestoreEntry::parse(e)).collect())
}

/// The commands that restore `target` and collect it, or why it cannot be restored.
pub fn restore_commands(target: &EvidenceTarget) -> Result<Vec<LiveCommand>, String> {
    let EvidenceTarget::File { sha256, .. } = target else { return Err("not a file".into()) };
    let sha256 = sha256
        .as_deref()
        .filter(|h| hex64(h))
        .ok_or("the alert gives no SHA-256 of the file, which the restore needs to find it in the device's quarantine")?;
    let folder = target.restore_folder();
    let path = base64::engine::general_purpose::STANDARD.encode(target.path().unwrap_or_default());
    Ok(vec![
        LiveCommand::RunScript {
            script: RESTORE_SCRIPT_NAME.into(),
            args: format!("-Folder {folder} -Sha256 {} -PathB64 {path}", sha256.to_ascii_lowercase()),
        },
        LiveCommand::GetFile { path: format!("{folder}\\{}.bin", sha256.to_ascii_lowercase()) },
    ])
}

/// The command that removes what the restore of `target` left on the device.
pub fn cleanup_commands(target: &EvidenceTarget) -> Vec<LiveCommand> {
    vec![LiveCommand::RunScript { script: RESTORE_SCRIPT_NAME.into(), args: format!("-Folder {} -Cleanup", target.restore_folder()) }]
}

impl<P: ProcessPorts> Processor<P> {
    /// Puts the restore script in the tenant's library unless this version is there already.
    /// Once per tenant: the first job claims the upload (a conditional write); another that
    /// comes meanwhile waits as for a busy device (`Busy`), and takes a claim over once it is
    /// older than the processor's claim time.
    pub(crate) async fn ensure_restore_script(
        &self,
        ev: &Evidence<P::Evidence>,
        creds: &Credentials,
        record_key: &str,
        tenant_id: &str,
        now: GraphTime,
    ) -> Result<(), Observation> {
        let key = format!("library/{}/{RESTORE_SCRIPT_NAME}", tenant_id.to_ascii_lowercase());
        let sha256 = crate::domain::envelope::sha256_hex(RESTORE_SCRIPT);
        let expires = now.plus(ev.settings.job_ttl);
        let transient = |e: crate::error::CursorError| Observation::Transient(e.to_string());
        let mine =
            LibraryRecord { key: key.clone(), sha256: sha256.clone(), uploaded_at: None, claimed_by: record_key.into(), claimed_at: now };
        let (stored, version) = ev.jobs.create(&mine, expires).await.map_err(transient)?;
        let version = match stored {
            s if s.sha256 == sha256 && s.uploaded_at.is_some() => return Ok(()),
            s if s.claimed_by == record_key && s.sha256 == sha256 => version,
            // Another job uploads now; or its claim lapsed, or the script changed: take it over.
            s if s.sha256 == sha256 && now < s.claimed_at.plus(self.settings.claim_for) => return Err(Observation::Busy),
            _ => ev.jobs.save(&mine, version, expires).await.map_err(|_| Observation::Busy)?,
        };
        let upload = LibraryUpload {
            file_name: RESTORE_SCRIPT_NAME,
            bytes: RESTORE_SCRIPT,
            description: "m365-ingest: restores one file from Defender Antivirus quarantine into a folder of its own for GetFile, and removes it with -Cleanup",
            parameters_description: "-Folder <C:\\ProgramData\\m365-ingest\\restore\\…> (-Sha256 <hex> -PathB64 <base64> | -Cleanup)",
        };
        ev.api.upload_library(creds, &upload).await.map_err(|e| super::evidence::observe_error(&e))?;
        let done = LibraryRecord { uploaded_at: Some(now), ..mine };
        // Not saved (another took the claim over and uploaded the same script): uploaded all the same.
        let _ = ev.jobs.save(&done, version, expires).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quarantined(sha256: Option<&str>, name: &str) -> EvidenceTarget {
        EvidenceTarget::File {
            device_id: "d1".into(),
            folder: "C:\\Users\\a\\Downloads".into(),
            name: name.into(),
            sha1: None,
            sha256: sha256.map(str::to_owned),
            quarantined_by_antivirus: true,
        }
    }

    #[test]
    fn no_text_of_the_alert_reaches_the_devices_command_line() {
        let hostile = "x.exe' ; Remove-Item C:\\ -Recurse ; '";
        let t = quarantined(Some(&"AB".repeat(32)), hostile);
        let commands = restore_commands(&t).unwrap_or_default();
        let LiveCommand::RunScript { args, script } = &commands[0] else { panic!("{commands:?}") };
        assert_eq!(script, RESTORE_SCRIPT_NAME);
        assert!(!args.contains("Remove-Item") && !args.contains('\'') && !args.contains(';'), "{args}");
        assert!(args.contains(&"ab".repeat(32)), "the hash, lower-cased");
        let LiveCommand::GetFile { path } = &commands[1] else { panic!("{commands:?}") };
        assert_eq!(path, &format!("{}\\{}.bin", t.restore_folder(), "ab".repeat(32)));
        assert!(path.starts_with("C:\\ProgramData\\m365-ingest\\restore\\"));
        assert!(restore_commands(&quarantined(None, "a.exe")).is_err(), "no hash, no restore");
        assert!(restore_commands(&quarantined(Some("abc; x"), "a.exe")).is_err(), "a hash is 64 hex digits");
        let LiveCommand::RunScript { args, .. } = &cleanup_commands(&t)[0] else { panic!() };
        assert!(args.ends_with("-Cleanup") && args.contains(&t.restore_folder()));
    }

    #[test]
    fn the_script_is_the_one_the_simulator_and_the_readme_describe() {
        let text = String::from_utf8_lossy(RESTORE_SCRIPT);
        assert!(text.starts_with("# m365-ingest:restore-quarantined-file"));
        assert!(RESTORE_SCRIPT.len() < 20 * 1024 * 1024, "the library takes 20 MB at most");
        for needle in ["Add-MpPreference -ExclusionPath", "Remove-MpPreference -ExclusionPath", "-Restore -Name", "Get-FileHash"] {
            assert!(text.contains(needle), "{needle}");
        }
    }
}
