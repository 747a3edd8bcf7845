//! The observations [`super::Table::lookup_traced`] records: which entry matched and
//! what about it is surprising (a path stripped, a case difference, an entry shadowing
//! another), or, when nothing matched, the entries that nearly did and why not.

use super::{RoleKey, Table};
use crate::config::types::{RoleMapping, UserMapping};
use crate::mapper::trace::{Entry, Trace};

/// How an SSO entry is named in a trace.
fn sso_name(m: &RoleMapping) -> String {
    match &m.sso {
        Some(sso) => format!("sso:{}@{}", sso.permission_set_name, sso.account_id),
        None => m.rolearn.clone(),
    }
}

/// The trace's record of role entry `index`.
pub(super) fn role_entry(index: usize, m: &RoleMapping) -> Entry {
    Entry {
        section: "mapRoles",
        index,
        arn: sso_name(m),
        username: m.username.clone(),
        groups: m.groups.clone(),
    }
}

/// The trace's record of user entry `index`.
pub(super) fn user_entry(index: usize, m: &UserMapping) -> Entry {
    Entry {
        section: "mapUsers",
        index,
        arn: m.userarn.clone(),
        username: m.username.clone(),
        groups: m.groups.clone(),
    }
}

/// `(account, resource)` of a lower-cased ARN.
fn split(arn: &str) -> Option<(&str, &str)> {
    crate::arn::parse(arn)
        .ok()
        .map(|a| (a.account_id, a.resource))
}

/// The last `/` segment of a resource: the role's or user's name.
fn name(resource: &str) -> &str {
    resource.rsplit('/').next().unwrap_or(resource)
}

/// The resource kind (`role`, `user`, …).
fn kind(resource: &str) -> &str {
    resource.split('/').next().unwrap_or(resource)
}

/// Records the observations about looking up `arn` (lower-cased; `original` as STS
/// spelled it). `role` is the role entry that matched, if any.
pub(super) fn notes(
    table: &Table,
    original: &str,
    arn: &str,
    sso_enabled: bool,
    role: Option<usize>,
    trace: &mut Trace,
) {
    let user = match role {
        Some(_) => None,
        None => table.users.iter().position(|(k, _)| k == arn),
    };
    match (role, user) {
        (Some(i), _) => matched_role(table, original, arn, sso_enabled, i, trace),
        (None, Some(i)) => matched_user(table, original, arn, i, trace),
        (None, None) => near_misses(table, arn, sso_enabled, trace),
    }
}

fn matched_role(
    table: &Table,
    original: &str,
    arn: &str,
    sso_enabled: bool,
    i: usize,
    trace: &mut Trace,
) {
    let (key, m) = &table.roles[i];
    match key {
        RoleKey::Sso(sso) => trace.note(|| {
            format!(
                "matched as a role of IAM Identity Center permission set {:?} in account {}",
                sso.permission_set_name, sso.account_id
            )
        }),
        RoleKey::Arn(key) => {
            if let Ok((kind, canonical)) = crate::arn::canonicalize(&m.rolearn) {
                if kind == crate::arn::PrincipalType::AssumedRole {
                    trace.note(|| {
                        format!(
                            "the entry is an assumed-role ARN; it stands for its role {canonical}"
                        )
                    });
                }
                if canonical.to_ascii_lowercase() != *key {
                    trace.note(|| {
                        format!(
                            "the entry's role has a path: STS reports roles without their path, so it is matched as {key}"
                        )
                    });
                }
                let stripped = crate::arn::strip_path(&canonical).unwrap_or(canonical);
                if stripped != original {
                    trace.note(|| {
                        format!(
                            "matched ignoring case: the entry says {stripped}, STS says {original}"
                        )
                    });
                }
            }
        }
    }
    for (j, (k, _)) in table.roles.iter().enumerate().skip(i + 1) {
        if k.matches(arn, sso_enabled) {
            trace.note(|| format!("mapRoles[{j}] also matches; the first matching entry wins"));
        }
    }
    for (j, (k, _)) in table.users.iter().enumerate() {
        if k == arn {
            trace.note(|| format!("mapUsers[{j}] also matches; role entries are tried first"));
        }
    }
}

