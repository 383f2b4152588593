//! Cursors and leases in memory, with the same conditional semantics as the DynamoDB store.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::polling::cursor::Cursor;

/// DynamoDB's item size limit.
const DYNAMODB_ITEM_LIMIT: usize = 400 * 1024;
use crate::domain::time::GraphTime;
use crate::error::CursorError;
use crate::ports::{CursorKey, CursorStatus, CursorStore, Leased, Ran};

#[derive(Debug, Clone, Default)]
struct Record {
    cursor: Cursor,
    version: u64,
    lease: Option<(String, GraphTime)>,
    last_run: Option<GraphTime>,
    last_outcome: Option<String>,
}

#[derive(Debug, Default)]
pub struct MemoryCursorStore {
    records: Mutex<HashMap<CursorKey, Record>>,
}

impl MemoryCursorStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The committed cursor, for inspection.
    pub fn peek(&self, key: &CursorKey) -> Option<Cursor> {
        self.lock().get(key).map(|r| r.cursor.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CursorKey, Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl CursorStore for MemoryCursorStore {
    async fn acquire(&self, key: &CursorKey, owner: &str, now: GraphTime, expires: GraphTime) -> Result<Leased, CursorError> {
        let mut map = self.lock();
        let rec = map.entry(key.clone()).or_default();
        if let Some((holder, until)) = &rec.lease {
            if holder != owner && *until > now {
                return Err(CursorError::LeaseHeld { key: key.to_string(), until: until.to_string() });
            }
        }
        rec.lease = Some((owner.to_owned(), expires));
        Ok(Leased { cursor: rec.cursor.clone(), version: rec.version, last_run: rec.last_run })
    }

    async fn commit(&self, key: &CursorKey, owner: &str, expected_version: u64, cursor: &Cursor) -> Result<u64, CursorError> {
        // DynamoDB refuses an item over 400 KB; so does this store, to stay as strict.
        let size = serde_json::to_string(&cursor.to_stored()).map(|j| j.len()).unwrap_or(usize::MAX);
        if size > DYNAMODB_ITEM_LIMIT {
            return Err(CursorError::Store {
                detail: format!("ValidationException: Item size has exceeded the maximum allowed size ({size} bytes)"),
                retryable: false,
            });
        }
        let mut map = self.lock();
        let lost = || CursorError::LeaseLost { key: key.to_string() };
        let rec = map.get_mut(key).ok_or_else(lost)?;
        match &rec.lease {
            Some((holder, _)) if holder == owner && rec.version == expected_version => {
                rec.cursor = cursor.clone();
                rec.version += 1;
                Ok(rec.version)
            }
            _ => Err(lost()),
        }
    }

    async fn release(&self, key: &CursorKey, owner: &str, ran: Option<&Ran>) -> Result<(), CursorError> {
        let mut map = self.lock();
        if let Some(rec) = map.get_mut(key) {
            if rec.lease.as_ref().is_some_and(|(h, _)| h == owner) {
                rec.lease = None;
                if let Some(ran) = ran {
                    rec.last_run = Some(ran.at);
                    rec.last_outcome = Some(ran.outcome.clone());
                }
            }
        }
        Ok(())
    }

    async fn status(&self, key: &CursorKey) -> Result<Option<CursorStatus>, CursorError> {
        Ok(self.lock().get(key).map(|r| CursorStatus {
            watermark: r.cursor.watermark,
            last_run: r.last_run,
            last_outcome: r.last_outcome.clone(),
            leased_until: r.lease.as_ref().map(|(_, until)| until.to_string()),
        }))
    }
}
