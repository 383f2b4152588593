//! Everything a running simulator knows, shared by every endpoint module.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::clock::SimClock;
use crate::cloudapps::{data as cloud_apps_data, CloudAppsState};
use crate::data::mailbox::{self, MailMessage};
use crate::data::submission::{self, Submission};
use crate::data::TenantData;
use crate::entra::directory::Tenant;
use crate::entra::jwt::TokenSigner;
use crate::faults::FaultEngine;
use crate::ids::{self, SimRng};
use crate::record::RequestLog;
use crate::scenario::{GraphSpec, Scenario};
use crate::time::Instant;

pub type Sim = Arc<SimState>;

/// (tenant, alert id, `lastUpdateDateTime` ticks): one version of one alert.
type AlertVersionKey = (usize, String, i64);

#[derive(Debug)]
pub struct SimState {
    pub seed: u64,
    pub clock: SimClock,
    /// `https://127.0.0.1:PORT`: what links and discovery documents point at.
    pub base_url: String,
    pub graph: RwLock<GraphSpec>,
    pub token_lifetime_secs: i64,
    pub directory: RwLock<Vec<Tenant>>,
    pub data: RwLock<Vec<TenantData>>,
    pub signer: TokenSigner,
    /// `uti`s of access tokens expired early by a fault.
    pub expired_tokens: Mutex<HashSet<String>>,
    pub faults: FaultEngine,
    /// CPU milliseconds each tenant's hunting queries used, per 15-minute cycle of the clock.
    pub hunting_cpu: Mutex<std::collections::HashMap<(usize, i64), u64>>,
    /// Access tokens whose signature was checked already: the same bytes verify the same way, and
    /// an RSA check per request (slow in a debug build) would put seconds of CPU between a
    /// burst's arrival and its count against a limit.
    pub verified_tokens: Mutex<std::collections::HashSet<String>>,
    /// Paths requested at least once (`throttle_first_list`).
    requested_paths: Mutex<HashSet<String>>,
    pub cloud_apps: CloudAppsState,
    /// Each tenant's email threat submissions, and the plan new ones follow.
    pub submissions: RwLock<Vec<Vec<Submission>>>,
    pub submission_plans: Vec<crate::scenario::SubmissionsPlan>,
    /// Each tenant's reporting mailbox (its address, its messages), and the plan new ones follow.
    pub mailboxes: RwLock<Vec<(String, Vec<MailMessage>)>>,
    pub mailbox_plans: Vec<crate::scenario::MailboxPlan>,
    /// Outlook's per app, per mailbox limits (graph-throttling-limits.md "Outlook service
    /// limits"): requests in flight, and requests in the current 10-minute window.
    pub mail_gates: Mutex<std::collections::HashMap<(String, String), MailGate>>,
    /// Defender for Endpoint: devices online, live response actions, result links.
    pub mde: crate::mde::MdeState,
    /// Request limits kept by wall-clock windows (graph/people.rs, mde/profiles.rs).
    pub limits: crate::limits::Limits,
    /// What remediation changed about the tenants' people.
    pub people: crate::graph::people::PeopleState,
    /// Rendered evidence per (tenant, alert, version): what live response and the quarantine
    /// search on every call, rendered once.
    evidence_cache: Mutex<std::collections::HashMap<AlertVersionKey, Arc<Vec<serde_json::Value>>>>,
    /// (tenant, Message-ID) of quarantined messages released since their alert: Exchange no
    /// longer holds them.
    pub released_messages: Mutex<std::collections::HashSet<(usize, String)>>,
    /// Bytes of body every quarantined message carries beyond its text (a large attachment's
    /// worth): how tests export large messages.
    pub quarantine_padding: std::sync::atomic::AtomicUsize,
    pub log: RequestLog,
    rng: Mutex<SimRng>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Directory(#[from] crate::entra::directory::DirectoryError),
    #[error(transparent)]
    Data(#[from] crate::data::store::LoadError),
    #[error(transparent)]
    Signer(#[from] crate::entra::jwt::SignerError),
    #[error("scenario field `clock.start`: {0}")]
    Clock(crate::time::InstantParseError),
}

impl SimState {
    pub fn build(scenario: &Scenario, base_url: String) -> Result<Self, BuildError> {
        let start = match &scenario.clock.start {
            Some(s) => Instant::parse(s).map_err(BuildError::Clock)?,
            None => Instant::now(),
        };
        let clock = if scenario.clock.fixed { SimClock::fixed(start) } else { SimClock::wall() };
        // Without a start, a wall clock is the real time (not the time this build began).
        if !scenario.clock.fixed && scenario.clock.start.is_some() {
            clock.set(start);
        }
        let mut rng = ids::rng(scenario.seed, 0xD1);
        let directory = scenario.tenants.iter().enumerate().map(|(i, t)| Tenant::build(i, t, &mut rng)).collect::<Result<Vec<_>, _>>()?;
        let data = scenario
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| TenantData::build(t, i, scenario.seed, start))
            .collect::<Result<Vec<_>, _>>()?;
        let cloud_apps = scenario
            .tenants
            .iter()
            .zip(&data)
            .enumerate()
            .map(|(i, (t, d))| {
                cloud_apps_data::generate(
                    &t.cloud_apps,
                    &t.alerts,
                    &d.pool,
                    &cloud_apps_data::portal_of(&t.domain),
                    scenario.seed ^ (i as u64) << 8,
                    start,
                )
            })
            .collect();
        let submissions = scenario
            .tenants
            .iter()
            .zip(&data)
            .enumerate()
            .map(|(i, (t, d))| submission::generate(&t.submissions, &t.alerts, &d.pool, &t.id, scenario.seed ^ (i as u64) << 8, start))
            .collect();
        let mailboxes = scenario
            .tenants
            .iter()
            .zip(&data)
            .enumerate()
            .map(|(i, (t, d))| {
                let address = mailbox::address(&t.mailbox, &t.domain);
                (address, mailbox::generate(&t.mailbox, &t.alerts, &d.pool, scenario.seed ^ (i as u64) << 8, start))
            })
            .collect();
        let signer = TokenSigner::generate(&mut ids::rng(scenario.seed, 0x51))?;
        Ok(SimState {
            seed: scenario.seed,
            clock,
            base_url,
            graph: RwLock::new(scenario.graph.clone()),
            token_lifetime_secs: scenario.tokens.lifetime_secs,
            directory: RwLock::new(directory),
            data: RwLock::new(data),
            signer,
            expired_tokens: Mutex::new(HashSet::new()),
            faults: FaultEngine::new(scenario.seed, &scenario.faults),
            requested_paths: Mutex::new(HashSet::new()),
            hunting_cpu: Mutex::new(std::collections::HashMap::new()),
            verified_tokens: Mutex::new(std::collections::HashSet::new()),
            cloud_apps: CloudAppsState::new(scenario.cloud_apps.clone(), cloud_apps),
            submissions: RwLock::new(submissions),
            submission_plans: scenario.tenants.iter().map(|t| t.submissions.clone()).collect(),
            mailboxes: RwLock::new(mailboxes),
            mailbox_plans: scenario.tenants.iter().map(|t| t.mailbox.clone()).collect(),
            mail_gates: Mutex::new(std::collections::HashMap::new()),
            mde: crate::mde::MdeState::new(&scenario.mde, scenario.tenants.len()),
            limits: crate::limits::Limits::default(),
            people: crate::graph::people::PeopleState::default(),
            evidence_cache: Mutex::new(std::collections::HashMap::new()),
            released_messages: Mutex::new(std::collections::HashSet::new()),
            quarantine_padding: std::sync::atomic::AtomicUsize::new(0),
            log: RequestLog::default(),
            rng: Mutex::new(ids::rng(scenario.seed, 0x77)),
        })
    }

    /// A seeded random number (the list shaping's shuffles).
    pub fn random(&self) -> u64 {
        rand::Rng::gen(&mut *lock(&self.rng))
    }

    pub fn guid(&self) -> String {
        ids::guid(&mut *lock(&self.rng))
    }

    pub fn directory(&self) -> RwLockReadGuard<'_, Vec<Tenant>> {
        self.directory.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn mailboxes(&self) -> RwLockReadGuard<'_, Vec<(String, Vec<MailMessage>)>> {
        self.mailboxes.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn submissions(&self) -> RwLockReadGuard<'_, Vec<Vec<Submission>>> {
        self.submissions.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn data(&self) -> RwLockReadGuard<'_, Vec<TenantData>> {
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn data_mut(&self) -> RwLockWriteGuard<'_, Vec<TenantData>> {
        self.data.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The evidence of every alert of `tenant` visible now: (detection source, created, evidence).
    pub fn visible_evidence(&self, tenant: usize) -> Vec<(&'static str, Instant, Arc<Vec<serde_json::Value>>)> {
        let now = self.clock.now();
        let data = self.data();
        let Some(t) = data.get(tenant) else { return Vec::new() };
        let mut cache = lock(&self.evidence_cache);
        t.alerts
            .iter()
            .filter_map(|a| {
                let v = a.visible(now)?;
                let evidence = cache
                    .entry((tenant, a.id.clone(), v.last_update.0))
                    .or_insert_with(|| match a.view(v).render(&t.pool, true).remove("evidence") {
                        Some(serde_json::Value::Array(e)) => Arc::new(e),
                        _ => Arc::new(Vec::new()),
                    })
                    .clone();
                Some((a.detection_source, a.created, evidence))
            })
            .collect()
    }

    /// Whether this is the first request to `path` (and from now on, it is not).
    pub fn first_request_to(&self, path: &str) -> bool {
        self.requested_paths.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_owned())
    }

    pub fn graph_spec(&self) -> GraphSpec {
        self.graph.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_graph_spec(&self, g: GraphSpec) {
        *self.graph.write().unwrap_or_else(|p| p.into_inner()) = g;
    }

    pub fn expire_token(&self, uti: &str) {
        lock(&self.expired_tokens).insert(uti.to_owned());
    }

    pub fn is_expired_early(&self, uti: &str) -> bool {
        lock(&self.expired_tokens).contains(uti)
    }
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One app's use of one mailbox.
#[derive(Debug, Default)]
pub struct MailGate {
    pub in_flight: usize,
    pub window_start: Instant,
    pub in_window: usize,
}
