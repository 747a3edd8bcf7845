//! The lookup table a backend answers from: its role, user and account entries under
//! their keys ([`crate::config::types`] has one key function per ARN kind), tried in
//! the order written, the first match winning (pure, no I/O).
//!
//! MountedFile and EKSConfigMap build one per version of their source and swap it whole.

mod explain;

use std::collections::HashSet;

use super::trace::Trace;
use super::{IdentityMapping, MapError};
use crate::config::types::{
    MappingError, RoleMapping, SsoArnMatcher, UserMapping, account_key, role_arn_key, user_arn_key,
};

/// How a role entry is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleKey {
    /// The canonical, path-stripped, lower-cased role ARN ([`role_arn_key`]).
    Arn(String),
    /// An IAM Identity Center permission set (only with the `SSORoleMatch` gate).
    Sso(SsoArnMatcher),
}

impl RoleKey {
    /// A role entry's key, or why it has none (upstream's checks first).
    pub fn of(m: &RoleMapping) -> Result<Self, MappingError> {
        m.validate()?;
        match &m.sso {
            Some(sso) => Ok(Self::Sso(sso.clone())),
            None => role_arn_key(&m.rolearn).map(Self::Arn),
        }
    }

    /// Whether the key matches the lower-cased canonical ARN `arn`. SSO keys match only
    /// when `sso_enabled` (feature gate `SSORoleMatch`).
    // upstream: pkg/config/types.go compares the lower-cased rolearn as written, so a
    // rolearn with a path never matches (STS omits the path); we compare its
    // path-stripped canonical form (see `role_arn_key`).
    fn matches(&self, arn: &str, sso_enabled: bool) -> bool {
        match self {
            Self::Arn(key) => key == arn,
            Self::Sso(sso) => sso_enabled && sso.matches(arn),
        }
    }
}

/// A user entry's key ([`user_arn_key`]), or why it has none (upstream's check first).
pub fn user_key(m: &UserMapping) -> Result<String, MappingError> {
    m.validate()?;
    user_arn_key(&m.userarn)
}

/// Role, user and account entries with their keys.
#[derive(Debug, Clone, Default)]
pub struct Table {
    roles: Vec<(RoleKey, RoleMapping)>,
    users: Vec<(String, UserMapping)>,
    accounts: Vec<String>,
    allowed: HashSet<String>,
}

impl Table {
    /// Adds a role entry under `key` (after the ones added before).
    pub fn push_role(&mut self, key: RoleKey, mapping: RoleMapping) {
        self.roles.push((key, mapping));
    }

    /// Adds a user entry under `key`.
    pub fn push_user(&mut self, key: String, mapping: UserMapping) {
        self.users.push((key, mapping));
    }

    /// Allows `account`.
    pub fn push_account(&mut self, account: String) {
        self.allowed.insert(account_key(&account).to_owned());
        self.accounts.push(account);
    }

    /// The role entries, in order.
    pub fn roles(&self) -> &[(RoleKey, RoleMapping)] {
        &self.roles
    }

    /// The user entries, in order.
    pub fn users(&self) -> &[(String, UserMapping)] {
        &self.users
    }

    /// The allowed accounts, as written.
    pub fn accounts(&self) -> &[String] {
        &self.accounts
    }

    /// The mapping for the canonical ARN `arn`: the first role entry that matches, else
    /// the first user entry.
    pub fn lookup(&self, arn: &str, sso_enabled: bool) -> Result<IdentityMapping, MapError> {
        self.lookup_traced(arn, sso_enabled, &mut Trace::off())
    }

