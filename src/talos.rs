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

use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::{CString, OsStr, OsString};
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

/// Each variable once, with its last value, at the place of its first occurrence: what
/// a shell's repeated assignments give.
///
/// Talos appends the `ExtensionServiceConfig`'s `environment` to the container's, and
/// config patches merge lists by appending, so a patch applied twice repeats every
/// variable; containerd keeps both copies (`oci.WithEnv`'s `replaceOrAppendEnvValues`
/// replaces only names already in the base environment and appends the rest). Reading
/// the first (as `getenv` does) would keep the *old* value of an edited variable.
pub fn last_wins<K: Eq + Hash + Clone, V>(vars: impl IntoIterator<Item = (K, V)>) -> Vec<(K, V)> {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<(K, V)> = Vec::new();
    for (k, v) in vars {
        match index.get(&k) {
            Some(&i) => out[i].1 = v,
            None => {
                index.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    out
}

/// The process environment, each variable once, its last value winning ([`last_wins`]).
/// This is also the environment handed on to `init` and `server`, so they and anything
/// they read (`AWS_REGION`, the proxy variables, `SSL_CERT_FILE`) see the same values.
pub fn process_env() -> Vec<(OsString, OsString)> {
    last_wins(std::env::vars_os())
}

/// What `talos-init` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// None of [`CONFIG_VARIABLES`] is set: this node has no configuration.
    Unconfigured,
    /// Run `init` (and `server` with `SERVE=true`).
    Run(Box<Settings>),
}

/// The extension-served server's settings (`SERVE=true`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Serve {
    /// `HEALTH_ADDRESS`: the server's `--health-address` (its default when unset).
    pub health_address: Option<SocketAddr>,
    /// `STS_RESOLVE`: `HOST=IP:PORT` entries, each a `--sts-resolve`.
    pub sts_resolve: Vec<String>,
    /// `STS_CA_FILE`: the server's `--sts-ca-file`.
    pub sts_ca_file: Option<PathBuf>,
}

/// Validated `talos-init` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `CLUSTER_ID`, else `CONFIG_FILE`'s `clusterID` (one is required).
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
    /// `SERVE=true`: run the server after `init`.
    pub serve: Option<Serve>,
}

/// Empty values count as unset: an `ExtensionServiceConfig` line `HOSTNAME=` means "default".
fn set(v: Option<&String>) -> Option<String> {
    v.map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The log format `LOG_FORMAT` asks for, if it is set and valid (for setting up logging
/// before the rest is validated). The last `LOG_FORMAT` wins, as everywhere.
pub fn log_format_from<I: IntoIterator<Item = (String, String)>>(vars: I) -> Option<LogFormat> {
    vars.into_iter()
        .filter(|(k, _)| k == "LOG_FORMAT")
        .last()
        .and_then(|(_, v)| LogFormat::parse(v.trim()))
}

/// `SERVE`: Go's `strconv.ParseBool` spellings, as Talos users write booleans elsewhere.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Our variables from `vars` (UTF-8 required only for them), the last value of each.
fn ours<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    vars: impl IntoIterator<Item = (K, V)>,
) -> Result<HashMap<String, String>, Error> {
    let mut map = HashMap::new();
    // Only the value that wins must be UTF-8: an earlier, replaced one does not matter.
    let vars = last_wins(
        vars.into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())),
    );
    for (k, v) in vars {
        let Some(k) = k.to_str() else {
            continue;
        };
        if !is_ours(k) {
            continue;
        }
        let v = v
            .to_str()
            .ok_or_else(|| Error::Env(format!("{k} is not valid UTF-8")))?;
        map.insert(k.to_owned(), v.to_owned());
    }
    Ok(map)
}

