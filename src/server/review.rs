//! The `TokenReview` objects of `authentication.k8s.io/v1` and `v1beta1`: only the fields
//! the webhook reads or writes.
//!
//! Both versions have the same shape for everything we touch, so one set of types serves
//! both; the answer carries the request's `apiVersion`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `authentication.k8s.io/v1`.
pub const V1: &str = "authentication.k8s.io/v1";
/// `authentication.k8s.io/v1beta1` (what kube-apiserver sends unless told otherwise).
pub const V1BETA1: &str = "authentication.k8s.io/v1beta1";
/// The `kind` of both versions.
pub const KIND: &str = "TokenReview";

/// A TokenReview as kube-apiserver sends it, its strings borrowed from the body when
/// they hold no escapes (no copy of the token, the largest of them). Unknown fields are
/// ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenReviewRequest<'a> {
    /// `apiVersion`; upstream ignores it, we answer in it when it is one we know.
    #[serde(default, borrow)]
    pub api_version: Option<Text<'a>>,
    /// `kind`; ignored, as upstream does (but it must be a string, as for upstream).
    #[serde(default, borrow)]
    pub kind: Option<Text<'a>>,
    /// `spec`.
    #[serde(default, borrow)]
    pub spec: TokenReviewRequestSpec<'a>,
}

/// A JSON string of a request: borrowed from the body unless it had escapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit)
    }
}

/// `spec` of a request.
#[derive(Clone, Default, Deserialize)]
pub struct TokenReviewRequestSpec<'a> {
    /// The bearer token. Never logged.
    #[serde(default, borrow)]
    pub token: Text<'a>,
    /// `spec.audiences`; upstream ignores it, and so do we (the apiserver then applies its
    /// own implicit audiences).
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
}

impl std::fmt::Debug for TokenReviewRequestSpec<'_> {
    // The token must never reach a log line, not even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewRequestSpec")
            .field(
                "token",
                &format_args!("<{} bytes redacted>", self.token.len()),
            )
            .field("audiences", &self.audiences)
            .finish()
    }
}

impl TokenReviewRequest<'_> {
    /// The `apiVersion` the answer is written in: the request's when it is `v1` or
    /// `v1beta1`, otherwise `v1beta1` (the version upstream decodes every request as).
    pub fn response_api_version(&self) -> &'static str {
        match self.api_version.as_deref() {
            Some(V1) => V1,
            _ => V1BETA1,
        }
    }
}

/// A TokenReview as the webhook answers it.
///
/// upstream: pkg/server/server.go answers with a Go `v1beta1.TokenReview` value that has
/// no `apiVersion`/`kind`; we include both (in the request's version) because that is what
/// the API conventions ask for, and kube-apiserver accepts either form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenReview {
    /// `authentication.k8s.io/v1` or `…/v1beta1`.
    pub api_version: String,
    /// Always `TokenReview`.
    pub kind: String,
    /// Always empty (`{}`), as upstream.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Always empty (`{}`): the token is never echoed back.
    pub spec: BTreeMap<String, serde_json::Value>,
    /// The verdict.
    pub status: TokenReviewStatus,
}

