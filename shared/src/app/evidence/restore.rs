//! The opt-in restore of files antivirus quarantined (`evidence.restore_quarantined_files`,
//! issue 13 §3): m365-ingest's own script in the tenant's live response library (uploaded once
//! per tenant and script version), run by live response to put the file back on disk in a
//! folder of its own, GetFile to collect it, then the script again with `-Cleanup`.
//!
//! Nothing an alert says reaches the device's command line as text: the folder is the job's own
//! random name (hex, [`RestoreSecret`]), the hash is checked to be 64 hex digits, and the
//! original path goes Base64-encoded. What the script keeps on the device, and how, is listed in
//! docs/evidence.md ("The restore script on the device").

use base64::Engine;

use crate::app::evidence::observe::observe_error;
use crate::app::evidence::setup::Evidence;
use crate::app::processing::processor::Processor;
use crate::domain::evidence::job::{EvidenceJob, Observation};
use crate::domain::evidence::plan::{EvidenceTarget, RESTORE_ROOT};
use crate::domain::evidence::restore_secret::RestoreSecret;
use crate::domain::integration::Credentials;
use crate::domain::time::GraphTime;
use crate::ports::evidence::{LibraryRecord, LibraryUpload, LiveCommand};
use crate::ports::{EvidenceApi, EvidenceJobStore, ProcessPorts};

/// The script, as it goes to the library (shared/scripts/m365-ingest-restore.ps1).
pub const RESTORE_SCRIPT: &[u8] = include_bytes!("../../../scripts/m365-ingest-restore.ps1");
/// Its library name: a new version of the script is a new file, never a changed one under a
/// name a running action may use.
pub const RESTORE_SCRIPT_NAME: &str = "m365-ingest-restore-v2.ps1";
/// Version 1, which the library keeps: the cleanup of a restore it started still runs it.
pub const RESTORE_SCRIPT_V1_NAME: &str = "m365-ingest-restore-v1.ps1";

fn hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The integration's restores that may hold a copy on a device (under way, or whose cleanup
/// was not confirmed): read by key, as `integration remove` and the alarm's runbook need them.
pub async fn open_restores(
    jobs: &impl EvidenceJobStore,
    integration_id: &str,
) -> Result<Vec<crate::domain::evidence::index::RestoreEntry>, crate::error::CursorError> {
    let set = crate::domain::evidence::index::restores_set(integration_id);
    Ok(jobs.set_members(&set).await?.iter().filter_map(|e| crate::domain::evidence::index::RestoreEntry::parse(e)).collect())
}

/// The commands that restore the job's file and collect it (encrypted: [`RestoreSecret`]), or
/// how the job ends without them.
pub fn restore_commands(job: &EvidenceJob) -> Result<Vec<LiveCommand>, Box<Observation>> {
    let refused = |why: &str| Box::new(Observation::Refused(why.into()));
    let EvidenceTarget::File { sha256, name, .. } = &job.target else { return Err(refused("not a file")) };
    let sha256 = sha256
        .as_deref()
        .filter(|h| hex64(h))
        .ok_or_else(|| {
            Box::new(Observation::NotFound(
                "the alert gives no SHA-256 of the file, which the restore needs to find it in the device's quarantine".into(),
            ))
        })?
        .to_ascii_lowercase();
    // Defender expands environment variables in an exclusion's path: the file's one exclusion
    // would name another path.
    if name.contains('%') {
        return Err(refused(
            "the file's name holds '%', which antivirus would read in its exclusion as an environment variable: not restored",
        ));
    }
    let secret = job.restore.as_ref().filter(|s| s.is_well_formed()).ok_or_else(|| {
        refused("the job has no folder name and key of its own (made by version 1, or the system's random generator failed): not restored")
    })?;
    let path = path_b64(&job.target);
    Ok(vec![
        LiveCommand::RunScript {
            script: RESTORE_SCRIPT_NAME.into(),
            args: format!("-Job {} -Sha256 {sha256} -PathB64 {path} -KeyB64 {}", secret.folder, secret.key),
        },
        LiveCommand::GetFile { path: restored_copy(secret, &sha256) },
    ])
}

fn path_b64(target: &EvidenceTarget) -> String {
    base64::engine::general_purpose::STANDARD.encode(target.path().unwrap_or_default())
}

/// Where the script leaves the encrypted copy for GetFile.
fn restored_copy(secret: &RestoreSecret, sha256: &str) -> String {
    format!("{RESTORE_ROOT}{}\\{sha256}.enc", secret.folder)
}