fn matched_user(table: &Table, original: &str, arn: &str, i: usize, trace: &mut Trace) {
    let written = &table.users[i].1.userarn;
    if let Ok((_, canonical)) = crate::arn::canonicalize(written)
        && canonical != original
    {
        trace.note(|| {
            format!("matched ignoring case: the entry says {canonical}, STS says {original}")
        });
    }
    for (j, (k, _)) in table.users.iter().enumerate().skip(i + 1) {
        if k == arn {
            trace.note(|| format!("mapUsers[{j}] also matches; the first matching entry wins"));
        }
    }
}

fn near_misses(table: &Table, arn: &str, sso_enabled: bool, trace: &mut Trace) {
    let Some((account, resource)) = split(arn) else {
        return;
    };
    let caller_sso = kind(resource) == "role" && name(resource).starts_with("awsreservedsso_");
    let mut sso_entries = 0;
    for (i, (key, m)) in table.roles.iter().enumerate() {
        match key {
            RoleKey::Sso(sso) => {
                sso_entries += 1;
                if !sso_enabled && sso.matches(arn) {
                    trace.note(|| {
                        format!(
                            "mapRoles[{i}] ({}) would match, but SSO role matching is off (--feature-gates=SSORoleMatch=true)",
                            sso_name(m)
                        )
                    });
                } else if caller_sso && sso_enabled && sso.account_id == account {
                    trace.note(|| {
                        format!(
                            "mapRoles[{i}] is for permission set {:?}: the caller's role is not one of its roles (AWSReservedSSO_{}_<suffix>)",
                            sso.permission_set_name, sso.permission_set_name
                        )
                    });
                }
            }
            RoleKey::Arn(key) => {
                if let Some((a, r)) = split(key)
                    && kind(r) == kind(resource)
                    && name(r) == name(resource)
                    && a != account
                {
                    trace.note(|| {
                        format!(
                            "mapRoles[{i}] ({}) names a role of the same name in account {a}, not {account}",
                            m.rolearn
                        )
                    });
                }
            }
        }
    }
    if caller_sso && sso_entries == 0 {
        trace.note(|| {
            "the caller is an IAM Identity Center role: map its permission set with an `sso:` entry (with --feature-gates=SSORoleMatch=true), or its role ARN".to_owned()
        });
    }
    for (i, (key, m)) in table.users.iter().enumerate() {
        let Some((a, r)) = split(key) else { continue };
        if kind(r) != kind(resource) || name(r) != name(resource) {
            continue;
        }
        if a != account {
            trace.note(|| {
                format!(
                    "mapUsers[{i}] ({}) names a user of the same name in account {a}, not {account}",
                    m.userarn
                )
            });
        } else if r != resource {
            trace.note(|| {
                format!(
                    "mapUsers[{i}] ({}) names a user of the same name under another path; user ARNs keep their path",
                    m.userarn
                )
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::BackendMode;
    use crate::config::types::SsoArnMatcher;
    use crate::mapper::table::user_key;
    use crate::mapper::trace::Outcome;

    fn role(arn: &str) -> RoleMapping {
        RoleMapping {
            rolearn: arn.into(),
            username: "u".into(),
            ..Default::default()
        }
    }

    fn sso(set: &str) -> RoleMapping {
        RoleMapping {
            sso: Some(SsoArnMatcher {
                permission_set_name: set.into(),
                account_id: "012345678912".into(),
                partition: String::new(),
            }),
            username: "viewer".into(),
            ..Default::default()
        }
    }

    fn user(arn: &str) -> UserMapping {
        UserMapping {
            userarn: arn.into(),
            username: "u".into(),
            ..Default::default()
        }
    }

    /// name, roles, users, caller, SSO gate, entry matched, notes.
    type Case = (
        &'static str,
        Vec<RoleMapping>,
        Vec<UserMapping>,
        &'static str,
        bool,
        Option<&'static str>,
        Vec<&'static str>,
    );

    /// (entry matched, notes) of looking `arn` up.
    fn explain(
        roles: &[RoleMapping],
        users: &[UserMapping],
        arn: &str,
        sso: bool,
    ) -> (Option<String>, Vec<String>) {
        let mut t: Table = Table::default();
        for r in roles {
            t.push_role(RoleKey::of(r).unwrap(), r.clone());
        }
        for u in users {
            t.push_user(user_key(u).unwrap(), u.clone());
        }
        let mut trace = Trace::on();
        let _ = t.lookup_traced(arn, sso, &mut trace);
        trace.answered(BackendMode::MountedFile, Outcome::NotMapped, None);
        let b = trace.into_backends().remove(0);
        (
            b.entry.map(|e| format!("{}[{}]", e.section, e.index)),
            b.notes,
        )
    }

    #[test]
    fn observations() {
        const ADMIN: &str = "arn:aws:iam::012345678912:role/Admin";
        const SSO_ROLE: &str =
            "arn:aws:iam::012345678912:role/AWSReservedSSO_ViewOnly_0123456789abcdef";
        let cases: Vec<Case> = vec![
            (
                "path stripped",
                vec![role("arn:aws:iam::012345678912:role/team/Admin")],
                vec![],
                ADMIN,
                false,
                Some("mapRoles[0]"),
                vec![
                    "the entry's role has a path: STS reports roles without their path, so it is matched as arn:aws:iam::012345678912:role/admin",
                ],
            ),
            (
                "case and shadowing",
                vec![role("arn:aws:iam::012345678912:role/ADMIN"), role(ADMIN)],
                vec![user(ADMIN)],
                ADMIN,
                false,
                Some("mapRoles[0]"),
                vec![
                    "matched ignoring case: the entry says arn:aws:iam::012345678912:role/ADMIN, STS says arn:aws:iam::012345678912:role/Admin",
                    "mapRoles[1] also matches; the first matching entry wins",
                    "mapUsers[0] also matches; role entries are tried first",
                ],
            ),
            (
                "sso gate off",
                vec![sso("ViewOnly")],
                vec![],
                SSO_ROLE,
                false,
                None,
                vec![
                    "mapRoles[0] (sso:ViewOnly@012345678912) would match, but SSO role matching is off (--feature-gates=SSORoleMatch=true)",
                ],
            ),
            (
                "sso matched",
                vec![sso("ViewOnly")],
                vec![],
                SSO_ROLE,
                true,
                Some("mapRoles[0]"),
                vec![
                    "matched as a role of IAM Identity Center permission set \"ViewOnly\" in account 012345678912",
                ],
            ),
            (
                "sso other set",
                vec![sso("Admin")],
                vec![],
                SSO_ROLE,
                true,
                None,
                vec![
                    "mapRoles[0] is for permission set \"Admin\": the caller's role is not one of its roles (AWSReservedSSO_Admin_<suffix>)",
                ],
            ),
            (
                "sso without entries",
                vec![],
                vec![],
                SSO_ROLE,
                true,
                None,
                vec![
                    "the caller is an IAM Identity Center role: map its permission set with an `sso:` entry (with --feature-gates=SSORoleMatch=true), or its role ARN",
                ],
            ),
            (
                "other account",
                vec![role("arn:aws:iam::999999999999:role/Admin")],
                vec![],
                ADMIN,
                false,
                None,
                vec![
                    "mapRoles[0] (arn:aws:iam::999999999999:role/Admin) names a role of the same name in account 999999999999, not 012345678912",
                ],
            ),
            (
                "user path",
                vec![],
                vec![user("arn:aws:iam::012345678912:user/ops/alice")],
                "arn:aws:iam::012345678912:user/alice",
                false,
                None,
                vec![
                    "mapUsers[0] (arn:aws:iam::012345678912:user/ops/alice) names a user of the same name under another path; user ARNs keep their path",
                ],
            ),
            (
                "user matched",
                vec![],
                vec![user("arn:aws:iam::012345678912:user/alice")],
                "arn:aws:iam::012345678912:user/alice",
                false,
                Some("mapUsers[0]"),
                vec![],
            ),
        ];
        for (name, roles, users, arn, sso, entry, notes) in cases {
            let (got_entry, got_notes) = explain(&roles, &users, arn, sso);
            assert_eq!(got_entry.as_deref(), entry, "{name}");
            assert_eq!(got_notes, notes, "{name}");
        }
    }
}
