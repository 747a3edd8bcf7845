//! Which key pair the server serves with: the one in the state dir, created when missing,
//! or, with a pregenerated kubeconfig, only the one `init` made, and only if that
//! kubeconfig trusts it.

use std::path::{Path, PathBuf};

use crate::config::ServerConfig;
use crate::kubeconfig;
use crate::tls::{self, CERT_FILE, KEY_FILE, KeyPair};

/// How the server gets its key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Load the pair from `state_dir`; create it (for `hostname` and `address`) when it
    /// is missing or invalid. The server then writes the kubeconfig itself.
    Create {
        /// The state dir.
        state_dir: PathBuf,
        /// The host name the certificate names.
        hostname: String,
        /// The address the certificate names (an IP literal or a name).
        address: String,
    },
    /// `--kubeconfig-pregenerated`: load the pair `init` made, write nothing, and refuse
    /// a pair the kubeconfig at `kubeconfig` does not trust.
    Pregenerated {
        /// The state dir.
        state_dir: PathBuf,
        /// The pregenerated webhook kubeconfig (it may be absent here: the apiserver's
        /// copy may be on another mount).
        kubeconfig: PathBuf,
    },
}

impl Policy {
    /// The policy `config` asks for.
    pub fn of(config: &ServerConfig) -> Self {
        if config.kubeconfig_pregenerated {
            Self::Pregenerated {
                state_dir: config.state_dir.clone(),
                kubeconfig: config.generate_kubeconfig.clone(),
            }
        } else {
            Self::Create {
                state_dir: config.state_dir.clone(),
                hostname: config.hostname.clone(),
                address: config.address.clone(),
            }
        }
    }
}

/// Why there is no key pair to serve with. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pair could not be loaded nor created.
    #[error("could not load/generate a certificate")]
    LoadOrCreate(#[source] tls::Error),
    /// Pregenerated mode, and `init` has not made the pair.
    #[error(
        "could not load/generate a certificate: --kubeconfig-pregenerated is set but {CERT_FILE} or {KEY_FILE} is missing in {}; run `init` first",
        state_dir.display()
    )]
    PregeneratedMissing {
        /// The state dir.
        state_dir: PathBuf,
    },
    /// Pregenerated mode, and the pair is unreadable or invalid.
    #[error(
        "could not load/generate a certificate: the pregenerated key pair is unusable; run `init` again"
    )]
    PregeneratedUnusable(#[source] tls::Error),
    /// Pregenerated mode, and the kubeconfig trusts another certificate.
    #[error(
        "pregenerated webhook kubeconfig {} does not trust the certificate in {}; run `init` again",
        kubeconfig.display(),
        state_dir.display()
    )]
    Untrusted {
        /// The kubeconfig.
        kubeconfig: PathBuf,
        /// The state dir.
        state_dir: PathBuf,
    },
    /// Pregenerated mode, and the kubeconfig is there but unreadable or invalid.
    #[error("invalid pregenerated webhook kubeconfig")]
    Kubeconfig(#[source] kubeconfig::Error),
}

/// The key pair to serve with, following `policy` (this reads and may write files: call
/// it off the async workers).
pub fn key_pair(policy: &Policy) -> Result<KeyPair, Error> {
    match policy {
        Policy::Create {
            state_dir,
            hostname,
            address,
        } => tls::load_or_create(state_dir, hostname, address, true)
            .map(|(pair, _created)| pair)
            .map_err(Error::LoadOrCreate),
        Policy::Pregenerated {
            state_dir,
            kubeconfig,
        } => pregenerated(state_dir, kubeconfig),
    }
}

