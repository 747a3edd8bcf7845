//! MountedFile: the static mappings of the config file (`server.mapRoles`,
//! `server.mapUsers`, `server.mapAccounts`; upstream `pkg/mapper/file/mapper.go`).
//!
//! Role ARNs are matched by their canonical form with the path stripped (see
//! [`crate::config::types::role_arn_key`]); user ARNs by their canonical, lower-cased
//! form. Entries are tried in the order they are written and the first match wins
//! ([`super::table::Table`]).
//!
//! The server follows its config file ([`FileMapper::follow`], in [`reload`]): a new
//! version's mappings replace the ones in force within a second or so, a broken version
//! changes nothing (the last good mappings stay; it is logged and counted), and other
//! settings wait for a restart.

mod reload;
mod restart;

use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use super::published::Snapshot;
use super::table::{RoleKey, Table, user_key};
use super::trace::Trace;
use super::watch;
use super::{IdentityMapping, MapError, Mapper};
use crate::config::types::{BackendMode, MappingError, RoleMapping, UserMapping};
use crate::identity::Identity;
use crate::mapper::metrics::InvalidEntry;

pub use reload::{ConfigSource, ReloadError};
pub use restart::restart_needed;

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

/// Validates every entry (the first invalid one is the error) and indexes them.
fn build(
    roles: &[RoleMapping],
    users: &[UserMapping],
    accounts: &[String],
) -> Result<Table, Error> {
    let mut table: Table = Table::default();
    for (index, m) in roles.iter().enumerate() {
        let key = RoleKey::of(m).map_err(|reason| Error::Role { index, reason })?;
        if let RoleKey::Arn(key) = &key {
            // upstream: pkg/mapper/file/mapper.go keys roles by the ARN as written,
            // so a role with a path never matches; we strip the path. Two roles with
            // one name under different paths then collide: say so.
            if let Some((_, first)) = table
                .roles()
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
        table.push_role(key, m.clone());
    }
    for (index, m) in users.iter().enumerate() {
        let key = user_key(m).map_err(|reason| Error::User { index, reason })?;
        info!(user = %m.userarn, username = %m.username, groups = ?m.groups, "mapping IAM user");
        table.push_user(key, m.clone());
    }
    for account in accounts {
        info!(account = %account, "mapping IAM Account");
        table.push_account(account.clone());
    }
    Ok(table)
}

/// Whether `table` was built from exactly these entries.
fn is_built_from(
    table: &Table,
    roles: &[RoleMapping],
    users: &[UserMapping],
    accounts: &[String],
) -> bool {
    table.roles().iter().map(|(_, m)| m).eq(roles.iter())
        && table.users().iter().map(|(_, m)| m).eq(users.iter())
        && table.accounts() == accounts
}

/// The MountedFile backend: the mappings in force, replaced whole when the config file
/// changes (see [`FileMapper::follow`]). Dropping it stops following the file.
#[derive(Debug)]
pub struct FileMapper {
    index: Snapshot<Table>,
    sso_enabled: bool,
    follow: Mutex<Option<watch::Task>>,
}

impl FileMapper {
    /// Validates every entry (the first invalid one is the error) and indexes them.
    pub fn from_mappings(
        roles: &[RoleMapping],
        users: &[UserMapping],
        accounts: &[String],
        sso_enabled: bool,
    ) -> Result<Self, Error> {
        Ok(Self {
            index: Snapshot::new(build(roles, users, accounts)?),
            sso_enabled,
            follow: Mutex::new(None),
        })
    }

    fn current(&self) -> Arc<Table> {
        self.index.load()
    }

    fn install(&self, index: Table) {
        self.index.store(Arc::new(index));
    }
}

impl Error {
    /// The entry named, as a `mapping_invalid_entry` label: `server.mapRoles[2]`.
    fn entry(&self) -> InvalidEntry {
        match self {
            Error::Role { index, .. } => InvalidEntry::at("server.mapRoles", *index),
            Error::User { index, .. } => InvalidEntry::at("server.mapUsers", *index),
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
        self.current()
            .lookup(&identity.canonical_arn, self.sso_enabled)
    }

    fn map_traced(
        &self,
        identity: &Identity,
        trace: &mut Trace,
    ) -> Result<IdentityMapping, MapError> {
        self.current()
            .lookup_traced(&identity.canonical_arn, self.sso_enabled, trace)
    }

    fn is_account_allowed(&self, account: &str) -> bool {
        self.current().is_account_allowed(account)
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
        assert_eq!(e.entry().to_string(), "server.mapRoles[0]");
    }
}
