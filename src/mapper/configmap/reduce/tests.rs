use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::mapper::MapError;
use crate::mapper::configmap::data;
use crate::mapper::kube_watch::{Steps, check_steps};

fn tables(d: &BTreeMap<String, String>) -> (Tables, Vec<ParseIssue>) {
    let parsed = parse(d);
    let issues = parsed.issues.clone();
    (Tables::new(parsed.apply(&AwsAuth::default())), issues)
}

#[test]
fn user_arns_are_keyed_as_in_the_file_backends() {
    let (t, issues) = tables(&data(&[(
        "mapUsers",
        "- userarn: arn:aws:sts::555555555555:assumed-role/Deploy/ci\n  username: deploy\n- userarn: ARN:AWS:IAM::555555555555:USER/Path/Alice\n  username: alice\n- userarn: not an arn\n  username: nobody\n",
    )]));
    // The same ARN, the same key as MountedFile and DynamicFile give it.
    let file_key = |arn| crate::config::types::user_arn_key(arn).unwrap();
    assert_eq!(
        t.table
            .users()
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>(),
        [
            file_key("arn:aws:sts::555555555555:assumed-role/Deploy/ci"),
            file_key("ARN:AWS:IAM::555555555555:USER/Path/Alice"),
        ]
    );
    let found = |arn: &str| t.table.lookup(arn, false).map(|m| m.username);
    assert_eq!(
        found("arn:aws:iam::555555555555:role/Deploy").as_deref(),
        Ok("deploy")
    );
    assert_eq!(
        found("arn:aws:iam::555555555555:user/Path/Alice").as_deref(),
        Ok("alice")
    );
    assert_eq!(found("not an arn"), Err(MapError::NotMapped));
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(
        issues[0].to_string(),
        "mapUsers[2]: skipping invalid entry: arn 'not an arn' is invalid: 'arn: invalid prefix'"
    );
}

/// A ConfigMap `name` at resourceVersion `rv` whose `mapRoles` is `roles`.
fn cm(name: &str, rv: &str, roles: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("kube-system".to_owned()),
            resource_version: Some(rv.to_owned()),
            ..Default::default()
        },
        data: Some(data(&[
            ("mapRoles", roles),
            ("mapAccounts", "- \"111122223333\"\n"),
        ])),
        ..Default::default()
    }
}

fn role(n: &str) -> String {
    format!("- rolearn: arn:aws:iam::555555555555:role/{n}\n  username: {n}\n")
}

fn aws_auth(rv: &str, roles: &str) -> Event<ConfigMap> {
    Event::Apply(cm(NAME, rv, roles))
}

