//! `explain`: the server's mapping decision for one identity, with what led to it.
//!
//! The decision is [`Chain::map_traced`]'s, the very code `/authenticate` runs (with the
//! trace off), on a chain built by [`Chain::build`] from the same configuration: so what
//! `explain` prints is what the server does. This module only waits for the chain's
//! sources to load and formats the result.

use std::time::Duration;

use serde::Serialize;

use crate::identity::Identity;
use crate::mapper::chain::Chain;
use crate::mapper::trace::{BackendTrace, Outcome, Trace};

/// Why there is nothing to explain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A backend did not load its source in time (e.g. the API server is unreachable).
    #[error("the mapping backends [{0}] did not load within {1:?}")]
    NotReady(String, Duration),
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Whether the identity maps to a Kubernetes user.
    pub mapped: bool,
    /// The username, when mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The groups, when mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// The TokenReview's `status.user.uid`, when mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Why not, when not mapped (the server's deny reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `explain` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The caller, as the server sees it (upstream's field names, as `verify -o json`).
    pub identity: Identity,
    /// The backends in force, in the order asked.
    pub backend_modes: Vec<&'static str>,
    /// What each backend asked answered.
    pub backends: Vec<BackendTrace>,
    /// The decision.
    pub decision: Decision,
}

/// Waits until every backend of `chain` has loaded its source, at most `timeout`.
pub async fn wait_ready(chain: &Chain, timeout: Duration) -> Result<(), Error> {
    let step = Duration::from_millis(50);
    let mut waited = Duration::ZERO;
    while !chain.is_ready() {
        if waited >= timeout {
            let modes: Vec<_> = chain.modes().iter().map(|m| m.name()).collect();
            return Err(Error::NotReady(modes.join(" "), timeout));
        }
        tokio::time::sleep(step).await;
        waited += step;
    }
    Ok(())
}

/// Maps `identity` through `chain` as the server does, recording how. `scrubbed` are
/// `server.scrubbedAccounts` (they change the uid).
pub async fn explain(chain: &Chain, identity: Identity, scrubbed: &[String]) -> Explanation {
    let mut trace = Trace::on();
    let result = chain.map_traced(&identity, &mut trace).await;
    let decision = match result {
        Ok(user) => {
            let loggable = !scrubbed.contains(&identity.account_id);
            Decision {
                mapped: true,
                uid: Some(crate::server::authenticate::uid(
                    &identity,
                    &user.username,
                    loggable,
                )),
                username: Some(user.username),
                groups: Some(user.groups),
                reason: None,
            }
        }
        Err(denied) => Decision {
            mapped: false,
            username: None,
            groups: None,
            uid: None,
            reason: Some(denied.reason),
        },
    };
    Explanation {
        identity,
        backend_modes: chain.modes().iter().map(|m| m.name()).collect(),
        backends: trace.into_backends(),
        decision,
    }
}

/// How an entry of `backend` is named: `server.mapRoles[0]` in the config file,
/// `mapRoles[0]` elsewhere.
fn entry_name(backend: &str, section: &str, index: usize) -> String {
    let prefix = if backend == "MountedFile" {
        "server."
    } else {
        ""
    };
    format!("{prefix}{section}[{index}]")
}

fn outcome_text(o: Outcome) -> &'static str {
    match o {
        Outcome::Matched => "matched",
        Outcome::RenderError => "matched, but a template could not be rendered",
        Outcome::ReservedPrefix => "matched, but the username has a reserved prefix",
        Outcome::Refused => "refused",
        Outcome::AccountAllowed => "no entry matched; the account is allowed",
        Outcome::NotMapped => "no entry matched",
    }
}

impl Explanation {
    /// Whether the identity maps.
    pub fn mapped(&self) -> bool {
        self.decision.mapped
    }

    /// The JSON form (two-space indent, newline-terminated).
    pub fn to_json(&self) -> String {
        // Plain data: serialising cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        let id = &self.identity;
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!("caller:        {}", id.arn));
        line(format!("canonical ARN: {}", id.canonical_arn));
        line(format!("account:       {}", id.account_id));
        if !id.user_id.is_empty() {
            line(format!("user id:       {}", id.user_id));
        }
        if !id.session_name.is_empty() {
            line(format!("session name:  {}", id.session_name));
        }
        line(format!("backends:      {}", self.backend_modes.join(" ")));
        for b in &self.backends {
            line(String::new());
            line(format!("{}: {}", b.backend, outcome_text(b.outcome)));
            if let Some(e) = &b.entry {
                line(format!(
                    "  entry:    {} {}",
                    entry_name(b.backend, e.section, e.index),
                    e.arn
                ));
            }
            for n in &b.notes {
                line(format!("  note:     {n}"));
            }
            for r in &b.rendered {
                line(format!(
                    "  {:<9} {:?} -> {:?}",
                    format!("{}:", r.field),
                    r.template,
                    r.value
                ));
            }
            if let Some(r) = &b.reason {
                line(format!("  reason:   {r}"));
            }
        }
        line(String::new());
        let d = &self.decision;
        if d.mapped {
            line("result: mapped".to_owned());
            line(format!(
                "  username: {}",
                d.username.as_deref().unwrap_or("")
            ));
            let groups = d.groups.as_deref().unwrap_or_default();
            line(format!("  groups:   [{}]", groups.join(", ")));
            let uid = d.uid.as_deref().unwrap_or("");
            if id.user_id.is_empty() {
                // Only STS knows the unique id: say why it is missing.
                line(format!(
                    "  uid:      {uid} (no user id: give --user-id, or --token)"
                ));
            } else {
                line(format!("  uid:      {uid}"));
            }
        } else {
            line("result: denied".to_owned());
            line(format!("  reason:   {}", d.reason.as_deref().unwrap_or("")));
        }
        out
    }
}
