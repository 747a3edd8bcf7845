//! STS calls through an HTTP proxy named by the environment: a CONNECT proxy on loopback
//! records every tunnel it was asked for and forwards the STS name to the local STS
//! emulator, so the token keeps its real `https://sts.us-west-2.amazonaws.com/` URL and
//! the emulator's certificate for that name is checked through the tunnel.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on setup failure by design

mod common;

use std::net::SocketAddr;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use common::sts_emulator::{Identity, StsEmulator, presign_for_tests};
use common::webhook::{Webhook, World};
use common::{
    ACCESS_KEY_ID, CLUSTER_ID, REGION, SECRET_ACCESS_KEY, STS_HOST, TestEnv, describe, url_token,
};

const ARN: &str = "arn:aws:iam::111122223333:user/alice";

/// One `CONNECT` the proxy was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tunnelled {
    authority: String,
    proxy_authorization: Option<String>,
}

/// A CONNECT proxy on `127.0.0.1:0`, on a thread of its own (so tests that run the
/// binary as a child can use it): it tunnels the authorities it has a route for and
/// answers 502 to the others, 407 to requests without the credentials it requires.
struct ConnectProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Tunnelled>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConnectProxy {
    fn start(routes: Vec<(String, SocketAddr)>, required_auth: Option<String>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let state = (Arc::clone(&seen), Arc::new(routes), Arc::new(required_auth));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => {
                            let Ok((conn, _)) = accepted else { return };
                            let (seen, routes, auth) = state.clone();
                            tokio::spawn(async move {
                                let _ = tunnel(conn, &seen, &routes, auth.as_deref()).await;
                            });
                        }
                    }
                }
            });
        });
        Self {
            addr,
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Tunnelled> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one CONNECT request head, records it, and relays bytes both ways.
async fn tunnel(
    mut conn: tokio::net::TcpStream,
    seen: &Mutex<Vec<Tunnelled>>,
    routes: &[(String, SocketAddr)],
    required_auth: Option<&str>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let Some(authority) = request_line
        .strip_prefix("CONNECT ")
        .and_then(|r| r.strip_suffix(" HTTP/1.1"))
    else {
        conn.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            .await?;
        return Ok(());
    };
    let proxy_authorization = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_owned())
    });
    seen.lock().unwrap().push(Tunnelled {
        authority: authority.to_owned(),
        proxy_authorization: proxy_authorization.clone(),
    });
    if required_auth.is_some() && proxy_authorization.as_deref() != required_auth {
        conn.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
            .await?;
        return Ok(());
    }
    let Some((_, to)) = routes.iter().find(|(a, _)| a == authority) else {
        conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await?;
        return Ok(());
    };
    let mut upstream = tokio::net::TcpStream::connect(to).await?;
    conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
    Ok(())
}

fn emulator() -> StsEmulator {
    let emu = StsEmulator::start().unwrap();
    emu.add_identity(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Identity::new(ARN, "111122223333", "AIDAEXAMPLEALICE"),
    );
    emu
}

/// A proxy that tunnels `host:443` to the emulator.
fn proxy_to(emu: &StsEmulator, host: &str, required_auth: Option<&str>) -> ConnectProxy {
    ConnectProxy::start(
        vec![(format!("{host}:443"), emu.addr())],
        required_auth.map(str::to_owned),
    )
}

fn token_for(host: &str, region: &str) -> String {
    url_token(&presign_for_tests(
        host,
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        region,
        CLUSTER_ID,
        SystemTime::now(),
    ))
}

