use super::*;
use crate::config::types::BackendMode::{Crd, DynamicFile, EksConfigMap, MountedFile};
use crate::mapper::IdentityMapping;

/// canonical ARN → (username, groups) or a refusal.
type FakeEntry = (
    &'static str,
    Result<(&'static str, Vec<&'static str>), &'static str>,
);
/// name, chain, identity, expected answer.
type Case = (
    &'static str,
    Vec<Arc<dyn Mapper>>,
    Identity,
    Result<MappedUser, Denied>,
);

/// A backend answering from a fixed table.
#[derive(Debug)]
struct Fake {
    mode: BackendMode,
    /// canonical ARN → (username, groups) or a refusal.
    entries: Vec<FakeEntry>,
    accounts: Vec<&'static str>,
}

impl Mapper for Fake {
    fn mode(&self) -> BackendMode {
        self.mode
    }
    fn map(&self, identity: &Identity) -> Result<IdentityMapping, MapError> {
        match self
            .entries
            .iter()
            .find(|(arn, _)| *arn == identity.canonical_arn)
        {
            Some((arn, Ok((u, g)))) => Ok(IdentityMapping {
                key: arn.to_string(),
                username: u.to_string(),
                groups: g.iter().map(|s| s.to_string()).collect(),
            }),
            Some((_, Err(e))) => Err(MapError::Refused(e.to_string())),
            None => Err(MapError::NotMapped),
        }
    }
    fn is_account_allowed(&self, account: &str) -> bool {
        self.accounts.contains(&account)
    }
}

fn fake(
    mode: BackendMode,
    entries: Vec<FakeEntry>,
    accounts: Vec<&'static str>,
) -> Arc<dyn Mapper> {
    Arc::new(Fake {
        mode,
        entries,
        accounts,
    })
}

const ALICE: &str = "arn:aws:iam::123456789012:role/Alice";
const BOB: &str = "arn:aws:iam::123456789012:user/Bob";

fn identity(arn: &str, account: &str) -> Identity {
    Identity {
        arn: arn.into(),
        canonical_arn: arn.into(),
        account_id: account.into(),
        user_id: "AROAEXAMPLE".into(),
        session_name: "alice@example.com".into(),
        access_key_id: "ASIAKEY".into(),
        ..Default::default()
    }
}

fn reserved() -> BTreeMap<BackendMode, Vec<String>> {
    let list: Vec<String> = ["aws:", "eks:", "amazon:", "iam:", "system:", ""]
        .iter()
        .map(|s| s.to_string())
        .collect();
    [(MountedFile, list.clone()), (DynamicFile, list)].into()
}

fn ok(u: &str, g: &[&str]) -> Result<MappedUser, Denied> {
    Ok(MappedUser {
        username: u.into(),
        groups: g.iter().map(|s| s.to_string()).collect(),
    })
}

fn denied(reason: &str) -> Result<MappedUser, Denied> {
    Err(Denied {
        reason: reason.into(),
    })
}

