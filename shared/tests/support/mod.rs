//! Test support: the tenant simulator wired to the poller with local adapters.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod moto;

use std::sync::Arc;
use std::time::{Duration, Instant};

use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryCursorStore, StaticSecretSource};
use m365_ingest::app::polling::poll::{Poller, RunSummary};
use m365_ingest::domain::envelope::Envelope;
use m365_ingest::domain::integration::{Credential, Credentials, Integration};
use m365_ingest::domain::polling::window::WindowSettings;
use m365_ingest::ports::{Clock, PollWith};
use m365_ingest::secret::Secret;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::{GraphTime, Source};
use tenant_sim::scenario::{ClockSpec, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
use tenant_sim::{Scenario, Simulator};

pub const TENANT: &str = DEFAULT_TENANT_ID;
pub const START: &str = "2026-11-26T12:00:00Z";

/// The poller's clock is the simulator's.
#[derive(Clone)]
pub struct SimTime(pub Arc<Simulator>);

impl Clock for SimTime {
    fn now(&self) -> GraphTime {
        GraphTime::from_ticks(self.0.clock().now().0)
    }
}

pub type LocalPoller =
    Poller<PollWith<MicrosoftHttp, Arc<MemoryCursorStore>, Arc<MemoryAlertQueue>, DirArtifactStore, StaticSecretSource, SimTime>>;

pub fn fixed(mut s: Scenario) -> Scenario {
    s.clock = ClockSpec { start: Some(START.into()), fixed: true };
    s
}

pub fn window() -> WindowSettings {
    WindowSettings {
        lookback: Duration::from_secs(48 * 3600),
        ingestion_delay: Duration::from_secs(300),
        overlap: Duration::from_secs(900),
    }
}

pub fn integration() -> Integration {
    let mut i = Integration::new("contoso", TENANT, DEFAULT_CLIENT_ID, "contoso-secret");
    i.window = window();
    i.poll_interval = Duration::ZERO;
    i
}

pub fn secret_creds() -> Credentials {
    Credentials {
        tenant_id: TENANT.into(),
        client_id: DEFAULT_CLIENT_ID.into(),
        credential: Credential::ClientSecret(Secret::new(DEFAULT_CLIENT_SECRET)),
    }
}

/// Credentials with a certificate and its key, for the simulator's default app and tenant.
pub fn cert_creds(cert: &tenant_sim::testing::ClientCertificate) -> Credentials {
    Credentials {
        tenant_id: TENANT.into(),
        client_id: DEFAULT_CLIENT_ID.into(),
        credential: Credential::Certificate { certificate_pem: cert.cert_pem.clone(), private_key_pem: Secret::new(cert.key_pem.clone()) },
    }
}

/// A writer for a tracing subscriber that keeps everything in memory (to search logs).
#[derive(Clone, Default)]
pub struct Captured(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

pub struct World {
    pub sim: Arc<Simulator>,
    pub poller: LocalPoller,
    pub cursors: Arc<MemoryCursorStore>,
    pub queue: Arc<MemoryAlertQueue>,
    pub dir: tempfile::TempDir,
}

pub async fn world(scenario: Scenario, settings: PollSettings, creds: Credentials) -> World {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let sim = Arc::new(Simulator::start(scenario).await.expect("simulator"));
    world_with(sim, HttpSettings::simulator, RetryPolicy::quick(), settings, creds)
}

/// A world whose HTTP settings `http(base_url, ca_pem)` makes (to change the pacing, say).
pub fn world_with(
    sim: Arc<Simulator>,
    http: impl Fn(&str, &str) -> HttpSettings,
    policy: RetryPolicy,
    settings: PollSettings,
    creds: Credentials,
) -> World {
    let http = http(sim.base_url(), sim.ca_pem());
    let graph = MicrosoftHttp::new(&http, policy).expect("graph client");
    let cursors = Arc::new(MemoryCursorStore::new());
    let queue = Arc::new(MemoryAlertQueue::new());
    let dir = tempfile::tempdir().unwrap();
    let poller = Poller {
        graph,
        cursors: cursors.clone(),
        queue: queue.clone(),
        artifacts: DirArtifactStore::new(dir.path().to_owned()),
        secrets: StaticSecretSource::new().with("contoso-secret", creds),
        clock: SimTime(sim.clone()),
        settings,
    };
    World { sim, poller, cursors, queue, dir }
}

impl World {
    pub async fn poll(&self, source: Source) -> RunSummary {
        self.poller.poll_one(&integration_for(source), source, Instant::now() + Duration::from_secs(600)).await
    }

    /// (id, version) of every message delivered so far, in order.
    pub fn delivered(&self) -> Vec<(String, GraphTime)> {
        self.queue.messages().iter().map(|m| serde_json::from_str::<Envelope>(m).unwrap()).map(|e| (e.id, e.version)).collect()
    }

    pub fn now(&self) -> GraphTime {
        GraphTime::from_ticks(self.sim.clock().now().0)
    }

    /// Alert versions the protocol must have delivered by now: visible at some poll and
    /// older than the ingestion delay.
    pub fn due_versions(&self, before: GraphTime) -> Vec<(String, GraphTime)> {
        self.sim
            .alert_timeline(TENANT)
            .into_iter()
            .map(|(id, v, vis)| (id, GraphTime::from_ticks(v.0), GraphTime::from_ticks(vis.0)))
            .filter(|(_, v, vis)| *v < before && *vis <= self.now())
            .map(|(id, v, _)| (id, v))
            .collect()
    }
}

pub const PORTAL: &str = "https://contoso.us2.portal.cloudappsecurity.com";

pub fn integration_for(source: Source) -> Integration {
    let mut i = integration();
    match source {
        Source::DefenderIncidents => i.defender_mode = m365_ingest::domain::integration::DefenderMode::Incidents,
        Source::CloudApps => {
            i.defender_mode = m365_ingest::domain::integration::DefenderMode::Off;
            i.cloud_apps = true;
            i.cloud_apps_base = Some(PORTAL.into());
        }
        Source::EmailSubmissions => {
            i.defender_mode = m365_ingest::domain::integration::DefenderMode::Off;
            i.email_submissions.enabled = true;
        }
        Source::PhishingMailbox => {
            i.defender_mode = m365_ingest::domain::integration::DefenderMode::Off;
            i.phishing_mailbox = Some(m365_ingest::domain::integration::sections::MailboxDoc { address: MAILBOX.into(), filter: None });
        }
        Source::DefenderAlerts => {}
    }
    i
}

/// The simulated tenant's phishing-report mailbox.
pub const MAILBOX: &str = "phish@contoso.onmicrosoft.com";

/// A cursor store whose commits fail after `ok_commits` successes: a crash between sending a
/// page and committing the cursor.
pub struct CrashingCommits<C> {
    pub inner: C,
    pub ok_commits: std::sync::atomic::AtomicI64,
}

impl<C> CrashingCommits<C> {
    pub fn new(inner: C, ok_commits: i64) -> Self {
        CrashingCommits { inner, ok_commits: std::sync::atomic::AtomicI64::new(ok_commits) }
    }

    pub fn arm(&self, ok_commits: i64) {
        self.ok_commits.store(ok_commits, std::sync::atomic::Ordering::SeqCst);
    }
}

impl<C: m365_ingest::ports::CursorStore> m365_ingest::ports::CursorStore for CrashingCommits<C> {
    async fn acquire(
        &self,
        key: &m365_ingest::ports::CursorKey,
        owner: &str,
        now: GraphTime,
        expires: GraphTime,
    ) -> Result<m365_ingest::ports::Leased, m365_ingest::error::CursorError> {
        self.inner.acquire(key, owner, now, expires).await
    }
    async fn commit(
        &self,
        key: &m365_ingest::ports::CursorKey,
        owner: &str,
        v: u64,
        c: &m365_ingest::domain::polling::cursor::Cursor,
    ) -> Result<u64, m365_ingest::error::CursorError> {
        if self.ok_commits.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) <= 0 {
            return Err(m365_ingest::error::CursorError::Store { detail: "simulated crash before commit".into(), retryable: true });
        }
        self.inner.commit(key, owner, v, c).await
    }
    async fn release(
        &self,
        key: &m365_ingest::ports::CursorKey,
        owner: &str,
        ran: Option<&m365_ingest::ports::Ran>,
    ) -> Result<(), m365_ingest::error::CursorError> {
        self.inner.release(key, owner, ran).await
    }
    async fn status(
        &self,
        key: &m365_ingest::ports::CursorKey,
    ) -> Result<Option<m365_ingest::ports::CursorStatus>, m365_ingest::error::CursorError> {
        self.inner.status(key).await
    }
}

/// Every alert the simulator shows now (one page of up to 1000), with the Prefer header.
pub async fn fetch_alerts(sim: &Simulator) -> Vec<serde_json::Value> {
    fetch_json(sim, "/v1.0/security/alerts_v2?$top=1000").await
}

/// An HTTP client that trusts the simulator, and a Graph token of the default app.
pub async fn graph_client(sim: &Simulator) -> (reqwest::Client, String) {
    client_for(sim, "https://graph.microsoft.com/.default").await
}

/// An HTTP client that trusts the simulator, and the default app's token for `scope`.
pub async fn client_for(sim: &Simulator, scope: &str) -> (reqwest::Client, String) {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let http =
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).unwrap()]).build().unwrap();
    let tok: serde_json::Value = http
        .post(sim.token_url(TENANT))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_owned();
    (http, token)
}

/// The first page of a Graph collection at `path` (with its query), as the default app sees it,
/// read as ground truth: the scenario's unfriendly shaping (cut pages, reordered ties, a first
/// 429, latency) is off for this one read and back on after it, for the product.
pub async fn fetch_json(sim: &Simulator, path: &str) -> Vec<serde_json::Value> {
    let shaped = sim.graph_spec();
    sim.set_graph_spec(tenant_sim::scenario::GraphSpec {
        default_page_size: shaped.default_page_size,
        incidents_max_top: shaped.incidents_max_top,
        ..tenant_sim::scenario::GraphSpec::friendly()
    });
    let page = read_page(sim, path).await;
    sim.set_graph_spec(shaped);
    page
}

async fn read_page(sim: &Simulator, path: &str) -> Vec<serde_json::Value> {
    let (http, token) = graph_client(sim).await;
    let body: serde_json::Value = http
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(token)
        .header("Prefer", "include-unknown-enum-members")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["value"].as_array().unwrap().clone()
}
