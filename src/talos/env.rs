//! The environment as Talos hands it to the extension: repeated variables, the last
//! value winning; only our variables need be UTF-8.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::hash::Hash;

use super::{CONFIG_VARIABLES, Error};
use crate::logging::LogFormat;

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

/// What the server's allocator is told unless the environment says otherwise: mimalloc
/// (the static musl binary's allocator) commits arena memory as it is used and returns
/// freed pages at once, rather than committing whole arenas up front and keeping freed
/// pages for a second: about 13 MiB less resident idle (BENCHMARKS.md). The example
/// DaemonSet sets the same; the extension's service spec cannot (a spec variable would
/// shadow the ExtensionServiceConfig's), so `talos-init` adds them for `SERVE=true`.
pub const SERVER_ALLOCATOR_ENV: [(&str, &str); 2] = [
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
    ("MIMALLOC_PURGE_DELAY", "0"),
];

/// `env` with [`SERVER_ALLOCATOR_ENV`]'s variables added where it has none of its own.
pub fn with_server_defaults(mut env: Vec<(OsString, OsString)>) -> Vec<(OsString, OsString)> {
    for (name, value) in SERVER_ALLOCATOR_ENV {
        if !env.iter().any(|(k, _)| k == name) {
            env.push((name.into(), value.into()));
        }
    }
    env
}

/// Empty values count as unset: an `ExtensionServiceConfig` line `HOSTNAME=` means "default".
pub(super) fn set(v: Option<&String>) -> Option<String> {
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
pub(super) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Our variables from `vars` (UTF-8 required only for them), the last value of each.
pub(super) fn ours<K: AsRef<OsStr>, V: AsRef<OsStr>>(
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

pub(super) fn is_ours(name: &str) -> bool {
    name == "LOG_FORMAT" || CONFIG_VARIABLES.contains(&name)
}