/// The command that removes what the job's restore left on the device.
pub fn cleanup_commands(job: &EvidenceJob) -> Vec<LiveCommand> {
    match job.restore.as_ref().filter(|s| s.is_well_formed()) {
        // The path too: the file's exclusion is removed by name even where exclusions are hidden.
        Some(s) => vec![LiveCommand::RunScript {
            script: RESTORE_SCRIPT_NAME.into(),
            args: format!("-Job {} -PathB64 {} -Cleanup", s.folder, path_b64(&job.target)),
        }],
        None => vec![LiveCommand::RunScript {
            script: RESTORE_SCRIPT_V1_NAME.into(),
            args: format!("-Folder {} -Cleanup", job.target.legacy_restore_folder()),
        }],
    }
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
            parameters_description: "-Job <32 hex digits> (-Sha256 <hex> -PathB64 <base64> -KeyB64 <base64> | -Cleanup)",
        };
        ev.api.upload_library(creds, &upload).await.map_err(|e| observe_error(&e))?;
        let done = LibraryRecord { uploaded_at: Some(now), ..mine };
        // Not saved (another took the claim over and uploaded the same script): uploaded all the same.
        let _ = ev.jobs.save(&done, version, expires).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::app::evidence::restore::*;

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

    fn job(sha256: Option<&str>, name: &str) -> EvidenceJob {
        let now = GraphTime::parse("2026-01-01T00:00:00Z").unwrap_or_else(|e| panic!("{e}"));
        EvidenceJob::new("k/evidence/1".into(), quarantined(sha256, name), now)
    }

    #[test]
    fn no_text_of_the_alert_reaches_the_devices_command_line() {
        let hostile = "x.exe' ; Remove-Item C:\\ -Recurse ; '";
        let j = job(Some(&"AB".repeat(32)), hostile);
        let commands = restore_commands(&j).unwrap_or_default();
        let LiveCommand::RunScript { args, script } = &commands[0] else { panic!("{commands:?}") };
        assert_eq!(script, RESTORE_SCRIPT_NAME);
        assert!(!args.contains("Remove-Item") && !args.contains('\'') && !args.contains(';'), "{args}");
        assert!(args.contains(&"ab".repeat(32)), "the hash, lower-cased");
        assert!(restore_commands(&job(None, "a.exe")).is_err(), "no hash, no restore");
        assert!(restore_commands(&job(Some("abc; x"), "a.exe")).is_err(), "a hash is 64 hex digits");
        let why = restore_commands(&job(Some(&"ab".repeat(32)), "%SystemRoot%.exe")).err().map(|b| *b);
        assert!(
            matches!(&why, Some(Observation::Refused(w)) if w.contains("environment variable")),
            "an exclusion would expand it: {why:?}"
        );
        assert!(matches!(restore_commands(&job(None, "a.exe")).err().map(|b| *b), Some(Observation::NotFound(_))));
    }

    /// Version 1 named the folder by the item's key (anyone who knows the alert could compute
    /// it, and make it first) and sent no key: the file came back in the clear.
    #[test]
    fn each_restore_has_a_folder_no_one_can_predict_and_its_copy_comes_back_encrypted() {
        let (a, b) = (job(Some(&"ab".repeat(32)), "a.exe"), job(Some(&"ab".repeat(32)), "a.exe"));
        let (Some(sa), Some(sb)) = (&a.restore, &b.restore) else { panic!("a restore job has its secret") };
        assert_ne!(sa.folder, sb.folder, "the same file's two jobs have two folders");
        assert!(!a.restore_folder().contains(&a.target.key()), "not the item's key");
        let commands = restore_commands(&a).unwrap_or_default();
        let LiveCommand::RunScript { args, .. } = &commands[0] else { panic!("{commands:?}") };
        assert!(args.starts_with(&format!("-Job {} ", sa.folder)) && args.ends_with(&format!("-KeyB64 {}", sa.key)), "{args}");
        assert!(!args.contains("-Folder"), "the script builds the folder from the job's name: {args}");
        assert!(!format!("{commands:?}").contains(&sa.key), "the key is never printed: {commands:?}");
        let LiveCommand::GetFile { path } = &commands[1] else { panic!("{commands:?}") };
        assert_eq!(path, &format!("{}\\{}.enc", a.restore_folder(), "ab".repeat(32)));
        assert!(path.starts_with(RESTORE_ROOT));
        let LiveCommand::RunScript { args, script } = &cleanup_commands(&a)[0] else { panic!() };
        assert_eq!(script, RESTORE_SCRIPT_NAME);
        assert!(args.starts_with(&format!("-Job {} -PathB64 ", sa.folder)) && args.ends_with(" -Cleanup"), "{args}");
        assert!(!args.contains(&sa.key), "the cleanup needs no key");
        // A job version 1 started: cleaned by version 1, where it put the copy.
        let old = EvidenceJob { restore: None, ..a.clone() };
        assert!(restore_commands(&old).is_err(), "never started without its own folder");
        let LiveCommand::RunScript { args, script } = &cleanup_commands(&old)[0] else { panic!() };
        assert_eq!(script, RESTORE_SCRIPT_V1_NAME);
        assert_eq!(args, &format!("-Folder {} -Cleanup", old.target.legacy_restore_folder()));
        let tampered = EvidenceJob { restore: Some(RestoreSecret { folder: "..\\..".into(), key: sa.key.clone() }), ..a };
        assert!(restore_commands(&tampered).is_err());
    }

    #[test]
    fn the_script_is_the_one_the_simulator_and_the_readme_describe() {
        let text = String::from_utf8_lossy(RESTORE_SCRIPT);
        assert!(text.starts_with("# m365-ingest:restore-quarantined-file"));
        assert!(RESTORE_SCRIPT.len() < 20 * 1024 * 1024, "the library takes 20 MB at most");
        for needle in [
            "Add-MpPreference -ExclusionPath $plain",
            "Remove-MpPreference -ExclusionPath $plain",
            "-Restore -FilePath",
            "Get-FileHash",
            "SetAccessRuleProtection($true, $false)",
            "ReparsePoint",
            "CryptoStream",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
        assert!(!text.contains("-Recurse"), "nothing recurses where a link could lead");
    }
}
