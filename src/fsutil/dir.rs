//! An open directory, and regular files opened in it without following links.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Permissions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};

use super::{Error, errno, split};

/// An open directory: every file operation is relative to its descriptor, so what the
/// path names can't be swapped under us between two steps.
#[derive(Debug)]
pub struct Dir {
    pub(super) file: File,
    pub(super) path: PathBuf,
}

impl Dir {
    /// Opens the directory at `path`. Its last component must be a real directory, not a
    /// symbolic link (the components before it are resolved as usual).
    pub fn open(path: &Path) -> Result<Self, Error> {
        let Some(name) = path.file_name() else {
            // "/", "." or "..": never a link of their own.
            return Self::open_followed(path);
        };
        let parent = Self::open_followed(split(path)?.0)?;
        let fd = nix::fcntl::openat(
            parent.file.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        match fd {
            Ok(fd) => Ok(Self {
                file: File::from(fd),
                path: path.to_owned(),
            }),
            Err(Errno::ELOOP | Errno::ENOTDIR) => Err(parent.classify(name, true)),
            Err(e) => Err(Error::Op {
                action: "open directory",
                path: path.to_owned(),
                source: errno(e),
            }),
        }
    }

    /// Creates the directory at `path` (and its parents) with `mode` (less the umask)
    /// when it is missing, then opens it as [`Dir::open`] does.
    pub fn create(path: &Path, mode: u32) -> Result<Self, Error> {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::Symlink {
                    path: path.to_owned(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(mode)
                    .create(path)
                    .map_err(|source| Error::Op {
                        action: "create directory",
                        path: path.to_owned(),
                        source,
                    })?;
            }
            Err(source) => {
                return Err(Error::Op {
                    action: "open directory",
                    path: path.to_owned(),
                    source,
                });
            }
        }
        Self::open(path)
    }

    /// Opens the directory that holds `path`, resolving links in its path as usual.
    /// Returns it and the file's name in it.
    pub fn open_parent(path: &Path) -> Result<(Self, OsString), Error> {
        let (dir, name) = split(path)?;
        Ok((Self::open_followed(dir)?, name.to_owned()))
    }

    fn open_followed(path: &Path) -> Result<Self, Error> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Op {
            action: "open directory",
            path: path.to_owned(),
            source: errno(e),
        })?;
        Ok(Self {
            file: File::from(fd),
            path: path.to_owned(),
        })
    }

    /// The path this directory was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this directory, for messages.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Sets the directory's own mode (on its descriptor), when it differs.
    pub fn ensure_mode(&self, mode: u32) -> Result<(), Error> {
        let err = |source| Error::Op {
            action: "set the mode of",
            path: self.path.clone(),
            source,
        };
        let meta = self.file.metadata().map_err(err)?;
        if meta.permissions().mode() & 0o7777 != mode {
            self.file
                .set_permissions(Permissions::from_mode(mode))
                .map_err(err)?;
        }
        Ok(())
    }

    /// Why `name` could not be opened as what we wanted: a link, or the wrong kind.
    fn classify(&self, name: &OsStr, want_dir: bool) -> Error {
        let path = self.join(name);
        match nix::sys::stat::fstatat(self.file.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK => {
                Error::Symlink { path }
            }
            Ok(_) if want_dir => Error::NotDirectory { path },
            Ok(_) => Error::NotRegular { path },
            Err(e) => Error::Op {
                action: "open",
                path,
                source: errno(e),
            },
        }
    }

    /// Opens the existing regular file `name` for reading, without following a link and
    /// without blocking on a FIFO. `None` when there is no such entry.
    pub fn open_file(&self, name: impl AsRef<OsStr>) -> Result<Option<File>, Error> {
        let name = name.as_ref();
        let path = self.join(name);
        let fd = nix::fcntl::openat(
            self.file.as_fd(),
            name,
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        let file = match fd {
            Ok(fd) => File::from(fd),
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(self.classify(name, false)),
            Err(e) => {
                return Err(Error::Op {
                    action: "open",
                    path,
                    source: errno(e),
                });
            }
        };
        let meta = file.metadata().map_err(|source| Error::Op {
            action: "inspect",
            path: path.clone(),
            source,
        })?;
        if !meta.file_type().is_file() {
            return Err(Error::NotRegular { path });
        }
        Ok(Some(file))
    }

    /// Reads the regular file `name` (see [`Dir::open_file`]). `None` when it is missing.
    pub fn read(&self, name: impl AsRef<OsStr>) -> Result<Option<(File, Vec<u8>)>, Error> {
        let name = name.as_ref();
        let Some(mut file) = self.open_file(name)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|source| Error::Op {
            action: "read",
            path: self.join(name),
            source,
        })?;
        Ok(Some((file, bytes)))
    }

    /// Removes the entry `name` (a link itself, never what it points at). A missing entry
    /// is not an error.
    pub fn remove(&self, name: impl AsRef<OsStr>) -> Result<(), Error> {
        let name = name.as_ref();
        match nix::unistd::unlinkat(
            self.file.as_fd(),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::Op {
                action: "remove",
                path: self.join(name),
                source: errno(e),
            }),
        }
    }

    /// Flushes the directory's entries (renames, removals) to disk.
    pub fn sync(&self) -> Result<(), Error> {
        self.file.sync_all().map_err(|source| Error::Op {
            action: "sync directory",
            path: self.path.clone(),
            source,
        })
    }
}
