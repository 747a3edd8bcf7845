//! Following the config file: each new version is resolved as at startup; its
//! MountedFile mappings replace the ones in force, a broken version changes nothing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::{debug, info, warn};

use super::restart::restart_needed;
use super::{Error, FileMapper, build, is_built_from};
use crate::config::types::{BackendMode, RoleMapping, UserMapping};
use crate::config::{ConfigFile, ServerConfig, ServerFlags};
use crate::mapper::metrics::{InvalidEntries, InvalidEntry, MapperMetrics};
use crate::mapper::table::{RoleKey, user_key};
use crate::mapper::watch::{self, Event, FileWatch};

impl FileMapper {
    /// Follows the config file `source` while the server runs: each new version is
    /// resolved exactly as at startup (the same flags and environment over the file),
    /// and its `server.mapRoles`, `server.mapUsers` and `server.mapAccounts` replace the
    /// ones in force. A version that would not start the server (not YAML, an invalid
    /// entry, a bad value under any key), an unreadable file and a deleted one change
    /// nothing: the last good mappings stay, a warning names the file, key and problem,
    /// and `mapping_reload_failures_total{backend="MountedFile"}` counts it (invalid
    /// entries also show in `mapping_invalid_entry`). Other settings are read at startup
    /// only: a version that changes them logs that a restart is needed and the running
    /// values stay. Needs a tokio runtime.
    // upstream: pkg/mapper/file/mapper.go reads the mappings once at startup; we follow
    // the file because on Talos a `talosctl patch` rewrites it under a running server.
    // A deleted file keeps the mappings (unlike DynamicFile): it is the server's own
    // configuration, which a restart would need anyway.
    pub fn follow(
        self: &Arc<Self>,
        source: ConfigSource,
        running: ServerConfig,
        metrics: MapperMetrics,
    ) {
        let reload = Reload::new(source, running, metrics);
        let watch = FileWatch::new(reload.source.path.clone());
        let task = watch::follow(self, watch, move |mapper, event| {
            mapper.reload(&reload, event);
            std::future::ready(())
        });
        let mut slot = self.follow.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(task);
    }

    /// Applies one change of the config file (see [`FileMapper::follow`]).
    fn reload(&self, reload: &Reload, event: Event) {
        let path = &reload.source.path;
        let config = match event {
            Event::Changed(bytes) => reload.resolve(&bytes),
            Event::Deleted => Err(Rejected::from(ReloadError::Deleted { path: path.clone() })),
            Event::Unreadable(message) => Err(Rejected::from(ReloadError::Unreadable {
                path: path.clone(),
                message,
            })),
        };
        let (config, warnings) = match config {
            Ok(resolved) => resolved,
            Err(rejected) => return reload.reject(rejected),
        };
        let restart = restart_needed(&reload.running, &config);
        let (roles, users, accounts) = (
            &config.role_mappings,
            &config.user_mappings,
            &config.account_mappings,
        );
        let unchanged = is_built_from(&self.current(), roles, users, accounts);
        // The first version read is, unless it changed during startup, the one the server
        // started with, whose warnings were logged then: say them again only when this
        // version changes something or warns about something new.
        let previous = reload
            .warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(warnings.clone());
        if !unchanged || !restart.is_empty() || previous.is_some_and(|p| p != warnings) {
            for w in &warnings {
                warn!(path = %path.display(), "{w}");
            }
        }
        if !restart.is_empty() {
            warn!(
                path = %path.display(),
                keys = %restart.join(", "),
                "configuration file changed settings that are read at startup only; the running values stay until the server is restarted"
            );
        }
        if unchanged {
            debug!(path = %path.display(), "configuration file changed; MountedFile mappings unchanged");
        } else {
            match build(roles, users, accounts) {
                Ok(index) => {
                    self.install(index);
                    info!(
                        path = %path.display(),
                        mapRoles = roles.len(),
                        mapUsers = users.len(),
                        mapAccounts = accounts.len(),
                        "reloaded MountedFile mappings from the configuration file"
                    );
                }
                Err(e) => {
                    let entries = vec![e.entry()];
                    let error = ReloadError::Entry {
                        path: path.clone(),
                        source: e,
                    };
                    return reload.reject(Rejected { error, entries });
                }
            }
        }
        reload.invalid.replace([]);
    }
}

