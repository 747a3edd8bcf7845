use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::mapper::crd::types::{IamIdentityMappingSpec, IamIdentityMappingStatus};
use crate::mapper::kube_watch::{Steps as Table, check_steps};

const ACCOUNT: &str = "arn:aws:iam::123456789012:";

/// An object `name` mapping `arn` (`role/A` is short for the account's role `A`), its
/// status recording `status`.
fn obj(name: &str, arn: &str, status: Option<&str>) -> IamIdentityMapping {
    let full = |a: &str| {
        if a.starts_with("arn:") || !a.contains('/') {
            a.to_owned()
        } else {
            format!("{ACCOUNT}{a}")
        }
    };
    IamIdentityMapping {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: IamIdentityMappingSpec {
            arn: full(arn),
            username: "u".to_owned(),
            groups: vec![],
        },
        status: status.map(|s| IamIdentityMappingStatus {
            canonical_arn: Some(full(s)),
            user_id: None,
        }),
    }
}

/// One effect, in a line a table can hold (keys without the account's prefix).
fn show(effect: &Effect) -> String {
    let short = |key: &str| key.strip_prefix(ACCOUNT).unwrap_or(key).to_owned();
    match effect {
        Effect::Publish(objects) => {
            let rows: Vec<String> = objects
                .entries
                .iter()
                .map(|(name, e)| format!("{name}={}", short(&e.key)))
                .collect();
            assert_eq!(
                objects.table.users().len(),
                rows.len(),
                "every entry indexed"
            );
            format!("publish [{}]", rows.join(" "))
        }
        Effect::Status(job) => {
            assert!(job.synced);
            let arn = job.patch["status"]["canonicalARN"].as_str().unwrap_or("");
            assert_eq!(job.patch["status"]["userID"], serde_json::Value::Null);
            format!("sync {} {}", job.name, short(arn))
        }
        Effect::Invalid { name, .. } => format!("invalid {name}"),
        Effect::Deleted(name) => format!("deleted {name}"),
    }
}

type Steps = Table<IamIdentityMapping>;

fn check(name: &str, steps: Steps) {
    check_steps(name, State::default(), show, steps);
}

/// The first listing of `a` (to sync), `b` (invalid) and `c` (synced).
fn first_listing() -> Steps {
    vec![
        (Event::Init, &[], false),
        (
            Event::InitApply(obj("a", "role/A", None)),
            &["sync a role/a"],
            false,
        ),
        (
            Event::InitApply(obj("b", "nope", None)),
            &["invalid b"],
            false,
        ),
        (
            Event::InitApply(obj("c", "role/C", Some("role/c"))),
            &[],
            false,
        ),
        (Event::InitDone, &["publish [a=role/a c=role/c]"], true),
    ]
}

#[test]
fn the_first_listing_is_published_and_ready_at_init_done() {
    check("first listing", first_listing());
}

#[test]
fn a_relist_drops_what_was_deleted_meanwhile_at_init_done() {
    let mut steps = first_listing();
    steps.extend::<Steps>(vec![
        // Until the listing completes, the old objects stay in force.
        (Event::Init, &[], true),
        (
            Event::InitApply(obj("a", "role/A", Some("role/a"))),
            &[],
            true,
        ),
        (Event::InitDone, &["publish [a=role/a]"], true),
    ]);
    check("relist", steps);
}

#[test]
fn apply_replaces_delete_removes_and_status_is_written_when_it_differs() {
    let mut steps = first_listing();
    steps.extend::<Steps>(vec![
        // A new ARN: a new key, and its status to write.
        (
            Event::Apply(obj("a", "role/B", Some("role/a"))),
            &["publish [a=role/b c=role/c]", "sync a role/b"],
            true,
        ),
        // Our own write coming back: the status agrees, nothing to write.
        (
            Event::Apply(obj("a", "role/B", Some("role/b"))),
            &["publish [a=role/b c=role/c]"],
            true,
        ),
        // The recorded key is the canonical form, not the spelling of spec.arn.
        (
            Event::Apply(obj(
                "s",
                "arn:aws:sts::123456789012:assumed-role/Admin/session",
                Some("role/admin"),
            )),
            &["publish [a=role/b c=role/c s=role/admin]"],
            true,
        ),
        (
            Event::Delete(obj("a", "role/B", Some("role/b"))),
            &["deleted a", "publish [c=role/c s=role/admin]"],
            true,
        ),
    ]);
    check("apply and delete", steps);
}

#[test]
fn an_invalid_object_is_reported_and_maps_nothing_while_the_others_stay() {
    let mut steps = first_listing();
    steps.extend::<Steps>(vec![
        // c's new version is broken: its previous mapping goes, a stays.
        (
            Event::Apply(obj("c", "not an arn", Some("role/c"))),
            &["publish [a=role/a]", "invalid c"],
            true,
        ),
        // b fixed.
        (
            Event::Apply(obj("b", "role/B", None)),
            &["publish [a=role/a b=role/b]", "sync b role/b"],
            true,
        ),
    ]);
    check("invalid", steps);
}

fn entry(revision: u64, user_id: Option<&str>) -> Entry {
    Entry {
        key: format!("{ACCOUNT}role/a"),
        username: "u".to_owned(),
        groups: vec![],
        user_id: user_id.map(str::to_owned),
        revision,
    }
}

#[test]
fn a_user_id_is_queued_once_per_entry_version_and_principal() {
    let mut ids = UserIds::default();
    let written = |job: Option<StatusJob>| {
        job.map(|j| {
            assert!(!j.synced);
            j.patch["status"]["userID"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
    };
    let v1 = entry(1, None);
    assert_eq!(
        written(ids.record("a", &v1, "")),
        None,
        "no id, nothing to record"
    );
    assert_eq!(
        written(ids.record("a", &v1, "AROA1")).as_deref(),
        Some("AROA1")
    );
    assert_eq!(
        written(ids.record("a", &v1, "AROA1")),
        None,
        "queued already"
    );
    assert_eq!(
        written(ids.record("b", &v1, "AROA1")).as_deref(),
        Some("AROA1"),
        "per object"
    );
    assert_eq!(
        written(ids.record("a", &v1, "AROA2")).as_deref(),
        Some("AROA2"),
        "another principal"
    );
    // The status shows it: nothing to write.
    assert_eq!(
        written(ids.record("a", &entry(2, Some("AROA2")), "AROA2")),
        None
    );
    // A new version of the object is judged by its own status.
    let v3 = entry(3, None);
    assert_eq!(
        written(ids.record("a", &v3, "AROA2")).as_deref(),
        Some("AROA2")
    );
    // Publishing forgets what the new objects replaced, and keeps what they did not.
    let objects = Objects::new(BTreeMap::from([("a".to_owned(), v3.clone())]));
    ids.retain(&objects);
    assert_eq!(ids.0.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(written(ids.record("a", &v3, "AROA2")), None);
    ids.retain(&Objects::default());
    assert!(ids.0.is_empty());
}
