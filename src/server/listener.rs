//! The accept loop shared by the TLS webhook port and the plain-HTTP health port.
//!
//! Each connection gets its own task: TLS handshake under a timeout, then hyper-util's
//! `auto` builder (HTTP/1.1 and HTTP/2) with a header-read timeout, watched by a
//! [`GracefulShutdown`] so a shutdown lets in-flight requests finish. A semaphore bounds
//! the number of open connections; at the bound, new connections wait in the kernel's
//! accept queue. So that idle or slow clients cannot hold every slot:
//! * a connection with no request in flight is closed once idle: after the header timeout
//!   if it never started a request, after the idle timeout between keep-alive requests;
//! * a request (body read and answer included) has a deadline, after which it gets a 408;
//! * one peer IP address may hold at most a share of the slots; past it, its new
//!   connections are closed at once, so other clients and the kubelet's probes get served.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
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
/// Default time a connection may stay open with no request in flight, between keep-alive
/// requests. kube-apiserver keeps its webhook connections for reuse; 90 s matches Go's
/// `http.DefaultTransport` idle timeout, so an idle pooled connection is seldom closed
/// under the client just before it would reuse it. A connection that never sent a first
/// request gets only the header timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default limit on one request, from its headers to its answer, body read included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// A connection with no request in flight for this long since its last answer is
    /// closed (before its first request, `header_read_timeout` applies instead).
    pub idle_timeout: Duration,
    /// A request not answered within this time, body read included, gets a 408.
    pub request_timeout: Duration,
    /// At most this many open connections per peer IP address; 0 means a quarter of
    /// `max_connections`.
    pub max_connections_per_peer: usize,
}

impl ListenerConfig {
    /// The per-peer cap in force: the configured one, or a quarter of the total, at least 1.
    pub fn per_peer_limit(&self) -> usize {
        let limit = if self.max_connections_per_peer == 0 {
            self.max_connections / 4
        } else {
            self.max_connections_per_peer
        };
        limit.max(1)
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections_per_peer: 0,
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
    let peers = Arc::new(PeerCounts::default());
    let per_peer = config.per_peer_limit();

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
        let Some(peer_slot) = PeerCounts::enter(&peers, peer.ip(), per_peer) else {
            tracing::debug!(client = %peer, limit = per_peer, "too many connections from this address; closing");
            drop(tcp);
            continue;
        };
        // Before spawning, so a shutdown that starts now still reaches this connection.
        let watcher = graceful.watcher();
        let builder = Arc::clone(&builder);
        let handler = Arc::clone(&handler);
        let acceptor = acceptor.clone();
        let timeout = config.handshake_timeout;
        let request_timeout = config.request_timeout;
        let first_deadline = config.header_read_timeout;
        let idle_timeout = config.idle_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _peer_slot = peer_slot;
            let _ = tcp.set_nodelay(true);
            let activity = Arc::new(Activity::new());
            let service = {
                let activity = Arc::clone(&activity);
                service_fn(move |req| {
                    let handler = Arc::clone(&handler);
                    let busy = Activity::begin(&activity);
                    async move {
                        let r = guarded(handler, req, peer, request_timeout).await;
                        drop(busy);
                        Ok::<_, std::convert::Infallible>(r)
                    }
                })
            };
            let idle = activity.idle(first_deadline, idle_timeout);
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
                    // Dropping the connection on the idle deadline closes its socket.
                    tokio::select! {
                        r = watcher.watch(conn.into_owned()) => if let Err(e) = r {
                            tracing::debug!(client = %peer, error = %e, "connection ended with an error");
                        },
                        () = idle => tracing::debug!(client = %peer, "closing an idle connection"),
                    }
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(tcp), service);
                    tokio::select! {
                        r = watcher.watch(conn.into_owned()) => if let Err(e) = r {
                            tracing::debug!(client = %peer, error = %e, "connection ended with an error");
                        },
                        () = idle => tracing::debug!(client = %peer, "closing an idle connection"),
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::debug!(address = ?local, connections = graceful.count(), "draining connections");
    graceful.shutdown().await;
}

/// Open connections per peer IP address.
#[derive(Default)]
struct PeerCounts(Mutex<HashMap<IpAddr, usize>>);

/// One open connection counted against its peer; uncounted on drop.
struct PeerSlot {
    counts: Arc<PeerCounts>,
    ip: IpAddr,
}

impl PeerCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // The map stays consistent whatever panicked while holding it: each update is one
        // insert or remove.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a connection from `ip`, unless it already has `limit` open.
    fn enter(counts: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<PeerSlot> {
        let mut map = counts.lock();
        let n = map.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            counts: Arc::clone(counts),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What a connection is doing: requests in flight and when the last one was answered.
struct Activity {
    opened: tokio::time::Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to the last answer, plus one; 0 before any.
    last_done: AtomicU64,
    /// Wakes the idle watch when a request begins or ends, so its deadline is recomputed.
    changed: tokio::sync::Notify,
}

/// One request in flight; on drop, it is answered.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.0.last_done.store(ms + 1, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_one();
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: tokio::time::Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_done: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn begin(this: &Arc<Self>) -> Busy {
        this.in_flight.fetch_add(1, Ordering::SeqCst);
        this.changed.notify_one();
        Busy(Arc::clone(this))
    }

    /// Completes once the connection has had no request in flight for its deadline:
    /// `first` from its opening if it never had a request, `idle` from its last answer.
    async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            let now = tokio::time::Instant::now();
            let deadline = if self.in_flight.load(Ordering::SeqCst) > 0 {
                // A request bounds itself (the request timeout); look again after it.
                now + idle
            } else {
                match self.last_done.load(Ordering::SeqCst) {
                    0 => self.opened + first,
                    ms => self.opened + Duration::from_millis(ms - 1) + idle,
                }
            };
            if deadline <= now {
                return;
            }
            // notify_one keeps a wake-up that comes before this wait, so none is lost.
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = self.changed.notified() => {}
            }
        }
    }
}

