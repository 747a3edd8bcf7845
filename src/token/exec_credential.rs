//! The `client.authentication.k8s.io` `ExecCredential` that kubectl reads from `token`'s
//! stdout.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use super::{TOKEN_LIFETIME_SECS, Token};

/// `client.authentication.k8s.io/v1beta1`, the default (what upstream prints).
pub const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";
/// `client.authentication.k8s.io/v1`, echoed when kubectl asks for it.
pub const V1: &str = "client.authentication.k8s.io/v1";
/// The variable kubectl sets for exec plugins, holding a JSON `ExecCredential` whose
/// `apiVersion` is the version it wants back.
pub const EXEC_INFO_ENV: &str = "KUBERNETES_EXEC_INFO";

/// An `ExecCredential` as upstream serialises it: `kind, apiVersion, spec{interactive},
/// status{expirationTimestamp, token}`, in that order.
#[derive(Debug, Clone, Serialize)]
pub struct ExecCredential<'a> {
    /// Always `ExecCredential`.
    pub kind: &'static str,
    /// [`V1BETA1`] or [`V1`].
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// Always `{"interactive":false}` (the v1beta1 field has no omitempty upstream).
    pub spec: Spec,
    /// The token and its expiry.
    pub status: Status<'a>,
}

/// `spec` of an [`ExecCredential`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spec {
    /// Whether kubectl ran us with a terminal to prompt on; we never claim one.
    pub interactive: bool,
}

/// `status` of an [`ExecCredential`].
#[derive(Debug, Clone, Serialize)]
pub struct Status<'a> {
    /// RFC 3339, UTC, whole seconds, e.g. `2023-04-28T00:14:00Z`.
    #[serde(rename = "expirationTimestamp")]
    pub expiration_timestamp: String,
    /// The bearer token.
    pub token: &'a str,
}

/// Just enough of `KUBERNETES_EXEC_INFO` to read the version kubectl wants.
#[derive(Deserialize)]
struct ExecInfo {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
}

/// The `apiVersion` to answer with, given `KUBERNETES_EXEC_INFO` (if set).
// upstream: cmd/aws-iam-authenticator/token.go echoes any apiVersion found in
// KUBERNETES_EXEC_INFO verbatim (an empty one drops the field); we echo only the versions
// whose shape we print (v1, v1beta1) and fall back to v1beta1 otherwise, because kubectl
// rejects an ExecCredential of a version it did not ask for or cannot decode.
pub fn api_version(exec_info: Option<&str>) -> &'static str {
    let requested = exec_info
        .and_then(|s| serde_json::from_str::<ExecInfo>(s).ok())
        .and_then(|info| info.api_version);
    match requested.as_deref() {
        Some(V1) => V1,
        _ => V1BETA1,
    }
}

/// When kubectl should stop using a token signed at `signed_at`: 14 minutes later, or
/// when the credentials that signed it expire, whichever comes first.
// upstream: pkg/token/token.go always uses now + 14 min; we cap it at the credentials'
// expiry because STS rejects a token once its signing credentials have expired, and
// kubectl would keep presenting it until the advertised expiry.
pub fn expiration(signed_at: SystemTime, credential_expiry: Option<SystemTime>) -> SystemTime {
    let lifetime = signed_at + Duration::from_secs(TOKEN_LIFETIME_SECS.unsigned_abs());
    match credential_expiry {
        Some(expiry) if expiry < lifetime => expiry,
        _ => lifetime,
    }
}

/// Formats a time as RFC 3339 in UTC with whole seconds (Kubernetes `metav1.Time`).
pub fn format_timestamp(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    // Formatting a UTC date with fixed numeric components cannot fail for any time a
    // SystemTime holds in practice; fall back to the epoch rather than panic.
    .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

impl<'a> ExecCredential<'a> {
    /// An `ExecCredential` of `api_version` carrying `token` until `expiration`.
    pub fn new(api_version: &'static str, token: &'a Token, expiration: SystemTime) -> Self {
        Self {
            kind: "ExecCredential",
            api_version,
            spec: Spec { interactive: false },
            status: Status {
                expiration_timestamp: format_timestamp(expiration),
                token: token.expose(),
            },
        }
    }

    /// The compact JSON line `token` prints (without the trailing newline).
    pub fn to_json(&self) -> String {
        // Serialising plain strings and a bool into JSON cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn exact_json_shape() {
        let token = Token::new("k8s-aws-v1.abc");
        let expiry = expiration(t(1_682_640_000), None);
        let json = ExecCredential::new(V1BETA1, &token, expiry).to_json();
        assert_eq!(
            json,
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false},"status":{"expirationTimestamp":"2023-04-28T00:14:00Z","token":"k8s-aws-v1.abc"}}"#
        );
    }

    #[test]
    fn sub_second_times_are_truncated() {
        let at = t(1_682_640_000) + Duration::from_millis(999);
        assert_eq!(format_timestamp(at), "2023-04-28T00:00:00Z");
    }

    #[test]
    fn api_version_from_exec_info() {
        let cases = [
            (None, V1BETA1),
            (
                Some(
                    r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}"#,
                ),
                V1,
            ),
            (
                Some(r#"{"apiVersion":"client.authentication.k8s.io/v1beta1"}"#),
                V1BETA1,
            ),
            (
                Some(r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#),
                V1BETA1,
            ),
            (Some(r#"{"apiVersion":"bogus/v9"}"#), V1BETA1),
            (Some(r#"{"apiVersion":""}"#), V1BETA1),
            (Some("{}"), V1BETA1),
            (Some("not json"), V1BETA1),
            (Some(""), V1BETA1),
        ];
        for (info, want) in cases {
            assert_eq!(api_version(info), want, "{info:?}");
        }
    }

    #[test]
    fn v1_shape() {
        let token = Token::new("k8s-aws-v1.x");
        let json = ExecCredential::new(V1, &token, t(0)).to_json();
        assert_eq!(
            json,
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false},"status":{"expirationTimestamp":"1970-01-01T00:00:00Z","token":"k8s-aws-v1.x"}}"#
        );
    }

    #[test]
    fn expiration_is_capped_by_the_credentials() {
        let now = t(1_682_640_000);
        assert_eq!(expiration(now, None), t(1_682_640_000 + 840));
        // Credentials expiring in 5 minutes cap the token.
        assert_eq!(expiration(now, Some(t(1_682_640_300))), t(1_682_640_300));
        // Credentials outliving the token change nothing.
        assert_eq!(
            expiration(now, Some(t(1_682_640_000 + 3600))),
            t(1_682_640_840)
        );
    }
}
