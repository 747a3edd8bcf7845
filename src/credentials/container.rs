//! Container credentials: EKS Pod Identity and ECS task roles.
//!
//! `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` is a path on ECS's `169.254.170.2`;
//! otherwise `AWS_CONTAINER_CREDENTIALS_FULL_URI` is the whole URL (EKS Pod Identity's
//! agent is `http://169.254.170.23/v1/credentials`). As in the SDKs, a full URI must be
//! `https://`, or plain `http://` to a loopback address or to the ECS / EKS agent
//! addresses. The `Authorization` header is the contents of
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read on every fetch: the agent rotates it),
//! else `AWS_CONTAINER_AUTHORIZATION_TOKEN`.

use std::time::Duration;

use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::Full;

use super::link_local::{self, Http, LinkError};

/// ECS's credentials endpoint, which relative URIs are on.
const ECS_HOST: &str = "http://169.254.170.2";
/// Hosts plain `http://` full URIs may name besides loopback: ECS, EKS Pod Identity.
const AGENT_HOSTS: &[&str] = &["169.254.170.2", "169.254.170.23", "fd00:ec2::23"];
/// The budget of one fetch.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the container's credentials are and how to authorize there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL.
    pub url: String,
    /// The token file, read on every fetch.
    pub token_file: Option<String>,
    /// The token, when no file is named.
    pub token: Option<String>,
}

/// The endpoint the environment names, if any (`Ok(None)`: not in a container with
/// credentials), or why the one it names is refused.
pub fn endpoint(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Endpoint>, String> {
    let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let url = if let Some(path) = var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        format!("{ECS_HOST}{}", path.trim())
    } else if let Some(url) = var("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        check_full_uri(url.trim())?;
        url.trim().to_owned()
    } else {
        return Ok(None);
    };
    Ok(Some(Endpoint {
        url,
        token_file: var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        token: var("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    }))
}

fn check_full_uri(url: &str) -> Result<(), String> {
    let bad = |m: &str| format!("AWS_CONTAINER_CREDENTIALS_FULL_URI {url:?}: {m}");
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http")
            if crate::https::proxy::is_loopback(host)
                || AGENT_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(bare)) =>
        {
            Ok(())
        }
        Some("http") => Err(bad(
            "plain http only to loopback or the ECS / EKS Pod Identity agent addresses",
        )),
        _ => Err(bad("expected an http or https URL")),
    }
}

/// The container's credentials.
pub async fn credentials(http: &Http, endpoint: &Endpoint) -> Result<Credentials, LinkError> {
    let token = match &endpoint.token_file {
        Some(path) => Some(tokio::fs::read_to_string(path).await.map_err(|e| {
            LinkError::Request(format!(
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {path}: {e}"
            ))
        })?),
        None => endpoint.token.clone(),
    };
    let fetch = || {
        let mut request = http::Request::get(&endpoint.url);
        if let Some(token) = &token {
            request = request.header(http::header::AUTHORIZATION, token.trim());
        }
        request
            .body(Full::new(Bytes::new()))
            .map_err(|e| LinkError::Request(e.to_string()))
    };
    let json = match link_local::text(http, fetch()?, CALL_TIMEOUT).await {
        Err(e) if e.is_transient() => link_local::text(http, fetch()?, CALL_TIMEOUT).await,
        other => other,
    }?;
    link_local::credentials_json(&json, "ContainerCredentials")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Option<Endpoint>, String> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        endpoint(&|k| vars.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn relative_uri_first_then_checked_full_uri() {
        assert_eq!(from(&[]), Ok(None));
        let e = from(&[
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/x",
            ),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(e.url, "http://169.254.170.2/v2/credentials/x");
        assert_eq!(e.token.as_deref(), Some("tok"));
        for ok in [
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
            "http://127.0.0.1:8080/creds",
            "https://creds.example.com/",
        ] {
            let e = from(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", ok)]);
            assert_eq!(e.unwrap().unwrap().url, ok);
        }
        for bad in ["http://example.com/", "ftp://127.0.0.1/", "/relative"] {
            let e = from(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", bad)]).unwrap_err();
            assert!(e.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI"), "{e}");
        }
    }
}
