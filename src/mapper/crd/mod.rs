//! CRD: mappings from `IAMIdentityMapping` custom resources
//! (`iamauthenticator.k8s.aws/v1alpha1`, cluster-scoped; manifest in
//! `deploy/iamidentitymapping.yaml`).
//!
//! A background task lists and watches every object through [`kube_watch`]; the
//! mappings are a pure function of its events ([`reduce`]). Each object's `spec.arn` is
//! canonicalised; the mapping is found under that key, and the key is written back to
//! `status.canonicalARN` through the status subresource (a merge patch), followed by a
//! core/v1 Event `Synced` / `Identity synced successfully` from `aws-iam-authenticator`,
//! as upstream's controller does. Deleting an object removes its mapping.
//!
//! upstream: `pkg/mapper/crd` declares `status.userID` but never sets it; we record the
//! principal's unique id (`AROA…`/`AIDA…`) the first time a request is mapped through
//! the object (and clear it when `spec.arn` changes), so `kubectl get
//! iamidentitymappings -o yaml` shows which principal actually used it.
//!
//! upstream: `pkg/mapper/crd` indexes objects by the `status.canonicalARN` its controller
//! wrote, so a mapping works only after that write succeeded, and a status edited by
//! hand redirects the mapping; we key each object by our own canonical form of its
//! `spec.arn` (path stripped from role ARNs, as the other backends do), so the status
//! is informative only and a failed status write does not disable a mapping.

mod reduce;
mod status;
mod types;

use std::sync::{Arc, Mutex, PoisonError};

use kube::Api;
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use self::reduce::{Effect, Entry, Objects, State, UserIds};
use self::status::{StatusJob, write_statuses};
pub use self::types::{
    COMPONENT, GROUP, IamIdentityMapping, IamIdentityMappingSpec, IamIdentityMappingStatus, KIND,
    PLURAL, SYNCED_MESSAGE, SYNCED_REASON, VERSION,
};
use super::kube_watch::{self, Act};
use super::published::Published;
use super::table::Hit;
use super::{IdentityMapping, MapError, Mapper};
use crate::config::types::BackendMode;
use crate::identity::Identity;

#[derive(Debug, Default)]
struct Shared {
    published: Published<Objects>,
    user_ids: Mutex<UserIds>,
}

impl Shared {
    fn user_ids(&self) -> std::sync::MutexGuard<'_, UserIds> {
        self.user_ids.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The watch loop's effects: publish, queue status writes, log.
struct Actor {
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedSender<StatusJob>,
}

impl Act<Effect> for Actor {
    fn act(&mut self, effect: Effect) {
        match effect {
            Effect::Publish(objects) => {
                self.shared.user_ids().retain(&objects);
                self.shared.published.store(objects);
            }
            // The receiver lives as long as the mapper; a send after it is gone is moot.
            Effect::Status(job) => drop(self.jobs.send(job)),
            Effect::Invalid { name, arn, error } => {
                tracing::error!(name = %name, arn = %arn, error = %error, "ignoring IAMIdentityMapping with an invalid arn");
            }
            Effect::Deleted(name) => tracing::info!(name = %name, "IAMIdentityMapping deleted"),
        }
    }

    fn ready(&mut self) {
        self.shared.published.set_ready();
    }
}

/// The CRD backend.
#[derive(Debug)]
pub struct CrdMapper {
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedSender<StatusJob>,
    /// The watch and status-writing tasks, aborted when the mapper goes away.
    _tasks: [AbortOnDropHandle<()>; 2],
}

impl CrdMapper {
    /// Starts watching `IAMIdentityMapping` objects through `client`. Returns at once;
    /// the mapper is ready ([`Mapper::is_ready`]) after the first successful list.
    pub fn spawn(client: kube::Client) -> Self {
        let shared = Arc::new(Shared::default());
        let (jobs, rx) = mpsc::unbounded_channel();
        let actor = Actor {
            shared: Arc::clone(&shared),
            jobs: jobs.clone(),
        };
        let watch_task = tokio::spawn(kube_watch::run(
            Api::all(client.clone()),
            watcher::Config::default(),
            "IAMIdentityMappings",
            State::default(),
            actor,
        ));
        let status_task = tokio::spawn(write_statuses(client, rx));
        Self {
            shared,
            jobs,
            _tasks: [watch_task, status_task].map(AbortOnDropHandle::new),
        }
    }

    /// The number of objects currently mapped.
    pub fn len(&self) -> usize {
        self.shared.published.load().entries.len()
    }

    /// Whether no object is mapped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues the write of `status.userID` for the object `name`, once per entry and
    /// principal (concurrent requests queue nothing more).
    // upstream: pkg/mapper/crd declares status.userID and never writes it; we write it
    // because it is the one thing that tells an operator which principal (role id, not
    // just name) an object actually served.
    fn record_user_id(&self, name: &str, entry: &Entry, user_id: &str) {
        // The common case, an object whose status already shows this principal, is
        // settled here without the lock `UserIds::record` (which checks it too) needs.
        if user_id.is_empty() || entry.user_id.as_deref() == Some(user_id) {
            return;
        }
        if let Some(job) = self.shared.user_ids().record(name, entry, user_id) {
            // The receiver lives as long as the mapper.
            let _ = self.jobs.send(job);
        }
    }
}

impl Mapper for CrdMapper {
    fn mode(&self) -> BackendMode {
        BackendMode::Crd
    }

    fn map(&self, identity: &Identity) -> Result<IdentityMapping, MapError> {
        let arn = identity.canonical_arn.to_ascii_lowercase();
        let objects = self.shared.published.load();
        let hit = objects.table.find(&arn, false).ok_or(MapError::NotMapped)?;
        let (Hit::User(row) | Hit::Role(row)) = hit;
        if let Some(entry) = objects.entries.get(&row.name) {
            self.record_user_id(&row.name, entry, &identity.user_id);
        }
        Ok(hit.mapping(arn))
    }

    /// The CRD has no `mapAccounts` (as upstream).
    fn is_account_allowed(&self, _account: &str) -> bool {
        false
    }

    fn is_ready(&self) -> bool {
        self.shared.published.is_ready()
    }
}