fn pregenerated(state_dir: &Path, path: &Path) -> Result<KeyPair, Error> {
    // upstream: server.go creates a key pair when it is missing even in pregenerated mode,
    // which then does not match the kubeconfig the apiserver reads; we write nothing and
    // refuse to start, because that pair could never be trusted.
    let pair = match tls::load(state_dir) {
        Ok(Some(pair)) => pair,
        Ok(None) => {
            return Err(Error::PregeneratedMissing {
                state_dir: state_dir.to_owned(),
            });
        }
        Err(e) => return Err(Error::PregeneratedUnusable(e)),
    };
    match kubeconfig::matches_pair(path, &pair) {
        Ok(true) => Ok(pair),
        Ok(false) => Err(Error::Untrusted {
            kubeconfig: path.to_owned(),
            state_dir: state_dir.to_owned(),
        }),
        // The apiserver's copy may live elsewhere (another mount): nothing to compare.
        Err(kubeconfig::Error::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            tracing::info!(
                kubeconfigPath = %path.display(),
                "no pregenerated webhook kubeconfig at this path; not checked against the key pair"
            );
            Ok(pair)
        }
        Err(e) => Err(Error::Kubeconfig(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(dir: &Path) -> Policy {
        Policy::Create {
            state_dir: dir.to_owned(),
            hostname: "localhost".into(),
            address: "127.0.0.1".into(),
        }
    }

    fn pregenerated(dir: &Path) -> Policy {
        Policy::Pregenerated {
            state_dir: dir.to_owned(),
            kubeconfig: dir.join("kubeconfig.yaml"),
        }
    }

    fn write_kubeconfig(dir: &Path, pair: &KeyPair) {
        let url = kubeconfig::server_url("localhost", 21362);
        kubeconfig::write_webhook(&dir.join("kubeconfig.yaml"), pair, &url).unwrap();
    }

    #[test]
    fn create_makes_a_pair_once_then_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = key_pair(&create(dir.path())).unwrap();
        assert!(dir.path().join(CERT_FILE).exists());
        assert_eq!(key_pair(&create(dir.path())).unwrap(), first);
        // The server writes its kubeconfig itself afterwards: nothing else here.
        assert!(!dir.path().join("kubeconfig.yaml").exists());
    }

    #[test]
    fn create_replaces_an_invalid_pair() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CERT_FILE), "junk").unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "junk").unwrap();
        let pair = key_pair(&create(dir.path())).unwrap();
        assert!(pair.certified_key().is_ok());
    }

    #[test]
    fn pregenerated_without_a_pair_writes_nothing_and_says_run_init() {
        let dir = tempfile::tempdir().unwrap();
        let err = key_pair(&pregenerated(dir.path())).unwrap_err();
        assert!(matches!(err, Error::PregeneratedMissing { .. }), "{err:?}");
        assert!(err.to_string().ends_with("run `init` first"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn pregenerated_with_an_invalid_pair_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CERT_FILE), "junk").unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "junk").unwrap();
        let err = key_pair(&pregenerated(dir.path())).unwrap_err();
        assert!(matches!(err, Error::PregeneratedUnusable(_)), "{err:?}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CERT_FILE)).unwrap(),
            "junk"
        );
    }

    #[test]
    fn pregenerated_pair_is_used_when_the_kubeconfig_trusts_it_or_is_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let made = key_pair(&create(dir.path())).unwrap();
        assert_eq!(key_pair(&pregenerated(dir.path())).unwrap(), made);
        write_kubeconfig(dir.path(), &made);
        assert_eq!(key_pair(&pregenerated(dir.path())).unwrap(), made);
    }

    #[test]
    fn pregenerated_pair_is_refused_when_the_kubeconfig_trusts_another() {
        let dir = tempfile::tempdir().unwrap();
        key_pair(&create(dir.path())).unwrap();
        let other = tls::generate("localhost", "127.0.0.1").unwrap();
        write_kubeconfig(dir.path(), &other);
        let err = key_pair(&pregenerated(dir.path())).unwrap_err();
        assert!(matches!(err, Error::Untrusted { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("does not trust the certificate in"),
            "{err}"
        );
    }

    #[test]
    fn pregenerated_kubeconfig_that_is_not_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        key_pair(&create(dir.path())).unwrap();
        std::fs::write(dir.path().join("kubeconfig.yaml"), "not: [a kubeconfig").unwrap();
        let err = key_pair(&pregenerated(dir.path())).unwrap_err();
        assert!(matches!(err, Error::Kubeconfig(_)), "{err:?}");
    }
}
