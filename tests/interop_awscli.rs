//! Interoperability with AWS's own client code, which we did not write:
//!
//! * `aws eks get-token` (AWS CLI, offline, fake keys) mints a token whose real
//!   `https://sts.us-west-2.amazonaws.com/` URL our `verify` accepts against the emulator;
//! * botocore's SigV4 signer, given the same inputs, produces exactly the signature and
//!   parameters of our `token`'s URL.
//!
//! The AWS CLI comes from the test virtual environment (`scripts/setup-venv.sh`).

// Test code: a panic is how a helper reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::sts_emulator::{Identity, StsEmulator};
use common::{
    ACCESS_KEY_ID, CLUSTER_ID, REGION, SECRET_ACCESS_KEY, STS_HOST, TestEnv, describe, repo_root,
    token_url, venv_tool,
};

const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE/session+token==";

fn alice() -> Identity {
    Identity::new(
        "arn:aws:iam::111122223333:user/alice",
        "111122223333",
        "AIDAEXAMPLEALICE",
    )
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", describe(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", describe(out)))
}

/// `aws eks get-token --cluster-name CLUSTER --region us-west-2` → the token.
fn aws_cli_token(aws: &std::path::Path, env: &TestEnv, cluster: &str) -> String {
    let out = env
        .command(aws)
        .args([
            "eks",
            "get-token",
            "--cluster-name",
            cluster,
            "--region",
            REGION,
        ])
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(v["kind"], "ExecCredential", "{v}");
    v["status"]["token"].as_str().unwrap().to_owned()
}

/// `verify -i CLUSTER -t TOKEN -o json` against the emulator.
fn verify(env: &TestEnv, emu: &StsEmulator, cluster: &str, token: &str) -> Output {
    common::verify_against(env, emu, cluster, token)
}

#[test]
fn aws_cli_tokens_verify() {
    let Some(aws) = venv_tool("aws") else { return };
    let emu = StsEmulator::start().unwrap();
    emu.add_identity(ACCESS_KEY_ID, SECRET_ACCESS_KEY, alice());
    let env = TestEnv::new();

    let token = aws_cli_token(&aws, &env, CLUSTER_ID);
    let url = token_url(&token);
    assert!(url.starts_with(&format!("https://{STS_HOST}/?")), "{url}");

    let id = json(&verify(&env, &emu, CLUSTER_ID, &token));
    assert_eq!(id["ARN"], "arn:aws:iam::111122223333:user/alice");
    assert_eq!(id["AccountID"], "111122223333");
    assert_eq!(id["AccessKeyID"], ACCESS_KEY_ID);
    assert_eq!(id["STSEndpoint"], STS_HOST);
    assert_eq!(emu.requests()[0].status, 200);

    // Bound to its cluster: verifying it for another one fails at STS.
    let out = verify(&env, &emu, "another-cluster", &token);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SignatureDoesNotMatch"),
        "{}",
        describe(&out)
    );
}

#[test]
fn aws_cli_tokens_with_session_credentials_verify() {
    let Some(aws) = venv_tool("aws") else { return };
    let emu = StsEmulator::start().unwrap();
    let role = Identity::new(
        "arn:aws:sts::111122223333:assumed-role/k8s-admin/alice",
        "111122223333",
        "AROAEXAMPLEROLEID:alice",
    );
    emu.add_session_identity(ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN, role);
    let mut env = TestEnv::new();
    env.set("AWS_SESSION_TOKEN", SESSION_TOKEN);

    let token = aws_cli_token(&aws, &env, CLUSTER_ID);
    assert!(token_url(&token).contains("X-Amz-Security-Token="));
    let id = json(&verify(&env, &emu, CLUSTER_ID, &token));
    assert_eq!(
        id["CanonicalARN"],
        "arn:aws:iam::111122223333:role/k8s-admin"
    );
    assert_eq!(id["SessionName"], "alice");
}

/// Runs `scripts/sigv4_check.py URL CLUSTER` with the test secret (and session token).
fn botocore_check(env: &TestEnv, url: &str, cluster: &str) -> (bool, serde_json::Value, Output) {
    let python = venv_tool("python").unwrap();
    let out = env
        .command(python)
        .arg(repo_root().join("scripts/sigv4_check.py"))
        .args([url, cluster])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("sigv4_check.py printed no report: {e}\n{}", describe(&out)));
    (out.status.success(), report, out)
}

#[test]
fn botocore_signs_our_tokens_identically() {
    if venv_tool("python").is_none() {
        return;
    }
    for session_token in [None, Some(SESSION_TOKEN)] {
        let mut env = TestEnv::new();
        if let Some(t) = session_token {
            env.set("AWS_SESSION_TOKEN", t);
        }
        let out = env.run(&["token", "-i", CLUSTER_ID, "--region", REGION]);
        let token = json(&out)["status"]["token"].as_str().unwrap().to_owned();
        let url = token_url(&token);
        assert_eq!(
            url.contains("X-Amz-Security-Token="),
            session_token.is_some(),
            "{url}"
        );

        let (ok, report, out) = botocore_check(&env, &url, CLUSTER_ID);
        assert!(
            ok,
            "botocore disagrees with our signature\n{report:#}\n{}",
            describe(&out)
        );
        assert_eq!(report["match"], true);

        // The check can fail: another cluster id gives botocore another signature.
        let (ok, report, _) = botocore_check(&env, &url, "another-cluster");
        assert!(!ok, "{report:#}");
        assert_eq!(
            report["differing_parameters"],
            serde_json::json!(["X-Amz-Signature"])
        );
    }
}
