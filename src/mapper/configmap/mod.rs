//! EKSConfigMap: mappings from the `kube-system/aws-auth` ConfigMap.
//!
//! The ConfigMap's data keys `mapRoles`, `mapUsers` and `mapAccounts` (case-sensitive,
//! as upstream) each hold a YAML document in a string. A background task lists and then
//! watches the one object (`metadata.name=aws-auth`) with `kube::runtime::watcher`, which
//! re-watches when the API server closes the stream and re-lists after errors; failed
//! attempts back off exponentially. Lookups are answered from memory.
//!
//! # What happens to a bad edit
//!
//! upstream: `pkg/mapper/configmap/configmap.go` replaces its state with whatever subset
//! of an edit parsed, so one YAML slip in `mapRoles` (a missing `|`, an unquoted
//! `{{SessionName}}`) drops every role mapping, node roles included. We apply an edit
//! **section by section** (`mapRoles`, `mapUsers`, `mapAccounts`):
//!
//! * a section that is not YAML, or not a list, keeps its **previous** mappings (it says
//!   nothing we could act on, and dropping it would lock everyone out);
//! * in a section that parses, each entry is checked on its own: an invalid entry (a
//!   typo'd key such as `rolarn:`, `groups:` that is not a list, a bad `sso:` block) is
//!   skipped and reported, and the valid entries replace the section's previous
//!   mappings — including removals, so revoking an entry takes effect even if another
//!   entry in the same edit is broken;
//! * an absent or empty section (empty, `""`, `''` or two backticks) has no mappings.
//!
//! Every problem is logged with the section, the entry's index and the reason;
//! `mapping_invalid_entries{backend="EKSConfigMap"}` holds the number of problems in the
//! current object, `mapping_invalid_entry{backend="EKSConfigMap",entry="mapRoles[1]"}`
//! is 1 for each skipped entry (or unreadable section, `entry="mapRoles"`), and
//! `mapping_reload_failures_total{backend="EKSConfigMap"}` counts edits that had any.
//! Deleting the ConfigMap clears every mapping, as upstream.
//!
//! # SSO roles
//!
//! `mapRoles` entries with an `sso:` block (IAM Identity Center permission sets) match
//! only with the `SSORoleMatch` feature gate, as upstream, using the corrected matcher
//! of [`crate::config::types::SsoArnMatcher::matches`] (explicit partitions work; permission set `Admin` does
//! not match `Admin_ReadOnly`'s roles). Entries are tried in the order written and the
//! first match wins.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

mod edit;
mod parse;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};

use super::metrics::{InvalidEntries, InvalidEntry, MapperMetrics};
use super::table::{RoleKey, Table, user_key};
use super::trace::Trace;
use super::{IdentityMapping, MapError, Mapper};
use crate::config::types::BackendMode;
use crate::identity::Identity;
use tokio_util::task::AbortOnDropHandle;

/// The ConfigMap's namespace.
pub const NAMESPACE: &str = "kube-system";
/// The ConfigMap's name.
pub const NAME: &str = "aws-auth";
/// Data key of the role mappings.
pub const MAP_ROLES: &str = "mapRoles";
/// Data key of the user mappings.
pub const MAP_USERS: &str = "mapUsers";
/// Data key of the allowed accounts.
pub const MAP_ACCOUNTS: &str = "mapAccounts";

pub use edit::{EditError, NewMapping, add};
pub(crate) use parse::validate_role;
pub use parse::{AwsAuth, ParseIssue, ParsedAwsAuth, parse};

/// The mappings in force and their lookup table.
#[derive(Debug, Default)]
struct Tables {
    source: AwsAuth,
    table: Table,
}

impl Tables {
    /// Indexes `source`; entries without a key were reported by [`parse`] and are left out.
    fn new(source: AwsAuth) -> Self {
        let mut table: Table = Table::default();
        for r in &source.roles {
            if let Ok(key) = RoleKey::of(r) {
                table.push_role(key, r.clone());
            }
        }
        for u in &source.users {
            if let Ok(key) = user_key(u) {
                table.push_user(key, u.clone());
            }
        }
        for a in &source.accounts {
            table.push_account(a.clone());
        }
        Self { source, table }
    }
}