impl Plan {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(process_env())
    }

    /// Reads and validates `vars` (name, value) as the environment; a repeated variable
    /// takes its last value.
    pub fn from_vars<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, Error> {
        let env = ours(vars)?;
        let get = |k: &str| set(env.get(k));
        let log_format = match get("LOG_FORMAT") {
            None => LogFormat::Text,
            Some(f) => LogFormat::parse(&f).ok_or(Error::LogFormat(f))?,
        };
        if CONFIG_VARIABLES.iter().all(|k| get(k).is_none()) {
            return Ok(Self::Unconfigured);
        }
        let hostname_env = get("HOSTNAME");
        if let Some(h) = &hostname_env {
            check_hostname(h)?;
        }
        let address_env = get("ADDRESS");
        if let Some(a) = &address_env {
            check_address(a)?;
        }
        let key_owner = get("KEY_OWNER")
            .unwrap_or_else(|| DEFAULT_KEY_OWNER.to_owned())
            .parse::<Owner>()
            .map_err(Error::KeyOwner)?;
        let state_dir = get("STATE_DIR").unwrap_or_else(|| DEFAULT_STATE_DIR.to_owned());
        if !Path::new(&state_dir).is_absolute() {
            return Err(Error::StateDir(state_dir));
        }
        let state_dir = PathBuf::from(state_dir);
        let serve = match get("SERVE") {
            None => false,
            Some(s) => parse_bool(&s).ok_or(Error::Serve(s))?,
        };
        let serve = if serve {
            Some(serve_settings(&get)?)
        } else {
            if let Some(k) = SERVE_VARIABLES.iter().find(|k| get(k).is_some()) {
                return Err(Error::ServeOnly(k));
            }
            None
        };
        let config_file = get("CONFIG_FILE").map(PathBuf::from);
        let file = config_file
            .as_deref()
            .map(|p| load_config_file(p, &state_dir))
            .transpose()?;
        let cluster_id =
            resolve_cluster_id(get("CLUSTER_ID"), config_file.as_deref(), file.as_ref())?;
        let (hostname, address) = match (&config_file, &file) {
            (Some(path), Some(file)) => resolve_listener(path, file, hostname_env, address_env)?,
            _ => (
                hostname_env.unwrap_or_else(|| DEFAULT_HOSTNAME.to_owned()),
                address_env.unwrap_or_else(|| DEFAULT_ADDRESS.to_owned()),
            ),
        };
        Ok(Self::Run(Box::new(Settings {
            cluster_id,
            hostname,
            address,
            config_file,
            log_format,
            state_dir,
            key_owner,
            serve,
        })))
    }
}

fn serve_settings(get: &dyn Fn(&str) -> Option<String>) -> Result<Serve, Error> {
    let health_address = get("HEALTH_ADDRESS")
        .map(|a| a.parse::<SocketAddr>().map_err(|_| Error::HealthAddress(a)))
        .transpose()?;
    // Entries separated by commas or white space, as a list fits in one variable.
    let sts_resolve = get("STS_RESOLVE")
        .map(|list| {
            list.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|e| !e.is_empty())
                .map(|e| {
                    crate::sts::parse_resolve(e).map_err(Error::StsResolve)?;
                    Ok(e.to_owned())
                })
                .collect::<Result<Vec<_>, Error>>()
        })
        .transpose()?
        .unwrap_or_default();
    let sts_ca_file = get("STS_CA_FILE")
        .map(|p| {
            if Path::new(&p).is_absolute() {
                Ok(PathBuf::from(p))
            } else {
                Err(Error::StsCaFile(p))
            }
        })
        .transpose()?;
    Ok(Serve {
        health_address,
        sts_resolve,
        sts_ca_file,
    })
}

/// `CLUSTER_ID`, else `CONFIG_FILE`'s `clusterID`; when both are set they must agree.
fn resolve_cluster_id(
    env: Option<String>,
    path: Option<&Path>,
    file: Option<&ConfigFile>,
) -> Result<String, Error> {
    let from_file = match (path, file) {
        (Some(path), Some(file)) => file
            .get_string("clusterID")
            .map_err(|e| Error::ConfigFile {
                path: path.to_owned(),
                reason: e.to_string(),
            })?
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        _ => None,
    };
    match (env, from_file) {
        (Some(env), Some(f)) if env != f => Err(Error::ConfigFile {
            path: path.map(Path::to_owned).unwrap_or_default(),
            reason: format!("its clusterID {f:?} disagrees with CLUSTER_ID {env:?}"),
        }),
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => Err(Error::MissingClusterId),
    }
}

