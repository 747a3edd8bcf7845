//! The TokenReview webhook: TLS listener (`/authenticate`, `/healthz`, `/metrics`) and the
//! plain-HTTP health listener.
//!
//! * [`review`]: the TokenReview types (`authentication.k8s.io/v1` and `v1beta1`).
//! * [`authenticate`]: `POST /authenticate` (read → verdict → response), with the verifier
//!   and mapper behind traits.
//! * [`outcome`]: what became of a request: its metric label and its answer, following
//!   kube-apiserver's webhook contract.
//! * [`budget`]: the process-wide budget of request-body bytes held in memory.
//! * [`cache`]: the verified-identity cache in front of STS.
//! * [`adapt`]: the STS verifier and the mapper chain behind the handler's traits.
//! * [`listener`]: accept loop, TLS handshake, HTTP/1.1 + HTTP/2, graceful drain.
//! * [`metrics`]: the handler's and the cache's metric handles.
//! * [`health`], [`process`]: health answers, `/metrics` and the process collector.

pub mod adapt;
pub mod authenticate;
pub mod budget;
pub mod cache;
pub mod health;
pub mod listener;
pub mod metrics;
pub mod outcome;
pub mod process;
pub mod review;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Body;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use authenticate::{Authenticate, IdentityMapper, MappedUser, TokenVerifier, Verified};
pub use budget::BodyBudget;
pub use cache::{CacheConfig, IdentityCache};
pub use listener::ListenerConfig;
pub use metrics::{AuthResult, CacheMetrics, WebhookMetrics};
pub use outcome::DenyStatus;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listening socket could not be opened (`TLS` or `health`).
    #[error("could not open {listener} listener on {address}")]
    Bind {
        /// Which listener.
        listener: &'static str,
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The routes of both ports.
#[derive(Debug, Clone)]
pub struct App {
    authenticate: Authenticate,
    registry: Arc<Registry>,
}

impl App {
    /// Routes to `authenticate`; `/metrics` serves an empty registry until
    /// [`App::with_registry`].
    pub fn new(authenticate: Authenticate) -> Self {
        Self {
            authenticate,
            registry: Arc::default(),
        }
    }

    /// Serves `registry` on `/metrics` (the one the components registered on).
    #[must_use]
    pub fn with_registry(mut self, registry: Arc<Registry>) -> Self {
        self.registry = registry;
        self
    }

    /// Whether the mappers are ready.
    pub fn is_ready(&self) -> bool {
        self.authenticate.is_ready()
    }

    /// The TLS port: exact paths, as Go's `ServeMux`.
    pub async fn route<B>(&self, req: Request<B>, client: SocketAddr) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match req.uri().path() {
            "/authenticate" => self.authenticate.handle(req, client).await,
            "/healthz" => health::readiness(self.is_ready()),
            "/metrics" => {
                self.authenticate.metrics().set_ready(self.is_ready());
                health::metrics(&self.registry)
            }
            _ => health::not_found(),
        }
    }

    /// The plain-HTTP health port: every path answers `ok`, as upstream, so existing
    /// liveness probes behave; `/readyz` (ours) answers 503 until the mappers are ready.
    pub fn health_route<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        match req.uri().path() {
            "/readyz" => health::readiness(self.is_ready()),
            _ => health::ok(),
        }
    }
}

/// The bound listeners, ready to serve.
#[derive(Debug)]
pub struct Server {
    tls: TcpListener,
    tls_addr: SocketAddr,
    health: Option<(TcpListener, SocketAddr)>,
    tls_config: Arc<rustls::ServerConfig>,
    app: Arc<App>,
    limits: ListenerConfig,
}

async fn bind(
    listener: &'static str,
    address: SocketAddr,
) -> Result<(TcpListener, SocketAddr), Error> {
    let err = |source| Error::Bind {
        listener,
        address,
        source,
    };
    let l = TcpListener::bind(address).await.map_err(err)?;
    let local = l.local_addr().map_err(err)?;
    Ok((l, local))
}

impl Server {
    /// Opens the TLS listener on `address` and, if given, the health listener on
    /// `health_address`. Either may use port 0.
    ///
    /// upstream: pkg/server/server.go only logs a health-port bind failure and serves on;
    /// we fail at startup, because a liveness probe against a port we never opened would
    /// restart the pod forever with no clear cause.
    pub async fn bind(
        address: SocketAddr,
        health_address: Option<SocketAddr>,
        tls_config: Arc<rustls::ServerConfig>,
        app: App,
        limits: ListenerConfig,
    ) -> Result<Self, Error> {
        let (tls, tls_addr) = bind("TLS", address).await?;
        let health = match health_address {
            Some(a) => Some(bind("health", a).await?),
            None => None,
        };
        Ok(Self {
            tls,
            tls_addr,
            health,
            tls_config,
            app: Arc::new(app),
            limits,
        })
    }

    /// The TLS listener's address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.tls_addr
    }

    /// The health listener's address.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.as_ref().map(|(_, a)| *a)
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and gives open requests
    /// up to `grace` to finish. Returns whether every connection closed within the grace.
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) -> bool {
        let Self {
            tls,
            tls_addr: _,
            health,
            tls_config,
            app,
            limits,
        } = self;
        let tls_handler: listener::Handler = {
            let app = Arc::clone(&app);
            Arc::new(move |req, client| {
                let app = Arc::clone(&app);
                Box::pin(async move { app.route(req, client).await })
            })
        };
        let mut tasks = vec![tokio::spawn(listener::serve(
            tls,
            Some(tls_config),
            tls_handler,
            limits,
            shutdown.clone(),
        ))];
        if let Some((l, _)) = health {
            let app = Arc::clone(&app);
            let handler: listener::Handler = Arc::new(move |req, _client| {
                let r = app.health_route(&req);
                Box::pin(async move { r })
            });
            tasks.push(tokio::spawn(listener::serve(
                l,
                None,
                handler,
                limits.for_health(),
                shutdown.clone(),
            )));
        }
        shutdown.cancelled().await;
        tracing::info!(grace_period = ?grace, "shutting down: no new connections, finishing open requests");
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        let drained = tokio::time::timeout(grace, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await
        .is_ok();
        if !drained {
            for a in aborts {
                a.abort();
            }
            tracing::warn!(grace_period = ?grace, "grace period over with requests still open");
        }
        drained
    }
}