/// Settings of the EKSConfigMap backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// Feature gate `SSORoleMatch`: `mapRoles` entries with `sso:` match.
    pub sso_role_match: bool,
}

#[derive(Debug)]
struct Shared {
    settings: Settings,
    tables: RwLock<Arc<Tables>>,
    ready: AtomicBool,
    metrics: MapperMetrics,
    /// The `mapping_invalid_entry` series of the current object.
    invalid: InvalidEntries,
}

/// The `mapping_invalid_entry` label of a problem: its section, or its entry.
fn invalid_entry(issue: &ParseIssue) -> InvalidEntry {
    match issue {
        ParseIssue::Section { key, .. } => InvalidEntry::section(key),
        ParseIssue::Entry { key, index, .. } => InvalidEntry::at(key, *index),
    }
}

impl Shared {
    fn current(&self) -> Arc<Tables> {
        match self.tables.read() {
            Ok(t) => Arc::clone(&t),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn replace(&self, source: AwsAuth) {
        let tables = Arc::new(Tables::new(source));
        match self.tables.write() {
            Ok(mut t) => *t = tables,
            Err(poisoned) => *poisoned.into_inner() = tables,
        }
    }

    fn apply_object(&self, cm: &ConfigMap) {
        let empty = BTreeMap::new();
        let data = cm.data.as_ref().unwrap_or(&empty);
        let parsed = parse(data);
        self.invalid
            .replace(parsed.issues.iter().map(invalid_entry));
        if !parsed.issues.is_empty() {
            self.metrics.reload_failed(BackendMode::EksConfigMap.into());
            for issue in &parsed.issues {
                tracing::error!(configmap = "kube-system/aws-auth", entry = %issue.entry(), "{issue}");
            }
        }
        let next = parsed.apply(&self.current().source);
        if !self.settings.sso_role_match {
            for (index, r) in next.roles.iter().enumerate() {
                if r.sso.is_some() {
                    tracing::warn!(
                        configmap = "kube-system/aws-auth",
                        entry = %format!("{MAP_ROLES}[{index}]"),
                        "sso role mapping ignored: the SSORoleMatch feature gate is off"
                    );
                }
            }
        }
        tracing::info!(
            roles = next.roles.len(),
            users = next.users.len(),
            accounts = next.accounts.len(),
            resource_version = cm.metadata.resource_version.as_deref().unwrap_or(""),
            "loaded aws-auth mappings"
        );
        self.replace(next);
    }

    fn clear(&self) {
        tracing::info!("aws-auth deleted, clearing its mappings");
        self.invalid.replace([]);
        self.replace(AwsAuth::default());
    }
}

/// The EKSConfigMap backend.
#[derive(Debug)]
pub struct ConfigMapMapper {
    shared: Arc<Shared>,
    /// The watch task, aborted when the mapper goes away (e.g. the chain is rebuilt).
    _task: AbortOnDropHandle<()>,
}

impl ConfigMapMapper {
    /// Starts watching `kube-system/aws-auth` through `client`. Returns at once; the
    /// mapper is ready ([`Mapper::is_ready`]) after the first successful list.
    /// Its metrics are registered nowhere.
    pub fn spawn(client: kube::Client) -> Self {
        Self::spawn_with(client, Settings::default(), MapperMetrics::default())
    }

    /// [`ConfigMapMapper::spawn`] with `settings`, counting on `metrics`.
    pub fn spawn_with(client: kube::Client, settings: Settings, metrics: MapperMetrics) -> Self {
        let shared = Arc::new(Shared {
            settings,
            tables: RwLock::default(),
            ready: AtomicBool::new(false),
            invalid: metrics.invalid_entries(BackendMode::EksConfigMap.into()),
            metrics,
        });
        let task = tokio::spawn(watch(client, Arc::clone(&shared)));
        Self {
            shared,
            _task: AbortOnDropHandle::new(task),
        }
    }

    /// The mappings currently in force.
    pub fn mappings(&self) -> AwsAuth {
        self.shared.current().source.clone()
    }
}

// upstream: pkg/mapper/configmap/configmap.go only watches (no initial list) and sleeps
// a fixed 5 s after a failed watch; we list, then watch from the list's resourceVersion,
// and back off exponentially, because a list is the only way to notice an aws-auth that
// was deleted while no watch was open, and a fixed retry hammers a struggling API server.
async fn watch(client: kube::Client, shared: Arc<Shared>) {
    let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    let mut events = watcher(api, config).default_backoff().boxed();
    // Whether the current (re-)list returned the object: a list without it means it
    // was deleted while we were not watching.
    let mut listed = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed = false,
            Ok(Event::InitApply(cm)) => {
                listed = true;
                shared.apply_object(&cm);
            }
            Ok(Event::InitDone) => {
                if !listed && !shared.current().source.eq(&AwsAuth::default()) {
                    shared.clear();
                }
                if !shared.ready.swap(true, Ordering::SeqCst) {
                    tracing::info!(found = listed, "aws-auth ConfigMap listed");
                }
            }
            Ok(Event::Apply(cm)) => shared.apply_object(&cm),
            Ok(Event::Delete(_)) => shared.clear(),
            Err(e) => {
                shared.metrics.configmap_watch_failed();
                tracing::warn!(error = %e, "Unable to re-establish watch on aws-auth, backing off");
            }
        }
    }
}

