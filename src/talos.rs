//! The Talos system extension's entrypoint (`talos-init`): the environment an
//! `ExtensionServiceConfig` provides → validated settings → `init` arguments → exec.
//!
//! The service runs once per boot (and after every configuration change) as a one-shot
//! (`restart: untilSuccess`). Every bad input is found here, before anything is written,
//! and reported as one line, so `talosctl logs ext-aws-iam-authenticator` says exactly
//! what to fix; Talos then retries every 5 s.

use std::convert::Infallible;
use std::ffi::{CString, OsString};
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{ConfigFile, DEFAULT_ADDRESS, DEFAULT_HOSTNAME};
use crate::init::Owner;
use crate::logging::LogFormat;

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

/// A bad environment, each message naming the variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The environment could not be decoded (a value that is not UTF-8).
    #[error("invalid environment: {0}")]
    Env(String),
    /// `CLUSTER_ID` is unset or empty.
    #[error("CLUSTER_ID is required: set it to the cluster ID clients pass to `token -i`")]
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

/// The environment as Talos passes it (`ExtensionServiceConfig.environment`).
#[derive(Debug, Default, Deserialize)]
struct RawEnv {
    cluster_id: Option<String>,
    hostname: Option<String>,
    address: Option<String>,
    config_file: Option<String>,
    log_format: Option<String>,
    state_dir: Option<String>,
    key_owner: Option<String>,
}

/// Validated `talos-init` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `CLUSTER_ID` (required).
    pub cluster_id: String,
    /// `HOSTNAME` (default `localhost`): certificate SAN and webhook URL host.
    pub hostname: String,
    /// `ADDRESS` (default `127.0.0.1`): the server's bind address, a certificate SAN.
    pub address: String,
    /// `CONFIG_FILE`: a server config file (mappings, backend modes, …), validated.
    pub config_file: Option<PathBuf>,
    /// `LOG_FORMAT` (default `text`).
    pub log_format: LogFormat,
    /// `STATE_DIR` (default `/usr/local/lib/aws-iam-authenticator`).
    pub state_dir: PathBuf,
    /// `KEY_OWNER` (default `65532`): owner of `key.pem`.
    pub key_owner: Owner,
}

/// Empty values count as unset: an `ExtensionServiceConfig` line `HOSTNAME=` means "default".
fn set(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
}

/// The log format `LOG_FORMAT` asks for, if it is set and valid (for setting up logging
/// before the rest is validated).
pub fn log_format_from<I: IntoIterator<Item = (String, String)>>(vars: I) -> Option<LogFormat> {
    vars.into_iter()
        .find(|(k, _)| k == "LOG_FORMAT")
        .and_then(|(_, v)| LogFormat::parse(v.trim()))
}

impl Settings {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, Error> {
        let vars = std::env::vars_os().filter_map(|(k, v)| {
            // Variables we don't read may hold anything; only ours must be UTF-8.
            let k = k.into_string().ok()?;
            Some((k, v))
        });
        let mut utf8 = Vec::new();
        for (k, v) in vars {
            match v.into_string() {
                Ok(v) => utf8.push((k, v)),
                Err(_) if is_ours(&k) => {
                    return Err(Error::Env(format!("{k} is not valid UTF-8")));
                }
                Err(_) => {}
            }
        }
        Self::from_vars(utf8)
    }

    /// Reads and validates `vars` (name, value) as the environment.
    pub fn from_vars<I: IntoIterator<Item = (String, String)>>(vars: I) -> Result<Self, Error> {
        let raw: RawEnv = envy::from_iter(vars.into_iter().filter(|(k, _)| is_ours(k)))
            .map_err(|e| Error::Env(e.to_string()))?;
        let log_format = match set(raw.log_format) {
            None => LogFormat::Text,
            Some(f) => LogFormat::parse(&f).ok_or(Error::LogFormat(f))?,
        };
        let cluster_id = set(raw.cluster_id).ok_or(Error::MissingClusterId)?;
        let hostname_env = set(raw.hostname);
        if let Some(h) = &hostname_env {
            check_hostname(h)?;
        }
        let address_env = set(raw.address);
        if let Some(a) = &address_env {
            check_address(a)?;
        }
        let key_owner = set(raw.key_owner)
            .unwrap_or_else(|| DEFAULT_KEY_OWNER.to_owned())
            .parse::<Owner>()
            .map_err(Error::KeyOwner)?;
        let state_dir = set(raw.state_dir).unwrap_or_else(|| DEFAULT_STATE_DIR.to_owned());
        if !Path::new(&state_dir).is_absolute() {
            return Err(Error::StateDir(state_dir));
        }
        let state_dir = PathBuf::from(state_dir);
        let config_file = set(raw.config_file).map(PathBuf::from);
        let (hostname, address) = match &config_file {
            None => (
                hostname_env.unwrap_or_else(|| DEFAULT_HOSTNAME.to_owned()),
                address_env.unwrap_or_else(|| DEFAULT_ADDRESS.to_owned()),
            ),
            Some(path) => {
                let file = check_config_file(path, &cluster_id, &state_dir)?;
                resolve_listener(path, &file, hostname_env, address_env)?
            }
        };
        Ok(Self {
            cluster_id,
            hostname,
            address,
            config_file,
            log_format,
            state_dir,
            key_owner,
        })
    }

