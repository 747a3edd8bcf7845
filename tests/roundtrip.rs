//! Round trips through the real binary: `token` mints with fake static keys, `verify`
//! checks against the local STS emulator (reached with `--sts-resolve`, trusted with
//! `--sts-ca-file`), and every refusal carries upstream's error text.

// `token` (the `client` feature) mints the tokens these tests check.
#![cfg(feature = "client")]
// Test code: a panic is how a helper reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;
use std::time::{Duration, SystemTime};

use common::sts_emulator::{Identity, StsEmulator, presign_for_tests};
use common::{
    ACCESS_KEY_ID, CLUSTER_ID, REGION, SECRET_ACCESS_KEY, STS_HOST, TestEnv, describe, token_url,
    url_token,
};

fn alice() -> Identity {
    Identity::new(
        "arn:aws:iam::111122223333:user/alice",
        "111122223333",
        "AIDAEXAMPLEALICE",
    )
}

/// An emulator that knows the test keys as alice.
fn emulator() -> StsEmulator {
    let emu = StsEmulator::start().unwrap();
    emu.add_identity(ACCESS_KEY_ID, SECRET_ACCESS_KEY, alice());
    emu
}

/// `token -i CLUSTER --region us-west-2` → the token from the ExecCredential.
fn mint(env: &TestEnv, cluster: &str) -> String {
    let out = env.run(&["token", "-i", cluster, "--region", REGION]);
    assert!(out.status.success(), "token failed\n{}", describe(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("token's stdout is not JSON: {e}\n{}", describe(&out)));
    assert_eq!(v["kind"], "ExecCredential", "{v}");
    v["status"]["token"].as_str().unwrap().to_owned()
}

/// `verify -i CLUSTER -t TOKEN -o json` against the emulator.
fn verify(env: &TestEnv, emu: &StsEmulator, cluster: &str, token: &str) -> Output {
    common::verify_against(env, emu, cluster, token)
}

fn verified_identity(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "verify failed\n{}", describe(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify's stdout is not JSON: {e}\n{}", describe(out)))
}

/// Asserts that verify failed (exit 1) and that stderr carries `expected`.
fn assert_refused(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(out));
    assert!(
        stderr.contains("could not verify token: "),
        "missing upstream's prefix\n{}",
        describe(out)
    );
    assert!(
        stderr.contains(expected),
        "expected {expected:?} on stderr\n{}",
        describe(out)
    );
    assert!(out.stdout.is_empty(), "{}", describe(out));
}

fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    url.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
}

#[test]
fn token_then_verify_yields_the_identity() {
    let emu = emulator();
    let env = TestEnv::new();
    let token = mint(&env, CLUSTER_ID);

    let url = token_url(&token);
    assert!(
        url.starts_with(&format!(
            "https://{STS_HOST}/?Action=GetCallerIdentity&Version=2011-06-15&"
        )),
        "{url}"
    );
    let credential = query_param(&url, "X-Amz-Credential").unwrap();
    assert!(
        credential.starts_with(&format!("{ACCESS_KEY_ID}%2F")),
        "{credential}"
    );
    assert!(
        credential.ends_with("%2Fus-west-2%2Fsts%2Faws4_request"),
        "{credential}"
    );
    assert_eq!(query_param(&url, "X-Amz-Expires"), Some("60"));
    assert_eq!(
        query_param(&url, "X-Amz-SignedHeaders"),
        Some("host%3Bx-k8s-aws-id")
    );

    let id = verified_identity(&verify(&env, &emu, CLUSTER_ID, &token));
    assert_eq!(id["ARN"], "arn:aws:iam::111122223333:user/alice");
    assert_eq!(id["CanonicalARN"], "arn:aws:iam::111122223333:user/alice");
    assert_eq!(id["AccountID"], "111122223333");
    assert_eq!(id["UserID"], "AIDAEXAMPLEALICE");
    assert_eq!(id["SessionName"], "");
    assert_eq!(id["AccessKeyID"], ACCESS_KEY_ID);
    assert_eq!(id["STSEndpoint"], STS_HOST);

    // What STS saw: the token's own URL, our cluster id, the real host name.
    let requests = emu.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let r = &requests[0];
    assert_eq!(r.status, 200);
    assert_eq!(r.method, "GET");
    assert_eq!(r.header("x-k8s-aws-id"), Some(CLUSTER_ID));
    assert_eq!(r.header("host"), Some(STS_HOST));
    assert!(
        r.header("accept")
            .is_some_and(|a| a.contains("application/json")),
        "{r:#?}"
    );
    assert_eq!(format!("https://{STS_HOST}{}?{}", r.path, r.query), url);
}