impl Mapper for ConfigMapMapper {
    fn mode(&self) -> BackendMode {
        BackendMode::EksConfigMap
    }

    fn map(&self, identity: &Identity) -> Result<IdentityMapping, MapError> {
        self.shared
            .current()
            .table
            .lookup(&identity.canonical_arn, self.shared.settings.sso_role_match)
    }

    fn map_traced(
        &self,
        identity: &Identity,
        trace: &mut Trace,
    ) -> Result<IdentityMapping, MapError> {
        self.shared.current().table.lookup_traced(
            &identity.canonical_arn,
            self.shared.settings.sso_role_match,
            trace,
        )
    }

    fn is_account_allowed(&self, account: &str) -> bool {
        self.shared.current().table.is_account_allowed(account)
    }

    fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn tables(d: &BTreeMap<String, String>) -> (Tables, Vec<ParseIssue>) {
        let parsed = parse(d);
        let issues = parsed.issues.clone();
        (Tables::new(parsed.apply(&AwsAuth::default())), issues)
    }

    #[test]
    fn user_arns_are_keyed_as_in_the_file_backends() {
        let (t, issues) = tables(&data(&[(
            "mapUsers",
            "- userarn: arn:aws:sts::555555555555:assumed-role/Deploy/ci\n  username: deploy\n- userarn: ARN:AWS:IAM::555555555555:USER/Path/Alice\n  username: alice\n- userarn: not an arn\n  username: nobody\n",
        )]));
        // The same ARN, the same key as MountedFile and DynamicFile give it.
        let file_key = |arn| crate::config::types::user_arn_key(arn).unwrap();
        assert_eq!(
            t.table
                .users()
                .iter()
                .map(|(k, _)| k.clone())
                .collect::<Vec<_>>(),
            [
                file_key("arn:aws:sts::555555555555:assumed-role/Deploy/ci"),
                file_key("ARN:AWS:IAM::555555555555:USER/Path/Alice"),
            ]
        );
        let found = |arn: &str| t.table.lookup(arn, false).map(|m| m.username);
        assert_eq!(
            found("arn:aws:iam::555555555555:role/Deploy").as_deref(),
            Ok("deploy")
        );
        assert_eq!(
            found("arn:aws:iam::555555555555:user/Path/Alice").as_deref(),
            Ok("alice")
        );
        assert_eq!(found("not an arn"), Err(MapError::NotMapped));
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(
            issues[0].to_string(),
            "mapUsers[2]: skipping invalid entry: arn 'not an arn' is invalid: 'arn: invalid prefix'"
        );
    }
}
