//! Per-tenant request budgets in the state table, shared by every poller instance:
//! `pk = budget#<tenant>`, `sk = <api>` or `<api>#<client id>`, `next` = the theoretical time
//! of the next request (epoch milliseconds; domain/budget.rs). A request takes its slot with
//! one conditional write: `next` moves one interval on if it lies ahead (busy; the request goes
//! at `next − burst` or now), or is set from now (idle).
//!
//! Requests in flight at once (Outlook's 4 per app per mailbox) are held with `limit` slot items
//! under the same key, `sk = <budget sk>#held#<i>`: a slot is taken with one conditional write
//! when it has no holder or its lease has ended, and given back by its holder. The lease frees
//! the slot of an instance that never gives it back (frozen, crashed); `expires_at` lets the
//! table's TTL remove slot items of mailboxes no longer asked about.

use std::time::Duration;

use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::Client;
use futures_util::future::BoxFuture;

use super::dynamo::{condition_failed, n, s};
use crate::adapters::graph::pacing::LocalBudget;
use crate::domain::backoff::{jittered, random_u32};
use crate::domain::budget::take_slot;
use crate::ports::{BudgetKey, Hold, Rate, Release, RequestBudget};

/// Conditional writes that lost a race before the budget falls back to local pacing.
const MAX_ATTEMPTS: usize = 8;
/// Looks for a free slot among a key's held ones: the first wait, and the longest.
const HOLD_POLL: (Duration, Duration) = (Duration::from_millis(40), Duration::from_millis(400));
/// Rounds of looking for a free slot, whatever the wait allowed (each round sleeps at least 20 ms).
const MAX_HOLD_ROUNDS: u32 = 1_000;
/// A slot item outlives its last lease by this much before the table's TTL may remove it.
const SLOT_ITEM_KEPT_SECS: i64 = 86_400;

#[derive(Debug)]
pub struct DynamoBudget {
    client: Client,
    table: String,
    fallback: LocalBudget,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl DynamoBudget {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoBudget { client, table: table.to_owned(), fallback: LocalBudget::default() }
    }

    fn item_key(key: &BudgetKey) -> (String, String) {
        let api = serde_json::to_value(key.api).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let mut sk = match &key.client_id {
            Some(c) => format!("{api}#{c}"),
            None => api,
        };
        if let Some(scope) = &key.scope {
            sk.push('#');
            sk.push_str(scope);
        }
        (format!("budget#{}", key.tenant_id), sk)
    }

    /// Takes a slot; returns when it may go (epoch ms). Err: the store failed or kept losing races.
    async fn slot(&self, key: &BudgetKey, rate: Rate) -> Result<i64, String> {
        self.slot_within(key, rate, None).await.map(|go| go.unwrap_or_default())
    }

    /// Takes a slot that goes within `max_wait` (any slot when None); Ok(None) when the next
    /// one lies further ahead, and then nothing was taken.
    async fn slot_within(&self, key: &BudgetKey, rate: Rate, max_wait: Option<Duration>) -> Result<Option<i64>, String> {
        let (pk, sk) = Self::item_key(key);
        let (interval, burst) = (rate.interval_ms(), rate.burst_ms());
        for _ in 0..MAX_ATTEMPTS {
            let now = now_ms();
            // The slot goes at `next − burst`: soon enough while `next` is within the wait and the burst.
            let latest = max_wait.map_or(i64::MAX, |w| now.saturating_add(w.as_millis() as i64).saturating_add(burst));
            // Busy: the next slot lies ahead; take it (if it is soon enough).
            let busy = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(pk.clone()))
                .key("sk", s(sk.clone()))
                .update_expression("SET #n = #n + :i")
                .condition_expression("#n > :now AND #n <= :latest")
                .expression_attribute_names("#n", "next")
                .expression_attribute_values(":i", n(interval))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":latest", n(latest))
                .return_values(ReturnValue::UpdatedOld)
                .send()
                .await;
            match busy {
                Ok(out) => {
                    let old = out.attributes().and_then(|a| a.get("next")).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
                    return Ok(Some(take_slot(old, now, &rate).0));
                }
                Err(e) if condition_failed(&e) => {}
                Err(e) => return Err(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()),
            }
            // Idle: start from now, unless another instance got there first.
            let (go, next) = take_slot(None, now, &rate);
            let idle = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(pk.clone()))
                .key("sk", s(sk.clone()))
                .update_expression("SET #n = :next")
                .condition_expression("attribute_not_exists(#n) OR #n <= :now")
                .expression_attribute_names("#n", "next")
                .expression_attribute_values(":next", n(next))
                .expression_attribute_values(":now", n(now))
                .send()
                .await;
            match idle {
                Ok(_) => return Ok(Some(go)),
                // Neither idle nor soon: with a bound, the slot is too far ahead (or another
                // instance just moved it there).
                Err(e) if condition_failed(&e) => {
                    if max_wait.is_some() {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()),
            }
        }
        Err(format!("{MAX_ATTEMPTS} conditional writes lost to other instances"))
    }
}

