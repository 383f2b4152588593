//! Context for an alert before it goes out (issue 14): the parts its integration asks for, for
//! the users, devices and files it names, each lookup bounded in time and budget, answers kept a
//! short while per tenant, presence asked for in batches. A lookup that fails becomes its part's
//! status; nothing here ever fails or holds back an alert for long.
//!
//! Its parts: user.rs looks up one user's parts, lookup.rs one lookup (cache, shared with the
//! same lookup under way, skipped while its service throttles), presence.rs presence in batches;
//! here, the settings, the answer cache, and an alert's context section.

mod lookup;
mod presence;
mod user;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::domain::entities::Entities;
use crate::domain::integration::Integration;
use crate::domain::processing::context::{self, device_of, file_of, ContextPart, ContextSection, LookupOutcome, Tally};
use crate::domain::time::GraphTime;
use crate::ports::{ContextAnswer, ContextApi, ContextRequest};

/// getPresencesByUserId takes at most 650 ids (cloudcommunications-getpresencesbyuserid.md).
pub const MAX_PRESENCE_IDS: usize = 650;

#[derive(Debug, Clone)]
pub struct EnrichSettings {
    /// All of one alert's lookups end within this.
    pub per_alert: Duration,
    /// All lookups of one batch end within this, so a batch of slow lookups still finishes
    /// well inside the function's timeout (cached answers are still used after it).
    pub per_batch: Duration,
    /// How long presence lookups wait to be asked together.
    pub presence_gather: Duration,
    /// Answers kept at once, and their total size.
    pub cache_entries: usize,
    pub cache_bytes: usize,
}

impl Default for EnrichSettings {
    fn default() -> Self {
        EnrichSettings {
            per_alert: Duration::from_secs(20),
            per_batch: Duration::from_secs(60),
            presence_gather: Duration::from_millis(25),
            cache_entries: 20_000,
            cache_bytes: 32 << 20,
        }
    }
}

type CacheKey = (String, String, ContextRequest);

struct Cached {
    expires: Instant,
    bytes: usize,
    answer: ContextAnswer,
}

/// Answers per (tenant, app, request), bounded in entries and bytes.
#[derive(Default)]
struct AnswerCache {
    entries: HashMap<CacheKey, Cached>,
    bytes: usize,
}

impl AnswerCache {
    fn get(&self, key: &CacheKey) -> Option<ContextAnswer> {
        self.entries.get(key).filter(|c| c.expires > Instant::now()).map(|c| c.answer.clone())
    }

    fn put(&mut self, key: CacheKey, answer: ContextAnswer, ttl: Duration, settings: &EnrichSettings) {
        let bytes = match &answer {
            ContextAnswer::One(v) => v.to_string().len(),
            ContextAnswer::Many { items, .. } => items.iter().map(|v| v.to_string().len()).sum(),
            ContextAnswer::Missing => 0,
        } + 256;
        if ttl.is_zero() || bytes > settings.cache_bytes / 64 {
            return;
        }
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.bytes;
        }
        if self.entries.len() >= settings.cache_entries || self.bytes + bytes > settings.cache_bytes {
            let now = Instant::now();
            self.entries.retain(|_, c| c.expires > now);
            // Still full: the entries closest to expiring go first, down to three quarters.
            if self.entries.len() >= settings.cache_entries || self.bytes + bytes > settings.cache_bytes {
                let mut by_expiry: Vec<(Instant, CacheKey)> = self.entries.iter().map(|(k, c)| (c.expires, k.clone())).collect();
                by_expiry.sort_by_key(|(e, _)| *e);
                let keep = settings.cache_entries * 3 / 4;
                for (_, k) in by_expiry.into_iter().take(self.entries.len().saturating_sub(keep)) {
                    self.entries.remove(&k);
                }
            }
            self.bytes = self.entries.values().map(|c| c.bytes).sum();
        }
        self.bytes += bytes;
        self.entries.insert(key, Cached { expires: Instant::now() + ttl, bytes, answer });
    }
}

