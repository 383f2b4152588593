//! Context for an alert before it goes out (issue 14): the parts its integration asks for, for
//! the users, devices and files it names, each lookup bounded in time and budget, answers kept a
//! short while per tenant, presence asked for in batches. A lookup that fails becomes its part's
//! status; nothing here ever fails or holds back an alert for long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::domain::entities::Entities;
use crate::domain::integration::Integration;
use crate::domain::processing::context::{
    self, auto_replies_of, device_of, file_of, memberships_of, mfa_of, presence_of, profile_of, schedule_of, sign_ins_of, ContextPart,
    ContextSection, LookupOutcome, Tally, UserContext, UserSubject, SCHEDULE_INTERVAL_MINUTES,
};
use crate::domain::time::GraphTime;
use crate::error::GraphError;
use crate::ports::{ContextAnswer, ContextApi, ContextRequest};

/// getPresencesByUserId takes at most 650 ids (cloudcommunications-getpresencesbyuserid.md).
pub const MAX_PRESENCE_IDS: usize = 650;
/// Memberships read per user: pages of this many, at most [`MEMBERSHIP_PAGES`] of them.
const MEMBERSHIP_TOP: u32 = 999;
const MEMBERSHIP_PAGES: u32 = 3;
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

/// Presence is "now", not the alert's time: never reused longer than this.
const PRESENCE_TTL: Duration = Duration::from_secs(60);

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

