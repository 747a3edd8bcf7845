//! The pooled HTTPS client that sends a validated token's `GetCallerIdentity` request
//! and counts STS's answers.
//!
//! The client only ever receives URLs that [`crate::token::verify::validate`] accepted
//! (an allow-listed STS host, no port). `--sts-resolve` changes where such a host
//! *connects*, never which host name is used for SNI, `Host` and certificate checks, so
//! no option lets a token reach a server that cannot prove it is that STS host.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};

use super::metrics::{StsMetrics, StsRegion};
use super::response::{self, CallError, CallerIdentity};
use crate::aws::CLUSTER_ID_HEADER;
use crate::config::StsOptions;
use crate::error::error_chain;
use crate::https;

/// Upstream's STS client timeout, for the whole exchange (connect, headers, body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long establishing a TCP connection may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest STS answer we read; `GetCallerIdentity` answers are well under 1 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The client could not be built (the shared HTTPS constructor's errors, naming STS).
pub use crate::https::Error;

/// The system resolver, except for hosts `--sts-resolve` maps to a fixed address.
#[derive(Debug, Clone)]
struct Resolver {
    overrides: Arc<Vec<(String, SocketAddr)>>,
    system: GaiResolver,
}

type ResolveFuture =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, std::io::Error>> + Send>>;

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = ResolveFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.system.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        if let Some((_, addr)) = self
            .overrides
            .iter()
            .find(|(host, _)| host.eq_ignore_ascii_case(name.as_str()))
        {
            let addr = *addr;
            return Box::pin(std::future::ready(Ok(vec![addr].into_iter())));
        }
        let lookup = self.system.call(name);
        Box::pin(async move { Ok(lookup.await?.collect::<Vec<_>>().into_iter()) })
    }
}

type Http = https::Client<Resolver, Empty<Bytes>>;

#[derive(Debug)]
struct Inner {
    http: Http,
    timeout: Duration,
    user_agent: http::HeaderValue,
    metrics: StsMetrics,
}

/// The STS client: one per process, cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Builds the client: system trust roots (honouring `SSL_CERT_FILE`/`SSL_CERT_DIR`)
    /// plus `opts.ca_file`, HTTP/1.1 and HTTP/2, upstream's 10 s timeout; it counts
    /// STS's answers on `metrics`.
    pub fn new(opts: &StsOptions, metrics: StsMetrics) -> Result<Self, Error> {
        Self::with_timeouts(opts, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, metrics)
    }

    /// As [`Client::new`] with other timeouts (`total` bounds the whole exchange).
    pub fn with_timeouts(
        opts: &StsOptions,
        connect: Duration,
        total: Duration,
        metrics: StsMetrics,
    ) -> Result<Self, Error> {
        let resolver = Resolver {
            overrides: Arc::new(opts.resolve.clone()),
            system: GaiResolver::new(),
        };
        let options = https::Options {
            ca_file: opts.ca_file.as_deref(),
            proxy: opts.proxy.clone(),
            ..https::Options::new("STS", connect)
        };
        let http = https::client(resolver, &options)?;
        let user_agent = https::user_agent();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                timeout: total,
                user_agent,
                metrics,
            }),
        })
    }

    /// GETs `url` (a URL [`crate::token::verify::validate`] accepted) with
    /// `x-k8s-aws-id: <cluster_id>` and `Accept: application/json`, counts the answer
    /// under `region` (the host's region label, see
    /// [`crate::aws::endpoints::region_label`]) and reads who signed the URL.
    pub async fn get_caller_identity(
        &self,
        url: &str,
        cluster_id: &str,
        region: &str,
    ) -> Result<CallerIdentity, CallError> {
        let m = &self.inner.metrics;
        let label = StsRegion::of(region);
        let (status, body) = match self.exchange(url, cluster_id, region).await {
            Ok(answer) => answer,
            Err(e) => {
                if matches!(e, CallError::Transport { .. } | CallError::Timeout { .. }) {
                    m.connection_failed(label);
                }
                return Err(e);
            }
        };
        m.responded(status, label);
        let result = response::interpret(status, &body, region);
        if matches!(result, Err(CallError::Throttled(_))) {
            m.throttled(label);
        }
        result
    }

    /// The HTTP exchange: status and (bounded) body, within the total timeout.
    async fn exchange(
        &self,
        url: &str,
        cluster_id: &str,
        region: &str,
    ) -> Result<(u16, Bytes), CallError> {
        let request = http::Request::get(url)
            .header(CLUSTER_ID_HEADER, cluster_id)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, self.inner.user_agent.clone())
            .body(Empty::<Bytes>::new())
            .map_err(|e| CallError::Request(error_chain(&e)))?;
        let deadline = tokio::time::Instant::now() + self.inner.timeout;
        let secs = self.inner.timeout.as_secs_f64();
        let transport = |error: String| CallError::Transport {
            error,
            region: region.to_owned(),
        };
        let response =
            match tokio::time::timeout_at(deadline, self.inner.http.request(request)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Err(transport(error_chain(&e))),
                Err(_) => {
                    return Err(CallError::Timeout {
                        error: format!("timeout after {secs}s awaiting response headers"),
                        region: region.to_owned(),
                    });
                }
            };
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES);
        let body = match tokio::time::timeout_at(deadline, body.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => return Err(CallError::Body(error_chain(e.as_ref()))),
            Err(_) => {
                return Err(CallError::Timeout {
                    error: format!("timeout after {secs}s reading the body"),
                    region: region.to_owned(),
                });
            }
        };
        Ok((status, body))
    }
}

