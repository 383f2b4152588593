//! Evidence jobs in memory: the demo's and the tests' job store.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::evidence_job::JobRecord;
use crate::domain::time::GraphTime;
use crate::error::CursorError;
use crate::ports::EvidenceJobStore;

#[derive(Debug, Default)]
pub struct MemoryEvidenceJobs {
    jobs: Mutex<HashMap<String, (JobRecord, u64)>>,
}

impl MemoryEvidenceJobs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every job, by key (tests' and the demo's view).
    pub fn all(&self) -> Vec<JobRecord> {
        let mut v: Vec<JobRecord> = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).values().map(|(r, _)| r.clone()).collect();
        v.sort_by(|a, b| a.job.key.cmp(&b.job.key));
        v
    }
}

impl EvidenceJobStore for MemoryEvidenceJobs {
    async fn create(&self, record: &JobRecord, _expires_at: GraphTime) -> Result<(JobRecord, u64), CursorError> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(jobs.entry(record.job.key.clone()).or_insert_with(|| (record.clone(), 1)).clone())
    }

    async fn get(&self, key: &str) -> Result<Option<(JobRecord, u64)>, CursorError> {
        Ok(self.jobs.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned())
    }

    async fn save(&self, record: &JobRecord, expected: u64, _expires_at: GraphTime) -> Result<u64, CursorError> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        match jobs.get_mut(&record.job.key) {
            Some((r, v)) if *v == expected => {
                *r = record.clone();
                *v += 1;
                Ok(*v)
            }
            _ => Err(CursorError::LeaseLost { key: record.job.key.clone() }),
        }
    }
}
