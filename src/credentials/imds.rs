//! A small EC2 instance metadata (IMDSv2) client: the instance role's credentials and
//! the instance's region.
//!
//! Every lookup takes a session token (`PUT /latest/api/token` with its TTL header) and
//! then `GET`s the path with it. Off EC2 the link-local address does not answer, so the
//! timeouts are short and a lookup is retried at most once. `AWS_EC2_METADATA_DISABLED=true`
//! turns it off; `AWS_EC2_METADATA_SERVICE_ENDPOINT` (or
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`) moves it, as in the SDKs.

use std::time::Duration;

use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::Full;

use super::link_local::{self, Http, LinkError};

/// The default endpoint, and the IPv6 one.
const ENDPOINT_V4: &str = "http://169.254.169.254";
const ENDPOINT_V6: &str = "http://[fd00:ec2::254]";
/// How long the session token asked for lives (the SDKs' six hours).
const TOKEN_TTL_SECONDS: &str = "21600";
/// The budget of each exchange (connecting included).
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
const ROLE_PATH: &str = "/latest/meta-data/iam/security-credentials/";
const REGION_PATH: &str = "/latest/meta-data/placement/region";

/// The metadata service.
#[derive(Debug, Clone)]
pub struct Imds {
    http: Http,
    endpoint: String,
}

/// Whether IMDS is turned off (`AWS_EC2_METADATA_DISABLED=true`).
pub fn disabled(get: &dyn Fn(&str) -> Option<String>) -> bool {
    get("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The endpoint the environment names.
pub fn endpoint(get: &dyn Fn(&str) -> Option<String>) -> String {
    if let Some(url) = get("AWS_EC2_METADATA_SERVICE_ENDPOINT").filter(|v| !v.trim().is_empty()) {
        return url.trim().trim_end_matches('/').to_owned();
    }
    match get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE") {
        Some(mode) if mode.trim().eq_ignore_ascii_case("ipv6") => ENDPOINT_V6.to_owned(),
        _ => ENDPOINT_V4.to_owned(),
    }
}

impl Imds {
    /// The service at `endpoint` (no trailing `/`), called through `http`.
    pub fn new(http: Http, endpoint: String) -> Self {
        Self { http, endpoint }
    }

    /// The service the environment names, or `None` when it is turned off.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>, LinkError> {
        if disabled(get) {
            return Ok(None);
        }
        Ok(Some(Self {
            http: link_local::client()?,
            endpoint: endpoint(get),
        }))
    }

    /// `path`'s text, with a fresh session token; retried once if no answer came.
    pub async fn get(&self, path: &str) -> Result<String, LinkError> {
        match self.get_once(path).await {
            Err(e) if e.is_transient() => self.get_once(path).await,
            other => other,
        }
    }

    async fn get_once(&self, path: &str) -> Result<String, LinkError> {
        let put = http::Request::put(format!("{}/latest/api/token", self.endpoint))
            .header("x-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL_SECONDS)
            .body(Full::new(Bytes::new()))
            .map_err(|e| LinkError::Request(e.to_string()))?;
        let token = link_local::text(&self.http, put, CALL_TIMEOUT).await?;
        let get = http::Request::get(format!("{}{path}", self.endpoint))
            .header("x-aws-ec2-metadata-token", token.trim())
            .body(Full::new(Bytes::new()))
            .map_err(|e| LinkError::Request(e.to_string()))?;
        link_local::text(&self.http, get, CALL_TIMEOUT).await
    }

    /// The instance's region.
    pub async fn region(&self) -> Result<String, LinkError> {
        let region = self.get(REGION_PATH).await?.trim().to_owned();
        if region.is_empty() {
            return Err(LinkError::Answer("empty region".to_owned()));
        }
        Ok(region)
    }

    /// The instance role's credentials; `None` when the instance has no role.
    pub async fn credentials(&self) -> Result<Option<Credentials>, LinkError> {
        let roles = match self.get(ROLE_PATH).await {
            Err(LinkError::Status(404, _)) => return Ok(None),
            other => other?,
        };
        let Some(role) = roles.lines().map(str::trim).find(|r| !r.is_empty()) else {
            return Ok(None);
        };
        let json = self.get(&format!("{ROLE_PATH}{role}")).await?;
        link_local::credentials_json(&json, "Ec2InstanceMetadata").map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| vars.get(k).cloned()
    }

    #[test]
    fn endpoint_and_switch_come_from_the_environment() {
        assert_eq!(endpoint(&env(&[])), "http://169.254.169.254");
        assert_eq!(
            endpoint(&env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6")])),
            "http://[fd00:ec2::254]"
        );
        assert_eq!(
            endpoint(&env(&[
                (
                    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                    "http://127.0.0.1:1234/"
                ),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6")
            ])),
            "http://127.0.0.1:1234"
        );
        assert!(disabled(&env(&[("AWS_EC2_METADATA_DISABLED", "TRUE")])));
        assert!(!disabled(&env(&[("AWS_EC2_METADATA_DISABLED", "false")])));
        assert!(!disabled(&env(&[])));
    }
}
