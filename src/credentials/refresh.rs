//! Credentials kept in memory and fetched again ahead of their expiry.
//!
//! Expiring credentials are renewed [`REFRESH_BEFORE`] they expire; credentials without
//! an expiry (static keys) are looked up again after [`STATIC_LIFETIME`], as the SDK's
//! lazy cache does, so rotated keys in a file are picked up. Callers that find the
//! credentials due wait on one lock: one fetch serves every concurrent caller. If a
//! renewal fails while the kept credentials are still valid, they are used and the
//! failure logged; it is tried again on the next call.

use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider;

/// Expiring credentials are renewed this long before they expire.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// How long credentials without an expiry are kept.
pub const STATIC_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// When credentials fetched at `fetched` with `expiry` are due to be fetched again.
pub fn refresh_at(fetched: SystemTime, expiry: Option<SystemTime>) -> SystemTime {
    match expiry {
        Some(expiry) => expiry.checked_sub(REFRESH_BEFORE).unwrap_or(expiry),
        None => fetched + STATIC_LIFETIME,
    }
}

/// Kept credentials and when to fetch them again.
#[derive(Debug)]
struct Kept {
    credentials: Credentials,
    refresh_at: SystemTime,
}

/// Credentials kept until due (see the module's documentation).
#[derive(Debug, Default)]
pub struct Cache {
    kept: tokio::sync::Mutex<Option<Kept>>,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The kept credentials, or those `fetch` gives when they are due.
    pub async fn get_or_fetch<Fut>(&self, fetch: impl FnOnce() -> Fut) -> provider::Result
    where
        Fut: Future<Output = provider::Result>,
    {
        let mut kept = self.kept.lock().await;
        let now = SystemTime::now();
        if let Some(k) = kept.as_ref()
            && now < k.refresh_at
        {
            return Ok(k.credentials.clone());
        }
        match fetch().await {
            Ok(credentials) => {
                *kept = Some(Kept {
                    refresh_at: refresh_at(now, credentials.expiry()),
                    credentials: credentials.clone(),
                });
                Ok(credentials)
            }
            Err(e) => match kept.as_ref() {
                Some(k) if k.credentials.expiry().is_none_or(|exp| now < exp) => {
                    tracing::warn!(
                        "could not renew AWS credentials, using the current ones until they expire: {}",
                        crate::error::error_chain(&e)
                    );
                    Ok(k.credentials.clone())
                }
                _ => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use aws_credential_types::provider::error::CredentialsError;

    #[test]
    fn expiring_credentials_are_renewed_five_minutes_early_static_ones_every_fifteen() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        assert_eq!(
            refresh_at(t, Some(t + hour)),
            t + hour - Duration::from_secs(300)
        );
        assert_eq!(refresh_at(t, None), t + Duration::from_secs(900));
        // Already within the window: due at once.
        assert!(refresh_at(t, Some(t + Duration::from_secs(60))) < t);
    }

    /// Hands out credentials expiring `lifetime` from now, or fails once `fail` is set.
    #[derive(Debug)]
    struct Counting {
        cache: Cache,
        calls: AtomicU32,
        lifetime: Duration,
        fail: AtomicBool,
    }

    impl Counting {
        async fn fetch(&self) -> provider::Result {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            if self.fail.load(Ordering::SeqCst) {
                return Err(CredentialsError::provider_error("down"));
            }
            let expiry = SystemTime::now() + self.lifetime;
            Ok(Credentials::new(
                format!("AKID{n}"),
                "s",
                None,
                Some(expiry),
                "t",
            ))
        }

        async fn credentials(&self) -> provider::Result {
            self.cache.get_or_fetch(|| self.fetch()).await
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::SeqCst)
        }
    }

    fn counting(lifetime: Duration) -> Arc<Counting> {
        Arc::new(Counting {
            cache: Cache::new(),
            calls: AtomicU32::new(0),
            lifetime,
            fail: AtomicBool::new(false),
        })
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_fresh_credentials_are_kept() {
        let r = counting(Duration::from_secs(3600));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let r = r.clone();
                tokio::spawn(async move { r.credentials().await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().access_key_id(), "AKID0");
        }
        assert_eq!(r.credentials().await.unwrap().access_key_id(), "AKID0");
        assert_eq!(r.calls(), 1);
    }

    #[tokio::test]
    async fn credentials_due_are_fetched_again_and_kept_if_renewal_fails() {
        // Four minutes of life: inside the five-minute window, so due on every call.
        let r = counting(Duration::from_secs(240));
        assert_eq!(r.credentials().await.unwrap().access_key_id(), "AKID0");
        assert_eq!(r.credentials().await.unwrap().access_key_id(), "AKID1");
        r.fail.store(true, Ordering::SeqCst);
        // Still valid: kept despite the failure.
        assert_eq!(r.credentials().await.unwrap().access_key_id(), "AKID1");
        assert_eq!(r.calls(), 3);
        let r = counting(Duration::from_secs(240));
        r.fail.store(true, Ordering::SeqCst);
        assert!(r.credentials().await.is_err());
    }
}
