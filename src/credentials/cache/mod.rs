//! `token --cache`: upstream's credential file cache (`pkg/filecache/filecache.go`).
//!
//! The *base* credentials (before any `--role` is assumed) are kept in a YAML file keyed by
//! cluster id, profile and role ARN, so that a slow or interactive source (SSO, MFA, a
//! `credential_process`) runs once per credential lifetime instead of once per kubectl
//! call. The file layout is upstream's, so both tools can share a cache:
//!
//! ```yaml
//! clusters:
//!   <clusterID>:
//!     <profile>:
//!       <roleARN or "">:
//!         accesskeyid: …
//!         secretaccesskey: …
//!         sessiontoken: …
//!         source: …
//!         canexpire: true
//!         expires: 2023-04-28T01:00:00Z
//!         accountid: ""
//! ```

mod lock;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use self::lock::{lock_exclusive, read_locked, read_shared};

/// Overrides the cache file's location.
pub const CACHE_FILE_ENV: &str = "AWS_IAM_AUTHENTICATOR_CACHE_FILE";
/// The cache file below `$HOME`.
pub const DEFAULT_CACHE_FILE: &str = ".kube/cache/aws-iam-authenticator/credentials.yaml";
/// The provider name reported for credentials served from the cache.
const PROVIDER_NAME: &str = "FileCache";

