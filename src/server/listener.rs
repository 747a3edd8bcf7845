//! The accept loop shared by the TLS webhook port and the plain-HTTP health port.
//!
//! Each connection gets its own task: TLS handshake under a timeout, then hyper-util's
//! `auto` builder (HTTP/1.1 and HTTP/2) with a header-read timeout, watched by a
//! [`GracefulShutdown`] so a shutdown lets in-flight requests finish. A semaphore bounds
//! the number of open connections; at the bound, new connections wait in the kernel's
//! accept queue.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Default limit on the TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit on reading a request's headers.
///
/// upstream: pkg/server/server.go sets `ReadHeaderTimeout: 60s`; we use 10 s, which is
/// ample for the apiserver on a local connection and frees slow-loris connections sooner.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle HTTP/2 connection is pinged.
const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection is closed.
const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most concurrent HTTP/2 streams per connection (hyper's default: 200). kube-apiserver
/// needs a few; each open stream may hold a request body being read.
pub const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 16;
/// HTTP/2 flow-control window per stream: how much unread body a peer may send a stream
/// (hyper's default: 1 MiB).
pub const HTTP2_STREAM_WINDOW: u32 = 16 * 1024;
/// HTTP/2 flow-control window per connection: how much unread body a peer may send across
/// all its streams (the protocol's initial 64 KiB; hyper's default: 1 MiB).
pub const HTTP2_CONNECTION_WINDOW: u32 = 64 * 1024;
/// The largest HTTP/2 header list accepted, and the HTTP/1.1 read buffer: a TokenReview's
/// headers are a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Default limit on open connections per listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// What a listener serves: a request and the peer address in, a response out.
pub type Handler = Arc<
    dyn Fn(
            Request<Incoming>,
            SocketAddr,
        ) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// Limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerConfig {
    /// A TLS handshake that takes longer is abandoned.
    pub handshake_timeout: Duration,
    /// A request whose headers take longer to arrive closes its connection.
    pub header_read_timeout: Duration,
    /// At most this many connections are served at once.
    pub max_connections: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Makes sure a TLS config offers HTTP/2 and HTTP/1.1 by ALPN, as upstream's Go server does.
pub fn with_alpn(config: Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    if !config.alpn_protocols.is_empty() {
        return config;
    }
    let mut c = (*config).clone();
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(c)
}

/// Serves connections from `listener` with `handler` until `shutdown` is cancelled, then
/// stops accepting and waits for the open connections to finish their requests. The
/// caller bounds that wait (the grace period) by dropping or timing out this future.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Handler,
    config: ListenerConfig,
    shutdown: CancellationToken,
) {
    let acceptor = tls.map(|c| TlsAcceptor::from(with_alpn(c)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(MAX_HEADER_BYTES)
        .header_read_timeout(config.header_read_timeout);
    // HTTP/2 has no per-request header timeout; pings find peers that vanished without
    // closing, so their connections do not hold a slot for ever.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(HTTP2_KEEP_ALIVE_INTERVAL))
        .keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT)
        // Bounds what one connection can make us buffer: at most the connection window of
        // unread body, plus what the handlers have collected of at most this many streams.
        .max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS)
        .initial_stream_window_size(HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_send_buf_size(MAX_HEADER_BYTES);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let local = listener.local_addr().ok();

    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: back off a little instead of spinning.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Before spawning, so a shutdown that starts now still reaches this connection.
        let watcher = graceful.watcher();
        let builder = Arc::clone(&builder);
        let handler = Arc::clone(&handler);
        let acceptor = acceptor.clone();
        let timeout = config.handshake_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let service = service_fn(move |req| {
                let handler = Arc::clone(&handler);
                async move { Ok::<_, std::convert::Infallible>(guarded(handler, req, peer).await) }
            });
            match acceptor {
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(client = %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(client = %peer, error = %e, "connection ended with an error");
                    }
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(tcp), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(client = %peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::debug!(address = ?local, connections = graceful.count(), "draining connections");
    graceful.shutdown().await;
}

/// Runs the handler in its own task, so a panic (a bug) costs one request a 500 and
/// neither the connection's other requests nor the process.
async fn guarded(
    handler: Handler,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    match tokio::spawn(handler(req, peer)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(client = %peer, error = %e, "request handler failed");
            let mut r = Response::new(Full::new(Bytes::from_static(b"internal error\n")));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

/// Binds a TCP listener on `addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
