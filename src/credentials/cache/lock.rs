//! The cache file's locks (upstream's `flock` protocol): readers share, writers exclude,
//! and a busy lock is retried for about a second.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use super::{CacheFile, Error};

/// How often and how long to retry a busy lock (upstream: every 250 ms for 1 s).
const LOCK_RETRY: Duration = Duration::from_millis(250);
const LOCK_ATTEMPTS: u32 = 5;

/// Takes a lock, retrying every 250 ms for about a second while someone else holds it.
async fn lock_with_retry(mut file: File, arg: FlockArg) -> io::Result<Flock<File>> {
    let mut attempt = 0;
    loop {
        match Flock::lock(file, arg) {
            Ok(locked) => return Ok(locked),
            Err((f, errno)) => {
                attempt += 1;
                if errno != nix::errno::Errno::EWOULDBLOCK || attempt >= LOCK_ATTEMPTS {
                    return Err(io::Error::from(errno));
                }
                file = f;
                tokio::time::sleep(LOCK_RETRY).await;
            }
        }
    }
}

/// Reads the cache through a shared lock. Reading through the locked descriptor gives a
/// consistent snapshot even if a writer renames a new file into place meanwhile.
pub(super) async fn read_shared(path: &Path) -> Result<CacheFile, Error> {
    let read_err = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let locked = lock_with_retry(file, FlockArg::LockSharedNonblock)
        .await
        .map_err(|source| Error::Lock {
            path: path.to_owned(),
            source,
        })?;
    read_locked(&locked, path)
}

pub(super) fn read_locked(locked: &Flock<File>, path: &Path) -> Result<CacheFile, Error> {
    let mut text = String::new();
    let mut file: &File = locked;
    file.read_to_string(&mut text)
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
    CacheFile::parse(path, &text)
}

/// Locks the cache file exclusively, creating it (0600) if needed. Writers replace the
/// file by renaming, so after locking we check that the descriptor is still the file at
/// `path`; if not, a writer got there first and we lock the new file instead.
pub(super) async fn lock_exclusive(path: &Path) -> io::Result<Flock<File>> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        let locked = lock_with_retry(file, FlockArg::LockExclusiveNonblock).await?;
        let held = locked.metadata()?;
        match fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(locked),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
}
