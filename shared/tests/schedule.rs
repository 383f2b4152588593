//! The schedule's contract on both stores: due pairs oldest first by a query (the sparse index
//! on moto), reservation by one dispatcher only, removal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use m365_ingest::adapters::aws::DynamoSchedule;
use m365_ingest::adapters::local::MemorySchedule;
use m365_ingest::domain::integration::revision::Provenance;
use m365_ingest::ports::{CursorKey, DueEntry, ScheduleStore};
use m365_ingest::{GraphTime, Source};
use support::moto;

fn t(s: i64) -> GraphTime {
    GraphTime::from_unix_seconds(1_800_000_000 + s)
}

fn k(id: &str, source: Source) -> CursorKey {
    CursorKey::live(id, source)
}

/// `writer` sets and removes entries as the poller and Test & Save do; `dispatcher` finds and
/// reserves them as the dispatch function does (on AWS, each under its own role).
async fn contract(writer: &impl ScheduleStore, dispatcher: &impl ScheduleStore) {
    // 40 integrations spread over every shard, due one second apart, newest first in write order.
    for i in (0..40).rev() {
        writer.set(&k(&format!("i{i:02}"), Source::DefenderAlerts), t(i)).await.unwrap();
    }
    writer.set(&k("i00", Source::CloudApps), t(0)).await.unwrap();
    let due = dispatcher.due(Source::DefenderAlerts, t(9), 100).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|e| e.key.integration_id.as_str()).collect();
    assert_eq!(ids, (0..10).map(|i| format!("i{i:02}")).collect::<Vec<_>>(), "due ones only, oldest first, this source only");
    assert_eq!(dispatcher.due(Source::DefenderAlerts, t(39), 5).await.unwrap().len(), 5, "limit");

    let first = due[0].clone();
    assert!(dispatcher.reserve(&first, t(100)).await.unwrap());
    assert!(!dispatcher.reserve(&first, t(200)).await.unwrap(), "a second dispatcher does not get it");
    let again = dispatcher.due(Source::DefenderAlerts, t(9), 100).await.unwrap();
    assert!(!again.iter().any(|e| e.key == first.key), "a reserved pair is not due until its guard ends");
    assert_eq!(
        dispatcher.due(Source::DefenderAlerts, t(100), 100).await.unwrap().iter().find(|e| e.key == first.key),
        Some(&DueEntry { key: first.key.clone(), at: t(100) })
    );
    writer.remove(&first.key).await.unwrap();
    writer.remove(&first.key).await.unwrap();
    assert!(!dispatcher.due(Source::DefenderAlerts, t(1_000), 100).await.unwrap().iter().any(|e| e.key == first.key));
}

#[tokio::test]
async fn both_schedules_keep_the_contract() {
    let memory = MemorySchedule::new();
    contract(&memory, &memory).await;
    let stack = moto::stack().await;
    let table = stack.state_table().await;
    let poller = stack.clients(moto::Principal::Poller);
    let dispatch = stack.clients(moto::Principal::Dispatch);
    contract(&DynamoSchedule::new(poller.dynamodb.clone(), &table), &DynamoSchedule::new(dispatch.dynamodb.clone(), &table)).await;
}

#[tokio::test]
async fn saving_an_integration_schedules_what_it_polls_and_nothing_else() {
    use m365_ingest::adapters::aws::DynamoIntegrations;
    use m365_ingest::domain::integration::doc::IntegrationDoc;
    use m365_ingest::ports::IntegrationStore;
    let stack = moto::stack().await;
    let table = stack.state_table().await;
    // Saved by Test & Save, found by the dispatcher, each under its role.
    let store = DynamoIntegrations::new(stack.clients(moto::Principal::Check).dynamodb.clone(), &table);
    let schedule = DynamoSchedule::new(stack.clients(moto::Principal::Dispatch).dynamodb.clone(), &table);
    let mut doc = IntegrationDoc::new("contoso", support::TENANT, tenant_sim::scenario::DEFAULT_CLIENT_ID, "s");
    let r1 = store.save(&doc, None, t(0), &Provenance::default()).await.unwrap();
    let due = |at| {
        let schedule = schedule.clone();
        async move {
            let mut all = Vec::new();
            for s in Source::ALL {
                all.extend(schedule.due(s, at, 10).await.unwrap().into_iter().map(|e| e.key.source));
            }
            all
        }
    };
    assert_eq!(due(t(0)).await, vec![Source::DefenderAlerts], "the default document polls Defender alerts, due at once");
    assert!(store.save(&doc, None, t(1), &Provenance::default()).await.is_err(), "a second create conflicts");
    doc.enabled = false;
    store.save(&doc, Some(r1), t(5), &Provenance::default()).await.unwrap();
    assert!(due(t(10)).await.is_empty(), "a disabled integration has no schedule");
    doc.enabled = true;
    store.save(&doc, Some(r1 + 1), t(20), &Provenance::default()).await.unwrap();
    assert_eq!(due(t(20)).await, vec![Source::DefenderAlerts]);
    store.remove("contoso").await.unwrap();
    assert!(due(t(30)).await.is_empty(), "removed with the integration");
}
