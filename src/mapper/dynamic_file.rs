//! DynamicFile: the EKS "access entries" JSON file at `server.dynamicfilepath`
//! (upstream `pkg/mapper/dynamicfile/`), followed while the server runs.
//!
//! ```json
//! {"LastUpdatedDateTime":"1700000000","Version":"7",
//!  "mapRoles":[{"rolearn":"arn:aws:iam::123456789012:role/Admin","userid":"AROA…","username":"admin","groups":["system:masters"]}],
//!  "mapUsers":[…], "mapAccounts":["123456789012"]}
//! ```
//!
//! Keys are matched case-insensitively, as Go's `encoding/json` does. With
//! `server.dynamicfileUserIDStrict` entries are keyed by `userid` (the role's or user's
//! unique id, which a deleted-and-recreated role does not keep) and an entry's ARN, if
//! given, must also match the caller's.
//!
//! A file that is not valid JSON, or has an entry without a key, is rejected whole: the
//! last good mappings stay in force, a warning says why, and
//! `dynamicfile_failures_total` and `mapping_reload_failures_total{backend}` count it.
//! Deleting the file clears the mappings; creating it again loads it.
//!
//! The file is followed by [`super::watch`] (polled: in-place writes and editors' atomic
//! replace are both picked up within a second).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tracing::{debug, info, warn};

use super::metrics::{E2eType, MapperMetrics};
use super::published::Published;
use super::table::{Hit, RoleKey, Table};
use super::trace::Trace;
use super::watch::{self, Event, FileWatch};
use super::{IdentityMapping, MapError, Mapper};
use crate::config::file::lowercase_keys;
use crate::config::types::{
    BackendMode, MappingError, RoleMapping, UserMapping, role_arn_key, user_arn_key,
};
use crate::identity::Identity;

/// Upstream's text for an entry without a key in strict mode (roles).
const ROLE_KEY_MISSING: &str =
    "value for rolearn or userid(if dynamicfileUserIDStrict = true) must be supplied";
/// Upstream's text for an entry without a key in strict mode (users).
const USER_KEY_MISSING: &str =
    "value for userarn or userid(if dynamicfileUserIDStrict = true) must be supplied";
/// Upstream's text when a strict-mode entry's ARN is not the caller's.
pub const ARN_MISMATCH: &str = "ARN does not match User ID";

/// Why the backend could not start or a file version was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `server.dynamicfilepath` is not set.
    #[error("server.dynamicfilepath is not set")]
    NoPath,
    /// The file is not valid JSON of the expected shape.
    #[error("could not parse dynamic file {path}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// An entry is unusable; the whole version is rejected.
    #[error("dynamic file {path}: {entry}: {message}")]
    Entry {
        /// The file.
        path: PathBuf,
        /// Which entry, e.g. `mapRoles[2]`.
        entry: String,
        /// What is wrong (upstream's text where it has one).
        message: String,
    },
    /// The file exists but could not be read.
    #[error("could not read dynamic file {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
}

/// The file's shape, after its keys were lower-cased.
#[derive(Debug, Deserialize)]
struct FileData {
    #[serde(default)]
    lastupdateddatetime: Option<serde_json::Value>,
    #[serde(default)]
    maproles: Option<Vec<RoleMapping>>,
    #[serde(default)]
    mapusers: Option<Vec<UserMapping>>,
    #[serde(default)]
    mapaccounts: Option<Vec<String>>,
}

