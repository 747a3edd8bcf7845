//! The verified-identity cache: one STS call per token, not one per request.
//!
//! kubectl reuses a token for up to 14 minutes and the apiserver asks the webhook again
//! whenever its own short cache misses, so the same token arrives many times. Entries are
//! keyed by the SHA-256 of the token (the token itself is never stored), live no longer
//! than the token is acceptable to STS and no longer than a configured maximum, and the
//! map is bounded. Only STS verifications are cached; mappings are applied fresh on every
//! request, so a mapping change takes effect at once. Concurrent requests for one token
//! share a single STS call.
//!
//! upstream: pkg/server/server.go calls STS on every request; we cache because STS is the
//! slowest and most rate-limited step on every kubectl call's path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::metrics;
use crate::token::{Token, VerifyError};

use super::authenticate::{BoxFuture, TokenVerifier, Verified};

/// Default number of cached identities.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Default longest life of a cache entry. Short of a token's 15 minutes, so a deleted IAM
/// role or revoked session stops working within this time even for a cached token.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(5 * 60);

type Key = [u8; 32];
type Outcome = Option<Result<Verified, VerifyError>>;

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

#[derive(Debug)]
struct Entry {
    verified: Verified,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Key, Entry>,
    in_flight: HashMap<Key, watch::Receiver<Outcome>>,
}

/// A [`TokenVerifier`] that remembers what the one it wraps said.
pub struct IdentityCache {
    inner: Arc<dyn TokenVerifier>,
    config: CacheConfig,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCache")
            .field("config", &self.config)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Removes a key from the in-flight map when the call that owns it ends, however it ends
/// (a cancelled leader must not leave followers waiting forever).
struct InFlight {
    state: Arc<Mutex<State>>,
    key: Key,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.state).in_flight.remove(&self.key);
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state stays consistent even if a holder panicked: every critical section is a
    // single map operation.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn key(token: &Token) -> Key {
    Sha256::digest(token.expose().as_bytes()).into()
}

impl IdentityCache {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn TokenVerifier>, config: CacheConfig) -> Self {
        Self {
            inner,
            config,
            state: Arc::default(),
        }
    }

    /// How many identities are cached (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn enabled(&self) -> bool {
        self.config.capacity > 0 && !self.config.max_ttl.is_zero()
    }

    async fn verify_cached(&self, token: &Token) -> Result<Verified, VerifyError> {
        let key = key(token);
        loop {
            let (tx, rx) = {
                let mut state = lock(&self.state);
                let now = Instant::now();
                if let Some(e) = state.entries.get(&key) {
                    if e.deadline > now {
                        metrics::global().token_cache_hits.inc();
                        return Ok(e.verified.clone());
                    }
                    state.entries.remove(&key);
                }
                match state.in_flight.get(&key) {
                    Some(rx) => (None, rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        state.in_flight.insert(key, rx.clone());
                        (Some(tx), rx)
                    }
                }
            };
            if let Some(tx) = tx {
                return self.lead(key, token, tx).await;
            }
            // Someone is already asking STS about this token: wait for their answer. It
            // counts as a hit, since it costs no STS call of its own.
            let mut rx = rx;
            let outcome = rx.wait_for(Option::is_some).await.map(|v| (*v).clone());
            match outcome {
                Ok(Some(result)) => {
                    metrics::global().token_cache_hits.inc();
                    return result;
                }
                // The leader was cancelled before answering: try again (maybe as leader).
                _ => continue,
            }
        }
    }

    async fn lead(
        &self,
        key: Key,
        token: &Token,
        tx: watch::Sender<Outcome>,
    ) -> Result<Verified, VerifyError> {
        let _in_flight = InFlight {
            state: Arc::clone(&self.state),
            key,
        };
        metrics::global().token_cache_misses.inc();
        let result = self.inner.verify(token).await;
        if let Ok(v) = &result {
            self.insert(key, v.clone());
        }
        // Followers may have gone away; nobody listening is fine.
        let _ = tx.send(Some(result.clone()));
        result
    }

    fn insert(&self, key: Key, verified: Verified) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        // The token's own end, converted to the monotonic clock; a token that has already
        // expired (or a clock jump) is not cached at all.
        let Ok(left) = verified.expires_at.duration_since(SystemTime::now()) else {
            return;
        };
        let deadline = now + left.min(self.config.max_ttl);
        if deadline <= now {
            return;
        }
        let mut state = lock(&self.state);
        if state.entries.len() >= self.config.capacity && !state.entries.contains_key(&key) {
            state.entries.retain(|_, e| e.deadline > now);
            if state.entries.len() >= self.config.capacity {
                // Still full of live entries: drop the one closest to its end.
                if let Some(oldest) = state
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.deadline)
                    .map(|(k, _)| *k)
                {
                    state.entries.remove(&oldest);
                }
            }
        }
        state.entries.insert(key, Entry { verified, deadline });
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
                    },
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
        assert_eq!(c.len(), 2);
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
        assert!(c.is_empty());
    }

    #[tokio::test]
    async fn size_is_bounded() {
        let fake = Fake::new(Duration::ZERO, Duration::from_secs(900));
        let c = cache(&fake, 3, Duration::from_secs(60));
        for i in 0..10 {
            c.verify(&Token::new(format!("tok-{i}"))).await.unwrap();
            assert!(c.len() <= 3, "{} entries", c.len());
        }
        assert_eq!(c.len(), 3);
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
        let tasks: Vec<_> = (0..32)
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
        assert!(lock(&c.state).in_flight.is_empty());
        // With nothing in flight and no cache, the next request calls again.
        c.verify(&Token::new("same")).await.unwrap();
        assert_eq!(fake.calls(), 2);
    }

    #[tokio::test]
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
