//! `CONFIG_FILE`: loaded and checked, and its cluster ID and listener agreeing with the
//! variables.

use std::path::Path;

use super::plan::{check_address, check_hostname};
use super::{CONFIG_FILE, Error};
use crate::config::{ConfigFile, DEFAULT_ADDRESS, DEFAULT_HOSTNAME};

/// `CLUSTER_ID`, else `CONFIG_FILE`'s `clusterID`; when both are set they must agree.
pub(super) fn resolve_cluster_id(
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

/// `HOSTNAME` and `ADDRESS` against the config file's `server.hostname` and
/// `server.address`: a variable that is unset takes the file's value; one that is set
/// must agree with it. The server reads its listen address from this file alone, and it
/// must listen where the certificate and the webhook URL say.
pub(super) fn resolve_listener(
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

/// Loads and checks `CONFIG_FILE` (its `clusterID` is checked by [`resolve_cluster_id`]).
pub(super) fn load_config_file(path: &Path, state_dir: &Path) -> Result<ConfigFile, Error> {
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