/// Parses one version of the file: every entry must have its key, or the version is
/// rejected. Returns the table and `LastUpdatedDateTime`, if any.
fn parse(path: &Path, bytes: &[u8], strict: bool) -> Result<(Table, Option<String>), Error> {
    let json_err = |message: String| Error::Json {
        path: path.to_owned(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| json_err(e.to_string()))?;
    let data: FileData =
        serde_json::from_value(lowercase_keys(value)).map_err(|e| json_err(e.to_string()))?;
    let entry_err = |entry: String, message: String| Error::Entry {
        path: path.to_owned(),
        entry,
        message,
    };
    let mut table: Table = Table::default();
    for (i, m) in data.maproles.unwrap_or_default().into_iter().enumerate() {
        let key = if strict {
            m.userid.clone()
        } else if m.rolearn.is_empty() {
            String::new()
        } else {
            // upstream: pkg/mapper/dynamicfile keys by the canonical ARN with its path, so
            // a role with a path never matches; we strip the path as MountedFile does.
            role_arn_key(&m.rolearn)
                .map_err(|e: MappingError| entry_err(format!("mapRoles[{i}]"), e.to_string()))?
        };
        if key.is_empty() {
            return Err(entry_err(
                format!("mapRoles[{i}]"),
                ROLE_KEY_MISSING.to_owned(),
            ));
        }
        // The first entry for a key wins, as in MountedFile.
        table.push_role(RoleKey::Arn(key), m);
    }
    for (i, m) in data.mapusers.unwrap_or_default().into_iter().enumerate() {
        let key = if strict {
            m.userid.clone()
        } else if m.userarn.is_empty() {
            String::new()
        } else {
            user_arn_key(&m.userarn)
                .map_err(|e: MappingError| entry_err(format!("mapUsers[{i}]"), e.to_string()))?
        };
        if key.is_empty() {
            return Err(entry_err(
                format!("mapUsers[{i}]"),
                USER_KEY_MISSING.to_owned(),
            ));
        }
        table.push_user(key, m);
    }
    for account in data.mapaccounts.unwrap_or_default() {
        table.push_account(account);
    }
    let last_updated = data.lastupdateddatetime.and_then(|v| match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    Ok((table, last_updated))
}

/// Whether the server would accept this version of the file, or why not (`validate`).
pub fn check(path: &Path, bytes: &[u8], strict: bool) -> Result<(), Error> {
    parse(path, bytes, strict).map(|_| ())
}

/// Seconds since `LastUpdatedDateTime` (unix seconds), for `dynamic_e2e_latency_seconds`.
pub(crate) fn e2e_latency(last_updated: &str) -> Option<f64> {
    let then: i64 = last_updated.trim().parse().ok()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    Some((now - then as f64).max(0.0))
}

/// The state the watch task and lookups share.
#[derive(Debug)]
struct State {
    path: PathBuf,
    strict: bool,
    table: Published<Table>,
    loaded_once: AtomicBool,
    metrics: MapperMetrics,
}

impl State {
    fn table(&self) -> Arc<Table> {
        self.table.load()
    }

    fn set_table(&self, table: Table) {
        self.table.store(Arc::new(table));
    }

    fn reject(&self, why: &Error) {
        warn!(
            path = %self.path.display(),
            error = %why,
            "dynamic file rejected; the last good mappings stay in force"
        );
        self.metrics.dynamicfile_failed();
        self.metrics.reload_failed(BackendMode::DynamicFile.into());
    }

    fn apply(&self, event: Event) {
        match event {
            Event::Changed(bytes) => match parse(&self.path, &bytes, self.strict) {
                Ok((table, last_updated)) => {
                    info!(
                        path = %self.path.display(),
                        roles = table.roles().len(),
                        users = table.users().len(),
                        accounts = table.accounts().len(),
                        "loaded dynamic file"
                    );
                    self.set_table(table);
                    // Upstream skips the latency of the first load (it measures the
                    // file's age, not a propagation delay).
                    let first = !self.loaded_once.swap(true, Ordering::SeqCst);
                    if !first && let Some(latency) = last_updated.as_deref().and_then(e2e_latency) {
                        self.metrics.e2e_latency(E2eType::DynamicFile, latency);
                    }
                }
                Err(e) => self.reject(&e),
            },
            Event::Deleted => {
                info!(path = %self.path.display(), "dynamic file deleted; mappings cleared");
                self.set_table(Table::default());
            }
            Event::Unreadable(message) => self.reject(&Error::Read {
                path: self.path.clone(),
                message,
            }),
        }
    }
}

/// The DynamicFile backend. Dropping it stops its watch task.
#[derive(Debug)]
pub struct DynamicFileMapper {
    state: Arc<State>,
    _follow: watch::Task,
}

impl DynamicFileMapper {
    /// Starts the backend for the file at `path` (`server.dynamicfilepath`; `strict`
    /// is `server.dynamicfileuseridstrict`): loads the file once (a missing file means no
    /// mappings until it appears), then follows it in a background task. Needs a tokio
    /// runtime. It counts on `metrics`.
    pub async fn start_at(path: PathBuf, strict: bool, metrics: MapperMetrics) -> Arc<Self> {
        let state = Arc::new(State {
            path: path.clone(),
            strict,
            table: Published::default(),
            loaded_once: AtomicBool::new(false),
            metrics,
        });
        let mut watch = FileWatch::new(path);
        match watch.check().await {
            Some(event) => state.apply(event),
            None => info!(
                path = %state.path.display(),
                "dynamic file does not exist yet; no mappings until it appears"
            ),
        }
        state.table.set_ready();
        let follow = watch::follow(&state, watch, |state, event| async move {
            state.apply(event);
        });
        Arc::new(Self {
            state,
            _follow: follow,
        })
    }
}

impl DynamicFileMapper {
    /// The mapping of `hit`, found for the caller whose lower-cased canonical ARN is
    /// `identity_arn`. In strict mode an entry's ARN, when given, must be the caller's.
    fn found(
        &self,
        identity_arn: String,
        hit: Hit<'_, RoleMapping, UserMapping>,
    ) -> Result<IdentityMapping, MapError> {
        let mapping_arn = match hit {
            Hit::Role(m) => &m.rolearn,
            Hit::User(m) => &m.userarn,
        };
        if self.state.strict && !mapping_arn.is_empty() {
            debug!(arn = %identity_arn, "additional arn comparison for IAM arn");
            // An unparsable ARN is a mismatch too (upstream v0.7.17).
            let matches = crate::arn::strip_path(&mapping_arn.to_lowercase())
                .is_ok_and(|stripped| stripped == identity_arn);
            if !matches {
                return Err(MapError::Refused(ARN_MISMATCH.to_owned()));
            }
        }
        Ok(hit.mapping(identity_arn))
    }
}

impl Mapper for DynamicFileMapper {
    fn mode(&self) -> BackendMode {
        BackendMode::DynamicFile
    }

    fn map(&self, identity: &Identity) -> Result<IdentityMapping, MapError> {
        self.map_traced(identity, &mut Trace::off())
    }

    fn map_traced(
        &self,
        identity: &Identity,
        trace: &mut Trace,
    ) -> Result<IdentityMapping, MapError> {
        let table = self.state.table();
        let arn = identity.canonical_arn.to_lowercase();
        let key = if self.state.strict {
            identity.user_id.as_str()
        } else {
            arn.as_str()
        };
        // DynamicFile has no SSO entries: every key is exact.
        match table.find_traced(key, false, trace) {
            Some(hit) => self.found(arn, hit),
            None => Err(MapError::NotMapped),
        }
    }

    fn is_account_allowed(&self, account: &str) -> bool {
        self.state.table().is_account_allowed(account)
    }

    fn is_ready(&self) -> bool {
        self.state.table.is_ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_missing_keys() {
        let p = Path::new("/x/access.json");
        let e = parse(p, br#"{"mapRoles":[{"username":"a"}]}"#, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("dynamic file /x/access.json: mapRoles[0]: {ROLE_KEY_MISSING}")
        );
        let e = parse(
            p,
            br#"{"mapUsers":[{"userarn":"arn:aws:iam::123456789012:user/a","username":"a"}]}"#,
            true,
        )
        .unwrap_err();
        assert!(e.to_string().contains(USER_KEY_MISSING), "{e}");
        assert!(parse(p, b"{not json", false).is_err());
    }

    #[test]
    fn parse_keys_case_insensitively() {
        let p = Path::new("a.json");
        let (table, last) = parse(
            p,
            br#"{"LASTUPDATEDDATETIME":"17","MapRoles":[{"RoleARN":"arn:aws:iam::123456789012:role/Team/Admin","UserName":"admin","Groups":["g"]}],"mapaccounts":["012345678901"]}"#,
            false,
        )
        .unwrap();
        assert_eq!(last.as_deref(), Some("17"));
        let m = table
            .lookup("arn:aws:iam::123456789012:role/Admin", false)
            .unwrap();
        assert_eq!(m.username, "admin");
        assert_eq!(table.accounts(), ["012345678901"]);
    }

    #[test]
    fn latency() {
        assert!(e2e_latency("nope").is_none());
        assert!(e2e_latency("0").unwrap() > 1.0e9);
    }
}
