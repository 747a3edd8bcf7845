//! What the instance metadata and container credential endpoints share: a client for
//! their (mostly plain-HTTP, link-local) endpoints, their exchange, and the credentials
//! JSON both answer with.

use std::time::Duration;

use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::dns::GaiResolver;
use serde::Deserialize;

use crate::https::{self, form};

/// The client: `http://` allowed, no proxy (the endpoints are link-local or loopback).
pub type Http = https::Client<GaiResolver, Full<Bytes>>;

/// How long connecting may take: a link-local endpoint answers at once or not at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The answers are a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most of an answer quoted in an error.
const MAX_QUOTED: usize = 256;

/// Why an endpoint gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The client could not be built.
    #[error("{0}")]
    Client(String),
    /// The request could not be built.
    #[error("bad request: {0}")]
    Request(String),
    /// No answer (connecting, sending, reading, the budget).
    #[error("{0}")]
    Transport(String),
    /// A non-success status and the start of its body.
    #[error("HTTP {0}: {1}")]
    Status(u16, String),
    /// An answer that is not what the endpoint sends.
    #[error("unexpected answer: {0}")]
    Answer(String),
}

impl LinkError {
    /// Worth one more try: no answer, or a server error.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status(status, _) => *status >= 500,
            _ => false,
        }
    }
}

/// The client, built through the shared HTTPS constructor.
pub fn client() -> Result<Http, LinkError> {
    let mut options = https::Options::new("AWS credentials", CONNECT_TIMEOUT);
    options.allow_http = true;
    options.http2 = false;
    https::client(GaiResolver::new(), &options).map_err(|e| LinkError::Client(e.to_string()))
}

/// `request`'s answer as text, within `timeout`; a non-success status is an error.
pub async fn text(
    http: &Http,
    request: http::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<String, LinkError> {
    let (status, body) = form::exchange(http, request, timeout, MAX_BODY_BYTES)
        .await
        .map_err(|e| LinkError::Transport(e.to_string()))?;
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        let quoted = text.chars().take(MAX_QUOTED).collect();
        return Err(LinkError::Status(status.as_u16(), quoted));
    }
    Ok(text)
}

/// The credentials JSON of IMDS and container endpoints.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialsJson {
    code: Option<String>,
    message: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    expiration: Option<String>,
}

/// Reads `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}` (with IMDS's
/// `"Code": "Success"`).
pub fn credentials_json(json: &str, provider_name: &'static str) -> Result<Credentials, LinkError> {
    let bad = |m: String| LinkError::Answer(m);
    let c: CredentialsJson =
        serde_json::from_str(json).map_err(|e| bad(format!("not credentials JSON: {e}")))?;
    if let Some(code) = c.code.as_deref().filter(|c| *c != "Success") {
        return Err(bad(format!(
            "{code}: {}",
            c.message.as_deref().unwrap_or_default()
        )));
    }
    let (Some(id), Some(secret)) = (c.access_key_id, c.secret_access_key) else {
        return Err(bad("no AccessKeyId or SecretAccessKey".to_owned()));
    };
    let expiry = match c.expiration.as_deref() {
        Some(s) => {
            Some(super::sts::parse_time(s).ok_or_else(|| bad(format!("bad Expiration {s:?}")))?)
        }
        None => None,
    };
    Ok(Credentials::new(
        id,
        secret,
        c.token.filter(|t| !t.is_empty()),
        expiry,
        provider_name,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_json_of_imds_and_containers() {
        let imds = r#"{"Code":"Success","LastUpdated":"2026-01-01T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAIMDS","SecretAccessKey":"s","Token":"t","Expiration":"2026-01-01T06:00:00Z"}"#;
        let c = credentials_json(imds, "x").unwrap();
        assert_eq!(
            (c.access_key_id(), c.session_token()),
            ("ASIAIMDS", Some("t"))
        );
        assert_eq!(
            c.expiry(),
            super::super::sts::parse_time("2026-01-01T06:00:00Z")
        );
        let container = r#"{"AccessKeyId":"ASIAPOD","SecretAccessKey":"s","Token":"t","AccountId":"111122223333","Expiration":"2026-01-01T06:00:00.000Z"}"#;
        assert!(credentials_json(container, "x").unwrap().expiry().is_some());
        let table = [
            (
                r#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"denied"}"#,
                "AssumeRoleUnauthorizedAccess: denied",
            ),
            (
                r#"{"AccessKeyId":"a"}"#,
                "no AccessKeyId or SecretAccessKey",
            ),
            (
                r#"{"AccessKeyId":"a","SecretAccessKey":"s","Expiration":"soon"}"#,
                "bad Expiration \"soon\"",
            ),
            ("<html>", "not credentials JSON"),
        ];
        for (json, want) in table {
            let e = credentials_json(json, "x").unwrap_err().to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
    }
}
