//! EKSConfigMap against a fake API server speaking the real list/watch protocol.
#![allow(clippy::unwrap_used)]

mod common;

use common::fake_k8s;
use common::wait::eventually;

use aws_iam_authenticator::identity::Identity;
use aws_iam_authenticator::mapper::configmap::{ConfigMapMapper, Settings};
use aws_iam_authenticator::mapper::metrics::MapperMetrics;
use aws_iam_authenticator::mapper::{MapError, Mapper};
use aws_iam_authenticator::metrics::{self, Registry};
use fake_k8s::{CONFIGMAPS, FakeKube};
use serde_json::{Value, json};

const NODE_ROLE: &str =
    "arn:aws:iam::555555555555:role/devel-worker-nodes-NodeInstanceRole-74RF4UBDUKL6";
const ADMIN: &str = "arn:aws:iam::555555555555:user/admin";

fn aws_auth(map_roles: &str, map_users: &str, map_accounts: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {"mapRoles": map_roles, "mapUsers": map_users, "mapAccounts": map_accounts}
    })
}

/// upstream's `aws-auth-crazy-case-keys.yaml`.
fn crazy_case() -> Value {
    serde_saphyr::from_str(include_str!(
        "../src/mapper/configmap/testdata/aws-auth-crazy-case-keys.yaml"
    ))
    .unwrap()
}

fn who(arn: &str) -> Identity {
    Identity {
        canonical_arn: arn.to_owned(),
        account_id: "555555555555".to_owned(),
        ..Default::default()
    }
}

/// The mapper, counting on a registry of its own.
fn spawn_counted(client: kube::Client) -> (ConfigMapMapper, MapperMetrics, Registry) {
    let mut root = metrics::registry();
    let counted = MapperMetrics::register(metrics::prefixed(&mut root));
    let m = ConfigMapMapper::spawn_with(client, Settings::default(), counted.clone());
    (m, counted, root)
}

fn username(m: &ConfigMapMapper, arn: &str) -> Option<String> {
    m.map(&who(arn)).ok().map(|m| m.username)
}

#[tokio::test]
async fn loads_crazy_case_keys_and_follows_edits_and_deletion() {
    let fake = FakeKube::start().await;
    fake.put(CONFIGMAPS, crazy_case());
    // Another ConfigMap in the namespace must not matter.
    fake.put(
        CONFIGMAPS,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "other", "namespace": "kube-system"},
               "data": {"mapRoles": "- rolearn: arn:aws:iam::1:role/x\n  username: x\n"}}),
    );
    let m = ConfigMapMapper::spawn(fake.client());
    eventually("ready", || m.is_ready()).await;

    let node = m.map(&who(NODE_ROLE)).unwrap();
    assert_eq!(node.username, "system:node:{{EC2PrivateDNSName}}");
    assert_eq!(node.groups, ["system:bootstrappers", "system:nodes"]);
    // Matching is case-insensitive on the canonical ARN.
    assert_eq!(
        username(
            &m,
            &ADMIN
                .to_ascii_uppercase()
                .replace("ARN:AWS:IAM", "arn:aws:iam")
        ),
        Some("admin".to_owned())
    );
    assert!(m.is_account_allowed("555555555555"));
    assert!(!m.is_account_allowed("111122223333"));
    assert_eq!(
        m.map(&who("arn:aws:iam::1:role/x")),
        Err(MapError::NotMapped)
    );

    // The list and the watch both asked for the one object (the watch starts just
    // after the list made the mapper ready).
    eventually("watching", || {
        fake.requests()
            .iter()
            .any(|r| r.query.contains("watch=true"))
    })
    .await;
    let reqs = fake.requests();
    assert!(
        reqs.iter()
            .filter(|r| r.path == CONFIGMAPS)
            .all(|r| r.query.contains("fieldSelector=metadata.name%3Daws-auth")),
        "{reqs:?}"
    );
    assert!(reqs.iter().any(|r| r.query.contains("watch=true")));

    // MODIFIED: a new user, the node role gone.
    fake.put(
        CONFIGMAPS,
        aws_auth(
            "",
            "- userarn: arn:aws:iam::555555555555:user/bob\n  username: bob\n",
            "",
        ),
    );
    eventually("edit applied", || {
        username(&m, "arn:aws:iam::555555555555:user/bob").is_some()
    })
    .await;
    assert_eq!(m.map(&who(NODE_ROLE)), Err(MapError::NotMapped));
    assert!(!m.is_account_allowed("555555555555"));

    // DELETED clears everything.
    fake.delete(CONFIGMAPS, "aws-auth");
    eventually("deletion applied", || {
        username(&m, "arn:aws:iam::555555555555:user/bob").is_none()
    })
    .await;

    // ADDED again.
    fake.put(CONFIGMAPS, crazy_case());
    eventually("re-creation applied", || username(&m, ADMIN).is_some()).await;
}

