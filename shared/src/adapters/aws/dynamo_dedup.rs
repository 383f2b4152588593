//! Processor dedup keys in a table of their own (`pk` = the key, nothing else shares it), with a
//! TTL (`expires_at`, epoch seconds) longer than any overlap: the state table stays small
//! however many alert versions are published.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::dynamo::{condition_failed, n, s};
use super::sdk::store_err;
use crate::domain::time::GraphTime;
use crate::error::CursorError;
use crate::ports::{Claim, DedupStore};

#[derive(Debug, Clone)]
pub struct DynamoDedupStore {
    client: Client,
    table: String,
}

impl DynamoDedupStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoDedupStore { client, table: table.to_owned() }
    }

    fn key(key: &str) -> AttributeValue {
        AttributeValue::S(key.to_owned())
    }
}

impl DedupStore for DynamoDedupStore {
    async fn claim(
        &self,
        key: &str,
        owner: &str,
        now: GraphTime,
        claim_until: GraphTime,
        expires_at: GraphTime,
    ) -> Result<Claim, CursorError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", Self::key(key))
            .update_expression("SET #s = :claimed, claim_owner = :o, claim_until = :u, expires_at = :x")
            // A live claim is in flight even when it is our own (two copies of one message in a batch).
            .condition_expression("attribute_not_exists(#s) OR (#s = :claimed AND claim_until < :now)")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":claimed", s("claimed"))
            .expression_attribute_values(":o", s(owner))
            .expression_attribute_values(":u", n(claim_until.ticks()))
            .expression_attribute_values(":now", n(now.ticks()))
            .expression_attribute_values(":x", n(expires_at.unix_seconds()))
            .return_values_on_condition_check_failure(aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(_) => Ok(Claim::Fresh),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    let state = c.item.as_ref().and_then(|i| i.get("state")).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                    Ok(if state == "published" { Claim::Published } else { Claim::InFlight })
                }
                _ => Err(store_err(&e)),
            },
        }
    }

    async fn published(&self, key: &str, owner: &str) -> Result<(), CursorError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", Self::key(key))
            .update_expression("SET #s = :published REMOVE claim_owner, claim_until")
            .condition_expression("claim_owner = :o OR #s = :published")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":published", s("published"))
            .expression_attribute_values(":o", s(owner))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(CursorError::LeaseLost { key: key.to_owned() }),
            Err(e) => Err(store_err(&e)),
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), CursorError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", Self::key(key))
            .condition_expression("claim_owner = :o AND #s = :claimed")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":o", s(owner))
            .expression_attribute_values(":claimed", s("claimed"))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(store_err(&e)),
        }
    }
}
