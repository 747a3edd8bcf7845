//! The temporary files of atomic writes: their names, and removing those an interrupted
//! write left.

use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use super::{Dir, Error, errno};

/// Marks the names of our temporary files: `.<target>.tmp.<hex>`.
const TEMP_INFIX: &str = ".tmp.";

impl Dir {
    /// Removes the temporary files that interrupted writes of `targets` left here (see
    /// [`Dir::write_atomic`]). Only a writer holding the directory's [`Dir::lock`] may
    /// call this: it can't tell a dead writer's file from a live one's. Returns the
    /// names removed.
    pub fn remove_stale_temps(&self, targets: &[&OsStr]) -> Result<Vec<OsString>, Error> {
        self.remove_temps(targets, None)
    }

    /// As [`Dir::remove_stale_temps`], for writers without a lock of the directory: only
    /// temporary files last modified at least `min_age` ago are removed. A write takes
    /// milliseconds, so a file that old was left by a writer that died.
    pub fn remove_abandoned_temps(
        &self,
        targets: &[&OsStr],
        min_age: Duration,
    ) -> Result<Vec<OsString>, Error> {
        self.remove_temps(targets, Some(min_age))
    }

    fn remove_temps(
        &self,
        targets: &[&OsStr],
        min_age: Option<Duration>,
    ) -> Result<Vec<OsString>, Error> {
        let err = |source| Error::Op {
            action: "list directory",
            path: self.path.clone(),
            source,
        };
        // A descriptor of its own: the listing's position is not shared with `self`.
        let mut listing = nix::dir::Dir::openat(
            self.file.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(errno(e)))?;
        let mut stale = Vec::new();
        for entry in listing.iter() {
            let entry = entry.map_err(|e| err(errno(e)))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if targets.iter().any(|t| is_temp_of(name, t))
                && min_age.is_none_or(|age| self.modified_before(name, age))
            {
                stale.push(name.to_owned());
            }
        }
        for name in &stale {
            tracing::info!(
                path = %self.join(name).display(),
                "removing a temporary file an interrupted run left"
            );
            self.remove(name)?;
        }
        if !stale.is_empty() {
            self.sync()?;
        }
        Ok(stale)
    }

    /// Whether `name` (not followed if a link) was last modified `age` ago or earlier;
    /// false when it can't be told (gone meanwhile, clock oddities).
    fn modified_before(&self, name: &OsStr, age: Duration) -> bool {
        let Ok(st) = nix::sys::stat::fstatat(self.file.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        else {
            return false;
        };
        let modified = UNIX_EPOCH + Duration::new(st.st_mtime.max(0) as u64, 0);
        SystemTime::now()
            .duration_since(modified)
            .is_ok_and(|elapsed| elapsed >= age)
    }
}

/// `.<target>.tmp.<hex>` for a random `n`.
pub(super) fn temp_name(target: &OsStr, n: u64) -> OsString {
    let mut tmp = OsString::from(".");
    tmp.push(target);
    tmp.push(format!("{TEMP_INFIX}{n:016x}"));
    tmp
}

/// Whether `name` is one of our temporary files for `target`: the random names of
/// [`temp_name`], and the `.<target>.tmp.<pid>` of earlier versions.
pub(super) fn is_temp_of(name: &OsStr, target: &OsStr) -> bool {
    let name = name.as_bytes();
    let target = target.as_bytes();
    let Some(rest) = name
        .strip_prefix(b".")
        .and_then(|r| r.strip_prefix(target))
        .and_then(|r| r.strip_prefix(TEMP_INFIX.as_bytes()))
    else {
        return false;
    };
    !rest.is_empty() && rest.len() <= 16 && rest.iter().all(u8::is_ascii_hexdigit)
}
