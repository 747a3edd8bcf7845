//! The `server` subcommand as a process: `init` writes the key pair and the webhook
//! kubeconfig, the binary serves on 127.0.0.1, and the tests talk to it as
//! kube-apiserver does (the CA and URL from the kubeconfig, TokenReviews over TLS), with
//! tokens minted by our own `token` command and verified by the local STS emulator.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on setup failure by design

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use common::process::{free_port, run_to_exit};
use common::sts_emulator::Identity;
use common::webhook::{Answer, V1, Webhook, World, read_kubeconfig, username_is};
use common::{ACCESS_KEY_ID, CLUSTER_ID, REGION, SECRET_ACCESS_KEY, bin};

const ACCOUNT: &str = "123456789012";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/Admin";
const ASSUMED_ARN: &str = "arn:aws:sts::123456789012:assumed-role/Admin/alice";
const ROLE_ID: &str = "AROAEXAMPLEADMIN";
const OTHER_KEY: &str = "AKIAOTHEREXAMPLE0000";
const OTHER_SECRET: &str = "otherSecretKeyEXAMPLEotherSecretKeyEXAMP";
const V1BETA1: &str = "authentication.k8s.io/v1beta1";

/// Mounted-file mappings: the Admin role becomes `admin:<session>`.
const MOUNTED_CONFIG: &str = "clusterID: my-cluster
server:
  mapRoles:
    - roleARN: arn:aws:iam::123456789012:role/Admin
      username: admin:{{SessionName}}
      groups:
        - system:masters
        - devs
";

/// Starts `server` on [`MOUNTED_CONFIG`] with `extra` flags.
async fn start_mounted(world: &World, extra: &[&str]) -> common::process::Running {
    let config = world.write_config(MOUNTED_CONFIG);
    let mut args = vec!["-c", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    world.start(&args).await
}

/// The emulator knows the Admin role's session `alice` (the default keys) and bob.
fn world() -> World {
    let world = World::new();
    world.sts.add_identity(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Identity::new(ASSUMED_ARN, ACCOUNT, format!("{ROLE_ID}:alice")),
    );
    world.sts.add_identity(
        OTHER_KEY,
        OTHER_SECRET,
        Identity::new(
            "arn:aws:iam::123456789012:user/bob",
            ACCOUNT,
            "AIDAEXAMPLEBOB",
        ),
    );
    world
}

/// A client for a server started with `--port=0`: the URL of the kubeconfig it wrote,
/// which names the port it got.
fn webhook(world: &World) -> Webhook {
    Webhook::from_kubeconfig(&world.kubeconfig())
}

async fn plain_get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    common::http::plain_get(addr, path).await.unwrap()
}

fn assert_allowed(a: &Answer, version: &str, username: &str) {
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.content_type, "application/json; charset=UTF-8");
    let v = a.json();
    assert_eq!(v["apiVersion"], version);
    assert_eq!(v["kind"], "TokenReview");
    assert_eq!(v["status"]["authenticated"], true, "{v}");
    let user = &v["status"]["user"];
    assert_eq!(user["username"], username, "{v}");
    assert_eq!(
        user["uid"],
        format!("aws-iam-authenticator:{ACCOUNT}:{ROLE_ID}")
    );
    assert_eq!(user["groups"], json!(["system:masters", "devs"]));
    assert_eq!(user["extra"]["arn"], json!([ASSUMED_ARN]));
    assert_eq!(user["extra"]["canonicalArn"], json!([ROLE_ARN]));
    assert_eq!(user["extra"]["sessionName"], json!(["alice"]));
    assert_eq!(user["extra"]["accessKeyId"], json!([ACCESS_KEY_ID]));
    assert_eq!(
        user["extra"]["sigs.k8s.io/aws-iam-authenticator/principalId"],
        json!([ROLE_ID])
    );
    assert_eq!(user["extra"]["principalId"], json!([ROLE_ID]));
    assert!(a.text().ends_with("}\n"));
}

/// A denial: a definitive one is a 200 without `status.error` (what kube-apiserver reads
/// as a clean "no"); any other status carries the reason in `status.error`.
fn assert_denied(a: &Answer, status: StatusCode, version: &str) {
    assert_eq!(a.status, status, "{}", a.text());
    let v = a.json();
    assert_eq!(v["apiVersion"], version);
    assert_eq!(v["status"]["authenticated"], false, "{v}");
    assert_eq!(v["status"]["user"], json!({}));
    if status == StatusCode::OK {
        assert!(v["status"].get("error").is_none(), "{v}");
    } else {
        assert!(v["status"]["error"].is_string(), "{v}");
    }
}