/// `verify -o json` trusting the emulator's CA, with `vars` in the environment.
fn verify(emu: &StsEmulator, vars: &[(&str, &str)], token: &str, extra: &[&str]) -> Output {
    let mut env = TestEnv::new();
    for (k, v) in vars {
        env.set(k, v);
    }
    let ca = emu.ca_file().to_string_lossy().into_owned();
    let mut args = vec![
        "verify",
        "-i",
        CLUSTER_ID,
        "-t",
        token,
        "-o",
        "json",
        "--sts-ca-file",
        &ca,
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

fn assert_verified(out: &Output) {
    assert!(out.status.success(), "{}", describe(out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ARN"], ARN, "{v}");
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn tunnel_to(authority: &str, auth: Option<&str>) -> Tunnelled {
    Tunnelled {
        authority: authority.to_owned(),
        proxy_authorization: auth.map(str::to_owned),
    }
}

#[test]
fn https_proxy_tunnels_to_the_token_host_with_its_name_kept() {
    let emu = emulator();
    let proxy = proxy_to(&emu, STS_HOST, None);
    let out = verify(
        &emu,
        &[("HTTPS_PROXY", &proxy.url())],
        &token_for(STS_HOST, REGION),
        &[],
    );
    assert_verified(&out);
    assert_eq!(proxy.seen(), [tunnel_to(&format!("{STS_HOST}:443"), None)]);
    // Inside the tunnel: TLS to the STS name (the emulator's certificate for it was
    // accepted) and the name as Host.
    let requests = emu.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("host"), Some(STS_HOST));
    assert!(
        stderr(&out).contains(&format!(
            "STS calls go through the HTTP proxy http://{}/",
            proxy.addr
        )),
        "{}",
        describe(&out)
    );
}

#[test]
fn lowercase_variables_and_proxy_credentials() {
    let emu = emulator();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:s3cr3t")
    );
    let proxy = proxy_to(&emu, STS_HOST, Some(&basic));
    let with_auth = format!("http://alice:s3cr3t@{}", proxy.addr);
    for var in ["https_proxy", "all_proxy"] {
        let out = verify(
            &emu,
            &[(var, &with_auth)],
            &token_for(STS_HOST, REGION),
            &[],
        );
        assert_verified(&out);
        assert!(!stderr(&out).contains("s3cr3t"), "{}", describe(&out));
    }
    assert_eq!(
        proxy.seen(),
        vec![tunnel_to(&format!("{STS_HOST}:443"), Some(&basic)); 2]
    );

    // Without the credentials, the proxy's refusal is the error.
    let out = verify(
        &emu,
        &[("https_proxy", &proxy.url())],
        &token_for(STS_HOST, REGION),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let e = stderr(&out);
    assert!(
        e.contains(&format!("through the proxy http://{}/", proxy.addr))
            && e.contains("proxy authorization required"),
        "{e}"
    );
}

#[test]
fn no_proxy_matching_the_host_connects_directly() {
    let emu = emulator();
    let proxy = proxy_to(&emu, STS_HOST, None);
    let resolve = emu.resolve_arg(STS_HOST);
    for (var, no) in [
        ("NO_PROXY", ".amazonaws.com"),
        ("no_proxy", "example.com, us-west-2.amazonaws.com"),
        ("NO_PROXY", "*"),
    ] {
        let out = verify(
            &emu,
            &[("HTTPS_PROXY", &proxy.url()), (var, no)],
            &token_for(STS_HOST, REGION),
            &["--sts-resolve", &resolve],
        );
        assert_verified(&out);
    }
    assert_eq!(proxy.seen(), []);
    assert_eq!(emu.request_count(), 3);
}

#[test]
fn a_host_off_the_allow_list_never_reaches_the_proxy() {
    let emu = emulator();
    let proxy = proxy_to(&emu, "sts.amazonaws.com.evil.example", None);
    let out = verify(
        &emu,
        &[("HTTPS_PROXY", &proxy.url())],
        &token_for("sts.amazonaws.com.evil.example", REGION),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("unexpected hostname \"sts.amazonaws.com.evil.example\""),
        "{}",
        describe(&out)
    );
    assert_eq!(proxy.seen(), []);
    assert_eq!(emu.request_count(), 0);
}

#[test]
fn the_certificate_is_checked_for_the_token_host_through_the_tunnel() {
    // An allowed STS host the emulator's certificate does not name: the proxy tunnels
    // it to the emulator, whose certificate is then refused for that name.
    let host = "sts.mx-central-1.amazonaws.com";
    let emu = emulator();
    let proxy = proxy_to(&emu, host, None);
    let out = verify(
        &emu,
        &[("HTTPS_PROXY", &proxy.url())],
        &token_for(host, "mx-central-1"),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("certificate not valid for name"),
        "{}",
        describe(&out)
    );
    assert_eq!(proxy.seen(), [tunnel_to(&format!("{host}:443"), None)]);
    assert_eq!(emu.request_count(), 0);
}

#[test]
fn an_unusable_proxy_variable_is_refused_up_front() {
    let emu = emulator();
    let out = verify(
        &emu,
        &[("HTTPS_PROXY", "socks5://user:pw@127.0.0.1:1080")],
        &token_for(STS_HOST, REGION),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let e = stderr(&out);
    assert!(
        e.contains(
            "invalid proxy setting for STS calls: HTTPS_PROXY: only http:// proxies are supported, not socks5://"
        ),
        "{e}"
    );
    assert!(!e.contains("pw@"), "{e}");
    assert_eq!(emu.request_count(), 0);
}

#[tokio::test]
async fn the_server_reaches_sts_through_the_proxy() {
    let mut world = World::new();
    world.sts.add_identity(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Identity::new(ARN, "111122223333", "AIDAEXAMPLEALICE"),
    );
    let proxy = proxy_to(&world.sts, STS_HOST, None);
    world.env.set("HTTPS_PROXY", &proxy.url());
    let config = world.write_config(
        "clusterID: my-cluster\nserver:\n  mapUsers:\n    - userARN: arn:aws:iam::111122223333:user/alice\n      username: alice\n",
    );
    let server = world.start(&["-c", config.to_str().unwrap()]).await;
    let logged = server
        .find_log("STS calls go through the HTTP proxy")
        .unwrap_or_else(|| panic!("{}", server.log_text()));
    assert_eq!(logged["proxy"], format!("http://{}/", proxy.addr));
    assert_eq!(logged["variable"], "HTTPS_PROXY");

    let hook = Webhook::from_kubeconfig(&world.kubeconfig());
    let answer = hook
        .review("authentication.k8s.io/v1", &token_for(STS_HOST, REGION))
        .await;
    let v = answer.json();
    assert_eq!(v["status"]["authenticated"], true, "{v}");
    assert_eq!(v["status"]["user"]["username"], "alice", "{v}");
    assert_eq!(proxy.seen(), [tunnel_to(&format!("{STS_HOST}:443"), None)]);
}
