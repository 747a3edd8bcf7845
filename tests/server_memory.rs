//! The server process's memory under hostile HTTP/2 connections: many connections from
//! several loopback addresses, each with 16 streams holding unfinished request bodies near
//! the 64 KiB limit, leave its peak RSS under a bound, while a legitimate client's review
//! and `/healthz` are answered.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on setup failure by design

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::webhook::{Webhook, World};
use http::{Request, StatusCode};
use http_body_util::channel::{Channel, Sender};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

/// Attacking addresses (127.0.1.1 and up), connections from each, streams on each. Each
/// address may hold a quarter of the body budget: three leave a quarter for the others.
/// (Four or more addresses can spend it all; then other clients get 503 with
/// `Retry-After`, which kube-apiserver retries.)
const ADDRESSES: u8 = 3;
const CONNECTIONS: usize = 48;
const STREAMS: usize = 16;
/// What each stream sends of its body, without ending it: just under the 64 KiB limit.
const CHUNK: usize = 4 * 1024;
const CHUNKS: usize = 15;
/// The bound asserted on the server's peak RSS. Without the body budget, the attack alone
/// makes it hold 3 × 48 × 16 × 60 KiB = 135 MiB of bodies.
const BOUND_MIB: u64 = 96;

/// A `/proc/PID/status` field in KiB.
fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn connect_from(from: [u8; 4], addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(addr).await
}

/// One hostile connection: every stream sends most of a body and keeps it open. Returns
/// the body senders (dropping them ends the bodies); `None` if the server refused it.
async fn hostile(hook: &Webhook, from: [u8; 4], addr: SocketAddr) -> Option<Vec<Sender<Bytes>>> {
    let tcp = connect_from(from, addr).await.ok()?;
    let name = ServerName::try_from(hook.url.host().unwrap().to_owned()).unwrap();
    let tls = hook.tls.connect(name, tcp).await.ok()?;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .ok()?;
    tokio::spawn(conn);
    let uri = format!("https://{}/authenticate", hook.url.authority().unwrap());
    let mut senders = Vec::new();
    for _ in 0..STREAMS {
        let (tx, body) = Channel::<Bytes, Infallible>::new(2);
        let req = Request::post(&uri)
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        // Answers (503 once the budget is spent) are read and dropped.
        tokio::spawn(send.send_request(req));
        senders.push(tx);
    }
    let chunk = Bytes::from(vec![b' '; CHUNK]);
    for tx in &mut senders {
        for _ in 0..CHUNKS {
            // A stream the server refused drops its body: stop sending there.
            match tokio::time::timeout(Duration::from_secs(5), tx.send_data(chunk.clone())).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
    }
    Some(senders)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http2_connections_stay_under_the_memory_bound() {
    let world = World::new();
    let server = world.start(&[]).await;
    let pid = server.pid();
    let addr = server.tls_addr();
    let mut hook = Webhook::from_kubeconfig(&world.kubeconfig());
    hook.addr = Some(addr);
    // Warm up: one answered review.
    let r = hook.review("authentication.k8s.io/v1", "not-a-token").await;
    assert_eq!(r.status, StatusCode::OK);
    let base = vm_kib(pid, "VmRSS:");

    let hook = std::sync::Arc::new(hook);
    let mut attacks = tokio::task::JoinSet::new();
    for a in 1..=ADDRESSES {
        for _ in 0..CONNECTIONS {
            let hook = std::sync::Arc::clone(&hook);
            attacks.spawn(async move {
                let attack = hostile(&hook, [127, 0, 1, a], addr);
                tokio::time::timeout(Duration::from_secs(120), attack)
                    .await
                    .ok()
                    .flatten()
            });
        }
    }
    let mut held = Vec::new();
    while let Some(r) = attacks.join_next().await {
        held.extend(r.unwrap());
    }
    assert!(!held.is_empty(), "no hostile connection got through");

    // A legitimate client, from another address, is answered meanwhile.
    let tcp = connect_from([127, 0, 2, 1], addr).await.unwrap();
    let name = ServerName::try_from(hook.url.host().unwrap().to_owned()).unwrap();
    let tls = hook.tls.connect(name, tcp).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": "not-a-token"}
    });
    let req = Request::post(format!(
        "https://{}/authenticate",
        hook.url.authority().unwrap()
    ))
    .header("content-type", "application/json")
    .body(Full::new(Bytes::from(review.to_string())))
    .unwrap();
    let r = send.send_request(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("\"authenticated\":false"));
    let health = common::http::plain_get(server.health_addr(), "/healthz").await;
    assert_eq!(health.map(|(status, _)| status), Some(StatusCode::OK));

    let peak = vm_kib(pid, "VmHWM:");
    eprintln!(
        "server RSS: {} KiB before, peak {} KiB with {} hostile connections ({} held)",
        base,
        peak,
        usize::from(ADDRESSES) * CONNECTIONS,
        held.len()
    );
    assert!(
        peak < BOUND_MIB * 1024,
        "peak RSS {peak} KiB over the {BOUND_MIB} MiB bound"
    );
    drop(held);
}
