//! MountedFile: the static mappings of the config file (`server.mapRoles`,
//! `server.mapUsers`, `server.mapAccounts`; upstream `pkg/mapper/file/mapper.go`).
//!
//! Role ARNs are matched by their canonical form with the path stripped (see
//! [`role_arn_key`]); user ARNs by their canonical, lower-cased form. Entries are tried
//! in the order they are written and the first match wins.

use tracing::{info, warn};

use super::{IdentityMapping, MapError, Mapper};
use crate::config::ServerConfig;
use crate::config::types::{
    BackendMode, MappingError, RoleMapping, UserMapping, role_arn_key, user_arn_key,
};
use crate::identity::Identity;

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

/// The MountedFile backend.
#[derive(Debug)]
pub struct FileMapper {
    roles: Vec<(RoleKey, RoleMapping)>,
    users: Vec<(String, UserMapping)>,
    accounts: Vec<String>,
    sso_enabled: bool,
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
        let mut role_keys = Vec::with_capacity(roles.len());
        for (index, m) in roles.iter().enumerate() {
            let err = |reason| Error::Role { index, reason };
            m.validate().map_err(err)?;
            let key = if m.rolearn.is_empty() {
                RoleKey::Sso
            } else {
                let key = role_arn_key(&m.rolearn).map_err(err)?;
                // upstream: pkg/mapper/file/mapper.go keys roles by the ARN as written,
                // so a role with a path never matches; we strip the path. Two roles with
                // one name under different paths then collide: say so.
                if let Some((_, first)) = role_keys.iter().find(
                    |(k, _): &&(RoleKey, RoleMapping)| matches!(k, RoleKey::Arn(k) if *k == key),
                ) {
                    warn!(
                        role = %m.rolearn,
                        earlier = %first.rolearn,
                        key = %key,
                        "two role mappings have the same ARN once the path is removed; the first one is used"
                    );
                }
                RoleKey::Arn(key)
            };
            info!(role = %m.key(), username = %m.username, groups = ?m.groups, "mapping IAM role");
            role_keys.push((key, m.clone()));
        }
        let mut user_keys = Vec::with_capacity(users.len());
        for (index, m) in users.iter().enumerate() {
            let err = |reason| Error::User { index, reason };
            m.validate().map_err(err)?;
            let key = user_arn_key(&m.userarn).map_err(err)?;
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
            sso_enabled,
        })
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
        let arn = identity.canonical_arn.to_lowercase();
        let role = self.roles.iter().find(|(key, m)| match key {
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
        if let Some((_, m)) = self.users.iter().find(|(k, _)| *k == arn) {
            return Ok(IdentityMapping {
                key: arn,
                username: m.username.clone(),
                groups: m.groups.clone(),
            });
        }
        Err(MapError::NotMapped)
    }

    fn is_account_allowed(&self, account: &str) -> bool {
        self.accounts.iter().any(|a| a == account)
    }
}
