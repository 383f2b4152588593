//! The cursor of one (integration, source): how far delivery has got, and which recent
//! versions were already delivered, so that overlap re-reads neither lose nor repeat alerts.
//!
//! A cursor is one DynamoDB item, and an item holds at most 400 KB: the remembered versions are
//! bounded in bytes (fixed-size id hashes, [`MAX_STORED_BYTES`]), whatever burst a tenant makes.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::time::GraphTime;

/// The most the stored cursor may take, well under DynamoDB's 400 KB item limit so that the
/// item's other attributes (lease, watermark, version) always fit beside it.
pub const MAX_STORED_BYTES: usize = 300_000;

/// One remembered version: an 8-byte id hash and the version's 8-byte ticks.
const ENTRY_BYTES: usize = 16;

/// Remembered versions that fit in [`MAX_STORED_BYTES`] once base64-encoded, with 4 KB left for
/// the JSON around them.
pub const MAX_RECENT: usize = (MAX_STORED_BYTES - 4096) / 4 * 3 / ENTRY_BYTES;

/// What a cursor promises: every alert version with a window-field value `< watermark` that was
/// visible when it was read has been delivered; `recent` names the delivered versions at or
/// after `watermark − overlap`, so the next overlapping read can skip them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor {
    pub watermark: Option<GraphTime>,
    /// Hash of an alert id → the newest version of it delivered.
    recent: BTreeMap<u64, GraphTime>,
    /// Set when `recent` had to be trimmed: some overlap re-reads may be delivered twice
    /// (the processor's dedup removes them); never a gap.
    pub trimmed: bool,
}

/// The first 8 bytes of SHA-256 of the id. A collision would suppress an unseen alert, so the
/// hash is cryptographic: at 18k remembered ids the chance per lookup is about 1e-15.
fn id_hash(id: &str) -> u64 {
    let d = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_le_bytes(b)
}

impl Cursor {
    /// A cursor at `watermark` that remembers nothing.
    pub fn at(watermark: GraphTime) -> Self {
        Cursor { watermark: Some(watermark), ..Cursor::default() }
    }

    /// True when this exact version (or a newer one of the same alert) was delivered already.
    pub fn already_delivered(&self, id: &str, version: GraphTime) -> bool {
        self.recent.get(&id_hash(id)).is_some_and(|v| *v >= version)
    }

    pub fn record(&mut self, id: &str, version: GraphTime) {
        let v = self.recent.entry(id_hash(id)).or_insert(version);
        if *v < version {
            *v = version;
        }
    }

    /// How many versions are remembered.
    pub fn remembered(&self) -> usize {
        self.recent.len()
    }

    /// Moves the watermark forward (never back) and forgets versions the next read cannot
    /// return; keeps at most `max_recent` (and never more than [`MAX_RECENT`]), dropping the
    /// oldest first.
    pub fn advance(&mut self, watermark: GraphTime, overlap: Duration, max_recent: usize) {
        let w = match self.watermark {
            Some(old) if old > watermark => old,
            _ => watermark,
        };
        self.watermark = Some(w);
        let floor = w.minus(overlap);
        self.recent.retain(|_, v| *v >= floor);
        let max_recent = max_recent.min(MAX_RECENT);
        if self.recent.len() > max_recent {
            let mut by_age: Vec<(GraphTime, u64)> = self.recent.iter().map(|(k, v)| (*v, *k)).collect();
            by_age.sort_unstable();
            let excess = self.recent.len() - max_recent;
            for (_, id) in by_age.into_iter().take(excess) {
                self.recent.remove(&id);
            }
            self.trimmed = true;
        }
    }

    pub fn to_stored(&self) -> StoredCursor {
        let mut packed = Vec::with_capacity(self.recent.len() * ENTRY_BYTES);
        for (h, v) in &self.recent {
            packed.extend_from_slice(&h.to_le_bytes());
            packed.extend_from_slice(&v.ticks().to_le_bytes());
        }
        StoredCursor::V2 { watermark: self.watermark, recent: STANDARD.encode(packed), trimmed: self.trimmed }
    }
}