    /// The `init` arguments (without the program name).
    pub fn init_args(&self) -> Vec<String> {
        let dir = self.state_dir.display();
        let mut args = vec![
            "init".to_owned(),
            format!("-i={}", self.cluster_id),
            format!("--hostname={}", self.hostname),
            format!("--address={}", self.address),
        ];
        if let Some(c) = &self.config_file {
            args.push(format!("--config={}", c.display()));
        }
        let owner = match self.key_owner.gid {
            Some(g) => format!("{}:{g}", self.key_owner.uid),
            None => self.key_owner.uid.to_string(),
        };
        args.extend([
            format!("--state-dir={dir}"),
            format!("--generate-kubeconfig={dir}/{KUBECONFIG_FILE}"),
            format!("--write-config={dir}/{CONFIG_FILE}"),
            format!("--key-owner={owner}"),
            format!("--state-dir-mode={STATE_DIR_MODE:o}"),
            format!(
                "--log-format={}",
                match self.log_format {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                }
            ),
        ]);
        args
    }
}

fn check_hostname(hostname: &str) -> Result<(), Error> {
    if hostname
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#'))
    {
        return Err(Error::Hostname(hostname.to_owned()));
    }
    Ok(())
}

fn check_address(address: &str) -> Result<(), Error> {
    if address.parse::<IpAddr>().is_err() {
        return Err(Error::Address(address.to_owned()));
    }
    Ok(())
}

/// `HOSTNAME` and `ADDRESS` against the config file's `server.hostname` and
/// `server.address`: a variable that is unset takes the file's value; one that is set
/// must agree with it. The server reads its listen address from this file alone, and it
/// must listen where the certificate and the webhook URL say.
fn resolve_listener(
    path: &Path,
    file: &ConfigFile,
    hostname_env: Option<String>,
    address_env: Option<String>,
) -> Result<(String, String), Error> {
    let err = |reason: String| Error::ConfigFile {
        path: path.to_owned(),
        reason,
    };
    let get = |key: &str| -> Result<Option<String>, Error> {
        Ok(file
            .get_string(key)
            .map_err(|e| err(e.to_string()))?
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty()))
    };
    let file_hostname = get("server.hostname")?;
    let hostname = match (hostname_env, file_hostname) {
        (Some(env), Some(f)) if env != f => {
            return Err(err(format!(
                "its server.hostname {f:?} disagrees with HOSTNAME {env:?}"
            )));
        }
        (Some(h), _) | (None, Some(h)) => h,
        (None, None) => DEFAULT_HOSTNAME.to_owned(),
    };
    check_hostname(&hostname)?;
    let file_address = get("server.address")?;
    let address = match (address_env, file_address) {
        (Some(env), f) if env != f.as_deref().unwrap_or(DEFAULT_ADDRESS) => {
            let (f, unset) = match f {
                Some(f) => (f, ""),
                None => (DEFAULT_ADDRESS.to_owned(), ", its default,"),
            };
            return Err(err(format!(
                "its server.address {f:?}{unset} disagrees with ADDRESS {env:?}: set server.address there too, the server listens where it says"
            )));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => DEFAULT_ADDRESS.to_owned(),
    };
    check_address(&address)?;
    Ok((hostname, address))
}

fn is_ours(name: &str) -> bool {
    matches!(
        name,
        "CLUSTER_ID"
            | "HOSTNAME"
            | "ADDRESS"
            | "CONFIG_FILE"
            | "LOG_FORMAT"
            | "STATE_DIR"
            | "KEY_OWNER"
    )
}

fn check_config_file(path: &Path, cluster_id: &str, state_dir: &Path) -> Result<ConfigFile, Error> {
    // One line: the parser's source excerpt below its first line adds nothing a log
    // line can show.
    let err = |reason: String| Error::ConfigFile {
        path: path.to_owned(),
        reason: reason
            .lines()
            .next()
            .unwrap_or_default()
            .trim_end()
            .to_owned(),
    };
    // The state dir's config.yaml is init's output, copied from CONFIG_FILE; a config
    // file mounted into the state dir would shadow it inside this container only.
    if path.starts_with(state_dir) {
        return Err(err(format!(
            "must not be inside STATE_DIR {}: mount it elsewhere (e.g. /usr/local/etc/aws-iam-authenticator/config.yaml); init copies it to {}",
            state_dir.display(),
            state_dir.join(CONFIG_FILE).display()
        )));
    }
    let file = ConfigFile::load(path).map_err(|e| err(crate::error::error_chain(&e)))?;
    match file.get_string("clusterID") {
        Ok(Some(id)) if !id.is_empty() && id != cluster_id => Err(err(format!(
            "its clusterID {id:?} disagrees with CLUSTER_ID {cluster_id:?}"
        ))),
        Ok(_) => Ok(file),
        Err(e) => Err(err(e.to_string())),
    }
}