#[tokio::test]
async fn do_mapping_table() {
    let cases: Vec<Case> = vec![
        (
            "first backend wins",
            vec![
                fake(
                    MountedFile,
                    vec![(ALICE, Ok(("first", vec!["g1"])))],
                    vec![],
                ),
                fake(DynamicFile, vec![(ALICE, Ok(("second", vec![])))], vec![]),
            ],
            identity(ALICE, "123456789012"),
            ok("first", &["g1"]),
        ),
        (
            "order is the configured order",
            vec![
                fake(DynamicFile, vec![(ALICE, Ok(("second", vec![])))], vec![]),
                fake(
                    MountedFile,
                    vec![(ALICE, Ok(("first", vec!["g1"])))],
                    vec![],
                ),
            ],
            identity(ALICE, "123456789012"),
            ok("second", &[]),
        ),
        (
            "later backend is asked when the first does not know the identity",
            vec![
                fake(MountedFile, vec![], vec![]),
                fake(DynamicFile, vec![(BOB, Ok(("bob", vec!["devs"])))], vec![]),
            ],
            identity(BOB, "123456789012"),
            ok("bob", &["devs"]),
        ),
        (
            "account in an earlier backend wins over a later explicit mapping",
            vec![
                fake(MountedFile, vec![], vec!["123456789012"]),
                fake(DynamicFile, vec![(ALICE, Ok(("alice", vec!["g"])))], vec![]),
            ],
            identity(ALICE, "123456789012"),
            ok(ALICE, &[]),
        ),
        (
            "explicit mapping in the same backend wins over its account",
            vec![fake(
                MountedFile,
                vec![(ALICE, Ok(("alice", vec!["g"])))],
                vec!["123456789012"],
            )],
            identity(ALICE, "123456789012"),
            ok("alice", &["g"]),
        ),
        (
            "account in a later backend",
            vec![
                fake(MountedFile, vec![], vec![]),
                fake(DynamicFile, vec![], vec!["123456789012"]),
            ],
            identity(ALICE, "123456789012"),
            ok(ALICE, &[]),
        ),
        (
            "unmapped",
            vec![fake(MountedFile, vec![], vec!["999999999999"])],
            identity(ALICE, "123456789012"),
            denied("identity is not mapped"),
        ),
        (
            "no backends",
            vec![],
            identity(ALICE, "123456789012"),
            denied("identity is not mapped"),
        ),
        (
            "a refusal is collected and the chain goes on",
            vec![
                fake(
                    DynamicFile,
                    vec![(ALICE, Err("ARN does not match User ID"))],
                    vec![],
                ),
                fake(MountedFile, vec![(ALICE, Ok(("alice", vec![])))], vec![]),
            ],
            identity(ALICE, "123456789012"),
            ok("alice", &[]),
        ),
        (
            "a refusal in the same backend does not stop its account fallback",
            vec![fake(
                DynamicFile,
                vec![(ALICE, Err("ARN does not match User ID"))],
                vec!["123456789012"],
            )],
            identity(ALICE, "123456789012"),
            ok(ALICE, &[]),
        ),
        (
            "one refusal",
            vec![fake(
                DynamicFile,
                vec![(ALICE, Err("ARN does not match User ID"))],
                vec![],
            )],
            identity(ALICE, "123456789012"),
            denied("mapper DynamicFile Map error: ARN does not match User ID"),
        ),
        (
            "refusals are aggregated",
            vec![
                fake(DynamicFile, vec![(ALICE, Err("nope"))], vec![]),
                fake(Crd, vec![(ALICE, Err("no way"))], vec![]),
            ],
            identity(ALICE, "123456789012"),
            denied("[mapper DynamicFile Map error: nope, mapper CRD Map error: no way]"),
        ),
        (
            "templates are rendered",
            vec![fake(
                MountedFile,
                vec![(
                    ALICE,
                    Ok((
                        "u:{{SessionName}}",
                        vec!["{{AccountID}}", "{{SessionNameRaw}}"],
                    )),
                )],
                vec![],
            )],
            identity(ALICE, "123456789012"),
            ok(
                "u:alice-example.com",
                &["123456789012", "alice@example.com"],
            ),
        ),
        (
            "username render error denies, no fallthrough",
            vec![
                fake(
                    MountedFile,
                    vec![(ALICE, Ok(("{{EC2PrivateDNSName}}", vec![])))],
                    vec![],
                ),
                fake(DynamicFile, vec![(ALICE, Ok(("alice", vec![])))], vec![]),
            ],
            identity(ALICE, "123456789012"),
            denied(
                "mapper MountedFile renderTemplates error: error rendering username template \"{{EC2PrivateDNSName}}\": SessionName did not contain an instance id",
            ),
        ),
        (
            "group render error denies",
            vec![fake(
                MountedFile,
                vec![(ALICE, Ok(("alice", vec!["node:{{EC2PrivateDNSName}}"])))],
                vec![],
            )],
            identity(ALICE, "123456789012"),
            denied(
                "mapper MountedFile renderTemplates error: error rendering group template \"node:{{EC2PrivateDNSName}}\": SessionName did not contain an instance id",
            ),
        ),
        (
            "reserved prefix system: denies, no fallthrough",
            vec![
                fake(
                    MountedFile,
                    vec![(ALICE, Ok(("system:masters", vec![])))],
                    vec![],
                ),
                fake(Crd, vec![(ALICE, Ok(("alice", vec![])))], vec![]),
            ],
            identity(ALICE, "123456789012"),
            denied(
                "invalid username 'system:masters' for mapper MountedFile: username must not begin with with the following prefixes: [aws: eks: amazon: iam: system: ]",
            ),
        ),
        (
            "reserved prefix eks:",
            vec![fake(
                DynamicFile,
                vec![(ALICE, Ok(("eks:test", vec![])))],
                vec![],
            )],
            identity(ALICE, "123456789012"),
            denied(
                "invalid username 'eks:test' for mapper DynamicFile: username must not begin with with the following prefixes: [aws: eks: amazon: iam: system: ]",
            ),
        ),
        (
            "test is not reserved",
            vec![fake(
                MountedFile,
                vec![(ALICE, Ok(("test", vec![])))],
                vec![],
            )],
            identity(ALICE, "123456789012"),
            ok("test", &[]),
        ),
        (
            "eksb:test is not reserved",
            vec![fake(
                MountedFile,
                vec![(ALICE, Ok(("eksb:test", vec![])))],
                vec![],
            )],
            identity(ALICE, "123456789012"),
            ok("eksb:test", &[]),
        ),
        (
            "prefixes apply per backend",
            vec![fake(
                EksConfigMap,
                vec![(ALICE, Ok(("system:masters", vec![])))],
                vec![],
            )],
            identity(ALICE, "123456789012"),
            ok("system:masters", &[]),
        ),
        (
            "prefixes are checked on the rendered username",
            vec![fake(
                MountedFile,
                vec![(ALICE, Ok(("{{AccountID}}", vec![])))],
                vec![],
            )],
            identity(ALICE, "system:x"),
            denied(
                "invalid username 'system:x' for mapper MountedFile: username must not begin with with the following prefixes: [aws: eks: amazon: iam: system: ]",
            ),
        ),
        (
            "account fallback skips the reserved-prefix check",
            vec![fake(MountedFile, vec![], vec!["123456789012"])],
            identity("system:odd", "123456789012"),
            ok("system:odd", &[]),
        ),
    ];
    for (name, mappers, id, want) in cases {
        let chain = Chain::from_mappers(mappers, reserved(), None);
        assert_eq!(chain.map(&id).await, want, "{name}");
        let mut trace = Trace::on();
        assert_eq!(chain.map_traced(&id, &mut trace).await, want, "{name}");
        // Every backend asked has one record, the last one saying how it ended.
        let last = trace.backends().last().map(|b| b.outcome);
        match &want {
            Ok(_) => assert!(
                matches!(last, Some(Outcome::Matched | Outcome::AccountAllowed)),
                "{name}"
            ),
            Err(d) => assert!(
                last.is_none()
                    || d.reason.contains(
                        trace
                            .backends()
                            .last()
                            .map_or("", |b| b.reason.as_deref().unwrap_or(""))
                    ),
                "{name}"
            ),
        }
    }
}