impl Settings {
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
            self.log_format_arg(),
        ]);
        args
    }

    /// With `SERVE=true`, the `server` arguments (without the program name): the state
    /// dir `init` just filled, its `config.yaml` (`CONFIG_FILE`'s validated copy, with
    /// the cluster ID and listen address `init` used) and the kubeconfig `init` wrote,
    /// which the server only checks against the key pair.
    pub fn server_args(&self) -> Option<Vec<String>> {
        let serve = self.serve.as_ref()?;
        let dir = self.state_dir.display();
        let mut args = vec![
            "server".to_owned(),
            format!("--config={dir}/{CONFIG_FILE}"),
            format!("--state-dir={dir}"),
            format!("--generate-kubeconfig={dir}/{KUBECONFIG_FILE}"),
            "--kubeconfig-pregenerated=true".to_owned(),
        ];
        if let Some(h) = serve.health_address {
            args.push(format!("--health-address={h}"));
        }
        for r in &serve.sts_resolve {
            args.push(format!("--sts-resolve={r}"));
        }
        if let Some(ca) = &serve.sts_ca_file {
            args.push(format!("--sts-ca-file={}", ca.display()));
        }
        args.push(self.log_format_arg());
        Some(args)
    }

    fn log_format_arg(&self) -> String {
        format!(
            "--log-format={}",
            match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
        )
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
    name == "LOG_FORMAT" || CONFIG_VARIABLES.contains(&name)
}

/// Loads and checks `CONFIG_FILE` (its `clusterID` is checked by [`resolve_cluster_id`]).
fn load_config_file(path: &Path, state_dir: &Path) -> Result<ConfigFile, Error> {
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
    ConfigFile::load(path).map_err(|e| err(crate::error::error_chain(&e)))
}

/// Go's `%v` of a string slice: `[a b c]`.
pub fn go_slice(args: &[String]) -> String {
    format!("[{}]", args.join(" "))
}

/// The line logged before the exec: `executing: /usr/local/bin/aws-iam-authenticator [init …]`.
pub fn executing_line(args: &[String]) -> String {
    format!("executing: {BINARY_PATH} {}", go_slice(args))
}

/// The line logged before `init` runs as a child (`SERVE=true`): `running: … [init …]`.
pub fn running_line(args: &[String]) -> String {
    format!("running: {BINARY_PATH} {}", go_slice(args))
}

