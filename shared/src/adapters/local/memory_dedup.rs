//! Dedup keys in memory, with the DynamoDB store's claim semantics.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::time::GraphTime;
use crate::error::CursorError;
use crate::ports::{Claim, DedupStore};

#[derive(Debug, Clone)]
enum State {
    Claimed { owner: String, until: GraphTime },
    Published,
}

#[derive(Debug, Default)]
pub struct MemoryDedupStore {
    keys: Mutex<HashMap<String, State>>,
}

impl MemoryDedupStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn published_count(&self) -> usize {
        self.lock().values().filter(|s| matches!(s, State::Published)).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DedupStore for MemoryDedupStore {
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: GraphTime,
        claim_until: GraphTime,
        _expires_at: GraphTime,
    ) -> Result<Claim, CursorError> {
        let mut m = self.lock();
        match m.get(key) {
            Some(State::Published) => Ok(Claim::Published),
            // A live claim is in flight even when it is our own: two copies of one message in
            // a batch must not both publish.
            Some(State::Claimed { until, .. }) if *until > now => Ok(Claim::InFlight),
            _ => {
                m.insert(key.to_owned(), State::Claimed { owner: owner.to_owned(), until: claim_until });
                Ok(Claim::Fresh)
            }
        }
    }

    async fn published(&self, key: &str, owner: &str) -> Result<(), CursorError> {
        let mut m = self.lock();
        match m.get(key) {
            Some(State::Claimed { owner: o, .. }) if o == owner => {
                m.insert(key.to_owned(), State::Published);
                Ok(())
            }
            Some(State::Published) => Ok(()),
            _ => Err(CursorError::LeaseLost { key: key.to_owned() }),
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), CursorError> {
        let mut m = self.lock();
        if matches!(m.get(key), Some(State::Claimed { owner: o, .. }) if o == owner) {
            m.remove(key);
        }
        Ok(())
    }
}
