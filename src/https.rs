//! The pooled HTTPS client the server's outbound calls share (STS, EC2).
//!
//! One constructor, so every outbound call trusts the same roots and behaves alike:
//! the system's trust roots through `rustls-native-certs` (which honours
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`) plus an optional extra PEM CA file, the process's
//! one rustls crypto provider (ring), a connect timeout, pooled keep-alive
//! connections, and no redirects: hyper's client never follows a 3xx, which callers see
//! as the non-success answer it is. The whole exchange's deadline is the caller's, since
//! it also covers reading the body. Through a proxy when the caller passes the proxy
//! variables it read from the environment ([`proxy`]). AWS Query API requests (form
//! `POST`s, SigV4-signed or not) and their bounded exchange are in [`form`].

pub mod form;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// How long an idle pooled connection is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The connector every client is built on, over the resolver `R`: TLS over a direct
/// connection or over a proxy's tunnel.
pub type Connector<R> = HttpsConnector<proxy::ProxyConnector<HttpConnector<R>>>;
/// A pooled client sending bodies of type `B`.
pub type Client<R, B> = HyperClient<Connector<R>, B>;

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The extra CA file could not be read.
    #[error("could not read {service} CA file {}: {source}", path.display())]
    CaFileRead {
        /// Whom the client talks to, e.g. `STS`.
        service: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The extra CA file holds no usable PEM certificate.
    #[error("{service} CA file {} contains no usable PEM certificate{}", path.display(), detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    CaFileContents {
        /// Whom the client talks to.
        service: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's or the trust store's complaint, if any.
        detail: Option<String>,
    },
    /// A proxy variable is unusable.
    #[error("invalid proxy setting for {service} calls: {source}")]
    Proxy {
        /// Whom the client talks to.
        service: &'static str,
        /// The variable and its problem.
        source: proxy::ProxyError,
    },
    /// rustls refused the configuration.
    #[error("could not configure TLS for {service}: {source}")]
    Tls {
        /// Whom the client talks to.
        service: &'static str,
        /// rustls's complaint.
        source: rustls::Error,
    },
}

/// How a client is built.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// Whom the client talks to, for messages (`STS`, `EC2`).
    pub service: &'static str,
    /// Extra PEM CA certificates trusted besides the system's.
    pub ca_file: Option<&'a Path>,
    /// How long establishing a TCP connection may take.
    pub connect_timeout: Duration,
    /// Also offer HTTP/2 (ALPN); HTTP/1.1 always.
    pub http2: bool,
    /// Also allow plain `http://` URLs. Callers that allow it decide which (e.g. only
    /// loopback emulators); otherwise a plain URL is refused before connecting.
    pub allow_http: bool,
    /// The proxy variables (callers read them from the environment when they build the
    /// client; none by default).
    pub proxy: proxy::ProxyEnv,
}

impl<'a> Options<'a> {
    /// HTTPS only, HTTP/1.1 and HTTP/2, the system roots only, no proxy.
    pub fn new(service: &'static str, connect_timeout: Duration) -> Self {
        Self {
            service,
            ca_file: None,
            connect_timeout,
            http2: true,
            allow_http: false,
            proxy: proxy::ProxyEnv::none(),
        }
    }
}

