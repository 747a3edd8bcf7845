//! End to end through the real binary: `server --backend-mode=EKSConfigMap,CRD` reads its
//! mappings from a fake Kubernetes API server (`--kubeconfig`), verifies tokens minted by
//! our `token` command against the local STS emulator, and answers TokenReviews over TLS
//! as kube-apiserver sends them. An identity mapped only through aws-auth is allowed, one
//! mapped only through an IAMIdentityMapping is allowed, one mapped through neither is
//! denied.

#![allow(clippy::unwrap_used)] // test code: a panic is how a helper reports a failure

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};

use common::fake_k8s::{CONFIGMAPS, FakeKube, MAPPINGS};
use common::process::Running;
use common::sts_emulator::Identity;
use common::webhook::{Answer, Webhook};
use common::{ACCESS_KEY_ID, SECRET_ACCESS_KEY};

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

/// The webhook fixture with the STS emulator knowing three keys, a fake API server
/// holding aws-auth and one IAMIdentityMapping, and a kubeconfig pointing at it.
struct World {
    hook: common::webhook::World,
    kube: FakeKube,
}

impl World {
    async fn new() -> Self {
        let hook = common::webhook::World::new();
        hook.sts.add_identity(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            Identity::new(
                "arn:aws:sts::123456789012:assumed-role/ConfigMapRole/alice",
                ACCOUNT,
                format!("{CM_ROLE_ID}:alice"),
            ),
        );
        hook.sts.add_identity(
            CRD_KEY,
            CRD_SECRET,
            Identity::new(CRD_USER, ACCOUNT, CRD_USER_ID),
        );
        hook.sts.add_identity(
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
        let world = Self { hook, kube };
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

    /// The kubeconfig the server reads the API server from (`--kubeconfig`).
    fn client_kubeconfig(&self) -> PathBuf {
        self.hook.path("client-kubeconfig.yaml")
    }

    /// A token from our `token` command, signed with `key`/`secret`.
    fn token(&self, key: &str, secret: &str) -> String {
        self.hook.token_with(key, secret)
    }

    /// Starts `server` with the backends `modes`, reading the fake API server; returns
    /// it with a client for its webhook kubeconfig, once every backend has synced.
    async fn start(&self, modes: &str) -> (Running, Webhook) {
        let kubeconfig = self.client_kubeconfig();
        let server = self
            .hook
            .start(&[
                &format!("--backend-mode={modes}"),
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
            ])
            .await;
        let hook = Webhook::from_kubeconfig(&self.hook.kubeconfig());
        wait_ready(&hook, &server).await;
        (server, hook)
    }
}

/// Waits (bounded) until `/healthz` on the webhook port says every backend synced.
async fn wait_ready(hook: &Webhook, server: &Running) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if hook.send(Method::GET, "/healthz", Vec::new()).await.status == StatusCode::OK {
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
        StatusCode::OK,
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

    let (server, hook) = world.start("EKSConfigMap,CRD").await;

    // Only in aws-auth: allowed.
    assert_allowed(&hook.review(V1, &cm_token).await, "cm:alice", &["cm-group"]);
    // Only through the IAMIdentityMapping: allowed.
    assert_allowed(
        &hook.review(V1, &crd_token).await,
        &format!("crd:{ACCOUNT}"),
        &["crd-group"],
    );
    // Neither: denied.
    assert_denied(&hook.review(V1, &nobody_token).await);

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
    // Until the watch delivers the edit the review is still a denial, which is answered
    // 200 with `authenticated: false` like an acceptance's status code.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = hook.review(V1, &nobody_token).await;
        if a.status == StatusCode::OK && a.json()["status"]["authenticated"] == true {
            assert_allowed(&a, "late-comer", &["late"]);
            break;
        }
        assert_denied(&a);
        assert!(Instant::now() < deadline, "{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Each token cost one STS call, however often it was reviewed.
    assert_eq!(world.hook.sts.request_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_backend_alone_knows_only_its_own_mappings() {
    let world = World::new().await;
    let cm_token = world.token(ACCESS_KEY_ID, SECRET_ACCESS_KEY);
    let crd_token = world.token(CRD_KEY, CRD_SECRET);

    {
        let (_server, hook) = world.start("EKSConfigMap").await;
        assert_allowed(&hook.review(V1, &cm_token).await, "cm:alice", &["cm-group"]);
        assert_denied(&hook.review(V1, &crd_token).await);
    }
    {
        let (_server, hook) = world.start("CRD").await;
        assert_denied(&hook.review(V1, &cm_token).await);
        assert_allowed(
            &hook.review(V1, &crd_token).await,
            &format!("crd:{ACCOUNT}"),
            &["crd-group"],
        );
    }
    {
        // `ConfigMap`, EKSConfigMap's deprecated name, still works (with a warning).
        let (mut server, hook) = world.start("ConfigMap").await;
        server
            .wait_log("warning: backend-mode \"ConfigMap\" is deprecated")
            .await;
        assert_allowed(&hook.review(V1, &cm_token).await, "cm:alice", &["cm-group"]);
    }
}
