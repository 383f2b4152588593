//! Many integrations in one deployment: each tenant with its own credentials, cursors and
//! interval; one pass polls those due; a failing one does not hold up the others.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryCursorStore, StaticSecretSource};
use m365_ingest::app::polling::poll::{Outcome, Poller};
use m365_ingest::domain::envelope::Envelope;
use m365_ingest::domain::integration::{Credential, Credentials, Integration};
use m365_ingest::ports::PollWith;
use m365_ingest::secret::Secret;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::Source;
use support::*;
use tenant_sim::scenario::{TenantSpec, DEFAULT_CLIENT_ID};
use tenant_sim::{Scenario, Simulator};

const FABRIKAM: &str = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c";

#[tokio::test]
async fn each_tenant_is_polled_on_its_own_interval_with_its_own_cursor() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let mut s = fixed(Scenario::default());
    s.tenants[0].alerts.count = 60;
    s.tenants.push(TenantSpec { id: FABRIKAM.into(), domain: "fabrikam.onmicrosoft.com".into(), ..TenantSpec::default() });
    s.tenants[1].alerts.count = 40;
    let sim = Arc::new(Simulator::start(s).await.unwrap());
    let queue = Arc::new(MemoryAlertQueue::new());
    let dir = tempfile::tempdir().unwrap();
    let fabrikam_creds = Credentials { tenant_id: FABRIKAM.into(), ..secret_creds() };
    let wrong = Credentials { credential: Credential::ClientSecret(Secret::new("revoked")), ..secret_creds() };
    let poller = Poller::<PollWith<_, _, _, _, _, _>> {
        graph: MicrosoftHttp::new(&HttpSettings::simulator(sim.base_url(), sim.ca_pem()), RetryPolicy::quick()).unwrap(),
        cursors: Arc::new(MemoryCursorStore::new()),
        queue: queue.clone(),
        artifacts: DirArtifactStore::new(dir.path().to_owned()),
        secrets: StaticSecretSource::new().with("contoso", secret_creds()).with("fabrikam", fabrikam_creds).with("broken", wrong),
        clock: SimTime(sim.clone()),
        settings: PollSettings::default(),
    };
    let with = |id: &str, tenant: &str, secret: &str, interval_secs: u64| {
        let mut i = Integration::new(id, tenant, DEFAULT_CLIENT_ID, secret);
        i.window = window();
        i.poll_interval = Duration::from_secs(interval_secs);
        i
    };
    let mut cloud = with("fabrikam-cloud", FABRIKAM, "fabrikam", 0);
    cloud.defender_mode = m365_ingest::domain::integration::DefenderMode::Off;
    cloud.cloud_apps = true;
    cloud.cloud_apps_base = Some(PORTAL.into());
    let all = vec![
        with("contoso", TENANT, "contoso", 60),
        with("fabrikam", FABRIKAM, "fabrikam", 3600),
        with("broken", TENANT, "broken", 60),
        cloud,
    ];
    let deadline = || Instant::now() + Duration::from_secs(120);
    let outcomes = |runs: Vec<m365_ingest::app::polling::poll::RunSummary>| -> BTreeMap<String, Outcome> {
        runs.into_iter().map(|r| (r.integration_id, r.outcome)).collect()
    };

    let first = outcomes(poller.poll_all(Source::DefenderAlerts, &all, deadline()).await);
    assert_eq!(first.len(), 3, "cloud-apps-only integrations are not polled for alerts: {first:?}");
    assert_eq!(first["contoso"], Outcome::Completed);
    assert_eq!(first["fabrikam"], Outcome::Completed);
    assert!(matches!(&first["broken"], Outcome::Failed { error, .. } if error.contains("AADSTS7000215")), "{first:?}");
    let by_integration = |q: &MemoryAlertQueue| -> BTreeMap<String, BTreeSet<String>> {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for e in q.messages().iter().map(|m| serde_json::from_str::<Envelope>(m).unwrap()) {
            m.entry(format!("{}@{}", e.integration_id, e.tenant_id)).or_default().insert(e.id);
        }
        m
    };
    let delivered = by_integration(&queue);
    assert_eq!(delivered.keys().cloned().collect::<Vec<_>>(), [format!("contoso@{TENANT}"), format!("fabrikam@{FABRIKAM}")]);
    let contoso_truth: BTreeSet<String> = sim.visible_alert_versions(TENANT).into_iter().map(|(id, _)| id).collect();
    assert!(delivered[&format!("contoso@{TENANT}")].is_subset(&contoso_truth), "each tenant's alerts under its own integration");

    let cloud_runs = outcomes(poller.poll_all(Source::CloudApps, &all, deadline()).await);
    assert_eq!(cloud_runs.keys().cloned().collect::<Vec<_>>(), ["fabrikam-cloud"]);
    assert_eq!(cloud_runs["fabrikam-cloud"], Outcome::Completed);

    sim.clock().advance_secs(120);
    let second = outcomes(poller.poll_all(Source::DefenderAlerts, &all, deadline()).await);
    assert_eq!(second["contoso"], Outcome::Completed, "its 1-minute interval has passed");
    assert_eq!(second["fabrikam"], Outcome::Skipped { reason: "not due yet".into() }, "its hour has not");
}
