//! Presence: "now", gathered for a moment across the tenant's alerts and asked for in one
//! request per 650 ids.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::oneshot;

use super::{Enricher, PresenceReply, MAX_PRESENCE_IDS};
use crate::domain::integration::Integration;
use crate::domain::processing::context::LookupOutcome;
use crate::ports::{ContextAnswer, ContextRequest};

/// Presence is "now", not the alert's time: never reused longer than this.
const PRESENCE_TTL: Duration = Duration::from_secs(60);

impl Enricher {
    /// One user's presence: gathered for a moment with the other lookups of the tenant under
    /// way, then asked for in one request per 650 ids.
    pub(super) async fn presence(&self, i: &Integration, id: String, deadline: Instant) -> Result<Option<Value>, LookupOutcome> {
        let one = Self::cache_key(i, ContextRequest::Presences { ids: vec![id.clone()] });
        if let Some(ContextAnswer::One(v)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&one) {
            return Ok(Some(v));
        }
        let tenant = (i.tenant_id.clone(), i.client_id.clone());
        let (tx, rx) = oneshot::channel();
        let leader = {
            let mut pending = self.presence.lock().unwrap_or_else(|p| p.into_inner());
            let waiting = pending.entry(tenant.clone()).or_default();
            waiting.push((id, tx));
            waiting.len() == 1
        };
        if leader {
            tokio::time::sleep(self.settings.presence_gather).await;
            let batch = self.presence.lock().unwrap_or_else(|p| p.into_inner()).remove(&tenant).unwrap_or_default();
            let mut by_id: HashMap<String, Vec<PresenceReply>> = HashMap::new();
            for (id, reply) in batch {
                by_id.entry(id).or_default().push(reply);
            }
            let ids: Vec<String> = by_id.keys().cloned().collect();
            for chunk in ids.chunks(MAX_PRESENCE_IDS) {
                let answer = self.ask(i, &ContextRequest::Presences { ids: chunk.to_vec() }, deadline).await;
                let ttl = i.enrichment.cache_ttl.0.min(PRESENCE_TTL);
                for id in chunk {
                    let found = match &answer {
                        Ok(ContextAnswer::Many { items, .. }) => Ok(items
                            .iter()
                            .find(|v| v.get("id").and_then(Value::as_str).is_some_and(|x| x.eq_ignore_ascii_case(id)))
                            .cloned()),
                        Ok(_) => Ok(None),
                        Err(o) => Err(o.clone()),
                    };
                    if let Ok(Some(v)) = &found {
                        let key = Self::cache_key(i, ContextRequest::Presences { ids: vec![id.clone()] });
                        self.cache.lock().unwrap_or_else(|p| p.into_inner()).put(key, ContextAnswer::One(v.clone()), ttl, &self.settings);
                    }
                    for reply in by_id.remove(id).unwrap_or_default() {
                        let _ = reply.send(found.clone());
                    }
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now()) + self.settings.presence_gather;
        match tokio::time::timeout(left, rx).await {
            Ok(Ok(r)) => r,
            _ => Err(LookupOutcome::TimedOut),
        }
    }
}
