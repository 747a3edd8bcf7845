//! What the chain tried while mapping one identity, gathered by the same code that
//! decides (`explain` prints it).
//!
//! The server maps with a disabled [`Trace`]: every recording call takes a closure that
//! is only run when the trace is on, so the request path builds no strings. `explain`
//! maps with an enabled one, through the very same [`super::chain::Chain::map_traced`]
//! and [`super::table::Table::lookup_traced`], so what it prints cannot drift from
//! what the server decides.

use serde::Serialize;

use crate::config::types::BackendMode;

/// One entry of a backend's source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The list it is in: `mapRoles` or `mapUsers` (`server.` omitted).
    pub section: &'static str,
    /// Its position in the list, from 0, among the entries the backend loaded.
    pub index: usize,
    /// The ARN as written, or `sso:<permission set>@<account>` for an SSO entry.
    pub arn: String,
    /// The username template.
    pub username: String,
    /// The group templates.
    pub groups: Vec<String>,
}

/// How a backend answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// An entry matched and the user was mapped.
    Matched,
    /// An entry matched but a template could not be rendered: denied.
    RenderError,
    /// An entry matched but the rendered username has a reserved prefix: denied.
    ReservedPrefix,
    /// The backend refused the identity (its reason is collected; the chain goes on).
    Refused,
    /// No entry matched, but the caller's account is in the backend's `mapAccounts`.
    AccountAllowed,
    /// No entry matched and the account is not allowed: the chain goes on.
    NotMapped,
}

/// A template and what it rendered to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rendered {
    /// `username` or `group`.
    pub field: &'static str,
    /// The template as written.
    pub template: String,
    /// The rendered value.
    pub value: String,
}

/// What one backend was asked and answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTrace {
    /// The backend's mode name.
    pub backend: &'static str,
    /// Its answer.
    pub outcome: Outcome,
    /// Why, for every outcome but `matched` and `notMapped`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The entry that matched, when the backend says which.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<Entry>,
    /// Observations: near misses, path stripping, case, shadowed entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The templates rendered, in order (username first).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rendered: Vec<Rendered>,
}

/// The record of one mapping; disabled (records nothing) unless made with [`Trace::on`].
#[derive(Debug, Default)]
pub struct Trace {
    enabled: bool,
    entry: Option<Entry>,
    notes: Vec<String>,
    rendered: Vec<Rendered>,
    backends: Vec<BackendTrace>,
}

impl Trace {
    /// A trace that records nothing (the server's).
    pub fn off() -> Self {
        Self::default()
    }

    /// A trace that records.
    pub fn on() -> Self {
        Self {
            enabled: true,
            ..Self::default()
        }
    }

    /// Whether it records.
    pub fn is_on(&self) -> bool {
        self.enabled
    }

    /// Records the entry that matched in the backend being asked.
    pub fn matched(&mut self, entry: impl FnOnce() -> Entry) {
        if self.enabled {
            self.entry = Some(entry());
        }
    }

    /// Records an observation about the backend being asked.
    pub fn note(&mut self, note: impl FnOnce() -> String) {
        if self.enabled {
            self.notes.push(note());
        }
    }

    /// Records a rendered template.
    pub fn rendered(&mut self, field: &'static str, template: &str, value: &str) {
        if self.enabled {
            self.rendered.push(Rendered {
                field,
                template: template.to_owned(),
                value: value.to_owned(),
            });
        }
    }

    /// Closes the record of the backend being asked with its answer.
    pub fn answered(&mut self, mode: BackendMode, outcome: Outcome, reason: Option<&str>) {
        if self.enabled {
            self.backends.push(BackendTrace {
                backend: mode.name(),
                outcome,
                reason: reason.map(str::to_owned),
                entry: self.entry.take(),
                notes: std::mem::take(&mut self.notes),
                rendered: std::mem::take(&mut self.rendered),
            });
        }
    }

    /// The backends asked, in order.
    pub fn backends(&self) -> &[BackendTrace] {
        &self.backends
    }

    /// The backends asked, in order (by value).
    pub fn into_backends(self) -> Vec<BackendTrace> {
        self.backends
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_records_nothing_and_runs_no_closure() {
        let mut t = Trace::off();
        t.note(|| unreachable!("not run when off"));
        t.matched(|| unreachable!("not run when off"));
        t.rendered("username", "a", "b");
        t.answered(BackendMode::MountedFile, Outcome::Matched, None);
        assert!(t.backends().is_empty());
    }

    #[test]
    fn on_groups_records_by_backend() {
        let mut t = Trace::on();
        t.note(|| "first".into());
        t.answered(BackendMode::MountedFile, Outcome::NotMapped, None);
        t.rendered("username", "u:{{AccountID}}", "u:1");
        t.answered(BackendMode::DynamicFile, Outcome::Matched, None);
        let b = t.into_backends();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].notes, ["first"]);
        assert!(b[0].rendered.is_empty());
        assert_eq!(b[1].backend, "DynamicFile");
        assert_eq!(b[1].rendered[0].value, "u:1");
        assert!(b[1].notes.is_empty());
    }
}
