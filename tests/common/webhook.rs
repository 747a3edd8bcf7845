//! A webhook on loopback, as the process tests run it: the STS emulator, `init` into a
//! temporary state dir, `server` as a child process with JSON logs, and a client that
//! reads the webhook kubeconfig and talks TLS to it exactly as kube-apiserver does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::process::Running;
use super::sts_emulator::StsEmulator;
use super::{ACCESS_KEY_ID, CLUSTER_ID, REGION, SECRET_ACCESS_KEY, STS_HOST, TestEnv, bin};

/// A test's world: a clean environment (fake keys, `AWS_REGION`), the STS emulator, and a
/// state directory under the environment's `HOME`.
pub struct World {
    /// The environment every command runs with.
    pub env: TestEnv,
    /// The STS the server reaches through `--sts-resolve`.
    pub sts: StsEmulator,
}

impl World {
    /// A world whose emulator knows no identity yet (`world.sts.add_identity(…)`).
    pub fn new() -> Self {
        super::install_crypto_provider();
        let mut env = TestEnv::new();
        env.set("AWS_REGION", REGION);
        let sts = StsEmulator::start().unwrap();
        let world = Self { env, sts };
        std::fs::create_dir_all(world.state_dir()).unwrap();
        world
    }

    /// `name` under the environment's `HOME`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.env.home().join(name)
    }

    /// The server's `--state-dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// The webhook kubeconfig `init` writes.
    pub fn kubeconfig(&self) -> PathBuf {
        self.state_dir().join("kubeconfig.yaml")
    }

    /// Writes the server's config file.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.path("config.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A token from our `token` command for [`CLUSTER_ID`], signed with `key`/`secret`.
    pub fn token_with(&self, key: &str, secret: &str) -> String {
        let out = self
            .env
            .command(bin())
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .args(["token", "-i", CLUSTER_ID, "--token-only"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", super::describe(&out));
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(
            super::token_url(&token).starts_with(&format!("https://{STS_HOST}/")),
            "{token}"
        );
        token
    }

    /// `init` into the state dir, the webhook URL on `port`.
    pub fn init(&self, port: u16) {
        let state = self.state_dir();
        let out = self.env.run(&[
            "init",
            "-i",
            CLUSTER_ID,
            "--state-dir",
            state.to_str().unwrap(),
            "--port",
            &port.to_string(),
        ]);
        assert!(out.status.success(), "{}", super::describe(&out));
        assert!(self.kubeconfig().exists());
    }

    /// A token signed with the default test keys ([`ACCESS_KEY_ID`]).
    pub fn token(&self) -> String {
        self.token_with(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    }

    /// The `server` command line: JSON logs, `-i my-cluster`, the state dir, the emulator
    /// as STS, the health port on loopback, then `extra`.
    pub fn server_command(&self, extra: &[&str]) -> std::process::Command {
        let mut args = vec!["-i", CLUSTER_ID];
        args.extend_from_slice(extra);
        self.server_command_without_id(&args)
    }

    /// [`World::server_command`] without `-i`.
    pub fn server_command_without_id(&self, extra: &[&str]) -> std::process::Command {
        let mut cmd = self.env.command(bin());
        cmd.args(["server", "-l", "json"]);
        if !extra.iter().any(|a| a.starts_with("--health-address")) {
            cmd.arg("--health-address=127.0.0.1:0");
        }
        cmd.arg("--state-dir")
            .arg(self.state_dir())
            .arg("--generate-kubeconfig")
            .arg(self.kubeconfig())
            .arg("--sts-resolve")
            .arg(self.sts.resolve_arg(STS_HOST))
            .arg("--sts-ca-file")
            .arg(self.sts.ca_file())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts `server` and waits until it listens.
    pub async fn start(&self, extra: &[&str]) -> Running {
        let mut args = vec!["-i", CLUSTER_ID];
        args.extend_from_slice(extra);
        self.start_without_id(&args).await
    }

    /// [`World::start`] without `-i`.
    pub async fn start_without_id(&self, extra: &[&str]) -> Running {
        let mut args = vec!["--port=0"];
        if extra.iter().any(|a| a.starts_with("--port")) {
            args.clear();
        }
        args.extend_from_slice(extra);
        let mut running = Running::spawn(self.server_command_without_id(&args));
        running.listening().await;
        running
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// The webhook kubeconfig as kube-apiserver reads it: server URL and CA (PEM).
pub fn read_kubeconfig(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let v: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(v["current-context"], "webhook");
    let cluster = &v["clusters"][0]["cluster"];
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster["certificate-authority-data"].as_str().unwrap())
        .unwrap();
    (
        cluster["server"].as_str().unwrap().to_owned(),
        String::from_utf8(ca).unwrap(),
    )
}

/// A webhook client as kube-apiserver is one: it trusts the kubeconfig's CA and
/// connects to its server URL.
pub struct Webhook {
    /// The kubeconfig's server URL.
    pub url: http::Uri,
    /// TLS trusting only the kubeconfig's CA.
    pub tls: tokio_rustls::TlsConnector,
    /// Connect here instead of resolving the URL's host (for port-0 servers whose
    /// kubeconfig the test did not ask for).
    pub addr: Option<SocketAddr>,
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Webhook {
    pub fn from_kubeconfig(path: &Path) -> Self {
        let (url, ca) = read_kubeconfig(path);
        let config = aws_iam_authenticator::tls::pinned_client_config(&ca).unwrap();
        Self {
            url: url.parse().unwrap(),
            tls: tokio_rustls::TlsConnector::from(config),
            addr: None,
        }
    }

    pub async fn connect(&self) -> (tokio_rustls::client::TlsStream<tokio::net::TcpStream>, bool) {
        let host = self.url.host().unwrap().to_owned();
        let port = self.url.port_u16().unwrap();
        let addrs: Vec<SocketAddr> = match self.addr {
            Some(a) => vec![a],
            None => tokio::net::lookup_host((host.as_str(), port))
                .await
                .unwrap()
                .collect(),
        };
        let mut last = None;
        for a in addrs {
            match tokio::net::TcpStream::connect(a).await {
                Ok(tcp) => {
                    let name = rustls_pki_types::ServerName::try_from(host.clone()).unwrap();
                    let tls = self.tls.connect(name, tcp).await.unwrap();
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    return (tls, h2);
                }
                Err(e) => last = Some(e),
            }
        }
        panic!("could not connect to {}: {last:?}", self.url);
    }

    pub async fn send(&self, method: Method, path: &str, body: Vec<u8>) -> Answer {
        let (tls, h2) = self.connect().await;
        let req = Request::builder()
            .method(method)
            .uri(format!(
                "https://{}{path}",
                self.url.authority().unwrap().as_str()
            ))
            .header("content-type", "application/json")
            .header("accept", "application/json, */*")
            .header("user-agent", "kube-apiserver-admission")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = super::http::send_once(tls, req, h2).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            content_type,
            body,
        }
    }

    /// A TokenReview, as kube-apiserver sends it.
    pub async fn review(&self, version: &str, token: &str) -> Answer {
        let body = json!({
            "apiVersion": version,
            "kind": "TokenReview",
            "metadata": {"creationTimestamp": null},
            "spec": {"token": token},
            "status": {"user": {}}
        });
        self.send(
            Method::POST,
            self.url.path(),
            serde_json::to_vec(&body).unwrap(),
        )
        .await
    }

    /// Reviews `token` (v1) until the answer satisfies `ok`. Bounded: what it waits
    /// for (a reload) takes well under a second; the bound only keeps a broken build
    /// from hanging.
    pub async fn review_until(&self, token: &str, what: &str, ok: impl Fn(&Answer) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let a = self.review(V1, token).await;
            if ok(&a) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never {what}; last answer {} {}",
                a.status,
                a.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The TokenReview API version kube-apiserver sends by default.
pub const V1: &str = "authentication.k8s.io/v1";

/// An answer that allows, as user `name`.
pub fn username_is(name: &'static str) -> impl Fn(&Answer) -> bool {
    move |a| a.status == StatusCode::OK && a.json()["status"]["user"]["username"] == name
}
