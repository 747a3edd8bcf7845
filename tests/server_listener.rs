//! The listeners over real sockets on 127.0.0.1: TLS with HTTP/1.1 and HTTP/2, readiness,
//! metrics, the health port, the header-read timeout, panics, and the graceful drain.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on setup failure by design

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_iam_authenticator::identity::Identity;
use aws_iam_authenticator::metrics;
use aws_iam_authenticator::server::{
    App, Authenticate, ListenerConfig, MappedUser, Server, WebhookMetrics, process,
};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use common::fakes::{FakeMapper, FakeVerifier};

fn alice() -> Identity {
    Identity {
        arn: "arn:aws:iam::123456789012:user/alice".into(),
        canonical_arn: "arn:aws:iam::123456789012:user/alice".into(),
        account_id: "123456789012".into(),
        user_id: "AIDAEXAMPLE".into(),
        ..Identity::default()
    }
}

struct Fixture {
    addr: SocketAddr,
    health: SocketAddr,
    ca: CertificateDer<'static>,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
    run: tokio::task::JoinHandle<bool>,
}

async fn start(delay: Duration, limits: ListenerConfig, grace: Duration) -> Fixture {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    // The key pair goes through files, as the server's own does.
    std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
    let ca = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![ca.clone()], key)
        .unwrap();
    let ready = Arc::new(AtomicBool::new(true));
    // `/metrics` serves the handler's metrics and the process ones, as the server's.
    let mut registry = metrics::registry();
    process::register(&mut registry);
    let counted = WebhookMetrics::register(metrics::prefixed(&mut registry));
    let handler = Authenticate::new(
        Arc::new(FakeVerifier {
            answer: Ok(alice()),
            delay,
        }),
        Arc::new(FakeMapper::everyone_as(
            MappedUser {
                username: "alice".into(),
                groups: vec!["devs".into()],
            },
            ready.clone(),
        )),
        Vec::new(),
    );
    let app = App::new(handler.with_metrics(counted)).with_registry(Arc::new(registry));
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        Some("127.0.0.1:0".parse().unwrap()),
        Arc::new(tls),
        app,
        limits,
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let health = server.health_addr().unwrap();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(server.run(shutdown.clone(), grace));
    Fixture {
        addr,
        health,
        ca,
        ready,
        shutdown,
        run,
    }
}

async fn tls_connect(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

fn request(method: Method, path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "localhost")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

/// One HTTP/1.1 request over a fresh TLS connection.
async fn h1(f: &Fixture, method: Method, path: &str, body: &str) -> (StatusCode, String) {
    let tls = tls_connect(f.addr, &f.ca, &[b"http/1.1"]).await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let r = send
        .send_request(request(method, path, body))
        .await
        .unwrap();
    let status = r.status();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Sends `bytes` over a new HTTP/1.1 connection and reads until the server closes it, for
/// `wait` at most (else the test fails, naming `what`): what came back, and how long the
/// close took after the send.
async fn sent_then_closed(
    f: &Fixture,
    bytes: &[u8],
    wait: Duration,
    what: &str,
) -> (String, Duration) {
    let mut tls = tls_connect(f.addr, &f.ca, &[b"http/1.1"]).await;
    tls.write_all(bytes).await.unwrap();
    tls.flush().await.unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(wait, tls.read_to_end(&mut buf)).await;
    let elapsed = start.elapsed();
    assert!(read.is_ok(), "{what} still open after {wait:?}");
    (String::from_utf8_lossy(&buf).into_owned(), elapsed)
}

/// One plain HTTP/1.1 request to the health port.
async fn plain(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    common::http::plain_get(addr, path).await.unwrap()
}

fn review(token: &str) -> String {
    serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token}
    })
    .to_string()
}

