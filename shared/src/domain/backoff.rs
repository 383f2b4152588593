//! Waits between attempts: exponential, capped, and jittered so that many pollers throttled
//! together do not come back together.

use std::time::Duration;

/// `base × 2^(attempt−1)`, capped, then spread over its upper half by `random`: "equal jitter"
/// keeps at least half the wait (a throttled API needs the pause) and de-synchronises callers.
pub fn jittered(base: Duration, attempt: u32, cap: Duration, random: u32) -> Duration {
    let full = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(cap);
    let half = full / 2;
    half + half.mul_f64(f64::from(random) / f64::from(u32::MAX))
}

/// A random number for [`jittered`], from the operating system's generator.
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // A failing system generator leaves the wait un-jittered (its upper bound), never shorter.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        return u32::MAX;
    }
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_stay_capped_and_keep_at_least_half() {
        let b = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        assert_eq!(jittered(b, 1, cap, u32::MAX), Duration::from_millis(100));
        assert_eq!(jittered(b, 1, cap, 0), Duration::from_millis(50));
        assert_eq!(jittered(b, 3, cap, u32::MAX), Duration::from_millis(400));
        assert_eq!(jittered(b, 30, cap, u32::MAX), cap);
        let spread: std::collections::HashSet<Duration> = (0..20).map(|_| jittered(b, 2, cap, random_u32())).collect();
        assert!(spread.len() > 10, "jitter spreads the waits: {spread:?}");
        assert!(spread.iter().all(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_millis(200)));
    }
}
