//! The pair in the state dir: read as it is, or kept, repaired or replaced under the
//! directory's lock without following links.

use std::fs;
use std::io;
use std::path::Path;

use super::{CERT_FILE, CERT_MODE, Error, KEY_FILE, KEY_MODE, KeyPair, generate};
use crate::fsutil;

fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Loads `cert.pem` and `key.pem` from `state_dir`.
///
/// `Ok(None)` when either file is missing (as upstream: then both are regenerated);
/// `Err(Error::Invalid)` when both exist but are not a valid, matching pair.
///
/// This only reads, so it follows links as any reader does: the server with
/// `--kubeconfig-pregenerated` may read a pair it never writes from a Kubernetes Secret
/// volume, whose files are links. Whatever may write the state dir uses
/// [`load_or_create`], which follows none.
pub fn load(state_dir: &Path) -> Result<Option<KeyPair>, Error> {
    let cert_path = state_dir.join(CERT_FILE);
    let key_path = state_dir.join(KEY_FILE);
    let (Some(cert_pem), Some(key_pem)) = (read_optional(&cert_path)?, read_optional(&key_path)?)
    else {
        return Ok(None);
    };
    let pair = KeyPair { cert_pem, key_pem };
    pair.certified_key().map_err(|e| Error::Invalid {
        dir: state_dir.to_owned(),
        reason: e.to_string(),
    })?;
    tracing::info!(
        certPath = %cert_path.display(),
        keyPath = %key_path.display(),
        "loaded existing keypair"
    );
    Ok(Some(pair))
}

/// What to correct on the files of a pair that is kept, and give the files of a new one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixFiles {
    /// The owner `key.pem` must have (left as it is when `None`).
    pub key_owner: Option<fsutil::Owner>,
}

/// Writes `pair` into `dir`, each file atomically.
///
/// `cert.pem` is the commit point: an old one goes first, the new key follows, the new
/// certificate last. So whenever `cert.pem` exists, `key.pem` holds its key, whatever
/// the moment a crash stops this; an interrupted run leaves at worst a key without a
/// certificate, which the next run replaces.
pub fn save_in(
    dir: &fsutil::Dir,
    pair: &KeyPair,
    key_owner: Option<fsutil::Owner>,
) -> Result<(), Error> {
    tracing::info!(
        certPath = %dir.join(CERT_FILE).display(),
        keyPath = %dir.join(KEY_FILE).display(),
        "saving new key and certificate"
    );
    dir.remove(CERT_FILE)?;
    dir.sync()?;
    dir.write_atomic(KEY_FILE, pair.key_pem.as_bytes(), KEY_MODE, key_owner)?;
    dir.write_atomic(CERT_FILE, pair.cert_pem.as_bytes(), CERT_MODE, None)?;
    Ok(())
}

/// Loads the pair from `state_dir`, or creates it there.
///
/// A valid pair is kept untouched (`false`: not created). A missing or invalid one is
/// replaced by a new pair when `create` is true (`true`: created); otherwise that is an
/// error. Returns the pair in use.
///
/// Unlike [`load`], this may write into `state_dir`, so it holds the directory's lock
/// and follows no link: `state_dir` itself, `cert.pem` and `key.pem` must be what they
/// claim to be (see [`load_or_create_in`]).
pub fn load_or_create(
    state_dir: &Path,
    hostname: &str,
    address: &str,
    create: bool,
) -> Result<(KeyPair, bool), Error> {
    let dir = fsutil::Dir::open(state_dir)?;
    let _lock = dir.lock()?;
    load_or_create_in(&dir, hostname, address, create, None)
}

/// [`load_or_create`] in an open `dir`, whose lock the caller holds.
///
/// `cert.pem` and `key.pem` are opened without following links and must be regular
/// files: a link or anything else there is an error naming the file, never followed,
/// replaced or changed. With `fix`, a kept pair's modes (and the key's owner) are
/// corrected on the descriptors that were read, and a new key is created with that owner.
pub fn load_or_create_in(
    dir: &fsutil::Dir,
    hostname: &str,
    address: &str,
    create: bool,
    fix: Option<FixFiles>,
) -> Result<(KeyPair, bool), Error> {
    let key = dir.read(KEY_FILE)?;
    let cert = dir.read(CERT_FILE)?;
    match (key, cert) {
        (Some((key_file, key_pem)), Some((cert_file, cert_pem))) => {
            let pair = KeyPair {
                cert_pem: String::from_utf8_lossy(&cert_pem).into_owned(),
                key_pem: String::from_utf8_lossy(&key_pem).into_owned(),
            };
            match pair.certified_key() {
                Ok(_) => {
                    tracing::info!(
                        certPath = %dir.join(CERT_FILE).display(),
                        keyPath = %dir.join(KEY_FILE).display(),
                        "loaded existing keypair"
                    );
                    if let Some(fix) = fix {
                        dir.fix(KEY_FILE, &key_file, KEY_MODE, fix.key_owner)?;
                        dir.fix(CERT_FILE, &cert_file, CERT_MODE, None)?;
                    }
                    return Ok((pair, false));
                }
                Err(e) => {
                    let e = Error::Invalid {
                        dir: dir.path().to_owned(),
                        reason: e.to_string(),
                    };
                    if !create {
                        return Err(e);
                    }
                    // upstream: certs.go fails on a corrupt pair; we replace it, because a
                    // half-written or damaged key would otherwise stop the node's webhook
                    // for good.
                    tracing::warn!(error = %e, "replacing invalid key pair");
                }
            }
        }
        _ if !create => {
            return Err(Error::Missing {
                dir: dir.path().to_owned(),
            });
        }
        _ => {}
    }
    let pair = generate(hostname, address)?;
    save_in(dir, &pair, fix.and_then(|f| f.key_owner))?;
    Ok((pair, true))
}
