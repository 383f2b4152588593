//! The evidence-jobs queue in memory: messages with the delay they were sent with, taken by
//! whoever drives the jobs (the demo, the tests) when their time has come.

use std::sync::Mutex;
use std::time::Duration;

use crate::error::QueueError;
use crate::ports::DelayQueue;

#[derive(Debug, Default)]
pub struct MemoryDelayQueue {
    messages: Mutex<Vec<(Duration, String)>>,
}

impl MemoryDelayQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message sent since the last take, with its delay.
    pub fn take(&self) -> Vec<(Duration, String)> {
        std::mem::take(&mut *self.messages.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl DelayQueue for MemoryDelayQueue {
    async fn send_delayed(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        self.messages.lock().unwrap_or_else(|p| p.into_inner()).push((delay.min(crate::ports::evidence::MAX_DELAY), body.to_owned()));
        Ok(())
    }
}