/// Parses `--sts-resolve HOST=IP:PORT` (e.g. `sts.us-west-2.amazonaws.com=127.0.0.1:8443`
/// or `…=[::1]:443`). The host is compared case-insensitively with token hosts.
pub fn parse_resolve(s: &str) -> Result<(String, SocketAddr), String> {
    let Some((host, addr)) = s.split_once('=') else {
        return Err(format!("{s:?} is not HOST=IP:PORT"));
    };
    let host = host.trim();
    if host.is_empty()
        || !host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
    {
        return Err(format!("{host:?} in {s:?} is not a host name"));
    }
    let addr = addr
        .trim()
        .parse::<SocketAddr>()
        .map_err(|e| format!("{addr:?} in {s:?} is not IP:PORT: {e}"))?;
    Ok((host.to_ascii_lowercase(), addr))
}

/// The region this process runs in, for the host allow-list's fallback: `AWS_REGION`,
/// else `AWS_DEFAULT_REGION`, else (unless `AWS_EC2_METADATA_DISABLED=true`) the
/// instance metadata service with a one-second budget, else none.
///
/// upstream: always asks IMDS (its SDK defaults can stall ~20 s off EC2); we prefer the
/// environment and give IMDS one short attempt, because the region only matters for
/// hosts of regions the endpoint table does not know.
pub async fn instance_region() -> Option<String> {
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            return Some(v.trim().to_owned());
        }
    }
    let env = |name: &str| std::env::var(name).ok();
    let imds = match crate::credentials::imds::Imds::from_env(&env) {
        Ok(Some(imds)) => imds,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!("[Warn] Region not found in instance metadata, err: {e}");
            return None;
        }
    };
    match tokio::time::timeout(Duration::from_secs(1), imds.region()).await {
        Ok(Ok(region)) => Some(region),
        Ok(Err(e)) => {
            tracing::warn!("[Warn] Region not found in instance metadata, err: {e}");
            None
        }
        Err(_) => {
            tracing::warn!("[Warn] Region not found in instance metadata, err: timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_flag() {
        assert_eq!(
            parse_resolve("STS.us-west-2.amazonaws.com=127.0.0.1:8443").unwrap(),
            (
                "sts.us-west-2.amazonaws.com".to_owned(),
                "127.0.0.1:8443".parse().unwrap()
            )
        );
        assert_eq!(
            parse_resolve("sts.amazonaws.com=[::1]:443").unwrap().1,
            "[::1]:443".parse().unwrap()
        );
        for bad in [
            "sts.amazonaws.com",
            "=127.0.0.1:1",
            "sts.amazonaws.com=127.0.0.1",
            "sts.amazonaws.com:443=127.0.0.1:1",
            "sts.amazonaws.com=localhost:1",
        ] {
            assert!(parse_resolve(bad).is_err(), "{bad}");
        }
    }
}
