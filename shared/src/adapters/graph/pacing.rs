//! Client-side pacing per tenant: at most N calls in any sliding window, so a busy run stays
//! under a documented limit (Cloud Apps: 30 a minute per tenant) instead of collecting 429s.
//! [`LocalBudget`] is this instance's budget; the deployment shares one in DynamoDB.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::sync::Mutex;

use crate::ports::{BudgetKey, Hold, Rate, RequestBudget};

/// Keys whose concurrency slots are kept before idle ones are let go.
const SLOTS_KEPT: usize = 10_000;

/// Budgets kept in this process: right for one instance, and the fallback of a shared budget
/// whose store fails.
#[derive(Debug, Default)]
pub struct LocalBudget {
    pacers: std::sync::Mutex<HashMap<(BudgetKey, Rate), Arc<Pacer>>>,
    /// Requests in flight at once per key: its slots.
    slots: std::sync::Mutex<HashMap<(BudgetKey, u32), Arc<tokio::sync::Semaphore>>>,
}

impl RequestBudget for LocalBudget {
    fn admit<'a>(&'a self, key: &'a BudgetKey, rate: Rate) -> BoxFuture<'a, Duration> {
        let pacer = self.pacer(key, rate);
        Box::pin(async move { pacer.acquire("").await })
    }

    fn admit_within<'a>(&'a self, key: &'a BudgetKey, rate: Rate, max_wait: Duration) -> BoxFuture<'a, Option<Duration>> {
        let pacer = self.pacer(key, rate);
        Box::pin(async move { pacer.acquire_within("", max_wait).await })
    }

    fn hold<'a>(&'a self, key: &'a BudgetKey, limit: u32, _lease: Duration, max_wait: Duration) -> BoxFuture<'a, Option<Hold>> {
        Box::pin(async move { self.permit(key, limit, max_wait).await.map(|p| Hold::new(Some(p), None)) })
    }
}

impl LocalBudget {
    /// One of `limit` slots of `key` in this instance, within `max_wait`.
    pub(crate) async fn permit(&self, key: &BudgetKey, limit: u32, max_wait: Duration) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let slots = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.len() >= SLOTS_KEPT {
                // A permit held or awaited keeps a clone of its semaphore.
                slots.retain(|_, s| Arc::strong_count(s) > 1);
            }
            slots.entry((key.clone(), limit)).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(limit.max(1) as usize))).clone()
        };
        tokio::time::timeout(max_wait, slots.acquire_owned()).await.ok()?.ok()
    }

    fn pacer(&self, key: &BudgetKey, rate: Rate) -> Arc<Pacer> {
        self.pacers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((key.clone(), rate))
            .or_insert_with(|| Arc::new(Pacer::new(rate.requests as usize, rate.window)))
            .clone()
    }
}

#[derive(Debug)]
pub struct Pacer {
    capacity: usize,
    window: Duration,
    calls: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Pacer {
    /// The window is kept longer than the server's, by 2% and at least half a second: a call's
    /// time here is taken before it travels, the server counts it on arrival, and the delay
    /// between varies (2% of Exchange's 5-second window is only 100 ms).
    pub fn new(capacity: usize, window: Duration) -> Self {
        let margin = (window / 50).max(Duration::from_millis(500));
        Pacer { capacity: capacity.max(1), window: window + margin, calls: Mutex::new(HashMap::new()) }
    }

    /// Waits until `key` may make a call, then counts it. Returns how long it slept.
    /// The wait is at most one window: after it, the oldest call has left the window.
    pub async fn acquire(&self, key: &str) -> Duration {
        self.acquire_within(key, self.window + Duration::from_secs(1)).await.unwrap_or(self.window)
    }

    /// Like `acquire`, when the call may go within `max_wait` in all; None (nothing counted)
    /// once it would wait longer.
    pub async fn acquire_within(&self, key: &str, max_wait: Duration) -> Option<Duration> {
        let mut slept = Duration::ZERO;
        // Each pass either takes a slot or sleeps until the oldest call leaves the window,
        // so two passes suffice unless other tasks took the freed slot; the count bounds it.
        for _ in 0..self.capacity + 2 {
            let wait = {
                let mut calls = self.calls.lock().await;
                let q = calls.entry(key.to_owned()).or_default();
                let now = Instant::now();
                while q.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                    q.pop_front();
                }
                if q.len() < self.capacity {
                    q.push_back(now);
                    return Some(slept);
                }
                q.front().map_or(Duration::ZERO, |t| self.window.saturating_sub(now.duration_since(*t)))
            };
            let wait = wait + Duration::from_millis(1);
            if slept + wait > max_wait {
                return None;
            }
            tokio::time::sleep(wait).await;
            slept += wait;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_window_waits_for_the_oldest_call_to_leave() {
        let p = Pacer::new(2, Duration::from_millis(200));
        assert_eq!(p.acquire("t").await, Duration::ZERO);
        assert_eq!(p.acquire("t").await, Duration::ZERO);
        assert_eq!(p.acquire("other").await, Duration::ZERO, "tenants are paced apart");
        let waited = p.acquire("t").await;
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
    }

    #[tokio::test]
    async fn a_bounded_wait_gives_up_without_taking_a_slot() {
        let p = Pacer::new(1, Duration::from_secs(60));
        assert_eq!(p.acquire_within("t", Duration::ZERO).await, Some(Duration::ZERO));
        assert_eq!(p.acquire_within("t", Duration::from_millis(10)).await, None, "the window is a minute");
        assert_eq!(p.calls.lock().await["t"].len(), 1, "the refused call was not counted");
    }
}