impl DynamoBudget {
    /// Takes one free slot of `limit` under (`pk`, `sk`) for `lease`: Ok(None) when all are held.
    async fn take_held_slot(&self, pk: &str, sk: &str, limit: u32, lease: Duration, holder: &str) -> Result<Option<String>, String> {
        let limit = limit.max(1);
        // Instances start at different slots, so that they do not all contend for the first.
        let first = random_u32() % limit;
        for i in 0..limit {
            let slot = format!("{sk}#held#{}", (first + i) % limit);
            let now = now_ms();
            let until = now.saturating_add(lease.as_millis() as i64);
            let taken = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(pk.to_owned()))
                .key("sk", s(slot.clone()))
                .update_expression("SET #h = :me, #u = :until, expires_at = :x")
                // `#h = :me`: the SDK retrying a write that had committed finds the slot its own.
                .condition_expression("attribute_not_exists(#u) OR #u <= :now OR #h = :me")
                .expression_attribute_names("#h", "holder")
                .expression_attribute_names("#u", "held_until")
                .expression_attribute_values(":me", s(holder.to_owned()))
                .expression_attribute_values(":until", n(until))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":x", n(until / 1000 + SLOT_ITEM_KEPT_SECS))
                .send()
                .await;
            match taken {
                Ok(_) => return Ok(Some(slot)),
                Err(e) if condition_failed(&e) => {}
                Err(e) => return Err(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()),
            }
        }
        Ok(None)
    }

    /// Gives a slot back, if this holder still holds it (a lease that ended may have passed it on).
    fn release_of(&self, pk: String, slot: String, holder: String) -> Release {
        let (client, table) = (self.client.clone(), self.table.clone());
        Box::new(move || {
            Box::pin(async move {
                let given = client
                    .update_item()
                    .table_name(&table)
                    .key("pk", s(pk))
                    .key("sk", s(slot))
                    .update_expression("REMOVE #h, #u")
                    .condition_expression("#h = :me")
                    .expression_attribute_names("#h", "holder")
                    .expression_attribute_names("#u", "held_until")
                    .expression_attribute_values(":me", s(holder))
                    .send()
                    .await;
                match given {
                    Ok(_) => {}
                    Err(e) if condition_failed(&e) => {
                        tracing::info!("a held slot's lease ended before it was given back");
                    }
                    Err(e) => {
                        let problem = aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string();
                        tracing::warn!(%problem, "a held slot could not be given back; its lease frees it");
                    }
                }
            })
        })
    }
}

/// Who holds a slot: this hold alone (128 random bits).
fn holder_id() -> String {
    format!("{:08x}{:08x}{:08x}{:08x}", random_u32(), random_u32(), random_u32(), random_u32())
}

impl RequestBudget for DynamoBudget {
    fn admit<'a>(&'a self, key: &'a BudgetKey, rate: Rate) -> BoxFuture<'a, Duration> {
        Box::pin(async move {
            match self.slot(key, rate).await {
                Ok(go) => {
                    let wait = Duration::from_millis(go.saturating_sub(now_ms()).max(0) as u64);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    wait
                }
                Err(problem) => {
                    tracing::warn!(%problem, tenant = %key.tenant_id, "the shared request budget is unavailable; pacing within this instance");
                    self.fallback.admit(key, rate).await
                }
            }
        })
    }

    fn admit_within<'a>(&'a self, key: &'a BudgetKey, rate: Rate, max_wait: Duration) -> BoxFuture<'a, Option<Duration>> {
        Box::pin(async move {
            match self.slot_within(key, rate, Some(max_wait)).await {
                Ok(Some(go)) => {
                    let wait = Duration::from_millis(go.saturating_sub(now_ms()).max(0) as u64);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    Some(wait)
                }
                Ok(None) => None,
                Err(problem) => {
                    tracing::warn!(%problem, tenant = %key.tenant_id, "the shared request budget is unavailable; pacing within this instance");
                    self.fallback.admit_within(key, rate, max_wait).await
                }
            }
        })
    }

    fn hold<'a>(&'a self, key: &'a BudgetKey, limit: u32, lease: Duration, max_wait: Duration) -> BoxFuture<'a, Option<Hold>> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            // This instance's slot first: its requests do not contend with each other in the store.
            let local = self.fallback.permit(key, limit, max_wait).await?;
            let (pk, sk) = Self::item_key(key);
            let holder = holder_id();
            for round in 1..=MAX_HOLD_ROUNDS {
                match self.take_held_slot(&pk, &sk, limit, lease, &holder).await {
                    Ok(Some(slot)) => return Some(Hold::new(Some(local), Some(self.release_of(pk, slot, holder)))),
                    Ok(None) => {}
                    Err(problem) => {
                        tracing::warn!(%problem, tenant = %key.tenant_id, "the shared request budget is unavailable; holding within this instance");
                        return Some(Hold::new(Some(local), None));
                    }
                }
                let wait = jittered(HOLD_POLL.0, round, HOLD_POLL.1, random_u32());
                if started.elapsed() + wait > max_wait {
                    return None;
                }
                tokio::time::sleep(wait).await;
            }
            None
        })
    }
}
