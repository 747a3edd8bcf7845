//! MountedFile: the static mappings of the config file (`server.mapRoles`,
//! `server.mapUsers`, `server.mapAccounts`; upstream `pkg/mapper/file/mapper.go`).
//!
//! Role ARNs are matched by their canonical form with the path stripped (see
//! [`role_arn_key`]); user ARNs by their canonical, lower-cased form. Entries are tried
//! in the order they are written and the first match wins.
//!
//! The server follows its config file ([`FileMapper::follow`], in [`reload`]): a new
//! version's mappings replace the ones in force within a second or so, a broken version
//! changes nothing (the last good mappings stay; it is logged and counted), and other
//! settings wait for a restart.

mod reload;

use std::sync::{Arc, Mutex, RwLock};

use tracing::{info, warn};

use super::watch;
use super::{IdentityMapping, MapError, Mapper};
use crate::config::ServerConfig;
use crate::config::types::{
    BackendMode, MappingError, RoleMapping, UserMapping, role_arn_key, user_arn_key,
};
use crate::identity::Identity;
use crate::metrics::EntryLabels;

pub use reload::{ConfigSource, ReloadError, restart_needed};

/// Why the mappings could not be used; names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `mapRoles` entry is invalid.
    #[error("server.mapRoles[{index}]: {reason}")]
    Role {
        /// Position in the list (from 0).
        index: usize,
        /// What is wrong.
        reason: MappingError,
    },
    /// A `mapUsers` entry is invalid.
    #[error("server.mapUsers[{index}]: {reason}")]
    User {
        /// Position in the list (from 0).
        index: usize,
        /// What is wrong.
        reason: MappingError,
    },
}

/// How a role entry is matched.
#[derive(Debug, Clone)]
enum RoleKey {
    /// The canonical, path-stripped, lower-cased role ARN.
    Arn(String),
    /// An SSO permission-set matcher (only with the `SSORoleMatch` gate).
    Sso,
}

/// A role entry's key, or why it has none.
fn role_key(m: &RoleMapping) -> Result<RoleKey, MappingError> {
    m.validate()?;
    if m.rolearn.is_empty() {
        Ok(RoleKey::Sso)
    } else {
        role_arn_key(&m.rolearn).map(RoleKey::Arn)
    }
}

/// A user entry's key, or why it has none.
fn user_key(m: &UserMapping) -> Result<String, MappingError> {
    m.validate()?;
    user_arn_key(&m.userarn)
}

/// One version of the mappings, indexed.
#[derive(Debug, Default)]
struct Index {
    roles: Vec<(RoleKey, RoleMapping)>,
    users: Vec<(String, UserMapping)>,
    accounts: Vec<String>,
}

impl Index {
    /// Validates every entry (the first invalid one is the error) and indexes them.
    fn build(
        roles: &[RoleMapping],
        users: &[UserMapping],
        accounts: &[String],
    ) -> Result<Self, Error> {
        let mut role_keys: Vec<(RoleKey, RoleMapping)> = Vec::with_capacity(roles.len());
        for (index, m) in roles.iter().enumerate() {
            let key = role_key(m).map_err(|reason| Error::Role { index, reason })?;
            if let RoleKey::Arn(key) = &key {
                // upstream: pkg/mapper/file/mapper.go keys roles by the ARN as written,
                // so a role with a path never matches; we strip the path. Two roles with
                // one name under different paths then collide: say so.
                if let Some((_, first)) = role_keys
                    .iter()
                    .find(|(k, _)| matches!(k, RoleKey::Arn(k) if k == key))
                {
                    warn!(
                        role = %m.rolearn,
                        earlier = %first.rolearn,
                        key = %key,
                        "two role mappings have the same ARN once the path is removed; the first one is used"
                    );
                }
            }
            info!(role = %m.key(), username = %m.username, groups = ?m.groups, "mapping IAM role");
            role_keys.push((key, m.clone()));
        }
        let mut user_keys = Vec::with_capacity(users.len());
        for (index, m) in users.iter().enumerate() {
            let key = user_key(m).map_err(|reason| Error::User { index, reason })?;
            info!(user = %m.userarn, username = %m.username, groups = ?m.groups, "mapping IAM user");
            user_keys.push((key, m.clone()));
        }
        for account in accounts {
            info!(account = %account, "mapping IAM Account");
        }
        Ok(Self {
            roles: role_keys,
            users: user_keys,
            accounts: accounts.to_vec(),
        })
    }

