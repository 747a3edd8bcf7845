//! Identity mapping: which Kubernetes user and groups an IAM identity becomes.
//!
//! Every backend implements [`Mapper`]; [`chain::Chain`] asks them in `--backend-mode`
//! order with upstream's algorithm (`pkg/mapper/mapper.go`, `pkg/server/server.go`
//! `doMapping`). Lookups are synchronous and in memory: backends that follow a file or
//! the Kubernetes API keep their state current in background tasks. Files (the config
//! file's mappings, the DynamicFile, the dynamic backend-mode file) are followed by
//! [`watch`]; the ConfigMap and CRD backends follow the API through [`kube_watch`]'s one
//! loop, their state a pure function of its events. Lookups go through one [`table::Table`] per version of a source. The chain
//! registers [`metrics::MapperMetrics`] once and hands its backends clones.

pub mod chain;
pub mod configmap;
pub mod crd;
pub mod dynamic_file;
pub mod file;
pub mod kube_watch;
pub mod metrics;
pub mod published;
pub mod table;
pub mod template;
pub mod trace;
pub mod watch;

use crate::config::types::BackendMode;
use crate::identity::Identity;

/// A mapping as a backend stores it: templates not yet rendered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityMapping {
    /// The canonical ARN (lower-cased) or user id the mapping was found under.
    pub key: String,
    /// The username template, e.g. `admin:{{SessionName}}`.
    pub username: String,
    /// The group templates.
    pub groups: Vec<String>,
}

/// Why a backend returned no mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The backend has no mapping for this identity (upstream `ErrNotMapped`); the chain
    /// moves on silently.
    #[error("identity is not mapped")]
    NotMapped,
    /// The backend found something but refused it (e.g. DynamicFile's
    /// `ARN does not match User ID`); collected into the deny reason.
    #[error("{0}")]
    Refused(String),
}

/// One identity-mapping backend.
pub trait Mapper: Send + Sync + std::fmt::Debug {
    /// The backend's mode, as reported in logs and deny reasons.
    fn mode(&self) -> BackendMode;

    /// Looks up the mapping for `identity`.
    fn map(&self, identity: &Identity) -> Result<IdentityMapping, MapError>;

    /// [`Mapper::map`], recording which entry matched and the near misses in `trace`
    /// (`explain`). Backends that cannot say which entry matched keep this default.
    fn map_traced(
        &self,
        identity: &Identity,
        trace: &mut trace::Trace,
    ) -> Result<IdentityMapping, MapError> {
        let _ = trace;
        self.map(identity)
    }

    /// Whether `account` is listed in this backend's `mapAccounts`.
    fn is_account_allowed(&self, account: &str) -> bool;

    /// Whether the backend has loaded its source at least once (readiness).
    fn is_ready(&self) -> bool {
        true
    }
}
