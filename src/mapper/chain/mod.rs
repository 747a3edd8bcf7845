//! The ordered chain of mapping backends and upstream's mapping algorithm
//! (`doMapping` in `pkg/server/server.go`).
//!
//! For each backend, in `--backend-mode` order:
//! 1. a mapping is found → render the username and groups (render error → deny), check
//!    the backend's reserved username prefixes (match → deny), and answer; no later
//!    backend is asked;
//! 2. a backend error other than "not mapped" is collected;
//! 3. the caller's account is in this backend's `mapAccounts` → the username is the
//!    canonical ARN, no groups. This runs inside the loop, so an account listed in an
//!    earlier backend wins over an explicit mapping in a later one (kept as upstream).
//!
//! Nothing found → deny with the collected errors, or `identity is not mapped`.
//!
//! With `server.dynamicBackendModePath` the chain follows that JSON file
//! (`{"backendMode":"MountedFile DynamicFile",…}`) and is rebuilt when it names other
//! backends; an invalid or empty list is ignored (the current chain stays), and deleting
//! the file returns to `server.backendMode`.

mod backend_mode;
mod build;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tracing::warn;

use super::file::{ConfigSource, FileMapper};
use super::metrics::MapperMetrics;
use super::template;
use super::trace::{Outcome, Trace};
use super::watch::{self, Event, FileWatch};
use super::{IdentityMapping, MapError, Mapper};
use crate::config::types::BackendMode;
use crate::config::{ServerConfig, aggregate};
use crate::ec2::{self, Ec2Metrics, PrivateDnsLookup};
use crate::identity::Identity;
use crate::metrics::Registry;

use backend_mode::parse_backend_mode_file;
use build::{build_mappers, set_gauges};

/// Why the chain could not be built. `Display` is upstream's text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A backend could not be created or started.
    #[error("failed to build mapper chain: backend-mode {:?} creation failed: {message}", mode.name())]
    Backend {
        /// The backend.
        mode: BackendMode,
        /// Why.
        message: String,
    },
    /// The EC2 lookup for `{{EC2PrivateDNSName}}` could not be set up.
    #[error("failed to build mapper chain: ec2 provider: {0}")]
    Ec2(ec2::Error),
}

/// A mapped identity: what the TokenReview reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedUser {
    /// The rendered Kubernetes username.
    pub username: String,
    /// The rendered Kubernetes groups (empty for `mapAccounts` matches).
    pub groups: Vec<String>,
}

/// A mapping failure: the caller is denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Denied {
    /// Why, in upstream's words (logged; the deny TokenReview itself carries no text).
    pub reason: String,
}

impl Denied {
    /// Upstream's text when no backend knows the identity.
    pub const NOT_MAPPED: &'static str = "identity is not mapped";

    /// The `result` label of `authenticate_latency_seconds` for every mapping failure
    /// (upstream's spelling, kept so dashboards keep working).
    pub fn metric_label(&self) -> &'static str {
        "uknown_user"
    }
}

type Mappers = Arc<Vec<Arc<dyn Mapper>>>;

/// What rebuilding the chain on a backend-mode change needs.
#[derive(Debug)]
struct Rebuild {
    config: ServerConfig,
    /// The one MountedFile backend: every chain built uses it, so the mappings it
    /// reloaded from the config file survive a backend-mode change.
    mounted: Arc<FileMapper>,
    metrics: MapperMetrics,
}

#[derive(Debug)]
struct Inner {
    /// `None` for a fixed chain.
    rebuild: Option<Rebuild>,
    reserved: BTreeMap<BackendMode, Vec<String>>,
    lookup: Option<Arc<dyn PrivateDnsLookup>>,
    mappers: RwLock<Mappers>,
    /// Follows the dynamic backend-mode file; stopped when the chain goes.
    watcher: std::sync::OnceLock<watch::Task>,
}

/// The backends in order, with the reserved prefixes and the EC2 lookup. Cheap to
/// clone (shared state); lookups never wait for a rebuild.
#[derive(Debug, Clone)]
pub struct Chain {
    inner: Arc<Inner>,
}

