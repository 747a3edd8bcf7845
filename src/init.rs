//! `init`: the webhook's key pair, the webhook kubeconfig and (optionally) the server's
//! config file, created once and kept.
//!
//! Every run converges on the same state and touches nothing that is already right: a
//! valid key pair is kept byte for byte (the apiserver trusts that certificate), a
//! missing or damaged one is replaced and the kubeconfig rewritten to match, files are
//! rewritten only when their content would change, and modes and the key's owner are
//! corrected in place. Every write is atomic.
//!
//! `init` runs as root, and the state dir may be writable by the server's user, so
//! nothing planted there is followed: the state dir must be a real directory (Talos
//! bind-mounts it, so the mount point is one: siderolabs/talos:
//! internal/app/machined/pkg/system/services/extension.go creates a missing mount source
//! as a directory and hands the mount to the container as it is; a Kubernetes hostPath is
//! a bind mount too), `cert.pem`, `key.pem`, `kubeconfig.yaml`
//! and `config.yaml` must be regular files or missing (a link is refused, naming it),
//! modes and owners are set on the descriptors of the files read, temporary files get
//! random names and are created exclusively, and a file with other hard links is never
//! changed (see [`crate::fsutil`]). Runs on one state dir take turns (a lock on it), and
//! each removes the temporary files an interrupted one left.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::fsutil::{self, Dir};
use crate::kubeconfig;
use crate::tls::{self, KeyPair};

pub mod config_file;

pub use crate::fsutil::Owner;

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
    /// A directory could not be created, opened, locked or cleaned, or its mode set.
    #[error("{0}")]
    Dir(#[source] fsutil::Error),
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
    // upstream: pkg/config/certs/certs.go and pkg/config/kubeconfig/kubeconfig.go open
    // their paths with Go's os calls, following whatever link is there; we refuse
    // links and write through exclusive temporary files, because `init` runs as root in
    // a directory the server's user may be able to write.
    let dir = Dir::create(&opts.state_dir, DIR_MODE).map_err(Error::Dir)?;
    let _lock = dir.lock().map_err(Error::Dir)?;
    let kubeconfig_dir = output_dir(&dir, &opts.kubeconfig_path)?;
    let config_dir = match &opts.config {
        Some((path, _)) => Some(output_dir(&dir, path)?),
        None => None,
    };
    // What a run killed half-way left (the state dir's own files, and ours elsewhere).
    let state_names = [OsStr::new(tls::KEY_FILE), OsStr::new(tls::CERT_FILE)];
    let mut in_state_dir: Vec<&OsStr> = state_names.to_vec();
    for (out, name) in [Some(&kubeconfig_dir), config_dir.as_ref()]
        .into_iter()
        .flatten()
        .map(|(d, n)| (d, n.as_os_str()))
    {
        match out {
            Output::StateDir => in_state_dir.push(name),
            Output::Other(other) => {
                other.remove_stale_temps(&[name]).map_err(Error::Dir)?;
            }
        }
    }
    dir.remove_stale_temps(&in_state_dir).map_err(Error::Dir)?;

    if let Some(mode) = opts.state_dir_mode {
        dir.ensure_mode(mode).map_err(Error::Dir)?;
    }
    let fix = tls::FixFiles {
        key_owner: opts.key_owner,
    };
    let (pair, key_pair_created) =
        tls::load_or_create_in(&dir, &opts.hostname, &opts.address, true, Some(fix))
            .map_err(Error::Certificate)?;

    let url = kubeconfig::server_url(&opts.hostname, opts.port);
    let (out, name) = &kubeconfig_dir;
    let kubeconfig_written = kubeconfig::write_webhook_in(out.dir(&dir), name, &pair, &url)
        .map_err(|source| Error::Kubeconfig {
            path: opts.kubeconfig_path.clone(),
            source,
        })?;

    let mut config_written = false;
    if let (Some((path, content)), Some((out, name))) = (&opts.config, &config_dir) {
        let out = out.dir(&dir);
        let config_err = |source| Error::Config {
            path: path.clone(),
            source,
        };
        config_written = out
            .ensure_content(name, content, CONFIG_MODE)
            .map_err(config_err)?;
        if config_written {
            tracing::info!(configPath = %path.display(), "wrote config file");
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

/// Where an output file goes: the state dir (already open and locked), or another
/// directory, opened (and created when missing) for it.
#[derive(Debug)]
enum Output {
    StateDir,
    Other(Dir),
}

impl Output {
    fn dir<'a>(&'a self, state: &'a Dir) -> &'a Dir {
        match self {
            Output::StateDir => state,
            Output::Other(d) => d,
        }
    }
}

/// The directory of the output `path` and its name there. A file directly in the state
/// dir is written through the state dir's descriptor.
fn output_dir(state: &Dir, path: &Path) -> Result<(Output, std::ffi::OsString), Error> {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => (p, n.to_owned()),
        _ => return Err(Error::Dir(fsutil::Error::InvalidPath(path.to_owned()))),
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    if parent == state.path() {
        return Ok((Output::StateDir, name));
    }
    // Resolved as usual: only the state dir is held to be a real directory.
    if !parent.is_dir() {
        Dir::create(parent, DIR_MODE).map_err(Error::Dir)?;
    }
    let (dir, name) = Dir::open_parent(path).map_err(Error::Dir)?;
    Ok((Output::Other(dir), name))
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

#[cfg(test)]
mod tests {
    use super::*;

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
