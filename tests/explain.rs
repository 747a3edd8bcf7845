//! `explain`: golden text and JSON outputs on the mapping fixtures of
//! `tests/golden/explain/`, and the same decisions from the server's chain in process.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};

use aws_iam_authenticator::config::{ConfigFile, ServerConfig, ServerFlags};
use aws_iam_authenticator::identity::Identity;
use aws_iam_authenticator::mapper::chain::Chain;
use common::{TestEnv, golden};

fn fixture(name: &str) -> PathBuf {
    common::repo_root().join("tests/golden/explain").join(name)
}

/// name, caller ARN, SSO gate, mapped.
const CASES: &[(&str, &str, bool, bool)] = &[
    (
        "role-with-path",
        "arn:aws:sts::123456789012:assumed-role/Admin/jane@example.com",
        false,
        true,
    ),
    (
        "sso-role",
        "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_ViewOnly_0123456789abcdef/jane",
        true,
        true,
    ),
    (
        "sso-role-gate-off",
        "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_ViewOnly_0123456789abcdef/jane",
        false,
        false,
    ),
    ("user", "arn:aws:iam::123456789012:user/alice", false, true),
    (
        "account",
        "arn:aws:sts::210987654321:assumed-role/Deployer/ci",
        false,
        true,
    ),
    (
        "no-match",
        "arn:aws:iam::123456789012:user/ops/mallory",
        false,
        false,
    ),
    (
        "reserved-prefix",
        "arn:aws:sts::123456789012:assumed-role/Sneaky/x",
        false,
        false,
    ),
    (
        "dynamic-file",
        "arn:aws:sts::123456789012:assumed-role/NodeRole/i-0123456789abcdef0",
        false,
        true,
    ),
];

fn gates(sso: bool) -> String {
    format!("SSORoleMatch={sso}")
}

fn explain(env: &TestEnv, arn: &str, sso: bool, output: &str) -> std::process::Output {
    let config = fixture("config.yaml");
    let dynamic = fixture("access-entries.json");
    env.run(&[
        "explain",
        "-c",
        config.to_str().unwrap(),
        "--dynamic-file",
        dynamic.to_str().unwrap(),
        "--feature-gates",
        &gates(sso),
        "--arn",
        arn,
        "-o",
        output,
    ])
}

#[test]
fn golden_outputs() {
    let env = TestEnv::new();
    for (name, arn, sso, mapped) in CASES {
        for (output, ext) in [("text", "txt"), ("json", "json")] {
            let out = explain(&env, arn, *sso, output);
            let code = if *mapped { 0 } else { 1 };
            assert_eq!(
                out.status.code(),
                Some(code),
                "{name}: {}",
                common::describe(&out)
            );
            golden::check(
                &format!("explain/{name}.{ext}"),
                &String::from_utf8(out.stdout).unwrap(),
            );
        }
    }
}

/// The server's chain, built as `server` builds it from the same configuration.
async fn server_chain(sso: bool) -> (Chain, ServerConfig) {
    let file = ConfigFile::load(&fixture("config.yaml")).unwrap();
    let flags = ServerFlags {
        feature_gates: Some(gates(sso)),
        dynamic_file_path: Some(fixture("access-entries.json")),
        ..ServerFlags::default()
    };
    let (config, _) = ServerConfig::resolve(flags, Some(&file)).unwrap();
    let mut registry = aws_iam_authenticator::metrics::registry();
    let chain = Chain::build(&config, None, &mut registry).await.unwrap();
    (chain, config)
}

#[tokio::test]
async fn explain_decides_as_the_server_chain() {
    // SAFETY-free: the chain reads no environment the test changes; keep IMDS away.
    let env = TestEnv::new();
    for (name, arn, sso, _) in CASES {
        let (chain, _) = server_chain(*sso).await;
        let identity = Identity::from_arn(arn, "").unwrap();
        let server = chain.map(&identity).await;
        let out = explain(&env, arn, *sso, "json");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let decision = &json["decision"];
        match server {
            Ok(user) => {
                assert_eq!(decision["mapped"], true, "{name}");
                assert_eq!(decision["username"], user.username.as_str(), "{name}");
                assert_eq!(decision["groups"], serde_json::json!(user.groups), "{name}");
            }
            Err(denied) => {
                assert_eq!(decision["mapped"], false, "{name}");
                assert_eq!(decision["reason"], denied.reason.as_str(), "{name}");
            }
        }
    }
}

#[test]
fn a_token_needs_a_cluster_id_and_an_arn_must_be_valid() {
    let env = TestEnv::new();
    let out = env.run(&["explain", "--token", "k8s-aws-v1.x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster ID not specified"));
    let config = fixture("config.yaml");
    let out = env.run(&[
        "explain",
        "-c",
        config.to_str().unwrap(),
        "--dynamic-file",
        Path::new("/nonexistent").to_str().unwrap(),
        "--arn",
        "arn:aws:s3:::bucket",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --arn"));
}
