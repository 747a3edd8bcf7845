//! `{{EC2PrivateDNSName}}`: the private DNS name of the EC2 instance whose id is the
//! role session name.
//!
//! Lookups are answered from a cache; misses are **coalesced** (one outstanding query
//! per instance id, every concurrent caller waits for it), **batched** (ids arriving
//! within a short window, up to 100, go into one `DescribeInstances`) and
//! **rate-limited** (a token bucket of `--ec2-describeInstances-qps` /
//! `--ec2-describeInstances-burst` in front of every `DescribeInstances` call).
//! Found names are cached for an hour; a not-found answer is cached briefly, so a
//! flood of logins for an unknown id costs one call, and a later lookup answers at once.
//!
//! upstream: `pkg/ec2provider` rate-limits only the STS client used for AssumeRole, not
//! `DescribeInstances`; after a not-found answer it leaves the id marked in flight, so
//! every later lookup of it waits 5 s and fails; it caches an empty `privateDnsName` as
//! a success; it never expires entries. We fix all four.
//!
//! # How EC2 is called
//!
//! Not through `aws-sdk-ec2`: that crate alone costs minutes of compile time on a small
//! builder and megabytes of binary for one API call. Credentials come from the server's
//! own chain ([`crate::credentials::chain`]; with `server.ec2DescribeInstancesRoleARN`, an STS AssumeRole
//! carrying the `x-amz-source-arn`/`x-amz-source-account` headers of `server.sourceARN`),
//! the EC2 Query API request (`Action=DescribeInstances&Version=2016-11-15`) is signed
//! with `aws-sigv4`, sent with the shared HTTPS client ([`crate::https`]), and the XML answer is
//! read with `aws-smithy-xml`. Instances are selected with the `instance-id` filter
//! rather than `InstanceId.N`: with the latter, one unknown id fails the whole batch
//! (`InvalidInstanceID.NotFound`), with the filter it is just absent from the answer.
//! The endpoint is `https://ec2.<region>.<partition domain>/`, or `AWS_ENDPOINT_URL_EC2`
//! / `AWS_ENDPOINT_URL` when set (plain `http://` only to loopback addresses).
//!
//! # Layout
//!
//! * [`client`]: signs and sends `DescribeInstances` over [`crate::https`], reads the XML;
//! * [`rate_limit`]: the token bucket;
//! * [`batcher`]: cache, coalescing, batching ([`Ec2PrivateDns`]);
//! * [`metrics`]: `ec2_describe_instances_calls_total` ([`Ec2Metrics`]);
//! * [`credentials`]: the keys EC2 is called with (the server's chain, or the
//!   `ec2DescribeInstancesRoleARN` role through [`crate::credentials`]).

mod batcher;
mod client;
mod credentials;
mod metrics;
mod rate_limit;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ServerConfig;

pub use batcher::Ec2PrivateDns;
pub use client::parse_describe_instances;
pub use metrics::Ec2Metrics;

/// A boxed future, for the object-safe lookup trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Looks up an instance's private DNS name.
pub trait PrivateDnsLookup: Send + Sync + std::fmt::Debug {
    /// The private DNS name of `instance_id`, or why it is not known.
    fn private_dns_name<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// The EC2 Query API version we speak.
pub const API_VERSION: &str = "2016-11-15";
/// The most ids one `DescribeInstances` call asks for.
pub const MAX_BATCH: usize = 100;

/// Why the lookup could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint is not a usable URL.
    #[error("invalid EC2 endpoint {url:?}: {message}")]
    Endpoint {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The HTTPS client could not be built.
    #[error(transparent)]
    Https(#[from] crate::https::Error),
    /// `server.ec2DescribeInstancesRoleARN` is not an ARN (upstream's text; upstream panics).
    #[error("describeinstancesrole {0} is not a valid arn")]
    RoleArn(String),
    /// `server.sourceARN` is not an ARN.
    #[error("sourcearn {0} is not a valid arn")]
    SourceArn(String),
    /// The STS client for `ec2DescribeInstancesRoleARN` could not be set up.
    #[error("EC2 credentials: {0}")]
    Sts(#[source] crate::credentials::sts::StsError),
}

/// How the lookup behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The EC2 endpoint, e.g. `https://ec2.us-west-2.amazonaws.com/`.
    pub endpoint: String,
    /// The signing region.
    pub region: String,
    /// `DescribeInstances` calls per second (0: unlimited).
    pub qps: u32,
    /// Calls allowed at once after a quiet period (at least 1).
    pub burst: u32,
    /// How long the first id of a batch waits for others.
    pub batch_window: Duration,
    /// The most ids per call (at most [`MAX_BATCH`]).
    pub max_batch: usize,
    /// How long a found name is kept.
    pub found_ttl: Duration,
    /// How long a not-found answer is kept.
    pub not_found_ttl: Duration,
    /// Budget of one `DescribeInstances` exchange.
    pub call_timeout: Duration,
    /// How long a caller waits for its answer at most.
    pub lookup_timeout: Duration,
    /// The proxy variables (none unless the caller read them from the environment).
    pub proxy: crate::https::proxy::ProxyEnv,
}

impl Settings {
    /// Defaults for `region` and `endpoint` with the given rate limit.
    pub fn new(endpoint: String, region: String, qps: u32, burst: u32) -> Self {
        Self {
            endpoint,
            region,
            qps,
            burst,
            batch_window: Duration::from_millis(200),
            max_batch: MAX_BATCH,
            found_ttl: Duration::from_secs(3600),
            not_found_ttl: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            lookup_timeout: Duration::from_secs(15),
            proxy: crate::https::proxy::ProxyEnv::none(),
        }
    }
}

/// The EC2 endpoint: `AWS_ENDPOINT_URL_EC2`, else `AWS_ENDPOINT_URL`, else the
/// partition's regional endpoint.
fn endpoint(region: &str, domain: &str) -> String {
    ["AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| format!("https://ec2.{region}.{domain}/"))
}

/// The lookup the server uses, built from the server configuration. `None` when no
/// region is known (then `{{EC2PrivateDNSName}}` cannot be rendered). Its calls are
/// counted on `metrics`.
pub async fn from_config(
    config: &ServerConfig,
    metrics: Ec2Metrics,
) -> Result<Option<Arc<dyn PrivateDnsLookup>>, Error> {
    let Some(region) = crate::sts::instance_region().await else {
        tracing::warn!(
            "no AWS region (AWS_REGION or instance metadata): {{{{EC2PrivateDNSName}}}} will not be rendered"
        );
        return Ok(None);
    };
    let proxy = crate::https::proxy::ProxyEnv::from_env();
    let credentials = credentials::provider(config, &region, &proxy)?;
    let mut settings = Settings::new(
        endpoint(&region, config.partition.domain()),
        region,
        config.ec2_describe_instances_qps,
        config.ec2_describe_instances_burst,
    );
    settings.proxy = proxy;
    let lookup = Ec2PrivateDns::new(settings, credentials, metrics)?;
    Ok(Some(Arc::new(lookup)))
}