/// Builds a pooled client that resolves names with `resolver`.
pub fn client<R, B>(resolver: R, options: &Options<'_>) -> Result<Client<R, B>, Error>
where
    R: tower_service::Service<Name> + Clone + Send + Sync + 'static,
    R::Response: Iterator<Item = std::net::SocketAddr>,
    R::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    R::Future: Send,
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let proxies = options.proxy.proxies().map_err(|source| Error::Proxy {
        service: options.service,
        source,
    })?;
    if let Some(proxies) = &proxies {
        proxies.log(options.service);
    }
    let roots = root_store(options.service, options.ca_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| Error::Tls {
            service: options.service,
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();

    let mut tcp = HttpConnector::new_with_resolver(resolver);
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    // The timeout bounds the TCP connection to the proxy too; the tunnel's setup and the
    // TLS handshake fall under the caller's deadline for the whole exchange.
    tcp.set_connect_timeout(Some(options.connect_timeout));
    let tcp = proxy::ProxyConnector::new(tcp, proxies);
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
    let builder = if options.allow_http {
        builder.https_or_http()
    } else {
        builder.https_only()
    };
    let builder = builder.enable_http1();
    let https = if options.http2 {
        builder.enable_http2().wrap_connector(tcp)
    } else {
        builder.wrap_connector(tcp)
    };
    Ok(HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(https))
}

/// `aws-iam-authenticator/<version>`, the `User-Agent` of every outbound call.
pub fn user_agent() -> http::HeaderValue {
    http::HeaderValue::from_str(&format!("aws-iam-authenticator/{}", crate::VERSION))
        .unwrap_or_else(|_| http::HeaderValue::from_static("aws-iam-authenticator"))
}

/// The system's trust roots plus `ca_file`'s certificates (all of which must be usable).
pub fn root_store(
    service: &'static str,
    ca_file: Option<&Path>,
) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!("could not load a system trust root: {e}");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    match ca_file {
        Some(path) => add_ca_file(&mut roots, service, path)?,
        None if added == 0 => tracing::warn!(
            "no system trust roots found: {service} calls over HTTPS will fail (set SSL_CERT_FILE or give a CA file)"
        ),
        None => {}
    }
    Ok(roots)
}

fn add_ca_file(
    roots: &mut rustls::RootCertStore,
    service: &'static str,
    path: &Path,
) -> Result<(), Error> {
    let contents = |detail: Option<String>| Error::CaFileContents {
        service,
        path: path.to_owned(),
        detail,
    };
    let pem = std::fs::read(path).map_err(|source| Error::CaFileRead {
        service,
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| contents(Some(e.to_string())))?;
    if certs.is_empty() {
        return Err(contents(None));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| contents(Some(e.to_string())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Empty;
    use hyper_util::client::legacy::connect::dns::GaiResolver;

    fn build(options: &Options<'_>) -> Result<Client<GaiResolver, Empty<bytes::Bytes>>, Error> {
        client(GaiResolver::new(), options)
    }

    #[test]
    fn ca_file_problems_name_the_service_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let missing = dir.path().join("missing.pem");
        let table = [
            (&missing, "could not read EC2 CA file "),
            (&empty, "contains no usable PEM certificate"),
            (&garbage, "contains no usable PEM certificate: "),
        ];
        for (path, want) in table {
            let mut options = Options::new("EC2", Duration::from_secs(1));
            options.ca_file = Some(path);
            let e = build(&options).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains("EC2"), "{e}");
        }
    }

    #[test]
    fn no_ambient_proxy_unless_the_caller_passes_one() {
        // Clients built in-process (tests among them) must not pick up a proxy the
        // environment happens to name; `server` and `verify` pass theirs explicitly.
        let none = proxy::ProxyEnv::none();
        assert_eq!(Options::new("STS", Duration::from_secs(1)).proxy, none);
        assert_eq!(crate::config::StsOptions::default().proxy, none);
    }

    #[tokio::test]
    async fn plain_http_only_when_allowed() {
        // Nothing listens on the discard port: a scheme refusal comes before connecting,
        // an allowed plain URL fails at connecting.
        let url = || http::Uri::from_static("http://127.0.0.1:9/");
        let strict = build(&Options::new("STS", Duration::from_secs(1))).unwrap();
        let e = crate::error::error_chain(&strict.get(url()).await.unwrap_err());
        assert!(e.contains("unsupported scheme http"), "{e}");
        let mut options = Options::new("EC2", Duration::from_secs(1));
        options.allow_http = true;
        let lenient = build(&options).unwrap();
        let e = crate::error::error_chain(&lenient.get(url()).await.unwrap_err());
        assert!(!e.contains("unsupported scheme"), "{e}");
    }
}
