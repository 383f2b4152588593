//! Evidence jobs and holds in the dedup table (`pk` = the record's key, `{dedup key}/evidence/{item}`
//! or `{dedup key}/evidence-hold`, which no dedup key equals): read and written by key only, with
//! the record as JSON (tens of KB at most: a hold lists at most ten items of bounded strings), a
//! version `v` for conditional saves, and the table's TTL attribute `expires_at`.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::dynamo::{condition_failed, n};
use super::sdk::store_err;
use crate::domain::time::GraphTime;
use crate::error::CursorError;
use crate::ports::{EvidenceJobStore, StoredRecord};

#[derive(Debug, Clone)]
pub struct DynamoEvidenceJobs {
    client: Client,
    table: String,
}

impl DynamoEvidenceJobs {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoEvidenceJobs { client, table: table.to_owned() }
    }

    /// The item under `key`, read consistently.
    async fn item(&self, key: &str) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, CursorError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_err(&e))?;
        Ok(out.item)
    }
}

fn decode<R: StoredRecord>(key: &str, item: &std::collections::HashMap<String, AttributeValue>) -> Result<(R, u64), CursorError> {
    let corrupt = |detail: String| CursorError::Corrupt { key: key.to_owned(), detail };
    let text = item.get("job").and_then(|v| v.as_s().ok()).ok_or_else(|| corrupt("no `job` attribute".into()))?;
    let record: R = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let version = item.get("v").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).ok_or_else(|| corrupt("no version".into()))?;
    Ok((record, version))
}

fn encode<R: StoredRecord>(record: &R) -> Result<String, CursorError> {
    serde_json::to_string(record).map_err(|e| CursorError::Corrupt { key: record.key().to_owned(), detail: e.to_string() })
}

impl EvidenceJobStore for DynamoEvidenceJobs {
    async fn create<R: StoredRecord>(&self, record: &R, expires_at: GraphTime) -> Result<(R, u64), CursorError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(record.key().to_owned()))
            .item("job", AttributeValue::S(encode(record)?))
            .item("v", AttributeValue::N("1".into()))
            .item("expires_at", n(expires_at.unix_seconds()))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(_) => Ok((record.clone(), 1)),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => match &c.item {
                    Some(item) => decode(record.key(), item),
                    None => Err(CursorError::Corrupt { key: record.key().to_owned(), detail: "exists but was not returned".into() }),
                },
                _ => Err(store_err(&e)),
            },
        }
    }

    async fn get<R: StoredRecord>(&self, key: &str) -> Result<Option<(R, u64)>, CursorError> {
        self.item(key).await?.as_ref().map(|i| decode(key, i)).transpose()
    }

    async fn save<R: StoredRecord>(&self, record: &R, expected: u64, expires_at: GraphTime) -> Result<u64, CursorError> {
        let next = expected + 1;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(record.key().to_owned()))
            .update_expression("SET job = :j, v = :next, expires_at = :x")
            .condition_expression("v = :expected")
            .expression_attribute_values(":j", AttributeValue::S(encode(record)?))
            .expression_attribute_values(":next", n(next))
            .expression_attribute_values(":expected", n(expected))
            .expression_attribute_values(":x", n(expires_at.unix_seconds()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(next),
            Err(e) if condition_failed(&e) => Err(CursorError::LeaseLost { key: record.key().to_owned() }),
            Err(e) => Err(store_err(&e)),
        }
    }

    /// A String Set `s` under the key (`ADD` creates it; a set emptied by `DELETE` goes away).
    /// One item holds at most 400 KB: some 2,500 job keys, which the callers' shards keep under.
    async fn set_add(&self, key: &str, entry: &str, expires_at: Option<GraphTime>) -> Result<(), CursorError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .expression_attribute_values(":e", AttributeValue::Ss(vec![entry.to_owned()]));
        let update = match expires_at {
            Some(x) => update.update_expression("ADD s :e SET expires_at = :x").expression_attribute_values(":x", n(x.unix_seconds())),
            None => update.update_expression("ADD s :e REMOVE expires_at"),
        };
        update.send().await.map(|_| ()).map_err(|e| store_err(&e))
    }

    async fn set_remove(&self, key: &str, entry: &str) -> Result<(), CursorError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .update_expression("DELETE s :e")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":e", AttributeValue::Ss(vec![entry.to_owned()]))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if condition_failed(&e) { Ok(()) } else { Err(store_err(&e)) })
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, CursorError> {
        let mut members: Vec<String> =
            self.item(key).await?.and_then(|i| i.get("s").and_then(|v| v.as_ss().ok()).cloned()).unwrap_or_default();
        members.sort();
        Ok(members)
    }
}
