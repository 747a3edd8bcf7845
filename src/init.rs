//! `init`: the webhook's key pair, the webhook kubeconfig and (optionally) the server's
//! config file, created once and kept.
//!
//! Every run converges on the same state and touches nothing that is already right: a
//! valid key pair is kept byte for byte (the apiserver trusts that certificate), a
//! missing or damaged one is replaced and the kubeconfig rewritten to match, files are
//! rewritten only when their content would change, and modes and the key's owner are
//! corrected in place. Every write is atomic.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::kubeconfig;
use crate::tls::{self, KeyPair};

/// File name of the upstream-compatible webhook kubeconfig written to the working
/// directory when no output path is configured.
pub const CWD_KUBECONFIG: &str = "aws-iam-authenticator.kubeconfig";
/// Mode of the server config file `init` writes.
pub const CONFIG_MODE: u32 = 0o644;
/// Mode of directories `init` creates.
pub const DIR_MODE: u32 = 0o755;

/// Errors of `init`. The messages start with upstream's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key pair could not be loaded or created.
    #[error("could not load/generate a certificate: {0}")]
    Certificate(#[source] tls::Error),
    /// The webhook kubeconfig could not be written.
    #[error("could not generate a webhook kubeconfig at {path}: {source}")]
    Kubeconfig {
        /// The kubeconfig path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: kubeconfig::Error,
    },
    /// The config file could not be written.
    #[error("could not write the config file {path}: {source}")]
    Config {
        /// The config path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: fsutil::Error,
    },
    /// A directory could not be created, or a mode or owner could not be set.
    #[error("could not {action} {path}: {source}")]
    Fs {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// An owner for `key.pem`: user id and, optionally, group id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The user id.
    pub uid: u32,
    /// The group id (unchanged when `None`).
    pub gid: Option<u32>,
}

impl std::str::FromStr for Owner {
    type Err = String;

    /// Parses `UID` or `UID:GID` (numeric ids: the server's image has no user database).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("invalid owner {s:?}: expected UID or UID:GID (numbers)"))
        };
        match s.split_once(':') {
            Some((u, g)) => Ok(Self {
                uid: num(u)?,
                gid: Some(num(g)?),
            }),
            None => Ok(Self {
                uid: num(s)?,
                gid: None,
            }),
        }
    }
}

/// What `init` writes, fully resolved.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory of `cert.pem` and `key.pem`.
    pub state_dir: PathBuf,
    /// The webhook kubeconfig to write.
    pub kubeconfig_path: PathBuf,
    /// Host name in the certificate and the webhook URL.
    pub hostname: String,
    /// The server's bind address (an IP SAN in the certificate).
    pub address: String,
    /// The server's TLS port (in the webhook URL).
    pub port: u16,
    /// Owner to give `key.pem` (left as it is when `None`).
    pub key_owner: Option<Owner>,
    /// A config file to write: path and content.
    pub config: Option<(PathBuf, Vec<u8>)>,
    /// Mode to give the state dir (left as it is when `None`).
    pub state_dir_mode: Option<u32>,
}

/// What a run changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// A new key pair was created.
    pub key_pair_created: bool,
    /// The webhook kubeconfig was (re)written.
    pub kubeconfig_written: bool,
    /// The config file was (re)written.
    pub config_written: bool,
}

/// Runs `init` with `opts`. Returns the key pair in use and what changed.
pub fn run(opts: &Options) -> Result<(KeyPair, Outcome), Error> {
    ensure_dir(&opts.state_dir)?;
    if let Some(mode) = opts.state_dir_mode {
        ensure_mode(&opts.state_dir, mode)?;
    }
    let (pair, key_pair_created) =
        tls::load_or_create(&opts.state_dir, &opts.hostname, &opts.address, true)
            .map_err(Error::Certificate)?;
    let key_path = opts.state_dir.join(tls::KEY_FILE);
    let cert_path = opts.state_dir.join(tls::CERT_FILE);
    ensure_mode(&key_path, tls::KEY_MODE)?;
    ensure_mode(&cert_path, tls::CERT_MODE)?;
    if let Some(owner) = opts.key_owner {
        ensure_owner(&key_path, owner)?;
    }

    let kubeconfig_err = |source| Error::Kubeconfig {
        path: opts.kubeconfig_path.clone(),
        source,
    };
    if let Some(parent) = opts.kubeconfig_path.parent() {
        ensure_dir(parent)?;
    }
    let url = kubeconfig::server_url(&opts.hostname, opts.port);
    let kubeconfig_written =
        kubeconfig::write_webhook(&opts.kubeconfig_path, &pair, &url).map_err(kubeconfig_err)?;

    let mut config_written = false;
    if let Some((path, content)) = &opts.config {
        if let Some(parent) = path.parent() {
            ensure_dir(parent)?;
        }
        if fs::read(path).ok().as_deref() != Some(content.as_slice()) {
            tracing::info!(configPath = %path.display(), "writing config file");
            fsutil::write_atomic(path, content, CONFIG_MODE).map_err(|source| Error::Config {
                path: path.clone(),
                source,
            })?;
            config_written = true;
        } else {
            ensure_mode(path, CONFIG_MODE)?;
        }
    }
    Ok((
        pair,
        Outcome {
            key_pair_created,
            kubeconfig_written,
            config_written,
        },
    ))
}