#[tokio::test]
async fn a_dropped_watch_reconnects() {
    let fake = FakeKube::start().await;
    fake.put(CONFIGMAPS, crazy_case());
    let (m, counted, _root) = spawn_counted(fake.client());
    eventually("ready", || m.is_ready()).await;
    let watches = || {
        fake.requests()
            .iter()
            .filter(|r| r.query.contains("watch=true"))
            .count()
    };
    eventually("first watch", || watches() == 1).await;

    fake.drop_watches();
    eventually("second watch", || watches() >= 2).await;
    fake.put(
        CONFIGMAPS,
        aws_auth(
            "- rolearn: arn:aws:iam::555555555555:role/after-reconnect\n  username: later\n",
            "",
            "",
        ),
    );
    eventually("edit after reconnect applied", || {
        username(&m, "arn:aws:iam::555555555555:role/after-reconnect").is_some()
    })
    .await;
    // The re-watch resumed from the last resourceVersion seen (no re-list needed).
    let lists = fake
        .requests()
        .iter()
        .filter(|r| r.path == CONFIGMAPS && !r.query.contains("watch=true"))
        .count();
    assert_eq!(lists, 1);

    // A drop whose re-watch fails is counted, retried after a backoff, and recovers.
    assert_eq!(counted.configmap_watch_failures(), 0);
    let seen = watches();
    fake.fail_next(1);
    fake.drop_watches();
    eventually("the failure is counted", || {
        counted.configmap_watch_failures() > 0
    })
    .await;
    eventually("watching again", || watches() > seen).await;
    fake.put(
        CONFIGMAPS,
        aws_auth(
            "- rolearn: arn:aws:iam::555555555555:role/after-failure\n  username: recovered\n",
            "",
            "",
        ),
    );
    eventually("edit after the failed reconnect applied", || {
        username(&m, "arn:aws:iam::555555555555:role/after-failure").is_some()
    })
    .await;
}

#[tokio::test]
async fn a_failed_list_is_counted_and_retried() {
    let fake = FakeKube::start().await;
    fake.put(CONFIGMAPS, crazy_case());
    fake.fail_next(1);
    let (m, _, root) = spawn_counted(fake.client());
    eventually("ready after a retry", || m.is_ready()).await;
    let text = metrics::encode(&root);
    let failures = "aws_iam_authenticator_configmap_watch_failures_total";
    assert_eq!(metrics::sample(&text, failures, ""), Some(1.0), "{text}");
    assert_eq!(username(&m, ADMIN), Some("admin".to_owned()));
}

