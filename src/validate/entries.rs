//! Checks of single `mapRoles`/`mapUsers`/`mapAccounts` entries that the server accepts
//! but that are likely mistakes: unknown or oddly spelt keys, an empty username, a role
//! ARN with a path, entries shadowed by earlier ones, reserved username prefixes,
//! `system:masters` grants and SSO entries the feature gate leaves unused.
//!
//! Whether the server accepts an entry at all is the server parsers' verdict, reported
//! by the caller; these checks only add to it.

use serde_json::Value;

use super::{Finding, Severity};
use crate::config::types::{RoleMapping, UserMapping, is_account_id, role_arn_key, user_arn_key};

/// The keys of a role entry, lower-cased.
const ROLE_KEYS: &[&str] = &["rolearn", "sso", "username", "groups", "userid"];
/// The keys of a user entry, lower-cased.
const USER_KEYS: &[&str] = &["userarn", "username", "groups", "userid"];

/// Prefixes EKS reserves for its own users (warned about even when the server is not
/// configured to refuse them).
pub const EKS_RESERVED: &[&str] = &["aws:", "iam:", "amazon:", "eks:"];

/// What the checks need to know about the server that reads the entries.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The prefixes the server refuses for this backend (`server.reservedPrefixConfig`).
    pub reserved: Vec<String>,
    /// Whether `SSORoleMatch` is on.
    pub sso_role_match: bool,
}

/// Which list is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `mapRoles`.
    Roles,
    /// `mapUsers`.
    Users,
}

/// Levenshtein distance, for "did you mean" on short key names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The entry's ARN as written, for naming it in findings.
pub fn arn_of(item: &Value, kind: Kind) -> Option<String> {
    let want = match kind {
        Kind::Roles => "rolearn",
        Kind::Users => "userarn",
    };
    item.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(want))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_owned)
}

/// A finding's severity and message, before it is placed.
type Note = (Severity, String);

/// Unknown and oddly spelt keys of one entry.
fn key_notes(object: &serde_json::Map<String, Value>, known: &[&str], notes: &mut Vec<Note>) {
    for key in object.keys() {
        let lower = key.to_ascii_lowercase();
        if known.contains(&lower.as_str()) {
            if lower != *key {
                notes.push((
                    Severity::Warning,
                    format!("key {key:?} is read as {lower:?} (keys are case-insensitive here, but not in every tool that edits this list)"),
                ));
            }
            continue;
        }
        let hint = known
            .iter()
            .find(|k| distance(&lower, k) <= 2)
            .map(|k| format!(" (did you mean {k:?}?)"))
            .unwrap_or_default();
        notes.push((
            Severity::Warning,
            format!("unknown key {key:?} is ignored{hint}"),
        ));
    }
}

/// The role-only checks; returns the entry's username, groups and lookup key.
fn role_notes(
    m: RoleMapping,
    ctx: &Context,
    notes: &mut Vec<Note>,
) -> (String, Vec<String>, Option<String>) {
    if m.sso.is_some() && !ctx.sso_role_match {
        notes.push((
            Severity::Warning,
            "sso entry is not used: the SSORoleMatch feature gate is off".to_owned(),
        ));
    }
    if !m.rolearn.is_empty()
        && let Ok((_, canonical)) = crate::arn::canonicalize(&m.rolearn)
        && crate::arn::strip_path(&canonical).is_ok_and(|s| s != canonical)
    {
        notes.push((
            Severity::Warning,
            "the role ARN has a path: STS reports roles without it, so it is matched by role name (upstream never matches it)".to_owned(),
        ));
    }
    let key = role_arn_key(&m.rolearn).ok().filter(|_| m.sso.is_none());
    (m.username, m.groups, key)
}

/// The username and groups checks.
fn grant_notes(username: &str, groups: &[String], ctx: &Context, notes: &mut Vec<Note>) {
    if username.is_empty() {
        notes.push((
            Severity::Error,
            "username is missing or empty: the identity would be authenticated with an empty username".to_owned(),
        ));
    }
    if let Some(p) = ctx
        .reserved
        .iter()
        .find(|p| !p.is_empty() && username.starts_with(p.as_str()))
    {
        notes.push((
            Severity::Error,
            format!("username {username:?} has the reserved prefix {p:?}: the server refuses it"),
        ));
    } else if let Some(p) = EKS_RESERVED.iter().find(|p| username.starts_with(*p)) {
        notes.push((
            Severity::Warning,
            format!("username {username:?} has the prefix {p:?}, which EKS reserves"),
        ));
    }
    if groups.iter().any(|g| g == "system:masters") {
        notes.push((
            Severity::Warning,
            "grants system:masters (cluster-admin that RBAC cannot restrict)".to_owned(),
        ));
    }
}

/// Checks the entries `items` of list `section` (e.g. `mapRoles`) of `file`.
pub fn check(
    file: &str,
    section: &str,
    kind: Kind,
    items: &[Value],
    ctx: &Context,
    out: &mut Vec<Finding>,
) {
    let known = match kind {
        Kind::Roles => ROLE_KEYS,
        Kind::Users => USER_KEYS,
    };
    // (key, index, ARN) of the entries seen, for duplicates.
    let mut seen: Vec<(String, usize, String)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(object) = item.as_object() else {
            continue;
        };
        let arn = arn_of(item, kind);
        let mut notes = Vec::new();
        key_notes(object, known, &mut notes);
        let lowered = crate::config::file::lowercase_keys(item.clone());
        let parsed = match kind {
            Kind::Roles => serde_json::from_value::<RoleMapping>(lowered)
                .ok()
                .map(|m| role_notes(m, ctx, &mut notes)),
            Kind::Users => serde_json::from_value::<UserMapping>(lowered)
                .ok()
                .map(|m| (m.username, m.groups, user_arn_key(&m.userarn).ok())),
        };
        if let Some((username, groups, key)) = parsed {
            grant_notes(&username, &groups, ctx, &mut notes);
            if let Some(key) = key {
                let arn_now = arn.clone().unwrap_or_default();
                match seen.iter().find(|(k, _, _)| *k == key) {
                    Some((_, first, first_arn)) => {
                        let how = if *first_arn == arn_now {
                            "duplicate"
                        } else {
                            "shadowed"
                        };
                        notes.push((
                            Severity::Warning,
                            format!("{how}: {section}[{first}] ({first_arn}) has the same key {key}; the first entry wins and this one is never used"),
                        ));
                    }
                    None => seen.push((key, index, arn_now)),
                }
            }
        }
        out.extend(notes.into_iter().map(|(severity, message)| Finding {
            severity,
            file: file.to_owned(),
            entry: Some(format!("{section}[{index}]")),
            arn: arn.clone(),
            message,
        }));
    }
}

/// Checks `mapAccounts` entries.
pub fn check_accounts(file: &str, section: &str, accounts: &[String], out: &mut Vec<Finding>) {
    for (index, a) in accounts.iter().enumerate() {
        if !is_account_id(a) {
            out.push(Finding {
                severity: Severity::Warning,
                file: file.to_owned(),
                entry: Some(format!("{section}[{index}]")),
                arn: None,
                message: format!("{a:?} is not a 12-digit account ID and will never match"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("rolarn", "rolearn"), 1);
        assert_eq!(distance("usrname", "username"), 1);
        assert_eq!(distance("groups", "groups"), 0);
        assert!(distance("foo", "rolearn") > 2);
    }
}