/// `init`, then `server` on the port `init` wrote into the kubeconfig: the test reads
/// that kubeconfig, trusts its CA and posts to its URL, exactly as kube-apiserver.
#[tokio::test]
async fn init_then_server_allows_mapped_and_denies_unmapped() {
    let world = world();
    let config = world.write_config(MOUNTED_CONFIG);
    let port = free_port();
    world.init(port);
    let kubeconfig_before = std::fs::read(world.kubeconfig()).unwrap();
    let mut server = world
        .start(&["-c", config.to_str().unwrap(), &format!("--port={port}")])
        .await;
    assert_eq!(server.tls_addr().port(), port);
    // The server found the pair and kubeconfig of init: nothing changed.
    assert_eq!(
        std::fs::read(world.kubeconfig()).unwrap(),
        kubeconfig_before
    );

    let hook = Webhook::from_kubeconfig(&world.kubeconfig());
    assert_eq!(
        hook.url.to_string(),
        format!("https://localhost:{port}/authenticate")
    );
    let token = world.token();
    for version in [V1, V1BETA1] {
        assert_allowed(&hook.review(version, &token).await, version, "admin:alice");
    }
    // The second and third reviews of one token cost no STS call.
    assert_eq!(world.sts.request_count(), 1);
    let sts = &world.sts.requests()[0];
    assert_eq!(sts.header("x-k8s-aws-id"), Some(CLUSTER_ID));

    let other = world.token_with(OTHER_KEY, OTHER_SECRET);
    for version in [V1, V1BETA1] {
        assert_denied(&hook.review(version, &other).await, StatusCode::OK, version);
    }
    server.wait_log("access denied").await;
    let granted = server.wait_log("access granted").await;
    assert_eq!(granted["username"], "admin:alice");

    // Metrics with upstream's names, and the process metrics.
    let metrics = hook.send(Method::GET, "/metrics", Vec::new()).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text();
    assert!(
        text.contains(
            "aws_iam_authenticator_authenticate_latency_seconds_count{result=\"success\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "aws_iam_authenticator_authenticate_latency_seconds_count{result=\"uknown_user\"} 2"
        ),
        "{text}"
    );
    assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    assert!(text.contains("\naws_iam_authenticator_ready 1"), "{text}");

    // No token ever reaches the log.
    let log = server.log_text();
    for t in [&token, &other] {
        assert!(!log.contains(t.as_str()));
        let sig = common::token_url(t);
        let sig = sig.split("X-Amz-Signature=").nth(1).unwrap();
        assert!(!log.contains(sig), "signature in the log");
    }
}

/// `curl`, an independent TLS client, trusts the kubeconfig's CA and checks the host
/// name against the certificate, as Go's client in kube-apiserver does.
#[tokio::test]
async fn curl_with_the_kubeconfig_ca() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: curl is not installed");
        return;
    }
    let world = world();
    let config = world.write_config(MOUNTED_CONFIG);
    let port = free_port();
    world.init(port);
    let _server = world
        .start(&["-c", config.to_str().unwrap(), &format!("--port={port}")])
        .await;
    let (url, ca) = read_kubeconfig(&world.kubeconfig());
    let ca_file = world.path("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let body = json!({"apiVersion": V1, "kind": "TokenReview", "spec": {"token": world.token()}});
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&ca_file)
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(body.to_string())
            .arg(&url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"]["user"]["username"], "admin:alice", "{v}");
}