impl Chain {
    /// Builds and starts the backends of `config` (or of the dynamic backend-mode file,
    /// when it exists and is valid), and follows that file if configured. With
    /// `config_file`, the MountedFile mappings follow that file (see
    /// [`FileMapper::follow`]), whether or not MountedFile is in the chain yet. The
    /// mappers' and the EC2 lookup's metrics are registered on `registry` (the prefixed
    /// one, see [`crate::metrics::prefixed`]).
    pub async fn build(
        config: &ServerConfig,
        config_file: Option<ConfigSource>,
        registry: &mut Registry,
    ) -> Result<Chain, Error> {
        let metrics = MapperMetrics::register(registry);
        let ec2_metrics = Ec2Metrics::register(registry);
        let lookup = ec2::from_config(config, ec2_metrics)
            .await
            .map_err(Error::Ec2)?;
        let mounted = Arc::new(
            FileMapper::from_mappings(
                &config.role_mappings,
                &config.user_mappings,
                &config.account_mappings,
                config.feature_gates.sso_role_match,
            )
            .map_err(|e| Error::Backend {
                mode: BackendMode::MountedFile,
                message: e.to_string(),
            })?,
        );
        if let Some(source) = config_file {
            mounted.follow(source, config.clone(), metrics.clone());
        }
        let mut modes = config.backend_modes.clone();
        let mut watch = None;
        if let Some(path) = &config.dynamic_backend_mode_path {
            let mut w = FileWatch::new(path.clone());
            if let Some(Event::Changed(bytes)) = w.check().await {
                match parse_backend_mode_file(&bytes) {
                    Ok((m, _)) => modes = m,
                    Err(e) => warn!(
                        path = %path.display(),
                        error = %e,
                        "dynamic backend mode file ignored; using server.backendMode"
                    ),
                }
            }
            watch = Some(w);
        }
        let mappers = build_mappers(config, &mounted, &modes, &metrics).await?;
        set_gauges(&metrics, &modes);
        let chain = Chain {
            inner: Arc::new(Inner {
                rebuild: Some(Rebuild {
                    config: config.clone(),
                    mounted,
                    metrics,
                }),
                reserved: config.reserved_prefixes.clone(),
                lookup,
                mappers: RwLock::new(mappers),
                watcher: std::sync::OnceLock::new(),
            }),
        };
        if let Some(w) = watch {
            let task = watch::follow(&chain.inner, w, |inner, event| async move {
                inner.backend_mode_file_changed(event).await;
            });
            // A fresh chain: the slot is empty.
            let _ = chain.inner.watcher.set(task);
        }
        Ok(chain)
    }

    /// A fixed chain of ready-made backends (no backend-mode file), for embedding and
    /// tests.
    pub fn from_mappers(
        mappers: Vec<Arc<dyn Mapper>>,
        reserved: BTreeMap<BackendMode, Vec<String>>,
        lookup: Option<Arc<dyn PrivateDnsLookup>>,
    ) -> Chain {
        Chain {
            inner: Arc::new(Inner {
                rebuild: None,
                reserved,
                lookup,
                mappers: RwLock::new(Arc::new(mappers)),
                watcher: std::sync::OnceLock::new(),
            }),
        }
    }

    fn mappers(&self) -> Mappers {
        self.inner.current()
    }

    /// The backends in force, in order.
    pub fn modes(&self) -> Vec<BackendMode> {
        self.mappers().iter().map(|m| m.mode()).collect()
    }

    /// Whether every backend has loaded its source at least once.
    pub fn is_ready(&self) -> bool {
        self.mappers().iter().all(|m| m.is_ready())
    }

    /// Maps `identity` with upstream's algorithm (see the module docs).
    pub async fn map(&self, identity: &Identity) -> Result<MappedUser, Denied> {
        self.map_traced(identity, &mut Trace::off()).await
    }

