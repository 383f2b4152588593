//! Integration records in the state table: `pk = integration#<id>`, `sk = config`, the
//! document as JSON in `doc`.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::dynamo_cursor::integration_pk;
use super::sdk::{describe, sdk_retryable};
use crate::domain::integration::{Integration, IntegrationDoc};
use crate::error::CursorError;
use crate::ports::IntegrationSource;

/// Scan pages read at most: one integration per item, so this bounds the loop, not the use.
const MAX_SCAN_PAGES: usize = 100;

#[derive(Debug, Clone)]
pub struct DynamoIntegrations {
    client: Client,
    table: String,
}

impl DynamoIntegrations {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoIntegrations { client, table: table.to_owned() }
    }

    /// Writes (or replaces) an integration record.
    pub async fn put(&self, doc: &IntegrationDoc) -> Result<(), CursorError> {
        let json = serde_json::to_string(doc).map_err(|e| CursorError::Corrupt { key: doc.id.clone(), detail: e.to_string() })?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(integration_pk(&doc.id)))
            .item("sk", AttributeValue::S("config".into()))
            .item("doc", AttributeValue::S(json))
            .send()
            .await
            .map_err(|e| CursorError::Store { detail: describe(&e), retryable: sdk_retryable(&e) })?;
        Ok(())
    }
}

impl IntegrationSource for DynamoIntegrations {
    /// Every integration record; one that does not validate is logged and left out, so one
    /// broken record never stops the others from being polled.
    async fn integrations(&self) -> Result<Vec<Integration>, CursorError> {
        let mut out = Vec::new();
        let mut start = None;
        for _ in 0..MAX_SCAN_PAGES {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :c")
                .expression_attribute_values(":c", AttributeValue::S("config".into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| CursorError::Store { detail: describe(&e), retryable: sdk_retryable(&e) })?;
            for item in page.items() {
                let Some(json) = item.get("doc").and_then(|v| v.as_s().ok()) else { continue };
                match serde_json::from_str::<IntegrationDoc>(json)
                    .map_err(|e| e.to_string())
                    .and_then(|d| d.validate().map_err(|e| e.to_string()))
                {
                    Ok(i) => out.push(i),
                    Err(problem) => tracing::error!(%problem, "integration record skipped"),
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => {
                    out.sort_by(|a, b| a.id.cmp(&b.id));
                    return Ok(out);
                }
            }
        }
        Err(CursorError::Store { detail: format!("more than {MAX_SCAN_PAGES} scan pages of integrations"), retryable: false })
    }
}
