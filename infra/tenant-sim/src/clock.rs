//! The simulator's notion of "now": wall time, or a test clock that only moves when told.

use std::sync::Mutex;

use crate::time::Instant;

/// Simulated time. Everything time-dependent in the simulator (which alert
/// versions are visible, token lifetimes, `nbf`/`exp` of client assertions)
/// reads this clock, so a test can move time forward instead of sleeping.
#[derive(Debug)]
pub struct SimClock {
    mode: Mutex<Mode>,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Real time shifted by an offset in ticks (the binary and the demo).
    Wall { offset: i64 },
    /// Stands still until `set` or `advance` (tests).
    Fixed(Instant),
}

impl SimClock {
    pub fn wall() -> Self {
        SimClock { mode: Mutex::new(Mode::Wall { offset: 0 }) }
    }

    pub fn fixed(at: Instant) -> Self {
        SimClock { mode: Mutex::new(Mode::Fixed(at)) }
    }

    pub fn now(&self) -> Instant {
        match *self.lock() {
            Mode::Wall { offset } => Instant::now().plus_ticks(offset),
            Mode::Fixed(t) => t,
        }
    }

    /// Jumps to `at`; a wall clock keeps ticking from there.
    pub fn set(&self, at: Instant) {
        let mut mode = self.lock();
        *mode = match *mode {
            Mode::Wall { .. } => Mode::Wall { offset: at.0 - Instant::now().0 },
            Mode::Fixed(_) => Mode::Fixed(at),
        };
    }

    pub fn advance_secs(&self, secs: i64) {
        let mut mode = self.lock();
        *mode = match *mode {
            Mode::Wall { offset } => Mode::Wall { offset: offset + secs * 10_000_000 },
            Mode::Fixed(t) => Mode::Fixed(t.plus_secs(secs)),
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mode> {
        // A poisoned clock still holds a valid mode: take it.
        self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let c = SimClock::fixed(Instant::from_unix_seconds(1_000));
        assert_eq!(c.now(), Instant::from_unix_seconds(1_000));
        c.advance_secs(60);
        assert_eq!(c.now(), Instant::from_unix_seconds(1_060));
        c.set(Instant::from_unix_seconds(5));
        assert_eq!(c.now(), Instant::from_unix_seconds(5));
    }

    #[test]
    fn wall_clock_can_be_shifted() {
        let c = SimClock::wall();
        c.advance_secs(3_600);
        let ahead = c.now().0 - Instant::now().0;
        assert!(ahead > 3_590 * 10_000_000 && ahead <= 3_600 * 10_000_000);
    }
}
