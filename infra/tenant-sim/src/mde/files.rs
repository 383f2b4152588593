//! What is on a device: the files the tenant's alerts name there. A file antivirus acted on
//! (its evidence says blocked, prevented or remediated) is in quarantine, not at its path, as
//! on a real device (ms-apis.md §7, "Locating a quarantined file from an alert"), until a
//! restore puts it in a folder of the restore's choosing.

use serde_json::Value;

use crate::data::pool::sample_bytes;
use crate::state::Sim;

/// A file found at a path on a device.
#[derive(Debug, Clone)]
pub struct OnDevice {
    pub bytes: Vec<u8>,
}

/// The file at `path` on `machine` of tenant `tenant`: one a restore put there, or one an alert
/// saw there untouched by antivirus.
pub fn at_path(sim: &Sim, tenant: usize, machine: &str, path: &str) -> Option<OnDevice> {
    if let Some(bytes) = sim.mde.restored_at(tenant, machine, path) {
        return Some(OnDevice { bytes: bytes.to_vec() });
    }
    find(sim, tenant, machine, |full, _, acted| !acted && full.to_lowercase() == path.to_lowercase())
}

/// The file antivirus quarantined on `machine` from `path` (what `MpCmdRun -Restore -FilePath`
/// restores).
pub fn quarantined_from(sim: &Sim, tenant: usize, machine: &str, path: &str) -> Option<OnDevice> {
    find(sim, tenant, machine, |full, _, acted| acted && full.to_lowercase() == path.to_lowercase())
}

/// The first file of the tenant's alerts on `machine` that `wanted(full path, sha256, acted on
/// by antivirus)` accepts.
fn find(sim: &Sim, tenant: usize, machine: &str, wanted: impl Fn(&str, &str, bool) -> bool) -> Option<OnDevice> {
    for (detection_source, _, evidence) in sim.visible_evidence(tenant) {
        let devices: Vec<&str> = evidence
            .iter()
            .filter(|e| e.get("@odata.type").and_then(Value::as_str) == Some("#microsoft.graph.security.deviceEvidence"))
            .filter_map(|e| e.get("mdeDeviceId").and_then(Value::as_str))
            .collect();
        for e in evidence.iter() {
            if e.get("@odata.type").and_then(Value::as_str) != Some("#microsoft.graph.security.fileEvidence") {
                continue;
            }
            let device = e.get("mdeDeviceId").and_then(Value::as_str).filter(|d| !d.is_empty());
            let on_machine = match device {
                Some(d) => d.eq_ignore_ascii_case(machine),
                None => devices.len() == 1 && devices[0].eq_ignore_ascii_case(machine),
            };
            let details = e.get("fileDetails");
            let text = |k: &str| details.and_then(|d| d.get(k)).and_then(Value::as_str).unwrap_or_default();
            let (folder, name) = (text("filePath"), text("fileName"));
            let sep = if folder.contains('\\') { "\\" } else { "/" };
            let full = format!("{}{sep}{name}", folder.trim_end_matches(['\\', '/']));
            if !on_machine || sim.mde.deleted(tenant, machine, &full) {
                continue;
            }
            let status = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            let acted = detection_source == "antivirus"
                || matches!(status("detectionStatus").as_str(), "blocked" | "prevented")
                || matches!(status("remediationStatus").as_str(), "remediated" | "prevented" | "blocked");
            // An alert that saw antivirus take it does not say it is gone: another may still see
            // it at its path.
            if !wanted(&full, text("sha256"), acted) {
                continue;
            }
            let size = details.and_then(|d| d.get("fileSize")).and_then(Value::as_u64).unwrap_or(0) as usize;
            return Some(OnDevice { bytes: sample_bytes(name, size) });
        }
    }
    None
}