/// How old a temporary file of the cache must be before a writer removes it as abandoned.
const ABANDONED_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Why the cache cannot be used (the run then proceeds without it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither `AWS_IAM_AUTHENTICATOR_CACHE_FILE` nor `HOME` is set.
    #[error("no cache file location: neither {CACHE_FILE_ENV} nor HOME is set")]
    NoLocation,
    /// The file is readable or writable by group or others (it holds secrets).
    #[error("cache file {} is not private", path.display())]
    NotPrivate {
        /// The cache file.
        path: PathBuf,
    },
    /// The file exists but cannot be inspected.
    #[error("couldn't stat cache file")]
    Stat {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file stayed locked by another writer.
    #[error("unable to read lock file {}", path.display())]
    Lock {
        /// The cache file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file cannot be read.
    #[error("unable to open file {}", path.display())]
    Read {
        /// The cache file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is not the cache's YAML.
    #[error("unable to parse file {}: {message}", path.display())]
    Parse {
        /// The cache file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// The cache file to use: `$AWS_IAM_AUTHENTICATOR_CACHE_FILE` if non-empty, else
/// `$HOME/.kube/cache/aws-iam-authenticator/credentials.yaml`.
pub fn cache_path(cache_file_env: Option<&str>, home: Option<&Path>) -> Option<PathBuf> {
    match cache_file_env.filter(|f| !f.is_empty()) {
        Some(file) => Some(PathBuf::from(file)),
        None => home
            .filter(|h| !h.as_os_str().is_empty())
            .map(|h| h.join(DEFAULT_CACHE_FILE)),
    }
}

/// Which credentials an entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// The cluster the token is for.
    pub cluster_id: String,
    /// `AWS_PROFILE`, or `default`.
    pub profile: String,
    /// `--role`, or empty.
    pub role_arn: String,
}

/// One entry: upstream's `aws.Credentials` as yaml.v2 writes it (lower-cased field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CachedCredential {
    #[serde(default)]
    accesskeyid: String,
    #[serde(default)]
    secretaccesskey: String,
    #[serde(default)]
    sessiontoken: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    canexpire: bool,
    /// RFC 3339 (Go's RFC3339Nano).
    #[serde(default)]
    expires: String,
    #[serde(default)]
    accountid: String,
}

type ClusterMap = BTreeMap<String, BTreeMap<String, BTreeMap<String, CachedCredential>>>;

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CacheFile {
    #[serde(default)]
    clusters: ClusterMap,
}

impl CacheFile {
    fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text).map_err(|e| Error::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    fn get(&self, key: &CacheKey) -> Option<&CachedCredential> {
        self.clusters
            .get(&key.cluster_id)?
            .get(&key.profile)?
            .get(&key.role_arn)
    }

    fn put(&mut self, key: &CacheKey, credential: CachedCredential) {
        self.clusters
            .entry(key.cluster_id.clone())
            .or_default()
            .entry(key.profile.clone())
            .or_default()
            .insert(key.role_arn.clone(), credential);
    }
}

impl CachedCredential {
    fn from_credentials(c: &Credentials) -> Self {
        Self {
            accesskeyid: c.access_key_id().to_owned(),
            secretaccesskey: c.secret_access_key().to_owned(),
            sessiontoken: c.session_token().unwrap_or_default().to_owned(),
            source: "aws-iam-authenticator".to_owned(),
            canexpire: c.expiry().is_some(),
            expires: c
                .expiry()
                .and_then(|e| OffsetDateTime::from(e).format(&Rfc3339).ok())
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned()),
            accountid: c
                .account_id()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
        }
    }

    fn expiry(&self) -> Option<SystemTime> {
        OffsetDateTime::parse(&self.expires, &Rfc3339)
            .ok()
            .map(SystemTime::from)
    }

    /// Usable: has keys and is not expired (upstream: `!Expired() && HasKeys()`, no
    /// early-expiry window).
    fn usable_at(&self, now: SystemTime) -> Option<Credentials> {
        if self.accesskeyid.is_empty() || self.secretaccesskey.is_empty() {
            return None;
        }
        let expiry = if self.canexpire {
            // An unparsable expiry counts as expired.
            Some(self.expiry().filter(|e| *e >= now)?)
        } else {
            None
        };
        let mut builder = Credentials::builder()
            .access_key_id(&self.accesskeyid)
            .secret_access_key(&self.secretaccesskey)
            .provider_name(PROVIDER_NAME);
        if !self.sessiontoken.is_empty() {
            builder = builder.session_token(&self.sessiontoken);
        }
        if let Some(e) = expiry {
            builder = builder.expiry(e);
        }
        if !self.accountid.is_empty() {
            builder = builder.account_id(self.accountid.as_str());
        }
        Some(builder.build())
    }
}

/// A credentials provider that serves the cached entry while it is valid and otherwise
/// asks the wrapped provider, writing expiring credentials back to the file.
#[derive(Debug)]
pub struct FileCacheProvider {
    path: PathBuf,
    key: CacheKey,
    inner: SharedCredentialsProvider,
    cached: Option<CachedCredential>,
}

impl FileCacheProvider {
    /// Opens the cache at `path` for `key`, wrapping `inner`.
    ///
    /// Creates the parent directories (0700, errors ignored as upstream). An existing file
    /// must be private (no group/other permission bits) and is read under a shared lock. A
    /// missing file is fine (first run). Any error means: don't use the cache.
    pub async fn new(
        path: PathBuf,
        key: CacheKey,
        inner: impl ProvideCredentials + 'static,
    ) -> Result<Self, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
        }
        let cached = match fs::metadata(&path) {
            Ok(meta) => {
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(Error::NotPrivate { path });
                }
                let cache = read_shared(&path).await?;
                cache.get(&key).cloned()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!("Cache file {} does not exist.", path.display());
                None
            }
            Err(source) => return Err(Error::Stat { source }),
        };
        Ok(Self {
            path,
            key,
            inner: SharedCredentialsProvider::new(inner),
            cached,
        })
    }

    async fn retrieve(&self) -> provider::Result {
        if let Some(creds) = self
            .cached
            .as_ref()
            .and_then(|c| c.usable_at(SystemTime::now()))
        {
            return Ok(creds);
        }
        tracing::debug!("No cached credential available. Refreshing...");
        let creds = self.inner.provide_credentials().await?;
        if creds.expiry().is_some() {
            match self.store(&creds).await {
                Ok(()) => tracing::debug!("Updated cached credential"),
                Err(e) => tracing::warn!(
                    "Unable to update credential cache {}: {}",
                    self.path.display(),
                    crate::error::error_chain(&e)
                ),
            }
        } else {
            // Static keys never expire, so there is nothing to refresh them by.
            tracing::warn!("Unable to cache credential: credential doesn't support expiration");
        }
        Ok(creds)
    }

    /// Read-modify-write of the file under an exclusive lock; the new file replaces the
    /// old one atomically with mode 0600.
    async fn store(&self, creds: &Credentials) -> Result<(), StoreError> {
        let locked = lock_exclusive(&self.path).await?;
        // A missing or unreadable cache is simply replaced, as upstream.
        let mut cache = read_locked(&locked, &self.path).unwrap_or_default();
        cache.put(&self.key, CachedCredential::from_credentials(creds));
        let text = serde_saphyr::to_string(&cache).map_err(|e| StoreError::Serialize {
            message: e.to_string(),
        })?;
        let text = unquote_timestamps(&text);
        let (dir, name) = crate::fsutil::Dir::open_parent(&self.path)?;
        // A `token --cache` killed mid-write leaves its temporary file; the next writer
        // removes it. Writers of the same file may each hold a lock of a different inode
        // (a rename swaps the file under the lock), so only a file too old to be a live
        // writer's is removed.
        if let Err(e) = dir.remove_abandoned_temps(&[name.as_os_str()], ABANDONED_TEMP_AGE) {
            tracing::debug!("Not removing stale cache temporaries: {e}");
        }
        dir.write_atomic(&name, text.as_bytes(), 0o600, None)?;
        drop(locked);
        Ok(())
    }
}

impl ProvideCredentials for FileCacheProvider {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.retrieve())
    }
}

/// Why writing the cache failed (the credentials are still used).
#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error("unable to write lock file")]
    Lock(#[source] io::Error),
    #[error("could not serialise the cache: {message}")]
    Serialize { message: String },
    #[error(transparent)]
    Write(#[from] crate::fsutil::Error),
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        Self::Lock(e)
    }
}

/// Writes `expires` timestamps as plain scalars, as yaml.v2 does: upstream decodes them into
/// a Go `time.Time`, which yaml.v2 refuses for a quoted (`!!str`) scalar, so a quoted value
/// would make the Go tool reject a cache the two tools share.
fn unquote_timestamps(yaml: &str) -> String {
    const FIELD: &str = "        expires: \"";
    let mut out = String::with_capacity(yaml.len());
    for line in yaml.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let value = body
            .strip_prefix(FIELD)
            .and_then(|rest| rest.strip_suffix('"'))
            .filter(|v| {
                !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_digit() || b"-:TZ.+".contains(&b))
            });
        match value {
            Some(v) => {
                out.push_str("        expires: ");
                out.push_str(v);
                out.push_str(&line[body.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests;
