//! Creates the tables the way template.yaml defines them, for local stacks (moto) and tests.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;

use super::sdk::{describe, sdk_retryable};
use crate::error::CursorError;

/// `pk` (hash) and `sk` (range) strings, on demand, with the schedule's sparse index `Due`
/// (`due_shard` string, `due_at` number; keys only): the shape every adapter here expects.
pub async fn create_state_table(client: &Client, name: &str) -> Result<(), CursorError> {
    let attr = |n: &str| AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build();
    let key = |n: &str, t: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(t).build();
    let invalid = |e: aws_sdk_dynamodb::error::BuildError| CursorError::Store { detail: e.to_string(), retryable: false };
    let due = GlobalSecondaryIndex::builder()
        .index_name(super::DUE_INDEX)
        .key_schema(key("due_shard", KeyType::Hash).map_err(invalid)?)
        .key_schema(key("due_at", KeyType::Range).map_err(invalid)?)
        .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
        .build()
        .map_err(invalid)?;
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk").map_err(invalid)?)
        .attribute_definitions(attr("sk").map_err(invalid)?)
        .key_schema(key("pk", KeyType::Hash).map_err(invalid)?)
        .key_schema(key("sk", KeyType::Range).map_err(invalid)?)
        .attribute_definitions(attr("due_shard").map_err(invalid)?)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("due_at").attribute_type(ScalarAttributeType::N).build().map_err(invalid)?,
        )
        .global_secondary_indexes(due)
        .send()
        .await
        .map_err(|e| CursorError::Store { detail: describe(&e), retryable: sdk_retryable(&e) })?;
    Ok(())
}

/// `pk` (hash) string, on demand: the dedup table.
pub async fn create_dedup_table(client: &Client, name: &str) -> Result<(), CursorError> {
    let invalid = |e: aws_sdk_dynamodb::error::BuildError| CursorError::Store { detail: e.to_string(), retryable: false };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build().map_err(invalid)?,
        )
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().map_err(invalid)?)
        .send()
        .await
        .map_err(|e| CursorError::Store { detail: describe(&e), retryable: sdk_retryable(&e) })?;
    Ok(())
}