#[tokio::test]
async fn the_last_good_section_survives_a_bad_edit() {
    let fake = FakeKube::start().await;
    fake.put(CONFIGMAPS, crazy_case());
    let (m, _, root) = spawn_counted(fake.client());
    eventually("ready", || m.is_ready()).await;

    // mapRoles: unquoted {{SessionName}} is a YAML syntax error (the whole section is
    // unreadable). mapUsers: one typo'd entry and one good one. mapAccounts: unchanged.
    fake.put(
        CONFIGMAPS,
        aws_auth(
            "- rolearn: arn:aws:iam::555555555555:role/new\n  username: {{SessionName}}\n",
            "- usrarn: arn:aws:iam::555555555555:user/admin\n  username: admin\n- userarn: arn:aws:iam::555555555555:user/carol\n  username: carol\n",
            "- 555555555555\n",
        ),
    );
    eventually("edit applied", || {
        username(&m, "arn:aws:iam::555555555555:user/carol").is_some()
    })
    .await;
    // The unreadable section kept its last good mappings …
    assert_eq!(
        username(&m, NODE_ROLE),
        Some("system:node:{{EC2PrivateDNSName}}".to_owned())
    );
    // … while the readable one took the edit, minus the invalid entry.
    assert_eq!(m.map(&who(ADMIN)), Err(MapError::NotMapped));
    assert!(m.is_account_allowed("555555555555"));

    let text = metrics::encode(&root);
    let exact = |name: &str, labels: &str| metrics::sample(&text, name, labels);
    let backend = r#"backend="EKSConfigMap""#;
    assert_eq!(
        exact(
            "aws_iam_authenticator_mapping_reload_failures_total",
            backend
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        exact("aws_iam_authenticator_mapping_invalid_entries", backend),
        Some(2.0),
        "{text}"
    );
    // The metric names what is not in force: the unreadable section and the bad entry.
    for entry in ["mapRoles", "mapUsers[0]"] {
        let labels = format!(r#"{backend},entry="{entry}""#);
        let series = exact("aws_iam_authenticator_mapping_invalid_entry", &labels);
        assert_eq!(series, Some(1.0), "{entry} in {text}");
    }

    // A fixed edit applies in full.
    fake.put(
        CONFIGMAPS,
        aws_auth(
            "- rolearn: arn:aws:iam::555555555555:role/new\n  username: \"{{SessionName}}\"\n",
            "",
            "",
        ),
    );
    eventually("fix applied", || {
        username(&m, "arn:aws:iam::555555555555:role/new").is_some()
    })
    .await;
    assert_eq!(m.map(&who(NODE_ROLE)), Err(MapError::NotMapped));
    // … and the flagged entries are gone.
    let text = metrics::encode(&root);
    assert!(
        !text.contains("mapping_invalid_entry{backend=\"EKSConfigMap\""),
        "{text}"
    );
}

#[tokio::test]
async fn role_arns_with_paths_match_their_role() {
    let fake = FakeKube::start().await;
    fake.put(
        CONFIGMAPS,
        aws_auth(
            "- rolearn: arn:aws:iam::555555555555:role/team/ops/Admin\n  username: ops-admin\n  groups: [ops]\n",
            "",
            "",
        ),
    );
    let m = ConfigMapMapper::spawn(fake.client());
    eventually("ready", || m.is_ready()).await;
    // STS's assumed-role ARN carries no path, so the canonical ARN is role/Admin.
    assert_eq!(
        username(&m, "arn:aws:iam::555555555555:role/Admin"),
        Some("ops-admin".to_owned())
    );
}

#[tokio::test]
async fn a_missing_configmap_is_ready_and_empty() {
    let fake = FakeKube::start().await;
    let m = ConfigMapMapper::spawn(fake.client());
    eventually("ready", || m.is_ready()).await;
    assert_eq!(m.map(&who(ADMIN)), Err(MapError::NotMapped));
    fake.put(CONFIGMAPS, crazy_case());
    eventually("created later", || username(&m, ADMIN).is_some()).await;
}

#[test]
fn the_shipped_example_parses_cleanly() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/aws-auth-example.yaml");
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(cm.metadata.name.as_deref(), Some("aws-auth"));
    assert_eq!(cm.metadata.namespace.as_deref(), Some("kube-system"));
    let auth = aws_iam_authenticator::mapper::configmap::parse(&cm.data.unwrap())
        .into_strict()
        .unwrap();
    assert_eq!(auth.roles.len(), 3);
    assert_eq!(auth.users.len(), 1);
    assert_eq!(auth.accounts, ["444455556666"]);
}

#[tokio::test]
async fn upstream_fixture_shapes_through_the_api() {
    let fake = FakeKube::start().await;
    // aws-auth-space-out-of-place.yaml: the mis-indented group continues the first
    // scalar; mapUsers `""` and mapAccounts two backticks are empty values.
    fake.put(
        CONFIGMAPS,
        aws_auth(
            "- rolearn: arn:aws:iam::555555555555:role/devel-worker-nodes-NodeInstanceRole-74RF4UBDUKL6\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n     - system:nodes\n",
            "\"\"",
            "``",
        ),
    );
    let m = ConfigMapMapper::spawn(fake.client());
    eventually("ready", || m.is_ready()).await;
    assert_eq!(
        m.map(&who(NODE_ROLE)).unwrap().groups,
        ["system:bootstrappers - system:nodes"]
    );
    assert!(!m.is_account_allowed("555555555555"));
    assert_eq!(m.map(&who(ADMIN)), Err(MapError::NotMapped));
    assert_eq!(m.mappings().users.len(), 0);
}

/// An `aws-auth` with IAM Identity Center roles: permission set `Admin` in the `aws`
/// partition (implicit), `Admin_ReadOnly`, and `View` in `aws-us-gov` (explicit).
fn sso_aws_auth() -> Value {
    aws_auth(
        "- sso:\n    permissionSetName: Admin\n    accountID: \"555555555555\"\n  username: admin:{{SessionName}}\n  groups: [admins]\n\
         - sso:\n    permissionSetName: Admin_ReadOnly\n    accountID: \"555555555555\"\n  username: ro:{{SessionName}}\n\
         - sso:\n    permissionSetName: View\n    accountID: \"555555555555\"\n    partition: aws-us-gov\n  username: gov-view\n",
        "",
        "",
    )
}

const SSO_ADMIN: &str = "arn:aws:iam::555555555555:role/AWSReservedSSO_Admin_0123456789abcdef";
const SSO_READONLY: &str =
    "arn:aws:iam::555555555555:role/AWSReservedSSO_Admin_ReadOnly_fedcba9876543210";
const SSO_GOV_VIEW: &str =
    "arn:aws-us-gov:iam::555555555555:role/AWSReservedSSO_View_00112233aabbccdd";

#[tokio::test]
async fn sso_roles_match_only_behind_the_gate() {
    let fake = FakeKube::start().await;
    fake.put(CONFIGMAPS, sso_aws_auth());

    let off = ConfigMapMapper::spawn(fake.client());
    eventually("ready", || off.is_ready()).await;
    assert_eq!(off.mappings().roles.len(), 3, "the entries are valid");
    for arn in [SSO_ADMIN, SSO_READONLY, SSO_GOV_VIEW] {
        assert_eq!(off.map(&who(arn)), Err(MapError::NotMapped), "{arn}");
    }

    let on = ConfigMapMapper::spawn_with(
        fake.client(),
        Settings {
            sso_role_match: true,
        },
        MapperMetrics::default(),
    );
    eventually("ready", || on.is_ready()).await;
    let admin = on.map(&who(SSO_ADMIN)).unwrap();
    assert_eq!(admin.username, "admin:{{SessionName}}");
    assert_eq!(admin.groups, ["admins"]);
    // Matching is case-insensitive, like every ARN comparison.
    assert!(on.map(&who(&SSO_ADMIN.to_ascii_lowercase())).is_ok());
    // upstream's ArnLike pattern `AWSReservedSSO_Admin_*` would give Admin_ReadOnly's
    // roles to the first (Admin) entry; each role belongs to its own permission set.
    assert_eq!(
        on.map(&who(SSO_READONLY)).unwrap().username,
        "ro:{{SessionName}}"
    );
    // upstream drops any explicit partition (pattern `arn::iam::…`); it works here.
    assert_eq!(on.map(&who(SSO_GOV_VIEW)).unwrap().username, "gov-view");
    // Another account, another partition, or no suffix: not matched.
    for arn in [
        "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123456789abcdef",
        "arn:aws-us-gov:iam::555555555555:role/AWSReservedSSO_Admin_0123456789abcdef",
        "arn:aws:iam::555555555555:role/AWSReservedSSO_View_00112233aabbccdd",
        "arn:aws:iam::555555555555:role/AWSReservedSSO_Admin_",
    ] {
        assert_eq!(on.map(&who(arn)), Err(MapError::NotMapped), "{arn}");
    }
}