#[tokio::test]
async fn trace_records_each_backend_and_the_templates() {
    let chain = Chain::from_mappers(
        vec![
            fake(
                DynamicFile,
                vec![(ALICE, Err("ARN does not match User ID"))],
                vec![],
            ),
            fake(Crd, vec![], vec![]),
            fake(
                MountedFile,
                vec![(ALICE, Ok(("u:{{SessionName}}", vec!["{{AccountID}}"])))],
                vec![],
            ),
        ],
        reserved(),
        None,
    );
    let mut trace = Trace::on();
    let got = chain
        .map_traced(&identity(ALICE, "123456789012"), &mut trace)
        .await;
    assert_eq!(got, ok("u:alice-example.com", &["123456789012"]));
    let b = trace.into_backends();
    let outcomes: Vec<_> = b.iter().map(|b| (b.backend, b.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            ("DynamicFile", Outcome::Refused),
            ("CRD", Outcome::NotMapped),
            ("MountedFile", Outcome::Matched)
        ]
    );
    assert_eq!(
        b[0].reason.as_deref(),
        Some("mapper DynamicFile Map error: ARN does not match User ID")
    );
    let rendered: Vec<_> = b[2]
        .rendered
        .iter()
        .map(|r| (r.field, r.template.as_str(), r.value.as_str()))
        .collect();
    assert_eq!(
        rendered,
        [
            ("username", "u:{{SessionName}}", "u:alice-example.com"),
            ("group", "{{AccountID}}", "123456789012")
        ]
    );
}

#[test]
fn denied_metric_label_is_upstreams() {
    let d = Denied { reason: "x".into() };
    assert_eq!(d.metric_label(), "uknown_user");
    assert_eq!(d.to_string(), "x");
}

#[test]
fn backend_mode_file() {
    let (modes, last) = parse_backend_mode_file(
        br#"{"BackendMode":"MountedFile DynamicFile","LastUpdatedDateTime":"1"}"#,
    )
    .unwrap();
    assert_eq!(modes, [MountedFile, DynamicFile]);
    assert_eq!(last.as_deref(), Some("1"));
    assert!(parse_backend_mode_file(br#"{"backendMode":""}"#).is_err());
    assert!(parse_backend_mode_file(br#"{"backendMode":"Nope"}"#).is_err());
    assert!(parse_backend_mode_file(br#"{"backendMode":"CRD CRD"}"#).is_err());
    assert!(parse_backend_mode_file(b"{").is_err());
}

#[test]
fn build_error_text() {
    let e = Error::Backend {
        mode: EksConfigMap,
        message: "boom".into(),
    };
    assert_eq!(
        e.to_string(),
        "failed to build mapper chain: backend-mode \"EKSConfigMap\" creation failed: boom"
    );
    let e = Error::Ec2(ec2::Error::RoleArn("nope".into()));
    assert_eq!(
        e.to_string(),
        "failed to build mapper chain: ec2 provider: describeinstancesrole nope is not a valid arn"
    );
    assert!(matches!(e, Error::Ec2(ec2::Error::RoleArn(_))));
}
