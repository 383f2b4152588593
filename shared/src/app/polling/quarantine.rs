//! Items that cannot be delivered (they do not decode, or the queue refuses them for good) are
//! set aside in the artifact store with the reason, so that one bad item never stops a tenant
//! and nothing is dropped unseen. The poller counts them (metric `ItemsQuarantined`, alarmed).

use serde::Serialize;
use serde_json::value::RawValue;

use crate::app::polling::origin::{safe_key, Context};
use crate::domain::envelope::sha256_hex;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::Error;
use crate::ports::ArtifactStore;

/// The schema of a quarantined record.
pub const QUARANTINE_SCHEMA: &str = "m365-ingest.quarantine.v1";

#[derive(Serialize)]
struct Record<'a> {
    schema: &'a str,
    integration_id: &'a str,
    tenant_id: &'a str,
    source: Source,
    polled_at: GraphTime,
    reason: &'a str,
    /// The item as Microsoft sent it: JSON where it is JSON, else the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
}

/// Writes the item to `quarantine/<integration>/<source>/<sha256 of its bytes>.json`: the same
/// item quarantined twice is one object.
pub async fn quarantine(artifacts: &impl ArtifactStore, ctx: &Context<'_>, raw: &str, reason: &str) -> Result<String, Error> {
    let parsed: Option<Box<RawValue>> = serde_json::from_str(raw).ok();
    let record = Record {
        schema: QUARANTINE_SCHEMA,
        integration_id: ctx.integration_id,
        tenant_id: ctx.tenant_id,
        source: ctx.source,
        polled_at: ctx.polled_at,
        reason,
        object: parsed.as_deref(),
        text: if parsed.is_some() { None } else { Some(raw) },
    };
    // Plain strings and a RawValue cannot fail to serialise.
    let bytes = serde_json::to_vec(&record).unwrap_or_default();
    let key = format!("quarantine/{}/{}/{}.json", safe_key(ctx.integration_id), ctx.source, sha256_hex(raw.as_bytes()));
    artifacts.put(&key, bytes).await?;
    tracing::warn!(key = %key, reason, "item quarantined");
    Ok(key)
}
