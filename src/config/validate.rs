//! Validation of the server configuration's values: backend modes, mappings, reserved
//! prefixes and ARNs, with upstream's texts.

use std::collections::BTreeMap;

use super::types::{self, BackendMode, MappingError, RoleMapping, UserMapping};
use super::{ConfigFile, Error};
use crate::go::strconv::{quote, quote_slice};

/// Go's `utilerrors.NewAggregate(errs).Error()`: one message as it is, several
/// deduplicated, joined with `, ` and bracketed.
pub(crate) fn aggregate(messages: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for m in messages {
        if !seen.contains(&m.as_str()) {
            seen.push(m);
        }
    }
    if seen.len() == 1 {
        seen[0].to_owned()
    } else {
        format!("[{}]", seen.join(", "))
    }
}

/// Validates a backend-mode list as upstream's `ValidateBackendMode`: every name known
/// (deprecated `File`/`ConfigMap` accepted with a warning), no duplicates, at least one.
/// Returns the modes (new names, in order) and the deprecation warnings.
// upstream: pkg/mapper/mapper.go checks duplicates on the names as written, so
// `File,MountedFile` would build two file backends; we also reject duplicates after
// resolving the deprecated names.
pub fn validate_backend_modes(names: &[String]) -> Result<(Vec<BackendMode>, Vec<String>), Error> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut modes = Vec::new();
    for name in names {
        match BackendMode::parse(name) {
            Some((mode, deprecated)) => {
                if let Some(old) = deprecated {
                    warnings.push(format!(
                        "warning: backend-mode {} is deprecated, use {} instead",
                        quote(old),
                        quote(mode.name())
                    ));
                }
                modes.push(mode);
            }
            None => errors.push(format!("backend-mode {} is not a valid mode", quote(name))),
        }
    }
    let mut distinct = modes.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != modes.len() {
        errors.push(format!(
            "backend-mode {} has duplicates",
            quote_slice(names)
        ));
    }
    if names.is_empty() {
        errors.push("at least one backend-mode must be specified".to_owned());
    }
    if errors.is_empty() {
        Ok((modes, warnings))
    } else {
        Err(Error::BackendModes(aggregate(&errors)))
    }
}

/// Splits command-line backend modes the way pflag's string slice does (commas), and
/// drops empty items.
pub(super) fn split_modes(items: &[String]) -> Vec<String> {
    items
        .iter()
        .flat_map(|i| i.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One `server.reservedPrefixConfig` entry (keys already lower-cased by [`ConfigFile`]).
#[derive(Debug, serde::Deserialize)]
struct ReservedPrefixEntry {
    #[serde(default)]
    backendmode: String,
    #[serde(default)]
    usernameprefixreservelist: Vec<String>,
}

/// The config file's MountedFile mappings and reserved prefixes, decoded.
#[derive(Debug, Default)]
pub(super) struct Mappings {
    pub roles: Vec<RoleMapping>,
    pub users: Vec<UserMapping>,
    pub accounts: Vec<String>,
    pub reserved_prefixes: BTreeMap<BackendMode, Vec<String>>,
}

impl Mappings {
    /// Decodes the mapping sections of `file` (none without a file), in upstream's
    /// `getConfig()` order. A reserved-prefix entry for an unknown mode is a warning.
    pub fn read(file: Option<&ConfigFile>, warnings: &mut Vec<String>) -> Result<Self, Error> {
        let Some(f) = file else {
            return Ok(Self::default());
        };
        let roles = f
            .get_as::<Vec<RoleMapping>>("server.mapRoles")
            .map_err(|e| Error::RoleMappings(e.to_string()))?
            .unwrap_or_default();
        let users = f
            .get_as::<Vec<UserMapping>>("server.mapUsers")
            .map_err(|e| Error::UserMappings(e.to_string()))?
            .unwrap_or_default();
        let accounts = f
            .get_string_list("server.mapAccounts")
            .map_err(|e| Error::AccountMappings(e.to_string()))?
            .unwrap_or_default();
        let reserved = f
            .get_as::<Vec<ReservedPrefixEntry>>("server.reservedPrefixConfig")
            .map_err(|e| Error::ReservedPrefixConfig(e.to_string()))?
            .unwrap_or_default();
        let mut reserved_prefixes = BTreeMap::new();
        for entry in reserved {
            match BackendMode::parse(&entry.backendmode) {
                Some((mode, _)) => {
                    // Later entries for the same mode win, as upstream's map assignment.
                    reserved_prefixes.insert(mode, entry.usernameprefixreservelist);
                }
                None => warnings.push(format!(
                    "server.reservedPrefixConfig: backend-mode {:?} is not a valid mode; entry ignored",
                    entry.backendmode
                )),
            }
        }
        Ok(Self {
            roles,
            users,
            accounts,
            reserved_prefixes,
        })
    }

    /// Validates every mapping, whichever backends are configured, so a typo fails at
    /// startup (and in `init`) rather than when a backend is switched on. An account that
    /// can never match is a warning.
    // upstream: pkg/mapper/file/mapper.go validates only when MountedFile is built.
    pub fn validate(&self, warnings: &mut Vec<String>) -> Result<(), Error> {
        for (i, m) in self.roles.iter().enumerate() {
            let named = |e: MappingError| Error::RoleMappings(format!("server.mapRoles[{i}]: {e}"));
            m.validate().map_err(named)?;
            if !m.rolearn.is_empty() {
                types::role_arn_key(&m.rolearn).map_err(named)?;
            }
        }
        for (i, m) in self.users.iter().enumerate() {
            let named = |e: MappingError| Error::UserMappings(format!("server.mapUsers[{i}]: {e}"));
            m.validate().map_err(named)?;
            types::user_arn_key(&m.userarn).map_err(named)?;
        }
        for account in &self.accounts {
            if !types::is_account_id(account) {
                warnings.push(format!(
                    "server.mapAccounts: {account:?} is not a 12-digit account ID and will never match"
                ));
            }
        }
        Ok(())
    }
}

/// `Ok` when `arn`, if set, has an ARN's shape (`arn:` and six `:`-separated sections);
/// else the error `invalid` makes of it.
pub(super) fn check_arn(arn: Option<&String>, invalid: fn(String) -> Error) -> Result<(), Error> {
    match arn {
        Some(a) if crate::arn::parse(a).is_err() => Err(invalid(a.clone())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are quoted as Go's `%q` quotes them (`\x1b`, not Rust's `\u{1b}`).
    #[test]
    fn backend_mode_errors_quote_as_go_does() {
        let e = validate_backend_modes(&["Bad\u{1b}".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(r#"backend-mode "Bad\x1b" is not a valid mode"#),
            "{e}"
        );
        let e = validate_backend_modes(&["MountedFile".to_owned(), "File".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(r#"backend-mode ["MountedFile" "File"] has duplicates"#),
            "{e}"
        );
    }

    #[test]
    fn command_line_modes_split_on_commas() {
        let items = [
            "MountedFile, CRD".to_owned(),
            ",".to_owned(),
            "EKSConfigMap".to_owned(),
        ];
        assert_eq!(split_modes(&items), ["MountedFile", "CRD", "EKSConfigMap"]);
    }

    #[test]
    fn arns_are_checked_for_shape() {
        let good = "arn:aws:iam::123456789012:role/r".to_owned();
        assert!(check_arn(Some(&good), Error::SourceArn).is_ok());
        assert!(check_arn(None, Error::SourceArn).is_ok());
        let e = check_arn(Some(&"nope".to_owned()), Error::SourceArn).unwrap_err();
        assert_eq!(e.to_string(), "sourcearn nope is not a valid arn");
    }
}
