//! The same contract suites against the local adapters and against the AWS adapters on
//! moto's server, so the local ones stay faithful stand-ins; and the poll end to end on AWS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use m365_ingest::adapters::aws::{DynamoCursorStore, DynamoIntegrations, S3ArtifactStore, SecretsManagerSource, SqsAlertQueue};
use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::adapters::local::{MemoryAlertQueue, MemoryCursorStore, MemoryIntegrationStore};
use m365_ingest::app::polling::poll::{Outcome, Poller};
use m365_ingest::domain::duration_text::DurationText;
use m365_ingest::domain::envelope::Envelope;
use m365_ingest::domain::integration::doc::IntegrationDoc;
use m365_ingest::domain::integration::revision::Provenance;
use m365_ingest::domain::polling::cursor::Cursor;
use m365_ingest::error::{CursorError, SecretError};
use m365_ingest::ports::{
    AlertQueue, ArtifactStore, CursorKey, CursorStore, IntegrationSource, IntegrationStore, PollWith, QueueEntry, SecretSource,
    SecretWriter,
};
use m365_ingest::sources::settings::PollSettings;
use m365_ingest::{GraphTime, Source};
use support::moto;
use support::*;
use tenant_sim::scenario::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use tenant_sim::{Scenario, Simulator};

fn t(s: i64) -> GraphTime {
    GraphTime::from_unix_seconds(1_800_000_000 + s)
}

/// The CursorStore contract (ports.rs), for any implementation.
async fn cursor_store_contract(store: &impl CursorStore, integration: &str) {
    let key = CursorKey::live(integration, Source::DefenderAlerts);
    let other = CursorKey::live(integration, Source::DefenderIncidents);
    // A fresh cursor is empty, at version 0, never run.
    let l = store.acquire(&key, "a", t(0), t(60)).await.unwrap();
    assert_eq!((l.cursor, l.version, l.last_run), (Cursor::default(), 0, None));
    // Held: another owner is refused until expiry; the holder may re-acquire.
    assert!(matches!(store.acquire(&key, "b", t(30), t(90)).await, Err(CursorError::LeaseHeld { .. })));
    assert!(store.acquire(&key, "a", t(30), t(90)).await.is_ok());
    // The other source of the same integration is independent.
    assert!(store.acquire(&other, "b", t(30), t(90)).await.is_ok());
    // Commit is conditional on the lease and the version.
    let mut c = Cursor::default();
    c.record("x", t(5));
    c.advance(t(10), Duration::from_secs(600), 100);
    assert_eq!(store.commit(&key, "a", 0, &c).await.unwrap(), 1);
    assert!(matches!(store.commit(&key, "a", 0, &c).await, Err(CursorError::LeaseLost { .. })), "stale version");
    assert!(matches!(store.commit(&key, "b", 1, &c).await, Err(CursorError::LeaseLost { .. })), "not the holder");
    // Release records the run and is idempotent; releasing someone else's lease does nothing.
    let ran = |at: i64, outcome: &str| m365_ingest::ports::Ran { at: t(at), outcome: outcome.into() };
    store.release(&key, "b", Some(&ran(99, "completed"))).await.unwrap();
    assert!(matches!(store.acquire(&key, "b", t(40), t(100)).await, Err(CursorError::LeaseHeld { .. })));
    assert!(store.status(&key).await.unwrap().unwrap().leased_until.is_some(), "an operator sees the lease");
    store.release(&key, "a", Some(&ran(50, "partial: request cap of 500 reached"))).await.unwrap();
    store.release(&key, "a", Some(&ran(51, "completed"))).await.unwrap();
    let status = store.status(&key).await.unwrap().unwrap();
    assert_eq!(
        (status.watermark, status.last_run, status.last_outcome.as_deref(), status.leased_until),
        (Some(t(10)), Some(t(50)), Some("partial: request cap of 500 reached"), None)
    );
    assert_eq!(store.status(&CursorKey::live("never-polled", Source::DefenderAlerts)).await.unwrap(), None);
    // A backfill's cursor is its own: its lease and commits never touch the live one.
    let backfill = CursorKey::backfill(integration, Source::DefenderAlerts, t(0), t(5));
    assert_eq!(store.acquire(&backfill, "z", t(55), t(56)).await.unwrap().version, 0);
    let l = store.acquire(&key, "b", t(60), t(120)).await.unwrap();
    assert_eq!((l.cursor, l.version, l.last_run), (c.clone(), 1, Some(t(50))));
    // An expired lease can be taken over, and then the old holder cannot commit.
    let l = store.acquire(&key, "c", t(121), t(200)).await.unwrap();
    assert!(matches!(store.commit(&key, "b", l.version, &c).await, Err(CursorError::LeaseLost { .. })));
    assert_eq!(store.commit(&key, "c", l.version, &c).await.unwrap(), 2);
    // Release without a run time keeps the last one.
    store.release(&key, "c", None).await.unwrap();
    assert_eq!(store.acquire(&key, "d", t(300), t(400)).await.unwrap().last_run, Some(t(50)));
}

