//! The webhook's key pair in the state dir (`cert.pem`, `key.pem`) and the rustls server
//! configuration built from it.
//!
//! A pair that exists and is valid is always kept byte for byte: the running
//! kube-apiserver trusts exactly that certificate (it is the CA in the webhook
//! kubeconfig), so replacing it would lock the apiserver out until it is restarted.
//! Pairs written by the upstream Go tool (RSA, PKCS#1 `RSA PRIVATE KEY`) load and serve
//! as they are; new pairs are ECDSA P-256.
//!
//! The parts: the pair itself and its PEM (`pair`), generating a new one (`generate`),
//! loading and saving it in the state dir (`store`), and the rustls configurations
//! built from it (`rustls_config`).

use std::io;
use std::path::PathBuf;

use rustls::crypto::CryptoProvider;

use crate::fsutil;

mod generate;
mod pair;
mod rustls_config;
mod store;

pub use generate::generate;
pub use pair::{KeyPair, pem_encode};
pub use rustls_config::{pinned_client_config, server_config};
pub use store::{FixFiles, load, load_or_create, load_or_create_in, save_in};

/// File name of the certificate in the state dir.
pub const CERT_FILE: &str = "cert.pem";
/// File name of the private key in the state dir.
pub const KEY_FILE: &str = "key.pem";
/// Mode of `cert.pem`: the certificate is public.
pub const CERT_MODE: u32 = 0o644;
/// Mode of `key.pem`: only its owner (the server's uid) may read it.
pub const KEY_MODE: u32 = 0o600;
/// Common name of generated certificates (upstream's).
pub const COMMON_NAME: &str = "aws-iam-authenticator";
/// Lifetime of generated certificates: upstream's 100 × 365 days.
pub const LIFETIME: time::Duration = time::Duration::days(100 * 365);

/// Errors of this module; each names the file or the directory concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("could not read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The files exist but are not a usable, matching certificate and key.
    #[error("invalid key pair in {dir}: {reason}")]
    Invalid {
        /// The state dir.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The pair is missing and creating one was not allowed.
    #[error("no key pair in {dir} ({CERT_FILE} and {KEY_FILE})")]
    Missing {
        /// The state dir.
        dir: PathBuf,
    },
    /// Certificate generation failed.
    #[error("could not generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The system's random source failed.
    #[error("could not get random bytes for the serial number")]
    Random,
    /// Opening, reading or writing a file in the state dir failed, or it is not what it
    /// should be (a link, not a regular file).
    #[error(transparent)]
    File(#[from] fsutil::Error),
    /// The PEM text is not a certificate and private key.
    #[error("invalid key pair: {0}")]
    Pem(String),
    /// rustls refused the pair.
    #[error("invalid key pair: {0}")]
    Tls(#[from] rustls::Error),
}

/// The one crypto provider this crate uses: ring. The server-side build links no other;
/// the full build also links aws-lc-rs, which the AWS SDK's HTTP client uses for its own
/// connections only.
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Makes [`provider`] the process's default, for the rustls configs other crates build
/// without naming one (kube's client). rustls picks a default by itself only when exactly
/// one provider is linked, which is not so in the full build. Idempotent.
pub fn install_default_provider() {
    let _ = provider().install_default();
}

#[cfg(test)]
mod tests;
