//! The mapper chain over the Kubernetes backends (EKSConfigMap and CRD) against fake API
//! servers: configured order, mapAccounts precedence, reserved prefixes per backend, and
//! a backend that is still syncing neither blocking the others nor counting as ready.
#![allow(clippy::unwrap_used)]

mod common;

use common::fake_k8s;
use common::wait::eventually;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_iam_authenticator::config::types::BackendMode;
use aws_iam_authenticator::identity::Identity;
use aws_iam_authenticator::mapper::Mapper;
use aws_iam_authenticator::mapper::chain::{Chain, MappedUser};
use aws_iam_authenticator::mapper::configmap::ConfigMapMapper;
use aws_iam_authenticator::mapper::crd::CrdMapper;
use fake_k8s::{CONFIGMAPS, FakeKube, MAPPINGS};
use serde_json::json;

const ACCOUNT: &str = "123456789012";
/// Mapped in both backends.
const BOTH: &str = "arn:aws:iam::123456789012:role/Both";
/// Mapped only in aws-auth.
const CM_ONLY: &str = "arn:aws:iam::123456789012:role/CmOnly";
/// Mapped only by an IAMIdentityMapping.
const CRD_ONLY: &str = "arn:aws:iam::123456789012:user/crd-only";
/// Mapped to a reserved username in each backend.
const CM_SYSTEM: &str = "arn:aws:iam::123456789012:role/CmSystem";
const CRD_SYSTEM: &str = "arn:aws:iam::123456789012:role/CrdSystem";

fn who(arn: &str) -> Identity {
    Identity {
        arn: arn.to_owned(),
        canonical_arn: arn.to_owned(),
        account_id: ACCOUNT.to_owned(),
        session_name: "s".to_owned(),
        ..Default::default()
    }
}

fn put_aws_auth(fake: &FakeKube, map_accounts: &str) {
    fake.put(
        CONFIGMAPS,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "aws-auth", "namespace": "kube-system"},
            "data": {
                "mapRoles": format!(
                    "- rolearn: {BOTH}\n  username: from-configmap\n  groups: [cm]\n\
                     - rolearn: {CM_ONLY}\n  username: cm-only\n\
                     - rolearn: {CM_SYSTEM}\n  username: system:cm\n"
                ),
                "mapAccounts": map_accounts,
            }
        }),
    );
}

fn put_mapping(fake: &FakeKube, name: &str, arn: &str, username: &str) {
    fake.put(
        MAPPINGS,
        json!({
            "apiVersion": "iamauthenticator.k8s.aws/v1alpha1", "kind": "IAMIdentityMapping",
            "metadata": {"name": name},
            "spec": {"arn": arn, "username": username, "groups": ["crd"]}
        }),
    );
}

/// One fake API server with aws-auth and three IAMIdentityMappings, and both backends
/// synced from it.
async fn backends(map_accounts: &str) -> (FakeKube, Arc<dyn Mapper>, Arc<dyn Mapper>) {
    let fake = FakeKube::start().await;
    put_aws_auth(&fake, map_accounts);
    put_mapping(&fake, "both", BOTH, "from-crd");
    put_mapping(&fake, "crd-only", CRD_ONLY, "crd-only");
    put_mapping(&fake, "crd-system", CRD_SYSTEM, "system:crd");
    let cm: Arc<dyn Mapper> = Arc::new(ConfigMapMapper::spawn(fake.client()));
    let crd: Arc<dyn Mapper> = Arc::new(CrdMapper::spawn(fake.client()));
    eventually("both synced", || cm.is_ready() && crd.is_ready()).await;
    (fake, cm, crd)
}

