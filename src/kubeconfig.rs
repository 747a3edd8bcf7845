//! The webhook kubeconfig: how the kube-apiserver finds and trusts the webhook
//! (`--authentication-token-webhook-config-file`).
//!
//! The text is upstream's template, byte for byte, so tooling that reads or diffs the
//! file keeps working; the certificate authority is the webhook's own (self-signed)
//! certificate.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::fsutil;
use crate::tls::{self, KeyPair};

/// Mode of the webhook kubeconfig: the apiserver reads it as uid 65534.
pub const MODE: u32 = 0o644;

/// Errors of this module, each naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("could not read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is not a webhook kubeconfig we can use.
    #[error("invalid webhook kubeconfig {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key pair's certificate could not be encoded.
    #[error(transparent)]
    Certificate(#[from] tls::Error),
    /// Opening, reading or writing the file failed, or it is not a regular file.
    #[error(transparent)]
    File(#[from] fsutil::Error),
}

/// The webhook URL: `https://<hostname>:<port>/authenticate`, an IPv6 literal bracketed.
pub fn server_url(hostname: &str, port: u16) -> String {
    let host = match hostname.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{hostname}]"),
        _ => hostname.to_owned(),
    };
    format!("https://{host}:{port}/authenticate")
}

/// Renders upstream's webhook kubeconfig for `server_url`, trusting `ca_pem` (PEM text
/// of the certificate, base64-encoded whole into `certificate-authority-data`).
pub fn render(server_url: &str, ca_pem: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    format!(
        "
clusters:
  - name: aws-iam-authenticator
    cluster:
      certificate-authority-data: {ca}
      server: {server_url}
# user refers to the API server client
users:
  - name: apiserver
current-context: webhook
contexts:
- name: webhook
  context:
    cluster: aws-iam-authenticator
    user: apiserver
"
    )
}

/// Renders the webhook kubeconfig for `pair` (its first certificate, PEM-encoded as
/// upstream does).
pub fn render_for(pair: &KeyPair, server_url: &str) -> Result<String, Error> {
    Ok(render(server_url, &pair.cert_pem_canonical()?))
}

/// Writes the webhook kubeconfig for `pair` to `path` (0644, atomically), unless the file
/// already holds exactly that text. Returns whether the file was written.
///
/// The directory part of `path` is resolved as usual; the file itself must be a regular
/// file or missing: a link there is refused, not followed (see [`write_webhook_in`]).
pub fn write_webhook(path: &Path, pair: &KeyPair, server_url: &str) -> Result<bool, Error> {
    let (dir, name) = fsutil::Dir::open_parent(path)?;
    write_webhook_in(&dir, &name, pair, server_url)
}

/// [`write_webhook`] while holding the lock of `state_dir`, the one `init` takes (see
/// [`crate::init`]): the server and an `init` on the same state dir take turns, so neither
/// replaces the kubeconfig while the other writes it or the key pair it trusts.
pub fn write_webhook_locked(
    state_dir: &Path,
    path: &Path,
    pair: &KeyPair,
    server_url: &str,
) -> Result<bool, Error> {
    let dir = fsutil::Dir::open(state_dir)?;
    let _lock = dir.lock()?;
    write_webhook(path, pair, server_url)
}

/// [`write_webhook`] for the file `name` in the open `dir`. An existing file is opened
/// without following a link and must be a regular file; an unchanged one gets its mode
/// back (on its descriptor) if someone changed it.
pub fn write_webhook_in(
    dir: &fsutil::Dir,
    name: &OsStr,
    pair: &KeyPair,
    server_url: &str,
) -> Result<bool, Error> {
    let text = render_for(pair, server_url)?;
    if let Some((file, old)) = dir.read(name)?
        && old == text.as_bytes()
    {
        dir.fix(name, &file, MODE, None)?;
        return Ok(false);
    }
    tracing::info!(kubeconfigPath = %dir.join(name).display(), "writing webhook kubeconfig file");
    dir.write_atomic(name, text.as_bytes(), MODE, None)?;
    Ok(true)
}

#[derive(Debug, serde::Deserialize)]
struct Kubeconfig {
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default, rename = "current-context")]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
}

#[derive(Debug, serde::Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Debug, serde::Deserialize)]
struct Cluster {
    server: String,
    #[serde(default, rename = "certificate-authority-data")]
    certificate_authority_data: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Debug, serde::Deserialize)]
struct Context {
    cluster: String,
}

/// Reads a webhook kubeconfig: the server URL and the CA (PEM text) of the cluster the
/// current context names (or the only cluster, if there is no context).
pub fn read_webhook(path: &Path) -> Result<(String, String), Error> {
    let text = fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_webhook(&text).map_err(|reason| Error::Invalid {
        path: path.to_owned(),
        reason,
    })
}