/// One effect, in a line a table can hold.
fn show(effect: &Effect) -> String {
    match effect {
        Effect::Report(issues) => format!(
            "report [{}]",
            issues
                .iter()
                .map(ParseIssue::entry)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Effect::SsoIgnored(index) => format!("sso-ignored {index}"),
        Effect::Loaded {
            tables,
            resource_version,
        } => format!(
            "load@{resource_version} {:?} {:?}",
            tables
                .source
                .roles
                .iter()
                .map(|r| r.username.as_str())
                .collect::<Vec<_>>(),
            tables.source.accounts,
        ),
        Effect::Cleared(tables) => {
            assert_eq!(tables.source, AwsAuth::default());
            assert!(tables.table.is_empty());
            "clear".to_owned()
        }
    }
}

fn check(name: &str, sso_role_match: bool, steps: Steps<ConfigMap>) {
    check_steps(name, State::new(sso_role_match), show, steps);
}

#[test]
fn event_sequences() {
    let loaded_a: &[&str] = &["report []", "load@1 [\"a\"] [\"111122223333\"]"];
    check(
        "the first listing is ready at InitDone only",
        false,
        vec![
            (Event::Init, &[], false),
            (Event::InitApply(cm(NAME, "1", &role("a"))), loaded_a, false),
            (Event::InitDone, &[], true),
        ],
    );
    let mut steps: Steps<ConfigMap> = vec![
        (Event::Init, &[], false),
        (Event::InitApply(cm(NAME, "1", &role("a"))), loaded_a, false),
        (Event::InitDone, &[], true),
    ];
    steps.extend([
        // Deleted while no watch was open: the relist drops it, at InitDone.
        (Event::Init, &[][..], true),
        (Event::InitDone, &["report []", "clear"][..], true),
        // Nothing to drop the next time.
        (Event::Init, &[][..], true),
        (Event::InitDone, &[][..], true),
    ]);
    check("a relist drops an object deleted meanwhile", false, steps);
    check(
        "a missing ConfigMap is ready and empty",
        false,
        vec![(Event::Init, &[], false), (Event::InitDone, &[], true)],
    );
    check(
        "a new version replaces, a deletion clears",
        false,
        vec![
            (Event::Init, &[], false),
            (Event::InitDone, &[], true),
            (
                aws_auth("2", &role("a")),
                &["report []", "load@2 [\"a\"] [\"111122223333\"]"],
                true,
            ),
            (
                aws_auth("3", &role("b")),
                &["report []", "load@3 [\"b\"] [\"111122223333\"]"],
                true,
            ),
            (
                Event::Delete(cm(NAME, "4", "")),
                &["report []", "clear"],
                true,
            ),
        ],
    );
}

#[test]
fn invalid_entries_are_reported_and_do_not_poison_the_others() {
    let broken_entry = format!("{}- rolarn: typo\n  username: x\n{}", role("a"), role("c"));
    check(
        "bad edits",
        false,
        vec![
            (
                aws_auth("1", &role("a")),
                &["report []", "load@1 [\"a\"] [\"111122223333\"]"],
                false,
            ),
            // One bad entry: skipped and reported, the others replace the section.
            (
                aws_auth("2", &broken_entry),
                &[
                    "report [mapRoles[1]]",
                    "load@2 [\"a\", \"c\"] [\"111122223333\"]",
                ],
                false,
            ),
            // An unreadable section keeps its previous mappings; the others still load.
            (
                Event::Apply(ConfigMap {
                    data: Some(data(&[("mapRoles", "- rolearn: [unclosed\n")])),
                    ..cm(NAME, "3", "")
                }),
                &["report [mapRoles]", "load@3 [\"a\", \"c\"] []"],
                false,
            ),
            // Fixed: the report is replaced by an empty one.
            (
                aws_auth("4", &role("d")),
                &["report []", "load@4 [\"d\"] [\"111122223333\"]"],
                false,
            ),
        ],
    );
}

#[test]
fn another_configmap_is_ignored() {
    check(
        "wrong name",
        false,
        vec![
            (Event::Init, &[], false),
            (
                Event::InitApply(cm("aws-auth-old", "1", &role("x"))),
                &[],
                false,
            ),
            // Not found: nothing to clear either.
            (Event::InitDone, &[], true),
            (
                aws_auth("2", &role("a")),
                &["report []", "load@2 [\"a\"] [\"111122223333\"]"],
                true,
            ),
            (Event::Apply(cm("other", "3", &role("x"))), &[], true),
            (Event::Delete(cm("other", "4", "")), &[], true),
            (Event::Init, &[], true),
            (Event::InitApply(cm("other", "5", &role("x"))), &[], true),
            // The relist found another ConfigMap, not aws-auth: aws-auth is gone.
            (Event::InitDone, &["report []", "clear"], true),
        ],
    );
}

#[test]
fn sso_entries_are_flagged_while_the_gate_is_off() {
    let roles = format!(
        "{}- sso:\n    permissionSetName: Admin\n    accountID: \"555555555555\"\n  username: admin\n",
        role("a")
    );
    const LOADED: &str = "load@1 [\"a\", \"admin\"] [\"111122223333\"]";
    check(
        "gate off",
        false,
        vec![(
            aws_auth("1", &roles),
            &["report []", "sso-ignored 1", LOADED],
            false,
        )],
    );
    check(
        "gate on",
        true,
        vec![(aws_auth("1", &roles), &["report []", LOADED], false)],
    );
}
