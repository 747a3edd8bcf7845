//! Outbound calls through an HTTP proxy, as the standard environment variables say.
//!
//! `HTTPS_PROXY`/`https_proxy`, `HTTP_PROXY`/`http_proxy`, `ALL_PROXY`/`all_proxy` and
//! `NO_PROXY`/`no_proxy` are read once, when a client is built. hyper-util's matcher
//! applies them with curl's `NO_PROXY` rules (a domain matches itself and its subdomains,
//! with or without a leading dot; IP addresses; CIDRs; `*` for everything), and its tunnel
//! connector asks the proxy for `CONNECT host:port` (with `Proxy-Authorization: Basic …`
//! when the proxy URL carries credentials). The TLS connector then runs over the tunnel
//! exactly as over a direct connection: SNI, the certificate check and `Host` are the
//! target's own name, and the proxy only ever sees that name and port. Which URLs reach
//! the client at all is decided before (the token's host allow-list), so a proxy never
//! widens where a token is sent.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A proxy variable that is set (non-empty).
#[derive(Clone, PartialEq, Eq)]
struct Var {
    name: &'static str,
    value: String,
}

/// The proxy variables of the environment, as read when a client is built.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    https: Option<Var>,
    http: Option<Var>,
    all: Option<Var>,
    no: Option<Var>,
}

/// Values may hold a proxy password: only the names of the variables set are shown.
impl fmt::Debug for ProxyEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: Vec<&str> = [&self.https, &self.http, &self.all, &self.no]
            .into_iter()
            .flatten()
            .map(|v| v.name)
            .collect();
        f.debug_struct("ProxyEnv").field("set", &set).finish()
    }
}

/// A proxy variable is unusable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ProxyError {
    /// The variable, e.g. `HTTPS_PROXY`.
    pub variable: &'static str,
    /// What is wrong with it (never its value, which may hold a password).
    pub problem: String,
}

impl ProxyEnv {
    /// No proxy at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// The process's environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The variables `get` knows. Upper case wins over lower case, and an empty value
    /// counts as unset.
    ///
    /// upstream: Go's `ProxyFromEnvironment` (golang.org/x/net/http/httpproxy) reads the
    /// same pairs in the same order and also skips empty values, but has no `ALL_PROXY`;
    /// we honour it as a fallback for both schemes, as curl (and hyper-util's matcher) do.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: [&'static str; 2]| {
            names.into_iter().find_map(|name| {
                let value = get(name)?.trim().to_owned();
                (!value.is_empty()).then_some(Var { name, value })
            })
        };
        Self {
            https: first(["HTTPS_PROXY", "https_proxy"]),
            http: first(["HTTP_PROXY", "http_proxy"]),
            all: first(["ALL_PROXY", "all_proxy"]),
            no: first(["NO_PROXY", "no_proxy"]),
        }
    }

    /// The proxies these variables name, or none. A value that is not an `http://` proxy
    /// URL (or a bare `host:port`, taken as one) is an error, rather than being ignored and
    /// every call then going around the proxy the operator asked for.
    pub fn proxies(&self) -> Result<Option<Proxies>, ProxyError> {
        let https = self.https.as_ref().map(check).transpose()?;
        let http = self.http.as_ref().map(check).transpose()?;
        let all = self.all.as_ref().map(check).transpose()?;
        if https.is_none() && http.is_none() && all.is_none() {
            return Ok(None);
        }
        let value = |v: &Option<Var>| v.as_ref().map(|v| v.value.clone()).unwrap_or_default();
        let matcher = Matcher::builder()
            .https(value(&self.https))
            .http(value(&self.http))
            .all(value(&self.all))
            .no(value(&self.no))
            .build();
        Ok(Some(Proxies {
            matcher: Arc::new(matcher),
            https: https.or(all).map(|(name, uri)| (name, uri.to_string())),
            no: self.no.as_ref().map(|v| v.value.clone()),
        }))
    }
}