async fn queue_contract(queue: &impl AlertQueue) {
    let entries: Vec<QueueEntry> = (0..10).map(|i| QueueEntry { id: i.to_string(), body: format!("{{\"n\":{i}}}") }).collect();
    assert!(queue.send_batch(&entries).await.unwrap().failed.is_empty());
    let eleven: Vec<QueueEntry> = (0..11).map(|i| QueueEntry { id: i.to_string(), body: "{}".into() }).collect();
    assert!(queue.send_batch(&eleven).await.is_err(), "SendMessageBatch takes at most 10 entries");
}

/// The ArtifactStore contract: `put` returns a reference whose size and sha256 describe the
/// bytes, and putting the same key again is harmless. `read` fetches what was stored.
async fn artifact_store_contract<F, Fut>(store: &impl ArtifactStore, read: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Vec<u8>>,
{
    let bytes = br#"{"id":"a","evidence":[1,2,3]}"#.to_vec();
    let r = store.put("intake/i/defender_alerts/a/1.json", bytes.clone()).await.unwrap();
    assert_eq!(r.size, bytes.len() as u64);
    assert_eq!(r.sha256, m365_ingest::adapters::local::sha256_hex(&bytes));
    assert_eq!(read(r.key.clone()).await, bytes);
    let again = store.put("intake/i/defender_alerts/a/1.json", bytes.clone()).await.unwrap();
    assert_eq!(again, r);
}

/// The SecretSource contract: a stored secret loads as credentials, a missing one is NotFound.
async fn secret_source_contract(src: &impl SecretSource, present: &str) {
    let c = src.load(present).await.unwrap();
    assert_eq!((c.tenant_id.as_str(), c.client_id.as_str()), (TENANT, DEFAULT_CLIENT_ID));
    assert!(matches!(src.load("m365-ingest/absent").await, Err(SecretError::NotFound { .. })));
}

#[tokio::test]
async fn artifact_stores_keep_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    artifact_store_contract(&m365_ingest::adapters::local::DirArtifactStore::new(root.clone()), |k| {
        let p = root.join(k);
        async move { std::fs::read(p).unwrap() }
    })
    .await;
    let stack = moto::stack().await;
    let c = stack.admin.clone();
    let role = stack.clients(moto::Principal::Poller);
    let bucket = stack.bucket().await;
    let s3 = c.s3.clone();
    let b = bucket.clone();
    artifact_store_contract(&S3ArtifactStore::new(role.s3.clone(), &bucket), move |k| {
        let (s3, b) = (s3.clone(), b.clone());
        async move { s3.get_object().bucket(b).key(k).send().await.unwrap().body.collect().await.unwrap().into_bytes().to_vec() }
    })
    .await;
}

