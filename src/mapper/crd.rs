//! CRD: mappings from `IAMIdentityMapping` custom resources
//! (`iamauthenticator.k8s.aws/v1alpha1`, cluster-scoped; manifest in
//! `deploy/iamidentitymapping.yaml`).
//!
//! A background task lists and watches every object through [`kube_watch`]; the
//! mappings are a pure function of its events ([`State`]). Each object's `spec.arn` is
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

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Resource};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::kube_watch::{self, Act, Event, Published, Reduce};
use super::table::{self, Hit, Table};
use super::{IdentityMapping, MapError, Mapper};
use crate::config::types::{BackendMode, principal_arn_key};
use crate::identity::Identity;

/// The CRD's API group.
pub const GROUP: &str = "iamauthenticator.k8s.aws";
/// The CRD's version.
pub const VERSION: &str = "v1alpha1";
/// The CRD's kind.
pub const KIND: &str = "IAMIdentityMapping";
/// The CRD's plural resource name.
pub const PLURAL: &str = "iamidentitymappings";
/// The component named in the Events we emit.
pub const COMPONENT: &str = "aws-iam-authenticator";
/// The Event reason after a status write.
pub const SYNCED_REASON: &str = "Synced";
/// The Event message after a status write.
pub const SYNCED_MESSAGE: &str = "Identity synced successfully";

/// An `IAMIdentityMapping` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IamIdentityMapping {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to map.
    pub spec: IamIdentityMappingSpec,
    /// What the authenticator made of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<IamIdentityMappingStatus>,
}

/// `spec` of an [`IamIdentityMapping`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamIdentityMappingSpec {
    /// The IAM user or role ARN (required).
    pub arn: String,
    /// The Kubernetes username template (required).
    pub username: String,
    /// The Kubernetes group templates.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `status` of an [`IamIdentityMapping`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamIdentityMappingStatus {
    /// The lower-cased canonical ARN the mapping is found under.
    #[serde(
        rename = "canonicalARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub canonical_arn: Option<String>,
    /// The principal's unique id (declared upstream, never set).
    #[serde(rename = "userID", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl Resource for IamIdentityMapping {
    type DynamicType = ();
    type Scope = k8s_openapi::ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(KIND)
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(GROUP)
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(VERSION)
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(PLURAL)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// One mapping in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: String,
    username: String,
    groups: Vec<String>,
    /// `status.userID` as the object records it.
    user_id: Option<String>,
    /// Which upsert made this entry (a new one for every version of the object seen).
    revision: u64,
}

/// An object's row in the lookup table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    /// The object's name.
    name: String,
    username: String,
    groups: Vec<String>,
}

impl table::Entry for Row {
    fn username(&self) -> &str {
        &self.username
    }
    fn groups(&self) -> &[String] {
        &self.groups
    }
}

/// The objects in force and their lookup table. Every object's key is exact (a
/// canonical ARN, no SSO pattern), so each is a user row of the table, in name order.
#[derive(Debug, Default)]
struct Objects {
    /// By object name (deterministic "first match" order).
    entries: BTreeMap<String, Entry>,
    table: Table<Row, Row>,
}

impl Objects {
    /// Indexes `entries`.
    fn new(entries: BTreeMap<String, Entry>) -> Self {
        let mut table = Table::default();
        for (name, e) in &entries {
            let row = Row {
                name: name.clone(),
                username: e.username.clone(),
                groups: e.groups.clone(),
            };
            table.push_user(e.key.clone(), row);
        }
        Self { entries, table }
    }
}

/// A status write to do.
#[derive(Debug, Clone, PartialEq)]
struct StatusJob {
    /// The object's name.
    name: String,
    /// The merge patch of the status subresource.
    patch: serde_json::Value,
    /// Whether this records the canonical ARN (followed by the `Synced` Event).
    synced: bool,
}

/// What the backend must do after an event.
#[derive(Debug)]
enum Effect {
    /// Answer from these objects.
    Publish(Arc<Objects>),
    /// Write an object's status.
    Status(StatusJob),
    /// The object's `spec.arn` is not an ARN: it maps nothing.
    Invalid {
        name: String,
        arn: String,
        error: String,
    },
    /// The object was deleted.
    Deleted(String),
}

/// The objects in force, and the listing in progress.
#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    /// The objects listed so far, replacing `entries` when the listing completes (so
    /// an object deleted while no watch was open goes then).
    listing: Option<BTreeMap<String, Entry>>,
    /// The last entry revision given.
    revision: u64,
}

impl State {
    fn publish(&self) -> Effect {
        Effect::Publish(Arc::new(Objects::new(self.entries.clone())))
    }
}

impl Reduce for State {
    type Object = IamIdentityMapping;
    type Effect = Effect;

    fn apply(&mut self, event: Event<IamIdentityMapping>) -> Vec<Effect> {
        self.revision += 1;
        match event {
            Event::Init => {
                self.listing = Some(BTreeMap::new());
                Vec::new()
            }
            Event::InitApply(obj) => {
                let listing = self.listing.get_or_insert_with(BTreeMap::new);
                upsert(listing, &obj, self.revision).into_iter().collect()
            }
            Event::InitDone => {
                self.entries = self.listing.take().unwrap_or_default();
                vec![self.publish()]
            }
            Event::Apply(obj) => {
                let effect = upsert(&mut self.entries, &obj, self.revision);
                [self.publish()].into_iter().chain(effect).collect()
            }
            Event::Delete(obj) => {
                let name = obj.metadata.name.unwrap_or_default();
                self.entries.remove(&name);
                vec![Effect::Deleted(name), self.publish()]
            }
        }
    }
}

