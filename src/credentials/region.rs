//! Where `token` talks to: the region (upstream's order, IMDS with a short budget) and
//! the STS host its token is presigned for.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::{Region, SdkConfig};

use super::Error;
use crate::aws::endpoints;

/// The region upstream falls back to when none is configured and IMDS has none.
pub const FALLBACK_REGION: &str = "us-east-1";
/// IMDS budget off EC2: the SDK's defaults (several seconds of retries) made every
/// `token` call slow on laptops (upstream's issue with IMDS probing); on EC2 the
/// link-local endpoint answers in milliseconds.
const IMDS_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const IMDS_READ_TIMEOUT: Duration = Duration::from_secs(1);
const IMDS_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// Why IMDS gave no region.
#[derive(Debug, thiserror::Error)]
enum ImdsRegionError {
    #[error("IMDS is disabled (AWS_EC2_METADATA_DISABLED=true)")]
    Disabled,
    #[error(transparent)]
    Imds(Box<aws_config::imds::client::error::ImdsError>),
    #[error("empty region")]
    Empty,
}

/// `--region`, else the SDK's environment and profile, else IMDS, else `us-east-1`
/// (upstream's order).
pub async fn resolve(flag: Option<&str>) -> Region {
    if let Some(region) = flag {
        return Region::new(region.to_owned());
    }
    let chain = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new());
    if let Some(region) = chain.region().await {
        return region;
    }
    match imds_region().await {
        Ok(region) => Region::new(region),
        Err(e) => {
            tracing::info!(
                "failed to get region from IMDS for token generation, defaulting to {FALLBACK_REGION}. imds error: {}",
                crate::error::error_chain(&e)
            );
            Region::from_static(FALLBACK_REGION)
        }
    }
}

fn imds_disabled() -> bool {
    std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// An IMDS client with short timeouts and no retries, so that off EC2 the probe fails
/// within about a second instead of the SDK's default budget.
pub fn imds_client() -> aws_config::imds::Client {
    aws_config::imds::Client::builder()
        .connect_timeout(IMDS_CONNECT_TIMEOUT)
        .read_timeout(IMDS_READ_TIMEOUT)
        .operation_timeout(IMDS_OPERATION_TIMEOUT)
        .max_attempts(1)
        .build()
}

async fn imds_region() -> Result<String, ImdsRegionError> {
    if imds_disabled() {
        return Err(ImdsRegionError::Disabled);
    }
    let region = imds_client()
        .get("/latest/meta-data/placement/region")
        .await
        .map_err(|e| ImdsRegionError::Imds(Box::new(e)))?;
    let region = region.as_ref().trim().to_owned();
    if region.is_empty() {
        return Err(ImdsRegionError::Empty);
    }
    Ok(region)
}

/// The STS endpoint URL: `AWS_ENDPOINT_URL_STS` or `AWS_ENDPOINT_URL` if set (as the
/// SDK's STS client would use), else the regional endpoint, honouring
/// `AWS_USE_FIPS_ENDPOINT` / `AWS_USE_DUALSTACK_ENDPOINT` (environment or profile).
pub fn sts_url(sdk: &SdkConfig, region: &str) -> Result<String, Error> {
    // The SDK already leaves the global endpoint out of `sdk` when this is set.
    let ignore_configured = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let override_url = std::env::var("AWS_ENDPOINT_URL_STS")
        .ok()
        .filter(|u| !u.is_empty() && !ignore_configured)
        .or_else(|| sdk.endpoint_url().map(str::to_owned));
    match override_url {
        Some(url) => endpoint_host(&url).map(|_| url),
        None => Ok(format!(
            "https://{}/",
            endpoints::sts_host(
                region,
                sdk.use_fips().unwrap_or(false),
                sdk.use_dual_stack().unwrap_or(false),
            )
        )),
    }
}

/// The host the token is presigned for: the authority of [`sts_url`].
pub fn sts_host(sdk: &SdkConfig, region: &str) -> Result<String, Error> {
    endpoint_host(&sts_url(sdk, region)?)
}

/// The STS client `token`'s role assumptions and identity lookups go through.
pub fn sts_client(sdk: &SdkConfig, region: &str) -> Result<super::sts::Sts, Error> {
    let url = sts_url(sdk, region)?;
    super::sts::Sts::new(&url, region, crate::https::proxy::ProxyEnv::from_env()).map_err(|e| {
        Error::EndpointUrl {
            url,
            message: e.to_string(),
        }
    })
}

/// The authority (host and port) of an endpoint override.
fn endpoint_host(url: &str) -> Result<String, Error> {
    let bad = |message: String| Error::EndpointUrl {
        url: url.to_owned(),
        message,
    };
    let uri: http::Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
    let authority = uri.authority().ok_or_else(|| bad("no host".to_owned()))?;
    Ok(authority.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_overrides_name_their_authority() {
        assert_eq!(
            endpoint_host("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            endpoint_host("https://sts.example.com/").unwrap(),
            "sts.example.com"
        );
        let e = endpoint_host("/just/a/path").unwrap_err().to_string();
        assert!(
            e.contains("\"/just/a/path\"") && e.contains("no host"),
            "{e}"
        );
        assert!(endpoint_host("http://[::1").is_err());
    }
}
