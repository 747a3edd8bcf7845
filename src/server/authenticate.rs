//! `POST /authenticate`: TokenReview in, verify with STS, map, TokenReview out.
//!
//! The verifier and the mapper sit behind [`TokenVerifier`] and [`IdentityMapper`], so the
//! handler can be exercised without STS or a mapping backend.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;

use crate::identity::Identity;
use crate::metrics::{self, ResultLabel};
use crate::token::{Token, VerifyError};

use super::review::{TokenReview, TokenReviewRequest, UserInfo};

/// A boxed, sendable future: what the object-safe traits below return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The largest request body read. A TokenReview carrying a 4 KiB token is ~4.5 KiB; the
/// rest is headroom for metadata an apiserver may add.
///
/// upstream: pkg/server/server.go reads bodies without a limit; we stop at 64 KiB and answer
/// 413 because an unbounded read lets any client exhaust memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The `result` label for requests that never reach the verifier.
pub const LABEL_MALFORMED: &str = "malformed_request";
/// The `result` label for a token refused before or by STS validation.
pub const LABEL_INVALID_TOKEN: &str = "invalid_token";
/// The `result` label for a mapping failure.
///
/// upstream: pkg/metrics/metrics.go spells it `uknown_user`; we keep the typo so existing
/// dashboards and alerts keep matching.
pub const LABEL_UNKNOWN_USER: &str = "uknown_user";
/// The `result` label for an accepted token.
pub const LABEL_SUCCESS: &str = "success";

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
    /// Maps `identity`; the error is the deny reason (safe to log and to send back).
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
}

impl std::fmt::Debug for Authenticate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticate")
            .field("scrubbed_accounts", &self.scrubbed_accounts)
            .finish_non_exhaustive()
    }
}

/// Where a request came from, for log fields.
#[derive(Debug, Clone, Copy)]
struct RequestInfo<'a> {
    path: &'a str,
    method: &'a Method,
    client: SocketAddr,
}

impl Authenticate {
    /// A handler verifying with `verifier`, mapping with `mapper`, and scrubbing the
    /// identities of `scrubbed_accounts` (`server.scrubbedAccounts`).
    pub fn new(
        verifier: Arc<dyn TokenVerifier>,
        mapper: Arc<dyn IdentityMapper>,
        scrubbed_accounts: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            verifier,
            mapper,
            scrubbed_accounts: Arc::new(scrubbed_accounts.into_iter().collect()),
        }
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

