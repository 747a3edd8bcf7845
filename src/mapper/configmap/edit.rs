//! Adding one entry to the `aws-auth` ConfigMap's data (`add user|role`; pure): parse
//! every section strictly (any problem aborts, as upstream), refuse a duplicate, append
//! the entry and render only the section that changes. The other data keys and
//! sections, with their comments and formatting, are kept as they are.
//!
//! upstream: `cmd/aws-iam-authenticator/add.go` re-encodes all of `data` from the parsed
//! mappings (other keys, comments and formatting are lost); we rewrite only the section
//! we add to.

use std::collections::BTreeMap;

use super::{MAP_ROLES, MAP_USERS, parse};
use crate::config::types::{RoleMapping, UserMapping};

/// A mapping to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewMapping {
    /// A `mapRoles` entry.
    Role(RoleMapping),
    /// A `mapUsers` entry.
    User(UserMapping),
}

/// Why the entry cannot be added. `Display` is upstream's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// A section has a problem (the problems, `; `-separated).
    #[error("failed to parse configmap {0}")]
    Parse(String),
    /// A role entry with the same key ([`RoleMapping::key`]) exists.
    #[error("cannot add duplicate role ARN {0:?}")]
    DuplicateRole(String),
    /// A user entry with the same `userarn` exists.
    #[error("cannot add duplicate user ARN {0:?}")]
    DuplicateUser(String),
    /// The new section could not be rendered as YAML.
    #[error("cannot render {section}: {message}")]
    Render {
        /// The data key.
        section: &'static str,
        /// The encoder's message.
        message: String,
    },
}

/// `data` with `mapping` appended to its section, or why not. Duplicates are found as
/// upstream finds them: roles by their lower-cased key (ARN or SSO pattern), users by
/// `userarn` exactly.
pub fn add(
    data: &BTreeMap<String, String>,
    mapping: &NewMapping,
) -> Result<BTreeMap<String, String>, EditError> {
    let current = parse(data).into_strict().map_err(|issues| {
        let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
        EditError::Parse(text.join("; "))
    })?;
    let (section, text) = match mapping {
        NewMapping::Role(role) => {
            let key = role.key();
            if current.roles.iter().any(|r| r.key() == key) {
                return Err(EditError::DuplicateRole(key));
            }
            let mut roles = current.roles;
            roles.push(role.clone());
            (MAP_ROLES, render(MAP_ROLES, &roles)?)
        }
        NewMapping::User(user) => {
            if current.users.iter().any(|u| u.userarn == user.userarn) {
                return Err(EditError::DuplicateUser(user.userarn.clone()));
            }
            let mut users = current.users;
            users.push(user.clone());
            (MAP_USERS, render(MAP_USERS, &users)?)
        }
    };
    let mut data = data.clone();
    data.insert(section.to_owned(), text);
    Ok(data)
}

fn render<T: serde::Serialize>(section: &'static str, entries: &[T]) -> Result<String, EditError> {
    serde_saphyr::to_string(&entries).map_err(|e| EditError::Render {
        section,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::SsoArnMatcher;

    fn role(arn: &str) -> NewMapping {
        NewMapping::Role(RoleMapping {
            rolearn: arn.into(),
            username: "r".into(),
            groups: vec!["g".into()],
            ..Default::default()
        })
    }

    fn user(arn: &str) -> NewMapping {
        NewMapping::User(UserMapping {
            userarn: arn.into(),
            username: "a".into(),
            groups: vec!["g".into()],
            ..Default::default()
        })
    }

    fn sso(set: &str) -> NewMapping {
        NewMapping::Role(RoleMapping {
            sso: Some(SsoArnMatcher {
                permission_set_name: set.into(),
                account_id: "012345678912".into(),
                partition: String::new(),
            }),
            username: "r".into(),
            ..Default::default()
        })
    }

    const USERS: &str = "# admins\n- userarn: arn:aws:iam::1:user/a\n  username: a\n";

    fn data() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("mapUsers".to_owned(), USERS.to_owned()),
            ("other".to_owned(), "kept".to_owned()),
        ])
    }

    #[test]
    fn an_added_role_keeps_the_other_sections_verbatim() {
        let out = add(&data(), &role("arn:aws:iam::1:role/R")).unwrap();
        assert_eq!(out["mapUsers"], USERS);
        assert_eq!(out["other"], "kept");
        let parsed = parse(&out).into_strict().unwrap();
        assert_eq!(parsed.roles.len(), 1);
        assert_eq!(parsed.roles[0].rolearn, "arn:aws:iam::1:role/R");
        assert_eq!(parsed.users.len(), 1);
    }

    /// name, data, mapping, the error or the section's entry count after.
    type Case<'a> = (
        &'static str,
        &'a BTreeMap<String, String>,
        NewMapping,
        Result<usize, &'static str>,
    );

    #[test]
    fn additions_and_refusals() {
        let with_role = add(&data(), &role("arn:aws:iam::1:role/R")).unwrap();
        let with_sso = add(&data(), &sso("Admin")).unwrap();
        let cases: Vec<Case<'_>> = vec![
            (
                "a role differing only in case is a duplicate",
                &with_role,
                role("arn:aws:iam::1:role/r"),
                Err("cannot add duplicate role ARN \"arn:aws:iam::1:role/r\""),
            ),
            (
                "a user is compared exactly",
                &with_role,
                user("arn:aws:iam::1:user/A"),
                Ok(2),
            ),
            (
                "the same user is a duplicate",
                &with_role,
                user("arn:aws:iam::1:user/a"),
                Err("cannot add duplicate user ARN \"arn:aws:iam::1:user/a\""),
            ),
            (
                "the same permission set is a duplicate",
                &with_sso,
                sso("Admin"),
                Err(
                    "cannot add duplicate role ARN \"arn:aws:iam::012345678912:role/awsreservedsso_admin_*\"",
                ),
            ),
            ("another permission set", &with_sso, sso("View"), Ok(2)),
        ];
        for (name, data, mapping, want) in cases {
            let got = add(data, &mapping).map(|out| {
                let parsed = parse(&out).into_strict().unwrap();
                match mapping {
                    NewMapping::Role(_) => parsed.roles.len(),
                    NewMapping::User(_) => parsed.users.len(),
                }
            });
            assert_eq!(
                got.map_err(|e| e.to_string()),
                want.map_err(str::to_owned),
                "{name}"
            );
        }
    }

    #[test]
    fn a_section_with_a_problem_aborts() {
        let mut bad = data();
        bad.insert(
            "mapRoles".into(),
            "- rolarn: arn:aws:iam::1:role/b\n".into(),
        );
        let e = add(&bad, &user("arn:aws:iam::1:user/b")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to parse configmap mapRoles[0]: skipping invalid entry: one of rolearn or SSO must be supplied"
        );
    }
}
