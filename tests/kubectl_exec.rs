//! kubectl as the exec-plugin host, end to end on loopback:
//!
//! kubectl runs our `token` (exec credential plugin, `v1beta1` and `v1`) → sends the
//! bearer token over TLS to a stand-in kube-apiserver → which posts a TokenReview to our
//! `server` with the CA and URL of the webhook kubeconfig `init` wrote → the server asks
//! the STS emulator and maps the identity → `kubectl auth whoami` prints that user.
//!
//! kubectl is not something the project's scripts can install; without it the test is
//! skipped with a notice.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};

use common::sts_emulator::Identity;
use common::webhook::{Webhook, World};
use common::{ACCESS_KEY_ID, CLUSTER_ID, SECRET_ACCESS_KEY, bin, describe};

const CONFIG: &str = "clusterID: my-cluster
server:
  mapUsers:
    - userarn: arn:aws:iam::111122223333:user/alice
      username: alice
      groups: [system:masters, devs]
";

fn kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!("SKIPPED: kubectl is not on PATH");
    }
    found
}

/// A stand-in kube-apiserver: TLS on 127.0.0.1 with its own self-signed certificate;
/// `POST …/selfsubjectreviews` authenticates the bearer token through the webhook, as
/// kube-apiserver's webhook token authenticator does, and answers with the user.
struct ApiServer {
    addr: SocketAddr,
    ca_pem: String,
    /// The `Authorization` headers it received.
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ApiServer {
    async fn start(webhook: Arc<Webhook>) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap())];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = cert.pem();
        let mut tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        common::http::serve(listener, Some(acceptor), move |_, req| {
            let webhook = Arc::clone(&webhook);
            let log = Arc::clone(&log);
            async move { handle(req, &webhook, &log).await }
        });
        Self { addr, ca_pem, seen }
    }
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn status_reply(code: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    reply(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": reason, "reason": reason, "code": code.as_u16()}),
    )
}

async fn handle(
    req: Request<Incoming>,
    webhook: &Webhook,
    seen: &std::sync::Mutex<Vec<String>>,
) -> Response<Full<Bytes>> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.lock().unwrap().push(auth.clone());
    let path = req.uri().path().to_owned();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    if path != "/apis/authentication.k8s.io/v1/selfsubjectreviews" {
        return status_reply(StatusCode::NOT_FOUND, "NotFound");
    }
    let Some(token) = auth.strip_prefix("Bearer ") else {
        return status_reply(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let answer = webhook
        .review("authentication.k8s.io/v1beta1", token)
        .await
        .json();
    if answer["status"]["authenticated"] != true {
        return status_reply(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    reply(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": request.get("metadata").cloned().unwrap_or(json!({})),
            "status": {"userInfo": answer["status"]["user"]},
        }),
    )
}

/// A kubeconfig for kubectl: the stand-in API server, and our `token` as exec plugin
/// speaking `exec_version`.
fn client_kubeconfig(dir: &Path, api: &ApiServer, exec_version: &str) -> PathBuf {
    let ca = base64::engine::general_purpose::STANDARD.encode(&api.ca_pem);
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://{addr}
    certificate-authority-data: {ca}
users:
- name: aws
  user:
    exec:
      apiVersion: client.authentication.k8s.io/{exec_version}
      command: {bin}
      args: [token, -i, {CLUSTER_ID}]
      env:
      - name: AWS_ACCESS_KEY_ID
        value: {ACCESS_KEY_ID}
      - name: AWS_SECRET_ACCESS_KEY
        value: {SECRET_ACCESS_KEY}
      interactiveMode: Never
      provideClusterInfo: false
contexts:
- name: test
  context: {{cluster: test, user: aws}}
current-context: test
",
        addr = api.addr,
        bin = bin(),
    );
    let path = dir.join(format!("kubeconfig-{exec_version}"));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_whoami_through_token_and_server() {
    let Some(kubectl) = kubectl() else {
        return;
    };
    let world = World::new();
    world.sts.add_identity(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Identity::new(
            "arn:aws:iam::111122223333:user/alice",
            "111122223333",
            "AIDAEXAMPLEALICE",
        ),
    );
    let config = world.write_config(CONFIG);
    let _server = world.start(&["-c", config.to_str().unwrap()]).await;
    let webhook = Arc::new(Webhook::from_kubeconfig(&world.kubeconfig()));
    let api = ApiServer::start(webhook).await;

    for exec_version in ["v1beta1", "v1"] {
        let kubeconfig = client_kubeconfig(world.env.home(), &api, exec_version);
        let mut cmd = world.env.command(&kubectl);
        // The keys reach `token` only through the exec plugin's `env`.
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["auth", "whoami", "-o", "json"]);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        assert!(out.status.success(), "{exec_version}: {}", describe(&out));
        let who: Value = serde_json::from_slice(&out.stdout).unwrap();
        let user = &who["status"]["userInfo"];
        assert_eq!(user["username"], "alice", "{who}");
        assert_eq!(user["groups"], json!(["system:masters", "devs"]), "{who}");
        assert_eq!(
            user["uid"],
            "aws-iam-authenticator:111122223333:AIDAEXAMPLEALICE"
        );
        assert_eq!(
            user["extra"]["arn"],
            json!(["arn:aws:iam::111122223333:user/alice"])
        );
    }
    let seen = api.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|a| a.starts_with("Bearer k8s-aws-v1.")),
        "{seen:?}"
    );
}
