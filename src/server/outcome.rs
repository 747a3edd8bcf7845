//! What became of one `/authenticate` request, and how it is answered.
//!
//! The handler decides an [`Outcome`] once; the metric label and the HTTP answer are both
//! read from it, so they cannot disagree.
//!
//! The answers follow what kube-apiserver's webhook token authenticator does with them
//! (k8s.io/apiserver `plugin/pkg/authenticator/token/webhook/webhook.go`,
//! `AuthenticateToken`, and `pkg/util/webhook/webhook.go`, `DefaultShouldRetry`):
//! * any non-2xx answer is a webhook *failure*: logged as "Failed to make webhook
//!   authenticator request", and retried with backoff only for 429, 500, 504, a dropped
//!   connection, or an answer carrying `Retry-After`;
//! * a 200 with `status.authenticated: false` is a clean denial, unless `status.error` is
//!   non-empty, which turns it into an error again.
//!
//! So a definitive denial is a 200 without `status.error`, and a failure that may pass is
//! an answer the apiserver retries.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use super::answer::Accepted;
use super::metrics::AuthResult;
use super::review::TokenReview;

/// The seconds a throttled caller is asked to wait (`Retry-After`).
pub const THROTTLED_RETRY_AFTER_SECS: u32 = 1;

/// How definitive denials are answered.
///
/// upstream: pkg/server/server.go answers every denial 403 (and STS outages too), which
/// kube-apiserver logs as a failed webhook call for every foreign or bad token; we answer
/// 200 by default, and 403 only when asked to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DenyStatus {
    /// HTTP 200, `authenticated: false`, no `status.error`: what kube-apiserver reads as a
    /// clean "no" (the default).
    #[default]
    Ok,
    /// HTTP 403 with the reason in `status.error`, as upstream answers every denial
    /// (`--deny-with-forbidden`). kube-apiserver logs each as a webhook failure.
    Forbidden,
}

/// A request that is not a TokenReview we can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Not a POST: 405.
    Method,
    /// No body, or the body broke off: 400.
    NoBody,
    /// A body over the limit: 413.
    TooLarge,
    /// The body did not arrive within the request deadline: 408.
    TooSlow,
    /// The body is not a TokenReview: 400.
    NotTokenReview,
    /// The body could not be held: the process's body budget, or this client's share of
    /// it, is spent. 503 with `Retry-After`, which kube-apiserver retries.
    Busy,
}

impl Malformed {
    fn answer(self) -> (StatusCode, &'static str) {
        match self {
            Self::Method => (StatusCode::METHOD_NOT_ALLOWED, "expected POST\n"),
            Self::NoBody => (StatusCode::BAD_REQUEST, "expected a request body\n"),
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "expected a request body of at most 65536 bytes\n",
            ),
            Self::TooSlow => (
                StatusCode::REQUEST_TIMEOUT,
                "expected the request body sooner\n",
            ),
            Self::NotTokenReview => (
                StatusCode::BAD_REQUEST,
                "expected a request body to be a TokenReview\n",
            ),
            Self::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many request bodies in flight; retry\n",
            ),
        }
    }
}

/// Why a token is definitively refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// Malformed, foreign, expired or otherwise unacceptable before STS.
    InvalidToken,
    /// STS refused the signature (or answered 200 with no usable identity).
    StsRejected,
    /// No mapping for the identity.
    NotMapped,
}

impl Denial {
    fn label(self) -> AuthResult {
        match self {
            Self::InvalidToken => AuthResult::InvalidToken,
            Self::StsRejected => AuthResult::StsError,
            Self::NotMapped => AuthResult::UnknownUser,
        }
    }
}

/// Why no verdict can be given now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// STS throttled us: 429 with `Retry-After`.
    Throttled,
    /// STS did not answer within our timeout: 504.
    StsTimeout,
    /// STS could not be reached, failed (5xx) or could not be read: 500.
    StsFailed,
}

impl Unavailable {
    fn label(self) -> AuthResult {
        match self {
            Self::Throttled => AuthResult::StsThrottling,
            Self::StsTimeout | Self::StsFailed => AuthResult::StsError,
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::Throttled => StatusCode::TOO_MANY_REQUESTS,
            Self::StsTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::StsFailed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::Throttled => "sts getCallerIdentity was throttled",
            Self::StsTimeout => "sts getCallerIdentity timed out",
            Self::StsFailed => "sts getCallerIdentity failed",
        }
    }
}

/// What became of one `/authenticate` request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not a TokenReview, or not one we can hold now: a plain-text 400/405/408/413/503.
    Malformed(Malformed),
    /// A definitive "no".
    Denied {
        /// The answer's `apiVersion`.
        version: &'static str,
        /// Why.
        denial: Denial,
        /// The reason sent in `status.error` when denials are answered 403 (never secret).
        reason: String,
    },
    /// No verdict now: answered so kube-apiserver retries.
    Unavailable {
        /// The answer's `apiVersion`.
        version: &'static str,
        /// Why.
        cause: Unavailable,
    },
    /// Accepted.
    Allowed {
        /// The answer's `apiVersion`.
        version: &'static str,
        /// Who.
        user: Accepted,
    },
}

impl Outcome {
    /// The `result` label of `authenticate_latency_seconds`.
    pub fn label(&self) -> AuthResult {
        match self {
            Self::Malformed(_) => AuthResult::MalformedRequest,
            Self::Denied { denial, .. } => denial.label(),
            Self::Unavailable { cause, .. } => cause.label(),
            Self::Allowed { .. } => AuthResult::Success,
        }
    }

    /// The HTTP answer, with definitive denials answered as `deny` says.
    pub fn into_response(self, deny: DenyStatus) -> Response<Full<Bytes>> {
        match self {
            Self::Malformed(m) => {
                let (status, body) = m.answer();
                let mut r = text(status, body);
                if m == Malformed::Busy {
                    r.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from(THROTTLED_RETRY_AFTER_SECS),
                    );
                }
                r
            }
            Self::Denied {
                version, reason, ..
            } => match deny {
                DenyStatus::Ok => {
                    review_response(StatusCode::OK, &TokenReview::denied(version), false)
                }
                DenyStatus::Forbidden => review_response(
                    StatusCode::FORBIDDEN,
                    &TokenReview::failed(version, reason),
                    false,
                ),
            },
            Self::Unavailable { version, cause } => {
                let review = TokenReview::failed(version, cause.reason());
                let mut r = review_response(cause.status(), &review, false);
                if cause == Unavailable::Throttled {
                    r.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from(THROTTLED_RETRY_AFTER_SECS),
                    );
                }
                r
            }
            // upstream writes a success with json.Encoder, which ends it with a newline.
            Self::Allowed { version, user } => {
                json_response(StatusCode::OK, user.to_json(version), true)
            }
        }
    }
}

fn review_response(
    status: StatusCode,
    review: &TokenReview,
    newline: bool,
) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(review).unwrap_or_else(|_| fallback_denial(&review.api_version));
    json_response(status, body, newline)
}

/// What is answered should serialising fail (it cannot: plain structs of strings).
fn fallback_denial(version: &str) -> Vec<u8> {
    serde_json::to_vec(&TokenReview::denied(version)).unwrap_or_else(|_| {
        br#"{"metadata":{},"spec":{},"status":{"authenticated":false,"user":{}}}"#.to_vec()
    })
}

fn json_response(status: StatusCode, mut body: Vec<u8>, newline: bool) -> Response<Full<Bytes>> {
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