/// The proxy a variable names, without credentials; an error unless it is `http://`.
fn check(var: &Var) -> Result<(&'static str, Uri), ProxyError> {
    let problem = |problem: String| ProxyError {
        variable: var.name,
        problem,
    };
    let intercept = Matcher::builder()
        .all(var.value.as_str())
        .build()
        .intercept(&Uri::from_static("https://proxy.check.invalid/"))
        .ok_or_else(|| {
            problem("not a proxy URL (expected http://[user:password@]host[:port])".to_owned())
        })?;
    let uri = intercept.uri().clone();
    match uri.scheme_str() {
        Some("http") => Ok((var.name, uri)),
        // TLS to the proxy itself, or SOCKS: hyper-util has the pieces, but nobody has
        // asked, and an unused path would go untested.
        other => Err(problem(format!(
            "only http:// proxies are supported, not {}://",
            other.unwrap_or_default()
        ))),
    }
}

/// The proxies in force for a client: which one a target goes through, if any.
#[derive(Clone)]
pub struct Proxies {
    matcher: Arc<Matcher>,
    /// The variable and proxy (without credentials) for `https://` targets, for logs.
    https: Option<(&'static str, String)>,
    no: Option<String>,
}

impl fmt::Debug for Proxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxies")
            .field("https", &self.https)
            .field("no", &self.no)
            .finish()
    }
}

impl Proxies {
    /// The proxy `dst` goes through, or `None` to connect directly.
    ///
    /// upstream: Go's httpproxy never proxies `localhost` or a loopback address, whatever
    /// `NO_PROXY` says; we do the same (loopback is where local emulators listen).
    pub fn for_target(&self, dst: &Uri) -> Option<Intercept> {
        if is_loopback(dst.host()?) {
            return None;
        }
        self.matcher.intercept(dst)
    }

    /// Logs, once per client, which proxy its `https://` calls use (never credentials).
    pub fn log(&self, service: &str) {
        match &self.https {
            Some((variable, proxy)) => tracing::info!(
                proxy = %proxy,
                variable = *variable,
                no_proxy = self.no.as_deref().unwrap_or_default(),
                "{service} calls go through the HTTP proxy {proxy}"
            ),
            None => tracing::info!(
                "{service} calls are not proxied: only HTTP_PROXY is set, which applies to \
                 http:// URLs, not https://"
            ),
        }
    }
}

/// `localhost` or a loopback address (IPv6 in brackets or not).
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Connects directly, or through a `CONNECT` tunnel when a proxy applies to the target.
#[derive(Clone, Debug)]
pub struct ProxyConnector<C> {
    inner: C,
    proxies: Option<Proxies>,
}

impl<C> ProxyConnector<C> {
    /// Wraps the TCP connector `inner`.
    pub fn new(inner: C, proxies: Option<Proxies>) -> Self {
        Self { inner, proxies }
    }
}

impl<C> tower_service::Service<Uri> for ProxyConnector<C>
where
    C: tower_service::Service<Uri> + Clone + Send + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let Some(proxy) = self.proxies.as_ref().and_then(|p| p.for_target(&dst)) else {
            let connecting = self.inner.call(dst);
            return Box::pin(async move { connecting.await.map_err(Into::into) });
        };
        let proxy_uri = proxy.uri().clone();
        let mut tunnel = Tunnel::new(proxy_uri.clone(), self.inner.clone());
        if let Some(auth) = proxy.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        Box::pin(async move {
            let through = |e: &(dyn std::error::Error + 'static)| -> BoxError {
                format!(
                    "through the proxy {proxy_uri}: {}",
                    crate::error::error_chain(e)
                )
                .into()
            };
            std::future::poll_fn(|cx| tunnel.poll_ready(cx))
                .await
                .map_err(|e| through(&e))?;
            tunnel.call(dst).await.map_err(|e| through(&e))
        })
    }
}

#[cfg(test)]
mod tests;
