//! The intake queue in memory, optionally mirrored to an NDJSON file, with SQS's limits.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::error::QueueError;
use crate::ports::{AlertQueue, FailedEntry, QueueEntry, SendReport, MAX_BATCH_ENTRIES};

#[derive(Debug)]
pub struct MemoryAlertQueue {
    messages: Mutex<Vec<String>>,
    /// Messages accepted, kept or not.
    accepted: Mutex<usize>,
    retain: bool,
    calls: Mutex<usize>,
    ndjson: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    max_message_bytes: usize,
    max_batch_bytes: usize,
}

impl MemoryAlertQueue {
    /// SQS limits: 1 MiB a message and a batch (the AWS limit today).
    pub fn new() -> Self {
        MemoryAlertQueue {
            messages: Mutex::new(Vec::new()),
            accepted: Mutex::new(0),
            retain: true,
            calls: Mutex::new(0),
            ndjson: None,
            max_message_bytes: 1 << 20,
            max_batch_bytes: 1 << 20,
        }
    }

    pub fn with_limits(mut self, max_message_bytes: usize, max_batch_bytes: usize) -> Self {
        self.max_message_bytes = max_message_bytes;
        self.max_batch_bytes = max_batch_bytes;
        self
    }

    /// Counts (and writes to NDJSON, if set) without keeping messages in memory: for volume runs.
    pub fn without_retention(mut self) -> Self {
        self.retain = false;
        self
    }

    /// Also appends every accepted message as one line of `path`.
    pub fn with_ndjson(mut self, path: &Path) -> std::io::Result<Self> {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        self.ndjson = Some(Mutex::new(std::io::BufWriter::new(f)));
        Ok(self)
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Messages accepted so far (kept or not).
    pub fn len(&self) -> usize {
        *self.accepted.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many `send_batch` calls were made.
    pub fn calls(&self) -> usize {
        *self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for MemoryAlertQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl AlertQueue for MemoryAlertQueue {
    async fn send_batch(&self, entries: &[QueueEntry]) -> Result<SendReport, QueueError> {
        *self.calls.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        if entries.len() > MAX_BATCH_ENTRIES {
            return Err(QueueError::Send {
                detail: format!("{} entries in one batch; SQS takes at most {MAX_BATCH_ENTRIES}", entries.len()),
                retryable: false,
            });
        }
        let total: usize = entries.iter().map(|e| e.body.len()).sum();
        if total > self.max_batch_bytes {
            return Err(QueueError::Send { detail: format!("batch of {total} bytes exceeds {}", self.max_batch_bytes), retryable: false });
        }
        let mut report = SendReport::default();
        let mut accepted = Vec::new();
        for e in entries {
            if e.body.len() > self.max_message_bytes {
                report.failed.push(FailedEntry {
                    id: e.id.clone(),
                    retryable: false,
                    reason: format!("message of {} bytes exceeds {}", e.body.len(), self.max_message_bytes),
                });
            } else if let Some(c) = (!crate::domain::sqs_text::sqs_safe(&e.body))
                .then(|| e.body.chars().find(|c| !crate::domain::sqs_text::sqs_accepts(*c)))
                .flatten()
            {
                // As strict as SQS, which refuses the entry as the sender's fault.
                report.failed.push(FailedEntry {
                    id: e.id.clone(),
                    retryable: false,
                    reason: format!("InvalidMessageContents: Invalid characters found. Code point {:#x} is not allowed", c as u32),
                });
            } else {
                accepted.push(e.body.clone());
            }
        }
        if let Some(w) = &self.ndjson {
            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
            for body in &accepted {
                writeln!(w, "{body}").map_err(|e| QueueError::Send { detail: e.to_string(), retryable: false })?;
            }
            w.flush().map_err(|e| QueueError::Send { detail: e.to_string(), retryable: false })?;
        }
        *self.accepted.lock().unwrap_or_else(|p| p.into_inner()) += accepted.len();
        if self.retain {
            self.messages.lock().unwrap_or_else(|p| p.into_inner()).extend(accepted);
        }
        Ok(report)
    }
}
