//! The verified-identity cache: one STS call per token, not one per request.
//!
//! kubectl reuses a token for up to 14 minutes and the apiserver asks the webhook again
//! whenever its own short cache misses, so the same token arrives many times. Entries are
//! keyed by the SHA-256 of the token (the token itself is never stored), live no longer
//! than the token is acceptable to STS and no longer than a configured maximum, and the
//! map is bounded (least recently used out first). Only STS verifications are cached;
//! mappings are applied fresh on every request, so a mapping change takes effect at once.
//! Concurrent requests for one token share a single STS call, and its answer (an error
//! too), whether caching is on or off.
//!
//! The map is moka's: per-entry expiry, O(1) bounded eviction off the lookup's critical
//! section, and request coalescing (`try_get_with`: one caller runs the STS call, the
//! others wait for its result; if that caller is cancelled, a waiting one takes over).
//!
//! upstream: pkg/server/server.go calls STS on every request; we cache because STS is the
//! slowest and most rate-limited step on every kubectl call's path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::future::Cache;
use moka::policy::EvictionPolicy;
use sha2::{Digest, Sha256};

use crate::token::{Token, VerifyError};

use super::authenticate::{BoxFuture, TokenVerifier, Verified};
use super::metrics::CacheMetrics;

/// Default number of cached identities.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Default longest life of a cache entry. Short of a token's 15 minutes, so a deleted IAM
/// role or revoked session stops working within this time even for a cached token.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(5 * 60);

type Key = [u8; 32];

/// How the cache is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// At most this many identities are kept (0 disables caching; coalescing stays).
    pub capacity: usize,
    /// No entry lives longer than this (zero disables caching; coalescing stays).
    pub max_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            max_ttl: DEFAULT_MAX_TTL,
        }
    }
}

impl CacheConfig {
    fn enabled(&self) -> bool {
        self.capacity > 0 && !self.max_ttl.is_zero()
    }

    /// How long `verified` may be kept: until the token's own end (converted to the
    /// monotonic clock) and at most `max_ttl`; zero (never served from the cache) when
    /// caching is off, the token has already expired or the clock jumped.
    fn ttl(&self, verified: &Verified) -> Duration {
        if !self.enabled() {
            return Duration::ZERO;
        }
        verified
            .expires_at
            .duration_since(SystemTime::now())
            .map_or(Duration::ZERO, |left| left.min(self.max_ttl))
    }
}

/// A coalesced answer that is not kept: moka hands a failed initialisation's error to
/// every waiting request without inserting anything, which is also how an identity that
/// may not be cached (caching off, or a token at its end) reaches them.
#[derive(Debug)]
enum NotKept {
    Failed(VerifyError),
    Uncacheable(Verified),
}

/// Each entry expires after its own time to live ([`CacheConfig::ttl`]), fixed when it
/// is inserted. The entry is the [`Verified`] itself (an `Arc` and a time): no wrapper
/// allocation per identity.
struct PerEntry(CacheConfig);

impl Expiry<Key, Verified> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Verified,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(self.0.ttl(value))
    }
}

/// A [`TokenVerifier`] that remembers what the one it wraps said.
pub struct IdentityCache {
    inner: Arc<dyn TokenVerifier>,
    config: CacheConfig,
    entries: Cache<Key, Verified>,
    metrics: CacheMetrics,
}

