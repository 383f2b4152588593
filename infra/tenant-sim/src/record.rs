//! A record of every request served, so tests can assert call counts and parameters.

use std::sync::Mutex;

use crate::time::Instant;

/// One served request. It holds no credential: the token endpoint records the
/// names of the form fields it received, never their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Decoded query pairs in request order.
    pub query: Vec<(String, String)>,
    /// 0 while no response was sent: the client gave up first (timeouts) or it is still pending.
    pub status: u16,
    /// Simulated time at which it was served.
    pub at: Instant,
    /// The fault that shaped the response, if one did (`throttle`, `status`, ...).
    pub fault: Option<String>,
    /// Client id of the caller: from the token request, or the bearer token's `appid`.
    pub client_id: Option<String>,
}

impl RecordedRequest {
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
pub struct RequestLog {
    entries: Mutex<Vec<RecordedRequest>>,
}

impl RequestLog {
    /// Records a request as it arrives; returns its index for [`RequestLog::answer`].
    pub fn push(&self, r: RecordedRequest) -> usize {
        let mut v = self.lock();
        v.push(r);
        v.len() - 1
    }

    /// Completes a record with the response sent.
    pub fn answer(&self, index: usize, status: u16, client_id: Option<String>) {
        if let Some(r) = self.lock().get_mut(index) {
            r.status = status;
            r.client_id = client_id;
        }
    }

    pub fn all(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn matching(&self, prefix: &str) -> Vec<RecordedRequest> {
        self.lock().iter().filter(|r| r.path.starts_with(prefix)).cloned().collect()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.lock().iter().filter(|r| r.path.starts_with(prefix)).count()
    }

    /// Forgets every record; requests still in flight then complete nothing.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedRequest>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Response extension naming the calling app, for the request record.
#[derive(Debug, Clone)]
pub struct Caller(pub String);