#[tokio::test]
async fn secret_sources_keep_the_contract() {
    secret_source_contract(
        &m365_ingest::adapters::local::StaticSecretSource::new().with("m365-ingest/here", secret_creds()),
        "m365-ingest/here",
    )
    .await;
    let stack = moto::stack().await;
    let c = stack.admin.clone();
    let role = stack.clients(moto::Principal::Poller);
    let name = moto::unique("m365-ingest/here");
    c.secrets
        .create_secret()
        .name(&name)
        .secret_string(format!(r#"{{"tenant_id":"{TENANT}","client_id":"{DEFAULT_CLIENT_ID}","client_secret":"{DEFAULT_CLIENT_SECRET}"}}"#))
        .send()
        .await
        .unwrap();
    secret_source_contract(&SecretsManagerSource::new(role.secrets.clone()), &name).await;
}

#[tokio::test]
async fn memory_cursor_store_keeps_the_contract() {
    cursor_store_contract(&MemoryCursorStore::new(), "mem").await;
}

#[tokio::test]
async fn dynamodb_cursor_store_keeps_the_contract() {
    let stack = moto::stack().await;
    let role = stack.clients(moto::Principal::Poller);
    let table = stack.state_table().await;
    cursor_store_contract(&DynamoCursorStore::new(role.dynamodb.clone(), &table), "ddb").await;
}

#[tokio::test]
async fn queues_keep_the_contract() {
    queue_contract(&MemoryAlertQueue::new()).await;
    let stack = moto::stack().await;
    let c = stack.admin.clone();
    let role = stack.clients(moto::Principal::Poller);
    let url = stack.queue("IntakeQueue").await;
    queue_contract(&SqsAlertQueue::new(role.sqs.clone(), &url)).await;
    let got = moto::drain(&c, &url).await;
    assert_eq!(got.len(), 10);
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 10);
}

#[tokio::test]
async fn s3_keeps_claim_check_objects() {
    let stack = moto::stack().await;
    let c = stack.admin.clone();
    let role = stack.clients(moto::Principal::Poller);
    let bucket = stack.bucket().await;
    let store = S3ArtifactStore::new(role.s3.clone(), &bucket);
    let r = store.put("intake/x/defender_alerts/a/1.json", b"{\"id\":\"a\"}".to_vec()).await.unwrap();
    assert_eq!((r.bucket.as_str(), r.size), (bucket.as_str(), 10));
    let got = c.s3.get_object().bucket(&bucket).key(&r.key).send().await.unwrap().body.collect().await.unwrap().into_bytes();
    assert_eq!(&got[..], b"{\"id\":\"a\"}");
}

#[tokio::test]
async fn secrets_manager_reads_credentials_and_says_what_is_wrong() {
    let stack = moto::stack().await;
    let c = stack.admin.clone();
    let role = stack.clients(moto::Principal::Poller);
    let good = moto::unique("m365-ingest/good");
    c.secrets
        .create_secret()
        .name(&good)
        .secret_string(format!(r#"{{"tenant_id":"{TENANT}","client_id":"{DEFAULT_CLIENT_ID}","client_secret":"{DEFAULT_CLIENT_SECRET}"}}"#))
        .send()
        .await
        .unwrap();
    let bad = moto::unique("m365-ingest/bad");
    c.secrets.create_secret().name(&bad).secret_string(r#"{"tenant_id":"t","client_id":"c","clientsecret":"oops"}"#).send().await.unwrap();
    let src = SecretsManagerSource::new(role.secrets.clone());
    let creds = src.load(&good).await.unwrap();
    assert_eq!(creds.client_id, DEFAULT_CLIENT_ID);
    assert!(!format!("{creds:?}").contains(DEFAULT_CLIENT_SECRET));
    let e = src.load(&bad).await.unwrap_err();
    assert!(matches!(&e, SecretError::Invalid { problem, .. } if problem.contains("clientsecret")), "{e}");
    assert!(!e.to_string().contains("oops"));
    assert!(matches!(src.load(&moto::unique("m365-ingest/absent")).await, Err(SecretError::NotFound { .. })));
    // Outside the stack's SecretPrefix IAM refuses the read before Secrets Manager looks: said so.
    stack.gate.expect_denials().await.unwrap();
    let e = src.load("elsewhere/no-such-secret").await.unwrap_err();
    assert!(matches!(&e, SecretError::Store { retryable: false, detail } if detail.contains("SecretPrefix")), "{e}");
}

/// The IntegrationStore and SecretWriter contracts (ports.rs), for any implementation.
async fn integration_store_contract(store: &(impl IntegrationStore + IntegrationSource), suffix: &str) {
    let a = IntegrationDoc::new(&format!("a-{suffix}"), TENANT, DEFAULT_CLIENT_ID, "s");
    let b = IntegrationDoc::new(&format!("b-{suffix}"), TENANT, DEFAULT_CLIENT_ID, "s");
    assert_eq!(store.get(&a.id).await.unwrap(), None);
    assert_eq!(store.save(&a, None, t(0), &Provenance::default()).await.unwrap(), 1);
    assert!(
        matches!(store.save(&a, None, t(1), &Provenance::default()).await, Err(CursorError::Conflict { .. })),
        "create refuses an existing id"
    );
    assert_eq!(store.save(&b, None, t(1), &Provenance::default()).await.unwrap(), 1);
    let mut changed = a.clone();
    changed.enabled = false;
    assert!(
        matches!(store.save(&changed, Some(7), t(2), &Provenance::default()).await, Err(CursorError::Conflict { .. })),
        "stale revision"
    );
    assert_eq!(store.save(&changed, Some(1), t(2), &Provenance::default()).await.unwrap(), 2);
    let rec = store.get(&a.id).await.unwrap().unwrap();
    assert_eq!((rec.revision, rec.saved_at, rec.doc.enabled), (2, t(2), false));
    let ids: Vec<String> = store.list().await.unwrap().into_iter().map(|r| r.doc.id).filter(|i| i.ends_with(suffix)).collect();
    assert_eq!(ids, [a.id.clone(), b.id.clone()]);
    assert!(store.integrations().await.unwrap().iter().any(|i| i.id == a.id && !i.enabled));
    assert!(store.remove(&a.id).await.unwrap());
    assert!(!store.remove(&a.id).await.unwrap(), "a second remove finds nothing");
    assert_eq!(store.get(&a.id).await.unwrap(), None);
    assert!(store.get(&b.id).await.unwrap().is_some(), "the other integration is untouched");
}

#[tokio::test]
async fn integration_stores_keep_the_contract() {
    integration_store_contract(&MemoryIntegrationStore::new(), "mem").await;
    let stack = moto::stack().await;
    let role = stack.clients(moto::Principal::Operator);
    let table = stack.state_table().await;
    integration_store_contract(&DynamoIntegrations::new(role.dynamodb.clone(), &table), "ddb").await;
}

/// Every item of a table, in key order.
async fn all_items(c: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Vec<(String, aws_sdk_dynamodb::types::AttributeValue)>> {
    let items = c.scan().table_name(table).send().await.unwrap().items.unwrap_or_default();
    let mut out: Vec<Vec<(String, aws_sdk_dynamodb::types::AttributeValue)>> = items
        .into_iter()
        .map(|i| {
            let mut kv: Vec<_> = i.into_iter().collect();
            kv.sort_by(|a, b| a.0.cmp(&b.0));
            kv
        })
        .collect();
    out.sort_by_key(|kv| format!("{kv:?}"));
    out
}

/// A save that loses its condition changes nothing, though its other writes (the revision's
/// history, the schedule's entries, the old secret's entry) come before or after the one that
/// failed: DynamoDB's transactions are all or nothing, and the gate's per-item rollback for moto
/// (infra/aws-gate/moto_transactions.py, which replaced moto's copy of whole tables) keeps them so.
#[tokio::test]
async fn a_cancelled_save_leaves_every_item_as_it_was() {
    let stack = moto::stack().await;
    let role = stack.clients(moto::Principal::Operator);
    let table = stack.state_table().await;
    let store = DynamoIntegrations::new(role.dynamodb.clone(), &table);
    let a = IntegrationDoc::new("cancelled", TENANT, DEFAULT_CLIENT_ID, "s");
    store.save(&a, None, t(0), &Provenance::default()).await.unwrap();
    let before = all_items(&stack.admin.dynamodb, &table).await;
    assert!(before.len() >= 3, "the record, its history, its secret's entry and schedule: {before:?}");
    let mut changed = a.clone();
    changed.enabled = false;
    changed.secret_ref = "another".into();
    for expected in [None, Some(7)] {
        let got = store.save(&changed, expected, t(1), &Provenance::default()).await;
        assert!(matches!(got, Err(CursorError::Conflict { .. })), "{got:?}");
        assert_eq!(all_items(&stack.admin.dynamodb, &table).await, before, "after a cancelled save expecting {expected:?}");
    }
}

#[tokio::test]
async fn removing_an_integration_in_dynamodb_deletes_its_cursors_and_no_one_elses() {
    let stack = moto::stack().await;
    let role = stack.clients(moto::Principal::Operator);
    let table = stack.state_table().await;
    let store = DynamoIntegrations::new(role.dynamodb.clone(), &table);
    let cursors = DynamoCursorStore::new(role.dynamodb.clone(), &table);
    for id in ["contoso", "fabrikam"] {
        store.save(&IntegrationDoc::new(id, TENANT, DEFAULT_CLIENT_ID, "s"), None, t(0), &Provenance::default()).await.unwrap();
        for source in Source::ALL {
            let key = CursorKey::live(id, source);
            let l = cursors.acquire(&key, "poller", t(0), t(60)).await.unwrap();
            let cursor = Cursor::at(t(5));
            cursors.commit(&key, "poller", l.version, &cursor).await.unwrap();
            cursors.release(&key, "poller", Some(&m365_ingest::ports::Ran { at: t(5), outcome: "completed".into() })).await.unwrap();
        }
    }
    assert!(store.remove("contoso").await.unwrap());
    for source in Source::ALL {
        let gone = cursors.acquire(&CursorKey::live("contoso", source), "x", t(100), t(160)).await.unwrap();
        assert_eq!((gone.cursor.watermark, gone.version), (None, 0), "contoso's {source} cursor is gone");
        let kept = cursors.acquire(&CursorKey::live("fabrikam", source), "x", t(100), t(160)).await.unwrap();
        assert_eq!(kept.cursor.watermark, Some(t(5)), "fabrikam's {source} cursor is kept");
    }
    assert_eq!(store.integrations().await.unwrap().iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["fabrikam"]);
}

#[tokio::test]
async fn secrets_manager_writes_credentials_that_read_back() {
    let stack = moto::stack().await;
    let role = stack.clients(moto::Principal::Operator);
    let sm = SecretsManagerSource::new(role.secrets.clone());
    let name = format!("m365-ingest/written-{}", std::process::id());
    let arn = sm.put(&name, &secret_creds()).await.unwrap();
    assert!(arn.starts_with("arn:aws:secretsmanager:"), "{arn}");
    let other = m365_ingest::domain::integration::Credentials {
        credential: m365_ingest::domain::integration::Credential::ClientSecret(m365_ingest::secret::Secret::new("second value")),
        ..secret_creds()
    };
    sm.put(&name, &other).await.unwrap();
    let back = sm.load(&name).await.unwrap();
    assert!(matches!(back.credential, m365_ingest::domain::integration::Credential::ClientSecret(ref s) if s.expose() == "second value"));
    sm.delete(&name).await.unwrap();
    assert!(sm.load(&name).await.is_err(), "scheduled for deletion: no longer readable");
    sm.delete("m365-ingest/never-existed").await.unwrap();
}

#[tokio::test]
async fn integrations_round_trip_through_dynamodb() {
    let stack = moto::stack().await;
    let role = stack.clients(moto::Principal::Operator);
    let table = stack.state_table().await;
    let store = DynamoIntegrations::new(role.dynamodb.clone(), &table);
    let mut doc = IntegrationDoc::new("contoso", TENANT, DEFAULT_CLIENT_ID, "s");
    doc.polling.overlap = DurationText(Duration::from_secs(600));
    store.put(&doc).await.unwrap();
    store.put(&IntegrationDoc { id: "fabrikam".into(), enabled: false, ..doc.clone() }).await.unwrap();
    let all = store.integrations().await.unwrap();
    assert_eq!(all.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec!["contoso", "fabrikam"]);
    assert_eq!(all[0].window.overlap, Duration::from_secs(600));
    assert!(all[0].polls(Source::DefenderAlerts) && !all[1].polls(Source::DefenderAlerts));
}

#[tokio::test]
async fn the_poll_runs_end_to_end_on_aws_adapters() {
    m365_ingest::adapters::graph::settings::install_crypto_provider();
    let mut s = fixed(Scenario::default());
    s.tenants[0].alerts.count = 120;
    s.tenants[0].alerts.big_evidence_fraction = 0.05;
    s.tenants[0].mailbox.count = 20;
    let sim = std::sync::Arc::new(Simulator::start(s).await.unwrap());
    let stack = moto::stack().await;
    let c = stack.admin.clone();
    let (table, url, bucket) = (stack.state_table().await, stack.queue("IntakeQueue").await, stack.bucket().await);
    // The poller's code under the poller's role, as deployed.
    let role = stack.clients(moto::Principal::Poller);
    let secret = moto::unique("m365-ingest/contoso");
    c.secrets
        .create_secret()
        .name(&secret)
        .secret_string(format!(r#"{{"tenant_id":"{TENANT}","client_id":"{DEFAULT_CLIENT_ID}","client_secret":"{DEFAULT_CLIENT_SECRET}"}}"#))
        .send()
        .await
        .unwrap();
    let http = HttpSettings {
        login_base_url: sim.base_url().into(),
        graph_base_url: sim.base_url().into(),
        extra_ca_pem: Some(sim.ca_pem().into()),
        // Paced at Graph's 150 a minute, as deployed: the simulator answers the limit.
        ..HttpSettings::default()
    };
    let mut settings = PollSettings { alert_page_size: 25, ..PollSettings::default() };
    settings.delivery.max_message_bytes = 200 * 1024;
    let poller = Poller::<PollWith<_, _, _, _, _, _>> {
        graph: MicrosoftHttp::new(&http, RetryPolicy::quick()).unwrap(),
        cursors: DynamoCursorStore::new(role.dynamodb.clone(), &table),
        queue: SqsAlertQueue::new(role.sqs.clone(), &url),
        artifacts: S3ArtifactStore::new(role.s3.clone(), &bucket),
        secrets: SecretsManagerSource::new(role.secrets.clone()),
        clock: SimTime(sim.clone()),
        settings,
    };
    let mut integration = integration();
    integration.secret_ref = secret;
    let cut = GraphTime::from_ticks(sim.clock().now().0).minus(window().ingestion_delay);
    let want: BTreeSet<(String, GraphTime)> =
        sim.visible_alert_versions(TENANT).into_iter().map(|(id, v)| (id, GraphTime::from_ticks(v.0))).filter(|(_, v)| *v < cut).collect();
    let summary = poller.poll_one(&integration, Source::DefenderAlerts, Instant::now() + Duration::from_secs(300)).await;
    assert_eq!(summary.outcome, Outcome::Completed, "{summary:?}");
    let msgs = moto::drain(&c, &url).await;
    let got: Vec<Envelope> = msgs.iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    assert_eq!(got.iter().map(|e| (e.id.clone(), e.version)).collect::<BTreeSet<_>>(), want);
    assert_eq!(got.len(), want.len(), "each version once");
    let refs: Vec<_> = got.iter().filter_map(|e| e.object_ref.clone()).collect();
    assert!(!refs.is_empty(), "large alerts went by claim check");
    for r in refs {
        let obj = c.s3.get_object().bucket(&r.bucket).key(&r.key).send().await.unwrap();
        assert_eq!(obj.content_length, Some(r.size as i64));
    }
    // The cursor is in DynamoDB: a second run re-reads the overlap and sends only what is new.
    sim.clock().advance_secs(60);
    let cut2 = GraphTime::from_ticks(sim.clock().now().0).minus(window().ingestion_delay);
    let want2: BTreeSet<(String, GraphTime)> =
        sim.visible_alert_versions(TENANT).into_iter().map(|(id, v)| (id, GraphTime::from_ticks(v.0))).filter(|(_, v)| *v < cut2).collect();
    sim.requests().clear();
    let again = poller.poll_one(&integration, Source::DefenderAlerts, Instant::now() + Duration::from_secs(300)).await;
    assert_eq!(again.outcome, Outcome::Completed);
    let first = sim.requests().matching("/v1.0/security/alerts_v2").into_iter().next().unwrap();
    let filter = first.query_value("$filter").unwrap().to_owned();
    assert!(
        filter.starts_with(&format!("lastUpdateDateTime ge {}", cut.minus(window().overlap))),
        "resumed from the stored watermark − overlap: {filter}"
    );
    let second: BTreeSet<(String, GraphTime)> =
        moto::drain(&c, &url).await.iter().map(|m| serde_json::from_str::<Envelope>(m).unwrap()).map(|e| (e.id, e.version)).collect();
    assert_eq!(second, want2.difference(&want).cloned().collect::<BTreeSet<_>>());
    assert_eq!(again.delivered, second.len());

    // The phishing mailbox on the same stack: each reported email is stored in the bucket
    // (`reported-email/…`), which the poller's policy must allow (it did not: every run failed).
    let mut mailbox = integration_for(Source::PhishingMailbox);
    mailbox.secret_ref = integration.secret_ref.clone();
    let reports = poller.poll_one(&mailbox, Source::PhishingMailbox, Instant::now() + Duration::from_secs(300)).await;
    assert_eq!(reports.outcome, Outcome::Completed, "{reports:?}");
    assert!(reports.delivered > 0, "{reports:?}");
    let stored = c.s3.list_objects_v2().bucket(&bucket).prefix("reported-email/").send().await.unwrap();
    assert!(stored.key_count.unwrap_or(0) > 0, "reported emails are in the bucket");
    assert_eq!(stack.denials().await, Vec::<String>::new(), "IAM allowed every call of the poller");
}

/// moto accepts what SQS refuses; the gate in front of it does not (sqs-quotas.html and the
/// SendMessage / SendMessageBatch references): characters outside SQS's set, a message over the
/// queue's maximum, a batch over 1 MiB in all, a bad entry id.
#[tokio::test]
async fn the_test_worlds_sqs_refuses_what_sqs_refuses() {
    use aws_sdk_sqs::error::ProvideErrorMetadata;
    use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
    // The SDK reads SQS's legacy code, prefixed `AWS.SimpleQueueService.` for the batch errors.
    fn code<E: ProvideErrorMetadata, R>(e: &aws_sdk_sqs::error::SdkError<E, R>) -> String {
        let c = e.as_service_error().and_then(|s| s.code()).unwrap_or_default();
        c.trim_start_matches("AWS.SimpleQueueService.").to_owned()
    }
    let stack = moto::stack().await;
    let c = stack.admin.clone();
    let url = stack.queue("OutputQueue").await;
    let entry = |id: &str, body: &str| SendMessageBatchRequestEntry::builder().id(id).message_body(body).build().unwrap();

    let e = c.sqs.send_message().queue_url(&url).message_body("bad \u{FFFF}").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidMessageContents", "{e:?}");
    let r = c.sqs.send_message_batch().queue_url(&url).entries(entry("ok", "fine")).entries(entry("bad", "\u{1}")).send().await.unwrap();
    assert_eq!(r.successful().iter().map(|s| s.id()).collect::<Vec<_>>(), vec!["ok"]);
    assert_eq!(r.failed().len(), 1);
    assert_eq!((r.failed()[0].id(), r.failed()[0].code(), r.failed()[0].sender_fault()), ("bad", "InvalidMessageContents", true));
    let e = c.sqs.send_message_batch().queue_url(&url).entries(entry("a.b", "x")).send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidBatchEntryId", "{e:?}");
    let big = "x".repeat(600 * 1024);
    let e = c.sqs.send_message_batch().queue_url(&url).entries(entry("a", &big)).entries(entry("b", &big)).send().await.unwrap_err();
    assert_eq!(code(&e), "BatchRequestTooLong", "{e:?}");
    c.sqs.set_queue_attributes().queue_url(&url).attributes(QueueAttributeName::MaximumMessageSize, "1024").send().await.unwrap();
    let e = c.sqs.send_message().queue_url(&url).message_body("y".repeat(2_000)).send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue", "{e:?}");
    assert_eq!(moto::drain(&c, &url).await, vec!["fine".to_owned()], "only what SQS accepts is on the queue");
}

/// Records saved before each was listed under its secret are found after `integration reindex`
/// (the operator's command), and only then: Test & Save finds a secret's users by key.
#[tokio::test]
async fn reindexing_lists_older_records_under_their_secrets() {
    let stack = moto::stack().await;
    let c = stack.admin.clone();
    let table = stack.state_table().await;
    let store = DynamoIntegrations::new(stack.clients(moto::Principal::Operator).dynamodb.clone(), &table);
    let a = IntegrationDoc::new("a", TENANT, DEFAULT_CLIENT_ID, "m365-ingest/shared");
    let b = IntegrationDoc::new("b", TENANT, DEFAULT_CLIENT_ID, "m365-ingest/shared");
    store.save(&a, None, t(0), &Provenance::default()).await.unwrap();
    store.save(&b, None, t(0), &Provenance::default()).await.unwrap();
    assert_eq!(store.secret_users("m365-ingest/shared").await.unwrap(), vec!["a".to_owned(), "b".to_owned()]);
    // As an older version left them: no entries.
    for id in ["a", "b"] {
        c.dynamodb
            .delete_item()
            .table_name(&table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("secret#m365-ingest/shared".into()))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(format!("integration#{id}")))
            .send()
            .await
            .unwrap();
    }
    assert!(store.secret_users("m365-ingest/shared").await.unwrap().is_empty());
    assert_eq!(store.reindex_secret_users().await.unwrap(), (2, 2));
    assert_eq!(store.secret_users("m365-ingest/shared").await.unwrap(), vec!["a".to_owned(), "b".to_owned()]);
    // Moving a record to another secret moves its entry.
    let mut moved = b.clone();
    moved.secret_ref = "m365-ingest/b".into();
    store.save(&moved, Some(1), t(1), &Provenance::default()).await.unwrap();
    assert_eq!(store.secret_users("m365-ingest/shared").await.unwrap(), vec!["a".to_owned()]);
    assert_eq!(store.secret_users("m365-ingest/b").await.unwrap(), vec!["b".to_owned()]);
    store.remove("a").await.unwrap();
    assert!(store.secret_users("m365-ingest/shared").await.unwrap().is_empty(), "removed with its record");
    assert_eq!(stack.denials().await, Vec::<String>::new());
}