    /// Handles one request. `client` is the peer address, for logs. Never panics on input
    /// and never answers 500.
    pub async fn handle<B>(&self, req: Request<B>, client: SocketAddr) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let start = Instant::now();
        let (parts, body) = req.into_parts();
        let info = RequestInfo {
            path: parts.uri.path(),
            method: &parts.method,
            client,
        };
        let (label, response) = self.decide(info, body).await;
        metrics::global()
            .authenticate_latency
            .get_or_create(&ResultLabel {
                result: label.to_owned(),
            })
            .observe(start.elapsed().as_secs_f64());
        response
    }

    async fn decide<B>(
        &self,
        info: RequestInfo<'_>,
        body: B,
    ) -> (&'static str, Response<Full<Bytes>>)
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if info.method != Method::POST {
            return (
                LABEL_MALFORMED,
                text(StatusCode::METHOD_NOT_ALLOWED, "expected POST\n"),
            );
        }
        let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                if e.is::<http_body_util::LengthLimitError>() {
                    tracing::warn!(
                        path = info.path,
                        client = %info.client,
                        method = %info.method,
                        limit = MAX_BODY_BYTES,
                        "request body too large"
                    );
                    return (
                        LABEL_MALFORMED,
                        text(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "expected a request body of at most 65536 bytes\n",
                        ),
                    );
                }
                // The client went away or broke the framing mid-body: treat it as no body.
                tracing::debug!(client = %info.client, error = %e, "could not read request body");
                return (
                    LABEL_MALFORMED,
                    text(StatusCode::BAD_REQUEST, "expected a request body\n"),
                );
            }
        };
        if bytes.is_empty() {
            return (
                LABEL_MALFORMED,
                text(StatusCode::BAD_REQUEST, "expected a request body\n"),
            );
        }
        // Like Go's json.Decoder, read the first JSON value and ignore whatever follows.
        let review: TokenReviewRequest = match serde_json::Deserializer::from_slice(&bytes)
            .into_iter::<TokenReviewRequest>()
            .next()
        {
            Some(Ok(r)) => r,
            _ => {
                return (
                    LABEL_MALFORMED,
                    text(
                        StatusCode::BAD_REQUEST,
                        "expected a request body to be a TokenReview\n",
                    ),
                );
            }
        };
        let version = review.response_api_version();
        let token = Token::new(review.spec.token);
        if token.expose().is_empty() {
            log_denied(info, "token is empty");
            return (
                LABEL_INVALID_TOKEN,
                review_response(
                    StatusCode::FORBIDDEN,
                    &TokenReview::denied(version, "invalid token: empty"),
                    false,
                ),
            );
        }

        let verified = match self.verifier.verify(&token).await {
            Ok(v) => v,
            Err(e) => {
                let (status, reason) = match &e {
                    VerifyError::Throttled(_) => (
                        StatusCode::TOO_MANY_REQUESTS,
                        "sts getCallerIdentity was throttled",
                    ),
                    VerifyError::Sts(_) => (StatusCode::FORBIDDEN, "sts getCallerIdentity failed"),
                    _ => (StatusCode::FORBIDDEN, "invalid token"),
                };
                log_denied(info, &redact(&e.to_string(), token.expose()));
                return (
                    e.metric_label(),
                    review_response(status, &TokenReview::denied(version, reason), false),
                );
            }
        };
        let id = &verified.identity;
        let loggable = self.is_loggable(&id.account_id);
        if loggable {
            tracing::info!(
                path = info.path,
                client = %info.client,
                method = %info.method,
                accesskeyid = id.access_key_id,
                arn = id.arn,
                accountid = id.account_id,
                userid = id.user_id,
                session = id.session_name,
                stsendpoint = id.sts_endpoint,
                "STS response"
            );
        }

        let user = match self.mapper.map(id).await {
            Ok(u) => u,
            Err(reason) => {
                log_denied(info, &reason);
                // A mapping failure's reason may name the caller's ARN or username: the
                // answer of a scrubbed account carries only the generic text.
                let reason = if loggable {
                    reason
                } else {
                    crate::mapper::chain::Denied::NOT_MAPPED.to_owned()
                };
                return (
                    LABEL_UNKNOWN_USER,
                    review_response(
                        StatusCode::FORBIDDEN,
                        &TokenReview::denied(version, reason),
                        false,
                    ),
                );
            }
        };

        let user_info = if loggable {
            UserInfo {
                uid: format!("aws-iam-authenticator:{}:{}", id.account_id, id.user_id),
                extra: extra(id),
                username: user.username,
                groups: user.groups,
            }
        } else {
            UserInfo {
                uid: format!("aws-iam-authenticator:administrative:{}", user.username),
                extra: BTreeMap::new(),
                username: user.username,
                groups: user.groups,
            }
        };
        if loggable {
            tracing::info!(
                path = info.path,
                client = %info.client,
                method = %info.method,
                username = user_info.username,
                uid = user_info.uid,
                groups = ?user_info.groups,
                arn = id.arn,
                stsendpoint = id.sts_endpoint,
                "access granted"
            );
        } else {
            tracing::info!(
                path = info.path,
                client = %info.client,
                method = %info.method,
                username = user_info.username,
                uid = user_info.uid,
                groups = ?user_info.groups,
                stsendpoint = id.sts_endpoint,
                "access granted"
            );
        }
        (
            LABEL_SUCCESS,
            review_response(
                StatusCode::OK,
                &TokenReview::allowed(version, user_info),
                true,
            ),
        )
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

fn log_denied(info: RequestInfo<'_>, error: &str) {
    tracing::warn!(
        path = info.path,
        client = %info.client,
        method = %info.method,
        error,
        "access denied"
    );
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

/// A plain-text response, as Go's `http.Error` writes it.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn review_response(
    status: StatusCode,
    review: &TokenReview,
    newline: bool,
) -> Response<Full<Bytes>> {
    // Serialising these plain structs cannot fail; fall back to a static deny all the same.
    let mut body = serde_json::to_vec(review).unwrap_or_else(|_| {
        br#"{"metadata":{},"spec":{},"status":{"authenticated":false,"user":{}}}"#.to_vec()
    });
    if newline {
        body.push(b'\n');
    }
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
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
