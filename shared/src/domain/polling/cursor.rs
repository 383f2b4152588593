//! The cursor of one (integration, source): how far delivery has got, and which recent
//! versions were already delivered, so that overlap re-reads neither lose nor repeat alerts.
//!
//! A cursor is one DynamoDB item, and an item holds at most 400 KB: the remembered versions are
//! bounded in bytes (fixed-size id hashes, [`MAX_STORED_BYTES`]), whatever burst a tenant makes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::domain::time::GraphTime;

/// The most the stored cursor may take, well under DynamoDB's 400 KB item limit so that the
/// item's other attributes (lease, watermark, version) always fit beside it.
pub const MAX_STORED_BYTES: usize = 300_000;

/// One remembered version: an 8-byte id hash and the version's 8-byte ticks.
const ENTRY_BYTES: usize = 16;

/// What the unsettled items may take of it (see [`Cursor::add_pending`]).
const PENDING_BYTES: usize = 60_000;

/// Unsettled items remembered at most, each a JSON pair of its id and version.
pub const MAX_PENDING: usize = 600;

/// The longest id (as a JSON string, quotes and escapes included) kept as unsettled:
/// `MAX_PENDING` pairs of it fit in [`PENDING_BYTES`]. Graph's submission ids are GUIDs (38).
const MAX_PENDING_ID_JSON: usize = PENDING_BYTES / MAX_PENDING - 28;

/// Remembered versions that fit in what [`MAX_STORED_BYTES`] leaves beside the unsettled items
/// once base64-encoded, with 4 KB left for the JSON around them.
pub const MAX_RECENT: usize = (MAX_STORED_BYTES - PENDING_BYTES - 4096) / 4 * 3 / ENTRY_BYTES;

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
    /// Items delivered before they settled (a submission still under analysis): re-read by id
    /// until they do, oldest first; id → its version (the window field's value).
    pending: BTreeMap<String, GraphTime>,
    /// The last unsettled item re-read: the next round starts after it, so every unsettled
    /// item is re-read in turn however many there are.
    settle_after: Option<String>,
    /// Unsettled items not delivered yet: held for their verdict (an excluded verdict must reach
    /// nobody), delivered when it comes or when the wait for it ends. A subset of `pending`.
    held: BTreeSet<String>,
}

