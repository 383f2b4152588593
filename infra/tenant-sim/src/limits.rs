//! Request limits kept per key over a sliding window of wall-clock time, weighted where
//! Microsoft counts resource units rather than requests (graph throttling-limits.md: identity
//! and access GETs cost 2 units, `$expand` one more, `$select` one less).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Limits {
    spent: Mutex<HashMap<String, VecDeque<(Instant, u32)>>>,
}

impl Limits {
    /// Spends `cost` of `capacity` per `window` under `key`; `Err(wait)` (nothing spent) when
    /// that would go over, with the time until enough has left the window.
    pub fn admit(&self, key: &str, cost: u32, capacity: u32, window: Duration) -> Result<(), Duration> {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let q = spent.entry(key.to_owned()).or_default();
        let now = Instant::now();
        while q.front().is_some_and(|(t, _)| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        let used: u32 = q.iter().map(|(_, c)| c).sum();
        if used + cost > capacity {
            // Wait until the oldest spends that free enough have left the window.
            let mut freed = 0;
            let mut wait = window;
            for (t, c) in q.iter() {
                freed += c;
                if used - freed + cost <= capacity {
                    wait = window.saturating_sub(now.duration_since(*t));
                    break;
                }
            }
            return Err(wait.max(Duration::from_millis(1)));
        }
        q.push_back((now, cost));
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
