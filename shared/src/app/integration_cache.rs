//! Integrations a warm function looked up by key, kept for a short while: a batch names a few
//! integrations, and the next batches usually name the same ones. Never a listing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::domain::integration::Integration;
use crate::error::CursorError;
use crate::ports::IntegrationSource;

/// More ids than this and the cache starts over: memory stays bounded however many
/// integrations one deployment has.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub struct IntegrationCache {
    ttl: Duration,
    /// Id → when it was read and what was read (None: no valid record, also worth remembering).
    entries: Mutex<HashMap<String, (Instant, Option<Integration>)>>,
}

impl IntegrationCache {
    pub fn new(ttl: Duration) -> Self {
        IntegrationCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// The named integrations that exist and validate, each read by key unless read within the
    /// cache's lifetime. Any failed read fails the whole lookup (retryable as the store says).
    pub async fn lookup<I: IntegrationSource>(&self, source: &I, ids: &[&str]) -> Result<Vec<Integration>, CursorError> {
        let now = Instant::now();
        let mut distinct: Vec<&str> = ids.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let mut found = Vec::new();
        let mut missing: Vec<&str> = Vec::new();
        {
            let entries = self.lock();
            for id in distinct {
                match entries.get(id) {
                    Some((at, i)) if now.duration_since(*at) < self.ttl => found.extend(i.clone()),
                    _ => missing.push(id),
                }
            }
        }
        let read = join_all(missing.iter().map(|id| source.integration(id))).await;
        let mut entries = self.lock();
        if entries.len() + missing.len() > MAX_ENTRIES {
            entries.clear();
        }
        for (id, r) in missing.iter().zip(read) {
            let i = r?;
            found.extend(i.clone());
            if !self.ttl.is_zero() {
                entries.insert((*id).to_owned(), (now, i));
            }
        }
        Ok(found)
    }

    /// Reads one record by key whatever the cache holds, and keeps what it read.
    pub async fn refresh<I: IntegrationSource>(&self, source: &I, id: &str) -> Result<Option<Integration>, CursorError> {
        let now = Instant::now();
        let found = source.integration(id).await?;
        if !self.ttl.is_zero() {
            let mut entries = self.lock();
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(id.to_owned(), (now, found.clone()));
        }
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<Integration>)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An integration source read through a cache: by key, each id kept for the cache's lifetime.
pub struct Cached<I> {
    pub source: I,
    pub cache: IntegrationCache,
}

impl<I> Cached<I> {
    pub fn new(source: I, cache: IntegrationCache) -> Self {
        Cached { source, cache }
    }
}

impl<I: IntegrationSource> IntegrationSource for Cached<I> {
    async fn integrations(&self) -> Result<Vec<Integration>, CursorError> {
        self.source.integrations().await
    }

    async fn integration(&self, id: &str) -> Result<Option<Integration>, CursorError> {
        Ok(self.cache.lookup(&self.source, &[id]).await?.into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::adapters::local::StaticIntegrations;

    /// Counts reads by key; listing is not allowed.
    struct Counting(StaticIntegrations, AtomicUsize);

    impl IntegrationSource for Counting {
        async fn integrations(&self) -> Result<Vec<Integration>, CursorError> {
            panic!("a lookup never lists")
        }
        async fn integration(&self, id: &str) -> Result<Option<Integration>, CursorError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.integration(id).await
        }
    }

    fn source() -> Counting {
        Counting(StaticIntegrations(vec![Integration::new("a", "t", "c", "s"), Integration::new("b", "t", "c", "s")]), AtomicUsize::new(0))
    }

    #[tokio::test]
    async fn reads_only_the_named_ids_once_within_the_lifetime() {
        let s = source();
        let cache = IntegrationCache::new(Duration::from_secs(60));
        let got = cache.lookup(&s, &["a", "a", "nope"]).await.unwrap();
        assert_eq!(got.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(s.1.load(Ordering::SeqCst), 2, "one read per distinct id");
        let again = cache.lookup(&s, &["a", "a", "nope"]).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(s.1.load(Ordering::SeqCst), 2, "answered from the cache, the unknown id too");
        cache.lookup(&s, &["b"]).await.unwrap();
        assert_eq!(s.1.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_zero_lifetime_reads_every_time() {
        let s = source();
        let cache = IntegrationCache::new(Duration::ZERO);
        cache.lookup(&s, &["a"]).await.unwrap();
        cache.lookup(&s, &["a"]).await.unwrap();
        assert_eq!(s.1.load(Ordering::SeqCst), 2);
    }
}
