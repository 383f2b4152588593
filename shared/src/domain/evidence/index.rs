//! Evidence jobs found by key, never by a scan (issue 28 §4): each job is listed under the hour
//! its deadline falls in, and each restore that reached a device under its integration, in
//! sets kept in the dedup table beside the jobs. A scheduled sweep reads the hours that have
//! passed and drives every job still open there to its end (a restore's cleanup first); an
//! integration with restores listed is not removed, and a copy a cleanup could not confirm
//! stays listed, naming its device and folder, until someone clears it.

use std::time::Duration;

use crate::domain::evidence::job::EvidenceJob;
use crate::domain::evidence::plan::EvidenceTarget;
use crate::domain::time::GraphTime;

/// Shards of each hour's set: an item holds some 2,500 job keys, so an hour holds ten thousand.
pub const DUE_SHARDS: u8 = 4;
/// How long after its maximum wait a job that nothing moved on counts as orphaned: a live job
/// ends at its deadline by its own next step, well inside this.
pub const SWEEP_GRACE: Duration = Duration::from_secs(30 * 60);

fn shard(job_key: &str) -> u8 {
    let d = ring::digest::digest(&ring::digest::SHA256, job_key.as_bytes());
    d.as_ref()[0] % DUE_SHARDS
}

fn hour(t: GraphTime) -> String {
    t.to_string().chars().take(13).collect()
}

/// The set a job is listed in: the hour (and shard) of its deadline plus the grace.
pub fn due_set(deadline: GraphTime, job_key: &str) -> String {
    format!("evidence-due#{}#{}", hour(deadline.plus(SWEEP_GRACE)), shard(job_key))
}

/// Every set of the hours from `from` to `to`, both included.
pub fn due_sets(from: GraphTime, to: GraphTime) -> Vec<String> {
    let mut out = Vec::new();
    let mut t = from;
    let step = Duration::from_secs(3600);
    while hour(t) <= hour(to) {
        out.extend((0..DUE_SHARDS).map(|s| format!("evidence-due#{}#{s}", hour(t))));
        t = t.plus(step);
    }
    out
}

/// The set of an integration's restores that reached (or may have reached) a device.
pub fn restores_set(integration_id: &str) -> String {
    format!("evidence-restore#{integration_id}")
}

/// A restore as its set lists it: the device, the folder it put the copy in, its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreEntry {
    pub device_id: String,
    pub folder: String,
    pub job: String,
}

impl RestoreEntry {
    pub fn of(job: &EvidenceJob) -> Option<Self> {
        match &job.target {
            EvidenceTarget::File { device_id, .. } if job.target.is_restore() => {
                Some(RestoreEntry { device_id: device_id.clone(), folder: job.restore_folder(), job: job.key.clone() })
            }
            _ => None,
        }
    }

    /// Tab-separated: none of the three holds a tab (a machine id is hex, the folder is built
    /// from hex, a job key from the dedup key and hex).
    pub fn to_entry(&self) -> String {
        format!("{}\t{}\t{}", self.device_id, self.folder, self.job)
    }

    pub fn parse(entry: &str) -> Option<Self> {
        let mut parts = entry.splitn(3, '\t');
        Some(RestoreEntry { device_id: parts.next()?.into(), folder: parts.next()?.into(), job: parts.next()?.into() })
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::evidence::index::*;

    #[test]
    fn a_deadline_lands_in_one_shard_of_its_hour_and_the_sweep_reads_every_hour_between() {
        let t = GraphTime::parse("2026-12-06T13:40:00Z").unwrap_or_default();
        let set = due_set(t, "defender_alerts/t/a/v/evidence/ab");
        assert!(set.starts_with("evidence-due#2026-12-06T14#"), "the grace moves it to the next hour: {set}");
        let sets = due_sets(GraphTime::parse("2026-12-06T12:59:00Z").unwrap_or_default(), t.plus(SWEEP_GRACE));
        assert_eq!(sets.len(), 3 * usize::from(DUE_SHARDS));
        assert!(sets.contains(&set));
    }

    #[test]
    fn a_restore_entry_round_trips_and_only_a_restore_has_one() {
        let file = |restore: bool| EvidenceTarget::File {
            device_id: "d336".into(),
            folder: "C:\\x".into(),
            name: "a.exe".into(),
            sha1: None,
            sha256: Some("ab".repeat(32)),
            quarantined_by_antivirus: restore,
        };
        let now = crate::domain::time::GraphTime::parse("2026-01-01T00:00:00Z").unwrap_or_else(|e| panic!("{e}"));
        let job = EvidenceJob::new("k/evidence/1".into(), file(true), now);
        let e = RestoreEntry::of(&job).unwrap_or_else(|| panic!("a restore"));
        assert!(e.folder.starts_with(crate::domain::evidence::plan::RESTORE_ROOT));
        assert_eq!(e.folder, job.restore_folder());
        assert_eq!(RestoreEntry::parse(&e.to_entry()), Some(e));
        assert!(RestoreEntry::of(&EvidenceJob::new("k".into(), file(false), now)).is_none());
    }
}
