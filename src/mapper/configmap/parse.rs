//! Reading the `aws-auth` ConfigMap's data, section by section, entry by entry (pure; see
//! the [module docs](super) for what happens to a bad edit).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{MAP_ACCOUNTS, MAP_ROLES, MAP_USERS};
use crate::config::types::{RoleMapping, UserMapping, role_arn_key, user_arn_key};

/// One problem in an `aws-auth` ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIssue {
    /// A whole section could not be read; its previous mappings stay in force.
    #[error("{key}: cannot parse, keeping its previous mappings: {message}")]
    Section {
        /// The data key (`mapRoles`, …).
        key: &'static str,
        /// The parser's message.
        message: String,
    },
    /// One entry is invalid and was skipped.
    #[error("{key}[{index}]: skipping invalid entry: {message}")]
    Entry {
        /// The data key.
        key: &'static str,
        /// The entry's position in the list (from 0).
        index: usize,
        /// What is wrong.
        message: String,
    },
}

impl ParseIssue {
    /// What the issue is about: the section (`mapRoles`) or the entry (`mapRoles[1]`).
    pub fn entry(&self) -> String {
        match self {
            Self::Section { key, .. } => (*key).to_owned(),
            Self::Entry { key, index, .. } => format!("{key}[{index}]"),
        }
    }
}

/// The mappings of an `aws-auth` ConfigMap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsAuth {
    /// `mapRoles`.
    pub roles: Vec<RoleMapping>,
    /// `mapUsers`.
    pub users: Vec<UserMapping>,
    /// `mapAccounts`.
    pub accounts: Vec<String>,
}

/// A parsed ConfigMap: each section is `None` when it could not be read at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedAwsAuth {
    /// `mapRoles`, valid entries only.
    pub roles: Option<Vec<RoleMapping>>,
    /// `mapUsers`, valid entries only.
    pub users: Option<Vec<UserMapping>>,
    /// `mapAccounts`.
    pub accounts: Option<Vec<String>>,
    /// Everything that was skipped, and why.
    pub issues: Vec<ParseIssue>,
}

impl ParsedAwsAuth {
    /// The mappings in force after this edit: unreadable sections keep `previous`'s.
    pub fn apply(self, previous: &AwsAuth) -> AwsAuth {
        AwsAuth {
            roles: self.roles.unwrap_or_else(|| previous.roles.clone()),
            users: self.users.unwrap_or_else(|| previous.users.clone()),
            accounts: self.accounts.unwrap_or_else(|| previous.accounts.clone()),
        }
    }

    /// Every section, readable or not, with nothing skipped (a strict parse).
    pub fn into_strict(self) -> Result<AwsAuth, Vec<ParseIssue>> {
        match self {
            Self {
                roles: Some(roles),
                users: Some(users),
                accounts: Some(accounts),
                issues,
            } if issues.is_empty() => Ok(AwsAuth {
                roles,
                users,
                accounts,
            }),
            Self { issues, .. } => Err(issues),
        }
    }
}

/// Upstream skips values that are blank or exactly ``` `` ```, `""` or `''`.
fn is_empty_value(text: &str) -> bool {
    matches!(text.trim(), "" | "``" | "\"\"" | "''")
}

/// Parses a section into a list of YAML values with lower-cased object keys.
fn section_items(text: &str) -> Result<Vec<Value>, String> {
    let value: Value = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    match crate::config::file::lowercase_keys(value) {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        _ => Err("expected a list".to_owned()),
    }
}

