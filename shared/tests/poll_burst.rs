//! The worst burst a tenant makes inside one overlap (a bulk close of thousands of alerts)
//! against the real DynamoDB item limit (moto enforces 400 KB): the run completes, the cursor
//! fits, and the next run delivers only what is new.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use m365_ingest::adapters::aws::DynamoCursorStore;
use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, StaticSecretSource};
use m365_ingest::app::polling::poll::{Outcome, Poller};
use m365_ingest::domain::envelope::Envelope;
use m365_ingest::ports::PollWith;
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::{GraphTime, Source};
use support::*;
use tenant_sim::{Scenario, Simulator};

const BURST: usize = 8_000;

#[tokio::test]
async fn an_8k_version_burst_inside_one_overlap_fits_the_cursor_and_is_not_repeated() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    // Friendly: this measures the fewest requests a burst takes with whole pages (under the
    // default's 37-item pages a burst takes many more: the closing note of issue 29).
    let mut s = fixed(Scenario::friendly());
    s.tenants[0].alerts.count = 20;
    s.tenants[0].alerts.incidents = 5;
    s.tenants[0].alerts.from = "-6h".into();
    s.tenants[0].alerts.to = "-5h".into();
    let sim = Arc::new(Simulator::start(s).await.unwrap());
    // 8,000 alerts, 20 per second over 400 s: all inside one 15-minute overlap.
    for _ in 0..BURST / 20 {
        sim.raise_alerts(TENANT, 20, 0);
        sim.clock().advance_secs(1);
    }
    sim.clock().advance_secs(window().ingestion_delay.as_secs() as i64 + 1);

    let stack = moto::stack().await;
    let table = stack.state_table().await;
    let aws = stack.clients(moto::Principal::Poller);
    let queue = Arc::new(MemoryAlertQueue::new());
    let dir = tempfile::tempdir().unwrap();
    let poller = Poller::<PollWith<_, _, _, _, _, _>> {
        graph: MicrosoftHttp::new(&HttpSettings::simulator(sim.base_url(), sim.ca_pem()), RetryPolicy::quick()).unwrap(),
        cursors: DynamoCursorStore::new(aws.dynamodb.clone(), &table),
        queue: queue.clone(),
        artifacts: DirArtifactStore::new(dir.path().to_owned()),
        secrets: StaticSecretSource::new().with("contoso-secret", secret_creds()),
        clock: SimTime(sim.clone()),
        settings: PollSettings::default(),
    };
    let contoso = integration();
    let poll = || poller.poll_one(&contoso, Source::DefenderAlerts, Instant::now() + Duration::from_secs(600));
    let first = poll().await;
    assert_eq!(first.outcome, Outcome::Completed, "{first:?}");
    assert!(first.delivered >= BURST, "{first:?}");
    // ⌈8,020 / 1,000⌉ = 9 requests at the least; splitting by time costs a few more.
    assert!(first.pages <= 16, "requests: {first:?}");

    // The cursor item holds every burst id's hash, under DynamoDB's limit.
    let item = aws
        .dynamodb
        .get_item()
        .table_name(&table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("integration#contoso".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("cursor#defender_alerts".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let stored = item["cursor"].as_s().unwrap();
    assert!(stored.len() < 300_000, "{} bytes", stored.len());
    assert!(stored.len() > BURST * 16, "every burst version is remembered: {} bytes", stored.len());

    sim.clock().advance_secs(120);
    let fresh: BTreeSet<String> = sim.raise_alerts(TENANT, 5, 0).into_iter().collect();
    sim.clock().advance_secs(window().ingestion_delay.as_secs() as i64 + 1);
    let before = queue.len();
    let second = poll().await;
    assert_eq!(second.outcome, Outcome::Completed, "{second:?}");
    assert!(second.suppressed >= BURST - 100, "the overlap re-read the burst and skipped it: {second:?}");
    let all: Vec<(String, GraphTime)> =
        queue.messages().iter().map(|m| serde_json::from_str::<Envelope>(m).unwrap()).map(|e| (e.id, e.version)).collect();
    let new: BTreeSet<String> = all[before..].iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(new, fresh, "only the new alerts");
    let mut seen = HashMap::new();
    for v in &all {
        *seen.entry(v.clone()).or_insert(0) += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "no version delivered twice");
}