/// The minimal server config: just the cluster id (so `server --config=…` always has a
/// file to read).
pub fn minimal_config(cluster_id: &str) -> String {
    // JSON string syntax is valid YAML and quotes anything a cluster id might contain.
    format!(
        "clusterID: {}\n",
        serde_json::Value::String(cluster_id.to_owned())
    )
}

/// [`minimal_config`], plus `server.address` when `address` is not the default: the
/// server reading this file then listens on the address the certificate names.
pub fn minimal_server_config(cluster_id: &str, address: &str) -> String {
    let mut text = minimal_config(cluster_id);
    if address != crate::config::DEFAULT_ADDRESS {
        text.push_str(&format!(
            "server:\n  address: {}\n",
            serde_json::Value::String(address.to_owned())
        ));
    }
    text
}

fn ensure_dir(dir: &Path) -> Result<(), Error> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| Error::Fs {
            action: "create directory",
            path: dir.to_owned(),
            source,
        })
}

fn ensure_mode(path: &Path, mode: u32) -> Result<(), Error> {
    let err = |source| Error::Fs {
        action: "set the mode of",
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(err)?;
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err)?;
    }
    Ok(())
}

fn ensure_owner(path: &Path, owner: Owner) -> Result<(), Error> {
    let err = |source| Error::Fs {
        action: "set the owner of",
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(err)?;
    if meta.uid() == owner.uid && owner.gid.is_none_or(|g| g == meta.gid()) {
        return Ok(());
    }
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(owner.uid)),
        owner.gid.map(nix::unistd::Gid::from_raw),
    )
    .map_err(|e| err(io::Error::from(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_parse() {
        assert_eq!(
            "65532".parse::<Owner>().unwrap(),
            Owner {
                uid: 65532,
                gid: None
            }
        );
        assert_eq!(
            "1:2".parse::<Owner>().unwrap(),
            Owner {
                uid: 1,
                gid: Some(2)
            }
        );
        for bad in ["", "x", "1:", ":1", "1:2:3", "-1"] {
            assert!(bad.parse::<Owner>().is_err(), "{bad}");
        }
    }

    #[test]
    fn minimal_config_is_yaml_with_the_cluster_id() {
        let text = minimal_config("my-cluster");
        assert_eq!(text, "clusterID: \"my-cluster\"\n");
        let c = crate::config::ConfigFile::parse(Path::new("c.yaml"), &minimal_config("a: #b"))
            .unwrap();
        assert_eq!(c.get_string("clusterID").unwrap().as_deref(), Some("a: #b"));

        assert_eq!(
            minimal_server_config("c", "127.0.0.1"),
            "clusterID: \"c\"\n"
        );
        let text = minimal_server_config("c", "10.0.0.5");
        let c = crate::config::ConfigFile::parse(Path::new("c.yaml"), &text).unwrap();
        assert_eq!(
            c.get_string("server.address").unwrap().as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(c.get_string("clusterID").unwrap().as_deref(), Some("c"));
    }

    #[test]
    fn run_converges_and_then_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let opts = Options {
            state_dir: state.clone(),
            kubeconfig_path: state.join("kubeconfig.yaml"),
            hostname: "localhost".into(),
            address: "127.0.0.1".into(),
            port: 21362,
            key_owner: None,
            config: Some((state.join("config.yaml"), b"clusterID: x\n".to_vec())),
            state_dir_mode: Some(0o755),
        };
        let (pair, first) = run(&opts).unwrap();
        assert_eq!(
            first,
            Outcome {
                key_pair_created: true,
                kubeconfig_written: true,
                config_written: true
            }
        );
        let (again, second) = run(&opts).unwrap();
        assert_eq!(again, pair);
        assert_eq!(second, Outcome::default());
        // A changed port rewrites only the kubeconfig.
        let moved = Options { port: 1, ..opts };
        let (_, third) = run(&moved).unwrap();
        assert!(third.kubeconfig_written && !third.key_pair_created && !third.config_written);
    }
}