fn parse_section<T: DeserializeOwned>(
    data: &BTreeMap<String, String>,
    key: &'static str,
    validate: impl Fn(&T) -> Result<(), String>,
    issues: &mut Vec<ParseIssue>,
) -> Option<Vec<T>> {
    let Some(text) = data.get(key).filter(|t| !is_empty_value(t)) else {
        return Some(Vec::new());
    };
    let items = match section_items(text) {
        Ok(items) => items,
        Err(message) => {
            issues.push(ParseIssue::Section { key, message });
            return None;
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match serde_json::from_value::<T>(item)
            .map_err(|e| e.to_string())
            .and_then(|entry| validate(&entry).map(|()| entry))
        {
            Ok(entry) => out.push(entry),
            Err(message) => issues.push(ParseIssue::Entry {
                key,
                index,
                message,
            }),
        }
    }
    Some(out)
}

/// `mapAccounts` keeps each entry's literal text (`012345678901` stays as written).
fn parse_accounts(
    data: &BTreeMap<String, String>,
    issues: &mut Vec<ParseIssue>,
) -> Option<Vec<String>> {
    let Some(text) = data.get(MAP_ACCOUNTS).filter(|t| !is_empty_value(t)) else {
        return Some(Vec::new());
    };
    match serde_saphyr::from_str::<Option<Vec<String>>>(text) {
        Ok(accounts) => Some(accounts.unwrap_or_default()),
        Err(e) => {
            issues.push(ParseIssue::Section {
                key: MAP_ACCOUNTS,
                message: e.to_string(),
            });
            None
        }
    }
}

/// Checks a role mapping as upstream's `RoleMapping.Validate` does, plus that a
/// `rolearn` has a key ([`role_arn_key`]), as in every other backend.
///
/// upstream: `pkg/mapper/configmap` compares the configured `rolearn` as written, so a
/// role with a path (`role/team/admin`) never matches (STS's assumed-role ARNs carry no
/// path); we strip the path as the MountedFile backend does.
pub(crate) fn validate_role(m: &RoleMapping) -> Result<(), String> {
    m.validate().map_err(|e| e.to_string())?;
    if m.sso.is_none() {
        role_arn_key(&m.rolearn).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Checks a user mapping: `userarn` is set and has a key ([`user_arn_key`]), as in the
/// MountedFile and DynamicFile backends.
///
/// upstream: `pkg/mapper/configmap` only lower-cases `userarn`, so an entry written in
/// a non-canonical form (an assumed-role ARN) never matches and an invalid one is
/// accepted silently; we canonicalise as upstream's file backend does and report an
/// invalid ARN as an invalid entry.
pub(crate) fn validate_user(m: &UserMapping) -> Result<(), String> {
    m.validate().map_err(|e| e.to_string())?;
    user_arn_key(&m.userarn).map_err(|e| e.to_string())?;
    Ok(())
}

/// Parses the data of an `aws-auth` ConfigMap, section by section (see the module docs).
pub fn parse(data: &BTreeMap<String, String>) -> ParsedAwsAuth {
    let mut issues = Vec::new();
    let roles = parse_section(data, MAP_ROLES, validate_role, &mut issues);
    let users = parse_section(data, MAP_USERS, validate_user, &mut issues);
    let accounts = parse_accounts(data, &mut issues);
    ParsedAwsAuth {
        roles,
        users,
        accounts,
        issues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapper::configmap::data;

    const NODE_ROLE: &str =
        "arn:aws:iam::555555555555:role/devel-worker-nodes-NodeInstanceRole-74RF4UBDUKL6";

    fn node_role(groups: &[&str]) -> RoleMapping {
        RoleMapping {
            rolearn: NODE_ROLE.to_owned(),
            username: "system:node:{{EC2PrivateDNSName}}".to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn admin_user() -> UserMapping {
        UserMapping {
            userarn: "arn:aws:iam::555555555555:user/admin".to_owned(),
            username: "admin".to_owned(),
            groups: vec!["system:masters".to_owned()],
            ..Default::default()
        }
    }

    /// The data of a ConfigMap manifest.
    fn fixture(manifest: &str) -> BTreeMap<String, String> {
        #[derive(serde::Deserialize)]
        struct ConfigMap {
            data: BTreeMap<String, String>,
        }
        serde_saphyr::from_str::<ConfigMap>(manifest).unwrap().data
    }

    #[test]
    fn upstream_fixtures() {
        let standard = AwsAuth {
            roles: vec![node_role(&["system:bootstrappers", "system:nodes"])],
            users: vec![admin_user()],
            accounts: vec!["555555555555".to_owned()],
        };
        let crazy = fixture(include_str!("testdata/aws-auth-crazy-case-keys.yaml"));
        assert_eq!(parse(&crazy).into_strict().unwrap(), standard);
        let open = fixture(include_str!("testdata/aws-auth-open-source-case-keys.yaml"));
        assert_eq!(parse(&open).into_strict().unwrap(), standard);
        // Top-level keys are case-sensitive.
        let lower = fixture(include_str!("testdata/aws-auth-lower-case-top-keys.yaml"));
        assert_eq!(lower.len(), 3);
        assert_eq!(parse(&lower).into_strict().unwrap(), AwsAuth::default());
        // The second group continues the first scalar.
        let space = fixture(include_str!("testdata/aws-auth-space-out-of-place.yaml"));
        assert_eq!(
            parse(&space).into_strict().unwrap().roles,
            [node_role(&["system:bootstrappers - system:nodes"])]
        );
    }

    #[test]
    fn empty_values_are_skipped() {
        for empty in ["", "  \n", "``", "\"\"", "''"] {
            let d = data(&[
                ("mapRoles", empty),
                ("mapUsers", empty),
                ("mapAccounts", empty),
            ]);
            assert_eq!(
                parse(&d).into_strict().unwrap(),
                AwsAuth::default(),
                "{empty:?}"
            );
        }
    }

    #[test]
    fn accounts_keep_their_literal_text() {
        let d = data(&[("mapAccounts", "- 012345678901\n- \"111122223333\"\n")]);
        assert_eq!(
            parse(&d).into_strict().unwrap().accounts,
            ["012345678901", "111122223333"]
        );
    }

    #[test]
    fn a_typo_skips_one_entry_and_names_it() {
        let d = data(&[(
            "mapRoles",
            "- rolearn: arn:aws:iam::1:role/a\n  username: a\n- rolarn: arn:aws:iam::1:role/b\n  username: b\n- rolearn: arn:aws:iam::1:role/c\n  username: c\n  groups: system:masters\n",
        )]);
        let parsed = parse(&d);
        assert_eq!(parsed.roles.as_ref().unwrap().len(), 1);
        assert_eq!(parsed.issues.len(), 2, "{:?}", parsed.issues);
        assert_eq!(
            parsed.issues[0].to_string(),
            "mapRoles[1]: skipping invalid entry: one of rolearn or SSO must be supplied"
        );
        assert!(parsed.issues[1].to_string().starts_with("mapRoles[2]: "));
    }

    #[test]
    fn an_unparsable_section_keeps_the_previous_one() {
        let previous = AwsAuth {
            roles: vec![node_role(&["system:nodes"])],
            users: vec![admin_user()],
            accounts: vec!["1".to_owned()],
        };
        // Unquoted {{SessionName}} is a YAML flow mapping: a syntax error here.
        let d = data(&[
            (
                "mapRoles",
                "- rolearn: arn:aws:iam::1:role/a\n  username: {{SessionName}}\n",
            ),
            ("mapUsers", ""),
            ("mapAccounts", "- 1\n"),
        ]);
        let parsed = parse(&d);
        assert!(parsed.roles.is_none());
        assert!(matches!(
            parsed.issues[..],
            [ParseIssue::Section {
                key: "mapRoles",
                ..
            }]
        ));
        let next = parsed.apply(&previous);
        assert_eq!(next.roles, previous.roles);
        assert!(next.users.is_empty(), "a readable empty section clears");
        // Not a list at all.
        let parsed = parse(&data(&[("mapUsers", "userarn: x\n")]));
        assert!(parsed.users.is_none());
    }

    #[test]
    fn sso_entries_validate() {
        let ok = "- sso:\n    permissionSetName: ViewOnlyAccess\n    accountID: \"012345678912\"\n  username: v\n";
        assert!(parse(&data(&[("mapRoles", ok)])).issues.is_empty());
        let bad = "- sso:\n    permissionSetName: View*\n    accountID: \"012345678912\"\n  username: v\n- sso:\n    permissionSetName: V\n    accountID: \"0123\"\n  username: v\n- rolearn: arn:aws:iam::1:role/x\n  sso:\n    permissionSetName: V\n    accountID: \"012345678912\"\n";
        let issues = parse(&data(&[("mapRoles", bad)])).issues;
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert!(issues[2].to_string().contains("only one of rolearn or SSO"));
    }
}