/// Runs the handler so that a panic (a bug) costs one request a 500 and neither the
/// connection's other requests nor the process; a request that outlives `limit` (a body
/// that trickles in, say) is abandoned with a 408.
///
/// The handler runs in the connection's own task (hyper gives each HTTP/2 stream its
/// own): catching the unwind there costs nothing per request, where a task per request
/// cost an allocation and, often, a hop to another worker thread.
async fn guarded(
    handler: Handler,
    req: Request<Incoming>,
    peer: SocketAddr,
    limit: Duration,
) -> Response<Full<Bytes>> {
    // The handler shares no state with this function that a panic could leave broken.
    let run = std::panic::AssertUnwindSafe(handler(req, peer)).catch_unwind();
    let caught = match tokio::time::timeout(limit, run).await {
        Ok(c) => c,
        Err(_) => {
            tracing::debug!(client = %peer, "request timed out");
            let mut r = Response::new(Full::new(Bytes::from_static(b"request timed out\n")));
            *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
            return r;
        }
    };
    match caught {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic");
            tracing::error!(client = %peer, error = what, "request handler failed");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_peer_limit_defaults_to_a_quarter_at_least_one() {
        for (max, per_peer, want) in [
            (1024, 0, 256),
            (64, 0, 16),
            (3, 0, 1),
            (1, 0, 1),
            (64, 5, 5),
            (64, 100, 100),
        ] {
            let c = ListenerConfig {
                max_connections: max,
                max_connections_per_peer: per_peer,
                ..ListenerConfig::default()
            };
            assert_eq!(c.per_peer_limit(), want, "{max} {per_peer}");
        }
    }

    #[test]
    fn peer_slots_are_counted_per_address_and_given_back() {
        let counts = Arc::new(PeerCounts::default());
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let first = PeerCounts::enter(&counts, a, 2);
        let second = PeerCounts::enter(&counts, a, 2);
        assert!(first.is_some() && second.is_some());
        assert!(PeerCounts::enter(&counts, a, 2).is_none());
        assert!(PeerCounts::enter(&counts, b, 2).is_some());
        drop(first);
        let third = PeerCounts::enter(&counts, a, 2);
        assert!(third.is_some());
        drop((second, third));
        assert!(counts.lock().is_empty());
    }
}
