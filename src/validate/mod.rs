//! `validate`: lint a config file, a DynamicFile (access entries) or an `aws-auth`
//! ConfigMap before it is applied.
//!
//! What the server would reject or skip is found by the server's own parsers
//! ([`ServerConfig::resolve`], [`configmap::parse`], [`dynamic_file::check`]) and is an
//! error here, with the server's reason. [`entries`] adds what the server accepts but is
//! likely a mistake (warnings, and an error for an empty username).

pub mod entries;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::config::types::BackendMode;
use crate::config::{ConfigFile, ServerConfig, ServerFlags};
use crate::mapper::configmap::{self, MAP_ACCOUNTS, MAP_ROLES, MAP_USERS, ParseIssue};
use crate::mapper::dynamic_file;
use entries::{Context, Kind};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The server rejects or skips it, or it cannot work.
    Error,
    /// Accepted, but probably not what was meant.
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The file (or `kube-system/aws-auth` when read from the cluster).
    pub file: String,
    /// The entry, e.g. `mapRoles[1]`, or the section; none for the whole file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The entry's ARN, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Every finding, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
    /// How many are errors.
    pub errors: usize,
    /// How many are warnings.
    pub warnings: usize,
}

impl Report {
    /// A report of `findings`.
    pub fn new(findings: Vec<Finding>) -> Self {
        let errors = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        Self {
            warnings: findings.len() - errors,
            errors,
            findings,
        }
    }

    /// The text form: one line per finding, then the counts.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            out.push_str(&format!("{level}: {}", f.file));
            if let Some(e) = &f.entry {
                out.push_str(&format!(": {e}"));
            }
            if let Some(a) = &f.arn {
                out.push_str(&format!(" ({a})"));
            }
            out.push_str(&format!(": {}\n", f.message));
        }
        out.push_str(&format!(
            "{} error(s), {} warning(s)\n",
            self.errors, self.warnings
        ));
        out
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// The first line of a parser's message (they add a multi-line source excerpt).
fn first_line(message: &str) -> &str {
    let line = message.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line)
}

fn finding(severity: Severity, file: &str, entry: Option<String>, message: String) -> Finding {
    Finding {
        severity,
        file: file.to_owned(),
        entry,
        arn: None,
        message,
    }
}

/// The list at `key` of `value`, if it is one.
fn list(value: Option<&Value>) -> Vec<Value> {
    value.and_then(Value::as_array).cloned().unwrap_or_default()
}

/// Lints a config file as `server` reads it with `flags`. Returns the findings and, when
/// it resolves, the configuration (whose reserved prefixes apply to other sources).
pub fn config_file(path: &Path, flags: ServerFlags) -> (Vec<Finding>, Option<ServerConfig>) {
    let name = path.display().to_string();
    let file = match ConfigFile::load(path) {
        Ok(f) => f,
        Err(e) => {
            return (
                vec![finding(Severity::Error, &name, None, e.to_string())],
                None,
            );
        }
    };
    let mut out = Vec::new();
    let sso_role_match = flags
        .feature_gates
        .as_deref()
        .and_then(|g| g.parse::<crate::config::types::FeatureGates>().ok())
        .is_some_and(|g| g.sso_role_match);
    let config = match ServerConfig::resolve(flags, Some(&file)) {
        Ok((config, warnings)) => {
            out.extend(
                warnings
                    .into_iter()
                    .map(|w| finding(Severity::Warning, &name, None, w)),
            );
            Some(config)
        }
        Err(e) => {
            out.push(finding(Severity::Error, &name, None, e.to_string()));
            None
        }
    };
    let reserved = config
        .as_ref()
        .and_then(|c| c.reserved_prefixes.get(&BackendMode::MountedFile).cloned())
        .unwrap_or_default();
    let ctx = Context {
        reserved,
        sso_role_match,
    };
    for (key, kind) in [
        ("server.mapRoles", Kind::Roles),
        ("server.mapUsers", Kind::Users),
    ] {
        entries::check(&name, key, kind, &list(file.get(key)), &ctx, &mut out);
    }
    (out, config)
}

/// The reserved prefixes `config` sets for `mode`.
pub fn reserved_for(config: Option<&ServerConfig>, mode: BackendMode) -> Vec<String> {
    config
        .and_then(|c| c.reserved_prefixes.get(&mode).cloned())
        .unwrap_or_default()
}