/// Malformed requests: the status codes and texts of upstream's handler, never a 500.
#[tokio::test]
async fn malformed_requests() {
    let world = world();
    let server = start_mounted(&world, &[]).await;
    let hook = webhook(&world);

    let a = hook
        .send(Method::POST, "/authenticate", b"not valid json".to_vec())
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.text(), "expected a request body to be a TokenReview\n");

    let a = hook.send(Method::POST, "/authenticate", Vec::new()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.text(), "expected a request body\n");

    let a = hook.send(Method::GET, "/authenticate", Vec::new()).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.text(), "expected POST\n");

    let a = hook.send(Method::POST, "/nope", b"{}".to_vec()).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.text(), "404 page not found\n");

    let huge = json!({"apiVersion": V1, "spec": {"token": "k8s-aws-v1.".to_owned() + &"A".repeat(100 * 1024)}});
    let a = hook
        .send(
            Method::POST,
            "/authenticate",
            serde_json::to_vec(&huge).unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());

    for version in [V1, V1BETA1] {
        assert_denied(&hook.review(version, "").await, StatusCode::OK, version);
        // Not a token at all: denied before any STS call.
        assert_denied(
            &hook.review(version, "k8s-aws-v1.decodingerror").await,
            StatusCode::OK,
            version,
        );
    }
    assert_eq!(world.sts.request_count(), 0);

    // /healthz on the TLS port, `ok` on every path of the health port.
    let a = hook.send(Method::GET, "/healthz", Vec::new()).await;
    assert_eq!((a.status, a.text().as_str()), (StatusCode::OK, "ok"));
    let health = server.health_addr();
    assert_eq!(
        plain_get(health, "/anything").await,
        (StatusCode::OK, "ok".to_owned())
    );
    assert_eq!(
        plain_get(health, "/readyz").await,
        (StatusCode::OK, "ok".to_owned())
    );
}

/// `--deny-with-forbidden` restores upstream's 403 for every denial.
#[tokio::test]
async fn deny_with_forbidden_flag() {
    let world = world();
    let _server = start_mounted(&world, &["--deny-with-forbidden"]).await;
    let hook = webhook(&world);
    let other = world.token_with(OTHER_KEY, OTHER_SECRET);
    for version in [V1, V1BETA1] {
        assert_denied(
            &hook.review(version, &other).await,
            StatusCode::FORBIDDEN,
            version,
        );
        assert_denied(
            &hook.review(version, "").await,
            StatusCode::FORBIDDEN,
            version,
        );
    }
    assert_allowed(&hook.review(V1, &world.token()).await, V1, "admin:alice");
}

/// STS throttling is a 429, STS down a 500 and STS hanging a 504 within the STS timeout:
/// answers kube-apiserver retries. No bound here depends on how fast the machine is: the
/// hanging STS would answer after 30 s, so a 504 well before that is the timeout's, and the
/// timeout cannot fire before it is due.
#[tokio::test]
async fn sts_throttled_down_and_slow() {
    let world = world();
    let _server = start_mounted(&world, &["--sts-timeout=2s", "--token-cache-ttl=0"]).await;
    let hook = webhook(&world);
    let token = world.token();

    world.sts.set_throttle(true);
    assert_denied(
        &hook.review(V1, &token).await,
        StatusCode::TOO_MANY_REQUESTS,
        V1,
    );
    world.sts.set_throttle(false);
    assert_allowed(&hook.review(V1, &token).await, V1, "admin:alice");

    // A 500, not the timeout's 504: STS being down is answered at once.
    world.sts.set_down(true);
    assert_denied(
        &hook.review(V1, &token).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        V1,
    );
    world.sts.set_down(false);

    world.sts.set_delay(Duration::from_secs(30));
    let started = Instant::now();
    assert_denied(
        &hook.review(V1, &token).await,
        StatusCode::GATEWAY_TIMEOUT,
        V1,
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(25),
        "{took:?}"
    );
    world.sts.set_delay(Duration::ZERO);
}

/// A client that never finishes its headers is disconnected after the header timeout.
#[tokio::test]
async fn slow_client_is_cut_off() {
    let world = world();
    let _server = start_mounted(&world, &["--read-header-timeout=300ms"]).await;
    let mut hook = webhook(&world);
    // HTTP/1.1 only, so the request line is ours to dribble.
    let mut tls = (*aws_iam_authenticator::tls::pinned_client_config(
        &read_kubeconfig(&world.kubeconfig()).1,
    )
    .unwrap())
    .clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    hook.tls = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let (mut stream, h2) = hook.connect().await;
    assert!(!h2);
    stream
        .write_all(b"POST /authenticate HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    stream.flush().await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection still open after 8 s");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
}

fn dynamic_file(username: &str) -> String {
    json!({
        "LastUpdatedDateTime": "1700000000",
        "Version": "1",
        "mapRoles": [{
            "rolearn": ROLE_ARN,
            "username": username,
            "groups": ["system:masters", "devs"]
        }]
    })
    .to_string()
}

