//! The EKSConfigMap backend's state as a pure function of the watch events on
//! `kube-system/aws-auth` (see the [module docs](super) for what happens to a bad edit).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{AwsAuth, NAME, ParseIssue, parse};
use crate::mapper::kube_watch::{Event, Reduce};
use crate::mapper::table::{RoleKey, Table, user_key};

/// The mappings in force and their lookup table.
#[derive(Debug, Default)]
pub(super) struct Tables {
    pub(super) source: AwsAuth,
    pub(super) table: Table,
}

impl Tables {
    /// Indexes `source`; entries without a key were reported by [`parse()`] and are left out.
    pub(super) fn new(source: AwsAuth) -> Self {
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

/// What the backend must do after an event.
#[derive(Debug)]
pub(super) enum Effect {
    /// The current object's problems, replacing the previous object's (empty: none).
    Report(Vec<ParseIssue>),
    /// `mapRoles[index]` has an `sso:` block and the `SSORoleMatch` gate is off: it will
    /// not match.
    SsoIgnored(usize),
    /// Mappings loaded from the object at this resourceVersion: publish them.
    Loaded {
        tables: Arc<Tables>,
        resource_version: String,
    },
    /// The object is gone: publish no mappings.
    Cleared(Arc<Tables>),
}

/// The mappings in force, and what the listing in progress has returned.
#[derive(Debug, Default)]
pub(super) struct State {
    sso_role_match: bool,
    current: Arc<Tables>,
    /// Whether the listing in progress returned the object: a listing without it means
    /// it was deleted while no watch was open.
    found: bool,
}

impl State {
    /// No mappings yet; `sso_role_match` is the `SSORoleMatch` gate.
    pub(super) fn new(sso_role_match: bool) -> Self {
        Self {
            sso_role_match,
            ..Self::default()
        }
    }

    /// The object's mappings, section by section over the current ones.
    fn load(&mut self, cm: &ConfigMap) -> Vec<Effect> {
        let empty = BTreeMap::new();
        let mut parsed = parse(cm.data.as_ref().unwrap_or(&empty));
        let mut effects = vec![Effect::Report(std::mem::take(&mut parsed.issues))];
        let next = parsed.apply(&self.current.source);
        if !self.sso_role_match {
            effects.extend(
                next.roles
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.sso.is_some())
                    .map(|(index, _)| Effect::SsoIgnored(index)),
            );
        }
        self.current = Arc::new(Tables::new(next));
        effects.push(Effect::Loaded {
            tables: Arc::clone(&self.current),
            resource_version: cm.metadata.resource_version.clone().unwrap_or_default(),
        });
        effects
    }

    fn clear(&mut self) -> Vec<Effect> {
        self.current = Arc::default();
        vec![
            Effect::Report(Vec::new()),
            Effect::Cleared(Arc::clone(&self.current)),
        ]
    }
}

/// Whether `cm` is the one object followed. The watch selects it by name, so another
/// ConfigMap arrives only from an API server that ignores field selectors; it must not
/// replace (or, deleted, clear) the mappings.
fn is_aws_auth(cm: &ConfigMap) -> bool {
    cm.metadata.name.as_deref() == Some(NAME)
}

impl Reduce for State {
    type Object = ConfigMap;
    type Effect = Effect;

    fn apply(&mut self, event: Event<ConfigMap>) -> Vec<Effect> {
        match event {
            Event::Init => {
                self.found = false;
                Vec::new()
            }
            Event::InitApply(cm) if is_aws_auth(&cm) => {
                self.found = true;
                self.load(&cm)
            }
            Event::Apply(cm) if is_aws_auth(&cm) => self.load(&cm),
            Event::InitDone if !self.found && self.current.source != AwsAuth::default() => {
                self.clear()
            }
            Event::Delete(cm) if is_aws_auth(&cm) => self.clear(),
            Event::InitApply(_) | Event::Apply(_) | Event::InitDone | Event::Delete(_) => {
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests;
