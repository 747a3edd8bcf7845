//! CRD: mappings from `IAMIdentityMapping` custom resources
//! (`iamauthenticator.k8s.aws/v1alpha1`, cluster-scoped; manifest in
//! `deploy/iamidentitymapping.yaml`).
//!
//! A background task lists and watches every object. Each object's `spec.arn` is
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
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures_util::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Resource};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::table::{self, Hit, Table};
use super::{IdentityMapping, MapError, Mapper};
use crate::config::types::{BackendMode, principal_arn_key};
use crate::identity::Identity;
use tokio_util::task::AbortOnDropHandle;

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
    /// `status.userID` as recorded (or being recorded).
    user_id: Option<String>,
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

    /// Re-indexes after `change` edited the entries.
    fn edit<T>(&mut self, change: impl FnOnce(&mut BTreeMap<String, Entry>) -> T) -> T {
        let mut entries = std::mem::take(&mut self.entries);
        let out = change(&mut entries);
        *self = Self::new(entries);
        out
    }
}

#[derive(Debug, Default)]
struct Shared {
    objects: RwLock<Objects>,
    ready: AtomicBool,
}

impl Shared {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Objects> {
        self.objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Objects> {
        self.objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let watch_task = tokio::spawn(watch(client.clone(), Arc::clone(&shared), jobs.clone()));
        let status_task = tokio::spawn(write_statuses(client, rx));
        Self {
            shared,
            jobs,
            _tasks: [watch_task, status_task].map(AbortOnDropHandle::new),
        }
    }

    /// The number of objects currently mapped.
    pub fn len(&self) -> usize {
        self.shared.read().entries.len()
    }

    /// Queues the write of `status.userID` for the object `name` (still keyed by `key`),
    /// once: the entry remembers the id at once, so concurrent requests queue nothing more.
    // upstream: pkg/mapper/crd declares status.userID and never writes it; we write it
    // because it is the one thing that tells an operator which principal (role id, not
    // just name) an object actually served.
    fn record_user_id(&self, name: &str, key: &str, user_id: &str) {
        let mut objects = self.shared.write();
        let Some(entry) = objects.entries.get_mut(name).filter(|e| e.key == key) else {
            return;
        };
        if entry.user_id.as_deref() == Some(user_id) {
            return;
        }
        entry.user_id = Some(user_id.to_owned());
        // The receiver lives as long as the mapper.
        let _ = self.jobs.send(StatusJob {
            name: name.to_owned(),
            patch: serde_json::json!({ "status": { "userID": user_id } }),
            synced: false,
        });
    }