/// The entry for an object, or why it cannot be used.
fn entry_of(obj: &IamIdentityMapping, revision: u64) -> Result<Entry, String> {
    let key = principal_arn_key(&obj.spec.arn).map_err(|e| e.to_string())?;
    Ok(Entry {
        key,
        username: obj.spec.username.clone(),
        groups: obj.spec.groups.clone(),
        user_id: obj.status.as_ref().and_then(|s| s.user_id.clone()),
        revision,
    })
}

/// Updates `entries` for an added or modified object; returns the status job if the
/// recorded status differs, or the object's problem.
fn upsert(
    entries: &mut BTreeMap<String, Entry>,
    obj: &IamIdentityMapping,
    revision: u64,
) -> Option<Effect> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    match entry_of(obj, revision) {
        Ok(mut entry) => {
            let key = entry.key.clone();
            let recorded = obj.status.as_ref().and_then(|s| s.canonical_arn.as_deref());
            let job = (recorded != Some(key.as_str())).then(|| {
                // A new ARN: the recorded principal id (if any) was another principal's.
                entry.user_id = None;
                Effect::Status(StatusJob {
                    name: name.clone(),
                    patch: serde_json::json!({ "status": { "canonicalARN": key, "userID": null } }),
                    synced: true,
                })
            });
            entries.insert(name, entry);
            job
        }
        Err(error) => {
            entries.remove(&name);
            Some(Effect::Invalid {
                name,
                arn: obj.spec.arn.clone(),
                error,
            })
        }
    }
}

/// The principal ids a request recorded (queued for writing to `status.userID`) that
/// the objects do not show yet, by object name, with the entry revision they are for.
#[derive(Debug, Default)]
struct UserIds(HashMap<String, (u64, String)>);

impl UserIds {
    /// The status write recording `user_id` for the object `name`, unless its entry
    /// shows it already or it was queued for this entry: once per entry and principal.
    fn record(&mut self, name: &str, entry: &Entry, user_id: &str) -> Option<StatusJob> {
        let queued = self
            .0
            .get(name)
            .filter(|(revision, _)| *revision == entry.revision)
            .map(|(_, id)| id.as_str());
        if user_id.is_empty() || queued.or(entry.user_id.as_deref()) == Some(user_id) {
            return None;
        }
        self.0
            .insert(name.to_owned(), (entry.revision, user_id.to_owned()));
        Some(StatusJob {
            name: name.to_owned(),
            patch: serde_json::json!({ "status": { "userID": user_id } }),
            synced: false,
        })
    }

    /// Forgets what `objects` has replaced: a new version of an object is judged by
    /// its own status, as every version is.
    fn retain(&mut self, objects: &Objects) {
        self.0.retain(|name, (revision, _)| {
            objects
                .entries
                .get(name)
                .is_some_and(|e| e.revision == *revision)
        });
    }
}

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
        if user_id.is_empty() || entry.user_id.as_deref() == Some(user_id) {
            return;
        }
        if let Some(job) = self.shared.user_ids().record(name, entry, user_id) {
            // The receiver lives as long as the mapper.
            let _ = self.jobs.send(job);
        }
    }
}

/// Writes `status.canonicalARN` and emits the `Synced` Event, one object at a time.
async fn write_statuses(client: kube::Client, mut jobs: mpsc::UnboundedReceiver<StatusJob>) {
    let api: Api<IamIdentityMapping> = Api::all(client.clone());
    while let Some(StatusJob {
        name,
        patch,
        synced,
    }) = jobs.recv().await
    {
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) if synced => {
                tracing::info!(name = %name, status = %patch["status"], "IAMIdentityMapping synced");
                if let Err(e) = emit_synced(&client, &updated).await {
                    tracing::warn!(name = %name, error = %e, "cannot record the Synced event");
                }
            }
            Ok(_) => {
                tracing::info!(name = %name, status = %patch["status"], "IAMIdentityMapping status updated");
            }
            Err(e) => {
                tracing::warn!(name = %name, error = %e, "cannot write IAMIdentityMapping status");
            }
        }
    }
}

/// Creates the core/v1 Event upstream's recorder creates after a status write. Events
/// about cluster-scoped objects go to the `default` namespace, as client-go's do.
async fn emit_synced(client: &kube::Client, obj: &IamIdentityMapping) -> Result<(), String> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    let event = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{name}.{:x}", now.unix_timestamp_nanos()),
            "namespace": "default",
        },
        "involvedObject": {
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": KIND,
            "name": name,
            "uid": obj.metadata.uid,
            "resourceVersion": obj.metadata.resource_version,
        },
        "reason": SYNCED_REASON,
        "message": SYNCED_MESSAGE,
        "type": "Normal",
        "source": { "component": COMPONENT },
        "reportingComponent": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    });
    let request = http::Request::post("/api/v1/namespaces/default/events")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(event.to_string().into_bytes())
        .map_err(|e| e.to_string())?;
    client
        .request::<serde_json::Value>(request)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests;
