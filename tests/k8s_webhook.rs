//! End to end through the real binary: `server --backend-mode=EKSConfigMap,CRD` reads its
//! mappings from a fake Kubernetes API server (`--kubeconfig`), verifies tokens minted by
//! our `token` command against the local STS emulator, and answers TokenReviews over TLS
//! as kube-apiserver sends them. An identity mapped only through aws-auth is allowed, one
//! mapped only through an IAMIdentityMapping is allowed, one mapped through neither is
//! denied.

#![allow(clippy::unwrap_used)] // test code: a panic is how a helper reports a failure

mod common;
#[path = "common/fake_k8s.rs"]
mod fake_k8s;

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

use common::sts_emulator::{Identity, StsEmulator};
use common::{ACCESS_KEY_ID, CLUSTER_ID, REGION, SECRET_ACCESS_KEY, STS_HOST, TestEnv, bin};
use fake_k8s::{CONFIGMAPS, FakeKube, MAPPINGS};

const ACCOUNT: &str = "123456789012";
/// Mapped only in aws-auth (a role assumed with session `alice`).
const CM_ROLE: &str = "arn:aws:iam::123456789012:role/ConfigMapRole";
const CM_ROLE_ID: &str = "AROAEXAMPLECONFIGMAP";
/// Mapped only by an IAMIdentityMapping.
const CRD_USER: &str = "arn:aws:iam::123456789012:user/crd-user";
const CRD_USER_ID: &str = "AIDAEXAMPLECRDUSER";
const CRD_KEY: &str = "AKIACRDUSEREXAMPLE00";
const CRD_SECRET: &str = "crdUserSecretKeyEXAMPLEcrdUserSecretKeyEX";
/// Mapped nowhere.
const NOBODY: &str = "arn:aws:iam::123456789012:user/nobody";
const NOBODY_KEY: &str = "AKIANOBODYEXAMPLE000";
const NOBODY_SECRET: &str = "nobodySecretKeyEXAMPLEnobodySecretKeyEXA";
const V1: &str = "authentication.k8s.io/v1";

/// A clean environment, the STS emulator knowing three keys, a fake API server holding
/// aws-auth and one IAMIdentityMapping, and a kubeconfig pointing at it.
struct World {
    env: TestEnv,
    sts: StsEmulator,
    kube: FakeKube,
}

