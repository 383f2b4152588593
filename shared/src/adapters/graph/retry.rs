//! Bounded retries: how long to wait before the next attempt, and when to give up.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff of the first retry without Retry-After; doubles each time.
    pub base: Duration,
    /// No wait is shorter: a Graph SDK issue saw `Retry-After: 1` on every 429 (PEERS.md §2.3).
    pub floor: Duration,
    /// No wait is longer, whatever Retry-After says.
    pub cap: Duration,
    /// Give up when the next wait would end past this much time since the first attempt.
    pub budget: Duration,
    /// Give up when the server asks for a longer wait than `cap`, instead of retrying sooner
    /// than asked (an early retry counts against the limit too: throttling.md).
    pub give_up_beyond_cap: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(500),
            floor: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            budget: Duration::from_secs(180),
            give_up_beyond_cap: false,
        }
    }
}

impl RetryPolicy {
    /// A fast policy for tests against the simulator: same shape, millisecond waits.
    pub fn quick() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(5),
            floor: Duration::from_millis(5),
            cap: Duration::from_millis(50),
            budget: Duration::from_secs(10),
            give_up_beyond_cap: false,
        }
    }

    /// For evidence jobs, whose every call is one step of a job that comes back later: one
    /// quick retry for a blip, then the answer goes to the job (throttling and busy devices wait
    /// for the job's next message, never in a batch). A longer `Retry-After` goes to the job
    /// too: retried at the cap, the request would meet the same limit again.
    pub fn one_step() -> Self {
        RetryPolicy {
            max_attempts: 2,
            base: Duration::from_millis(500),
            floor: Duration::from_secs(1),
            cap: Duration::from_secs(5),
            budget: Duration::from_secs(15),
            give_up_beyond_cap: true,
        }
    }

    /// For context lookups, made while an alert waits to go out: one quick retry of a blip;
    /// throttling becomes the part's status rather than a wait.
    pub fn context() -> Self {
        RetryPolicy {
            max_attempts: 2,
            base: Duration::from_millis(200),
            floor: Duration::from_millis(200),
            cap: Duration::from_secs(2),
            budget: Duration::from_secs(5),
            give_up_beyond_cap: true,
        }
    }

    /// The wait before attempt `next` (2 = first retry).
    pub fn delay(&self, next: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = || self.base.saturating_mul(1u32 << next.saturating_sub(2).min(16));
        retry_after.unwrap_or_else(backoff).clamp(self.floor, self.cap)
    }

    /// Whether attempt `next` may still be made after `elapsed`, waiting `delay` first.
    pub fn allows(&self, next: u32, elapsed: Duration, delay: Duration) -> bool {
        next <= self.max_attempts && elapsed + delay <= self.budget
    }

    /// Whether a retry may follow an answer that asked for `retry_after`.
    pub fn accepts_wait(&self, retry_after: Option<Duration>) -> bool {
        !(self.give_up_beyond_cap && retry_after.is_some_and(|r| r > self.cap))
    }
}

/// Reads `Retry-After` in seconds (Graph sends seconds; an HTTP date is ignored).
pub fn parse_retry_after(v: Option<&str>) -> Option<Duration> {
    v?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_within_floor_and_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(2, Some(Duration::from_secs(7))), Duration::from_secs(7));
        assert_eq!(p.delay(2, Some(Duration::ZERO)), Duration::from_secs(1), "floor");
        assert_eq!(p.delay(2, Some(Duration::from_secs(3600))), Duration::from_secs(60), "cap");
    }

    #[test]
    fn backoff_doubles_without_retry_after() {
        let p = RetryPolicy { floor: Duration::ZERO, ..RetryPolicy::default() };
        let d: Vec<u128> = (2..6).map(|n| p.delay(n, None).as_millis()).collect();
        assert_eq!(d, vec![500, 1000, 2000, 4000]);
    }

    #[test]
    fn attempts_and_time_are_both_bounded() {
        let p = RetryPolicy::default();
        assert!(p.allows(6, Duration::ZERO, Duration::ZERO));
        assert!(!p.allows(7, Duration::ZERO, Duration::ZERO));
        assert!(!p.allows(2, Duration::from_secs(170), Duration::from_secs(20)));
        assert!(p.accepts_wait(Some(Duration::from_secs(600))), "clamped to the cap, as before");
        let c = RetryPolicy::context();
        assert!(c.accepts_wait(Some(Duration::from_secs(1))) && c.accepts_wait(None));
        assert!(!c.accepts_wait(Some(Duration::from_secs(30))), "never sooner than asked");
        // The demo's evidence steps retried a 429 after 5 s where Microsoft asked for more, and
        // met the limit again.
        let s = RetryPolicy::one_step();
        assert!(s.accepts_wait(Some(Duration::from_secs(5))) && !s.accepts_wait(Some(Duration::from_secs(6))));
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after(Some(" 5 ")), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(parse_retry_after(None), None);
    }
}
