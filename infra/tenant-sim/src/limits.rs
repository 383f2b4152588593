//! Request limits kept per key over a sliding window of wall-clock time, weighted where
//! Microsoft counts resource units rather than requests (graph throttling-limits.md: identity
//! and access GETs cost 2 units, `$expand` one more, `$select` one less).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Limits {
    spent: Mutex<HashMap<String, VecDeque<(Instant, u32)>>>,
    /// What arrival stamps count from (`stamp`).
    epoch: Instant,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { spent: Mutex::default(), epoch: Instant::now() }
    }
}

/// The request header the front layer stamps each request with on arrival (microseconds since
/// the simulator started), so a limit counts a request when it arrived, as a service does, not
/// when a busy handler got to it.
pub const ARRIVAL_HEADER: &str = "x-tenant-sim-arrival-us";

impl Limits {
    pub fn stamp(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub fn arrival(&self, stamp: u64) -> Instant {
        self.epoch + Duration::from_micros(stamp)
    }

    /// Spends `cost` of `capacity` per `window` under `key`; `Err(wait)` (nothing spent) when
    /// that would go over, with the time until enough has left the window.
    pub fn admit(&self, key: &str, cost: u32, capacity: u32, window: Duration) -> Result<(), Duration> {
        self.admit_at(key, cost, capacity, window, Instant::now())
    }

    /// `admit` for a request that arrived at `now` (its spend kept in arrival order).
    pub fn admit_at(&self, key: &str, cost: u32, capacity: u32, window: Duration, now: Instant) -> Result<(), Duration> {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let q = spent.entry(key.to_owned()).or_default();
        // Requests are handled out of arrival order: keep a spend a while past its window, so
        // one that arrived earlier but is handled later still sees it, and count only those
        // inside this request's window.
        let keep = window + Duration::from_secs(10);
        let latest = Instant::now().max(now);
        while q.front().is_some_and(|(t, _)| latest.duration_since(*t) >= keep) {
            q.pop_front();
        }
        let inside = |t: &Instant| *t <= now && now.duration_since(*t) < window;
        let used: u32 = q.iter().filter(|(t, _)| inside(t)).map(|(_, c)| c).sum();
        if used + cost > capacity {
            // Wait until the oldest spends that free enough have left the window.
            let mut freed = 0;
            let mut wait = window;
            for (t, c) in q.iter().filter(|(t, _)| inside(t)) {
                freed += c;
                if used - freed + cost <= capacity {
                    wait = window.saturating_sub(now.duration_since(*t));
                    break;
                }
            }
            return Err(wait.max(Duration::from_millis(1)));
        }
        let at = q.partition_point(|(t, _)| *t <= now);
        q.insert(at, (now, cost));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spends_are_weighted_and_keys_apart() {
        let l = Limits::default();
        let w = Duration::from_secs(10);
        assert!(l.admit("a", 2, 5, w).is_ok());
        assert!(l.admit("a", 3, 5, w).is_ok());
        let wait = l.admit("a", 1, 5, w).err();
        assert!(wait.is_some_and(|d| d > Duration::from_secs(9)), "{wait:?}");
        assert!(l.admit("b", 5, 5, w).is_ok(), "another key has its own");
    }
}