impl std::fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCache")
            .field("config", &self.config)
            .field("len", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

fn key(token: &Token) -> Key {
    Sha256::digest(token.expose().as_bytes()).into()
}

impl IdentityCache {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn TokenVerifier>, config: CacheConfig) -> Self {
        // Caching off still goes through the map, for its coalescing; nothing is inserted
        // then (see `NotKept`), and moka wants a capacity of at least one.
        let entries = Cache::builder()
            .max_capacity(config.capacity.max(1) as u64)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(PerEntry(config))
            .build();
        Self {
            inner,
            config,
            entries,
            metrics: CacheMetrics::default(),
        }
    }

    /// Counts hits and misses on `metrics` (without, on handles registered nowhere).
    #[must_use]
    pub fn with_metrics(mut self, metrics: CacheMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// How many identities are cached, after expired and evicted ones are swept.
    pub async fn len(&self) -> usize {
        self.entries.run_pending_tasks().await;
        usize::try_from(self.entries.entry_count()).unwrap_or(usize::MAX)
    }

    /// Whether nothing is cached.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    async fn verify_cached(&self, token: &Token) -> Result<Verified, VerifyError> {
        let led = AtomicBool::new(false);
        let init = async {
            led.store(true, Ordering::Relaxed);
            self.metrics.miss();
            let verified = self.inner.verify(token).await.map_err(NotKept::Failed)?;
            // The entry's time to live is computed again as it is inserted (`PerEntry`),
            // a moment later: no longer than this.
            match self.config.ttl(&verified) {
                Duration::ZERO => Err(NotKept::Uncacheable(verified)),
                _ => Ok(verified),
            }
        };
        let result = self.entries.try_get_with(key(token), init).await;
        // An answer that cost no STS call of our own (a cached one, or another request's
        // for the same token) counts as a hit.
        if !led.load(Ordering::Relaxed) {
            self.metrics.hit();
        }
        match result {
            Ok(verified) => Ok(verified),
            Err(not_kept) => match &*not_kept {
                NotKept::Failed(e) => Err(e.clone()),
                NotKept::Uncacheable(verified) => Ok(verified.clone()),
            },
        }
    }
}