/// Replaces this process with `binary` and `args` (argv[0] = `binary`) and exactly the
/// environment `env` (see [`process_env`]). Returns only on failure.
pub fn exec(
    binary: &Path,
    args: &[String],
    env: &[(OsString, OsString)],
) -> Result<Infallible, Error> {
    let exec_err = |source| Error::Exec {
        path: binary.to_owned(),
        source,
    };
    let c = |s: &[u8]| CString::new(s).map_err(|_| exec_err(nix::Error::EINVAL));
    let path = c(binary.as_os_str().as_bytes())?;
    let mut argv = vec![path.clone()];
    for a in args {
        argv.push(c(a.as_bytes())?);
    }
    let mut envp = Vec::with_capacity(env.len());
    for (k, v) in env {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        envp.push(c(&kv)?);
    }
    // The new program replaces this one: whatever is still queued for stderr goes first.
    crate::logging::flush();
    nix::unistd::execve(&path, &argv, &envp).map_err(exec_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn settings(list: &[(&str, &str)]) -> Settings {
        match Plan::from_vars(vars(list)).unwrap() {
            Plan::Run(s) => *s,
            Plan::Unconfigured => panic!("{list:?}: unconfigured"),
        }
    }

    fn error(list: &[(&str, &str)]) -> String {
        Plan::from_vars(vars(list)).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let s = settings(&[("CLUSTER_ID", "my-cluster"), ("PATH", "/bin")]);
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
                serve: None,
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
        assert_eq!(s.server_args(), None);
    }

    #[test]
    fn unconfigured_unless_one_of_our_variables_is_set() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            // How to log is not what to do.
            &[("LOG_FORMAT", "json")],
            // Empty values are unset values.
            &[("CLUSTER_ID", ""), ("HOSTNAME", " "), ("SERVE", "")],
            // What Talos gives every service from the machine's environment.
            &[
                ("PATH", "/usr/bin"),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", "AKIA"),
                ("https_proxy", "http://proxy:3128"),
                ("HTTP_PROXY", "http://proxy:3128"),
                ("NO_PROXY", "10.0.0.0/8"),
                ("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
                ("KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID", "x"),
            ],
            // A later empty value unsets an earlier one.
            &[("CLUSTER_ID", "c"), ("CLUSTER_ID", "")],
        ];
        for env in cases {
            assert_eq!(
                Plan::from_vars(vars(env)).unwrap(),
                Plan::Unconfigured,
                "{env:?}"
            );
        }
        // Even unconfigured, a bad LOG_FORMAT is reported (the one line must be readable).
        assert!(error(&[("LOG_FORMAT", "yaml")]).starts_with("invalid LOG_FORMAT"));
        // Every variable of the list counts on its own (as a configuration, a partial
        // one, or a bad one).
        for k in CONFIG_VARIABLES {
            assert!(
                !matches!(Plan::from_vars(vars(&[(k, "x")])), Ok(Plan::Unconfigured)),
                "{k} alone should count"
            );
        }
    }

    #[test]
    fn partial_configurations_are_errors() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("HOSTNAME", "auth.example.com")],
                "CLUSTER_ID is required",
            ),
            (&[("ADDRESS", "10.0.0.1")], "CLUSTER_ID is required"),
            (&[("KEY_OWNER", "1000")], "CLUSTER_ID is required"),
            (&[("SERVE", "true")], "CLUSTER_ID is required"),
            (&[("SERVE", "false")], "CLUSTER_ID is required"),
            (&[("STATE_DIR", "/x")], "CLUSTER_ID is required"),
            (
                &[("STS_CA_FILE", "/x.pem")],
                "STS_CA_FILE is set but SERVE is not true",
            ),
        ];
        for (env, want) in cases {
            let e = error(env);
            assert!(e.starts_with(want), "{env:?}: {e}");
        }
    }

    #[test]
    fn bad_inputs_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("CLUSTER_ID", "  "), ("HOSTNAME", "h")],
                "CLUSTER_ID is required",
            ),
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
            (
                &[("CLUSTER_ID", "c"), ("SERVE", "yes")],
                "invalid SERVE \"yes\": expected true or false",
            ),
            (
                &[("CLUSTER_ID", "c"), ("HEALTH_ADDRESS", "0.0.0.0:1")],
                "HEALTH_ADDRESS is set but SERVE is not true",
            ),
            (
                &[
                    ("CLUSTER_ID", "c"),
                    ("SERVE", "false"),
                    ("STS_RESOLVE", "a=1.2.3.4:5"),
                ],
                "STS_RESOLVE is set but SERVE is not true",
            ),
            (
                &[
                    ("CLUSTER_ID", "c"),
                    ("SERVE", "true"),
                    ("HEALTH_ADDRESS", ":21363"),
                ],
                "invalid HEALTH_ADDRESS \":21363\"",
            ),
            (
                &[
                    ("CLUSTER_ID", "c"),
                    ("SERVE", "true"),
                    ("STS_RESOLVE", "sts.amazonaws.com"),
                ],
                "invalid STS_RESOLVE: \"sts.amazonaws.com\" is not HOST=IP:PORT",
            ),
            (
                &[
                    ("CLUSTER_ID", "c"),
                    ("SERVE", "true"),
                    ("STS_CA_FILE", "ca.pem"),
                ],
                "invalid STS_CA_FILE \"ca.pem\"",
            ),
        ];
        for (env, want) in cases {
            let e = error(env);
            assert!(e.contains(want), "{env:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn the_last_value_of_a_repeated_variable_wins() {
        // A patch applied twice, then edited: every variable twice, the new values last.
        let s = settings(&[
            ("CLUSTER_ID", "old"),
            ("HOSTNAME", "old.example"),
            ("LOG_FORMAT", "text"),
            ("SERVE", "false"),
            ("CLUSTER_ID", "new"),
            ("HOSTNAME", "new.example"),
            ("LOG_FORMAT", "json"),
            ("SERVE", "true"),
        ]);
        assert_eq!(
            (s.cluster_id.as_str(), s.hostname.as_str()),
            ("new", "new.example")
        );
        assert_eq!(s.log_format, LogFormat::Json);
        assert!(s.serve.is_some());
        // Only the winning value must be UTF-8.
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![0xff]);
        let env = [
            (OsString::from("CLUSTER_ID"), bad.clone()),
            (OsString::from("CLUSTER_ID"), OsString::from("c")),
        ];
        assert!(matches!(Plan::from_vars(env), Ok(Plan::Run(_))));
        let env = [
            (OsString::from("CLUSTER_ID"), OsString::from("c")),
            (OsString::from("CLUSTER_ID"), bad),
        ];
        assert_eq!(
            Plan::from_vars(env).unwrap_err().to_string(),
            "invalid environment: CLUSTER_ID is not valid UTF-8"
        );
        // The same value twice is no error either.
        settings(&[("CLUSTER_ID", "c"), ("CLUSTER_ID", "c")]);
        // An earlier bad value is overridden, not reported.
        settings(&[
            ("CLUSTER_ID", "c"),
            ("ADDRESS", "bad"),
            ("ADDRESS", "10.0.0.1"),
        ]);
        assert_eq!(
            log_format_from(vars(&[("LOG_FORMAT", "text"), ("LOG_FORMAT", "json")])),
            Some(LogFormat::Json)
        );
    }

    #[test]
    fn last_wins_keeps_the_first_place_and_the_last_value() {
        type Env<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Env<'_>, Env<'_>)] = &[
            (&[], &[]),
            (&[("A", "1")], &[("A", "1")]),
            (&[("A", "1"), ("A", "2")], &[("A", "2")]),
            (
                &[("A", "1"), ("B", "x"), ("A", "2"), ("C", "y"), ("A", "3")],
                &[("A", "3"), ("B", "x"), ("C", "y")],
            ),
            (&[("A", "1"), ("A", "")], &[("A", "")]),
        ];
        for (input, want) in cases {
            let got = last_wins(input.iter().copied());
            assert_eq!(got, want.to_vec(), "{input:?}");
        }
    }

    #[test]
    fn serve_runs_the_server_on_the_state_dir() {
        let s = settings(&[
            ("CLUSTER_ID", "c"),
            ("SERVE", "True"),
            ("STATE_DIR", "/state"),
            ("HEALTH_ADDRESS", "127.0.0.1:8081"),
            (
                "STS_RESOLVE",
                "sts.us-west-2.amazonaws.com=10.0.0.9:443, sts.amazonaws.com=10.0.0.8:443",
            ),
            ("STS_CA_FILE", "/etc/ca.pem"),
            ("LOG_FORMAT", "json"),
        ]);
        assert_eq!(
            go_slice(&s.server_args().unwrap()),
            "[server --config=/state/config.yaml --state-dir=/state \
             --generate-kubeconfig=/state/kubeconfig.yaml --kubeconfig-pregenerated=true \
             --health-address=127.0.0.1:8081 \
             --sts-resolve=sts.us-west-2.amazonaws.com=10.0.0.9:443 \
             --sts-resolve=sts.amazonaws.com=10.0.0.8:443 --sts-ca-file=/etc/ca.pem \
             --log-format=json]"
        );
        let s = settings(&[("CLUSTER_ID", "c"), ("SERVE", "1")]);
        assert_eq!(
            s.server_args().unwrap(),
            [
                "server",
                "--config=/usr/local/lib/aws-iam-authenticator/config.yaml",
                "--state-dir=/usr/local/lib/aws-iam-authenticator",
                "--generate-kubeconfig=/usr/local/lib/aws-iam-authenticator/kubeconfig.yaml",
                "--kubeconfig-pregenerated=true",
                "--log-format=text",
            ]
        );
        for off in ["false", "0", "F", ""] {
            let s = settings(&[("CLUSTER_ID", "c"), ("SERVE", off)]);
            assert_eq!(s.server_args(), None, "{off:?}");
        }
    }

    #[test]
    fn the_cluster_id_may_come_from_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let with = dir.path().join("with.yaml");
        std::fs::write(&with, "clusterID: from-file\n").unwrap();
        let without = dir.path().join("without.yaml");
        std::fs::write(&without, "server: {}\n").unwrap();
        let with = with.to_str().unwrap();
        let without = without.to_str().unwrap();

        assert_eq!(settings(&[("CONFIG_FILE", with)]).cluster_id, "from-file");
        assert_eq!(
            settings(&[("CONFIG_FILE", with), ("CLUSTER_ID", "from-file")]).cluster_id,
            "from-file"
        );
        assert!(
            error(&[("CONFIG_FILE", with), ("CLUSTER_ID", "other")])
                .contains("its clusterID \"from-file\" disagrees with CLUSTER_ID \"other\"")
        );
        assert!(error(&[("CONFIG_FILE", without)]).starts_with("CLUSTER_ID is required"));
        assert!(
            error(&[("CONFIG_FILE", without), ("HOSTNAME", "h")])
                .starts_with("CLUSTER_ID is required")
        );
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
