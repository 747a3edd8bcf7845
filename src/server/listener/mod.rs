//! The accept loop shared by the TLS webhook port and the plain-HTTP health port.
//!
//! Each connection gets its own task ([`conn`]): TLS handshake under a timeout, then
//! hyper-util's `auto` builder (HTTP/1.1 and HTTP/2) with a header-read timeout. A
//! semaphore bounds the number of open connections; at the bound, new connections wait in
//! the kernel's accept queue (or, with slots reserved for this node, are closed unless they
//! come from it). So that idle or slow clients cannot hold every slot:
//! * a connection with no request in flight is closed once idle: after the header timeout
//!   if it never started a request, after the idle timeout between keep-alive requests
//!   (gracefully: an HTTP/2 peer is sent GOAWAY);
//! * a request (body read and answer included) has a deadline, after which it gets a 408;
//! * one peer IP address may hold at most a share of the slots; past it, its new
//!   connections are closed at once, so other clients and the kubelet's probes get served.
//!
//! On shutdown, accepting stops and every connection is closed gracefully once its open
//! requests are answered; [`serve`] returns when the last one has closed.

mod conn;
mod peers;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use conn::GOAWAY_GRACE;
// The configurable limits' defaults live with the settings they default.
pub use crate::config::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT,
};
use peers::PeerCounts;

/// Default limit on the TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
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
/// Most connections of the health listener: the kubelet's probes need a few.
///
/// upstream: pkg/server/server.go serves the health port on all addresses with no
/// connection limit; we keep the address (the kubelet probes the node's address on a
/// hostNetwork pod) and bound the connections, keeping some for this node, so that remote
/// clients cannot fail the liveness probe.
pub const HEALTH_MAX_CONNECTIONS: usize = 64;
/// Health-listener connections beyond [`HEALTH_MAX_CONNECTIONS`] kept for clients on this
/// node, so that remote clients holding every slot (from many addresses, each within its
/// share) cannot fail the kubelet's liveness probe and have the webhook restarted.
pub const HEALTH_RESERVED_FOR_NODE: usize = 8;

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
    /// Connections allowed beyond `max_connections` for clients on this node (see
    /// [`is_from_node`]), so the kubelet's probes are answered while remote clients hold
    /// every other slot. With any, a connection beyond the limit is accepted and closed at
    /// once instead of waiting to be accepted.
    pub reserved_for_node: usize,
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

    /// The health listener's limits: the same deadlines, [`HEALTH_MAX_CONNECTIONS`] (a
    /// quarter per address) and [`HEALTH_RESERVED_FOR_NODE`] more for this node.
    pub fn for_health(self) -> Self {
        Self {
            max_connections: HEALTH_MAX_CONNECTIONS.min(self.max_connections),
            max_connections_per_peer: 0,
            reserved_for_node: HEALTH_RESERVED_FOR_NODE,
            ..self
        }
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
            reserved_for_node: 0,
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
    let shared = Arc::new(conn::Shared {
        builder: builder(&config),
        handler,
        acceptor: tls.map(|c| TlsAcceptor::from(with_alpn(c))),
        config,
        shutdown: shutdown.clone(),
    });
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let reserved = Arc::new(Semaphore::new(config.reserved_for_node));
    let local = listener.local_addr().ok();
    let peers = Arc::new(PeerCounts::default());
    let per_peer = config.per_peer_limit();
    // Every connection task holds a sender: once all are dropped, the drain is over.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);

    loop {
        // Without reserved slots, a free slot is waited for before accepting, so further
        // clients wait in the kernel's accept queue. With them, every connection is
        // accepted to see where it comes from; one beyond the limit is closed at once
        // unless it is from this node and a reserved slot is free.
        let early = if config.reserved_for_node == 0 {
            match free_slot(&slots, &shutdown).await {
                Some(p) => Some(p),
                None => break,
            }
        } else {
            None
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
        let Some(slot) = early.or_else(|| slot_now(&slots, &reserved, &tcp, peer)) else {
            tracing::debug!(client = %peer, "listener full; closing");
            continue;
        };
        let Some(peer_slot) = PeerCounts::enter(&peers, peer.ip(), per_peer) else {
            tracing::debug!(client = %peer, limit = per_peer, "too many connections from this address; closing");
            continue;
        };
        let shared = Arc::clone(&shared);
        let open = open.clone();
        tokio::spawn(async move {
            let _held = (slot, peer_slot, open);
            conn::serve(shared, tcp, peer).await;
        });
    }
    drop(listener);
    drop(open);
    tracing::debug!(address = ?local, "draining connections");
    // Resolves (with None) once every connection task has dropped its sender.
    let _ = all_closed.recv().await;
}

/// Waits for a free connection slot; `None` once shutting down.
async fn free_slot(
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    tokio::select! {
        biased;
        () = shutdown.cancelled() => None,
        p = Arc::clone(slots).acquire_owned() => p.ok(),
    }
}

/// A slot for an accepted connection, without waiting: a free one, else a slot kept for
/// clients on this node if it comes from one; `None` if the listener is full for it.
fn slot_now(
    slots: &Arc<Semaphore>,
    reserved: &Arc<Semaphore>,
    tcp: &TcpStream,
    peer: SocketAddr,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(p) = Arc::clone(slots).try_acquire_owned() {
        return Some(p);
    }
    let local = tcp.local_addr().ok();
    let from_node = local.is_some_and(|l| is_from_node(l.ip(), peer.ip()));
    if !from_node {
        return None;
    }
    Arc::clone(reserved).try_acquire_owned().ok()
}

/// Whether a client is on this node: it connected from the address it connected to (the
/// kubelet probing the node's address on a hostNetwork pod, or a local client of
/// 127.0.0.1). A remote client cannot complete a TCP handshake from our own address.
fn is_from_node(local: IpAddr, peer: IpAddr) -> bool {
    local.to_canonical() == peer.to_canonical()
}

/// The HTTP/1.1 and HTTP/2 settings of a listener.
fn builder(config: &ListenerConfig) -> auto::Builder<TokioExecutor> {
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
    builder
}

/// Binds a TCP listener on `addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests;
