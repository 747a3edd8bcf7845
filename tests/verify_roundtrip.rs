//! Real round trips: tokens presigned by our own generator, verified by the `Verifier`
//! against the SigV4-checking STS emulator (reached through `--sts-resolve`-style
//! mapping, trusted through its CA file).

// `token` (the `client` feature) mints the tokens these tests check.
#![cfg(feature = "client")]
#![allow(clippy::unwrap_used)] // test code: a panic is how a helper reports a failure

mod common;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;

use aws_iam_authenticator::aws::Partition;
use aws_iam_authenticator::config::StsOptions;
use aws_iam_authenticator::sts;
use aws_iam_authenticator::token::VerifyError;
use aws_iam_authenticator::token::generate::{encode_token, presign};
use aws_iam_authenticator::token::verify::Verifier;

use common::sts_emulator::{Identity, StsEmulator};
use common::{ACCESS_KEY_ID, CLUSTER_ID, REGION, SECRET_ACCESS_KEY, STS_HOST};

fn emulator() -> StsEmulator {
    let emu = StsEmulator::start().unwrap();
    emu.add_identity(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Identity::new(
            "arn:aws:sts::123456789012:assumed-role/Admin/alice",
            "123456789012",
            "AROAEXAMPLEID:alice",
        ),
    );
    emu
}

fn verifier(emu: &StsEmulator, cluster: &str) -> Verifier {
    let opts = StsOptions {
        resolve: vec![(STS_HOST.to_owned(), emu.addr())],
        ca_file: Some(emu.ca_file().to_owned()),
        ..Default::default()
    };
    let client = sts::Client::with_timeouts(
        &opts,
        Duration::from_secs(2),
        Duration::from_secs(5),
        sts::StsMetrics::default(),
    )
    .unwrap();
    Verifier::new(cluster.to_owned(), Partition::Aws, None, client)
}

fn token_for(cluster: &str, secret: &str) -> String {
    let creds = Credentials::new(ACCESS_KEY_ID, secret, None, None, "test");
    let url = presign(&creds, REGION, STS_HOST, cluster, SystemTime::now()).unwrap();
    encode_token(&url).expose().to_owned()
}

#[tokio::test]
async fn a_fresh_token_verifies() {
    let emu = emulator();
    let id = verifier(&emu, CLUSTER_ID)
        .verify(&token_for(CLUSTER_ID, SECRET_ACCESS_KEY))
        .await
        .unwrap();
    assert_eq!(id.canonical_arn, "arn:aws:iam::123456789012:role/Admin");
    assert_eq!(id.user_id, "AROAEXAMPLEID");
    assert_eq!(id.session_name, "alice");
    assert_eq!(id.access_key_id, ACCESS_KEY_ID);
    assert_eq!(id.sts_endpoint, STS_HOST);
    assert_eq!(emu.request_count(), 1);
}

#[tokio::test]
async fn a_token_for_another_cluster_fails_at_sts() {
    let emu = emulator();
    let e = verifier(&emu, CLUSTER_ID)
        .verify(&token_for("other-cluster", SECRET_ACCESS_KEY))
        .await
        .unwrap_err();
    assert!(matches!(e, VerifyError::Sts(_)), "{e}");
    assert!(
        e.to_string()
            .contains("error from AWS (expected 200, got 403) on us-west-2 endpoint"),
        "{e}"
    );
}

#[tokio::test]
async fn a_wrong_secret_fails_at_sts() {
    let emu = emulator();
    let e = verifier(&emu, CLUSTER_ID)
        .verify(&token_for(CLUSTER_ID, "not-the-secret"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("got 403"), "{e}");
}

#[tokio::test]
async fn throttling_is_its_own_error() {
    let emu = emulator();
    emu.set_throttle(true);
    let e = verifier(&emu, CLUSTER_ID)
        .verify(&token_for(CLUSTER_ID, SECRET_ACCESS_KEY))
        .await
        .unwrap_err();
    assert!(matches!(e, VerifyError::Throttled(_)), "{e}");
}