    /// [`Table::lookup`], recording in `trace` which entry matched, the entries that
    /// also match (shadowed) and, when none does, the near misses ([`explain`]).
    pub fn lookup_traced(
        &self,
        arn: &str,
        sso_enabled: bool,
        trace: &mut Trace,
    ) -> Result<IdentityMapping, MapError> {
        let original = arn;
        let arn = arn.to_ascii_lowercase();
        let role = self
            .roles
            .iter()
            .position(|(key, _)| key.matches(&arn, sso_enabled));
        let found = match role {
            Some(i) => {
                let m = &self.roles[i].1;
                trace.matched(|| explain::role_entry(i, m));
                Some((&m.username, &m.groups))
            }
            None => match self.users.iter().position(|(key, _)| *key == arn) {
                Some(i) => {
                    let m = &self.users[i].1;
                    trace.matched(|| explain::user_entry(i, m));
                    Some((&m.username, &m.groups))
                }
                None => None,
            },
        };
        if trace.is_on() {
            explain::notes(self, original, &arn, sso_enabled, role, trace);
        }
        match found {
            Some((username, groups)) => Ok(IdentityMapping {
                key: arn,
                username: username.clone(),
                groups: groups.clone(),
            }),
            None => Err(MapError::NotMapped),
        }
    }

    /// Whether `account` is allowed.
    pub fn is_account_allowed(&self, account: &str) -> bool {
        self.allowed.contains(account_key(account))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(arn: &str, username: &str) -> RoleMapping {
        RoleMapping {
            rolearn: arn.into(),
            username: username.into(),
            ..Default::default()
        }
    }

    fn table(roles: &[RoleMapping], users: &[UserMapping]) -> Table {
        let mut t = Table::default();
        for r in roles {
            t.push_role(RoleKey::of(r).unwrap(), r.clone());
        }
        for u in users {
            t.push_user(user_key(u).unwrap(), u.clone());
        }
        t
    }

    fn found(t: &Table, arn: &str, sso: bool) -> Option<String> {
        t.lookup(arn, sso).ok().map(|m| m.username)
    }

    #[test]
    fn roles_match_without_their_path_and_the_first_entry_wins() {
        let t = table(
            &[
                role("arn:aws:iam::012345678912:role/Team/Admin", "first"),
                role("arn:aws:iam::012345678912:role/Admin", "second"),
            ],
            &[],
        );
        let admin = "arn:aws:iam::012345678912:role/Admin";
        assert_eq!(found(&t, admin, false).as_deref(), Some("first"));
        assert_eq!(t.lookup(admin, false).unwrap().key, admin.to_lowercase());
        assert_eq!(
            found(&t, "arn:aws:iam::012345678912:role/Team", false),
            None
        );
    }

    #[test]
    fn sso_entries_match_only_with_the_gate() {
        let sso = RoleMapping {
            sso: Some(SsoArnMatcher {
                permission_set_name: "ViewOnlyAccess".into(),
                account_id: "012345678912".into(),
                partition: String::new(),
            }),
            username: "viewer".into(),
            ..Default::default()
        };
        let t = table(&[sso], &[]);
        let arn = "arn:aws:iam::012345678912:role/AWSReservedSSO_ViewOnlyAccess_abcdefg";
        assert_eq!(found(&t, arn, true).as_deref(), Some("viewer"));
        assert_eq!(found(&t, arn, false), None);
    }

    #[test]
    fn users_keep_their_path_and_roles_come_first() {
        let users = [
            UserMapping {
                userarn: "arn:aws:iam::012345678912:user/Path/Alice".into(),
                username: "alice".into(),
                ..Default::default()
            },
            UserMapping {
                userarn: "arn:aws:sts::012345678912:assumed-role/Admin/s".into(),
                username: "as-user".into(),
                ..Default::default()
            },
        ];
        let t = table(
            &[role("arn:aws:iam::012345678912:role/Admin", "as-role")],
            &users,
        );
        let alice = "arn:aws:iam::012345678912:user/path/alice";
        assert_eq!(found(&t, alice, false).as_deref(), Some("alice"));
        assert_eq!(
            found(&t, "arn:aws:iam::012345678912:user/alice", false),
            None
        );
        assert_eq!(
            found(&t, "arn:aws:iam::012345678912:role/Admin", false).as_deref(),
            Some("as-role")
        );
    }

    #[test]
    fn accounts_are_compared_as_written() {
        let mut t = Table::default();
        t.push_account("012345678901".into());
        assert!(t.is_account_allowed("012345678901"));
        assert!(!t.is_account_allowed("12345678901"));
        assert_eq!(t.accounts(), ["012345678901"]);
    }
}
