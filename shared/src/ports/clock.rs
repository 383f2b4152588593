//! "Now", as the use cases read it.

use crate::domain::time::GraphTime;

/// "Now" on the window field's clock. Production reads the system clock; tests that drive the
/// tenant simulator read its clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> GraphTime;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> GraphTime {
        GraphTime::now()
    }
}
