//! The server-side credential chain and our own STS AssumeRole against fake IMDS,
//! container and STS endpoints on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_iam_authenticator::credentials::assume_role::{AssumeRole, SourceHeaders};
use aws_iam_authenticator::credentials::chain::Chain;
use aws_iam_authenticator::credentials::imds::Imds;
use aws_iam_authenticator::credentials::sts::Sts;
use aws_iam_authenticator::https::proxy::ProxyEnv;
use common::aws_fakes::{self, AwsFakes};

/// A chain over exactly `vars` (plus an empty `HOME`), so the machine's own
/// environment and files never leak in.
fn chain_over(vars: &[(&str, String)]) -> (Chain, tempfile::TempDir) {
    common::install_crypto_provider();
    let home = tempfile::tempdir().unwrap();
    let mut env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    env.insert("HOME".into(), home.path().display().to_string());
    let env = Arc::new(move |k: &str| env.get(k).cloned());
    (Chain::with_env("us-west-2", ProxyEnv::none(), env), home)
}

#[tokio::test]
async fn imds_v2_gives_the_instance_roles_credentials_and_the_region() {
    let fakes = AwsFakes::start().await;
    let (chain, _home) = chain_over(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", fakes.url.clone())]);
    let c = chain.provide_credentials().await.unwrap();
    assert_eq!(c.access_key_id(), "ASIAIMDS");
    assert!(c.expiry().is_some());
    // Kept: the second call asks nothing.
    let before = fakes.seen().len();
    chain.provide_credentials().await.unwrap();
    assert_eq!(fakes.seen().len(), before);
    let seen = fakes.seen();
    let paths: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("PUT", "/latest/api/token"),
            ("GET", "/latest/meta-data/iam/security-credentials/"),
            ("PUT", "/latest/api/token"),
            (
                "GET",
                "/latest/meta-data/iam/security-credentials/node-role"
            ),
        ]
    );
    assert_eq!(
        seen[0].header("x-aws-ec2-metadata-token-ttl-seconds"),
        Some("21600")
    );
    assert_eq!(
        seen[1].header("x-aws-ec2-metadata-token"),
        Some(aws_fakes::IMDS_TOKEN)
    );
    let env = |k: &str| (k == "AWS_EC2_METADATA_SERVICE_ENDPOINT").then(|| fakes.url.clone());
    let imds = Imds::from_env(&env).unwrap().unwrap();
    assert_eq!(imds.region().await.unwrap(), "eu-west-3");
}

#[tokio::test]
async fn container_credentials_send_the_token_files_contents() {
    let fakes = AwsFakes::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "pod-identity-token\n").unwrap();
    let (chain, _home) = chain_over(&[
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{}/creds", fakes.url),
        ),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "stale".into()),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        // Later in the chain: never asked.
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", fakes.url.clone()),
    ]);
    let c = chain.provide_credentials().await.unwrap();
    assert_eq!(c.access_key_id(), "ASIAPOD");
    let seen = fakes.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].header("authorization"), Some("pod-identity-token"));
}

#[tokio::test]
async fn web_identity_assumes_the_role_with_an_unsigned_call() {
    let fakes = AwsFakes::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "projected-jwt").unwrap();
    let (chain, _home) = chain_over(&[
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/irsa".into()),
        ("AWS_ROLE_SESSION_NAME", "node-1".into()),
        ("AWS_ENDPOINT_URL_STS", format!("{}/", fakes.url)),
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{}/creds", fakes.url),
        ),
    ]);
    let c = chain.provide_credentials().await.unwrap();
    assert_eq!(c.access_key_id(), "ASIAWEB");
    let seen = fakes.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let call = &seen[0];
    assert_eq!(
        call.param("Action").as_deref(),
        Some("AssumeRoleWithWebIdentity")
    );
    assert_eq!(call.param("Version").as_deref(), Some("2011-06-15"));
    assert_eq!(
        call.param("RoleArn").as_deref(),
        Some("arn:aws:iam::111122223333:role/irsa")
    );
    assert_eq!(call.param("RoleSessionName").as_deref(), Some("node-1"));
    assert_eq!(call.header("authorization"), None);
    // A bad token: STS's code and message in the error, and the chain stops there.
    std::fs::write(&token_file, "expired-jwt").unwrap();
    let e = chain.resolve().await.unwrap_err();
    let e = aws_iam_authenticator::error::error_chain(&e);
    assert!(e.contains("InvalidIdentityToken: bad token"), "{e}");
}

