//! The intake message: one Microsoft object with what the poller knows about it,
//! schema-versioned (DESIGN.md §4; the processor turns it into the output contract).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::source::Source;
use super::time::GraphTime;

pub const INTAKE_SCHEMA: &str = "m365-ingest.intake.v1";

/// Where a Microsoft object too large for a message was put (the claim check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub sha256: String,
    /// The object's media type, as the store was told it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl ObjectRef {
    /// The reference to `bytes` stored under `key` in `bucket`, typed by the key's extension.
    pub fn of(bucket: &str, key: &str, bytes: &[u8]) -> Self {
        ObjectRef {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            content_type: Some(content_type_of(key).to_owned()),
        }
    }
}

/// SHA-256 of `bytes`, lower-case hex: how stored objects are named and checked.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The media type of an artifact, by its key's extension: the store writes JSON records and
/// reported emails' MIME.
pub fn content_type_of(key: &str) -> &'static str {
    match key.rsplit_once('.').map(|(_, ext)| ext) {
        Some("json") => "application/json",
        Some("eml") => "message/rfc822",
        _ => "application/octet-stream",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub schema: String,
    pub integration_id: String,
    pub tenant_id: String,
    pub source: Source,
    /// The Microsoft id of the alert or incident.
    pub id: String,
    /// Its `lastUpdateDateTime`: one version of the object.
    pub version: GraphTime,
    /// Stable per (source, tenant, id, version) and revision where the source has one.
    pub dedup_key: String,
    pub polled_at: GraphTime,
    /// The Microsoft object exactly as Graph returned it, or None when `object_ref` holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectRef>,
}

pub fn dedup_key(source: Source, tenant_id: &str, id: &str, version: GraphTime) -> String {
    format!("{source}/{tenant_id}/{id}/{version}")
}

/// The key of one revision of a version, where a source delivers a version more than once
/// (a submission's `pending`, then `final`).
pub fn revision_key(source: Source, tenant_id: &str, id: &str, version: GraphTime, revision: Option<&str>) -> String {
    let mut key = dedup_key(source, tenant_id, id, version);
    if let Some(r) = revision {
        key.push('/');
        key.push_str(r);
    }
    key
}

impl Envelope {
    pub fn to_json(&self) -> String {
        // Serialising plain strings and a RawValue cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_is_embedded_byte_for_byte() {
        let raw = RawValue::from_string(r#"{"id":"a","lastUpdateDateTime":"2021-05-02T14:19:01.3266667Z","x":[1,2]}"#.into()).ok();
        let version = GraphTime::parse("2021-05-02T14:19:01.3266667Z").unwrap_or_default();
        let e = Envelope {
            schema: INTAKE_SCHEMA.into(),
            integration_id: "i1".into(),
            tenant_id: "t1".into(),
            source: Source::DefenderAlerts,
            id: "a".into(),
            version,
            dedup_key: dedup_key(Source::DefenderAlerts, "t1", "a", version),
            polled_at: version,
            object: raw,
            object_ref: None,
        };
        let json = e.to_json();
        assert!(json.contains(r#""object":{"id":"a","lastUpdateDateTime":"2021-05-02T14:19:01.3266667Z","x":[1,2]}"#), "{json}");
        assert!(json.contains(r#""dedup_key":"defender_alerts/t1/a/2021-05-02T14:19:01.3266667Z""#));
        let back: Result<Envelope, _> = serde_json::from_str(&json);
        assert!(back.is_ok_and(|b| b.version == version && b.object_ref.is_none()));
    }
}
