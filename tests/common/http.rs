//! Fake HTTP servers on loopback: one accept loop for every emulator, plain or TLS.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};

use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What a handler learns about the connection a request came on.
#[derive(Clone, Debug, Default)]
pub struct Conn {
    /// The TLS client's SNI (None for plain HTTP or a client that sent none).
    pub sni: Option<String>,
}

/// Serves HTTP/1.1 or HTTP/2 (by ALPN or preface) on every connection `listener` accepts (through `tls` when given),
/// answering each request with `handle`, until the listener fails or the task is
/// aborted. A connection that fails its handshake is dropped.
pub fn serve<H, F, B>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handle: H,
) -> JoinHandle<()>
where
    H: Fn(Conn, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let handle = handle.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => serve_connection(tcp, Conn::default(), handle).await,
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let sni = stream.get_ref().1.server_name().map(str::to_owned);
                        serve_connection(stream, Conn { sni }, handle).await;
                    }
                }
            });
        }
    })
}

async fn serve_connection<S, H, F, B>(stream: S, conn: Conn, handle: H)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Conn, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let svc = service_fn(move |req| {
        let answer = handle(conn.clone(), req);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

/// Sends `req` as the one request of a new client connection over `io` (HTTP/2 when
/// `h2`, else HTTP/1.1); the connection is driven by a spawned task.
pub async fn send_once<I, B>(io: I, req: Request<B>, h2: bool) -> hyper::Result<Response<Incoming>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(io);
    if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        send.send_request(req).await
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        send.send_request(req).await
    }
}

/// One plain HTTP/1.1 GET (as a kubelet probe sends it): the status and body, or None
/// when the connection or the exchange fails.
pub async fn plain_get(addr: SocketAddr, path: &str) -> Option<(StatusCode, String)> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send_once(tcp, req, false).await.ok()?;
    let status = resp.status();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}
