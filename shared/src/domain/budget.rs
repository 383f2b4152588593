//! A request rate shared by every instance that calls on a tenant's behalf, kept as one number
//! (the generic cell rate algorithm): `next`, the theoretical time of the next request. Each
//! request takes the slot at `max(now, next − burst)` and moves `next` one interval on from
//! `max(now, next)`; no window ever holds more than the rate allows, and a backlog drains at
//! the rate.
//!
//! A window of a minute or less is kept evenly spaced (no burst: a request waits a second at
//! most). An hour's limit spaced evenly would hold a burst for minutes (Defender for
//! Endpoint's 1,500 an hour: one request every 2.4 s), so it is kept as half its requests in a
//! burst and half sustained: any hour still holds at most the limit.

use std::time::Duration;

/// `requests` per `window`, as Microsoft documents a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    pub requests: u32,
    pub window: Duration,
}

/// Windows this long or longer are kept with a burst (the module's comment).
const BURST_FROM: Duration = Duration::from_secs(3600);

impl Rate {
    fn bursts(&self) -> bool {
        self.window >= BURST_FROM && self.requests >= 4
    }

    /// The spacing of requests, in milliseconds, kept 2% wider than the limit's: a request's
    /// time here is taken before it travels, and the server counts it on arrival. Half the
    /// requests' share of the window for a rate kept with a burst.
    pub fn interval_ms(&self) -> i64 {
        let sustained = if self.bursts() { self.requests / 2 } else { self.requests };
        let ms = self.window.as_millis() as i64 / i64::from(sustained.max(1));
        (ms + ms / 50).max(1)
    }

    /// How far ahead of `next` a request may go: `requests / 2 − 1` intervals for a rate kept
    /// with a burst, so a burst of half the limit goes at once; none otherwise.
    pub fn burst_ms(&self) -> i64 {
        if self.bursts() {
            i64::from(self.requests / 2 - 1) * self.interval_ms()
        } else {
            0
        }
    }
}

/// The slot a request takes given the stored `next` (None: no request yet), as
/// `(when it may go, the new next)`, all in milliseconds.
pub fn take_slot(next: Option<i64>, now_ms: i64, rate: &Rate) -> (i64, i64) {
    let go = next.map_or(now_ms, |n| (n - rate.burst_ms()).max(now_ms));
    (go, next.map_or(now_ms, |n| n.max(now_ms)) + rate.interval_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spaced_by_the_rate_and_an_idle_budget_starts_now() {
        let r = Rate { requests: 30, window: Duration::from_secs(60) };
        assert_eq!((r.interval_ms(), r.burst_ms()), (2_040, 0));
        assert_eq!(take_slot(None, 1_000, &r), (1_000, 3_040));
        assert_eq!(take_slot(Some(3_040), 1_500, &r), (3_040, 5_080), "busy: the next slot");
        assert_eq!(take_slot(Some(3_040), 9_000, &r), (9_000, 11_040), "idle since: now");
    }

    /// The requests a budget lets go, asked for at `arrivals` (ms, in order).
    fn sent(r: &Rate, arrivals: impl IntoIterator<Item = i64>) -> Vec<i64> {
        let mut next = None;
        arrivals
            .into_iter()
            .map(|at| {
                let (go, n) = take_slot(next, at, r);
                next = Some(n);
                go
            })
            .collect()
    }

    fn most_in_any_window(sent: &[i64], window_ms: i64) -> usize {
        let mut sorted = sent.to_vec();
        sorted.sort_unstable();
        (0..sorted.len()).map(|i| sorted[i..].iter().take_while(|u| **u < sorted[i] + window_ms).count()).max().unwrap_or(0)
    }

    #[test]
    fn no_window_holds_more_than_the_limit() {
        let r = Rate { requests: 30, window: Duration::from_secs(60) };
        assert!(most_in_any_window(&sent(&r, [0; 200]), 60_000) <= 30);
    }

    /// Defender for Endpoint's 1,500 an hour: spaced evenly, the second request of a burst
    /// waited 2.4 s and the 50th two minutes.
    #[test]
    fn an_hours_limit_lets_half_of_it_go_at_once_and_no_hour_holds_more_than_the_limit() {
        let hour = Rate { requests: 1_500, window: Duration::from_secs(3_600) };
        let burst = sent(&hour, [0; 750]);
        assert!(burst.iter().all(|go| *go == 0), "750 at once");
        let more = sent(&hour, [0; 751]);
        assert!(more[750] > 4_000, "the 751st waits an interval: {}", more[750]);
        // Bursts, a steady stream, idle spells, in any mix: no hour holds more than 1,500.
        let mut arrivals = Vec::new();
        let mut t = 0i64;
        for round in 0..40i64 {
            let (n, gap) = [(900, 0), (50, 1_000), (0, 0), (300, 100)][round as usize % 4];
            for _ in 0..n {
                arrivals.push(t);
                t += gap;
            }
            t += [600_000, 1_800_000, 60_000, 3_600_000][round as usize % 4];
        }
        let went = sent(&hour, arrivals);
        let most = most_in_any_window(&went, 3_600_000);
        assert!(most <= 1_500, "{most} in an hour");
        assert!(most >= 1_200, "a burst after an idle spell and the sustained half after it: {most}");
    }
}
