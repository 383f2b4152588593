//! Integration records in the state table: `pk = integration#<id>`, `sk = config`, the
//! document as JSON in `doc`, its `revision` and `saved_at`. Saves are conditional on the
//! revision; removing an integration deletes every item under its `pk` (its cursors too).
//! Each record is also listed under its secret (`pk = secret#<secret_ref>`, `sk =
//! integration#<id>`), written in the record's own transaction, so the integrations sharing a
//! secret are found by key: the functions may not scan.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::dynamo::{integration_pk, n, s};
use super::dynamo_schedule::DynamoSchedule;
use super::sdk::store_err;
use crate::domain::integration::doc::{self as integration_doc, IntegrationDoc};
use crate::domain::integration::revision::Provenance;
use crate::domain::integration::Integration;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::CursorError;
use crate::ports::{CursorKey, IntegrationRecord, IntegrationSource, IntegrationStore};

/// Scan and query pages read at most: this bounds the loops, not the use.
const MAX_PAGES: usize = 100;
const CONFIG_SK: &str = "config";

/// A saved revision's own item, ordered by number.
fn revision_sk(revision: u64) -> String {
    format!("revision#{revision:010}")
}

fn secret_pk(secret_ref: &str) -> String {
    format!("secret#{secret_ref}")
}

#[derive(Debug, Clone)]
pub struct DynamoIntegrations {
    client: Client,
    table: String,
}

fn record(item: &std::collections::HashMap<String, AttributeValue>) -> Result<IntegrationRecord, String> {
    let json = item.get("doc").and_then(|v| v.as_s().ok()).ok_or("no doc attribute")?;
    let doc = integration_doc::from_json(json).map_err(|e| e.to_string())?;
    let revision = item.get("revision").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(1);
    let saved_at = item.get("saved_at").and_then(|v| v.as_s().ok()).and_then(|s| GraphTime::parse(s).ok()).unwrap_or_default();
    let provenance = item.get("provenance").and_then(|v| v.as_s().ok()).and_then(|s| serde_json::from_str(s).ok());
    Ok(IntegrationRecord { doc, revision, saved_at, provenance })
}

/// The transaction was cancelled because the record's condition failed (its first item).
fn conflict(e: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError>) -> bool {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            c.cancellation_reasons().first().and_then(|r| r.code()) == Some("ConditionalCheckFailed")
        }
        _ => false,
    }
}

impl DynamoIntegrations {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoIntegrations { client, table: table.to_owned() }
    }

    /// Writes a record without conditions (tests and seeding); `save` is what the product uses.
    pub async fn put(&self, doc: &IntegrationDoc) -> Result<(), CursorError> {
        let current = self.get(&doc.id).await?.map(|r| r.revision);
        let seeded = Provenance { saved_by: "seeded without Test & Save (tests)".into(), ..Provenance::default() };
        self.save(doc, current, GraphTime::now(), &seeded).await.map(|_| ())
    }
}

type ScanKey = std::collections::HashMap<String, AttributeValue>;

/// Where a listing page stopped: the scan's last key, as text an operator can pass back.
fn page_token(key: &std::collections::HashMap<String, AttributeValue>) -> Option<String> {
    let part = |k: &str| key.get(k).and_then(|v| v.as_s().ok()).cloned();
    let json = serde_json::to_string(&[part("pk")?, part("sk")?]).ok()?;
    Some(base64::engine::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, json))
}

fn start_key(token: &str) -> Result<std::collections::HashMap<String, AttributeValue>, CursorError> {
    let bad = || CursorError::Store { detail: format!("`{token}` is not a page token this listing printed"), retryable: false };
    let bytes = base64::engine::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, token).map_err(|_| bad())?;
    let [pk, sk]: [String; 2] = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok([("pk".to_owned(), AttributeValue::S(pk)), ("sk".to_owned(), AttributeValue::S(sk))].into_iter().collect())
}