/// Go's `%v` of a string slice: `[a b c]`.
pub fn go_slice(args: &[String]) -> String {
    format!("[{}]", args.join(" "))
}

/// The line logged before the exec: `executing: /usr/local/bin/aws-iam-authenticator [init …]`.
pub fn executing_line(args: &[String]) -> String {
    format!("executing: {BINARY_PATH} {}", go_slice(args))
}

/// Replaces this process with `binary` and `args` (argv[0] = `binary`), keeping the
/// environment. Returns only on failure.
pub fn exec(binary: &Path, args: &[String]) -> Result<Infallible, Error> {
    let exec_err = |source| Error::Exec {
        path: binary.to_owned(),
        source,
    };
    let c = |s: &[u8]| CString::new(s).map_err(|_| exec_err(nix::Error::EINVAL));
    let path = c(binary.as_os_str().as_bytes())?;
    let mut argv = vec![path.clone()];
    for a in args {
        argv.push(c(OsString::from(a).as_bytes())?);
    }
    nix::unistd::execv(&path, &argv).map_err(exec_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults() {
        let s =
            Settings::from_vars(vars(&[("CLUSTER_ID", "my-cluster"), ("PATH", "/bin")])).unwrap();
        assert_eq!(
            s,
            Settings {
                cluster_id: "my-cluster".into(),
                hostname: "localhost".into(),
                address: "127.0.0.1".into(),
                config_file: None,
                log_format: LogFormat::Text,
                state_dir: DEFAULT_STATE_DIR.into(),
                key_owner: Owner {
                    uid: 65532,
                    gid: None
                },
            }
        );
        assert_eq!(
            executing_line(&s.init_args()),
            "executing: /usr/local/bin/aws-iam-authenticator [init -i=my-cluster --hostname=localhost \
             --address=127.0.0.1 --state-dir=/usr/local/lib/aws-iam-authenticator \
             --generate-kubeconfig=/usr/local/lib/aws-iam-authenticator/kubeconfig.yaml \
             --write-config=/usr/local/lib/aws-iam-authenticator/config.yaml --key-owner=65532 \
             --state-dir-mode=755 --log-format=text]"
        );
    }

    #[test]
    fn bad_inputs_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "CLUSTER_ID is required"),
            (&[("CLUSTER_ID", "  ")], "CLUSTER_ID is required"),
            (
                &[("CLUSTER_ID", "c"), ("LOG_FORMAT", "yaml")],
                "invalid LOG_FORMAT \"yaml\"",
            ),
            (
                &[("CLUSTER_ID", "c"), ("ADDRESS", "example.com")],
                "invalid ADDRESS \"example.com\"",
            ),
            (
                &[("CLUSTER_ID", "c"), ("HOSTNAME", "a b")],
                "invalid HOSTNAME \"a b\"",
            ),
            (
                &[("CLUSTER_ID", "c"), ("KEY_OWNER", "nobody")],
                "invalid KEY_OWNER",
            ),
            (
                &[("CLUSTER_ID", "c"), ("STATE_DIR", "rel")],
                "invalid STATE_DIR \"rel\"",
            ),
            (
                &[("CLUSTER_ID", "c"), ("CONFIG_FILE", "/nonexistent/c.yaml")],
                "invalid CONFIG_FILE /nonexistent/c.yaml",
            ),
            (
                &[
                    ("CLUSTER_ID", "c"),
                    (
                        "CONFIG_FILE",
                        "/usr/local/lib/aws-iam-authenticator/config.yaml",
                    ),
                ],
                "must not be inside STATE_DIR",
            ),
        ];
        for (env, want) in cases {
            let e = Settings::from_vars(vars(env)).unwrap_err().to_string();
            assert!(e.starts_with(want) || e.contains(want), "{env:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn log_format_peek() {
        assert_eq!(
            log_format_from(vars(&[("LOG_FORMAT", "json")])),
            Some(LogFormat::Json)
        );
        assert_eq!(log_format_from(vars(&[("LOG_FORMAT", "x")])), None);
        assert_eq!(log_format_from(vars(&[])), None);
    }

    #[test]
    fn go_slice_format() {
        assert_eq!(go_slice(&[]), "[]");
        assert_eq!(go_slice(&["a".into(), "b c".into()]), "[a b c]");
    }
}
