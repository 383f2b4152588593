//! `poll-bench --budget`: a Cloud Apps backlog drained by several pollers of one tenant at once
//! (integrations of one tenant, each on its own instance), once with each instance pacing only
//! itself and once with the deployment's shared budget in DynamoDB (moto). The simulator holds
//! the tenant to Microsoft's limit (30 requests a minute, time scaled 20×: 30 per 3 s) and
//! answers 429 beyond it. Reports drain time against the budget-limited minimum (the requests
//! the drain needed under a sliding window: the first 30 at once, then 30 a window) and the
//! 429s, every variant in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use m365_ingest::adapters::aws::{create_state_table, load_sdk_config, AwsClients, DynamoBudget};
use m365_ingest::adapters::graph::pacing::LocalBudget;
use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryCursorStore, StaticSecretSource};
use m365_ingest::app::polling::poll::{Outcome, Poller};
use m365_ingest::domain::integration::{Credential, Credentials, DefenderMode, Integration};
use m365_ingest::ports::{Clock, PollWith, RequestBudget};
use m365_ingest::secret::Secret;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::GraphTime;
use tenant_sim::scenario::{CloudAppsSpec, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
use tenant_sim::{Scenario, Simulator};

const POLLERS: usize = 4;
const ALERTS: usize = 15_000;
/// The simulator's window, 20× shorter than Microsoft's minute.
const WINDOW: Duration = Duration::from_secs(3);
const LIMIT: usize = 30;

struct SimClock(Arc<Simulator>);
impl Clock for SimClock {
    fn now(&self) -> GraphTime {
        GraphTime::from_ticks(self.0.clock().now().0)
    }
}

struct Drain {
    seconds: f64,
    requests: usize,
    throttled: usize,
    failed_runs: usize,
}

async fn drain(shared: Option<Arc<dyn RequestBudget>>) -> Result<Drain, String> {
    let mut scenario = Scenario::default();
    scenario.tenants[0].alerts.count = 1;
    scenario.tenants[0].cloud_apps.count = ALERTS;
    scenario.cloud_apps = CloudAppsSpec { requests_per_window: LIMIT, window_secs: WINDOW.as_secs(), ..CloudAppsSpec::default() };
    let sim = Arc::new(Simulator::start(scenario).await.map_err(|e| e.to_string())?);
    let http = HttpSettings { cloud_apps_rate: (LIMIT, WINDOW), ..HttpSettings::simulator(sim.base_url(), sim.ca_pem()) };
    let creds = Credentials {
        tenant_id: DEFAULT_TENANT_ID.into(),
        client_id: DEFAULT_CLIENT_ID.into(),
        credential: Credential::ClientSecret(Secret::new(DEFAULT_CLIENT_SECRET)),
    };
    let dir = std::env::temp_dir().join(format!("budget-bench-{}", std::process::id()));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..POLLERS {
        // Each poller is its own instance: its own HTTP client, token cache and local pacing.
        let mut graph = MicrosoftHttp::new(&http, RetryPolicy::default()).map_err(|e| e.to_string())?;
        if let Some(b) = &shared {
            graph = graph.with_budget(b.clone());
        }
        let poller: Poller<PollWith<_, _, _, _, _, _>> = Poller {
            graph,
            cursors: MemoryCursorStore::new(),
            queue: MemoryAlertQueue::new().without_retention(),
            artifacts: DirArtifactStore::new(dir.join(n.to_string())),
            secrets: StaticSecretSource::new().with("s", creds.clone()),
            clock: SimClock(sim.clone()),
            settings: PollSettings::default(),
        };
        let mut i = Integration::new(&format!("tenant-integration-{n}"), DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID, "s");
        i.defender_mode = DefenderMode::Off;
        i.cloud_apps = true;
        i.cloud_apps_base = Some("https://contoso.us2.portal.cloudappsecurity.com".into());
        i.poll_interval = Duration::ZERO;
        tasks.spawn(async move {
            let mut failed = 0;
            // Runs until the window is read, as jobs and their continuations would.
            for _ in 0..50 {
                let s = poller.poll_one(&i, m365_ingest::Source::CloudApps, Instant::now() + Duration::from_secs(120)).await;
                match s.outcome {
                    Outcome::Completed => return Ok(failed),
                    Outcome::Failed { .. } => failed += 1,
                    _ => {}
                }
            }
            Err(format!("{} did not finish", i.id))
        });
    }
    let mut failed_runs = 0;
    while let Some(r) = tasks.join_next().await {
        failed_runs += r.map_err(|e| e.to_string())??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let log = sim.requests().matching("/api/v1/alerts/");
    Ok(Drain { seconds, requests: log.len(), throttled: log.iter().filter(|r| r.status == 429).count(), failed_runs })
}

pub async fn run() -> Result<(), String> {
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").map_err(|_| "--budget needs moto: AWS_ENDPOINT_URL (infra/scripts/moto.sh start)".to_owned())?;
    if !endpoint.starts_with("http://127.0.0.1:") {
        return Err(format!("--budget runs against moto on loopback only, not {endpoint}"));
    }
    let clients = AwsClients::new(&load_sdk_config().await);
    let table = format!("budget-bench-{}", std::process::id());
    create_state_table(&clients.dynamodb, &table).await.map_err(|e| e.to_string())?;
    println!("{POLLERS} pollers of one tenant drain {ALERTS} Cloud Apps alerts each; limit {LIMIT} requests per {} s (Microsoft's minute, scaled)", WINDOW.as_secs());
    for (name, budget) in [
        ("each instance paces itself", None),
        ("shared budget (DynamoDB)", Some(Arc::new(DynamoBudget::new(clients.dynamodb.clone(), &table)) as Arc<dyn RequestBudget>)),
        ("one local budget (floor: one process, no store)", Some(Arc::new(LocalBudget::default()) as Arc<dyn RequestBudget>)),
    ] {
        let d = drain(budget).await?;
        let needed = d.requests - d.throttled;
        let minimum = needed.saturating_sub(LIMIT) as f64 / LIMIT as f64 * WINDOW.as_secs_f64();
        println!(
            "  {name:<48} {:>6.1} s for {needed} requests (minimum {minimum:.1} s): {:.2}x; 429s {}, failed runs {}",
            d.seconds,
            d.seconds / minimum,
            d.throttled,
            d.failed_runs
        );
    }
    Ok(())
}