/// Lints an `aws-auth` ConfigMap manifest (YAML or JSON) named `name`.
pub fn aws_auth_manifest(name: &str, text: &str, ctx: &Context) -> Vec<Finding> {
    let manifest: Value = match serde_saphyr::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return vec![finding(
                Severity::Error,
                name,
                None,
                format!("not valid YAML: {}", first_line(&e.to_string())),
            )];
        }
    };
    let mut out = Vec::new();
    let Some(root) = manifest.as_object() else {
        out.push(finding(
            Severity::Error,
            name,
            None,
            "not a ConfigMap manifest (expected a mapping with data:)".to_owned(),
        ));
        return out;
    };
    if root.get("kind").and_then(Value::as_str) != Some("ConfigMap") {
        out.push(finding(
            Severity::Warning,
            name,
            None,
            "kind is not ConfigMap".to_owned(),
        ));
    }
    // A section written outside `data:` (mis-indented) is not read at all.
    for (where_, map) in [
        ("the top level", Some(root)),
        ("metadata", root.get("metadata").and_then(Value::as_object)),
    ] {
        for key in [MAP_ROLES, MAP_USERS, MAP_ACCOUNTS] {
            if map.is_some_and(|m| m.contains_key(key)) {
                out.push(finding(
                    Severity::Error,
                    name,
                    Some(key.to_owned()),
                    format!("{key} is under {where_}, not under data: it is ignored (check its indentation)"),
                ));
            }
        }
    }
    let mut data = BTreeMap::new();
    match root.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                match v {
                    Value::String(s) => {
                        data.insert(k.clone(), s.clone());
                    }
                    _ => out.push(finding(
                        Severity::Error,
                        name,
                        Some(k.clone()),
                        "the value must be a string holding YAML (write `|` after the key)"
                            .to_owned(),
                    )),
                }
            }
        }
        Some(_) => out.push(finding(
            Severity::Error,
            name,
            None,
            "data must be a mapping".to_owned(),
        )),
    }
    out.extend(aws_auth_data(name, &data, ctx));
    out
}

/// A section written inside another's text (mis-indented): the server never sees it.
fn nested_sections(name: &str, data: &BTreeMap<String, String>, out: &mut Vec<Finding>) {
    for (key, other) in [
        (MAP_ROLES, MAP_USERS),
        (MAP_USERS, MAP_ROLES),
        (MAP_ROLES, MAP_ACCOUNTS),
        (MAP_USERS, MAP_ACCOUNTS),
    ] {
        if let Some(text) = data.get(key)
            && text
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{other}:")))
        {
            out.push(finding(
                Severity::Error,
                name,
                Some(key.to_owned()),
                format!(
                    "{other} is written inside the text of {key}: it must be its own key under data (check its indentation)"
                ),
            ));
        }
    }
}

/// Lints the `data` of an `aws-auth` ConfigMap.
pub fn aws_auth_data(name: &str, data: &BTreeMap<String, String>, ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for k in data.keys() {
        if ![MAP_ROLES, MAP_USERS, MAP_ACCOUNTS].contains(&k.as_str()) {
            let hint = [MAP_ROLES, MAP_USERS, MAP_ACCOUNTS]
                .iter()
                .find(|known| known.eq_ignore_ascii_case(k))
                .map(|known| format!(" (keys are case-sensitive: {known})"))
                .unwrap_or_default();
            out.push(finding(
                Severity::Warning,
                name,
                Some(k.clone()),
                format!("data key {k:?} is ignored{hint}"),
            ));
        }
    }
    // The server's verdict.
    let raw = |key: &str| -> Vec<Value> {
        data.get(key)
            .and_then(|t| serde_saphyr::from_str::<Value>(t).ok())
            .map(|v| list(Some(&v)))
            .unwrap_or_default()
    };
    let parsed = configmap::parse(data);
    for issue in &parsed.issues {
        let (message, arn) = match issue {
            ParseIssue::Section { message, .. } => (
                format!(
                    "cannot parse: the server ignores this version of the section (keeps its previous mappings): {}",
                    first_line(message)
                ),
                None,
            ),
            ParseIssue::Entry {
                key,
                index,
                message,
            } => {
                let kind = if *key == MAP_USERS {
                    Kind::Users
                } else {
                    Kind::Roles
                };
                (
                    format!("the server skips this entry: {message}"),
                    raw(key)
                        .get(*index)
                        .and_then(|item| entries::arn_of(item, kind)),
                )
            }
        };
        out.push(Finding {
            arn,
            ..finding(Severity::Error, name, Some(issue.entry()), message)
        });
    }
    nested_sections(name, data, &mut out);
    for (key, kind) in [(MAP_ROLES, Kind::Roles), (MAP_USERS, Kind::Users)] {
        entries::check(name, key, kind, &raw(key), ctx, &mut out);
    }
    if let Some(accounts) = parsed.accounts {
        entries::check_accounts(name, MAP_ACCOUNTS, &accounts, &mut out);
    }
    out
}

/// Lints a DynamicFile (access entries) at `path`; `strict` is
/// `server.dynamicfileUserIDStrict`.
pub fn dynamic_file(path: &Path, strict: bool, ctx: &Context) -> Vec<Finding> {
    let name = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return vec![finding(
                Severity::Error,
                &name,
                None,
                format!("cannot read: {e}"),
            )];
        }
    };
    let mut out = Vec::new();
    if let Err(e) = dynamic_file::check(path, &bytes, strict) {
        out.push(finding(
            Severity::Error,
            &name,
            None,
            format!("the server rejects the whole file: {e}"),
        ));
    }
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        return out;
    };
    let get = |k: &str| {
        value
            .as_object()
            .and_then(|o| o.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)))
            .map(|(_, v)| v)
    };
    for (key, kind) in [(MAP_ROLES, Kind::Roles), (MAP_USERS, Kind::Users)] {
        entries::check(&name, key, kind, &list(get(key)), ctx, &mut out);
    }
    out
}