/// The config file to follow, and how it was read at startup.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The `--config` file.
    pub path: PathBuf,
    /// The command line (and the environment clap read) the file was resolved with.
    pub flags: ServerFlags,
}

/// Why a version of the config file was not used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file could not be parsed or a value has the wrong shape (the error names the
    /// file and the key).
    #[error(transparent)]
    File(crate::config::file::Error),
    /// The file would not start the server.
    #[error("configuration file {path:?}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key or entry.
        source: crate::config::Error,
    },
    /// A mapping entry is unusable.
    #[error("configuration file {path:?}: {source}")]
    Entry {
        /// The file.
        path: PathBuf,
        /// The entry and what is wrong with it.
        source: Error,
    },
    /// The file is not UTF-8 text.
    #[error("can't parse configuration file {path:?}: not UTF-8 text")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// The file was deleted.
    #[error("configuration file {path:?} was deleted")]
    Deleted {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("can't read configuration file {path:?}: {message}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
}

/// A rejected version: why, and the entries to flag in `mapping_invalid_entry`.
#[derive(Debug)]
struct Rejected {
    error: ReloadError,
    entries: Vec<InvalidEntry>,
}

impl From<ReloadError> for Rejected {
    fn from(error: ReloadError) -> Self {
        Self {
            error,
            entries: Vec::new(),
        }
    }
}

/// What the follow task needs.
#[derive(Debug)]
struct Reload {
    source: ConfigSource,
    /// The configuration the server started with.
    running: ServerConfig,
    /// The warnings of the last version read (`None` before the first).
    warnings: Mutex<Option<Vec<String>>>,
    metrics: MapperMetrics,
    /// The `mapping_invalid_entry` series of the file's current version.
    invalid: InvalidEntries,
}

impl Reload {
    fn new(source: ConfigSource, running: ServerConfig, metrics: MapperMetrics) -> Self {
        Self {
            source,
            running,
            warnings: Mutex::new(None),
            invalid: metrics.invalid_entries(BackendMode::MountedFile.into()),
            metrics,
        }
    }

    fn reject(&self, rejected: Rejected) {
        warn!(
            path = %self.source.path.display(),
            error = %rejected.error,
            "configuration file rejected; the last good MountedFile mappings stay in force"
        );
        self.invalid.replace(rejected.entries);
        self.metrics.reload_failed(BackendMode::MountedFile.into());
    }

    /// Resolves one version of the file as the server did at startup.
    fn resolve(&self, bytes: &[u8]) -> Result<(ServerConfig, Vec<String>), Rejected> {
        let path = &self.source.path;
        let text =
            std::str::from_utf8(bytes).map_err(|_| ReloadError::NotText { path: path.clone() })?;
        let file = ConfigFile::parse(path, text).map_err(ReloadError::File)?;
        match ServerConfig::resolve(self.source.flags.clone(), Some(&file)) {
            Ok(resolved) => Ok(resolved),
            Err(crate::config::Error::File(e)) => Err(Rejected {
                entries: invalid_entries(&file),
                error: ReloadError::File(e),
            }),
            Err(source) => Err(Rejected {
                entries: invalid_entries(&file),
                error: ReloadError::Config {
                    path: path.clone(),
                    source,
                },
            }),
        }
    }
}

/// The mapping entries (or whole sections, when they do not decode) of `file` that
/// MountedFile could not use, as `mapping_invalid_entry` labels.
fn invalid_entries(file: &ConfigFile) -> Vec<InvalidEntry> {
    let mut out = Vec::new();
    match file.get_as::<Vec<RoleMapping>>("server.mapRoles") {
        Ok(roles) => out.extend(
            roles
                .unwrap_or_default()
                .iter()
                .enumerate()
                .filter(|(_, m)| RoleKey::of(m).is_err())
                .map(|(i, _)| InvalidEntry::at("server.mapRoles", i)),
        ),
        Err(_) => out.push(InvalidEntry::section("server.mapRoles")),
    }
    match file.get_as::<Vec<UserMapping>>("server.mapUsers") {
        Ok(users) => out.extend(
            users
                .unwrap_or_default()
                .iter()
                .enumerate()
                .filter(|(_, m)| user_key(m).is_err())
                .map(|(i, _)| InvalidEntry::at("server.mapUsers", i)),
        ),
        Err(_) => out.push(InvalidEntry::section("server.mapUsers")),
    }
    if file.get_string_list("server.mapAccounts").is_err() {
        out.push(InvalidEntry::section("server.mapAccounts"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::mapper::Mapper;
    use crate::metrics::Registry;
    use std::path::Path;

    const ALICE: &str = "arn:aws:iam::123456789012:role/Alice";
    const PATH: &str = "/etc/aws-iam-authenticator/config.yaml";

    fn identity(arn: &str) -> Identity {
        Identity {
            arn: arn.into(),
            canonical_arn: arn.into(),
            account_id: "123456789012".into(),
            user_id: "AROAEXAMPLE".into(),
            session_name: "s".into(),
            ..Default::default()
        }
    }

    fn config_text(body: &str) -> String {
        format!("clusterID: my-cluster\nserver:\n  port: 21362\n{body}")
    }

    fn alice_as(username: &str) -> String {
        config_text(&format!(
            "  mapRoles:\n  - rolearn: {ALICE}\n    username: {username}\n"
        ))
    }

    /// The mapper and its reload context, started from `text` with `flags`, counting on
    /// the returned registry.
    fn started(text: &str, flags: ServerFlags) -> (FileMapper, Reload, Registry) {
        let path = PathBuf::from(PATH);
        let file = ConfigFile::parse(&path, text).unwrap();
        let (running, _) = ServerConfig::resolve(flags.clone(), Some(&file)).unwrap();
        let mapper = FileMapper::from_mappings(
            &running.role_mappings,
            &running.user_mappings,
            &running.account_mappings,
            running.feature_gates.sso_role_match,
        )
        .unwrap();
        let mut root = crate::metrics::registry();
        let metrics = MapperMetrics::register(crate::metrics::prefixed(&mut root));
        let reload = Reload::new(ConfigSource { path, flags }, running, metrics);
        (mapper, reload, root)
    }

    fn username(mapper: &FileMapper) -> Option<String> {
        mapper.map(&identity(ALICE)).ok().map(|m| m.username)
    }

    fn failures(root: &Registry) -> Option<f64> {
        let text = crate::metrics::encode(root);
        let name = "aws_iam_authenticator_mapping_reload_failures_total";
        crate::metrics::sample(&text, name, r#"backend="MountedFile""#)
    }

    fn flagged(root: &Registry, entry: &str) -> Option<f64> {
        let text = crate::metrics::encode(root);
        let name = "aws_iam_authenticator_mapping_invalid_entry";
        let labels = format!(r#"backend="MountedFile",entry="{entry}""#);
        crate::metrics::sample(&text, name, &labels)
    }

    #[test]
    fn reload_applies_good_versions_and_keeps_the_last_good_mappings() {
        let (mapper, reload, root) = started(&alice_as("first"), ServerFlags::default());
        assert_eq!(username(&mapper).as_deref(), Some("first"));
        let changed = |text: &str| Event::Changed(text.as_bytes().to_vec());

        // A new version's mappings replace the old ones.
        mapper.reload(&reload, changed(&alice_as("second")));
        assert_eq!(username(&mapper).as_deref(), Some("second"));
        assert_eq!(failures(&root), None, "no failure, no series");

        // Broken versions change nothing and are counted, each once.
        let broken: [(&str, Event, Option<&str>); 6] = [
            ("not YAML", changed("server: [unclosed\n"), None),
            (
                "invalid entry",
                changed(&config_text(&format!(
                    "  mapRoles:\n  - rolearn: {ALICE}\n    username: x\n  - username: no-key\n"
                ))),
                Some("server.mapRoles[1]"),
            ),
            (
                "section of the wrong shape",
                changed(&config_text("  mapUsers: {a: b}\n")),
                Some("server.mapUsers"),
            ),
            (
                "a bad value elsewhere",
                changed(&config_text("  partition: nowhere\n")),
                None,
            ),
            ("deleted", Event::Deleted, None),
            (
                "unreadable",
                Event::Unreadable("Permission denied".into()),
                None,
            ),
        ];
        for (i, (what, event, entry)) in broken.into_iter().enumerate() {
            mapper.reload(&reload, event);
            assert_eq!(username(&mapper).as_deref(), Some("second"), "{what}");
            assert_eq!(failures(&root), Some(i as f64 + 1.0), "{what}");
            if let Some(entry) = entry {
                assert_eq!(flagged(&root, entry), Some(1.0), "{what}");
            }
        }
        assert_eq!(
            flagged(&root, "server.mapRoles[1]"),
            None,
            "a later version unflags"
        );

        // A good version again: applied, nothing flagged.
        mapper.reload(
            &reload,
            changed(&config_text(&format!(
                "  mapRoles:\n  - rolearn: {ALICE}\n    username: x\n  - username: no-key\n"
            ))),
        );
        assert_eq!(flagged(&root, "server.mapRoles[1]"), Some(1.0));
        mapper.reload(&reload, changed(&alice_as("third")));
        assert_eq!(username(&mapper).as_deref(), Some("third"));
        assert_eq!(flagged(&root, "server.mapRoles[1]"), None);

        // Accounts and users reload too; a restart-only change does not stop them.
        mapper.reload(
            &reload,
            changed(
                "clusterID: other\nserver:\n  port: 9999\n  mapAccounts: ['123456789012']\n  mapUsers:\n  - userarn: arn:aws:iam::123456789012:user/Bob\n    username: bob\n",
            ),
        );
        assert_eq!(username(&mapper), None);
        assert!(mapper.is_account_allowed("123456789012"));
        let bob = mapper
            .map(&identity("arn:aws:iam::123456789012:user/Bob"))
            .unwrap();
        assert_eq!(bob.username, "bob");
    }

    #[test]
    fn restart_needed_names_the_changed_startup_settings() {
        let (_, reload, _) = started(&alice_as("a"), ServerFlags::default());
        let resolve = |flags: ServerFlags, text: &str| {
            let file = ConfigFile::parse(Path::new(PATH), text).unwrap();
            ServerConfig::resolve(flags, Some(&file)).unwrap().0
        };
        let same = resolve(ServerFlags::default(), &alice_as("b"));
        assert!(restart_needed(&reload.running, &same).is_empty());
        let moved = resolve(
            ServerFlags::default(),
            "clusterID: other\nserver:\n  port: 9999\n  scrubbedAccounts: ['111122223333']\n",
        );
        assert_eq!(
            restart_needed(&reload.running, &moved),
            ["clusterID", "server.port", "server.scrubbedAccounts"]
        );

        // A setting the command line fixes does not change with the file.
        let flags = ServerFlags {
            port: Some(21362),
            ..ServerFlags::default()
        };
        let (_, reload, _) = started(&alice_as("a"), flags.clone());
        let file_port = resolve(flags, &config_text("").replace("21362", "9999"));
        assert!(restart_needed(&reload.running, &file_port).is_empty());
    }
}