#[test]
fn token_only_prints_the_bare_token_and_it_verifies() {
    let emu = emulator();
    let env = TestEnv::new();
    let out = env.run(&[
        "token",
        "-i",
        CLUSTER_ID,
        "--region",
        REGION,
        "--token-only",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let token = stdout.strip_suffix('\n').unwrap();
    assert!(token.starts_with("k8s-aws-v1."), "{stdout}");
    assert!(!token.contains(char::is_whitespace));
    verified_identity(&verify(&env, &emu, CLUSTER_ID, token));
}

#[test]
fn assumed_role_identity_is_canonicalised() {
    let emu = StsEmulator::start().unwrap();
    emu.add_identity(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Identity::new(
            "arn:aws:sts::111122223333:assumed-role/k8s-admin/alice-session",
            "111122223333",
            "AROAEXAMPLEROLEID:alice-session",
        ),
    );
    let env = TestEnv::new();
    let token = mint(&env, CLUSTER_ID);
    let id = verified_identity(&verify(&env, &emu, CLUSTER_ID, &token));
    assert_eq!(
        id["ARN"],
        "arn:aws:sts::111122223333:assumed-role/k8s-admin/alice-session"
    );
    assert_eq!(
        id["CanonicalARN"],
        "arn:aws:iam::111122223333:role/k8s-admin"
    );
    assert_eq!(id["UserID"], "AROAEXAMPLEROLEID");
    assert_eq!(id["SessionName"], "alice-session");
}

#[test]
fn wrong_secret_is_a_signature_mismatch() {
    let emu = StsEmulator::start().unwrap();
    emu.add_identity(
        ACCESS_KEY_ID,
        "a-different-secret-than-the-clients",
        alice(),
    );
    let env = TestEnv::new();
    let token = mint(&env, CLUSTER_ID);
    let out = verify(&env, &emu, CLUSTER_ID, &token);
    assert_refused(
        &out,
        "sts getCallerIdentity failed: error from AWS (expected 200, got 403)",
    );
    assert_refused(&out, "SignatureDoesNotMatch");
    assert_eq!(emu.request_count(), 1);
}

#[test]
fn token_for_another_cluster_is_refused() {
    let emu = emulator();
    let env = TestEnv::new();
    let token = mint(&env, "another-cluster");
    let out = verify(&env, &emu, CLUSTER_ID, &token);
    assert_refused(
        &out,
        "sts getCallerIdentity failed: error from AWS (expected 200, got 403)",
    );
    assert_refused(&out, "SignatureDoesNotMatch");
    // STS saw the verifier's cluster id, not the one the token was minted for.
    assert_eq!(emu.requests()[0].header("x-k8s-aws-id"), Some(CLUSTER_ID));
}

#[test]
fn unknown_access_key_is_refused() {
    let emu = StsEmulator::start().unwrap();
    let env = TestEnv::new();
    let token = mint(&env, CLUSTER_ID);
    let out = verify(&env, &emu, CLUSTER_ID, &token);
    assert_refused(
        &out,
        "sts getCallerIdentity failed: error from AWS (expected 200, got 403)",
    );
    assert_refused(&out, "InvalidClientTokenId");
}

#[test]
fn expired_token_is_refused_before_sts() {
    let emu = emulator();
    let env = TestEnv::new();
    let creds = aws_credential_types::Credentials::new(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        None,
        None,
        "test",
    );
    let signed_at = SystemTime::now() - Duration::from_secs(20 * 60);
    let url = aws_iam_authenticator::token::generate::presign(
        &creds, REGION, STS_HOST, CLUSTER_ID, signed_at,
    )
    .unwrap();
    let out = verify(&env, &emu, CLUSTER_ID, &url_token(&url));
    assert_refused(
        &out,
        "input token was not properly formatted: X-Amz-Date parameter is expired (15 minute expiration)",
    );
    assert_eq!(emu.request_count(), 0, "an expired token reached STS");

    // A fresh token signed the same way passes, so the refusal was about time alone.
    let url = aws_iam_authenticator::token::generate::presign(
        &creds,
        REGION,
        STS_HOST,
        CLUSTER_ID,
        SystemTime::now(),
    )
    .unwrap();
    verified_identity(&verify(&env, &emu, CLUSTER_ID, &url_token(&url)));
}

#[test]
fn tampered_signature_is_refused() {
    let emu = emulator();
    let env = TestEnv::new();
    let url = token_url(&mint(&env, CLUSTER_ID));
    let last = url.chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &url[..url.len() - 1]);
    let out = verify(&env, &emu, CLUSTER_ID, &url_token(&tampered));
    assert_refused(
        &out,
        "sts getCallerIdentity failed: error from AWS (expected 200, got 403)",
    );
    assert_refused(&out, "SignatureDoesNotMatch");
}

#[test]
fn duplicated_parameters_are_refused_before_sts() {
    let emu = emulator();
    let env = TestEnv::new();
    let url = token_url(&mint(&env, CLUSTER_ID));
    let credential = query_param(&url, "X-Amz-Credential").unwrap().to_owned();
    // Case-insensitive duplicates (CVE-2022-2385).
    let url = format!("{url}&x-amz-credential={credential}");
    let out = verify(&env, &emu, CLUSTER_ID, &url_token(&url));
    assert_refused(
        &out,
        "input token was not properly formatted: duplicate query parameter found: ",
    );
    assert_eq!(emu.request_count(), 0);
}

#[test]
fn non_sts_host_is_refused_even_when_resolved() {
    let emu = emulator();
    let env = TestEnv::new();
    // Correctly signed for its host, but the host is not STS.
    let url = presign_for_tests(
        "sts.evil.example.com",
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        REGION,
        CLUSTER_ID,
        SystemTime::now(),
    );
    let out = env.run(&[
        "verify",
        "-i",
        CLUSTER_ID,
        "-t",
        &url_token(&url),
        "--sts-resolve",
        &emu.resolve_arg("sts.evil.example.com"),
        "--sts-ca-file",
        emu.ca_file().to_str().unwrap(),
    ]);
    assert_refused(&out, "sts.evil.example.com");
    assert_eq!(
        emu.request_count(),
        0,
        "a token for a foreign host reached the network"
    );
}

#[test]
fn throttling_is_reported_as_such() {
    let emu = emulator();
    emu.set_throttle(true);
    let env = TestEnv::new();
    let token = mint(&env, CLUSTER_ID);
    let out = verify(&env, &emu, CLUSTER_ID, &token);
    assert_refused(&out, "sts getCallerIdentity was throttled: ");
    assert_refused(&out, "Rate exceeded");
}

#[test]
fn untrusted_sts_certificate_is_refused() {
    let emu = emulator();
    let env = TestEnv::new();
    let token = mint(&env, CLUSTER_ID);
    // No --sts-ca-file: the emulator's test CA is not in the system trust store.
    let out = env.run(&[
        "verify",
        "-i",
        CLUSTER_ID,
        "-t",
        &token,
        "--sts-resolve",
        &emu.resolve_arg(STS_HOST),
    ]);
    assert_refused(&out, "sts getCallerIdentity failed: error during GET");
    assert_eq!(
        emu.request_count(),
        0,
        "a request went over an untrusted connection"
    );
}

#[test]
fn unreachable_sts_is_an_sts_error() {
    let emu = emulator();
    emu.set_down(true);
    let env = TestEnv::new();
    let token = mint(&env, CLUSTER_ID);
    // Wait until the listener is really gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(emu.addr()).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "emulator still listening"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = verify(&env, &emu, CLUSTER_ID, &token);
    assert_refused(&out, "sts getCallerIdentity failed: error during GET");
}