type PresenceReply = oneshot::Sender<Result<Option<Value>, LookupOutcome>>;
/// Presence lookups waiting for one request: (user id, where its answer goes).
type Waiting = Vec<(String, PresenceReply)>;
/// (tenant, app, service).
type ServiceKey = (String, String, &'static str);

pub struct Enricher {
    api: Arc<dyn ContextApi>,
    settings: EnrichSettings,
    cache: Mutex<AnswerCache>,
    /// Presence lookups waiting to be asked together, per (tenant, app).
    presence: Mutex<HashMap<(String, String), Waiting>>,
    /// Services of a tenant that throttled a lookup (or whose budget had no slot), and until when
    /// later lookups skip them: one refusal stops the rest of the batch from waiting in turn.
    blocked: Mutex<HashMap<ServiceKey, Instant>>,
    /// Lookups under way, and who waits for each answer: alerts side by side about one user ask
    /// once, not once each into the tenant's budget.
    in_flight: Mutex<HashMap<CacheKey, Vec<oneshot::Sender<Answer>>>>,
    lookups: std::sync::atomic::AtomicU64,
}

type Answer = Result<ContextAnswer, LookupOutcome>;

/// When the alert happened: its first activity, else its creation, else its version.
pub fn alert_time(first_activity: Option<&str>, created: Option<&str>, version: GraphTime) -> GraphTime {
    first_activity.or(created).and_then(|t| GraphTime::parse(t).ok()).unwrap_or(version)
}

impl Enricher {
    pub fn new(api: Arc<dyn ContextApi>, settings: EnrichSettings) -> Self {
        Enricher {
            api,
            settings,
            cache: Mutex::new(AnswerCache::default()),
            presence: Mutex::new(HashMap::new()),
            blocked: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            lookups: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &EnrichSettings {
        &self.settings
    }

    /// Requests sent to Microsoft so far (cache hits excluded), for metrics and tests.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The context section for an alert's entities at `at`, or None when the integration asks
    /// for no part. `batch_deadline` bounds the lookups of the whole batch.
    pub async fn context(&self, i: &Integration, entities: &Entities, at: GraphTime, batch_deadline: Instant) -> Option<ContextSection> {
        let parts = i.enrichment.effective_parts(&i.features);
        if parts.is_empty() {
            return None;
        }
        let deadline = batch_deadline.min(Instant::now() + self.settings.per_alert);
        let subjects = context::subjects(entities);
        let mut tally = Tally::default();
        for p in &parts {
            tally.expect(*p);
        }
        let users = join_all(subjects.users.iter().map(|u| self.user(i, u, &parts, at, deadline)));
        let devices = join_all(
            subjects
                .devices
                .iter()
                .filter(|_| parts.contains(&ContextPart::Device))
                .map(|id| async move { (id, self.get(i, ContextRequest::Machine { id: id.clone() }, deadline).await) }),
        );
        let files = join_all(
            subjects
                .files
                .iter()
                .filter(|_| parts.contains(&ContextPart::File))
                .map(|h| async move { (h, self.get(i, ContextRequest::File { hash: h.clone() }, deadline).await) }),
        );
        let (users, devices, files) = tokio::join!(users, devices, files);
        let mut section = ContextSection::default();
        for (u, outcomes) in users {
            section.users.push(u);
            for (part, o) in outcomes {
                tally.record(part, o);
            }
        }
        for (id, r) in devices {
            match r {
                Ok(ContextAnswer::One(v)) => {
                    section.devices.push(device_of(id, &v));
                    tally.record(ContextPart::Device, LookupOutcome::Ok);
                }
                Ok(_) => tally.record(ContextPart::Device, LookupOutcome::NotFound),
                Err(o) => tally.record(ContextPart::Device, o),
            }
        }
        for (hash, r) in files {
            match r {
                Ok(ContextAnswer::One(v)) => {
                    section.files.push(file_of(hash, &v));
                    tally.record(ContextPart::File, LookupOutcome::Ok);
                }
                Ok(_) => tally.record(ContextPart::File, LookupOutcome::NotFound),
                Err(o) => tally.record(ContextPart::File, o),
            }
        }
        section.enrichment = tally.statuses();
        Some(section)
    }
}

#[cfg(test)]
mod tests;
