//! Atomic writes: an exclusive temporary file with its final mode and owner, fsynced and
//! renamed over the target, then the directory fsynced.

use std::ffi::OsStr;
use std::ffi::OsString;
use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::temps::temp_name;
use super::{Dir, Error, Owner, errno};

/// Attempts at a fresh temporary name before giving up (each collision means someone
/// created that exact random name first).
const TEMP_ATTEMPTS: usize = 8;

impl Dir {
    /// Writes `contents` to `name` with `mode` (and `owner`), atomically: see the module
    /// documentation. Whatever `name` was (a file, a link) is replaced, never written
    /// through.
    pub fn write_atomic(
        &self,
        name: impl AsRef<OsStr>,
        contents: &[u8],
        mode: u32,
        owner: Option<Owner>,
    ) -> Result<(), Error> {
        let name = name.as_ref();
        let path = self.join(name);
        let io_err = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let (mut file, tmp) = self.create_temp(name, mode).map_err(io_err)?;
        let result = (|| {
            // Owner first: a chown may clear mode bits; then the exact mode (the umask
            // may have narrowed it at creation).
            if let Some(o) = owner {
                std::os::unix::fs::fchown(&file, Some(o.uid), o.gid)?;
            }
            file.set_permissions(Permissions::from_mode(mode))?;
            file.write_all(contents)?;
            file.sync_all()?;
            drop(file);
            nix::fcntl::renameat(self.file.as_fd(), tmp.as_os_str(), self.file.as_fd(), name)
                .map_err(errno)?;
            self.file.sync_all()
        })();
        if result.is_err() {
            let _ = nix::unistd::unlinkat(
                self.file.as_fd(),
                tmp.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        result.map_err(io_err)
    }

    /// Creates a fresh temporary file for `target`: `.<target>.tmp.<16 random hex>`,
    /// exclusively, never through a link.
    pub(super) fn create_temp(&self, target: &OsStr, mode: u32) -> io::Result<(File, OsString)> {
        let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
        for _ in 0..TEMP_ATTEMPTS {
            let mut random = [0u8; 8];
            getrandom::fill(&mut random)
                .map_err(|e| io::Error::other(format!("no random bytes: {e}")))?;
            let tmp = temp_name(target, u64::from_be_bytes(random));
            match self.create_exclusive(&tmp, mode) {
                Ok(fd) => return Ok((File::from(fd), tmp)),
                Err(Errno::EEXIST) => last = errno(Errno::EEXIST),
                Err(e) => return Err(errno(e)),
            }
        }
        Err(last)
    }

    pub(super) fn create_exclusive(&self, name: &OsStr, mode: u32) -> Result<OwnedFd, Errno> {
        nix::fcntl::openat(
            self.file.as_fd(),
            name,
            OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
    }

    /// Writes `contents` to `name` unless it already holds exactly that; an unchanged
    /// file gets its `mode` back if someone changed it. A link or a non-regular file at
    /// `name` is refused. Returns whether the file was written.
    pub fn ensure_content(
        &self,
        name: impl AsRef<OsStr>,
        contents: &[u8],
        mode: u32,
    ) -> Result<bool, Error> {
        let name = name.as_ref();
        if let Some((file, old)) = self.read(name)?
            && old == contents
        {
            self.fix(name, &file, mode, None)?;
            return Ok(false);
        }
        self.write_atomic(name, contents, mode, None)?;
        Ok(true)
    }
}

/// Writes `contents` to `path` with `mode`, atomically (see [`Dir::write_atomic`]). The
/// directory part of `path` is resolved as usual.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let (dir, name) = Dir::open_parent(path).map_err(|e| match e {
        // Keep naming the file being written.
        Error::Op { source, .. } => Error::Io {
            path: path.to_owned(),
            source,
        },
        other => other,
    })?;
    dir.write_atomic(&name, contents, mode, None)
}