/// The persisted form, tagged by schema version so readers accept every version in the wild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "schema_version")]
pub enum StoredCursor {
    /// Ids in full: grew past DynamoDB's item limit at a few thousand ids. Still read.
    #[serde(rename = "1")]
    V1 {
        watermark: Option<GraphTime>,
        recent: BTreeMap<String, GraphTime>,
        #[serde(default)]
        trimmed: bool,
    },
    /// `recent` is base64 of 16-byte entries (id hash, version ticks; little-endian), sorted.
    #[serde(rename = "2")]
    V2 {
        watermark: Option<GraphTime>,
        recent: String,
        #[serde(default)]
        trimmed: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cursor's remembered versions are not whole 16-byte base64 entries")]
pub struct StoredCursorError;

impl TryFrom<StoredCursor> for Cursor {
    type Error = StoredCursorError;

    fn try_from(s: StoredCursor) -> Result<Self, Self::Error> {
        match s {
            StoredCursor::V1 { watermark, recent, trimmed } => {
                let mut c = Cursor { watermark, recent: BTreeMap::new(), trimmed };
                for (id, v) in recent {
                    c.record(&id, v);
                }
                Ok(c)
            }
            StoredCursor::V2 { watermark, recent, trimmed } => {
                let bytes = STANDARD.decode(recent).map_err(|_| StoredCursorError)?;
                if bytes.len() % ENTRY_BYTES != 0 {
                    return Err(StoredCursorError);
                }
                let mut map = BTreeMap::new();
                for e in bytes.chunks_exact(ENTRY_BYTES) {
                    let (h, v) = e.split_at(8);
                    let h = u64::from_le_bytes(h.try_into().map_err(|_| StoredCursorError)?);
                    let v = i64::from_le_bytes(v.try_into().map_err(|_| StoredCursorError)?);
                    map.insert(h, GraphTime::from_ticks(v));
                }
                Ok(Cursor { watermark, recent: map, trimmed })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> GraphTime {
        GraphTime::from_unix_seconds(s)
    }

    #[test]
    fn suppresses_the_same_or_older_version_only() {
        let mut c = Cursor::default();
        c.record("a", t(100));
        assert!(c.already_delivered("a", t(100)));
        assert!(c.already_delivered("a", t(99)));
        assert!(!c.already_delivered("a", t(101)), "an update is a new version");
        assert!(!c.already_delivered("b", t(100)));
    }

    #[test]
    fn advance_prunes_outside_the_overlap_and_never_moves_back() {
        let mut c = Cursor::default();
        c.record("old", t(100));
        c.record("new", t(1000));
        c.advance(t(1000), Duration::from_secs(600), 10);
        assert_eq!(c.remembered(), 1);
        assert!(c.already_delivered("new", t(1000)) && !c.already_delivered("old", t(100)));
        c.advance(t(500), Duration::from_secs(600), 10);
        assert_eq!(c.watermark, Some(t(1000)));
    }

    #[test]
    fn overflow_drops_the_oldest_and_says_so() {
        let mut c = Cursor::default();
        for i in 0..10 {
            c.record(&format!("a{i}"), t(1000 + i));
        }
        c.advance(t(1010), Duration::from_secs(600), 4);
        assert_eq!(c.remembered(), 4);
        assert!(c.already_delivered("a9", t(1009)) && !c.already_delivered("a0", t(1000)));
        assert!(c.trimmed);
    }

    #[test]
    fn stored_form_is_versioned_and_round_trips() {
        let mut c = Cursor::default();
        c.record("x", t(5));
        c.advance(t(5), Duration::from_secs(1), 10);
        let json = serde_json::to_string(&c.to_stored()).unwrap_or_default();
        assert!(json.starts_with(r#"{"schema_version":"2","watermark":"1970-01-01T00:00:05.0000000Z""#), "{json}");
        let back: StoredCursor =
            serde_json::from_str(&json).unwrap_or(StoredCursor::V2 { watermark: None, recent: String::new(), trimmed: false });
        assert_eq!(Cursor::try_from(back), Ok(c));
    }

    #[test]
    fn version_1_cursors_are_still_read() {
        let v1 = r#"{"schema_version":"1","watermark":"1970-01-01T00:00:05.0000000Z","recent":{"x":"1970-01-01T00:00:05.0000000Z"},"trimmed":false}"#;
        let c = serde_json::from_str::<StoredCursor>(v1)
            .map_err(|e| e.to_string())
            .and_then(|s| Cursor::try_from(s).map_err(|e| e.to_string()));
        let Ok(c) = c else { panic!("{c:?}") };
        assert!(c.already_delivered("x", t(5)) && !c.already_delivered("y", t(5)));
    }

    /// The worst burst: every remembered slot full of long ids. The stored form stays under the
    /// bound because its size does not depend on the ids.
    #[test]
    fn the_stored_form_is_bounded_in_bytes_at_any_burst() {
        let mut c = Cursor::default();
        let id = "x".repeat(200);
        for i in 0..(MAX_RECENT as i64 + 5000) {
            c.record(&format!("{id}{i}"), t(10_000 + i % 60));
        }
        c.advance(t(10_060), Duration::from_secs(900), usize::MAX);
        assert_eq!(c.remembered(), MAX_RECENT);
        assert!(c.trimmed);
        let json = serde_json::to_string(&c.to_stored()).unwrap_or_default();
        assert!(json.len() <= MAX_STORED_BYTES, "{} bytes", json.len());
    }

    #[test]
    fn a_damaged_stored_form_is_an_error() {
        let bad = StoredCursor::V2 { watermark: None, recent: STANDARD.encode([1u8; 15]), trimmed: false };
        assert_eq!(Cursor::try_from(bad), Err(StoredCursorError));
        let bad = StoredCursor::V2 { watermark: None, recent: "***".into(), trimmed: false };
        assert_eq!(Cursor::try_from(bad), Err(StoredCursorError));
    }
}