impl World {
    async fn new() -> Self {
        common::install_crypto_provider();
        let mut env = TestEnv::new();
        env.set("AWS_REGION", REGION);
        let sts = StsEmulator::start().unwrap();
        sts.add_identity(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            Identity::new(
                "arn:aws:sts::123456789012:assumed-role/ConfigMapRole/alice",
                ACCOUNT,
                format!("{CM_ROLE_ID}:alice"),
            ),
        );
        sts.add_identity(
            CRD_KEY,
            CRD_SECRET,
            Identity::new(CRD_USER, ACCOUNT, CRD_USER_ID),
        );
        sts.add_identity(
            NOBODY_KEY,
            NOBODY_SECRET,
            Identity::new(NOBODY, ACCOUNT, "AIDAEXAMPLENOBODY"),
        );

        let kube = FakeKube::start().await;
        kube.put(CONFIGMAPS, aws_auth(""));
        kube.put(
            MAPPINGS,
            json!({
                "apiVersion": "iamauthenticator.k8s.aws/v1alpha1",
                "kind": "IAMIdentityMapping",
                "metadata": {"name": "crd-user"},
                "spec": {"arn": CRD_USER, "username": "crd:{{AccountID}}", "groups": ["crd-group"]}
            }),
        );
        let world = Self { env, sts, kube };
        std::fs::create_dir_all(world.state_dir()).unwrap();
        std::fs::write(
            world.client_kubeconfig(),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: authenticator\ncurrent-context: fake\nusers:\n- name: authenticator\n  user:\n    token: service-account-token\n",
                world.kube.url()
            ),
        )
        .unwrap();
        world
    }

    fn state_dir(&self) -> PathBuf {
        self.env.home().join("state")
    }

    /// The kubeconfig the server reads the API server from (`--kubeconfig`).
    fn client_kubeconfig(&self) -> PathBuf {
        self.env.home().join("client-kubeconfig.yaml")
    }

    /// The webhook kubeconfig the server writes (for kube-apiserver, and for us).
    fn webhook_kubeconfig(&self) -> PathBuf {
        self.state_dir().join("kubeconfig.yaml")
    }

    /// A token from our `token` command, signed with `key`/`secret`.
    fn token(&self, key: &str, secret: &str) -> String {
        let out = self
            .env
            .command(bin())
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .args(["token", "-i", CLUSTER_ID, "--token-only"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::describe(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Starts `server` with the Kubernetes backends `modes` and waits until it listens.
    async fn start(&self, modes: &str) -> Running {
        let mut cmd = self.env.command(bin());
        cmd.args(["server", "-l", "json", "-i", CLUSTER_ID, "--port=0"])
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--generate-kubeconfig")
            .arg(self.webhook_kubeconfig())
            .arg("--sts-resolve")
            .arg(self.sts.resolve_arg(STS_HOST))
            .arg("--sts-ca-file")
            .arg(self.sts.ca_file())
            .arg("--health-address=127.0.0.1:0")
            .arg(format!("--backend-mode={modes}"))
            .arg("--kubeconfig")
            .arg(self.client_kubeconfig())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let running = Running::spawn(cmd);
        running.wait_log("serving health checks on").await;
        running
    }
}

/// aws-auth mapping the ConfigMapRole, plus `extra_users` as `mapUsers`.
fn aws_auth(extra_users: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {
            "mapRoles": format!(
                "- rolearn: {CM_ROLE}\n  username: \"cm:{{{{SessionName}}}}\"\n  groups:\n    - cm-group\n"
            ),
            "mapUsers": extra_users,
        }
    })
}

/// A running `server` process and its log.
struct Running {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn spawn(mut cmd: std::process::Command) -> Self {
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, log }
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn find_log(&self, prefix: &str) -> Option<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message"].as_str().is_some_and(|m| m.starts_with(prefix)))
    }

    /// Waits (bounded) for a log line whose message starts with `prefix`.
    async fn wait_log(&self, prefix: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = self.find_log(prefix) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no log line {prefix:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A webhook client as kube-apiserver is one: the CA and URL of the webhook kubeconfig.
struct Webhook {
    url: http::Uri,
    tls: tokio_rustls::TlsConnector,
}

struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Webhook {
    fn from_kubeconfig(world: &World) -> Self {
        let text = std::fs::read_to_string(world.webhook_kubeconfig()).unwrap();
        let v: Value = serde_saphyr::from_str(&text).unwrap();
        let cluster = &v["clusters"][0]["cluster"];
        let ca = base64::engine::general_purpose::STANDARD
            .decode(cluster["certificate-authority-data"].as_str().unwrap())
            .unwrap();
        let config =
            aws_iam_authenticator::tls::pinned_client_config(&String::from_utf8(ca).unwrap())
                .unwrap();
        Self {
            url: cluster["server"].as_str().unwrap().parse().unwrap(),
            tls: tokio_rustls::TlsConnector::from(config),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Vec<u8>) -> Answer {
        let host = self.url.host().unwrap().to_owned();
        let port = self.url.port_u16().unwrap();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls_pki_types::ServerName::try_from(host).unwrap();
        let tls = self.tls.connect(name, tcp).await.unwrap();
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let req = Request::builder()
            .method(method)
            .uri(format!(
                "https://{}{path}",
                self.url.authority().unwrap().as_str()
            ))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let io = TokioIo::new(tls);
        let resp = if h2 {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        };
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer { status, body }
    }

    /// A TokenReview, as kube-apiserver sends it.
    async fn review(&self, token: &str) -> Answer {
        let body = json!({
            "apiVersion": V1, "kind": "TokenReview",
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

    /// Waits (bounded) until `/healthz` on the webhook port says every backend synced.
    async fn wait_ready(&self, server: &Running) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.send(Method::GET, "/healthz", Vec::new()).await.status == StatusCode::OK {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never ready:\n{}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn assert_allowed(a: &Answer, username: &str, groups: &[&str]) {
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let v = a.json();
    assert_eq!(v["status"]["authenticated"], true, "{v}");
    assert_eq!(v["status"]["user"]["username"], username, "{v}");
    assert_eq!(v["status"]["user"]["groups"], json!(groups), "{v}");
}

fn assert_denied(a: &Answer) {
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let v = a.json();
    assert_eq!(v["status"]["authenticated"], false, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_auth_and_iamidentitymapping_through_the_server() {
    let world = World::new().await;
    let cm_token = world.token(ACCESS_KEY_ID, SECRET_ACCESS_KEY);
    let crd_token = world.token(CRD_KEY, CRD_SECRET);
    let nobody_token = world.token(NOBODY_KEY, NOBODY_SECRET);

    let server = world.start("EKSConfigMap,CRD").await;
    let hook = Webhook::from_kubeconfig(&world);
    hook.wait_ready(&server).await;

    // Only in aws-auth: allowed.
    assert_allowed(&hook.review(&cm_token).await, "cm:alice", &["cm-group"]);
    // Only through the IAMIdentityMapping: allowed.
    assert_allowed(
        &hook.review(&crd_token).await,
        &format!("crd:{ACCOUNT}"),
        &["crd-group"],
    );
    // Neither: denied.
    assert_denied(&hook.review(&nobody_token).await);

    // The server wrote the object's status: its canonical ARN, then the principal id
    // of the login that used it.
    let mut status = Value::Null;
    for _ in 0..500 {
        status = world.kube.get(MAPPINGS, "crd-user").unwrap()["status"].clone();
        if status["userID"] == CRD_USER_ID {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status["canonicalARN"], CRD_USER.to_ascii_lowercase());
    assert_eq!(status["userID"], CRD_USER_ID, "{}", server.log_text());

    // An aws-auth edit takes effect at once, even for an identity the server has
    // already verified (mappings are applied fresh on every review).
    world.kube.put(
        CONFIGMAPS,
        aws_auth(&format!(
            "- userarn: {NOBODY}\n  username: late-comer\n  groups: [late]\n"
        )),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = hook.review(&nobody_token).await;
        if a.status == StatusCode::OK {
            assert_allowed(&a, "late-comer", &["late"]);
            break;
        }
        assert!(Instant::now() < deadline, "{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Each token cost one STS call, however often it was reviewed.
    assert_eq!(world.sts.request_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_backend_alone_knows_only_its_own_mappings() {
    let world = World::new().await;
    let cm_token = world.token(ACCESS_KEY_ID, SECRET_ACCESS_KEY);
    let crd_token = world.token(CRD_KEY, CRD_SECRET);

    {
        let server = world.start("EKSConfigMap").await;
        let hook = Webhook::from_kubeconfig(&world);
        hook.wait_ready(&server).await;
        assert_allowed(&hook.review(&cm_token).await, "cm:alice", &["cm-group"]);
        assert_denied(&hook.review(&crd_token).await);
    }
    {
        let server = world.start("CRD").await;
        let hook = Webhook::from_kubeconfig(&world);
        hook.wait_ready(&server).await;
        assert_denied(&hook.review(&cm_token).await);
        assert_allowed(
            &hook.review(&crd_token).await,
            &format!("crd:{ACCOUNT}"),
            &["crd-group"],
        );
    }
    {
        // `ConfigMap`, EKSConfigMap's deprecated name, still works (with a warning).
        let server = world.start("ConfigMap").await;
        server
            .wait_log("warning: backend-mode \"ConfigMap\" is deprecated")
            .await;
        let hook = Webhook::from_kubeconfig(&world);
        hook.wait_ready(&server).await;
        assert_allowed(&hook.review(&cm_token).await, "cm:alice", &["cm-group"]);
    }
}
