//! The lookup table every backend answers from: its role, user and account entries under
//! their keys ([`crate::config::types`] has one key function per ARN kind), tried in
//! the order written, the first match winning (pure, no I/O).
//!
//! Every backend (MountedFile, DynamicFile, EKSConfigMap, CRD) builds one per version of
//! its source and swaps it whole. Exact keys are found through a hash index; SSO
//! patterns, which cannot be hashed, are tried in order against the caller's ARN.

mod explain;

use std::collections::{HashMap, HashSet};

use super::trace::Trace;
use super::{IdentityMapping, MapError};
use crate::config::types::{
    MappingError, RoleMapping, SsoArnMatcher, UserMapping, account_key, role_arn_key, user_arn_key,
};

/// What a table row maps to: a username template and group templates.
pub trait Entry {
    /// The username template.
    fn username(&self) -> &str;
    /// The group templates.
    fn groups(&self) -> &[String];
}

impl Entry for RoleMapping {
    fn username(&self) -> &str {
        &self.username
    }
    fn groups(&self) -> &[String] {
        &self.groups
    }
}

impl Entry for UserMapping {
    fn username(&self) -> &str {
        &self.username
    }
    fn groups(&self) -> &[String] {
        &self.groups
    }
}

/// How a role entry is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleKey {
    /// An exact key: the canonical, path-stripped, lower-cased role ARN
    /// ([`role_arn_key`]), or the role's unique id where a backend keys by it
    /// (DynamicFile with `dynamicfileUserIDStrict`).
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

/// The entry a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit<'a, R, U> {
    /// A role entry.
    Role(&'a R),
    /// A user entry.
    User(&'a U),
}

impl<R: Entry, U: Entry> Hit<'_, R, U> {
    /// The mapping found under `key`, templates not yet rendered.
    pub fn mapping(&self, key: String) -> IdentityMapping {
        let (username, groups) = match self {
            Self::Role(m) => (m.username(), m.groups()),
            Self::User(m) => (m.username(), m.groups()),
        };
        IdentityMapping {
            key,
            username: username.to_owned(),
            groups: groups.to_vec(),
        }
    }
}

/// Role, user and account entries with their keys. `R` and `U` are what a backend
/// stores per row (the config's mappings by default; the CRD stores its objects).
#[derive(Debug, Clone)]
pub struct Table<R = RoleMapping, U = UserMapping> {
    roles: Vec<(RoleKey, R)>,
    users: Vec<(String, U)>,
    /// Exact role key → position of its first entry.
    role_index: HashMap<String, usize>,
    /// Positions of the SSO entries, in order.
    sso: Vec<usize>,
    /// User key → position of its first entry.
    user_index: HashMap<String, usize>,
    accounts: Vec<String>,
    allowed: HashSet<String>,
}

impl<R, U> Default for Table<R, U> {
    fn default() -> Self {
        Self {
            roles: Vec::new(),
            users: Vec::new(),
            role_index: HashMap::new(),
            sso: Vec::new(),
            user_index: HashMap::new(),
            accounts: Vec::new(),
            allowed: HashSet::new(),
        }
    }
}

impl<R: Entry, U: Entry> Table<R, U> {
    /// Adds a role entry under `key` (after the ones added before).
    pub fn push_role(&mut self, key: RoleKey, mapping: R) {
        let at = self.roles.len();
        match &key {
            RoleKey::Arn(k) => {
                self.role_index.entry(k.clone()).or_insert(at);
            }
            RoleKey::Sso(_) => self.sso.push(at),
        }
        self.roles.push((key, mapping));
    }

    /// Adds a user entry under `key`.
    pub fn push_user(&mut self, key: String, mapping: U) {
        self.user_index
            .entry(key.clone())
            .or_insert(self.users.len());
        self.users.push((key, mapping));
    }

    /// Allows `account`.
    pub fn push_account(&mut self, account: String) {
        self.allowed.insert(account_key(&account).to_owned());
        self.accounts.push(account);
    }

    /// The role entries, in order.
    pub fn roles(&self) -> &[(RoleKey, R)] {
        &self.roles
    }

    /// The user entries, in order.
    pub fn users(&self) -> &[(String, U)] {
        &self.users
    }

    /// The allowed accounts, as written.
    pub fn accounts(&self) -> &[String] {
        &self.accounts
    }

