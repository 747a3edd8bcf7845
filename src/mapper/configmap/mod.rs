//! EKSConfigMap: mappings from the `kube-system/aws-auth` ConfigMap.
//!
//! The ConfigMap's data keys `mapRoles`, `mapUsers` and `mapAccounts` (case-sensitive,
//! as upstream) each hold a YAML document in a string. A background task lists and then
//! watches the one object (`metadata.name=aws-auth`) through [`kube_watch`]; the
//! mappings are a pure function of its events ([`reduce`]). Lookups are answered from
//! memory.
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

use std::sync::Arc;

mod edit;
mod parse;
mod reduce;
mod update;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::watcher;
use tokio_util::task::AbortOnDropHandle;

use self::reduce::{Effect, State, Tables};
use super::kube_watch::{self, Act};
use super::metrics::{InvalidEntries, InvalidEntry, MapperMetrics};
use super::published::Published;
use super::trace::Trace;
use super::{IdentityMapping, MapError, Mapper};
use crate::config::types::BackendMode;
use crate::identity::Identity;

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
pub use update::{UpdateError, add_to_cluster};

/// Settings of the EKSConfigMap backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// Feature gate `SSORoleMatch`: `mapRoles` entries with `sso:` match.
    pub sso_role_match: bool,
}

#[derive(Debug)]
struct Shared {
    settings: Settings,
    published: Published<Tables>,
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

/// The watch loop's effects: publish, count, log.
impl Act<Effect> for Arc<Shared> {
    fn act(&mut self, effect: Effect) {
        match effect {
            Effect::Report(issues) => {
                self.invalid.replace(issues.iter().map(invalid_entry));
                if !issues.is_empty() {
                    self.metrics.reload_failed(BackendMode::EksConfigMap.into());
                }
                for issue in &issues {
                    tracing::error!(configmap = "kube-system/aws-auth", entry = %issue.entry(), "{issue}");
                }
            }
            Effect::SsoIgnored(index) => tracing::warn!(
                configmap = "kube-system/aws-auth",
                entry = %format!("{MAP_ROLES}[{index}]"),
                "sso role mapping ignored: the SSORoleMatch feature gate is off"
            ),
            Effect::Loaded {
                tables,
                resource_version,
            } => {
                tracing::info!(
                    roles = tables.source.roles.len(),
                    users = tables.source.users.len(),
                    accounts = tables.source.accounts.len(),
                    resource_version,
                    "loaded aws-auth mappings"
                );
                self.published.store(tables);
            }
            Effect::Cleared(tables) => {
                tracing::info!("aws-auth deleted, clearing its mappings");
                self.published.store(tables);
            }
        }
    }

    fn ready(&mut self) {
        self.published.set_ready();
    }

    fn watch_failed(&mut self) {
        self.metrics.configmap_watch_failed();
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
            published: Published::default(),
            invalid: metrics.invalid_entries(BackendMode::EksConfigMap.into()),
            metrics,
        });
        // upstream: pkg/mapper/configmap/configmap.go only watches (no initial list) and
        // sleeps a fixed 5 s after a failed watch; we list, then watch from the list's
        // resourceVersion, and back off exponentially, because a list is the only way to
        // notice an aws-auth that was deleted while no watch was open, and a fixed retry
        // hammers a struggling API server.
        let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
        let selector = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
        let state = State::new(settings.sso_role_match);
        let task = tokio::spawn(kube_watch::run(
            api,
            selector,
            "aws-auth",
            state,
            Arc::clone(&shared),
        ));
        Self {
            shared,
            _task: AbortOnDropHandle::new(task),
        }
    }

    /// The mappings currently in force.
    pub fn mappings(&self) -> AwsAuth {
        self.shared.published.load().source.clone()
    }
}

impl Mapper for ConfigMapMapper {
    fn mode(&self) -> BackendMode {
        BackendMode::EksConfigMap
    }

    fn map(&self, identity: &Identity) -> Result<IdentityMapping, MapError> {
        self.shared
            .published
            .load()
            .table
            .lookup(&identity.canonical_arn, self.shared.settings.sso_role_match)
    }

    fn map_traced(
        &self,
        identity: &Identity,
        trace: &mut Trace,
    ) -> Result<IdentityMapping, MapError> {
        self.shared.published.load().table.lookup_traced(
            &identity.canonical_arn,
            self.shared.settings.sso_role_match,
            trace,
        )
    }

    fn is_account_allowed(&self, account: &str) -> bool {
        self.shared
            .published
            .load()
            .table
            .is_account_allowed(account)
    }

    fn is_ready(&self) -> bool {
        self.shared.published.is_ready()
    }
}

/// A ConfigMap's `data` from `(key, value)` pairs (tests).
#[cfg(test)]
fn data(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
