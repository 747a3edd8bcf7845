//! The CRD backend's state as a pure function of the `IAMIdentityMapping` watch events,
//! and the principal ids requests record.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::status::StatusJob;
use super::types::IamIdentityMapping;
use crate::config::types::principal_arn_key;
use crate::mapper::kube_watch::{Event, Reduce};
use crate::mapper::table::{self, Table};

/// One mapping in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    key: String,
    username: String,
    groups: Vec<String>,
    /// `status.userID` as the object records it.
    pub(super) user_id: Option<String>,
    /// Which upsert made this entry (a new one for every version of the object seen).
    revision: u64,
}

/// An object's row in the lookup table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Row {
    /// The object's name.
    pub(super) name: String,
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
pub(super) struct Objects {
    /// By object name (deterministic "first match" order).
    pub(super) entries: BTreeMap<String, Entry>,
    pub(super) table: Table<Row, Row>,
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

/// What the backend must do after an event.
#[derive(Debug)]
pub(super) enum Effect {
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
pub(super) struct State {
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
pub(super) struct UserIds(HashMap<String, (u64, String)>);

impl UserIds {
    /// The status write recording `user_id` for the object `name`, unless its entry
    /// shows it already or it was queued for this entry: once per entry and principal.
    pub(super) fn record(&mut self, name: &str, entry: &Entry, user_id: &str) -> Option<StatusJob> {
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
    pub(super) fn retain(&mut self, objects: &Objects) {
        self.0.retain(|name, (revision, _)| {
            objects
                .entries
                .get(name)
                .is_some_and(|e| e.revision == *revision)
        });
    }
}

#[cfg(test)]
mod tests;
