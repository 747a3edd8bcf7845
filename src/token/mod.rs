//! The `k8s-aws-v1.` token: a presigned STS `GetCallerIdentity` URL, base64url-encoded.
//!
//! * [`generate`] presigns the URL (client side, `token`).
//! * [`verify`] checks a token without I/O ([`verify::validate`]) and then asks STS
//!   ([`verify::Verifier`]), for `verify` and the webhook.
//! * [`once`] checks one token as the server does, for `verify` and `explain --token`.
//! * [`exec_credential`] is the `client.authentication.k8s.io` object kubectl reads.

#[cfg(feature = "client")]
pub mod exec_credential;
#[cfg(feature = "client")]
pub mod generate;
pub mod once;
pub mod verify;

use std::fmt;

use crate::aws::endpoints::HostError;
use crate::sts::CallError;

/// The prefix of upstream's `FormatError` texts.
const FORMAT_PREFIX: &str = "input token was not properly formatted: ";

/// Every token starts with this.
pub const V1_PREFIX: &str = "k8s-aws-v1.";
pub use crate::aws::CLUSTER_ID_HEADER;
/// `X-Amz-Expires` in every token we mint (STS ignores it; old servers required ≤ 60).
pub const PRESIGN_EXPIRES_SECS: u64 = 60;
/// How long STS accepts a presigned URL after its `X-Amz-Date`.
pub const PRESIGNED_URL_LIFETIME_SECS: i64 = 15 * 60;
/// The lifetime we advertise to kubectl: a minute short of STS's, so a cached token is
/// never presented in its last minute.
pub const TOKEN_LIFETIME_SECS: i64 = 14 * 60;
/// Tokens longer than this are rejected before any parsing.
pub const MAX_TOKEN_LEN: usize = 4096;

/// A bearer token. Its `Debug` never prints the secret part, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token string as received or generated.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The whole token, for the ExecCredential and the STS call only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<{} bytes redacted>)", self.0.len())
    }
}

/// Why a token was refused. The `Display` texts are upstream's, prefixes included,
/// because operators grep logs for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token itself is malformed or not acceptable (upstream `FormatError`).
    #[error("input token was not properly formatted: {0}")]
    Format(String),
    /// The URL's host is not an STS endpoint of the server's partition (upstream reports
    /// most of these as a `FormatError`, a few as plain errors).
    #[error("{}{}", if .0.is_format_error() { FORMAT_PREFIX } else { "" }, .0)]
    Host(HostError),
    /// An unprefixed validation error (upstream returns a few plain errors, e.g. for host labels).
    #[error("{0}")]
    Plain(String),
    /// STS refused the token (a 4xx other than throttling), or answered 200 with something
    /// that is not a usable identity (upstream `STSError`): a definitive denial.
    #[error("sts getCallerIdentity failed: {0}")]
    Sts(String),
    /// STS gave no verdict: it could not be reached, did not answer within our timeout, or
    /// failed (5xx). Upstream files these under `STSError` too and denies; the webhook
    /// answers them so that kube-apiserver retries instead.
    #[error("sts getCallerIdentity failed: {message}")]
    StsUnavailable {
        /// What went wrong, in upstream's words.
        message: String,
        /// Whether our STS timeout ran out (as opposed to a refused connection or a 5xx).
        timed_out: bool,
    },
    /// STS throttled us (upstream `STSThrottling`): the webhook answers 429.
    #[error("sts getCallerIdentity was throttled: {0}")]
    Throttled(String),
}

impl VerifyError {
    /// The `result` label of `authenticate_latency_seconds` for this error.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Format(_) | Self::Plain(_) | Self::Host(_) => "invalid_token",
            Self::Sts(_) | Self::StsUnavailable { .. } => "sts_error",
            Self::Throttled(_) => "sts_throttling",
        }
    }
}

impl From<CallError> for VerifyError {
    /// STS's errors keep their own texts under upstream's `STSError` or
    /// `STSThrottling` prefix.
    fn from(e: CallError) -> Self {
        match e {
            CallError::Throttled(body) => Self::Throttled(body),
            e if e.is_unavailable() => Self::StsUnavailable {
                timed_out: matches!(e, CallError::Timeout { .. }),
                message: e.to_string(),
            },
            other => Self::Sts(other.to_string()),
        }
    }
}