impl TokenVerifier for IdentityCache {
    fn verify<'a>(&'a self, token: &'a Token) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        Box::pin(self.verify_cached(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Fake {
        calls: AtomicUsize,
        delay: Duration,
        valid_for: Duration,
        fail: bool,
    }

    impl Fake {
        fn new(delay: Duration, valid_for: Duration) -> Arc<Self> {
            Arc::new(Self {
                calls: AtomicUsize::new(0),
                delay,
                valid_for,
                fail: false,
            })
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl TokenVerifier for Fake {
        fn verify<'a>(&'a self, token: &'a Token) -> BoxFuture<'a, Result<Verified, VerifyError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                if !self.delay.is_zero() {
                    tokio::time::sleep(self.delay).await;
                }
                if self.fail {
                    return Err(VerifyError::Sts("boom".into()));
                }
                Ok(Verified {
                    identity: Identity {
                        user_id: token.expose().to_owned(),
                        ..Identity::default()
                    }
                    .into(),
                    expires_at: SystemTime::now() + self.valid_for,
                })
            })
        }
    }

    fn cache(fake: &Arc<Fake>, capacity: usize, max_ttl: Duration) -> IdentityCache {
        IdentityCache::new(fake.clone(), CacheConfig { capacity, max_ttl })
    }

    #[tokio::test]
    async fn second_request_is_a_hit() {
        let fake = Fake::new(Duration::ZERO, Duration::from_secs(900));
        let c = cache(&fake, 10, Duration::from_secs(60));
        let t = Token::new("tok-a");
        let a = c.verify(&t).await.unwrap();
        let b = c.verify(&t).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(fake.calls(), 1);
        c.verify(&Token::new("tok-b")).await.unwrap();
        assert_eq!(fake.calls(), 2);
        assert_eq!(c.len().await, 2);
    }

    #[tokio::test]
    async fn entries_expire_with_the_token() {
        let fake = Fake::new(Duration::ZERO, Duration::from_millis(50));
        let c = cache(&fake, 10, Duration::from_secs(60));
        let t = Token::new("tok");
        c.verify(&t).await.unwrap();
        c.verify(&t).await.unwrap();
        assert_eq!(fake.calls(), 1);
        tokio::time::sleep(Duration::from_millis(80)).await;
        c.verify(&t).await.unwrap();
        assert_eq!(fake.calls(), 2, "an entry outlived its token");
    }

    #[tokio::test]
    async fn entries_expire_at_the_configured_maximum() {
        let fake = Fake::new(Duration::ZERO, Duration::from_secs(900));
        let c = cache(&fake, 10, Duration::from_millis(50));
        let t = Token::new("tok");
        c.verify(&t).await.unwrap();
        c.verify(&t).await.unwrap();
        assert_eq!(fake.calls(), 1);
        tokio::time::sleep(Duration::from_millis(80)).await;
        c.verify(&t).await.unwrap();
        assert_eq!(fake.calls(), 2);
    }

    #[tokio::test]
    async fn expired_tokens_are_not_cached() {
        let fake = Fake::new(Duration::ZERO, Duration::ZERO);
        let c = cache(&fake, 10, Duration::from_secs(60));
        let t = Token::new("tok");
        c.verify(&t).await.unwrap();
        c.verify(&t).await.unwrap();
        assert_eq!(fake.calls(), 2);
        assert!(c.is_empty().await);
    }

    #[tokio::test]
    async fn size_is_bounded() {
        let fake = Fake::new(Duration::ZERO, Duration::from_secs(900));
        let c = cache(&fake, 3, Duration::from_secs(60));
        for i in 0..10 {
            c.verify(&Token::new(format!("tok-{i}"))).await.unwrap();
            let n = c.len().await;
            assert!(n <= 3, "{n} entries");
        }
        assert_eq!(c.len().await, 3);
        // The newest survived, the oldest went.
        c.verify(&Token::new("tok-9")).await.unwrap();
        assert_eq!(fake.calls(), 10);
        c.verify(&Token::new("tok-0")).await.unwrap();
        assert_eq!(fake.calls(), 11);
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let fake = Arc::new(Fake {
            calls: AtomicUsize::new(0),
            delay: Duration::ZERO,
            valid_for: Duration::from_secs(900),
            fail: true,
        });
        let c = cache(&fake, 10, Duration::from_secs(60));
        let t = Token::new("tok");
        assert!(matches!(c.verify(&t).await, Err(VerifyError::Sts(_))));
        assert!(matches!(c.verify(&t).await, Err(VerifyError::Sts(_))));
        assert_eq!(fake.calls(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_call() {
        let fake = Fake::new(Duration::from_millis(200), Duration::from_secs(900));
        // Caching disabled: what is measured is the coalescing alone.
        let c = Arc::new(cache(&fake, 0, Duration::ZERO));
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.verify(&Token::new("same")).await })
            })
            .collect();
        for t in tasks {
            let v = t.await.unwrap().unwrap();
            assert_eq!(v.identity.user_id, "same");
        }
        assert_eq!(fake.calls(), 1);
        // With nothing in flight and no cache, the next request calls again.
        c.verify(&Token::new("same")).await.unwrap();
        assert_eq!(fake.calls(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_failure() {
        let fake = Arc::new(Fake {
            calls: AtomicUsize::new(0),
            delay: Duration::from_millis(200),
            valid_for: Duration::from_secs(900),
            fail: true,
        });
        let c = Arc::new(cache(&fake, 10, Duration::from_secs(60)));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.verify(&Token::new("down")).await })
            })
            .collect();
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Err(VerifyError::Sts(_))));
        }
        // STS down: one call answered every waiting request, none queued behind it.
        assert_eq!(fake.calls(), 1);
    }

    // Paused time: only the fake's delay and the test's own steps wait, so the clock
    // jumps through them; a stranded follower would run into the 5 s timeout.
    #[tokio::test(start_paused = true)]
    async fn a_cancelled_leader_does_not_strand_followers() {
        let fake = Fake::new(Duration::from_millis(100), Duration::from_secs(900));
        let c = Arc::new(cache(&fake, 10, Duration::from_secs(60)));
        let leader = {
            let c = c.clone();
            tokio::spawn(async move { c.verify(&Token::new("t")).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let follower = {
            let c = c.clone();
            tokio::spawn(async move { c.verify(&Token::new("t")).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        let v = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("follower stranded")
            .unwrap()
            .unwrap();
        assert_eq!(v.identity.user_id, "t");
        assert_eq!(fake.calls(), 2);
    }
}