/// `status` of an answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenReviewStatus {
    /// Whether the token was accepted.
    pub authenticated: bool,
    /// Who the token belongs to (`{}` when denied, as upstream).
    pub user: UserInfo,
    /// Audiences the token is valid for; never set, as upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// Why no verdict could be given: a short reason without secrets. Set only on answers
    /// kube-apiserver treats as failures anyway (non-2xx): its webhook authenticator
    /// (k8s.io/apiserver plugin/pkg/authenticator/token/webhook/webhook.go,
    /// `AuthenticateToken`) turns a non-empty `error` on a 200 denial into an
    /// authentication *error*, so a definitive denial carries none.
    ///
    /// upstream: pkg/server/server.go never sets it; neither do we on a 200 denial, but we
    /// do on the 403/429/500/504 answers, where it helps whoever reads the raw answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `status.user`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The Kubernetes user name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// A stable identifier of the IAM principal.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The Kubernetes groups (omitted when empty, as upstream).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The six upstream `extra` keys (omitted when empty, e.g. for scrubbed accounts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl TokenReview {
    /// An answer in `api_version` with `status`.
    pub fn new(api_version: &str, status: TokenReviewStatus) -> Self {
        Self {
            api_version: api_version.to_owned(),
            kind: KIND.to_owned(),
            metadata: BTreeMap::new(),
            spec: BTreeMap::new(),
            status,
        }
    }

    /// A definitive denial: `authenticated: false` and nothing else.
    pub fn denied(api_version: &str) -> Self {
        Self::new(api_version, TokenReviewStatus::default())
    }

    /// A denial carrying `reason` in `status.error` (for non-2xx answers only).
    pub fn failed(api_version: &str, reason: impl Into<String>) -> Self {
        Self::new(
            api_version,
            TokenReviewStatus {
                authenticated: false,
                error: Some(reason.into()),
                ..TokenReviewStatus::default()
            },
        )
    }

    /// An acceptance for `user`.
    pub fn allowed(api_version: &str, user: UserInfo) -> Self {
        Self::new(
            api_version,
            TokenReviewStatus {
                authenticated: true,
                user,
                ..TokenReviewStatus::default()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_both_versions_and_ignores_unknown_fields() {
        for v in [V1, V1BETA1] {
            let body = json!({
                "apiVersion": v, "kind": "TokenReview",
                "metadata": {"creationTimestamp": null},
                "spec": {"token": "k8s-aws-v1.abc", "audiences": ["x"]},
                "status": {"user": {}}
            })
            .to_string();
            let r: TokenReviewRequest<'_> = serde_json::from_str(&body).unwrap();
            assert_eq!(&*r.spec.token, "k8s-aws-v1.abc");
            assert!(matches!(r.spec.token.0, Cow::Borrowed(_)), "not copied");
            assert_eq!(r.response_api_version(), v);
        }
        let r: TokenReviewRequest<'_> = serde_json::from_str(r#"{"spec": {}}"#).unwrap();
        assert_eq!(&*r.spec.token, "");
        assert_eq!(r.response_api_version(), V1BETA1);
        // Escaped strings are read (into a copy); a string is still required.
        let r: TokenReviewRequest<'_> = serde_json::from_str(
            r#"{"apiVersion": "authentication.k8s.io\/v1", "kind": "T", "spec": {"token": "a\u0062c"}}"#,
        )
        .unwrap();
        assert_eq!((r.response_api_version(), &*r.spec.token), (V1, "abc"));
        for bad in [
            r#"{"kind": 5}"#,
            r#"{"apiVersion": []}"#,
            r#"{"spec": {"token": 1}}"#,
        ] {
            assert!(
                serde_json::from_str::<TokenReviewRequest<'_>>(bad).is_err(),
                "{bad}"
            );
        }
        let r: TokenReviewRequest<'_> =
            serde_json::from_str(r#"{"apiVersion": null, "kind": null, "spec": {}}"#).unwrap();
        assert_eq!(r.response_api_version(), V1BETA1);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let r: TokenReviewRequest<'_> =
            serde_json::from_str(r#"{"spec": {"token": "k8s-aws-v1.secret"}}"#).unwrap();
        let s = format!("{r:?}");
        assert!(!s.contains("secret"), "{s}");
    }

    #[test]
    fn deny_shape() {
        let v = serde_json::to_value(TokenReview::denied(V1)).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": V1, "kind": "TokenReview", "metadata": {}, "spec": {},
                "status": {"authenticated": false, "user": {}}
            })
        );
        let v = serde_json::to_value(TokenReview::failed(V1, "invalid token")).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": V1, "kind": "TokenReview", "metadata": {}, "spec": {},
                "status": {"authenticated": false, "user": {}, "error": "invalid token"}
            })
        );
    }

    #[test]
    fn allow_shape_omits_empty_groups() {
        let v = serde_json::to_value(TokenReview::allowed(
            V1BETA1,
            UserInfo {
                username: "u".into(),
                uid: "id".into(),
                ..UserInfo::default()
            },
        ))
        .unwrap();
        assert_eq!(
            v["status"],
            json!({"authenticated": true, "user": {"username": "u", "uid": "id"}})
        );
    }
}
