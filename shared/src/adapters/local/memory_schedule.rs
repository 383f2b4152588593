//! The schedule in memory: the local program's and the tests' `ScheduleStore`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::CursorError;
use crate::ports::{CursorKey, DueEntry, ScheduleStore};

#[derive(Debug, Default)]
pub struct MemorySchedule {
    entries: Mutex<BTreeMap<CursorKey, GraphTime>>,
}

impl MemorySchedule {
    pub fn new() -> Self {
        Self::default()
    }

    /// When a pair is next due, if it is scheduled.
    pub fn when(&self, key: &CursorKey) -> Option<GraphTime> {
        self.lock().get(key).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<CursorKey, GraphTime>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ScheduleStore for MemorySchedule {
    async fn set(&self, key: &CursorKey, at: GraphTime) -> Result<(), CursorError> {
        self.lock().insert(key.clone(), at);
        Ok(())
    }

    async fn due(&self, source: Source, now: GraphTime, limit: usize) -> Result<Vec<DueEntry>, CursorError> {
        let mut due: Vec<DueEntry> = self
            .lock()
            .iter()
            .filter(|(k, at)| k.source == source && **at <= now)
            .map(|(k, at)| DueEntry { key: k.clone(), at: *at })
            .collect();
        due.sort_by(|a, b| (a.at, &a.key).cmp(&(b.at, &b.key)));
        due.truncate(limit);
        Ok(due)
    }

    async fn reserve(&self, entry: &DueEntry, until: GraphTime) -> Result<bool, CursorError> {
        let mut entries = self.lock();
        match entries.get_mut(&entry.key) {
            Some(at) if *at == entry.at => {
                *at = until;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remove(&self, key: &CursorKey) -> Result<(), CursorError> {
        self.lock().remove(key);
        Ok(())
    }
}