#[tokio::test]
async fn readiness_metrics_and_routes() {
    let f = start(
        Duration::ZERO,
        ListenerConfig::default(),
        Duration::from_secs(5),
    )
    .await;

    f.ready.store(false, Ordering::SeqCst);
    assert_eq!(
        h1(&f, Method::GET, "/healthz", "").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        plain(f.health, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The health port's other paths are liveness: always ok, as upstream.
    assert_eq!(
        plain(f.health, "/anything").await,
        (StatusCode::OK, "ok".to_owned())
    );
    f.ready.store(true, Ordering::SeqCst);
    assert_eq!(
        h1(&f, Method::GET, "/healthz", "").await,
        (StatusCode::OK, "ok".to_owned())
    );
    assert_eq!(
        plain(f.health, "/readyz").await,
        (StatusCode::OK, "ok".to_owned())
    );

    let (status, body) = h1(&f, Method::POST, "/authenticate", &review("tok")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"]["user"]["username"], "alice");

    let (status, body) = h1(&f, Method::GET, "/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    let count = "aws_iam_authenticator_authenticate_latency_seconds_count";
    let success = metrics::sample(&body, count, r#"result="success""#);
    assert_eq!(success, Some(1.0), "{body}");
    assert!(body.contains("\nprocess_resident_memory_bytes "), "{body}");

    assert_eq!(
        h1(&f, Method::GET, "/nope", "").await,
        (StatusCode::NOT_FOUND, "404 page not found\n".to_owned())
    );
    f.shutdown.cancel();
    assert!(f.run.await.unwrap());
}

#[tokio::test]
async fn http2_by_alpn() {
    let f = start(
        Duration::ZERO,
        ListenerConfig::default(),
        Duration::from_secs(5),
    )
    .await;
    let tls = tls_connect(f.addr, &f.ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = request(
        Method::POST,
        "https://localhost/authenticate",
        &review("tok"),
    );
    req.headers_mut().remove(http::header::HOST);
    let r = send.send_request(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), http::Version::HTTP_2);
}

#[tokio::test]
async fn a_panicking_handler_costs_one_request() {
    let f = start(
        Duration::ZERO,
        ListenerConfig::default(),
        Duration::from_secs(5),
    )
    .await;
    let (status, _) = h1(&f, Method::POST, "/authenticate", &review("panic")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, _) = h1(&f, Method::POST, "/authenticate", &review("tok")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let limits = ListenerConfig {
        header_read_timeout: Duration::from_millis(700),
        ..ListenerConfig::default()
    };
    let f = start(Duration::ZERO, limits, Duration::from_secs(5)).await;
    // The server closes the connection (perhaps after a 408); the read must end.
    let (text, elapsed) = sent_then_closed(
        &f,
        b"POST /authenticate HTTP/1.1\r\nHost: localhost\r\n",
        Duration::from_secs(5),
        "connection",
    )
    .await;
    assert!(
        elapsed >= Duration::from_millis(500),
        "closed too early: {elapsed:?}"
    );
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[tokio::test]
async fn stalled_handshakes_are_dropped() {
    let limits = ListenerConfig {
        handshake_timeout: Duration::from_millis(500),
        ..ListenerConfig::default()
    };
    let f = start(Duration::ZERO, limits, Duration::from_secs(5)).await;
    let mut tcp = TcpStream::connect(f.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
}

#[tokio::test]
async fn shutdown_lets_the_open_request_finish() {
    let f = start(
        Duration::from_millis(600),
        ListenerConfig::default(),
        Duration::from_secs(10),
    )
    .await;
    let tls = tls_connect(f.addr, &f.ca, &[b"http/1.1"]).await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let in_flight = tokio::spawn(async move {
        let r = send
            .send_request(request(Method::POST, "/authenticate", &review("tok")))
            .await
            .unwrap();
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let t = Instant::now();
    f.shutdown.cancel();
    // New connections are refused once the listener is closed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(f.addr).await.is_err());
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert!(f.run.await.unwrap(), "not drained");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn grace_period_bounds_the_drain() {
    let f = start(
        Duration::from_secs(30),
        ListenerConfig::default(),
        Duration::from_millis(300),
    )
    .await;
    let tls = tls_connect(f.addr, &f.ca, &[b"http/1.1"]).await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    tokio::spawn(async move {
        let _ = send
            .send_request(request(Method::POST, "/authenticate", &review("tok")))
            .await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    f.shutdown.cancel();
    assert!(
        !f.run.await.unwrap(),
        "reported drained with a request open"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connection_limit_queues_the_next_connection() {
    let limits = ListenerConfig {
        max_connections: 1,
        ..ListenerConfig::default()
    };
    let f = start(Duration::ZERO, limits, Duration::from_secs(5)).await;
    let first = tls_connect(f.addr, &f.ca, &[b"http/1.1"]).await;
    // The second connection waits in the accept queue: its handshake cannot finish while
    // the first holds the only slot.
    let second = tokio::spawn({
        let ca = f.ca.clone();
        let addr = f.addr;
        async move { tls_connect(addr, &ca, &[b"http/1.1"]).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "second connection served beyond the limit"
    );
    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("second connection never served after the first closed")
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(second))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(request(Method::GET, "/healthz", ""))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let limits = ListenerConfig {
        header_read_timeout: Duration::from_millis(500),
        ..ListenerConfig::default()
    };
    let f = start(Duration::ZERO, limits, Duration::from_secs(5)).await;
    // One answer, then the connection idles: waiting for the next request's headers is
    // bounded too, so idle connections cannot hold the connection slots for ever.
    let (text, elapsed) = sent_then_closed(
        &f,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Duration::from_secs(5),
        "idle connection",
    )
    .await;
    assert!(elapsed >= Duration::from_millis(400));
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("\r\n\r\nok"), "{text}");
}

/// An HTTP/2 peer gets at most `HTTP2_MAX_CONCURRENT_STREAMS` streams at once (hyper's
/// default is 200): with that many requests holding unfinished bodies, the next request on
/// the same connection waits, while another client is served.
#[tokio::test]
async fn http2_streams_per_connection_are_bounded() {
    use aws_iam_authenticator::server::listener::HTTP2_MAX_CONCURRENT_STREAMS;
    use http_body_util::channel::Channel;
    let f = start(
        Duration::ZERO,
        ListenerConfig::default(),
        Duration::from_secs(5),
    )
    .await;
    let tls = tls_connect(f.addr, &f.ca, &[b"h2"]).await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let uri = |path: &str| format!("https://localhost:{}{path}", f.addr.port());
    // A first answer: the server's SETTINGS (its stream limit) have arrived.
    let r = send
        .send_request(
            Request::get(uri("/healthz"))
                .body(Channel::<Bytes, std::convert::Infallible>::new(1).1)
                .unwrap(),
        )
        .await;
    drop(r);
    let mut held = Vec::new();
    for _ in 0..HTTP2_MAX_CONCURRENT_STREAMS {
        let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(1);
        tx.send_data(Bytes::from_static(b"{")).await.unwrap();
        let req = Request::post(uri("/authenticate")).body(body).unwrap();
        held.push((tx, send.send_request(req)));
    }
    // One stream more, complete this time: it cannot start while the others are open.
    let (tx, body) = Channel::<Bytes, std::convert::Infallible>::new(1);
    drop(tx);
    let extra = tokio::spawn(send.send_request(Request::get(uri("/healthz")).body(body).unwrap()));
    // Another client is served meanwhile.
    let (status, _) = h1(&f, Method::GET, "/healthz", "").await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!extra.is_finished(), "a stream beyond the limit was served");
    // Ending the held bodies frees the streams: the waiting request is answered.
    held.clear();
    let r = tokio::time::timeout(Duration::from_secs(5), extra)
        .await
        .expect("the waiting stream was never served")
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// A TCP connection to `addr` from the loopback address `from`.
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(addr).await
}

/// A TLS connection from `from` that may be refused or cut.
async fn try_tls_from(
    from: [u8; 4],
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = connect_from(from, addr).await.ok()?;
    let connect = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp);
    tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .ok()?
        .ok()
}

/// One HTTP/1.1 GET over `io`, answered within 10 s or `None`.
async fn request_over<T>(io: T, path: &str) -> Option<StatusCode>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let exchange = async move {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .ok()?;
        tokio::spawn(conn);
        let r = send
            .send_request(request(Method::GET, path, ""))
            .await
            .ok()?;
        Some(r.status())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

/// Whether the server closes `io` (EOF or reset) within 10 s without being sent anything.
async fn closed_by_server<T: tokio::io::AsyncRead + Unpin>(mut io: T) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), io.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Hundreds of sockets from one address that connect (and on the TLS port, handshake) and
/// then send nothing take neither port from other clients: past the per-address cap the
/// server closes them, so another address, a kubelet probing `/healthz` say, is served.
#[tokio::test]
async fn one_peer_cannot_take_every_slot() {
    let limits = ListenerConfig {
        // Long enough that only the per-address cap can free the slots during the test.
        header_read_timeout: Duration::from_secs(120),
        max_connections: 64,
        ..ListenerConfig::default()
    };
    assert_eq!(limits.per_peer_limit(), 16);
    let f = start(Duration::ZERO, limits, Duration::from_secs(5)).await;

    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let ca = f.ca.clone();
        let (addr, health) = (f.addr, f.health);
        attempts.spawn(async move {
            let tls = try_tls_from([127, 0, 0, 1], addr, &ca).await;
            let plain = connect_from([127, 0, 0, 1], health).await.ok();
            (tls, plain)
        });
    }
    let mut held = Vec::new();
    while let Some(r) = attempts.join_next().await {
        held.push(r.unwrap());
    }
    let handshaken = held.iter().filter(|(t, _)| t.is_some()).count();
    assert!(handshaken >= 1, "no idle TLS socket got through");

    // Another client, on both ports, while the sockets above are open.
    let tls = try_tls_from([127, 0, 0, 2], f.addr, &f.ca)
        .await
        .expect("TLS port refused another client");
    assert_eq!(request_over(tls, "/healthz").await, Some(StatusCode::OK));
    let tcp = connect_from([127, 0, 0, 2], f.health).await.unwrap();
    assert_eq!(request_over(tcp, "/healthz").await, Some(StatusCode::OK));
    drop(held);
    f.shutdown.cancel();
    assert!(f.run.await.unwrap());
}

/// Sockets that connect (and on the TLS port, handshake) and then send nothing are closed
/// after the header timeout, on both ports, after which their address is served again.
#[tokio::test]
async fn sockets_that_never_send_a_request_are_closed() {
    let limits = ListenerConfig {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 64,
        ..ListenerConfig::default()
    };
    let f = start(Duration::ZERO, limits, Duration::from_secs(5)).await;
    let mut idle_tls = Vec::new();
    let mut idle_plain = Vec::new();
    for _ in 0..limits.per_peer_limit() {
        idle_tls.push(
            try_tls_from([127, 0, 0, 1], f.addr, &f.ca)
                .await
                .expect("handshake"),
        );
        idle_plain.push(connect_from([127, 0, 0, 1], f.health).await.unwrap());
    }
    for s in idle_tls {
        assert!(closed_by_server(s).await, "idle TLS socket kept open");
    }
    for s in idle_plain {
        assert!(closed_by_server(s).await, "idle health socket kept open");
    }
    let tcp = connect_from([127, 0, 0, 1], f.health).await.unwrap();
    assert_eq!(request_over(tcp, "/healthz").await, Some(StatusCode::OK));
    let tls = try_tls_from([127, 0, 0, 1], f.addr, &f.ca).await.unwrap();
    assert_eq!(request_over(tls, "/healthz").await, Some(StatusCode::OK));
}

/// An HTTP/2 connection that never opens a stream is closed after the header timeout.
#[tokio::test]
async fn silent_http2_connection_is_closed() {
    let limits = ListenerConfig {
        header_read_timeout: Duration::from_millis(500),
        ..ListenerConfig::default()
    };
    let f = start(Duration::ZERO, limits, Duration::from_secs(5)).await;
    let tls = tls_connect(f.addr, &f.ca, &[b"h2"]).await;
    assert!(
        closed_by_server(tls).await,
        "silent HTTP/2 connection kept open"
    );
}

/// A body that trickles in is cut off by the request timeout with a 408.
#[tokio::test]
async fn slow_body_gets_408() {
    let limits = ListenerConfig {
        request_timeout: Duration::from_millis(500),
        ..ListenerConfig::default()
    };
    let f = start(Duration::ZERO, limits, Duration::from_secs(5)).await;
    let (text, _) = sent_then_closed(
        &f,
        b"POST /authenticate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"apiVersion\"",
        Duration::from_secs(10),
        "request with a stalled body",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

/// An HTTP/2 connection is not cut while a request longer than the idle timeout is in
/// flight, and is closed once it has had no request for the idle timeout.
#[tokio::test]
async fn idle_http2_connection_is_closed_after_its_requests() {
    let limits = ListenerConfig {
        idle_timeout: Duration::from_millis(300),
        // Far beyond the wait below: only the idle timeout can close this connection.
        header_read_timeout: Duration::from_secs(120),
        ..ListenerConfig::default()
    };
    let f = start(Duration::from_secs(1), limits, Duration::from_secs(5)).await;
    let tls = tls_connect(f.addr, &f.ca, &[b"h2"]).await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let r = send
        .send_request(request(Method::POST, "/authenticate", &review("tok")))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("alice"));
    let closed = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(closed.is_ok(), "idle HTTP/2 connection kept open");
}

/// Reads HTTP/2 frames from `io` until the server closes it (at most 10 s), returning
/// their types.
async fn frame_types<T: tokio::io::AsyncRead + Unpin>(mut io: T) -> Vec<u8> {
    let mut types = Vec::new();
    let read = async {
        loop {
            let mut head = [0u8; 9];
            if io.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            types.push(head[3]);
            let mut payload = vec![0u8; len];
            if io.read_exact(&mut payload).await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    types
}

/// An HTTP/2 connection closed for idleness is told so with GOAWAY (frame type 7) before
/// the socket closes, so the client does not take it for a network failure.
#[tokio::test]
async fn idle_http2_connection_gets_goaway() {
    const GOAWAY: u8 = 0x7;
    let limits = ListenerConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ListenerConfig::default()
    };
    let f = start(Duration::ZERO, limits, Duration::from_secs(5)).await;
    let mut tls = tls_connect(f.addr, &f.ca, &[b"h2"]).await;
    // The client preface and an empty SETTINGS frame, then nothing: PINGs go unanswered.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let types = frame_types(tls).await;
    assert!(
        types.contains(&GOAWAY),
        "no GOAWAY before the close: {types:?}"
    );
}

/// Idle sockets from many addresses, each within its share, fill the health listener; a
/// probe from this node (here: from 127.0.0.1 to 127.0.0.1, as the kubelet probes the
/// node's address from the node) still gets a reserved slot and is answered, while
/// another remote address is closed at once instead of queued.
#[tokio::test]
async fn health_port_keeps_slots_for_the_node() {
    use aws_iam_authenticator::server::listener::{
        HEALTH_MAX_CONNECTIONS, HEALTH_RESERVED_FOR_NODE,
    };
    let limits = ListenerConfig {
        // Long enough that only the limits decide during the test.
        header_read_timeout: Duration::from_secs(120),
        ..ListenerConfig::default()
    };
    let f = start(Duration::ZERO, limits, Duration::from_secs(5)).await;
    let per_address = limits.for_health().per_peer_limit();
    let addresses = HEALTH_MAX_CONNECTIONS.div_ceil(per_address) + 2;
    let mut held = Vec::new();
    for a in 0..addresses {
        let from = [127, 0, 1, u8::try_from(a + 1).unwrap()];
        for _ in 0..per_address {
            if let Ok(s) = connect_from(from, f.health).await {
                held.push(s);
            }
        }
    }
    // The listener is full: a new remote address is closed, not served.
    let late = connect_from([127, 0, 2, 1], f.health).await.unwrap();
    assert!(
        closed_by_server(late).await,
        "a client beyond the limit was kept"
    );
    // The node's probes are answered, up to the reserved slots at once.
    let mut probes = Vec::new();
    for _ in 0..HEALTH_RESERVED_FOR_NODE {
        probes.push(connect_from([127, 0, 0, 1], f.health).await.unwrap());
    }
    for p in probes {
        assert_eq!(request_over(p, "/healthz").await, Some(StatusCode::OK));
    }
    drop(held);
    f.shutdown.cancel();
    assert!(f.run.await.unwrap());
}
