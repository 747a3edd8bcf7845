//! `POST /authenticate`: TokenReview in, verify with STS, map, TokenReview out.
//!
//! The verifier and the mapper sit behind [`TokenVerifier`] and [`IdentityMapper`], so the
//! handler can be exercised without STS or a mapping backend.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Body;
use tracing::Instrument as _;

use crate::identity::Identity;
use crate::token::{Token, VerifyError};

use super::answer::Accepted;
use super::body::read;
use super::budget::BodyBudget;
use super::metrics::WebhookMetrics;
use super::outcome::{Denial, DenyStatus, Outcome, Unavailable};
use super::review::TokenReviewRequest;

pub use super::answer::uid;
pub use super::body::MAX_BODY_BYTES;
pub use super::metrics::AuthResult;

/// A boxed, sendable future: what the object-safe traits below return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A token STS has vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who signed the token; shared, so an answer from the identity cache costs no copy.
    pub identity: Arc<Identity>,
    /// When the token stops being acceptable (its `X-Amz-Date` plus STS's 15 minutes):
    /// the identity cache never keeps the entry longer.
    pub expires_at: SystemTime,
}

/// Checks a token and asks STS who signed it.
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token`.
    fn verify<'a>(&'a self, token: &'a Token) -> BoxFuture<'a, Result<Verified, VerifyError>>;
}

/// The Kubernetes user an identity maps to: the mapper chain's own type.
pub use crate::mapper::chain::MappedUser;

/// Turns a verified identity into a Kubernetes user (the mapper chain).
pub trait IdentityMapper: Send + Sync + 'static {
    /// Maps `identity`; the error is the deny reason (safe to log).
    fn map<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, Result<MappedUser, String>>;

    /// Whether every backend has loaded its source (readiness).
    fn is_ready(&self) -> bool;
}

/// The `/authenticate` handler.
#[derive(Clone)]
pub struct Authenticate {
    verifier: Arc<dyn TokenVerifier>,
    mapper: Arc<dyn IdentityMapper>,
    scrubbed_accounts: Arc<HashSet<String>>,
    deny: DenyStatus,
    budget: BodyBudget,
    metrics: WebhookMetrics,
}

impl std::fmt::Debug for Authenticate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticate")
            .field("scrubbed_accounts", &self.scrubbed_accounts)
            .field("deny", &self.deny)
            .finish_non_exhaustive()
    }
}

impl Authenticate {
    /// A handler verifying with `verifier`, mapping with `mapper`, and scrubbing the
    /// identities of `scrubbed_accounts` (`server.scrubbedAccounts`). Denials are answered
    /// 200 (see [`DenyStatus`]).
    pub fn new(
        verifier: Arc<dyn TokenVerifier>,
        mapper: Arc<dyn IdentityMapper>,
        scrubbed_accounts: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            verifier,
            mapper,
            scrubbed_accounts: Arc::new(scrubbed_accounts.into_iter().collect()),
            deny: DenyStatus::default(),
            budget: BodyBudget::default(),
            metrics: WebhookMetrics::default(),
        }
    }

    /// Collects request bodies within `budget` (shared by every request of the process).
    #[must_use]
    pub fn with_body_budget(mut self, budget: BodyBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Records its requests on `metrics` (without, on handles registered nowhere).
    #[must_use]
    pub fn with_metrics(mut self, metrics: WebhookMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Its metric handles.
    pub fn metrics(&self) -> &WebhookMetrics {
        &self.metrics
    }

    /// Answers definitive denials as `deny` says.
    #[must_use]
    pub fn with_deny_status(mut self, deny: DenyStatus) -> Self {
        self.deny = deny;
        self
    }

    /// Whether the mapper is ready.
    pub fn is_ready(&self) -> bool {
        self.mapper.is_ready()
    }

    /// Whether `account`'s identities may appear in logs and responses (upstream
    /// `isLoggableIdentity`).
    pub fn is_loggable(&self, account: &str) -> bool {
        !self.scrubbed_accounts.contains(account)
    }

    /// Handles one request: read, verdict, response, under one span carrying the peer
    /// (`client`), method and path. Never panics on input.
    pub async fn handle<B>(&self, req: Request<B>, client: SocketAddr) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let start = Instant::now();
        let (parts, body) = req.into_parts();
        let span = tracing::info_span!(
            "authenticate",
            path = parts.uri.path(),
            client = %crate::logging::Peer(client),
            method = parts.method.as_str(),
        );
        let outcome = async {
            let body = match read(&parts.method, body, &self.budget, client.ip()).await {
                Ok(body) => body,
                Err(malformed) => return Outcome::Malformed(malformed),
            };
            match body.review() {
                Ok(review) => self.verdict(review).await,
                Err(malformed) => Outcome::Malformed(malformed),
            }
        }
        .instrument(span)
        .await;
        self.metrics
            .observe(outcome.label(), start.elapsed().as_secs_f64());
        outcome.into_response(self.deny)
    }

    /// The verdict on a well-formed TokenReview.
    async fn verdict(&self, review: TokenReviewRequest<'_>) -> Outcome {
        let version = review.response_api_version();
        let token = Token::new(review.spec.token.0.into_owned());
        if token.expose().is_empty() {
            return denied(
                version,
                Denial::InvalidToken,
                "invalid token: empty",
                "token is empty",
            );
        }
        let verified = match self.verifier.verify(&token).await {
            Ok(v) => v,
            Err(e) => return verify_failed(version, &e, token.expose()),
        };
        let id = &verified.identity;
        let loggable = self.is_loggable(&id.account_id);
        let user = match self.mapper.map(id).await {
            Ok(u) => u,
            Err(reason) => {
                // A mapping failure's reason may name the caller's ARN or username: a
                // scrubbed account's answer carries only the generic text.
                let answer = if loggable {
                    reason.clone()
                } else {
                    crate::mapper::chain::Denied::NOT_MAPPED.to_owned()
                };
                return denied(version, Denial::NotMapped, answer, &reason);
            }
        };
        let user = Accepted::new(id, user, loggable);
        // One line per review, the cached ones too: who came in, as whom. It carries what
        // upstream splits over an "STS response" line and this one; that line would claim
        // an STS call even when the cache answered.
        // upstream: pkg/server/server.go logs "STS response" and "access granted" for each
        // review; we log one line with both lines' fields because a second line doubles
        // the log for no new fact, and is wrong for a cached identity.
        tracing::info!(
            username = user.username,
            uid = user.uid,
            groups = ?crate::logging::StringList(&user.groups),
            arn = loggable.then_some(id.arn.as_str()),
            accountid = loggable.then_some(id.account_id.as_str()),
            userid = loggable.then_some(id.user_id.as_str()),
            accesskeyid = loggable.then_some(id.access_key_id.as_str()),
            session = loggable.then_some(id.session_name.as_str()),
            stsendpoint = id.sts_endpoint,
            "access granted"
        );
        Outcome::Allowed { version, user }
    }
}

/// A definitive denial: `answer` is what a 403 answer would say, `log` what our log says.
fn denied(version: &'static str, denial: Denial, answer: impl Into<String>, log: &str) -> Outcome {
    tracing::warn!(error = log, "access denied");
    Outcome::Denied {
        version,
        denial,
        reason: answer.into(),
    }
}

/// The outcome of a verifier error: throttling and STS outages are retried by the
/// apiserver; everything else is the token's fault.
fn verify_failed(version: &'static str, e: &VerifyError, token: &str) -> Outcome {
    let log = redact(&e.to_string(), token);
    let cause = match e {
        VerifyError::Format(_) | VerifyError::Plain(_) | VerifyError::Host(_) => {
            return denied(version, Denial::InvalidToken, "invalid token", &log);
        }
        VerifyError::Sts(_) => {
            return denied(
                version,
                Denial::StsRejected,
                "sts getCallerIdentity failed",
                &log,
            );
        }
        VerifyError::Throttled(_) => Unavailable::Throttled,
        VerifyError::StsUnavailable {
            timed_out: true, ..
        } => Unavailable::StsTimeout,
        VerifyError::StsUnavailable { .. } => Unavailable::StsFailed,
    };
    tracing::warn!(error = log, "no verdict: STS unavailable");
    Outcome::Unavailable { version, cause }
}

/// Keeps anything secret out of a message that is about to be logged: the token itself
/// and, from any presigned URL it quotes, the signature and the session token.
fn redact(message: &str, token: &str) -> String {
    let mut out = if token.len() >= 8 {
        message.replace(token, "<token>")
    } else {
        message.to_owned()
    };
    for param in ["x-amz-signature=", "x-amz-security-token="] {
        let mut from = 0;
        while let Some(pos) = out[from..].to_ascii_lowercase().find(param) {
            let start = from + pos + param.len();
            let end = out[start..]
                .find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace())
                .map_or(out.len(), |n| start + n);
            out.replace_range(start..end, "<redacted>");
            from = start + "<redacted>".len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_tokens_and_signatures() {
        let tok = "k8s-aws-v1.aHR0cHM6Ly9zdHM";
        assert_eq!(
            redact(&format!("bad token {tok} here"), tok),
            "bad token <token> here"
        );
        assert_eq!(
            redact(
                "parse https://sts/?X-Amz-Signature=abc123&x=1: boom",
                "zzzzzzzzzz"
            ),
            "parse https://sts/?X-Amz-Signature=<redacted>&x=1: boom"
        );
        assert_eq!(
            redact(
                "parse \"https://sts/?X-Amz-Security-Token=IQo%2Fb%2B==&x-amz-signature=ab c&X-Amz-Signature=cd\": bad",
                "zzzzzzzzzz"
            ),
            "parse \"https://sts/?X-Amz-Security-Token=<redacted>&x-amz-signature=<redacted> c&X-Amz-Signature=<redacted>\": bad"
        );
    }
}
