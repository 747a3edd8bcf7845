//! One connection: TLS handshake, HTTP/1.1 or HTTP/2, its idle deadline, its requests'
//! deadline, and how it is closed (gracefully: HTTP/2 peers get a GOAWAY).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{Handler, ListenerConfig};

/// How long a connection closed for idleness may take to say goodbye: an HTTP/2 peer is
/// sent GOAWAY and a PING, and the connection ends when the PING is answered. No request is
/// in flight, so this only bounds a peer that never answers.
pub const GOAWAY_GRACE: Duration = Duration::from_secs(5);

/// What every connection of one listener shares.
pub(super) struct Shared {
    pub builder: auto::Builder<TokioExecutor>,
    pub handler: Handler,
    pub acceptor: Option<TlsAcceptor>,
    pub config: ListenerConfig,
    pub shutdown: CancellationToken,
}

/// Serves one accepted connection to its end.
pub(super) async fn serve(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let Some(acceptor) = shared.acceptor.clone() else {
        return drive(&shared, TokioIo::new(tcp), peer).await;
    };
    let handshake = tokio::time::timeout(shared.config.handshake_timeout, acceptor.accept(tcp));
    let tls = tokio::select! {
        () = shared.shutdown.cancelled() => return,
        r = handshake => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(client = %peer, "TLS handshake timed out");
                return;
            }
        },
    };
    drive(&shared, TokioIo::new(tls), peer).await;
}

/// Why a connection is being closed by us.
enum Close {
    Shutdown,
    Idle,
}

/// Runs HTTP over `io` until the peer closes, the connection has been idle for its
/// deadline, or the server shuts down. Either of the last two closes it gracefully: an
/// HTTP/1.1 connection is closed between requests, an HTTP/2 peer is sent GOAWAY so it
/// knows not to start new streams here (a connection merely dropped looks like a network
/// failure to it).
async fn drive<I>(shared: &Shared, io: I, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let config = shared.config;
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = Arc::clone(&activity);
        let handler = Arc::clone(&shared.handler);
        service_fn(move |req| {
            let handler = Arc::clone(&handler);
            let busy = Activity::begin(&activity);
            async move {
                let r = guarded(handler, req, peer, config.request_timeout).await;
                drop(busy);
                Ok::<_, std::convert::Infallible>(r)
            }
        })
    };
    let conn = shared.builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let idle = activity.idle(config.header_read_timeout, config.idle_timeout);
    let why = tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(client = %peer, error = %e, "connection ended with an error");
            }
            return;
        }
        () = shared.shutdown.cancelled() => Close::Shutdown,
        () = idle => Close::Idle,
    };
    conn.as_mut().graceful_shutdown();
    let ended = match why {
        // The open requests finish; the caller bounds the drain (the grace period).
        Close::Shutdown => Ok(conn.await),
        Close::Idle => {
            tracing::debug!(client = %peer, "closing an idle connection");
            tokio::time::timeout(GOAWAY_GRACE, conn).await
        }
    };
    match ended {
        Ok(Err(e)) => {
            tracing::debug!(client = %peer, error = %e, "connection ended with an error");
        }
        Err(_) => {
            tracing::debug!(client = %peer, "peer did not acknowledge the close; dropping it")
        }
        Ok(Ok(())) => {}
    }
}

/// What a connection is doing: requests in flight and when the last one was answered.
struct Activity {
    opened: tokio::time::Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to the last answer, plus one; 0 before any.
    last_done: AtomicU64,
}

/// One request in flight; on drop, it is answered.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.0.last_done.store(ms + 1, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: tokio::time::Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_done: AtomicU64::new(0),
        }
    }

    fn begin(this: &Arc<Self>) -> Busy {
        this.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(Arc::clone(this))
    }

    /// Completes once the connection has had no request in flight for its deadline:
    /// `first` from its opening if it never had a request, `idle` from its last answer.
    ///
    /// Requests do not wake this watch (that cost a wake-up of the connection's task and
    /// a new timer per request): it looks at the connection when its timer fires, and
    /// never sleeps past `idle` from now, the earliest any later answer could make the
    /// deadline; so it closes the connection exactly when an eager watch would.
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
            tokio::time::sleep_until(deadline.min(now + idle)).await;
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
