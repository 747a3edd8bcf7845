//! `POST /authenticate`: TokenReview in, verify with STS, map, TokenReview out.
//!
//! The verifier and the mapper sit behind [`TokenVerifier`] and [`IdentityMapper`], so the
//! handler can be exercised without STS or a mapping backend.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use tracing::Instrument as _;

use crate::identity::Identity;
use crate::token::{Token, VerifyError};

use super::budget::BodyBudget;
use super::metrics::WebhookMetrics;
use super::outcome::{Denial, DenyStatus, Malformed, Outcome, Unavailable};
use super::review::{TokenReviewRequest, UserInfo};

pub use super::metrics::AuthResult;

/// A boxed, sendable future: what the object-safe traits below return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The largest request body read. A TokenReview carrying a 4 KiB token is ~4.5 KiB; the
/// rest is headroom for metadata an apiserver may add.
///
/// upstream: pkg/server/server.go reads bodies without a limit; we stop at 64 KiB and answer
/// 413 because an unbounded read lets any client exhaust memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A token STS has vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who signed the token.
    pub identity: Identity,
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
            client = %client,
            method = %parts.method,
        );
        let outcome = async {
            match read(&parts.method, body, &self.budget, client.ip()).await {
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
    async fn verdict(&self, review: TokenReviewRequest) -> Outcome {
        let version = review.response_api_version();
        let token = Token::new(review.spec.token);
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
        let user = user_info(id, user, loggable);
        // One line per review, the cached ones too: who came in, as whom. It carries what
        // upstream splits over an "STS response" line and this one; that line would claim
        // an STS call even when the cache answered.
        // upstream: pkg/server/server.go logs "STS response" and "access granted" for each
        // review; we log one line with both lines' fields because a second line doubles
        // the log for no new fact, and is wrong for a cached identity.
        tracing::info!(
            username = user.username,
            uid = user.uid,
            groups = ?user.groups,
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

/// Reads a TokenReview: POST, a body within [`MAX_BODY_BYTES`] and the body budget, the
/// first JSON value.
async fn read<B>(
    method: &Method,
    body: B,
    budget: &BodyBudget,
    peer: IpAddr,
) -> Result<TokenReviewRequest, Malformed>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if method != Method::POST {
        return Err(Malformed::Method);
    }
    let mut held = budget.hold(peer);
    let bytes = collect(body, &mut held).await?;
    if bytes.is_empty() {
        return Err(Malformed::NoBody);
    }
    // Like Go's json.Decoder, read the first JSON value and ignore whatever follows.
    match serde_json::Deserializer::from_slice(&bytes)
        .into_iter::<TokenReviewRequest>()
        .next()
    {
        Some(Ok(r)) => Ok(r),
        _ => Err(Malformed::NotTokenReview),
    }
}

/// Collects a body of at most [`MAX_BODY_BYTES`], each byte taken from `held` first.
///
/// The frames are copied into one buffer and dropped at once: a frame is a slice of the
/// connection's read buffer, and keeping many small ones would keep whole read buffers
/// alive, so the memory held would be more than the bytes counted.
async fn collect<B>(body: B, held: &mut super::budget::Held) -> Result<Vec<u8>, Malformed>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let announced = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    if announced > MAX_BODY_BYTES {
        tracing::warn!(limit = MAX_BODY_BYTES, "request body too large");
        return Err(Malformed::TooLarge);
    }
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                // The client went away or broke the framing mid-body: treat it as no body.
                tracing::debug!(error = %e.into(), "could not read request body");
                return Err(Malformed::NoBody);
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let len = bytes.len() + data.len();
        if len > MAX_BODY_BYTES {
            tracing::warn!(limit = MAX_BODY_BYTES, "request body too large");
            return Err(Malformed::TooLarge);
        }
        // The buffer's capacity is what is held. It grows to the announced length, else
        // doubles (so a body in tiny frames is not copied over and over), never past the
        // limit.
        if len > bytes.capacity() {
            let want = len
                .max(announced)
                .max(bytes.capacity() * 2)
                .min(MAX_BODY_BYTES);
            if held.grow(want - bytes.capacity()).is_err() {
                tracing::warn!(
                    held = held.bytes(),
                    "request body budget spent; answering 503"
                );
                return Err(Malformed::Busy);
            }
            bytes.reserve_exact(want - bytes.len());
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
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

/// The `status.user` of an accepted token: with the identity's details, or for a scrubbed
/// account only the mapped name and groups.
/// The `status.user.uid` of a mapped identity: `aws-iam-authenticator:<account>:<user
/// id>`, or for a scrubbed (not loggable) account `aws-iam-authenticator:administrative:<username>`.
pub fn uid(id: &Identity, username: &str, loggable: bool) -> String {
    if loggable {
        format!("aws-iam-authenticator:{}:{}", id.account_id, id.user_id)
    } else {
        format!("aws-iam-authenticator:administrative:{username}")
    }
}

fn user_info(id: &Identity, user: MappedUser, loggable: bool) -> UserInfo {
    if loggable {
        UserInfo {
            uid: uid(id, &user.username, true),
            extra: extra(id),
            username: user.username,
            groups: user.groups,
        }
    } else {
        UserInfo {
            uid: uid(id, &user.username, false),
            extra: BTreeMap::new(),
            username: user.username,
            groups: user.groups,
        }
    }
}

/// Upstream's six `extra` keys.
fn extra(id: &Identity) -> BTreeMap<String, Vec<String>> {
    [
        ("arn", &id.arn),
        ("canonicalArn", &id.canonical_arn),
        // Present even when empty, as upstream.
        ("sessionName", &id.session_name),
        ("accessKeyId", &id.access_key_id),
        ("principalId", &id.user_id),
        ("sigs.k8s.io/aws-iam-authenticator/principalId", &id.user_id),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), vec![v.clone()]))
    .collect()
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