    /// Whether the table has no entries and no accounts.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.users.is_empty() && self.accounts.is_empty()
    }

    /// Where the entry for `key` is (compared exactly): the first role entry whose key is
    /// `key` (or, when `sso_enabled`, whose SSO pattern matches it), else the first user
    /// entry.
    // upstream: pkg/config/types.go compares the lower-cased rolearn as written, so a
    // rolearn with a path never matches (STS omits the path); role keys are
    // path-stripped canonical forms (see `role_arn_key`).
    fn position(&self, key: &str, sso_enabled: bool) -> Option<At> {
        let exact = self.role_index.get(key).copied();
        let sso = sso_enabled
            .then(|| {
                self.sso
                    .iter()
                    .copied()
                    .take_while(|&at| exact.is_none_or(|e| at < e))
                    .find(|&at| self.roles[at].0.matches(key, true))
            })
            .flatten();
        match sso.or(exact) {
            Some(at) => Some(At::Role(at)),
            None => self.user_index.get(key).map(|&at| At::User(at)),
        }
    }

    /// The entry for `key`, compared exactly (see [`Table::position`]).
    pub fn find(&self, key: &str, sso_enabled: bool) -> Option<Hit<'_, R, U>> {
        self.position(key, sso_enabled).map(|at| self.hit(at))
    }

    /// The entry at `at`.
    fn hit(&self, at: At) -> Hit<'_, R, U> {
        match at {
            At::Role(i) => Hit::Role(&self.roles[i].1),
            At::User(i) => Hit::User(&self.users[i].1),
        }
    }

    /// The mapping for the canonical ARN `arn` (compared lower-cased; see [`Table::find`]).
    pub fn lookup(&self, arn: &str, sso_enabled: bool) -> Result<IdentityMapping, MapError> {
        let arn = arn.to_ascii_lowercase();
        match self.find(&arn, sso_enabled) {
            Some(hit) => Ok(hit.mapping(arn)),
            None => Err(MapError::NotMapped),
        }
    }

    /// Whether `account` is allowed.
    pub fn is_account_allowed(&self, account: &str) -> bool {
        self.allowed.contains(account_key(account))
    }
}

/// Where a lookup found its entry: a position in the role or the user entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Role(usize),
    User(usize),
}

impl Table {
    /// [`Table::find`], recording in `trace` which entry was found (backends whose keys
    /// are not the caller's ARN, such as DynamicFile's user ids).
    pub fn find_traced(
        &self,
        key: &str,
        sso_enabled: bool,
        trace: &mut Trace,
    ) -> Option<Hit<'_, RoleMapping, UserMapping>> {
        let at = self.position(key, sso_enabled)?;
        self.record(at, trace);
        Some(self.hit(at))
    }

    fn record(&self, at: At, trace: &mut Trace) {
        match at {
            At::Role(i) => trace.matched(|| explain::role_entry(i, &self.roles[i].1)),
            At::User(i) => trace.matched(|| explain::user_entry(i, &self.users[i].1)),
        }
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
        let at = self.position(&arn, sso_enabled);
        if let Some(at) = at {
            self.record(at, trace);
        }
        if trace.is_on() {
            let role = match at {
                Some(At::Role(i)) => Some(i),
                _ => None,
            };
            explain::notes(self, original, &arn, sso_enabled, role, trace);
        }
        match at {
            Some(at) => Ok(self.hit(at).mapping(arn)),
            None => Err(MapError::NotMapped),
        }
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
        let mut t: Table = Table::default();
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
    fn an_sso_entry_and_an_exact_entry_match_in_the_order_written() {
        let sso = RoleMapping {
            sso: Some(SsoArnMatcher {
                permission_set_name: "Admin".into(),
                account_id: "012345678912".into(),
                partition: String::new(),
            }),
            username: "sso".into(),
            ..Default::default()
        };
        let arn = "arn:aws:iam::012345678912:role/AWSReservedSSO_Admin_0123456789abcdef";
        let exact = role(arn, "exact");
        let sso_first = table(&[sso.clone(), exact.clone()], &[]);
        assert_eq!(found(&sso_first, arn, true).as_deref(), Some("sso"));
        assert_eq!(found(&sso_first, arn, false).as_deref(), Some("exact"));
        let exact_first = table(&[exact, sso], &[]);
        assert_eq!(found(&exact_first, arn, true).as_deref(), Some("exact"));
    }

    #[test]
    fn the_first_of_two_entries_with_one_key_wins() {
        let user = |name: &str| UserMapping {
            userarn: "arn:aws:iam::012345678912:user/Bob".into(),
            username: name.into(),
            ..Default::default()
        };
        let t = table(
            &[
                role("arn:aws:iam::012345678912:role/A", "r1"),
                role("arn:aws:iam::012345678912:role/a", "r2"),
            ],
            &[user("u1"), user("u2")],
        );
        let bob = "arn:aws:iam::012345678912:user/bob";
        assert_eq!(found(&t, bob, false).as_deref(), Some("u1"));
        let a = "arn:aws:iam::012345678912:role/a";
        assert_eq!(found(&t, a, false).as_deref(), Some("r1"));
        assert_eq!(t.roles().len(), 2);
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
        let mut t: Table = Table::default();
        t.push_account("012345678901".into());
        assert!(t.is_account_allowed("012345678901"));
        assert!(!t.is_account_allowed("12345678901"));
        assert_eq!(t.accounts(), ["012345678901"]);
    }
}