impl DynamoIntegrations {
    /// One scan page of integration records (at most `limit` items read) and where it stopped
    /// (None: the table's end). An unreadable record is logged and skipped, never stops the others.
    async fn scan_page(
        &self,
        start: Option<ScanKey>,
        limit: Option<i32>,
    ) -> Result<(Vec<IntegrationRecord>, Option<ScanKey>), CursorError> {
        let page = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :c")
            .expression_attribute_values(":c", s(CONFIG_SK))
            .set_limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_err(&e))?;
        let records = page
            .items()
            .iter()
            .filter_map(|item| record(item).map_err(|problem| tracing::error!(%problem, "integration record skipped")).ok())
            .collect();
        Ok((records, page.last_evaluated_key.filter(|k| !k.is_empty())))
    }

    /// Up to `limit` records from where `token` stopped, and the token of the next page (None:
    /// the last). An operator's listing (a Scan, paged, in DynamoDB's order); the functions
    /// never list.
    pub async fn page(&self, limit: usize, token: Option<&str>) -> Result<(Vec<IntegrationRecord>, Option<String>), CursorError> {
        let mut start = token.map(start_key).transpose()?;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES * 10 {
            // Limit counts the items read, so a page never holds more records than are wanted.
            let want = i32::try_from(limit.saturating_sub(out.len())).unwrap_or(i32::MAX).max(1);
            let (records, last) = self.scan_page(start, Some(want)).await?;
            out.extend(records);
            start = last;
            match &start {
                None => return Ok((out, None)),
                Some(k) if out.len() >= limit => return Ok((out, page_token(k))),
                Some(_) => {}
            }
        }
        Ok((out, start.as_ref().and_then(page_token)))
    }
}