/// `from` rounded down and `to` rounded up to a quarter hour.
fn quarter_hours(from: GraphTime, to: GraphTime) -> (GraphTime, GraphTime) {
    const Q: i64 = 900;
    let down = |s: i64| s.div_euclid(Q) * Q;
    (GraphTime::from_unix_seconds(down(from.unix_seconds())), GraphTime::from_unix_seconds(down(to.unix_seconds() + Q - 1)))
}

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

    /// One user's parts, in the order they depend on each other (the profile gives the object id
    /// and address the others need).
    async fn user(
        &self,
        i: &Integration,
        subject: &UserSubject,
        parts: &[ContextPart],
        at: GraphTime,
        deadline: Instant,
    ) -> (UserContext, Vec<(ContextPart, LookupOutcome)>) {
        let mut u = UserContext { id: subject.id.clone(), upn: subject.upn.clone(), ..UserContext::default() };
        let mut out = Vec::new();
        let wants = |p: ContextPart| parts.contains(&p);
        let key = subject.key().to_owned();
        // How the profile went, when it was asked for: the parts that need what it gives fail
        // as it did.
        let mut profile_outcome = None;
        if wants(ContextPart::Profile) {
            let outcome = match self.get(i, ContextRequest::User { user: key.clone() }, deadline).await {
                Ok(ContextAnswer::One(v)) => {
                    let (profile, id, upn) = profile_of(&v);
                    u.profile = Some(profile);
                    u.id = u.id.take().or(id);
                    u.upn = u.upn.take().or(upn);
                    LookupOutcome::Ok
                }
                Ok(_) => LookupOutcome::NotFound,
                Err(o) => o,
            };
            out.push((ContextPart::Profile, outcome.clone()));
            profile_outcome = Some(outcome);
        }
        let unknown = |what: &str| match &profile_outcome {
            Some(o) if *o != LookupOutcome::Ok => o.clone(),
            _ => LookupOutcome::Failed(format!("{what}, which the alert does not give; enable the profile part")),
        };
        let needs_id = |what: &str| unknown(&format!("{what} needs the user's object id"));
        let needs_address = || unknown("the schedule needs the user's address");
        if wants(ContextPart::Roles) || wants(ContextPart::Groups) {
            let request = ContextRequest::Memberships { user: key.clone(), top: MEMBERSHIP_TOP, pages: MEMBERSHIP_PAGES };
            let outcome = match self.get(i, request, deadline).await {
                Ok(ContextAnswer::Many { items, more }) => {
                    let m = memberships_of(&items, i.enrichment.max_groups as usize, more);
                    if wants(ContextPart::Roles) {
                        u.is_admin = Some(m.roles.iter().any(|r| r.privileged));
                        u.roles = Some(m.roles);
                    }
                    if wants(ContextPart::Groups) {
                        u.groups = Some(m.groups);
                        u.groups_truncated = Some(m.groups_truncated);
                    }
                    LookupOutcome::Ok
                }
                Ok(_) => LookupOutcome::NotFound,
                Err(o) => o,
            };
            for p in [ContextPart::Roles, ContextPart::Groups].into_iter().filter(|p| wants(*p)) {
                out.push((p, outcome.clone()));
            }
        }
        let window = i.enrichment.window.0;
        // The registration details before the sign-ins: both share the tenant's 5 identity-report
        // requests per 10 s, and a user's registration is one request for all of their alerts
        // (cached), where sign-ins are one per alert's window. Sign-ins first let a burst of
        // alerts spend every slot on them and left no user's MFA known (the demo: 0 of 446).
        if wants(ContextPart::Mfa) {
            let outcome = match u.id.clone() {
                None => needs_id("mfa"),
                Some(id) => match self.get(i, ContextRequest::Registration { user_id: id }, deadline).await {
                    Ok(ContextAnswer::One(v)) => {
                        u.mfa = Some(mfa_of(&v));
                        LookupOutcome::Ok
                    }
                    Ok(_) => LookupOutcome::NotFound,
                    Err(o) => o,
                },
            };
            out.push((ContextPart::Mfa, outcome));
        }
        if wants(ContextPart::SignIns) {
            let (user, by_id) = match (&u.id, &u.upn) {
                (Some(id), _) => (id.clone(), true),
                (None, Some(upn)) => (upn.clone(), false),
                (None, None) => (key.clone(), false),
            };
            // The window rounded out to quarter hours: alerts about the user close in time share one answer.
            let (from, to) = quarter_hours(at.minus(window), at.plus(window));
            let request = ContextRequest::SignIns { user, by_id, from, to, top: i.enrichment.max_sign_ins };
            let outcome = match self.get(i, request, deadline).await {
                Ok(ContextAnswer::Many { items, .. }) => {
                    u.sign_ins = Some(sign_ins_of(&items, i.enrichment.max_sign_ins as usize));
                    LookupOutcome::Ok
                }
                Ok(_) => LookupOutcome::NotFound,
                Err(o) => o,
            };
            out.push((ContextPart::SignIns, outcome));
        }
        if wants(ContextPart::OutOfOffice) {
            let outcome = match self.get(i, ContextRequest::AutoReplies { user: key.clone() }, deadline).await {
                Ok(ContextAnswer::One(v)) => {
                    u.out_of_office = Some(auto_replies_of(&v, at));
                    LookupOutcome::Ok
                }
                Ok(_) => LookupOutcome::NotFound,
                Err(o) => o,
            };
            out.push((ContextPart::OutOfOffice, outcome));
        }
        if wants(ContextPart::Schedule) {
            let outcome = match u.upn.clone() {
                None => needs_address(),
                Some(address) => {
                    let from = at.minus(window);
                    let request = ContextRequest::Schedule {
                        user: key.clone(),
                        address,
                        from,
                        to: at.plus(window),
                        interval_minutes: SCHEDULE_INTERVAL_MINUTES,
                    };
                    match self.get(i, request, deadline).await {
                        Ok(ContextAnswer::One(v)) if v.get("error").is_some_and(|e| !e.is_null()) => {
                            LookupOutcome::Failed(format!("getSchedule: {}", v["error"]["message"].as_str().unwrap_or("an error")))
                        }
                        Ok(ContextAnswer::One(v)) => {
                            u.schedule = Some(schedule_of(&v, from, at));
                            LookupOutcome::Ok
                        }
                        Ok(_) => LookupOutcome::NotFound,
                        Err(o) => o,
                    }
                }
            };
            out.push((ContextPart::Schedule, outcome));
        }
        if wants(ContextPart::Presence) {
            let outcome = match u.id.clone() {
                None => needs_id("presence"),
                Some(id) => match self.presence(i, id, deadline).await {
                    Ok(Some(v)) => {
                        u.presence = Some(presence_of(&v));
                        LookupOutcome::Ok
                    }
                    Ok(None) => LookupOutcome::NotFound,
                    Err(o) => o,
                },
            };
            out.push((ContextPart::Presence, outcome));
        }
        (u, out)
    }

    fn cache_key(i: &Integration, request: ContextRequest) -> CacheKey {
        (i.tenant_id.clone(), i.client_id.clone(), request)
    }

    /// A lookup, from the cache when a fresh answer is there, or from the same lookup already
    /// under way for another alert.
    async fn get(&self, i: &Integration, request: ContextRequest, deadline: Instant) -> Result<ContextAnswer, LookupOutcome> {
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

    async fn ask(&self, i: &Integration, request: &ContextRequest, deadline: Instant) -> Result<ContextAnswer, LookupOutcome> {
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

    /// One user's presence: gathered for a moment with the other lookups of the tenant under
    /// way, then asked for in one request per 650 ids.
    async fn presence(&self, i: &Integration, id: String, deadline: Instant) -> Result<Option<Value>, LookupOutcome> {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::future::BoxFuture;
    use serde_json::json;

    use crate::app::processing::enrich::*;
    use crate::domain::entities::{Device, User};
    use crate::domain::integration::sections::FeaturesDoc;

    /// Microsoft as a table: answers by request kind, counting requests.
    struct Table {
        calls: AtomicUsize,
        presence_calls: AtomicUsize,
        fail: Option<fn(&ContextRequest) -> Option<GraphError>>,
    }

    impl ContextApi for Table {
        fn lookup<'a>(&'a self, _: &'a Integration, r: &'a ContextRequest) -> BoxFuture<'a, Result<ContextAnswer, GraphError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                if let Some(e) = self.fail.and_then(|f| f(r)) {
                    return Err(e);
                }
                Ok(match r {
                    ContextRequest::User { user } => ContextAnswer::One(
                        json!({"id": format!("00000000-0000-0000-0000-{:0>12}", user.len()), "userPrincipalName": user, "accountEnabled": true, "department": "Finance"}),
                    ),
                    ContextRequest::Memberships { .. } => ContextAnswer::Many {
                        items: vec![
                            json!({"@odata.type": "#microsoft.graph.directoryRole", "displayName": "Global Administrator", "roleTemplateId": "62e90394-69f5-4237-9190-012177145e10"}),
                        ],
                        more: false,
                    },
                    ContextRequest::Presences { ids } => {
                        self.presence_calls.fetch_add(1, Ordering::SeqCst);
                        ContextAnswer::Many { items: ids.iter().map(|id| json!({"id": id, "availability": "Away"})).collect(), more: false }
                    }
                    ContextRequest::Machine { .. } => ContextAnswer::Missing,
                    _ => ContextAnswer::One(json!({})),
                })
            })
        }
    }

    fn integration(parts: &[ContextPart]) -> Integration {
        let mut i = Integration::new("contoso", "t", "c", "s");
        i.features = FeaturesDoc { user_context: true, calendar: true, device_context: true, ..FeaturesDoc::default() };
        i.enrichment.parts = Some(parts.to_vec());
        i
    }

    fn entities(users: &[&str]) -> Entities {
        Entities {
            users: users.iter().map(|u| User { upn: Some((*u).into()), ..User::default() }).collect(),
            devices: vec![Device { mde_device_id: Some("m1".into()), ..Device::default() }],
            ..Entities::default()
        }
    }

    fn enricher(fail: Option<fn(&ContextRequest) -> Option<GraphError>>) -> (Arc<Table>, Enricher) {
        let table = Arc::new(Table { calls: AtomicUsize::new(0), presence_calls: AtomicUsize::new(0), fail });
        (table.clone(), Enricher::new(table, EnrichSettings::default()))
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// Microsoft answering after a moment, counting requests.
    struct Slow(AtomicUsize);

    impl ContextApi for Slow {
        fn lookup<'a>(&'a self, _: &'a Integration, _: &'a ContextRequest) -> BoxFuture<'a, Result<ContextAnswer, GraphError>> {
            Box::pin(async move {
                self.0.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(ContextAnswer::One(json!({"id": "00000000-0000-0000-0000-000000000001", "userPrincipalName": "a@contoso.com"})))
            })
        }
    }

    #[tokio::test]
    async fn alerts_side_by_side_about_one_user_ask_once_and_a_dropped_asker_lets_the_next_ask() {
        let api = Arc::new(Slow(AtomicUsize::new(0)));
        let e = Enricher::new(api.clone(), EnrichSettings::default());
        let i = integration(&[ContextPart::Profile]);
        let at = GraphTime::from_unix_seconds(1_800_000_000);
        let who = entities(&["a@contoso.com"]);
        let all = join_all((0..10).map(|_| e.context(&i, &who, at, later()))).await;
        assert!(all.iter().all(|s| s.as_ref().is_some_and(|s| s.enrichment["profile"].status == "ok")));
        assert_eq!(api.0.load(Ordering::SeqCst), 1, "one request for ten alerts");
        // The asker dropped mid-way (its caller gave up): the one waiting asks itself.
        let i = Integration { tenant_id: "t2".into(), ..i };
        let dropped = tokio::time::timeout(Duration::from_millis(20), e.context(&i, &who, at, later()));
        let waiting = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            e.context(&i, &who, at, later()).await
        };
        let (gone, s) = tokio::join!(dropped, waiting);
        assert!(gone.is_err(), "dropped at 20 ms");
        assert_eq!(s.map(|s| s.enrichment["profile"].status.clone()).as_deref(), Some("ok"));
        assert_eq!(api.0.load(Ordering::SeqCst), 3, "asked again once the first asker was gone");
    }

    #[tokio::test]
    async fn parts_fill_the_section_and_answers_are_reused_within_their_ttl() {
        let (table, e) = enricher(None);
        let i = integration(&[ContextPart::Profile, ContextPart::Roles, ContextPart::Device]);
        let at = GraphTime::from_unix_seconds(1_800_000_000);
        let Some(s) = e.context(&i, &entities(&["a@contoso.com"]), at, later()).await else { panic!("asked for parts") };
        let u = &s.users[0];
        assert_eq!(u.profile.as_ref().and_then(|p| p.department.as_deref()), Some("Finance"));
        assert_eq!(u.is_admin, Some(true));
        assert!(u.groups.is_none(), "groups were not asked for");
        assert_eq!(s.enrichment["device"].status, "not_found");
        assert_eq!(s.enrichment["profile"].status, "ok");
        let first = table.calls.load(Ordering::SeqCst);
        assert_eq!(first, 3);
        e.context(&i, &entities(&["a@contoso.com"]), at, later()).await;
        assert_eq!(table.calls.load(Ordering::SeqCst), first, "all three answers came from the cache");
        let mut no_cache = i.clone();
        no_cache.enrichment.cache_ttl.0 = Duration::ZERO;
        no_cache.tenant_id = "t2".into();
        e.context(&no_cache, &entities(&["a@contoso.com"]), at, later()).await;
        e.context(&no_cache, &entities(&["a@contoso.com"]), at, later()).await;
        assert_eq!(table.calls.load(Ordering::SeqCst), first + 6, "cache_ttl = 0s asks every time");
    }

    #[tokio::test]
    async fn presence_of_concurrent_alerts_is_asked_in_one_request() {
        let (table, e) = enricher(None);
        let i = integration(&[ContextPart::Profile, ContextPart::Presence]);
        let at = GraphTime::from_unix_seconds(1_800_000_000);
        let users: Vec<String> = (0..12).map(|n| format!("user{}@contoso.com", "x".repeat(n))).collect();
        let all: Vec<Entities> = users.iter().map(|u| entities(&[u.as_str()])).collect();
        let sections = join_all(all.iter().map(|x| e.context(&i, x, at, later()))).await;
        assert!(sections.iter().all(|s| s.as_ref().is_some_and(|s| s.enrichment["presence"].status == "ok")));
        assert_eq!(table.presence_calls.load(Ordering::SeqCst), 1, "12 users, one getPresencesByUserId");
    }

    #[tokio::test]
    async fn failures_become_statuses_and_never_an_error() {
        let (_, e) = enricher(Some(|r| match r {
            ContextRequest::Memberships { .. } => {
                Some(GraphError::Http { api: "Graph", status: 403, code: "Authorization_RequestDenied".into(), message: "no".into() })
            }
            ContextRequest::Machine { .. } => Some(GraphError::OverBudget { api: "Defender for Endpoint", within: Duration::from_secs(2) }),
            ContextRequest::SignIns { .. } => {
                Some(GraphError::Http { api: "Graph", status: 500, code: String::new(), message: "boom".into() })
            }
            _ => None,
        }));
        let i = integration(&[ContextPart::Profile, ContextPart::Roles, ContextPart::Groups, ContextPart::SignIns, ContextPart::Device]);
        let Some(s) = e.context(&i, &entities(&["a@contoso.com"]), GraphTime::from_unix_seconds(1_800_000_000), later()).await else {
            panic!("asked for parts")
        };
        assert_eq!(s.enrichment["roles"].status, "forbidden");
        assert_eq!(s.enrichment["groups"].status, "forbidden");
        assert_eq!(s.enrichment["device"].status, "throttled");
        assert_eq!(s.enrichment["sign_ins"].status, "failed");
        assert!(s.enrichment["sign_ins"].detail.as_deref().is_some_and(|d| d.contains("500")));
        assert_eq!(s.enrichment["profile"].status, "ok");
    }

    #[tokio::test]
    async fn a_spent_batch_deadline_asks_nothing_more() {
        let (table, e) = enricher(None);
        let i = integration(&[ContextPart::Profile]);
        let Some(s) = e.context(&i, &entities(&["a@contoso.com"]), GraphTime::from_unix_seconds(1), Instant::now()).await else {
            panic!("asked for parts")
        };
        assert_eq!(s.enrichment["profile"].status, "timed_out");
        assert_eq!(table.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_throttled_service_is_skipped_for_a_while_without_asking() {
        let (table, e) = enricher(Some(|r| match r {
            ContextRequest::User { .. } => Some(GraphError::OverBudget { api: "Graph", within: Duration::from_secs(2) }),
            _ => None,
        }));
        let i = integration(&[ContextPart::Profile, ContextPart::Device]);
        let at = GraphTime::from_unix_seconds(1_800_000_000);
        for n in 0..5 {
            let Some(s) = e.context(&i, &entities(&[&format!("u{n}@contoso.com")]), at, later()).await else { panic!("parts") };
            assert_eq!(s.enrichment["profile"].status, "throttled");
        }
        // One user lookup was sent; the other four were skipped. The device (another service)
        // was asked once and then answered from the cache.
        assert_eq!(table.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn sign_in_windows_round_out_to_quarter_hours() {
        let (f, t) = quarter_hours(GraphTime::from_unix_seconds(1_000), GraphTime::from_unix_seconds(2_000));
        assert_eq!((f.unix_seconds(), t.unix_seconds()), (900, 2_700));
    }

    #[test]
    fn no_part_means_no_section() {
        let i = Integration::new("contoso", "t", "c", "s");
        assert!(i.enrichment.effective_parts(&i.features).is_empty());
    }
}