/// The DynamicFile backend follows its file while the server runs: in-place edits,
/// atomic replacement, a broken version (the last good mappings stay), deletion and
/// re-creation.
#[tokio::test]
async fn dynamic_file_follows_the_file() {
    let world = world();
    let dynamic = world.path("access-entries.json");
    std::fs::write(&dynamic, dynamic_file("first")).unwrap();
    let config = world.write_config(&format!(
        "clusterID: my-cluster\nserver:\n  backendMode: [DynamicFile]\n  dynamicfilepath: {}\n",
        dynamic.display()
    ));
    let server = world.start(&["-c", config.to_str().unwrap()]).await;
    let hook = webhook(&world);
    let token = world.token();
    hook.review_until(&token, "mapped to first", username_is("first"))
        .await;

    // Edited in place.
    std::fs::write(&dynamic, dynamic_file("second-edit")).unwrap();
    hook.review_until(&token, "mapped to second-edit", username_is("second-edit"))
        .await;

    // Replaced atomically, as editors and kubelet's projected volumes do.
    let tmp = world.path(".access-entries.json.tmp");
    std::fs::write(&tmp, dynamic_file("third-replaced")).unwrap();
    std::fs::rename(&tmp, &dynamic).unwrap();
    hook.review_until(
        &token,
        "mapped to third-replaced",
        username_is("third-replaced"),
    )
    .await;

    // A broken version is refused whole; the last good mappings stay.
    std::fs::write(&dynamic, "{\"mapRoles\": [ {\"rolearn\": ").unwrap();
    let health = server.health_addr();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = {
            let a = hook.send(Method::GET, "/metrics", Vec::new()).await;
            (a.status, a.text())
        };
        if metrics.contains("aws_iam_authenticator_dynamicfile_failures_total 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no reload failure counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_allowed(&hook.review(V1, &token).await, V1, "third-replaced");
    assert_eq!(plain_get(health, "/readyz").await.0, StatusCode::OK);

    // Deleted: nothing is mapped any more.
    std::fs::remove_file(&dynamic).unwrap();
    hook.review_until(&token, "denied", |a| {
        a.status == StatusCode::OK && a.json()["status"]["authenticated"] == false
    })
    .await;

    // Created again.
    std::fs::write(&dynamic, dynamic_file("fourth-recreated")).unwrap();
    hook.review_until(
        &token,
        "mapped to fourth-recreated",
        username_is("fourth-recreated"),
    )
    .await;
    // One STS call for the whole test: mappings are applied fresh to the cached identity.
    assert_eq!(world.sts.request_count(), 1);
}

/// SIGTERM while a review waits for STS: the review completes, then the process exits 0.
#[tokio::test]
async fn sigterm_lets_the_open_request_finish() {
    let world = world();
    let mut server = start_mounted(&world, &[]).await;
    let hook = Arc::new(webhook(&world));
    let token = world.token();
    world.sts.set_delay(Duration::from_millis(800));
    let in_flight = {
        let hook = Arc::clone(&hook);
        tokio::spawn(async move { hook.review(V1, &token).await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while world.sts.request_count() == 0 {
        assert!(Instant::now() < deadline, "the review never reached STS");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal("TERM");
    // Draining: no new connections on either port while the open review finishes.
    server.wait_log("shutting down").await;
    let refused = |addr| async move {
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            assert!(Instant::now() < deadline, "{addr} still accepts");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    refused(server.tls_addr()).await;
    refused(server.health_addr()).await;
    let answer = in_flight.await.unwrap();
    assert_allowed(&answer, V1, "admin:alice");
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    assert!(server.find_log("received signal").is_some());
}

/// A second signal ends the process at once, even with a request open.
#[tokio::test]
async fn second_signal_exits_at_once() {
    let world = world();
    let mut server = start_mounted(&world, &[]).await;
    let hook = Arc::new(webhook(&world));
    let token = world.token();
    // Far longer than the test may take: only the second signal can end the process.
    world.sts.set_delay(Duration::from_secs(30));
    let in_flight = {
        let hook = Arc::clone(&hook);
        let token = token.clone();
        tokio::spawn(async move {
            // The connection dies with the process: an error is the expected outcome.
            let (tls, _) = hook.connect().await;
            let body = json!({"apiVersion": V1, "spec": {"token": token}}).to_string();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = Request::post(hook.url.path())
                .header("host", "localhost")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            send.send_request(req).await.map(|r| r.status())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while world.sts.request_count() == 0 {
        assert!(Instant::now() < deadline, "the review never reached STS");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal("TERM");
    server.wait_log("received signal").await;
    server.signal("INT");
    let started = Instant::now();
    let status = server.wait_exit(Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(status.code(), Some(1));
    assert!(in_flight.await.unwrap().is_err());
}

/// A key pair made the way the upstream Go tool's users make one (RSA, PKCS#1) is
/// loaded as it is and served.
#[tokio::test]
async fn upstream_rsa_pair_is_served() {
    let world = world();
    let state = world.state_dir();
    let key = state.join("key.pem");
    let cert = state.join("cert.pem");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::describe(&out));
    };
    openssl(&[
        "genrsa",
        "-traditional",
        "-out",
        key.to_str().unwrap(),
        "2048",
    ]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-days",
        "2",
        "-subj",
        "/CN=aws-iam-authenticator",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]);
    let key_before = std::fs::read(&key).unwrap();
    let cert_before = std::fs::read(&cert).unwrap();
    assert!(key_before.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));

    let _server = start_mounted(&world, &[]).await;
    assert_eq!(std::fs::read(&key).unwrap(), key_before);
    assert_eq!(std::fs::read(&cert).unwrap(), cert_before);
    let (_, ca) = read_kubeconfig(&world.kubeconfig());
    let pem_der = |pem: &str| {
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    };
    assert_eq!(
        pem_der(&ca),
        pem_der(std::str::from_utf8(&cert_before).unwrap())
    );
    let hook = webhook(&world);
    assert_allowed(&hook.review(V1, &world.token()).await, V1, "admin:alice");
}

/// Every file in `dir`, with its bytes and modification time.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, std::time::SystemTime, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
                meta.modified().unwrap(),
                meta.permissions().mode(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// With `--kubeconfig-pregenerated=true` the server reads what `init` made and writes
/// nothing.
#[tokio::test]
async fn pregenerated_writes_nothing() {
    let world = world();
    let config = world.write_config(MOUNTED_CONFIG);
    let port = free_port();
    world.init(port);
    let before = snapshot(&world.state_dir());
    assert_eq!(before.len(), 3);
    // Let any rewrite show up as a new modification time.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut server = world
        .start(&[
            "-c",
            config.to_str().unwrap(),
            &format!("--port={port}"),
            "--kubeconfig-pregenerated=true",
        ])
        .await;
    let hook = Webhook::from_kubeconfig(&world.kubeconfig());
    assert_allowed(&hook.review(V1, &world.token()).await, V1, "admin:alice");
    server.signal("TERM");
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)).await.code(),
        Some(0)
    );
    assert_eq!(snapshot(&world.state_dir()), before);
}

/// Pregenerated mode without the files, or with a kubeconfig for another key pair,
/// refuses to start, clearly, and still writes nothing.
#[tokio::test]
async fn pregenerated_files_missing_or_mismatched() {
    let world = world();
    let out = run_to_exit(world.server_command(&["--port=0", "--kubeconfig-pregenerated=true"]));
    assert_eq!(out.status.code(), Some(1), "{}", common::describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--kubeconfig-pregenerated is set but cert.pem or key.pem is missing"),
        "{err}"
    );
    assert!(snapshot(&world.state_dir()).is_empty());

    // A kubeconfig that trusts another certificate.
    world.init(free_port());
    let kubeconfig = std::fs::read(world.kubeconfig()).unwrap();
    std::fs::remove_file(world.state_dir().join("key.pem")).unwrap();
    std::fs::remove_file(world.state_dir().join("cert.pem")).unwrap();
    world.init(free_port());
    std::fs::write(world.kubeconfig(), &kubeconfig).unwrap();
    let before = snapshot(&world.state_dir());
    let out = run_to_exit(world.server_command(&["--port=0", "--kubeconfig-pregenerated=true"]));
    assert_eq!(out.status.code(), Some(1), "{}", common::describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not trust the certificate in"), "{err}");
    assert_eq!(snapshot(&world.state_dir()), before);
}

/// Without `init`, the server creates the key pair in the state dir and writes the
/// webhook kubeconfig (atomically, 0644) naming the port it got.
#[tokio::test]
async fn server_creates_pair_and_kubeconfig() {
    use std::os::unix::fs::PermissionsExt as _;
    let world = world();
    let server = start_mounted(&world, &[]).await;
    let files = snapshot(&world.state_dir());
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["cert.pem", "key.pem", "kubeconfig.yaml"]);
    let mode = |name: &str| {
        std::fs::metadata(world.state_dir().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("key.pem"), 0o600);
    assert_eq!(mode("cert.pem"), 0o644);
    assert_eq!(mode("kubeconfig.yaml"), 0o644);
    let (url, _) = read_kubeconfig(&world.kubeconfig());
    assert_eq!(
        url,
        format!(
            "https://localhost:{}/authenticate",
            server.tls_addr().port()
        )
    );
}

/// Config errors: a bad value names the file and the key; an unknown key is a warning
/// naming both; upstream's validation messages.
#[tokio::test]
async fn config_file_errors_and_warnings() {
    let world = world();
    let config = world.write_config("clusterID: my-cluster\nserver:\n  port: lots\n");
    let out = run_to_exit(world.server_command(&["-c", config.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1), "{}", common::describe(&out));
    // JSON logs: the version line and the error are JSON records on stderr.
    let err = common::log_messages(&out.stderr);
    assert!(err.contains(config.to_str().unwrap()), "{err}");
    assert!(err.to_lowercase().contains("server.port"), "{err}");
    assert!(
        err.starts_with("Authenticator Version: \"0.7.18\""),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{}", common::describe(&out));

    let config =
        world.write_config("clusterID: my-cluster\nserver:\n  backendMode: [DynamicFile]\n");
    let out = run_to_exit(world.server_command(&["-c", config.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("dynamicfile is set in backend-mode but dynamicfilepath is not set"),
        "{}",
        common::describe(&out)
    );

    let mut no_id = world.env.command(bin());
    no_id
        .args([
            "server",
            "--port=0",
            "--health-address=127.0.0.1:0",
            "--state-dir",
        ])
        .arg(world.state_dir())
        .arg("--generate-kubeconfig")
        .arg(world.kubeconfig())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_to_exit(no_id);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cluster ID cannot be empty"),
        "{}",
        common::describe(&out)
    );

    let config = world.write_config(&format!("{MOUNTED_CONFIG}  bogusKey: 1\n"));
    let server = world.start(&["-c", config.to_str().unwrap()]).await;
    let warning = server.find_log("configuration file").unwrap();
    let msg = warning["msg"].as_str().unwrap();
    assert!(msg.contains(config.to_str().unwrap()), "{msg}");
    assert!(msg.contains("server.boguskey"), "{msg}");
}

/// The Kubernetes-backed modes without a reachable API server: a startup error when
/// there is no client configuration at all, not-ready when the server is unreachable.
#[tokio::test]
async fn kubernetes_backends_without_an_api_server() {
    let world = world();
    let out = run_to_exit(world.server_command(&["--port=0", "--backend-mode=EKSConfigMap"]));
    assert_eq!(out.status.code(), Some(1), "{}", common::describe(&out));
    let err = common::log_messages(&out.stderr);
    assert!(
        err.contains("backend-mode \"EKSConfigMap\" creation failed"),
        "{err}"
    );

    let closed = format!("--master=https://127.0.0.1:{}", free_port());
    let server = world.start(&["--backend-mode=CRD", &closed]).await;
    let hook = webhook(&world);
    let a = hook.send(Method::GET, "/healthz", Vec::new()).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        plain_get(server.health_addr(), "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Liveness stays `ok`, as upstream's probes expect.
    assert_eq!(
        plain_get(server.health_addr(), "/healthz").await,
        (StatusCode::OK, "ok".to_owned())
    );
}

/// A token minted by `aws eks get-token` (the AWS CLI, offline, with the same fake keys)
/// is accepted exactly as one of ours.
#[tokio::test]
async fn aws_cli_token_is_allowed() {
    let Some(aws) = common::venv_tool("aws") else {
        return;
    };
    let world = world();
    let _server = start_mounted(&world, &[]).await;
    let out = world
        .env
        .command(aws)
        .args([
            "eks",
            "get-token",
            "--cluster-name",
            CLUSTER_ID,
            "--region",
            REGION,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
    let cred: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = cred["status"]["token"].as_str().unwrap();
    let hook = webhook(&world);
    for version in [V1, V1BETA1] {
        assert_allowed(&hook.review(version, token).await, version, "admin:alice");
    }
}

/// Python that decodes TokenReviews with the `kubernetes` client's own models (an
/// independent reading of the API types) and prints what it understood.
const PY_DECODE: &str = r#"
import json, sys
from kubernetes.client import ApiClient

class Response:
    def __init__(self, data):
        self.data = data

client = ApiClient()
out = []
for path in sys.argv[1:]:
    with open(path) as f:
        review = client.deserialize(Response(f.read()), "V1TokenReview")
    user = review.status.user
    out.append({
        "apiVersion": review.api_version,
        "kind": review.kind,
        "authenticated": review.status.authenticated,
        "error": review.status.error,
        "username": user.username if user else None,
        "uid": user.uid if user else None,
        "groups": user.groups if user else None,
        "extra": user.extra if user else None,
    })
print(json.dumps(out))
"#;

/// The TokenReviews we answer (allowed and denied, v1 and v1beta1; the two versions have
/// one schema) decode with the Kubernetes Python client's `V1TokenReview` model and with
/// k8s-openapi's.
#[tokio::test]
async fn answers_decode_with_independent_models() {
    let world = world();
    let _server = start_mounted(&world, &[]).await;
    let hook = webhook(&world);
    let token = world.token();
    let other = world.token_with(OTHER_KEY, OTHER_SECRET);
    let mut answers = Vec::new();
    for version in [V1, V1BETA1] {
        answers.push((version, true, hook.review(version, &token).await.body));
        answers.push((version, false, hook.review(version, &other).await.body));
    }

    // k8s-openapi (v1 only: it has no v1beta1 types; the v1beta1 status has the v1 shape).
    use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus};
    for (version, allowed, body) in &answers {
        let status: TokenReviewStatus = if *version == V1 {
            let review: TokenReview = serde_json::from_slice(body).unwrap();
            review.status.unwrap()
        } else {
            let v: Value = serde_json::from_slice(body).unwrap();
            serde_json::from_value(v["status"].clone()).unwrap()
        };
        assert_eq!(status.authenticated, Some(*allowed));
        if *allowed {
            let user = status.user.unwrap();
            assert_eq!(user.username.as_deref(), Some("admin:alice"));
            assert_eq!(
                user.groups.unwrap(),
                ["system:masters".to_owned(), "devs".to_owned()]
            );
            assert_eq!(user.extra.unwrap()["canonicalArn"], [ROLE_ARN.to_owned()]);
        } else {
            assert!(status.error.is_none());
        }
    }

    let Some(python) = common::venv_tool("python") else {
        return;
    };
    let mut paths = Vec::new();
    for (i, (_, _, body)) in answers.iter().enumerate() {
        let p = world.path(&format!("review-{i}.json"));
        std::fs::write(&p, body).unwrap();
        paths.push(p);
    }
    let out = world
        .env
        .command(python)
        .arg("-c")
        .arg(PY_DECODE)
        .args(&paths)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
    let decoded: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, (version, allowed, _)) in answers.iter().enumerate() {
        let d = &decoded[i];
        assert_eq!(d["apiVersion"], *version);
        assert_eq!(d["kind"], "TokenReview");
        assert_eq!(d["authenticated"], *allowed, "{d}");
        if *allowed {
            assert_eq!(d["username"], "admin:alice");
            assert_eq!(
                d["uid"],
                format!("aws-iam-authenticator:{ACCOUNT}:{ROLE_ID}")
            );
            assert_eq!(d["groups"], json!(["system:masters", "devs"]));
            assert_eq!(d["extra"]["sessionName"], json!(["alice"]));
        } else {
            assert!(d["error"].is_null(), "{d}");
        }
    }
}

/// Startup failures name what failed: a missing state dir (upstream creates no
/// directories), a port in use for either listener.
#[tokio::test]
async fn startup_failures_are_clear() {
    let world = world();
    let config = world.write_config(MOUNTED_CONFIG);
    std::fs::remove_dir(world.state_dir()).unwrap();
    let out = run_to_exit(world.server_command(&["-c", config.to_str().unwrap(), "--port=0"]));
    assert_eq!(out.status.code(), Some(1), "{}", common::describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not load/generate a certificate"),
        "{err}"
    );
    assert!(err.contains(world.state_dir().to_str().unwrap()), "{err}");
    assert!(!world.state_dir().exists());
    std::fs::create_dir(world.state_dir()).unwrap();

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run_to_exit(world.server_command(&[
        "-c",
        config.to_str().unwrap(),
        &format!("--port={port}"),
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", common::describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("could not open TLS listener on 127.0.0.1:{port}")),
        "{err}"
    );

    let out = run_to_exit(world.server_command(&[
        "-c",
        config.to_str().unwrap(),
        "--port=0",
        &format!("--health-address=127.0.0.1:{port}"),
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", common::describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "could not open health listener on 127.0.0.1:{port}"
        )),
        "{err}"
    );
    drop(taken);
}

/// Precedence per setting, as upstream's viper: flag > environment > config file >
/// default. The cluster ID shows which one won: STS refuses a token bound to another.
#[tokio::test]
async fn flag_over_environment_over_config_file() {
    let mut world = world();
    let token = world.token();
    let config = world.write_config(&MOUNTED_CONFIG.replace(
        "clusterID: my-cluster\nserver:\n",
        "clusterID: file-cluster\nserver:\n  hostname: 127.0.0.1\n  port: 1\n",
    ));
    let config = config.to_str().unwrap();

    // The file alone: its cluster ID (wrong for this token), its hostname in the URL, its
    // port overridden by the flag.
    let server = world.start_without_id(&["-c", config]).await;
    let (url, _) = read_kubeconfig(&world.kubeconfig());
    assert_eq!(
        url,
        format!(
            "https://127.0.0.1:{}/authenticate",
            server.tls_addr().port()
        )
    );
    let a = webhook(&world).review(V1, &token).await;
    assert_denied(&a, StatusCode::OK, V1);
    drop(server);

    // The environment beats the file.
    world
        .env
        .set("KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID", CLUSTER_ID);
    let server = world.start_without_id(&["-c", config]).await;
    assert_allowed(&webhook(&world).review(V1, &token).await, V1, "admin:alice");
    drop(server);

    // The flag beats the environment.
    let _server = world
        .start_without_id(&["-c", config, "-i", "flag-cluster"])
        .await;
    let a = webhook(&world).review(V1, &token).await;
    assert_denied(&a, StatusCode::OK, V1);
    let refused: Vec<_> = world
        .sts
        .requests()
        .iter()
        .map(|r| r.header("x-k8s-aws-id").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(refused, ["file-cluster", CLUSTER_ID, "flag-cluster"]);
}

/// A flag given twice takes its last value, as with upstream's pflag (manifest overlays
/// append flags).
#[tokio::test]
async fn repeated_flag_last_wins() {
    let world = world();
    let server = start_mounted(
        &world,
        &[
            "--port=1",
            "--port=0",
            "-i",
            "other-cluster",
            "-i",
            CLUSTER_ID,
        ],
    )
    .await;
    assert_ne!(server.tls_addr().port(), 1);
    assert_allowed(
        &webhook(&world).review(V1, &world.token()).await,
        V1,
        "admin:alice",
    );
}

/// One log line per review, a cached one too, and none claiming an STS call that the
/// cache saved: the line carries the identity STS vouched for.
#[tokio::test]
async fn one_log_line_per_review() {
    let world = world();
    let server = start_mounted(&world, &[]).await;
    let hook = webhook(&world);
    let token = world.token();
    for _ in 0..3 {
        assert_allowed(&hook.review(V1, &token).await, V1, "admin:alice");
    }
    assert_eq!(world.sts.request_count(), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    let granted = loop {
        let granted: Vec<Value> = server
            .log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| {
                v["msg"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("access granted"))
            })
            .collect();
        if granted.len() >= 3 || Instant::now() > deadline {
            break granted;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(granted.len(), 3, "{}", server.log_text());
    assert_eq!(granted[2]["arn"], ASSUMED_ARN);
    assert_eq!(granted[2]["accountid"], ACCOUNT);
    assert_eq!(granted[2]["username"], "admin:alice");
    assert!(
        server.find_log("STS response").is_none(),
        "{}",
        server.log_text()
    );
}

/// `server.scrubbedAccounts`: the identity stays out of the answer and the log.
#[tokio::test]
async fn scrubbed_accounts_stay_out_of_answers_and_logs() {
    let world = world();
    let config = world.write_config(&format!(
        "{MOUNTED_CONFIG}  scrubbedAccounts:\n    - \"{ACCOUNT}\"\n"
    ));
    let mut server = world.start(&["-c", config.to_str().unwrap()]).await;
    let hook = webhook(&world);
    let a = hook.review(V1, &world.token()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let user = &a.json()["status"]["user"];
    assert_eq!(
        user,
        &json!({
            "username": "admin:alice",
            "uid": "aws-iam-authenticator:administrative:admin:alice",
            "groups": ["system:masters", "devs"]
        })
    );
    let denied = hook
        .review(V1, &world.token_with(OTHER_KEY, OTHER_SECRET))
        .await;
    assert_denied(&denied, StatusCode::OK, V1);
    assert!(!denied.text().contains("bob"), "{}", denied.text());
    server.wait_log("access granted").await;
    assert!(server.find_log("STS response").is_none());
    let log = server.log_text();
    assert!(!log.contains(ASSUMED_ARN), "{log}");
    assert!(!log.contains(ROLE_ID), "{log}");
}
