//! The physical limit the webhook is measured against (`make bench`): a bare hyper +
//! rustls server that answers every request with one fixed TokenReview acceptance.
//!
//! Same TLS as the server (its key pair from the state dir, `tls::server_config`: the
//! ring provider, TLS 1.3/1.2, ALPN h2 and http/1.1) and the same HTTP/2 stream and
//! window limits, on a multi-threaded tokio runtime; it reads each request's body and
//! does nothing else: no parsing, no verification, no mapping, no logs, no metrics, no timeouts.
//!
//! ```text
//! cargo run --release --example echo -- STATE_DIR 127.0.0.1:PORT
//! ```
//!
//! Prints `listening on ADDR` on stdout, then serves until killed.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use aws_iam_authenticator::server::listener::{
    HTTP2_CONNECTION_WINDOW, HTTP2_MAX_CONCURRENT_STREAMS, HTTP2_STREAM_WINDOW, MAX_HEADER_BYTES,
};
use aws_iam_authenticator::tls;
use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// What the server answers for a mapped identity, byte for byte in size and shape.
const ANSWER: &str = concat!(
    r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","metadata":{},"spec":{},"#,
    r#""status":{"authenticated":true,"user":{"username":"alice","#,
    r#""uid":"aws-iam-authenticator:111122223333:AIDAEXAMPLEALICE","groups":["system:masters"],"#,
    r#""extra":{"accessKeyId":["AKIAIOSFODNN7EXAMPLE"],"arn":["arn:aws:iam::111122223333:user/alice"],"#,
    r#""canonicalArn":["arn:aws:iam::111122223333:user/alice"],"principalId":["AIDAEXAMPLEALICE"],"#,
    r#""sessionName":[""],"sigs.k8s.io/aws-iam-authenticator/principalId":["AIDAEXAMPLEALICE"]}}}}"#,
    "\n"
);

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = std::env::args().skip(1);
    let (Some(state_dir), Some(addr)) = (args.next(), args.next()) else {
        eprintln!("usage: echo STATE_DIR ADDRESS:PORT");
        return ExitCode::from(2);
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("echo: bad address {addr:?}");
        return ExitCode::from(2);
    };
    let config = match tls::load(std::path::Path::new(&state_dir)) {
        Ok(Some(pair)) => tls::server_config(&pair),
        Ok(None) => {
            eprintln!("echo: no key pair in {state_dir}: run `init` first");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(addr, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr, config: Arc<rustls::ServerConfig>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS)
        .initial_stream_window_size(HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_send_buf_size(MAX_HEADER_BYTES);
    let builder = Arc::new(builder);
    let body = Bytes::from_static(ANSWER.as_bytes());
    loop {
        let (tcp, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        let builder = Arc::clone(&builder);
        let body = body.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move {
                    // Read the request as any webhook must, then answer.
                    let _ = req.into_body().collect().await;
                    let mut r = Response::new(Full::new(body));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json; charset=UTF-8"),
                    );
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}
