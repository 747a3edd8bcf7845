//! `verify` on the command line: argument errors and pre-STS failures (no network).

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on setup failure by design

use std::process::{Command, Output};

fn verify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aws-iam-authenticator"))
        .arg("verify")
        .args(args)
        .env_remove("KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        // Never let a test reach for the instance metadata service.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn token_is_required() {
    let o = verify(&["-i", "my-cluster"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let e = stderr(&o);
    assert!(e.starts_with("error: token not specified\n"), "{e}");
    assert!(e.contains("Usage:"), "{e}");
}

#[test]
fn cluster_id_is_required() {
    let o = verify(&["-t", "k8s-aws-v1.abc"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let e = stderr(&o);
    assert!(e.starts_with("error: cluster ID not specified\n"), "{e}");
}

#[test]
fn malformed_token() {
    let o = verify(&["-i", "my-cluster", "-t", "k8s-aws-v1.decodingerror"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let e = stderr(&o);
    assert!(
        e.contains(
            "could not verify token: input token was not properly formatted: illegal base64 data at input byte 12"
        ),
        "{e}"
    );
    let o = verify(&["-i", "my-cluster", "--token", "k8s-aws-v2.x"]);
    assert!(
        stderr(&o).contains(
            "could not verify token: input token was not properly formatted: token is missing expected \"k8s-aws-v1.\" prefix"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn token_and_cluster_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "clusterID: my-cluster\ntoken: k8s-aws-v1.decodingerror\n",
    )
    .unwrap();
    let o = verify(&["-c", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("could not verify token: input token was not properly formatted"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unknown_partition_is_refused() {
    let o = verify(&["-i", "c", "-t", "k8s-aws-v1.abc", "--partition", "aws-nk"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(
        stderr(&o).contains("invalid partition \"aws-nk\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_sts_resolve_is_a_usage_error() {
    let o = verify(&["-i", "c", "-t", "x", "--sts-resolve", "sts.amazonaws.com"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}
