//! A lookup: from the cache, from the same lookup under way for another alert, or asked of
//! Microsoft, skipping a tenant's service for a while after it throttled.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Answer, CacheKey, Enricher};
use crate::domain::integration::Integration;
use crate::domain::processing::context::LookupOutcome;
use crate::error::GraphError;
use crate::ports::{ContextAnswer, ContextRequest};

/// How long a tenant's service is skipped after it throttled a lookup (or its budget had no
/// slot): about the window of the tightest limit (sign-ins: 5 per 10 s), and never longer than
/// [`BLOCK_AT_MOST`] whatever Retry-After says.
const BLOCK_FOR: Duration = Duration::from_secs(5);
const BLOCK_AT_MOST: Duration = Duration::from_secs(30);

/// Which of the tenant's limits a lookup counts against (adapters/graph/client.rs budgets).
fn service_of(r: &ContextRequest) -> &'static str {
    match r {
        ContextRequest::User { .. } | ContextRequest::Memberships { .. } => "directory",
        ContextRequest::Registration { .. } | ContextRequest::SignIns { .. } => "reports",
        ContextRequest::AutoReplies { .. } | ContextRequest::Schedule { .. } => "mailbox",
        ContextRequest::Presences { .. } => "presence",
        ContextRequest::Machine { .. } => "machines",
        ContextRequest::File { .. } => "files",
    }
}

/// The asking lookup's hold on its key: dropped without an answer (its alert's deadline ended
/// it), it lets the waiters go, and the next asks anew.
struct Flight<'a> {
    in_flight: &'a Mutex<HashMap<CacheKey, Vec<oneshot::Sender<Answer>>>>,
    key: Option<CacheKey>,
}

impl Flight<'_> {
    /// Hands the answer to the waiters; a timeout was the asker's own deadline, not theirs:
    /// they are let go to ask within their own.
    fn land(mut self, answer: &Answer) {
        if matches!(answer, Err(LookupOutcome::TimedOut)) {
            return;
        }
        let Some(key) = self.key.take() else { return };
        let waiters = self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&key).unwrap_or_default();
        for w in waiters {
            let _ = w.send(answer.clone());
        }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        }
    }
}

fn outcome_of(e: &GraphError) -> LookupOutcome {
    match e {
        e if e.is_unlicensed() => LookupOutcome::Unlicensed,
        GraphError::Http { status: 401 | 403, .. } => LookupOutcome::Forbidden,
        GraphError::Http { status: 429, .. } | GraphError::Throttled { .. } | GraphError::OverBudget { .. } => LookupOutcome::Throttled,
        other => LookupOutcome::Failed(other.to_string()),
    }
}

impl Enricher {
    pub(super) fn cache_key(i: &Integration, request: ContextRequest) -> CacheKey {
        (i.tenant_id.clone(), i.client_id.clone(), request)
    }

    /// A lookup, from the cache when a fresh answer is there, or from the same lookup already
    /// under way for another alert.
    pub(super) async fn get(&self, i: &Integration, request: ContextRequest, deadline: Instant) -> Result<ContextAnswer, LookupOutcome> {
        let key = Self::cache_key(i, request);
        loop {
            if let Some(a) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
                return Ok(a);
            }
            let waiting = {
                let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                match in_flight.get_mut(&key) {
                    Some(waiters) => {
                        let (tx, rx) = oneshot::channel();
                        waiters.push(tx);
                        Some(rx)
                    }
                    None => {
                        in_flight.insert(key.clone(), Vec::new());
                        None
                    }
                }
            };
            let Some(rx) = waiting else { break };
            match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), rx).await {
                Err(_) => return Err(LookupOutcome::TimedOut),
                Ok(Ok(answer)) => return answer,
                // The asking lookup was dropped before its answer: ask again (the deadline bounds it).
                Ok(Err(_)) => continue,
            }
        }
        let flight = Flight { in_flight: &self.in_flight, key: Some(key.clone()) };
        let answer = self.ask(i, &key.2, deadline).await;
        if let Ok(a) = &answer {
            let ttl = i.enrichment.cache_ttl.0;
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).put(key, a.clone(), ttl, &self.settings);
        }
        flight.land(&answer);
        answer
    }

    pub(super) async fn ask(&self, i: &Integration, request: &ContextRequest, deadline: Instant) -> Result<ContextAnswer, LookupOutcome> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LookupOutcome::TimedOut);
        }
        let service = (i.tenant_id.clone(), i.client_id.clone(), service_of(request));
        if self.blocked.lock().unwrap_or_else(|p| p.into_inner()).get(&service).is_some_and(|until| *until > Instant::now()) {
            return Err(LookupOutcome::Throttled);
        }
        self.lookups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match tokio::time::timeout(left, self.api.lookup(i, request)).await {
            Err(_) => Err(LookupOutcome::TimedOut),
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "context lookup failed");
                let outcome = outcome_of(&e);
                if outcome == LookupOutcome::Throttled {
                    let pause = match e {
                        GraphError::Throttled { retry_after: Some(r), .. } => r.min(BLOCK_AT_MOST),
                        _ => BLOCK_FOR,
                    };
                    self.blocked.lock().unwrap_or_else(|p| p.into_inner()).insert(service, Instant::now() + pause);
                }
                Err(outcome)
            }
        }
    }
}
