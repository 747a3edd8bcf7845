//! The CRD backend against a fake API server, and the manifest/type drift check.
#![allow(clippy::unwrap_used)]

mod common;

use common::fake_k8s;
use common::wait::eventually;
use std::collections::BTreeSet;
use std::time::Duration;

use aws_iam_authenticator::identity::Identity;
use aws_iam_authenticator::mapper::crd::{
    self, CrdMapper, IamIdentityMapping, IamIdentityMappingSpec, IamIdentityMappingStatus,
};
use aws_iam_authenticator::mapper::{MapError, Mapper};
use fake_k8s::{FakeKube, MAPPINGS};
use kube::Resource;
use serde_json::{Value, json};

fn mapping(name: &str, arn: &str, username: &str) -> Value {
    json!({
        "apiVersion": "iamauthenticator.k8s.aws/v1alpha1", "kind": "IAMIdentityMapping",
        "metadata": {"name": name},
        "spec": {"arn": arn, "username": username, "groups": ["view"]}
    })
}

fn who(arn: &str) -> Identity {
    Identity {
        canonical_arn: arn.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_writes_status_and_an_event_then_maps_and_delete_unmaps() {
    let fake = FakeKube::start().await;
    let m = CrdMapper::spawn(fake.client());
    eventually("ready", || m.is_ready()).await;
    assert_eq!(
        m.map(&who("arn:aws:iam::123456789012:role/K8s-View-Role")),
        Err(MapError::NotMapped)
    );

    fake.put(
        MAPPINGS,
        mapping(
            "kubernetes-admin",
            "arn:aws:iam::123456789012:role/K8s-View-Role",
            "john",
        ),
    );
    eventually("status written", || {
        fake.get(MAPPINGS, "kubernetes-admin").unwrap()["status"]["canonicalARN"]
            == "arn:aws:iam::123456789012:role/k8s-view-role"
    })
    .await;
    let mapped = m
        .map(&who("arn:aws:iam::123456789012:role/K8s-View-Role"))
        .unwrap();
    assert_eq!(mapped.username, "john");
    assert_eq!(mapped.groups, ["view"]);
    assert!(!m.is_account_allowed("123456789012"));

    // The status went through the status subresource as a merge patch.
    let reqs = fake.requests();
    let patch = reqs
        .iter()
        .find(|r| r.method == "PATCH")
        .expect("a status patch");
    assert_eq!(patch.path, format!("{MAPPINGS}/kubernetes-admin/status"));
    assert_eq!(patch.content_type, "application/merge-patch+json");
    // Exactly one write: our own status change does not trigger another.
    eventually("event recorded", || {
        !fake.list("/api/v1/namespaces/default/events").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .count(),
        1
    );
    let events = fake.list("/api/v1/namespaces/default/events");
    assert_eq!(events.len(), 1);
    let ev = &events[0];
    assert_eq!(ev["reason"], "Synced");
    assert_eq!(ev["message"], "Identity synced successfully");
    assert_eq!(ev["source"]["component"], "aws-iam-authenticator");
    assert_eq!(ev["involvedObject"]["kind"], "IAMIdentityMapping");
    assert_eq!(ev["involvedObject"]["name"], "kubernetes-admin");

    // The first request mapped through the object records the principal's id, once.
    let mut caller = who("arn:aws:iam::123456789012:role/K8s-View-Role");
    caller.user_id = "AROAEXAMPLEID".to_owned();
    m.map(&caller).unwrap();
    m.map(&caller).unwrap();
    eventually("userID written", || {
        fake.get(MAPPINGS, "kubernetes-admin").unwrap()["status"]["userID"] == "AROAEXAMPLEID"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    m.map(&caller).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let patches = || {
        fake.requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .count()
    };
    assert_eq!(patches(), 2);
    // Recording the id is not a sync: still one Synced event.
    assert_eq!(fake.list("/api/v1/namespaces/default/events").len(), 1);

    // A changed ARN moves the mapping.
    fake.put(
        MAPPINGS,
        mapping(
            "kubernetes-admin",
            "arn:aws:iam::123456789012:user/John",
            "john",
        ),
    );
    eventually("edit applied", || {
        m.map(&who("arn:aws:iam::123456789012:user/John")).is_ok()
    })
    .await;
    assert_eq!(
        m.map(&who("arn:aws:iam::123456789012:role/K8s-View-Role")),
        Err(MapError::NotMapped)
    );
    // … with a new canonical ARN and without the old principal's id.
    eventually("status rewritten", || {
        let status = &fake.get(MAPPINGS, "kubernetes-admin").unwrap()["status"];
        status["canonicalARN"] == "arn:aws:iam::123456789012:user/john"
            && status.get("userID").is_none()
    })
    .await;

    fake.delete(MAPPINGS, "kubernetes-admin");
    eventually("deletion applied", || m.is_empty()).await;
    assert_eq!(
        m.map(&who("arn:aws:iam::123456789012:user/John")),
        Err(MapError::NotMapped)
    );
}

#[tokio::test]
async fn existing_objects_are_listed_and_bad_arns_ignored() {
    let fake = FakeKube::start().await;
    fake.put(
        MAPPINGS,
        mapping("a", "arn:aws:iam::123456789012:role/path/to/Ops", "ops"),
    );
    fake.put(MAPPINGS, mapping("b", "not-an-arn", "nobody"));
    let m = CrdMapper::spawn(fake.client());
    eventually("ready", || m.is_ready()).await;
    assert_eq!(m.len(), 1);
    assert_eq!(
        m.map(&who("arn:aws:iam::123456789012:role/Ops"))
            .unwrap()
            .username,
        "ops"
    );
    // A reconnect re-lists nothing new and keeps the state.
    fake.drop_watches();
    fake.put(
        MAPPINGS,
        mapping("c", "arn:aws:iam::123456789012:user/carol", "carol"),
    );
    eventually("after reconnect", || {
        m.map(&who("arn:aws:iam::123456789012:user/carol")).is_ok()
    })
    .await;
}

fn manifest() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/iamidentitymapping.yaml"
    );
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn the_manifest_matches_the_rust_type() {
    let crd = manifest();
    assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    let spec = &crd["spec"];
    assert_eq!(spec["group"], IamIdentityMapping::group(&()).as_ref());
    assert_eq!(
        spec["names"]["kind"],
        IamIdentityMapping::kind(&()).as_ref()
    );
    assert_eq!(
        spec["names"]["plural"],
        IamIdentityMapping::plural(&()).as_ref()
    );
    assert_eq!(
        crd["metadata"]["name"],
        format!("{}.{}", crd::PLURAL, crd::GROUP)
    );
    // Cluster-scoped: no namespace in the Rust type's URL either.
    assert_eq!(spec["scope"], "Cluster");
    assert!(!IamIdentityMapping::url_path(&(), None).contains("namespaces"));
    let versions = spec["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    let v = &versions[0];
    assert_eq!(v["name"], IamIdentityMapping::version(&()).as_ref());
    assert_eq!(v["subresources"]["status"], json!({}));

    let schema = &v["schema"]["openAPIV3Schema"]["properties"];
    // spec: the same fields, the same required ones.
    let spec_schema = &schema["spec"];
    let full_spec = serde_json::to_value(IamIdentityMappingSpec {
        arn: "a".into(),
        username: "u".into(),
        groups: vec!["g".into()],
    })
    .unwrap();
    assert_eq!(keys(&spec_schema["properties"]), keys(&full_spec));
    let required: BTreeSet<String> = spec_schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    for field in keys(&full_spec) {
        let mut without = full_spec.clone();
        without.as_object_mut().unwrap().remove(&field);
        let accepted = serde_json::from_value::<IamIdentityMappingSpec>(without).is_ok();
        assert_eq!(
            accepted,
            !required.contains(&field),
            "field {field}: the manifest and the Rust type disagree on whether it is required"
        );
    }
    for (field, ty) in [
        ("arn", "string"),
        ("username", "string"),
        ("groups", "array"),
    ] {
        assert_eq!(spec_schema["properties"][field]["type"], ty, "{field}");
    }
    // status: the same fields.
    let full_status = serde_json::to_value(IamIdentityMappingStatus {
        canonical_arn: Some("c".into()),
        user_id: Some("u".into()),
    })
    .unwrap();
    assert_eq!(keys(&schema["status"]["properties"]), keys(&full_status));
}

#[test]
fn upstream_style_objects_deserialize() {
    // The shape operators write (from the Charmed Kubernetes docs).
    let obj: IamIdentityMapping = serde_saphyr::from_str(
        "apiVersion: iamauthenticator.k8s.aws/v1alpha1\nkind: IAMIdentityMapping\nmetadata:\n  name: kubernetes-admin\nspec:\n  arn: arn:aws:iam::xxxxx:role/k8s-view-role\n  username: john\n  groups:\n  - view\n",
    )
    .unwrap();
    assert_eq!(obj.spec.username, "john");
    assert_eq!(obj.spec.groups, ["view"]);
    assert!(obj.status.is_none());
}
