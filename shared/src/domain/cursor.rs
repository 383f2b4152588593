//! The cursor of one (integration, source): how far delivery has got, and which recent
//! versions were already delivered, so that overlap re-reads neither lose nor repeat alerts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::time::GraphTime;

/// What a cursor promises: every alert version with `lastUpdateDateTime < watermark` that was
/// visible when it was read has been delivered; `recent` names the delivered versions at or
/// after `watermark − overlap`, so the next overlapping read can skip them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cursor {
    pub watermark: Option<GraphTime>,
    /// Alert id → the newest version of it delivered.
    pub recent: BTreeMap<String, GraphTime>,
    /// Set when `recent` had to be trimmed: some overlap re-reads may be delivered twice
    /// (the processor's dedup removes them); never a gap.
    pub trimmed: bool,
}

/// The persisted form, tagged by schema version so readers accept every version in the wild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "schema_version")]
pub enum StoredCursor {
    #[serde(rename = "1")]
    V1(Cursor),
}

impl From<StoredCursor> for Cursor {
    fn from(s: StoredCursor) -> Self {
        match s {
            StoredCursor::V1(c) => c,
        }
    }
}

impl Cursor {
    /// True when this exact version (or a newer one of the same alert) was delivered already.
    pub fn already_delivered(&self, id: &str, version: GraphTime) -> bool {
        self.recent.get(id).is_some_and(|v| *v >= version)
    }

    pub fn record(&mut self, id: &str, version: GraphTime) {
        match self.recent.get_mut(id) {
            Some(v) if *v >= version => {}
            Some(v) => *v = version,
            None => {
                self.recent.insert(id.to_owned(), version);
            }
        }
    }

    /// Moves the watermark forward (never back) and forgets versions the next read cannot
    /// return; keeps at most `max_recent` ids, dropping the oldest first.
    pub fn advance(&mut self, watermark: GraphTime, overlap: Duration, max_recent: usize) {
        let w = match self.watermark {
            Some(old) if old > watermark => old,
            _ => watermark,
        };
        self.watermark = Some(w);
        let floor = w.minus(overlap);
        self.recent.retain(|_, v| *v >= floor);
        if self.recent.len() > max_recent {
            let mut by_age: Vec<(GraphTime, String)> = self.recent.iter().map(|(k, v)| (*v, k.clone())).collect();
            by_age.sort();
            let excess = self.recent.len() - max_recent;
            for (_, id) in by_age.into_iter().take(excess) {
                self.recent.remove(&id);
            }
            self.trimmed = true;
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
        assert_eq!(c.recent.keys().collect::<Vec<_>>(), vec!["new"]);
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
        assert_eq!(c.recent.len(), 4);
        assert!(c.recent.contains_key("a9") && !c.recent.contains_key("a0"));
        assert!(c.trimmed);
    }

    #[test]
    fn stored_form_is_versioned() {
        let mut c = Cursor::default();
        c.record("x", t(5));
        c.advance(t(5), Duration::from_secs(1), 10);
        let json = serde_json::to_string(&StoredCursor::V1(c.clone())).unwrap_or_default();
        assert!(json.starts_with(r#"{"schema_version":"1","watermark":"1970-01-01T00:00:05.0000000Z""#), "{json}");
        let back: StoredCursor = serde_json::from_str(&json).unwrap_or(StoredCursor::V1(Cursor::default()));
        assert_eq!(Cursor::from(back), c);
    }
}
