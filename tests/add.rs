//! `add user|role`: the real binary against a fake API server.
#![allow(clippy::unwrap_used)]

mod common;

use common::fake_k8s;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use aws_iam_authenticator::mapper::Mapper;
use aws_iam_authenticator::mapper::configmap;
use fake_k8s::{CONFIGMAPS, FakeKube};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_aws-iam-authenticator");

fn seed(fake: &FakeKube) {
    fake.put(
        CONFIGMAPS,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "aws-auth", "namespace": "kube-system",
                         "labels": {"team": "platform"},
                         "annotations": {"note": "keep me"}},
            "data": {
                "mapRoles": "# nodes\n- rolearn: arn:aws:iam::555555555555:role/node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n",
                "mapUsers": "- userarn: arn:aws:iam::555555555555:user/admin\n  username: admin\n  groups:\n    - system:masters\n",
                "somethingElse": "untouched"
            }
        }),
    );
}

/// Runs the binary with `args`, feeding `stdin`, off the async runtime.
async fn run(args: Vec<String>, stdin: &'static str) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .args(&args)
            .env("HOME", "/nonexistent")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn args(fake: &FakeKube, rest: &[&str]) -> Vec<String> {
    let mut v = vec![
        "add".to_owned(),
        "--prompt=false".to_owned(),
        format!("--master-url={}", fake.url()),
    ];
    v.extend(rest.iter().map(|s| (*s).to_owned()));
    v
}

fn data(fake: &FakeKube) -> Value {
    fake.get(CONFIGMAPS, "aws-auth").unwrap()["data"].clone()
}

fn parsed(fake: &FakeKube) -> configmap::AwsAuth {
    let data: std::collections::BTreeMap<String, String> =
        serde_json::from_value(data(fake)).unwrap();
    configmap::parse(&data).into_strict().unwrap()
}

fn puts(fake: &FakeKube) -> usize {
    fake.requests().iter().filter(|r| r.method == "PUT").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_user_updates_one_section_and_keeps_the_rest() {
    let fake = FakeKube::start().await;
    seed(&fake);
    let out = run(
        args(
            &fake,
            &[
                "user",
                "--userarn=arn:aws:iam::555555555555:user/alice",
                "--username=alice",
                "--groups=dev,view",
            ],
        ),
        "",
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("updated configmap:\n\n"), "{stdout}");
    assert!(stdout.contains("alice"), "{stdout}");

    let auth = parsed(&fake);
    assert_eq!(auth.users.len(), 2);
    assert_eq!(
        auth.users[1].userarn,
        "arn:aws:iam::555555555555:user/alice"
    );
    assert_eq!(auth.users[1].groups, ["dev", "view"]);
    let d = data(&fake);
    // The other section keeps its text (comment included), other keys stay.
    assert!(d["mapRoles"].as_str().unwrap().starts_with("# nodes\n"));
    assert_eq!(d["somethingElse"], "untouched");
    let cm = fake.get(CONFIGMAPS, "aws-auth").unwrap();
    assert_eq!(cm["metadata"]["labels"]["team"], "platform");
    assert_eq!(cm["metadata"]["annotations"]["note"], "keep me");
    // The update carried the resourceVersion that was read.
    let put = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    let sent: Value = serde_json::from_str(&put.body).unwrap();
    assert!(sent["metadata"]["resourceVersion"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_refused() {
    let fake = FakeKube::start().await;
    seed(&fake);
    let out = run(
        args(
            &fake,
            &[
                "role",
                "--rolearn=arn:aws:iam::555555555555:role/NODE",
                "--username=x",
                "--groups=g",
            ],
        ),
        "",
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot add duplicate role ARN \"arn:aws:iam::555555555555:role/node\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        args(
            &fake,
            &[
                "user",
                "--userarn=arn:aws:iam::555555555555:user/admin",
                "--username=x",
                "--groups=g",
            ],
        ),
        "",
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot add duplicate user ARN \"arn:aws:iam::555555555555:user/admin\"")
    );
    assert_eq!(puts(&fake), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_is_retried_from_a_fresh_read() {
    let fake = FakeKube::start().await;
    seed(&fake);
    fake.inject_conflicts(2);
    let out = run(
        args(
            &fake,
            &[
                "role",
                "--rolearn=arn:aws:iam::555555555555:role/ops",
                "--username=ops",
                "--groups=ops",
            ],
        ),
        "",
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(puts(&fake), 3);
    let gets = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/aws-auth"))
        .count();
    assert_eq!(gets, 3);
    let auth = parsed(&fake);
    assert_eq!(auth.roles.len(), 2);
    assert_eq!(auth.users.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_roles_can_be_added() {
    let fake = FakeKube::start().await;
    seed(&fake);
    let out = run(
        args(
            &fake,
            &[
                "role",
                "--sso=permissionSetName=ViewOnlyAccess,accountID=012345678912",
                "--username=viewer:{{SessionName}}",
                "--groups=view",
            ],
        ),
        "",
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let auth = parsed(&fake);
    let sso = auth.roles[1].sso.as_ref().unwrap();
    assert_eq!(sso.permission_set_name, "ViewOnlyAccess");
    assert_eq!(sso.account_id, "012345678912");
    assert_eq!(auth.roles[1].username, "viewer:{{SessionName}}");
    assert!(auth.roles[1].rolearn.is_empty());

    // The same permission set again is a duplicate.
    let again = run(
        args(
            &fake,
            &[
                "role",
                "--sso=permissionSetName=viewonlyaccess,accountID=012345678912",
                "--username=other",
                "--groups=view",
            ],
        ),
        "",
    )
    .await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("cannot add duplicate role ARN"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // What was written is what the EKSConfigMap backend matches (with SSORoleMatch).
    let mapper = configmap::ConfigMapMapper::spawn_with(
        fake.client(),
        configmap::Settings {
            sso_role_match: true,
        },
        Default::default(),
    );
    for _ in 0..500 {
        if mapper.is_ready() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let id = aws_iam_authenticator::identity::Identity {
        canonical_arn:
            "arn:aws:iam::012345678912:role/AWSReservedSSO_ViewOnlyAccess_0123456789abcdef"
                .to_owned(),
        ..Default::default()
    };
    assert_eq!(mapper.map(&id).unwrap().username, "viewer:{{SessionName}}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prompt_can_cancel() {
    let fake = FakeKube::start().await;
    seed(&fake);
    let mut a = vec!["add".to_owned(), format!("--master-url={}", fake.url())];
    a.extend(
        [
            "user",
            "--userarn=arn:aws:iam::1:user/bob",
            "--username=bob",
            "--groups=g",
        ]
        .map(str::to_owned),
    );
    let out = run(a.clone(), "n\n").await;
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Ready to add \"add userarn arn:aws:iam::1:user/bob, username bob, groups [g]\", should we continue? [y/N]: cancelled \"add userarn arn:aws:iam::1:user/bob, username bob, groups [g]\"\n"
    );
    assert_eq!(puts(&fake), 0);
    let out = run(a, "yes\n").await;
    assert!(out.status.success());
    assert_eq!(puts(&fake), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_configmap_is_an_error() {
    let fake = FakeKube::start().await;
    let out = run(
        args(
            &fake,
            &["user", "--userarn=a", "--username=b", "--groups=c"],
        ),
        "",
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("configmaps \"aws-auth\" not found"));
}