/// Why an unsettled item could not be remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingRefused {
    /// [`MAX_PENDING`] are remembered already.
    Full,
    /// Its id is longer than the stored form allows.
    LongId,
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

    /// Remembers an item delivered before it settled, so later runs re-read it. Bounded: the
    /// caller counts a refusal (that item's later verdict is then not delivered).
    pub fn add_pending(&mut self, id: &str, version: GraphTime) -> Result<(), PendingRefused> {
        if serde_json::to_string(id).map_or(usize::MAX, |j| j.len()) > MAX_PENDING_ID_JSON {
            return Err(PendingRefused::LongId);
        }
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(id) {
            return Err(PendingRefused::Full);
        }
        self.pending.insert(id.to_owned(), version);
        Ok(())
    }

    /// How many more unsettled items can be remembered.
    pub fn pending_room(&self) -> usize {
        MAX_PENDING.saturating_sub(self.pending.len())
    }

    /// Whether an id is short enough to be remembered as unsettled.
    pub fn fits_pending(&self, id: &str) -> bool {
        self.pending.contains_key(id) || serde_json::to_string(id).map_or(usize::MAX, |j| j.len()) <= MAX_PENDING_ID_JSON
    }

    /// Forgets an item once it settled (or no longer exists).
    pub fn settle(&mut self, id: &str) {
        self.pending.remove(id);
        self.held.remove(id);
    }

    /// Marks a remembered unsettled item as not delivered: it waits for its verdict.
    pub fn hold(&mut self, id: &str) {
        if self.pending.contains_key(id) {
            self.held.insert(id.to_owned());
        }
    }

    /// Whether an unsettled item still waits, undelivered, for its verdict.
    pub fn is_held(&self, id: &str) -> bool {
        self.held.contains(id)
    }

    /// How many unsettled items wait, undelivered, for their verdict.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// An item held for its verdict was delivered without it: it is still followed.
    pub fn unhold(&mut self, id: &str) {
        self.held.remove(id);
    }

    /// The next `n` unsettled items to re-read, in turn after the last round's (by id, wrapping
    /// around), each at most once; remembers where this round ended.
    pub fn pending_round(&mut self, n: usize) -> Vec<(String, GraphTime)> {
        let after = self.settle_after.take();
        let later = self.pending.iter().filter(|(id, _)| after.as_ref().is_none_or(|a| *id > a));
        let earlier = self.pending.iter().filter(|(id, _)| after.as_ref().is_some_and(|a| *id <= a));
        let round: Vec<(String, GraphTime)> = later.chain(earlier).take(n).map(|(id, t)| (id.clone(), *t)).collect();
        self.settle_after = round.last().map(|(id, _)| id.clone());
        round
    }

    /// How many unsettled items are remembered.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The unsettled items, oldest version first.
    pub fn pending(&self) -> Vec<(&str, GraphTime)> {
        let mut v: Vec<(&str, GraphTime)> = self.pending.iter().map(|(id, t)| (id.as_str(), *t)).collect();
        v.sort_by_key(|(id, t)| (*t, *id));
        v
    }

    /// Forgets unsettled items whose version is before `oldest` (Microsoft gave no verdict in
    /// time); returns how many.
    pub fn expire_pending(&mut self, oldest: GraphTime) -> usize {
        let before = self.pending.len();
        self.pending.retain(|_, t| *t >= oldest);
        let pending = &self.pending;
        self.held.retain(|id| pending.contains_key(id));
        before - self.pending.len()
    }

    pub fn to_stored(&self) -> StoredCursor {
        let mut packed = Vec::with_capacity(self.recent.len() * ENTRY_BYTES);
        for (h, v) in &self.recent {
            packed.extend_from_slice(&h.to_le_bytes());
            packed.extend_from_slice(&v.ticks().to_le_bytes());
        }
        let pending = self.pending.iter().map(|(id, t)| (id.clone(), t.ticks())).collect();
        // Only an id that is still unsettled is kept (so it is bounded like one).
        let settle_after = self.settle_after.clone().filter(|a| self.pending.contains_key(a));
        // By position in `pending` (sorted by id): a few bytes each, where ids would repeat up
        // to 72 bytes each and break the cursor's byte bound.
        let held = self.pending.keys().enumerate().filter(|(_, id)| self.held.contains(*id)).map(|(i, _)| i as u32).collect();
        StoredCursor::V2 { watermark: self.watermark, recent: STANDARD.encode(packed), trimmed: self.trimmed, pending, settle_after, held }
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
    /// `recent` is base64 of 16-byte entries (id hash, version ticks; little-endian), sorted;
    /// `pending` the unsettled items as `[id, version ticks]` pairs (absent when none), and
    /// `settle_after` the last of them re-read.
    #[serde(rename = "2")]
    V2 {
        watermark: Option<GraphTime>,
        recent: String,
        #[serde(default)]
        trimmed: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pending: Vec<(String, i64)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settle_after: Option<String>,
        /// Of `pending`, those not delivered yet (held for their verdict): their positions in
        /// `pending` sorted by id.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        held: Vec<u32>,
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
                let mut c = Cursor { watermark, recent: BTreeMap::new(), trimmed, ..Cursor::default() };
                for (id, v) in recent {
                    c.record(&id, v);
                }
                Ok(c)
            }
            StoredCursor::V2 { watermark, recent, trimmed, pending, settle_after, held } => {
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
                let pending: BTreeMap<String, GraphTime> = pending.into_iter().map(|(id, t)| (id, GraphTime::from_ticks(t))).collect();
                let held = held.into_iter().filter_map(|i| pending.keys().nth(i as usize).cloned()).collect();
                Ok(Cursor { watermark, recent: map, trimmed, pending, settle_after, held })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::polling::cursor::*;

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
        let back: StoredCursor = serde_json::from_str(&json).unwrap_or(StoredCursor::V2 {
            watermark: None,
            recent: String::new(),
            trimmed: false,
            pending: Vec::new(),
            settle_after: None,
            held: Vec::new(),
        });
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

    #[test]
    fn unsettled_items_are_kept_oldest_first_until_settled_or_expired() {
        let mut c = Cursor::default();
        assert_eq!(c.add_pending("b", t(20)), Ok(()));
        assert_eq!(c.add_pending("a", t(30)), Ok(()));
        assert_eq!(c.add_pending("c", t(10)), Ok(()));
        assert_eq!(c.pending(), [("c", t(10)), ("b", t(20)), ("a", t(30))]);
        c.settle("b");
        assert_eq!(c.expire_pending(t(15)), 1, "c is older than the oldest kept");
        assert_eq!(c.pending(), [("a", t(30))]);
        let json = serde_json::to_string(&c.to_stored()).unwrap_or_default();
        assert!(json.contains(r#""pending":[["a",300000000]]"#), "{json}");
        let back = serde_json::from_str::<StoredCursor>(&json)
            .map_err(|e| e.to_string())
            .and_then(|s| Cursor::try_from(s).map_err(|e| e.to_string()));
        assert_eq!(back, Ok(c));
        let mut c = Cursor::default();
        assert_eq!(c.add_pending(&"\u{0}".repeat(40), t(1)), Err(PendingRefused::LongId), "escapes count");
        for i in 0..MAX_PENDING {
            assert_eq!(c.add_pending(&format!("id{i}"), t(1)), Ok(()));
        }
        assert_eq!(c.add_pending("one more", t(1)), Err(PendingRefused::Full));
        assert_eq!(c.add_pending("id7", t(2)), Ok(()), "one already kept is updated");
    }

    #[test]
    fn rounds_reach_every_unsettled_item_in_turn_and_survive_storage() {
        let mut c = Cursor::default();
        for id in ["a", "b", "c", "d", "e"] {
            assert_eq!(c.add_pending(id, t(1)), Ok(()));
        }
        let ids = |r: Vec<(String, GraphTime)>| r.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        assert_eq!(ids(c.pending_round(2)), ["a", "b"]);
        let mut c = Cursor::try_from(c.to_stored()).unwrap_or_default();
        assert_eq!(ids(c.pending_round(2)), ["c", "d"]);
        assert_eq!(ids(c.pending_round(2)), ["e", "a"], "wraps around");
        c.settle("a");
        assert_eq!(
            ids(c.pending_round(10)),
            ["b", "c", "d", "e"],
            "each at most once per round; the marker that settled restarts from the first"
        );
        c.settle("e");
        let json = serde_json::to_string(&c.to_stored()).unwrap_or_default();
        assert!(!json.contains("settle_after"), "a settled marker is not kept: {json}");
    }

    /// The worst burst: every remembered slot full of long ids, and every unsettled slot full
    /// of the longest ids it keeps, escapes and all. The stored form stays under the bound.
    #[test]
    fn the_stored_form_is_bounded_in_bytes_at_any_burst() {
        let mut c = Cursor::default();
        let id = "x".repeat(200);
        for i in 0..(MAX_RECENT as i64 + 5000) {
            c.record(&format!("{id}{i}"), t(10_000 + i % 60));
        }
        let mut kept = 0;
        for i in 0..(MAX_PENDING * 2) {
            // `\u{1}` is written `\u0001`: 6 bytes of JSON for one of id.
            let long = format!("{}{i:05}", "\u{1}".repeat((MAX_PENDING_ID_JSON - 7) / 6));
            kept += usize::from(c.add_pending(&long, t(i64::MAX / 20_000_000 - i as i64)).is_ok());
        }
        assert_eq!(kept, MAX_PENDING);
        // The round marker names one of them too, and every one is held for its verdict.
        assert_eq!(c.pending_round(MAX_PENDING - 1).len(), MAX_PENDING - 1);
        let ids: Vec<String> = c.pending().iter().map(|(id, _)| (*id).to_owned()).collect();
        for id in &ids {
            c.hold(id);
        }
        assert_eq!(c.held_len(), MAX_PENDING);
        c.advance(t(10_060), Duration::from_secs(900), usize::MAX);
        assert_eq!(c.remembered(), MAX_RECENT);
        assert!(c.trimmed);
        let json = serde_json::to_string(&c.to_stored()).unwrap_or_default();
        assert!(json.len() <= MAX_STORED_BYTES, "{} bytes", json.len());
    }

    #[test]
    fn a_damaged_stored_form_is_an_error() {
        let bad = StoredCursor::V2 {
            watermark: None,
            recent: STANDARD.encode([1u8; 15]),
            trimmed: false,
            pending: Vec::new(),
            settle_after: None,
            held: Vec::new(),
        };
        assert_eq!(Cursor::try_from(bad), Err(StoredCursorError));
        let bad = StoredCursor::V2 {
            watermark: None,
            recent: "***".into(),
            trimmed: false,
            pending: Vec::new(),
            settle_after: None,
            held: Vec::new(),
        };
        assert_eq!(Cursor::try_from(bad), Err(StoredCursorError));
    }

    #[test]
    fn held_items_are_kept_with_the_pending_ones_and_go_when_they_settle_or_expire() {
        let mut c = Cursor::default();
        assert_eq!(c.add_pending("a", t(10)), Ok(()));
        assert_eq!(c.add_pending("b", t(20)), Ok(()));
        c.hold("a");
        c.hold("not pending");
        assert!(c.is_held("a") && !c.is_held("b") && !c.is_held("not pending"));
        let json = serde_json::to_string(&c.to_stored()).unwrap_or_default();
        assert!(json.contains(r#""held":[0]"#), "{json}");
        let back = Cursor::try_from(serde_json::from_str::<StoredCursor>(&json).unwrap_or(c.to_stored())).unwrap_or_default();
        assert!(back.is_held("a") && back.pending_len() == 2);
        // A cursor stored before holds existed reads as holding nothing.
        let old = json.replace(r#","held":[0]"#, "");
        let back = Cursor::try_from(serde_json::from_str::<StoredCursor>(&old).unwrap_or(c.to_stored())).unwrap_or_default();
        assert!(!back.is_held("a") && back.pending_len() == 2);
        let mut d = c.clone();
        d.unhold("a");
        assert!(!d.is_held("a") && d.pending_len() == 2, "delivered without its verdict, still followed");
        c.settle("a");
        assert!(!c.is_held("a"));
        c.add_pending("a", t(10)).unwrap_or_default();
        c.hold("a");
        assert_eq!(c.expire_pending(t(15)), 1);
        assert!(!c.is_held("a"));
    }
}
