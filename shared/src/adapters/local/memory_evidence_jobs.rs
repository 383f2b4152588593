//! Evidence jobs and holds in memory: the demo's and the tests' job store. Records are kept as
//! the JSON DynamoDB keeps, so a record that does not round-trip fails here too.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::evidence::job::JobRecord;
use crate::domain::time::GraphTime;
use crate::error::CursorError;
use crate::ports::{EvidenceJobStore, StoredRecord};

#[derive(Debug, Default)]
pub struct MemoryEvidenceJobs {
    records: Mutex<HashMap<String, (String, u64)>>,
    sets: Mutex<HashMap<String, std::collections::BTreeSet<String>>>,
}

impl MemoryEvidenceJobs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every job, by key (tests' and the demo's view).
    pub fn all(&self) -> Vec<JobRecord> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<JobRecord> = records.values().filter_map(|(text, _)| serde_json::from_str(text).ok()).collect();
        v.sort_by(|a, b| a.job.key.cmp(&b.job.key));
        v
    }
}

fn decode<R: StoredRecord>(key: &str, text: &str) -> Result<R, CursorError> {
    serde_json::from_str(text).map_err(|e| CursorError::Corrupt { key: key.to_owned(), detail: e.to_string() })
}

fn encode<R: StoredRecord>(record: &R) -> Result<String, CursorError> {
    serde_json::to_string(record).map_err(|e| CursorError::Corrupt { key: record.key().to_owned(), detail: e.to_string() })
}

impl EvidenceJobStore for MemoryEvidenceJobs {
    async fn create<R: StoredRecord>(&self, record: &R, _expires_at: GraphTime) -> Result<(R, u64), CursorError> {
        let text = encode(record)?;
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let (stored, v) = records.entry(record.key().to_owned()).or_insert_with(|| (text, 1)).clone();
        Ok((decode(record.key(), &stored)?, v))
    }

    async fn get<R: StoredRecord>(&self, key: &str) -> Result<Option<(R, u64)>, CursorError> {
        let found = self.records.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned();
        found.map(|(text, v)| Ok((decode(key, &text)?, v))).transpose()
    }

    async fn save<R: StoredRecord>(&self, record: &R, expected: u64, _expires_at: GraphTime) -> Result<u64, CursorError> {
        let text = encode(record)?;
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        match records.get_mut(record.key()) {
            Some((r, v)) if *v == expected => {
                *r = text;
                *v += 1;
                Ok(*v)
            }
            _ => Err(CursorError::LeaseLost { key: record.key().to_owned() }),
        }
    }

    async fn set_add(&self, key: &str, entry: &str, _expires_at: Option<GraphTime>) -> Result<(), CursorError> {
        self.sets.lock().unwrap_or_else(|p| p.into_inner()).entry(key.to_owned()).or_default().insert(entry.to_owned());
        Ok(())
    }

    async fn set_remove(&self, key: &str, entry: &str) -> Result<(), CursorError> {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sets.get_mut(key) {
            s.remove(entry);
            if s.is_empty() {
                sets.remove(key);
            }
        }
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, CursorError> {
        Ok(self.sets.lock().unwrap_or_else(|p| p.into_inner()).get(key).map(|s| s.iter().cloned().collect()).unwrap_or_default())
    }
}