/// [`read_webhook`] on text.
pub fn parse_webhook(text: &str) -> Result<(String, String), String> {
    let config: Kubeconfig = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let cluster_name = match &config.current_context {
        Some(current) => Some(
            config
                .contexts
                .iter()
                .find(|c| &c.name == current)
                .ok_or_else(|| format!("current-context {current:?} is not defined"))?
                .context
                .cluster
                .clone(),
        ),
        None => None,
    };
    let cluster = match cluster_name {
        Some(name) => config
            .clusters
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("cluster {name:?} is not defined"))?,
        None => match config.clusters.as_slice() {
            [only] => only,
            _ => return Err("no current-context and not exactly one cluster".to_owned()),
        },
    };
    let data = cluster
        .cluster
        .certificate_authority_data
        .as_deref()
        .ok_or("no certificate-authority-data")?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("certificate-authority-data: {e}"))?;
    let pem = String::from_utf8(pem).map_err(|_| "certificate-authority-data is not PEM text")?;
    Ok((cluster.cluster.server.clone(), pem))
}

/// Whether the webhook kubeconfig at `path` trusts exactly `pair`'s certificate. The
/// server uses this to refuse a pregenerated kubeconfig that no longer matches its key.
pub fn matches_pair(path: &Path, pair: &KeyPair) -> Result<bool, Error> {
    let (_, ca_pem) = read_webhook(path)?;
    let ca = KeyPair {
        cert_pem: ca_pem,
        key_pem: String::new(),
    };
    let Ok(ca_der) = ca.cert_der() else {
        return Ok(false);
    };
    Ok(ca_der == pair.cert_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn urls() {
        assert_eq!(
            server_url("localhost", 21362),
            "https://localhost:21362/authenticate"
        );
        assert_eq!(
            server_url("127.0.0.1", 1),
            "https://127.0.0.1:1/authenticate"
        );
        assert_eq!(server_url("::1", 21362), "https://[::1]:21362/authenticate");
    }

    #[test]
    fn render_is_upstreams_layout() {
        let text = render("https://localhost:21362/authenticate", "PEM");
        assert_eq!(
            text,
            "\nclusters:\n  - name: aws-iam-authenticator\n    cluster:\n      \
             certificate-authority-data: UEVN\n      server: https://localhost:21362/authenticate\n\
             # user refers to the API server client\nusers:\n  - name: apiserver\n\
             current-context: webhook\ncontexts:\n- name: webhook\n  context:\n    \
             cluster: aws-iam-authenticator\n    user: apiserver\n"
        );
        assert_eq!(
            parse_webhook(&text).unwrap(),
            (
                "https://localhost:21362/authenticate".to_owned(),
                "PEM".to_owned()
            )
        );
    }

    #[test]
    fn the_locked_writer_waits_for_the_state_dirs_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_owned();
        let path = state.join("kubeconfig.yaml");
        let pair = tls::generate("localhost", "127.0.0.1").unwrap();
        let held = fsutil::Dir::open(&state).unwrap().lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = {
            let (state, path, pair) = (state.clone(), path.clone(), pair.clone());
            std::thread::spawn(move || {
                let url = server_url("localhost", 21362);
                tx.send(write_webhook_locked(&state, &path, &pair, &url).unwrap())
                    .unwrap();
            })
        };
        // While `init` (here: the test) holds the lock, nothing is written. The wait only
        // bounds how long an unlocked writer gets to show itself; it cannot fail a
        // correct one.
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err()
        );
        assert!(!path.exists());
        drop(held);
        assert!(rx.recv().unwrap());
        writer.join().unwrap();
        assert!(matches_pair(&path, &pair).unwrap());
    }

    #[test]
    fn a_link_at_the_kubeconfig_is_refused_and_its_target_untouched() {
        // The server writes its kubeconfig with this too.
        let dir = tempfile::tempdir().unwrap();
        let pair = tls::generate("localhost", "127.0.0.1").unwrap();
        let url = server_url("localhost", 21362);
        let target = dir.path().join("private");
        fs::write(&target, render_for(&pair, &url).unwrap()).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let path = dir.path().join("kubeconfig.yaml");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = write_webhook(&path, &pair, &url).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{} is a symbolic link", path.display())),
            "{err}"
        );
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn write_is_idempotent_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig.yaml");
        let pair = tls::generate("localhost", "127.0.0.1").unwrap();
        let url = server_url("localhost", 21362);
        assert!(write_webhook(&path, &pair, &url).unwrap());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        assert!(!write_webhook(&path, &pair, &url).unwrap());
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
        let (server, ca) = read_webhook(&path).unwrap();
        assert_eq!(server, url);
        assert_eq!(ca, pair.cert_pem);
        assert!(matches_pair(&path, &pair).unwrap());
        let other = tls::generate("localhost", "127.0.0.1").unwrap();
        assert!(!matches_pair(&path, &other).unwrap());
        assert!(write_webhook(&path, &other, &url).unwrap());
        assert!(matches_pair(&path, &other).unwrap());
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.yaml");
        fs::write(&path, "clusters: []\n").unwrap();
        let e = read_webhook(&path).unwrap_err().to_string();
        assert!(e.contains("k.yaml"), "{e}");
        fs::write(&path, "current-context: nope\n").unwrap();
        assert!(read_webhook(&path).is_err());
        assert!(read_webhook(&dir.path().join("missing")).is_err());
    }
}
