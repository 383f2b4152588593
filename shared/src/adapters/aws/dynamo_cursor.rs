//! Cursors and leases in the DynamoDB state table: one item per (integration, source),
//! `pk = integration#<id>`, `sk = cursor#<source>`; every write is conditional.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

use super::dynamo::{condition_failed, integration_pk, n, s};
use super::sdk::store_err;
use crate::domain::polling::cursor::{Cursor, StoredCursor};
use crate::domain::time::GraphTime;
use crate::error::CursorError;
use crate::ports::{CursorKey, CursorStatus, CursorStore, Lane, Leased, Ran};

#[derive(Debug, Clone)]
pub struct DynamoCursorStore {
    client: Client,
    table: String,
}

impl DynamoCursorStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoCursorStore { client, table: table.to_owned() }
    }

    fn key(&self, key: &CursorKey) -> [(String, AttributeValue); 2] {
        let sk = match key.lane {
            Lane::Live => format!("cursor#{}", key.source),
            // Under the integration's key: removing the integration removes its backfills too.
            Lane::Backfill { from, to } => format!("backfill#{}#{}#{}", key.source, from.ticks(), to.ticks()),
        };
        [("pk".into(), s(integration_pk(&key.integration_id))), ("sk".into(), s(sk))]
    }
}

impl CursorStore for DynamoCursorStore {
    async fn acquire(&self, key: &CursorKey, owner: &str, now: GraphTime, expires: GraphTime) -> Result<Leased, CursorError> {
        let [pk, sk] = self.key(key);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .update_expression(
                "SET lease_owner = :o, lease_expires = :e, lease_expires_ticks = :et, version = if_not_exists(version, :zero)",
            )
            .condition_expression("attribute_not_exists(lease_owner) OR lease_owner = :o OR lease_expires_ticks < :now")
            .expression_attribute_values(":o", s(owner))
            .expression_attribute_values(":e", s(expires.to_string()))
            .expression_attribute_values(":et", n(expires.ticks()))
            .expression_attribute_values(":now", n(now.ticks()))
            .expression_attribute_values(":zero", n(0))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let item = match out {
            Ok(o) => o.attributes.unwrap_or_default(),
            Err(e) => {
                if let Some(se) = e.as_service_error() {
                    if se.is_conditional_check_failed_exception() {
                        let until = match se {
                            aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => c
                                .item
                                .as_ref()
                                .and_then(|i| i.get("lease_expires"))
                                .and_then(|v| v.as_s().ok())
                                .cloned()
                                .unwrap_or_default(),
                            _ => String::new(),
                        };
                        return Err(CursorError::LeaseHeld { key: key.to_string(), until });
                    }
                }
                return Err(store_err(&e));
            }
        };
        let version = item.get("version").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
        let cursor = match item.get("cursor").and_then(|v| v.as_s().ok()) {
            None => Cursor::default(),
            Some(json) => serde_json::from_str::<StoredCursor>(json)
                .map_err(|e| e.to_string())
                .and_then(|s| Cursor::try_from(s).map_err(|e| e.to_string()))
                .map_err(|detail| CursorError::Corrupt { key: key.to_string(), detail })?,
        };
        let last_run = item.get("last_run").and_then(|v| v.as_s().ok()).and_then(|v| GraphTime::parse(v).ok());
        Ok(Leased { cursor, version, last_run })
    }

    async fn commit(&self, key: &CursorKey, owner: &str, expected_version: u64, cursor: &Cursor) -> Result<u64, CursorError> {
        let [pk, sk] = self.key(key);
        let json =
            serde_json::to_string(&cursor.to_stored()).map_err(|e| CursorError::Corrupt { key: key.to_string(), detail: e.to_string() })?;
        let next = expected_version + 1;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .update_expression("SET #c = :c, version = :next, watermark = :w")
            .condition_expression("lease_owner = :o AND version = :v")
            .expression_attribute_names("#c", "cursor")
            .expression_attribute_values(":c", s(json))
            .expression_attribute_values(":next", n(next))
            .expression_attribute_values(":v", n(expected_version))
            .expression_attribute_values(":o", s(owner))
            .expression_attribute_values(":w", s(cursor.watermark.map(|w| w.to_string()).unwrap_or_default()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(next),
            Err(e) if condition_failed(&e) => Err(CursorError::LeaseLost { key: key.to_string() }),
            Err(e) => Err(store_err(&e)),
        }
    }

    async fn release(&self, key: &CursorKey, owner: &str, ran: Option<&Ran>) -> Result<(), CursorError> {
        let [pk, sk] = self.key(key);
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .condition_expression("lease_owner = :o")
            .expression_attribute_values(":o", s(owner));
        req = match ran {
            Some(ran) => req
                .update_expression("REMOVE lease_owner, lease_expires, lease_expires_ticks SET last_run = :r, last_outcome = :out")
                .expression_attribute_values(":r", s(ran.at.to_string()))
                .expression_attribute_values(":out", s(ran.outcome.clone())),
            None => req.update_expression("REMOVE lease_owner, lease_expires, lease_expires_ticks"),
        };
        match req.send().await {
            Ok(_) => Ok(()),
            // Not ours (any more): releasing is idempotent.
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(store_err(&e)),
        }
    }

    async fn status(&self, key: &CursorKey) -> Result<Option<CursorStatus>, CursorError> {
        let [pk, sk] = self.key(key);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .projection_expression("watermark, last_run, last_outcome, lease_expires")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_err(&e))?;
        Ok(out.item.map(|item| {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).filter(|v| !v.is_empty()).cloned();
            CursorStatus {
                watermark: text("watermark").and_then(|w| GraphTime::parse(&w).ok()),
                last_run: text("last_run").and_then(|w| GraphTime::parse(&w).ok()),
                last_outcome: text("last_outcome"),
                leased_until: text("lease_expires"),
            }
        }))
    }
}
