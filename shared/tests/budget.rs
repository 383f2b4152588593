//! Per-tenant request budgets: two instances sharing one budget in DynamoDB (moto) are paced
//! together at the rate; other tenants and apps are not slowed; a store that fails falls back to
//! pacing within the instance instead of failing the call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use m365_ingest::adapters::aws::DynamoBudget;
use m365_ingest::adapters::graph::pacing::LocalBudget;
use m365_ingest::domain::permissions::Api;
use m365_ingest::ports::{BudgetKey, Rate, RequestBudget};
use support::moto;

fn key(tenant: &str) -> BudgetKey {
    BudgetKey { tenant_id: tenant.into(), client_id: None, api: Api::CloudApps, scope: None }
}

const RATE: Rate = Rate { requests: 10, window: Duration::from_secs(1) };

/// Admits `n` requests for `key` through each budget, the budgets side by side and each one's
/// requests one after another (as a poller makes them); returns how long all took. A poller
/// instance asks for one request at a time: sixteen requests racing for one key's first slot
/// against moto on a loaded machine lose more conditional writes than the bound allows and
/// fall back to local pacing by design, which is not what this test is about.
async fn admit_all(budgets: &[Arc<dyn RequestBudget>], key: &BudgetKey, n: usize) -> Duration {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for b in budgets {
        let (b, key) = (b.clone(), key.clone());
        tasks.spawn(async move {
            for _ in 0..n {
                b.admit(&key, RATE).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_budget_are_paced_together() {
    let stack = moto::stack().await;
    let role = stack.clients(moto::Principal::Poller);
    let table = stack.state_table().await;
    let one: Arc<dyn RequestBudget> = Arc::new(DynamoBudget::new(role.dynamodb.clone(), &table));
    let two: Arc<dyn RequestBudget> = Arc::new(DynamoBudget::new(role.dynamodb.clone(), &table));
    // 2 × 8 requests at 10 a second: the last goes 15 intervals after the first. Unshared, all
    // 16 would go at once (each instance's local burst is 10); 12 intervals prove the sharing and
    // leave room for a slot or two that a store call slowed past its retries on a loaded machine
    // took locally (seen once in a CI run: 14 intervals).
    let took = admit_all(&[one.clone(), two.clone()], &key("contoso"), 8).await;
    let floor = Duration::from_millis(12 * RATE.interval_ms() as u64);
    assert!(took >= floor, "{took:?} < {floor:?}: the two instances must share one pace");
    // Another tenant has its own budget: its first request goes at once.
    assert!(one.admit(&key("fabrikam"), RATE).await < Duration::from_millis(50));
    // Each instance alone would have let all 16 go within the first second (burst of 10).
    let local: Arc<dyn RequestBudget> = Arc::new(LocalBudget::default());
    assert!(admit_all(&[local], &key("contoso"), 10).await < Duration::from_millis(500), "a window's worth goes at once locally");
}

#[tokio::test]
async fn a_budget_whose_store_fails_paces_within_the_instance() {
    let stack = moto::stack().await;
    // A table outside the role's policy: IAM refuses every call, as it would a missing table's.
    stack.gate.expect_denials().await.unwrap();
    let role = stack.clients(moto::Principal::Poller);
    let missing: Arc<dyn RequestBudget> = Arc::new(DynamoBudget::new(role.dynamodb.clone(), "no-such-table"));
    // No error, no panic: every call is admitted, paced locally (10 per second).
    let took = admit_all(&[missing], &key("contoso"), 12).await;
    assert!(took >= Duration::from_millis(900), "{took:?}: beyond the window's 10, the local pace applies");
}

/// An hour's limit (Defender for Endpoint's 1,500 an hour per API) is kept with a burst of half
/// of it in the shared budget too: spaced evenly, the second request of a burst waited 2.4 s,
/// and a context lookup (which waits 2 s at most) was refused.
#[tokio::test]
async fn an_hours_limit_in_the_shared_budget_lets_a_burst_go_at_once_and_holds_the_rest() {
    let stack = moto::stack().await;
    let role = stack.clients(moto::Principal::Processor);
    let table = stack.state_table().await;
    let budget = DynamoBudget::new(role.dynamodb.clone(), &table);
    let hour = Rate { requests: 20, window: Duration::from_secs(3_600) };
    let key = BudgetKey {
        tenant_id: "contoso".into(),
        client_id: Some("app".into()),
        api: Api::DefenderForEndpoint,
        scope: Some("files#hour".into()),
    };
    for n in 0..10 {
        let waited = budget.admit_within(&key, hour, Duration::from_secs(2)).await;
        assert!(waited.is_some_and(|w| w < Duration::from_millis(50)), "request {n} of the burst: {waited:?}");
    }
    assert_eq!(budget.admit_within(&key, hour, Duration::from_secs(2)).await, None, "the 11th waits for the sustained rate");
}
