//! The Talos system extension's entrypoint (`talos-init`): the environment an
//! `ExtensionServiceConfig` provides → validated settings → `init` (and, with
//! `SERVE=true`, `server`) arguments → exec.
//!
//! The service starts on every boot whether or not the node has an
//! `ExtensionServiceConfig` (the spec does not wait for one: a service Waiting on it would
//! hold the boot, see `extension/aws-iam-authenticator.yaml`). So "none of our variables
//! is set" is a normal state: it logs one line and exits 0, writing nothing. When a
//! configuration arrives later, Talos starts the service again
//! (siderolabs/talos:internal/app/machined/pkg/controllers/runtime/extension_service.go,
//! `handleRestart`: a new or changed config stops the service if it runs and starts it).
//!
//! Every bad input is found here, before anything is written, and reported as one line,
//! so `talosctl logs ext-aws-iam-authenticator` says exactly what to fix; Talos then
//! retries every 5 s (`restart: untilSuccess`).
//!
//! The parts: the environment as Talos hands it over (`env`), its validation into a
//! [`Plan`] (`plan`, with `config_file` for a `CONFIG_FILE` and its agreement with the
//! variables), the `init` and `server` arguments of the settings (`args`), and the exec
//! (`exec`).

use std::path::PathBuf;

mod args;
mod config_file;
mod env;
mod exec;
mod plan;

pub use env::{last_wins, log_format_from, process_env, with_server_defaults};
pub use exec::{exec, executing_line, go_slice, running_line};
pub use plan::{Plan, Serve, Settings};

/// Where the binary lives inside the extension's container rootfs (what the log shows).
pub const BINARY_PATH: &str = "/usr/local/bin/aws-iam-authenticator";
/// Default `STATE_DIR`: the in-container mount point of host `/var/lib/aws-iam-authenticator`.
pub const DEFAULT_STATE_DIR: &str = "/usr/local/lib/aws-iam-authenticator";
/// Default `KEY_OWNER`: the uid the server runs as (the non-root image's).
pub const DEFAULT_KEY_OWNER: &str = "65532";
/// The webhook kubeconfig's file name in the state dir.
pub const KUBECONFIG_FILE: &str = "kubeconfig.yaml";
/// The server config's file name in the state dir.
pub const CONFIG_FILE: &str = "config.yaml";
/// Mode of the state dir: the apiserver (uid 65534) and the server (uid 65532) must
/// traverse it, and Talos creates a missing mount source 0700.
pub const STATE_DIR_MODE: u32 = 0o755;

/// The variables that configure the extension: when none of them is set (or all are
/// empty) the node has no configuration and `talos-init` does nothing.
///
/// `LOG_FORMAT` is read too but does not count: it says how to log, not what to do.
/// Nothing else counts either, in particular not what Talos passes every service from
/// the machine's environment (`machine.env`, `EnvironmentConfig`, `talos.environment=`:
/// siderolabs/talos:internal/pkg/environment/environment.go), such as `AWS_REGION` or
/// `https_proxy`: those are set on workers as well.
pub const CONFIG_VARIABLES: &[&str] = &[
    "CLUSTER_ID",
    "HOSTNAME",
    "ADDRESS",
    "CONFIG_FILE",
    "STATE_DIR",
    "KEY_OWNER",
    "SERVE",
    "HEALTH_ADDRESS",
    "STS_RESOLVE",
    "STS_CA_FILE",
];

/// The variables only the extension-served server (`SERVE=true`) reads.
const SERVE_VARIABLES: &[&str] = &["HEALTH_ADDRESS", "STS_RESOLVE", "STS_CA_FILE"];

/// A bad environment, each message naming the variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The environment could not be decoded (a value that is not UTF-8).
    #[error("invalid environment: {0}")]
    Env(String),
    /// `CLUSTER_ID` is unset or empty, and `CONFIG_FILE` has no `clusterID`.
    #[error(
        "CLUSTER_ID is required: set it (or clusterID in CONFIG_FILE) to the cluster ID clients pass to `token -i`"
    )]
    MissingClusterId,
    /// `LOG_FORMAT` is neither `text` nor `json`.
    #[error("invalid LOG_FORMAT {0:?}: expected text or json")]
    LogFormat(String),
    /// `ADDRESS` is not an IP address.
    #[error("invalid ADDRESS {0:?}: expected an IP address such as 127.0.0.1 or 0.0.0.0")]
    Address(String),
    /// `HOSTNAME` is not a host name or IP address.
    #[error("invalid HOSTNAME {0:?}: expected a host name or IP address")]
    Hostname(String),
    /// `KEY_OWNER` is not `UID[:GID]`.
    #[error("invalid KEY_OWNER: {0}")]
    KeyOwner(String),
    /// `STATE_DIR` is not an absolute path.
    #[error("invalid STATE_DIR {0:?}: expected an absolute path")]
    StateDir(String),
    /// `SERVE` is not a boolean.
    #[error("invalid SERVE {0:?}: expected true or false")]
    Serve(String),
    /// A variable only `SERVE=true` uses is set without it.
    #[error("{0} is set but SERVE is not true: only the server the extension runs reads it")]
    ServeOnly(&'static str),
    /// `HEALTH_ADDRESS` is not `IP:PORT`.
    #[error("invalid HEALTH_ADDRESS {0:?}: expected IP:PORT, e.g. 0.0.0.0:21363")]
    HealthAddress(String),
    /// `STS_RESOLVE` is not a list of `HOST=IP:PORT`.
    #[error("invalid STS_RESOLVE: {0}")]
    StsResolve(String),
    /// `STS_CA_FILE` is not an absolute path.
    #[error("invalid STS_CA_FILE {0:?}: expected an absolute path")]
    StsCaFile(String),
    /// `CONFIG_FILE` cannot be used.
    #[error("invalid CONFIG_FILE {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The exec itself failed.
    #[error("could not execute {path}: {source}")]
    Exec {
        /// The binary.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },
}

#[cfg(test)]
mod tests;