#[tokio::test]
async fn environment_keys_come_first_and_nothing_configured_names_every_link() {
    let fakes = AwsFakes::start().await;
    let (chain, _home) = chain_over(&[
        ("AWS_ACCESS_KEY_ID", "AKIDENV".into()),
        ("AWS_SECRET_ACCESS_KEY", "s".into()),
        ("AWS_SESSION_TOKEN", "t".into()),
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{}/creds", fakes.url),
        ),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", fakes.url.clone()),
    ]);
    let c = chain.provide_credentials().await.unwrap();
    assert_eq!(
        (c.access_key_id(), c.session_token()),
        ("AKIDENV", Some("t"))
    );
    assert!(fakes.seen().is_empty());
    let (chain, _home) = chain_over(&[("AWS_EC2_METADATA_DISABLED", "true".into())]);
    let e = chain.provide_credentials().await.unwrap_err();
    let e = aws_iam_authenticator::error::error_chain(&e);
    assert!(
        e.contains("environment, profile files, web identity, container or instance metadata"),
        "{e}"
    );
}

#[tokio::test]
async fn profile_keys_come_before_containers_and_sso_profiles_are_refused() {
    let fakes = AwsFakes::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        "[profile node]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s\n\n[profile sso]\nsso_session = corp\n",
    )
    .unwrap();
    let vars = |profile: &str| {
        vec![
            ("AWS_CONFIG_FILE", config.display().to_string()),
            ("AWS_PROFILE", profile.to_owned()),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("{}/creds", fakes.url),
            ),
        ]
    };
    let (chain, _home) = chain_over(&vars("node"));
    let c = chain.provide_credentials().await.unwrap();
    assert_eq!(c.access_key_id(), "AKIDFILE");
    let (chain, _home) = chain_over(&vars("sso"));
    let e = chain.provide_credentials().await.unwrap_err();
    let e = aws_iam_authenticator::error::error_chain(&e);
    assert!(e.contains("profile \"sso\" sets sso_session"), "{e}");
    assert!(fakes.seen().is_empty());
}

fn base() -> Credentials {
    Credentials::new(
        aws_fakes::BASE_KEY_ID,
        aws_fakes::BASE_SECRET,
        None,
        None,
        "test",
    )
}

#[tokio::test]
async fn assume_role_signs_the_source_headers_and_keeps_the_session() {
    common::install_crypto_provider();
    let fakes = AwsFakes::start().await;
    let sts = Sts::new(&format!("{}/", fakes.url), "us-west-2", ProxyEnv::none()).unwrap();
    let role = AssumeRole::new(sts, base(), "arn:aws:iam::111122223333:role/describe")
        .session_name("aws-iam-authenticator".into())
        .duration(std::time::Duration::from_secs(3600))
        .external_id(Some("ext".into()))
        .source_headers(Some(SourceHeaders {
            arn: "arn:aws:eks:us-west-2:444455556666:cluster/c".into(),
            account: "444455556666".into(),
        }));
    let c = role.provide_credentials().await.unwrap();
    assert_eq!(
        (c.access_key_id(), c.session_token()),
        ("ASIAROLE", Some("t"))
    );
    role.provide_credentials().await.unwrap();
    let seen = fakes.seen();
    assert_eq!(
        seen.len(),
        1,
        "kept until five minutes before expiry: {seen:?}"
    );
    let call = &seen[0];
    for (name, want) in [
        ("Action", "AssumeRole"),
        ("Version", "2011-06-15"),
        ("RoleArn", "arn:aws:iam::111122223333:role/describe"),
        ("RoleSessionName", "aws-iam-authenticator"),
        ("DurationSeconds", "3600"),
        ("ExternalId", "ext"),
    ] {
        assert_eq!(call.param(name).as_deref(), Some(want), "{name}");
    }
    assert_eq!(
        call.header("x-amz-source-arn"),
        Some("arn:aws:eks:us-west-2:444455556666:cluster/c")
    );
    assert_eq!(call.header("x-amz-source-account"), Some("444455556666"));
    let signed = call.header("authorization").unwrap();
    assert!(
        signed.contains("x-amz-source-account") && signed.contains("x-amz-source-arn"),
        "{signed}"
    );
}

#[tokio::test]
async fn sts_errors_name_their_code() {
    common::install_crypto_provider();
    let fakes = AwsFakes::start().await;
    let sts = Sts::new(&format!("{}/", fakes.url), "us-west-2", ProxyEnv::none()).unwrap();
    let role = AssumeRole::new(sts, base(), aws_fakes::DENIED_ROLE);
    let e = role.provide_credentials().await.unwrap_err();
    let e = aws_iam_authenticator::error::error_chain(&e);
    assert!(
        e.contains("STS AssumeRole failed: AccessDenied: not authorized to perform: sts:AssumeRole (HTTP 403)"),
        "{e}"
    );
    // Not a transient error: asked once.
    assert_eq!(fakes.seen().len(), 1);
}