fn user(username: &str, groups: &[&str]) -> MappedUser {
    MappedUser {
        username: username.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn reserved(modes: &[BackendMode]) -> BTreeMap<BackendMode, Vec<String>> {
    let list: Vec<String> = ["aws:", "eks:", "amazon:", "iam:", "system:"]
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    modes.iter().map(|m| (*m, list.clone())).collect()
}

#[tokio::test]
async fn the_configured_order_decides() {
    let (_fake, cm, crd) = backends("").await;
    let cm_first = Chain::from_mappers(vec![cm.clone(), crd.clone()], BTreeMap::new(), None);
    let crd_first = Chain::from_mappers(vec![crd, cm], BTreeMap::new(), None);
    assert_eq!(
        cm_first.modes(),
        [BackendMode::EksConfigMap, BackendMode::Crd]
    );
    assert_eq!(
        cm_first.map(&who(BOTH)).await.unwrap(),
        user("from-configmap", &["cm"])
    );
    assert_eq!(
        crd_first.map(&who(BOTH)).await.unwrap(),
        user("from-crd", &["crd"])
    );
    // Each backend's own identities are found whatever the order.
    for chain in [&cm_first, &crd_first] {
        assert_eq!(chain.map(&who(CM_ONLY)).await.unwrap().username, "cm-only");
        assert_eq!(
            chain.map(&who(CRD_ONLY)).await.unwrap().username,
            "crd-only"
        );
        let denied = chain
            .map(&who("arn:aws:iam::123456789012:role/Nobody"))
            .await
            .unwrap_err();
        assert_eq!(denied.reason, "identity is not mapped");
    }
}

#[tokio::test]
async fn map_accounts_in_an_earlier_backend_wins() {
    let (_fake, cm, crd) = backends(&format!("- \"{ACCOUNT}\"\n")).await;
    // aws-auth first: its mapAccounts answers for an identity it has no entry for,
    // before the CRD's explicit mapping is consulted (upstream's order, kept).
    let cm_first = Chain::from_mappers(vec![cm.clone(), crd.clone()], BTreeMap::new(), None);
    assert_eq!(
        cm_first.map(&who(CRD_ONLY)).await.unwrap(),
        user(CRD_ONLY, &[])
    );
    // An explicit entry in the same backend still wins over its mapAccounts.
    assert_eq!(
        cm_first.map(&who(CM_ONLY)).await.unwrap(),
        user("cm-only", &[])
    );
    // CRD first: its explicit mapping answers.
    let crd_first = Chain::from_mappers(vec![crd, cm], BTreeMap::new(), None);
    assert_eq!(
        crd_first.map(&who(CRD_ONLY)).await.unwrap(),
        user("crd-only", &["crd"])
    );
    // An unmapped identity of the account gets its canonical ARN, no groups.
    let nobody = "arn:aws:iam::123456789012:role/Nobody";
    assert_eq!(
        crd_first.map(&who(nobody)).await.unwrap(),
        user(nobody, &[])
    );
    // Another account is not allowed.
    let mut stranger = who("arn:aws:iam::999999999999:role/Nobody");
    stranger.account_id = "999999999999".to_owned();
    assert!(crd_first.map(&stranger).await.is_err());
}

#[tokio::test]
async fn reserved_prefixes_apply_per_backend() {
    let (fake, cm, crd) = backends("").await;
    let prefixes = "[aws: eks: amazon: iam: system:]";
    // Reserved for EKSConfigMap only.
    let chain = Chain::from_mappers(
        vec![cm.clone(), crd.clone()],
        reserved(&[BackendMode::EksConfigMap]),
        None,
    );
    assert_eq!(
        chain.map(&who(CM_SYSTEM)).await.unwrap_err().reason,
        format!(
            "invalid username 'system:cm' for mapper EKSConfigMap: username must not begin with with the following prefixes: {prefixes}"
        )
    );
    assert_eq!(
        chain.map(&who(CRD_SYSTEM)).await.unwrap().username,
        "system:crd"
    );
    // Reserved for CRD only.
    let chain = Chain::from_mappers(
        vec![cm.clone(), crd.clone()],
        reserved(&[BackendMode::Crd]),
        None,
    );
    assert_eq!(
        chain.map(&who(CM_SYSTEM)).await.unwrap().username,
        "system:cm"
    );
    assert_eq!(
        chain.map(&who(CRD_SYSTEM)).await.unwrap_err().reason,
        format!(
            "invalid username 'system:crd' for mapper CRD: username must not begin with with the following prefixes: {prefixes}"
        )
    );
    // A denial by prefix does not fall through to the next backend.
    put_mapping(&fake, "cm-system-too", CM_SYSTEM, "fine");
    let crd_check = crd.clone();
    eventually("crd has the new mapping", || {
        crd_check.map(&who(CM_SYSTEM)).is_ok()
    })
    .await;
    let chain = Chain::from_mappers(
        vec![cm, crd],
        reserved(&[BackendMode::EksConfigMap, BackendMode::Crd]),
        None,
    );
    assert!(chain.map(&who(CM_SYSTEM)).await.is_err());
}

#[tokio::test]
async fn a_syncing_backend_does_not_block_the_others() {
    let synced = FakeKube::start().await;
    put_aws_auth(&synced, "");
    let cm: Arc<dyn Mapper> = Arc::new(ConfigMapMapper::spawn(synced.client()));

    // The CRD's API server fails its first list; the backend retries after a backoff.
    let syncing = FakeKube::start().await;
    put_mapping(&syncing, "crd-only", CRD_ONLY, "crd-only");
    syncing.fail_next(1);
    let crd: Arc<dyn Mapper> = Arc::new(CrdMapper::spawn(syncing.client()));

    // The CRD comes first in the chain and is not synced: aws-auth answers anyway.
    let chain = Chain::from_mappers(vec![crd.clone(), cm.clone()], BTreeMap::new(), None);
    eventually("aws-auth synced", || cm.is_ready()).await;
    eventually("the CRD's first list failed", || {
        !syncing.requests().is_empty()
    })
    .await;
    assert!(!crd.is_ready());
    assert!(
        !chain.is_ready(),
        "ready only once every backend has synced"
    );
    assert_eq!(chain.map(&who(CM_ONLY)).await.unwrap().username, "cm-only");
    assert_eq!(
        chain.map(&who(CRD_ONLY)).await.unwrap_err().reason,
        "identity is not mapped"
    );

    // After its retry the CRD is synced, and so is the chain.
    eventually("CRD synced", || crd.is_ready()).await;
    assert!(chain.is_ready());
    assert_eq!(
        chain.map(&who(CRD_ONLY)).await.unwrap().username,
        "crd-only"
    );
}

#[tokio::test]
async fn an_unreachable_api_server_never_makes_the_chain_ready() {
    // A port nothing listens on: the backend keeps retrying in the background.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    common::install_crypto_provider();
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let crd: Arc<dyn Mapper> = Arc::new(CrdMapper::spawn(client.clone()));
    let cm: Arc<dyn Mapper> = Arc::new(ConfigMapMapper::spawn(client));
    let chain = Chain::from_mappers(vec![cm, crd], BTreeMap::new(), None);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!chain.is_ready());
    // Lookups answer at once (nothing is mapped yet) instead of waiting for the API.
    let started = std::time::Instant::now();
    assert!(chain.map(&who(CM_ONLY)).await.is_err());
    assert!(started.elapsed() < Duration::from_millis(100));
}