    /// [`Chain::map`], recording in `trace` what each backend was asked and answered,
    /// the templates rendered and any refusal (`explain`). The decision is the same
    /// code's either way.
    pub async fn map_traced(
        &self,
        identity: &Identity,
        trace: &mut Trace,
    ) -> Result<MappedUser, Denied> {
        let mappers = self.mappers();
        let mut errors = Vec::new();
        for m in mappers.iter() {
            let mode = m.mode();
            let refused = match m.map_traced(identity, trace) {
                Ok(mapping) => return self.answer(mode, &mapping, identity, trace).await,
                Err(MapError::NotMapped) => None,
                Err(e) => {
                    let reason = format!("mapper {} Map error: {e}", mode.name());
                    errors.push(reason.clone());
                    Some(reason)
                }
            };
            if m.is_account_allowed(&identity.account_id) {
                if let Some(r) = refused {
                    trace.note(|| r);
                }
                trace.answered(
                    mode,
                    Outcome::AccountAllowed,
                    Some(&format!(
                        "account {} is in mapAccounts: the username is the caller's ARN, without groups",
                        identity.account_id
                    )),
                );
                return Ok(MappedUser {
                    username: identity.canonical_arn.clone(),
                    groups: Vec::new(),
                });
            }
            match refused {
                Some(r) => trace.answered(mode, Outcome::Refused, Some(&r)),
                None => trace.answered(mode, Outcome::NotMapped, None),
            }
        }
        Err(Denied {
            reason: if errors.is_empty() {
                Denied::NOT_MAPPED.to_owned()
            } else {
                aggregate(&errors)
            },
        })
    }

    /// The answer for a mapping backend `mode` found: templates rendered (an error
    /// denies), then its reserved username prefixes checked (a match denies).
    async fn answer(
        &self,
        mode: BackendMode,
        mapping: &IdentityMapping,
        identity: &Identity,
        trace: &mut Trace,
    ) -> Result<MappedUser, Denied> {
        let name = mode.name();
        let lookup = self.inner.lookup.as_deref();
        let username = render(mode, "username", &mapping.username, identity, lookup, trace).await?;
        let mut groups = Vec::with_capacity(mapping.groups.len());
        for g in &mapping.groups {
            groups.push(render(mode, "group", g, identity, lookup, trace).await?);
        }
        if let Some(prefixes) = self.inner.reserved.get(&mode)
            && prefixes
                .iter()
                .any(|p| !p.is_empty() && username.starts_with(p.as_str()))
        {
            // The doubled "with" is upstream's text, kept so existing log searches and
            // alerts keep matching.
            let reason = format!(
                "invalid username '{username}' for mapper {name}: username must not begin with with the following prefixes: [{}]",
                prefixes.join(" ")
            );
            trace.answered(mode, Outcome::ReservedPrefix, Some(&reason));
            return Err(Denied { reason });
        }
        trace.answered(mode, Outcome::Matched, None);
        Ok(MappedUser { username, groups })
    }
}

/// Renders template `t` of `field` (`username` or `group`); an error denies with
/// upstream's text.
async fn render(
    mode: BackendMode,
    field: &'static str,
    t: &str,
    identity: &Identity,
    lookup: Option<&dyn PrivateDnsLookup>,
    trace: &mut Trace,
) -> Result<String, Denied> {
    match template::render(t, identity, lookup).await {
        Ok(value) => {
            trace.rendered(field, t, &value);
            Ok(value)
        }
        Err(e) => {
            let reason = format!(
                "mapper {} renderTemplates error: error rendering {field} template {t:?}: {e}",
                mode.name()
            );
            trace.answered(mode, Outcome::RenderError, Some(&reason));
            Err(Denied { reason })
        }
    }
}

impl Inner {
    fn current(&self) -> Mappers {
        match self.mappers.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn install(&self, mappers: Mappers) {
        match self.mappers.write() {
            Ok(mut g) => *g = mappers,
            Err(poisoned) => *poisoned.into_inner() = mappers,
        }
    }
}
