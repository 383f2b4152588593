//! A request rate shared by every instance that calls on a tenant's behalf, kept as one number
//! (the generic cell rate algorithm): the time the next request may go. Each request takes the
//! slot at `max(now, next)` and moves `next` one interval on; no window ever holds more than
//! the rate allows, and a backlog drains at the rate.

use std::time::Duration;

/// `requests` per `window`, as Microsoft documents a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    pub requests: u32,
    pub window: Duration,
}

impl Rate {
    /// The spacing of requests, in milliseconds, kept 2% wider than the limit's: a request's
    /// time here is taken before it travels, and the server counts it on arrival.
    pub fn interval_ms(&self) -> i64 {
        let ms = self.window.as_millis() as i64 / i64::from(self.requests.max(1));
        (ms + ms / 50).max(1)
    }
}

/// The slot a request takes given the stored `next` (None: no request yet), as
/// `(when it may go, the new next)`, all in milliseconds.
pub fn take_slot(next: Option<i64>, now_ms: i64, interval_ms: i64) -> (i64, i64) {
    let go = next.map_or(now_ms, |n| n.max(now_ms));
    (go, go + interval_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spaced_by_the_rate_and_an_idle_budget_starts_now() {
        let r = Rate { requests: 30, window: Duration::from_secs(60) };
        assert_eq!(r.interval_ms(), 2_040);
        assert_eq!(take_slot(None, 1_000, 2_040), (1_000, 3_040));
        assert_eq!(take_slot(Some(3_040), 1_500, 2_040), (3_040, 5_080), "busy: the next slot");
        assert_eq!(take_slot(Some(3_040), 9_000, 2_040), (9_000, 11_040), "idle since: now");
    }

    #[test]
    fn no_window_holds_more_than_the_limit() {
        let r = Rate { requests: 30, window: Duration::from_secs(60) };
        let (mut next, mut sent) = (None, Vec::new());
        for _ in 0..200 {
            let (go, n) = take_slot(next, 0, r.interval_ms());
            next = Some(n);
            sent.push(go);
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|u| **u < t + 60_000).count();
            assert!(in_window <= 30, "{in_window} requests in the minute from {t}");
        }
    }
}
