//! In-process stand-ins for the webhook's two dependencies, for tests that run the
//! handler or the listener without STS or a mapping backend.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use aws_iam_authenticator::identity::Identity;
use aws_iam_authenticator::server::authenticate::BoxFuture;
use aws_iam_authenticator::server::{IdentityMapper, MappedUser, TokenVerifier, Verified};
use aws_iam_authenticator::token::{Token, VerifyError};

/// Answers every token with `answer` (valid for 15 minutes), after `delay`. The token
/// `panic` makes it panic, as a verifier bug would.
pub struct FakeVerifier {
    pub answer: Result<Identity, VerifyError>,
    pub delay: Duration,
}

impl FakeVerifier {
    /// Answers at once.
    pub fn answering(answer: Result<Identity, VerifyError>) -> Self {
        Self {
            answer,
            delay: Duration::ZERO,
        }
    }
}

impl TokenVerifier for FakeVerifier {
    fn verify<'a>(&'a self, token: &'a Token) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        Box::pin(async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if token.expose() == "panic" {
                panic!("verifier bug");
            }
            self.answer.clone().map(|identity| Verified {
                identity: identity.into(),
                expires_at: SystemTime::now() + Duration::from_secs(900),
            })
        })
    }
}

/// Maps a canonical ARN found in `users` (else `everyone`, when set) and denies the
/// rest as the chain does; ready while `ready` holds.
pub struct FakeMapper {
    pub users: BTreeMap<String, MappedUser>,
    pub everyone: Option<MappedUser>,
    pub ready: Arc<AtomicBool>,
}

impl FakeMapper {
    /// A ready mapper of `users` only.
    pub fn of(users: impl IntoIterator<Item = (String, MappedUser)>) -> Self {
        Self {
            users: users.into_iter().collect(),
            everyone: None,
            ready: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Maps every identity to `user`, ready while `ready` holds.
    pub fn everyone_as(user: MappedUser, ready: Arc<AtomicBool>) -> Self {
        Self {
            users: BTreeMap::new(),
            everyone: Some(user),
            ready,
        }
    }
}

impl IdentityMapper for FakeMapper {
    fn map<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, Result<MappedUser, String>> {
        let r = self
            .users
            .get(&identity.canonical_arn)
            .or(self.everyone.as_ref())
            .cloned()
            .ok_or_else(|| format!("ARN is not mapped: {}", identity.canonical_arn));
        Box::pin(async move { r })
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
