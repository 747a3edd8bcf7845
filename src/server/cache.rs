//! The verified-identity cache: one STS call per token, not one per request.
//!
//! kubectl reuses a token for up to 14 minutes and the apiserver asks the webhook again
//! whenever its own short cache misses, so the same token arrives many times. Entries are
//! keyed by the SHA-256 of the token (the token itself is never stored), live no longer
//! than the token is acceptable to STS and no longer than a configured maximum, and the
//! map is bounded (the least used out first). Only STS verifications are cached;
//! mappings are applied fresh on every request, so a mapping change takes effect at once.
//! Concurrent requests for one token share a single STS call, and its answer (an error
//! too), whether caching is on or off.
//!
//! The map is quick_cache's: a bounded, sharded map (CLOCK-Pro eviction: a lookup only
//! marks its entry, an insert evicts at most a few) that keeps each entry inline, with
//! request coalescing (`get_value_or_guard_async`: one caller gets a guard and runs the
//! STS call, the others wait for what it puts in; if that caller is cancelled and drops
//! its guard, a waiting one gets the guard and calls instead). The expiry is in the
//! entry and checked on every read; an expired entry is replaced by the next request for
//! its token, or evicted like any other when the map is full.
//!
//! upstream: pkg/server/server.go calls STS on every request; we cache because STS is the
//! slowest and most rate-limited step on every kubectl call's path.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use quick_cache::Weighter;
use quick_cache::sync::Cache;
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

/// What a verification leaves in the map for its token.
#[derive(Debug, Clone)]
enum Answer {
    /// An identity served until `until`.
    Kept { verified: Verified, until: Instant },
    /// A failure, or an identity that may not be cached (caching off, a token at its
    /// end): handed to the requests waiting on this verification, never kept (see
    /// [`Weigh`]), so the next request verifies again.
    Passed(Result<Verified, VerifyError>),
}

/// Every kept identity weighs one; a passed answer weighs more than the whole cache, so
/// the map refuses it, while the requests waiting on its guard still receive it.
#[derive(Debug, Clone, Copy)]
struct Weigh;

impl Weighter<Key, Answer> for Weigh {
    fn weight(&self, _key: &Key, answer: &Answer) -> u64 {
        match answer {
            Answer::Kept { .. } => 1,
            Answer::Passed(_) => u64::MAX,
        }
    }
}

/// A [`TokenVerifier`] that remembers what the one it wraps said.
pub struct IdentityCache {
    inner: Arc<dyn TokenVerifier>,
    config: CacheConfig,
    entries: Cache<Key, Answer, Weigh>,
    metrics: CacheMetrics,
}

impl std::fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCache")
            .field("config", &self.config)
            .field("len", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn key(token: &Token) -> Key {
    Sha256::digest(token.expose().as_bytes()).into()
}

impl IdentityCache {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn TokenVerifier>, config: CacheConfig) -> Self {
        // Caching off still goes through the map, for its coalescing: with no weight to
        // spare nothing is kept, and waiting requests still get the answer.
        let capacity = if config.enabled() { config.capacity } else { 0 };
        let entries = Cache::with_weighter(capacity, capacity as u64, Weigh);
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

    /// How many identities are cached (expired ones included until replaced or evicted).
    pub async fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    async fn verify_cached(&self, token: &Token) -> Result<Verified, VerifyError> {
        let key = key(token);
        loop {
            let guard = match self.entries.get_value_or_guard_async(&key).await {
                Ok(Answer::Kept { verified, until }) => {
                    if Instant::now() < until {
                        self.metrics.hit();
                        return Ok(verified);
                    }
                    // Expired: out, unless another request has replaced it meanwhile;
                    // then look again (and most likely verify).
                    self.entries.remove_if(
                        &key,
                        |a| matches!(a, Answer::Kept { until: u, .. } if *u == until),
                    );
                    continue;
                }
                // Another request's verification, finished while this one waited.
                Ok(Answer::Passed(result)) => {
                    self.metrics.hit();
                    return result;
                }
                Err(guard) => guard,
            };
            self.metrics.miss();
            let result = self.inner.verify(token).await;
            let answer = match result {
                Ok(verified) => match self.config.ttl(&verified) {
                    Duration::ZERO => Answer::Passed(Ok(verified)),
                    ttl => Answer::Kept {
                        verified,
                        until: Instant::now() + ttl,
                    },
                },
                Err(e) => Answer::Passed(Err(e)),
            };
            // Refused by the map when it is a passed answer: the waiting requests have it.
            let _ = guard.insert(answer.clone());
            return match answer {
                Answer::Kept { verified, .. } => Ok(verified),
                Answer::Passed(result) => result,
            };
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
        // The newest survived (what the cache holds when full is not a first-in queue:
        // the first entries of an empty cache are kept as hot, and a run of tokens seen
        // once evicts among themselves).
        c.verify(&Token::new("tok-9")).await.unwrap();
        assert_eq!(fake.calls(), 10);
        // Seven tokens went: asking for all ten again calls STS at least seven times.
        for i in 0..10 {
            c.verify(&Token::new(format!("tok-{i}"))).await.unwrap();
        }
        assert!(fake.calls() >= 17, "{} calls", fake.calls());
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
