//! The schedule in the state table: one item per (integration, source) beside the integration
//! (`pk = integration#<id>`, `sk = due#<source>`), so removing an integration removes it too. Its
//! `due_shard` (`<source>#<n>`) and `due_at` (ticks) are the keys of the sparse index `Due`:
//! a dispatcher queries each shard for `due_at <= now`, oldest first, and never lists the table.
//! Shards spread a large deployment's schedule writes over partitions (8 × 1,000 writes/s).

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::dynamo::{condition_failed, integration_pk, n, s};
use super::sdk::store_err;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::CursorError;
use crate::ports::{CursorKey, DueEntry, ScheduleStore};

pub const DUE_INDEX: &str = "Due";
pub const SHARDS: u64 = 8;
/// Query pages read per shard at most: bounds the loop, not the use (`limit` does that).
const MAX_PAGES: usize = 20;

#[derive(Debug, Clone)]
pub struct DynamoSchedule {
    client: Client,
    table: String,
}

/// FNV-1a: a stable shard for an id, the same in every process and release.
fn shard(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % SHARDS
}

/// A time as the index's number: its ticks.
fn ticks(t: GraphTime) -> AttributeValue {
    n(t.ticks())
}

impl DynamoSchedule {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoSchedule { client, table: table.to_owned() }
    }

    pub(crate) fn key(key: &CursorKey) -> [(&'static str, AttributeValue); 2] {
        [("pk", s(integration_pk(&key.integration_id))), ("sk", s(format!("due#{}", key.source)))]
    }

    /// The index's attributes of a pair due at `at`.
    pub(crate) fn index_values(key: &CursorKey, at: GraphTime) -> (&'static str, AttributeValue, &'static str, AttributeValue) {
        ("due_shard", s(format!("{}#{}", key.source, shard(&key.integration_id))), "due_at", ticks(at))
    }
}

fn entry(item: &std::collections::HashMap<String, AttributeValue>, source: Source) -> Option<DueEntry> {
    let id = item.get("pk")?.as_s().ok()?.strip_prefix("integration#")?.to_owned();
    let at = item.get("due_at")?.as_n().ok()?.parse::<i64>().ok()?;
    Some(DueEntry { key: CursorKey::live(id, source), at: GraphTime::from_ticks(at) })
}

impl ScheduleStore for DynamoSchedule {
    async fn set(&self, key: &CursorKey, at: GraphTime) -> Result<(), CursorError> {
        let [pk, sk] = Self::key(key);
        let (shard_name, shard, due_name, due) = Self::index_values(key, at);
        self.client
            .put_item()
            .table_name(&self.table)
            .item(pk.0, pk.1)
            .item(sk.0, sk.1)
            .item(shard_name, shard)
            .item(due_name, due)
            .send()
            .await
            .map_err(|e| store_err(&e))?;
        Ok(())
    }

    async fn due(&self, source: Source, now: GraphTime, limit: usize) -> Result<Vec<DueEntry>, CursorError> {
        let mut all = Vec::new();
        for shard in 0..SHARDS {
            let mut start = None;
            let mut taken = 0;
            for _ in 0..MAX_PAGES {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(DUE_INDEX)
                    .key_condition_expression("due_shard = :s AND due_at <= :now")
                    .expression_attribute_values(":s", s(format!("{source}#{shard}")))
                    .expression_attribute_values(":now", ticks(now))
                    .limit(i32::try_from(limit.clamp(1, 1_000)).unwrap_or(1_000))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| store_err(&e))?;
                for item in page.items() {
                    if let Some(e) = entry(item, source) {
                        all.push(e);
                        taken += 1;
                    }
                }
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() && taken < limit => start = Some(k),
                    _ => break,
                }
            }
        }
        // Oldest first across shards: each shard's answer is sorted, the merge is ours.
        all.sort_by(|a, b| (a.at, &a.key).cmp(&(b.at, &b.key)));
        all.truncate(limit);
        Ok(all)
    }

    async fn reserve(&self, entry: &DueEntry, until: GraphTime) -> Result<bool, CursorError> {
        let [pk, sk] = Self::key(&entry.key);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .update_expression("SET due_at = :until")
            .condition_expression("due_at = :at")
            .expression_attribute_values(":until", ticks(until))
            .expression_attribute_values(":at", ticks(entry.at))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(store_err(&e)),
        }
    }

    async fn remove(&self, key: &CursorKey) -> Result<(), CursorError> {
        let [pk, sk] = Self::key(key);
        self.client.delete_item().table_name(&self.table).key(pk.0, pk.1).key(sk.0, sk.1).send().await.map_err(|e| store_err(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard("contoso"), shard("contoso"));
        let used: std::collections::BTreeSet<u64> = (0..200).map(|i| shard(&format!("tenant-{i}"))).collect();
        assert_eq!(used.len() as u64, SHARDS);
    }
}