    /// Whether this index was built from exactly these entries.
    fn is_built_from(
        &self,
        roles: &[RoleMapping],
        users: &[UserMapping],
        accounts: &[String],
    ) -> bool {
        self.roles.iter().map(|(_, m)| m).eq(roles.iter())
            && self.users.iter().map(|(_, m)| m).eq(users.iter())
            && self.accounts == accounts
    }
}

/// The MountedFile backend: the mappings in force, replaced whole when the config file
/// changes (see [`FileMapper::follow`]). Dropping it stops following the file.
#[derive(Debug)]
pub struct FileMapper {
    index: RwLock<Arc<Index>>,
    sso_enabled: bool,
    /// The `mapping_invalid_entry` labels set for the file's current version.
    flagged: Mutex<Vec<EntryLabels>>,
    follow: Mutex<Option<watch::Task>>,
}

impl FileMapper {
    /// The backend for the config file's mappings.
    pub fn new(config: &ServerConfig) -> Result<Self, Error> {
        Self::from_mappings(
            &config.role_mappings,
            &config.user_mappings,
            &config.account_mappings,
            config.feature_gates.sso_role_match,
        )
    }

    /// Validates every entry (the first invalid one is the error) and indexes them.
    pub fn from_mappings(
        roles: &[RoleMapping],
        users: &[UserMapping],
        accounts: &[String],
        sso_enabled: bool,
    ) -> Result<Self, Error> {
        Ok(Self {
            index: RwLock::new(Arc::new(Index::build(roles, users, accounts)?)),
            sso_enabled,
            flagged: Mutex::new(Vec::new()),
            follow: Mutex::new(None),
        })
    }

    fn current(&self) -> Arc<Index> {
        match self.index.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn install(&self, index: Index) {
        let index = Arc::new(index);
        match self.index.write() {
            Ok(mut g) => *g = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
    }
}

impl Error {
    /// The entry named, as a `mapping_invalid_entry` label: `server.mapRoles[2]`.
    fn entry(&self) -> String {
        match self {
            Error::Role { index, .. } => format!("server.mapRoles[{index}]"),
            Error::User { index, .. } => format!("server.mapUsers[{index}]"),
        }
    }
}

impl Mapper for FileMapper {
    fn mode(&self) -> BackendMode {
        BackendMode::MountedFile
    }

    // upstream: pkg/mapper/file/mapper.go iterates a Go map (random order when several
    // SSO patterns match; for duplicate keys the last entry wins); we try entries in the
    // order written and the first match wins, so the result is deterministic.
    fn map(&self, identity: &Identity) -> Result<IdentityMapping, MapError> {
        let index = self.current();
        let arn = identity.canonical_arn.to_lowercase();
        let role = index.roles.iter().find(|(key, m)| match key {
            RoleKey::Arn(k) => *k == arn,
            RoleKey::Sso => m
                .sso
                .as_ref()
                .is_some_and(|sso| self.sso_enabled && sso.matches(&arn)),
        });
        if let Some((_, m)) = role {
            return Ok(IdentityMapping {
                key: arn,
                username: m.username.clone(),
                groups: m.groups.clone(),
            });
        }
        if let Some((_, m)) = index.users.iter().find(|(k, _)| *k == arn) {
            return Ok(IdentityMapping {
                key: arn,
                username: m.username.clone(),
                groups: m.groups.clone(),
            });
        }
        Err(MapError::NotMapped)
    }

    fn is_account_allowed(&self, account: &str) -> bool {
        self.current().accounts.iter().any(|a| a == account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "arn:aws:iam::123456789012:role/Alice";

    fn username(mapper: &FileMapper) -> Option<String> {
        let identity = Identity {
            arn: ALICE.into(),
            canonical_arn: ALICE.into(),
            account_id: "123456789012".into(),
            ..Default::default()
        };
        mapper.map(&identity).ok().map(|m| m.username)
    }

    #[test]
    fn entries_keep_their_order_and_the_first_match_wins() {
        let roles = vec![
            RoleMapping {
                rolearn: "arn:aws:iam::123456789012:role/team/Alice".into(),
                username: "first".into(),
                ..Default::default()
            },
            RoleMapping {
                rolearn: ALICE.into(),
                username: "second".into(),
                ..Default::default()
            },
        ];
        let m = FileMapper::from_mappings(&roles, &[], &[], false).unwrap();
        assert_eq!(username(&m).as_deref(), Some("first"));
        let bad = [RoleMapping::default()];
        let e = FileMapper::from_mappings(&bad, &[], &[], false).unwrap_err();
        assert_eq!(e.entry(), "server.mapRoles[0]");
    }
}
