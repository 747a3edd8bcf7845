//! The environment validated into what `talos-init` does: every bad input found before
//! anything is written.

use std::ffi::OsStr;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::config_file::{load_config_file, resolve_cluster_id, resolve_listener};
use super::env::{ours, parse_bool, process_env, set};
use super::{CONFIG_VARIABLES, DEFAULT_KEY_OWNER, DEFAULT_STATE_DIR, Error, SERVE_VARIABLES};
use crate::config::{DEFAULT_ADDRESS, DEFAULT_HOSTNAME};
use crate::init::Owner;
use crate::logging::LogFormat;

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

pub(super) fn check_hostname(hostname: &str) -> Result<(), Error> {
    if hostname
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#'))
    {
        return Err(Error::Hostname(hostname.to_owned()));
    }
    Ok(())
}

pub(super) fn check_address(address: &str) -> Result<(), Error> {
    if address.parse::<IpAddr>().is_err() {
        return Err(Error::Address(address.to_owned()));
    }
    Ok(())
}