impl IntegrationStore for DynamoIntegrations {
    async fn get(&self, id: &str) -> Result<Option<IntegrationRecord>, CursorError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(integration_pk(id)))
            .key("sk", s(CONFIG_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_err(&e))?;
        out.item.map(|i| record(&i).map_err(|detail| CursorError::Corrupt { key: integration_pk(id), detail })).transpose()
    }

    async fn list(&self) -> Result<Vec<IntegrationRecord>, CursorError> {
        let mut out = Vec::new();
        let mut start = None;
        for _ in 0..MAX_PAGES {
            let (records, last) = self.scan_page(start, None).await?;
            out.extend(records);
            match last {
                Some(k) => start = Some(k),
                None => {
                    out.sort_by(|a, b| a.doc.id.cmp(&b.doc.id));
                    return Ok(out);
                }
            }
        }
        Err(CursorError::Store { detail: format!("more than {MAX_PAGES} scan pages of integrations"), retryable: false })
    }

    /// The record and its schedule in one transaction: every source the document polls is due
    /// at once (a saved change is polled at the next dispatch), every other has no entry.
    async fn save(&self, doc: &IntegrationDoc, expected: Option<u64>, at: GraphTime, provenance: &Provenance) -> Result<u64, CursorError> {
        let corrupt = |e: serde_json::Error| CursorError::Corrupt { key: doc.id.clone(), detail: e.to_string() };
        let json = serde_json::to_string(doc).map_err(corrupt)?;
        let provenance = serde_json::to_string(provenance).map_err(corrupt)?;
        let revision = expected.unwrap_or(0) + 1;
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| CursorError::Store { detail: e.to_string(), retryable: false };
        let item = |sk: String| {
            Put::builder()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(integration_pk(&doc.id)))
                .item("sk", AttributeValue::S(sk))
                .item("doc", AttributeValue::S(json.clone()))
                .item("revision", n(revision))
                .item("saved_at", AttributeValue::S(at.to_string()))
                .item("provenance", AttributeValue::S(provenance.clone()))
        };
        // The revision on its own, for audit: written once, never replaced.
        let history = item(revision_sk(revision)).condition_expression("attribute_not_exists(pk)");
        let mut put = item(CONFIG_SK.into());
        put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(r) => put.condition_expression("revision = :r").expression_attribute_values(":r", n(r)),
        };
        let mut writes = vec![
            TransactWriteItem::builder().put(put.build().map_err(invalid)?).build(),
            TransactWriteItem::builder().put(history.build().map_err(invalid)?).build(),
        ];
        // The record's entry under its secret; a changed secret_ref leaves the old one.
        let user = |secret_ref: &str| -> [(&'static str, AttributeValue); 2] {
            [("pk", AttributeValue::S(secret_pk(secret_ref))), ("sk", AttributeValue::S(integration_pk(&doc.id)))]
        };
        let mut entry = Put::builder().table_name(&self.table);
        for (k, v) in user(&doc.secret_ref) {
            entry = entry.item(k, v);
        }
        writes.push(TransactWriteItem::builder().put(entry.build().map_err(invalid)?).build());
        if expected.is_some() {
            // The revision condition above makes this read the one the transaction replaces.
            if let Some(before) = self.get(&doc.id).await? {
                if before.doc.secret_ref != doc.secret_ref {
                    let mut d = Delete::builder().table_name(&self.table);
                    for (k, v) in user(&before.doc.secret_ref) {
                        d = d.key(k, v);
                    }
                    writes.push(TransactWriteItem::builder().delete(d.build().map_err(invalid)?).build());
                }
            }
        }
        let polled = doc.validate().ok();
        for source in Source::ALL {
            let key = CursorKey::live(doc.id.clone(), source);
            let [(pk_name, pk), (sk_name, sk)] = DynamoSchedule::key(&key);
            let w = if polled.as_ref().is_some_and(|i| i.polls(source)) {
                let (shard_name, shard, due_name, due) = DynamoSchedule::index_values(&key, at);
                let p =
                    Put::builder().table_name(&self.table).item(pk_name, pk).item(sk_name, sk).item(shard_name, shard).item(due_name, due);
                TransactWriteItem::builder().put(p.build().map_err(invalid)?).build()
            } else {
                let d = Delete::builder().table_name(&self.table).key(pk_name, pk).key(sk_name, sk);
                TransactWriteItem::builder().delete(d.build().map_err(invalid)?).build()
            };
            writes.push(w);
        }
        match self.client.transact_write_items().set_transact_items(Some(writes)).send().await {
            Ok(_) => Ok(revision),
            Err(e) if conflict(&e) => Err(CursorError::Conflict {
                key: format!("integration `{}`", doc.id),
                detail: match expected {
                    None => "an integration with this id exists already; use `integration show` and save it as a new revision".into(),
                    Some(r) => format!("it changed since revision {r} was read; read it again and retry"),
                },
            }),
            Err(e) => Err(store_err(&e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<bool, CursorError> {
        let pk = integration_pk(id);
        if let Some(record) = self.get(id).await? {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(secret_pk(&record.doc.secret_ref)))
                .key("sk", AttributeValue::S(pk.clone()))
                .send()
                .await
                .map_err(|e| store_err(&e))?;
        }
        let mut existed = false;
        let mut start = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", AttributeValue::S(pk.clone()))
                .projection_expression("pk, sk")
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_err(&e))?;
            for item in page.items() {
                let Some(sk) = item.get("sk").cloned() else { continue };
                existed |= sk.as_s().is_ok_and(|s| s == CONFIG_SK);
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(pk.clone()))
                    .key("sk", sk)
                    .send()
                    .await
                    .map_err(|e| store_err(&e))?;
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(existed),
            }
        }
        Err(CursorError::Store { detail: format!("more than {MAX_PAGES} pages of items under {pk}"), retryable: false })
    }

    async fn secret_users(&self, secret_ref: &str) -> Result<Vec<String>, CursorError> {
        let mut out = Vec::new();
        let mut start = None;
        for _ in 0..MAX_PAGES {
            let (ids, last) = self.users_page(secret_ref, start).await?;
            out.extend(ids);
            match last {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
        Err(CursorError::Store { detail: format!("more than {MAX_PAGES} pages of integrations using `{secret_ref}`"), retryable: false })
    }
}

impl DynamoIntegrations {
    /// Writes every record's entry under its secret (an operator's command: it scans): records
    /// saved before the entries existed are then found by `secret_users`. Idempotent. Returns
    /// (records read, entries written).
    pub async fn reindex_secret_users(&self) -> Result<(usize, usize), CursorError> {
        let records = self.list().await?;
        for r in &records {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(secret_pk(&r.doc.secret_ref)))
                .item("sk", AttributeValue::S(integration_pk(&r.doc.id)))
                .send()
                .await
                .map_err(|e| store_err(&e))?;
        }
        Ok((records.len(), records.len()))
    }

    async fn users_page(&self, secret_ref: &str, start: Option<ScanKey>) -> Result<(Vec<String>, Option<ScanKey>), CursorError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", AttributeValue::S(secret_pk(secret_ref)))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_err(&e))?;
        let ids = page
            .items()
            .iter()
            .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).and_then(|s| s.strip_prefix("integration#")).map(str::to_owned))
            .collect();
        Ok((ids, page.last_evaluated_key.filter(|k| !k.is_empty())))
    }
}

impl IntegrationSource for DynamoIntegrations {
    /// Every integration record that validates; one that does not is logged and left out, so
    /// one broken record never stops the others from being polled.
    async fn integrations(&self) -> Result<Vec<Integration>, CursorError> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter_map(|r| match r.doc.validate() {
                Ok(i) => Some(i),
                Err(problem) => {
                    tracing::error!(%problem, "integration record skipped");
                    None
                }
            })
            .collect())
    }

    async fn integration(&self, id: &str) -> Result<Option<Integration>, CursorError> {
        Ok(self.get(id).await?.and_then(|r| match r.doc.validate() {
            Ok(i) => Some(i),
            Err(problem) => {
                tracing::error!(%problem, "integration record does not validate");
                None
            }
        }))
    }
}