    /// Whether no object is mapped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The entry for an object, or why it cannot be used.
fn entry_of(obj: &IamIdentityMapping) -> Result<Entry, String> {
    let key = principal_arn_key(&obj.spec.arn).map_err(|e| e.to_string())?;
    Ok(Entry {
        key,
        username: obj.spec.username.clone(),
        groups: obj.spec.groups.clone(),
        user_id: obj.status.as_ref().and_then(|s| s.user_id.clone()),
    })
}

/// Updates `entries` for an added or modified object; returns the status job, if the
/// recorded status differs.
fn upsert(entries: &mut BTreeMap<String, Entry>, obj: &IamIdentityMapping) -> Option<StatusJob> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    match entry_of(obj) {
        Ok(mut entry) => {
            let key = entry.key.clone();
            let recorded = obj.status.as_ref().and_then(|s| s.canonical_arn.as_deref());
            let job = (recorded != Some(key.as_str())).then(|| {
                // A new ARN: the recorded principal id (if any) was another principal's.
                entry.user_id = None;
                StatusJob {
                    name: name.clone(),
                    patch: serde_json::json!({ "status": { "canonicalARN": key, "userID": null } }),
                    synced: true,
                }
            });
            entries.insert(name, entry);
            job
        }
        Err(e) => {
            tracing::error!(name = %name, arn = %obj.spec.arn, error = %e, "ignoring IAMIdentityMapping with an invalid arn");
            entries.remove(&name);
            None
        }
    }
}

async fn watch(client: kube::Client, shared: Arc<Shared>, jobs: mpsc::UnboundedSender<StatusJob>) {
    let api: Api<IamIdentityMapping> = Api::all(client);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: Option<BTreeMap<String, Entry>> = None;
    while let Some(event) = events.next().await {
        let job = match event {
            Ok(Event::Init) => {
                listing = Some(BTreeMap::new());
                None
            }
            Ok(Event::InitApply(obj)) => upsert(listing.get_or_insert_with(BTreeMap::new), &obj),
            Ok(Event::InitDone) => {
                let listed = listing.take().unwrap_or_default();
                tracing::info!(mappings = listed.len(), "IAMIdentityMappings listed");
                *shared.write() = Objects::new(listed);
                shared.ready.store(true, Ordering::SeqCst);
                None
            }
            Ok(Event::Apply(obj)) => shared.write().edit(|entries| upsert(entries, &obj)),
            Ok(Event::Delete(obj)) => {
                let name = obj.metadata.name.unwrap_or_default();
                tracing::info!(name = %name, "IAMIdentityMapping deleted");
                shared.write().edit(|entries| entries.remove(&name));
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "IAMIdentityMapping watch failed, backing off");
                None
            }
        };
        if let Some(job) = job {
            // The receiver lives as long as the mapper; a send after it is gone is moot.
            let _ = jobs.send(job);
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
        let (name, mapping, record_user_id) = {
            let objects = self.shared.read();
            let hit = objects.table.find(&arn, false).ok_or(MapError::NotMapped)?;
            let (Hit::User(row) | Hit::Role(row)) = hit;
            let id = identity.user_id.as_str();
            let recorded = objects
                .entries
                .get(&row.name)
                .and_then(|e| e.user_id.as_deref());
            let record = !id.is_empty() && recorded != Some(id);
            (row.name.clone(), hit.mapping(arn.clone()), record)
        };
        if record_user_id {
            self.record_user_id(&name, &mapping.key, &identity.user_id);
        }
        Ok(mapping)
    }

    /// The CRD has no `mapAccounts` (as upstream).
    fn is_account_allowed(&self, _account: &str) -> bool {
        false
    }

    fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, arn: &str, status: Option<&str>) -> IamIdentityMapping {
        IamIdentityMapping {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            spec: IamIdentityMappingSpec {
                arn: arn.to_owned(),
                username: "u".to_owned(),
                groups: vec![],
            },
            status: status.map(|s| IamIdentityMappingStatus {
                canonical_arn: Some(s.to_owned()),
                user_id: None,
            }),
        }
    }

    #[test]
    fn upsert_keys_and_status_jobs() {
        let mut entries = BTreeMap::new();
        let job = upsert(
            &mut entries,
            &obj("a", "arn:aws:sts::123456789012:assumed-role/Admin/s", None),
        );
        let job = job.unwrap();
        assert_eq!(
            job.patch["status"]["canonicalARN"],
            "arn:aws:iam::123456789012:role/admin"
        );
        assert!(job.synced);
        // Already recorded: no write (and no event loop on our own status patch).
        let job = upsert(
            &mut entries,
            &obj(
                "a",
                "arn:aws:iam::123456789012:role/Admin",
                Some("arn:aws:iam::123456789012:role/admin"),
            ),
        );
        assert!(job.is_none());
        // An invalid ARN removes the object's previous mapping.
        assert!(upsert(&mut entries, &obj("a", "nope", None)).is_none());
        assert!(entries.is_empty());
    }

    #[test]
    fn url_path_is_cluster_scoped() {
        assert_eq!(
            IamIdentityMapping::url_path(&(), None),
            "/apis/iamauthenticator.k8s.aws/v1alpha1/iamidentitymappings"
        );
    }
}
