//! Safe file handling in directories others may write to: atomic writes, no following of
//! links, modes and owners set on open descriptors.
//!
//! `init` runs as root and writes into a state dir that the server's (non-root) user may
//! be able to write too. Whoever can write a directory can plant entries in it: a symbolic
//! link named `key.pem` pointing at another key, a hard link to another file, a FIFO, a
//! link at the name of a temporary file. So every operation here is relative to an open
//! descriptor of the directory ([`Dir`]) and
//! - opens existing files with `O_NOFOLLOW` (a link is refused, naming the file) and
//!   `O_NONBLOCK` (a FIFO can't hang us), then checks on the descriptor that it is a
//!   regular file;
//! - changes modes and owners with `fchmod`/`fchown` on that descriptor, and refuses to
//!   change a file that has other hard links (the change would reach the other names);
//! - writes through a temporary file with an unpredictable name, created exclusively
//!   (`O_CREAT|O_EXCL|O_NOFOLLOW`) with its final mode and owner, fsynced, and renamed
//!   over the target (a rename replaces a link, it never writes through it); then the
//!   directory is fsynced. A crash at any point leaves the old file or the new one, never
//!   a partial one; what it can leave is a temporary file, which
//!   [`Dir::remove_stale_temps`] removes on a later run.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Permissions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, Flock, FlockArg, OFlag};
use nix::sys::stat::{Mode, SFlag};

/// Errors of this module, each naming the file or directory concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path has no parent directory or no file name.
    #[error("invalid path {0}")]
    InvalidPath(PathBuf),
    /// Writing failed.
    #[error("could not write {path}")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Another step (open, read, chmod, …) failed.
    #[error("could not {action} {path}")]
    Op {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The entry is a symbolic link, which we don't follow.
    #[error(
        "{path} is a symbolic link; refusing to follow it (replace it with the real file or directory)"
    )]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// The entry exists but is not a regular file (a directory, a FIFO, a device, …).
    #[error("{path} is not a regular file")]
    NotRegular {
        /// The entry.
        path: PathBuf,
    },
    /// The entry exists but is not a directory.
    #[error("{path} is not a directory")]
    NotDirectory {
        /// The entry.
        path: PathBuf,
    },
    /// The file needs a new mode or owner but has other hard links, which the change
    /// would reach too.
    #[error(
        "{path} has {links} hard links; refusing to change its mode or owner (replace it with a file of its own)"
    )]
    HardLinked {
        /// The file.
        path: PathBuf,
        /// Its number of links.
        links: u64,
    },
}

/// An owner to give a file: user id and, optionally, group id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The user id.
    pub uid: u32,
    /// The group id (unchanged when `None`).
    pub gid: Option<u32>,
}

impl std::str::FromStr for Owner {
    type Err = String;

    /// Parses `UID` or `UID:GID` (numeric ids: the server's image has no user database).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("invalid owner {s:?}: expected UID or UID:GID (numbers)"))
        };
        match s.split_once(':') {
            Some((u, g)) => Ok(Self {
                uid: num(u)?,
                gid: Some(num(g)?),
            }),
            None => Ok(Self {
                uid: num(s)?,
                gid: None,
            }),
        }
    }
}

/// Marks the names of our temporary files: `.<target>.tmp.<hex>`.
const TEMP_INFIX: &str = ".tmp.";
/// Attempts at a fresh temporary name before giving up (each collision means someone
/// created that exact random name first).
const TEMP_ATTEMPTS: usize = 8;

/// An open directory: every file operation is relative to its descriptor, so what the
/// path names can't be swapped under us between two steps.
#[derive(Debug)]
pub struct Dir {
    file: File,
    path: PathBuf,
}

/// An exclusive lock on a [`Dir`] (`flock`), released when dropped or when the process
/// dies. Runs that write the same state dir take turns.
#[derive(Debug)]
pub struct DirLock {
    _lock: Flock<File>,
}

fn errno(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// The directory part of `path` ("." for a bare name) and its last component.
fn split(path: &Path) -> Result<(&Path, &OsStr), Error> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::InvalidPath(path.to_owned()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
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

    /// Takes the directory's exclusive lock, waiting for another holder to let go.
    pub fn lock(&self) -> Result<DirLock, Error> {
        let err = |source| Error::Op {
            action: "lock directory",
            path: self.path.clone(),
            source,
        };
        let file = self.file.try_clone().map_err(err)?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map(|lock| DirLock { _lock: lock })
            .map_err(|(_, e)| err(errno(e)))
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

    /// Gives the open file `name` (from [`Dir::open_file`]) `mode` and, when given, `owner`,
    /// on its descriptor. Nothing is done when both are already right; a change to a file
    /// with other hard links is refused. Returns whether anything changed.
    pub fn fix(
        &self,
        name: impl AsRef<OsStr>,
        file: &File,
        mode: u32,
        owner: Option<Owner>,
    ) -> Result<bool, Error> {
        let path = self.join(name.as_ref());
        fix_fd(&path, file, mode, owner)
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
    fn create_temp(&self, target: &OsStr, mode: u32) -> io::Result<(File, OsString)> {
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

    fn create_exclusive(&self, name: &OsStr, mode: u32) -> Result<OwnedFd, Errno> {
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
fn temp_name(target: &OsStr, n: u64) -> OsString {
    let mut tmp = OsString::from(".");
    tmp.push(target);
    tmp.push(format!("{TEMP_INFIX}{n:016x}"));
    tmp
}

/// Whether `name` is one of our temporary files for `target`: the random names of
/// [`temp_name`], and the `.<target>.tmp.<pid>` of earlier versions.
fn is_temp_of(name: &OsStr, target: &OsStr) -> bool {
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

/// [`Dir::fix`] for a descriptor; `path` is for messages.
pub fn fix_fd(path: &Path, file: &File, mode: u32, owner: Option<Owner>) -> Result<bool, Error> {
    let err = |action, source| Error::Op {
        action,
        path: path.to_owned(),
        source,
    };
    let meta = file.metadata().map_err(|e| err("inspect", e))?;
    let owner_ok =
        owner.is_none_or(|o| meta.uid() == o.uid && o.gid.is_none_or(|g| g == meta.gid()));
    let mode_ok = meta.permissions().mode() & 0o7777 == mode;
    if owner_ok && mode_ok {
        return Ok(false);
    }
    if meta.nlink() > 1 {
        return Err(Error::HardLinked {
            path: path.to_owned(),
            links: meta.nlink(),
        });
    }
    if let Some(o) = owner.filter(|_| !owner_ok) {
        std::os::unix::fs::fchown(file, Some(o.uid), o.gid)
            .map_err(|e| err("set the owner of", e))?;
    }
    // After the chown, which may have cleared set-id bits.
    if file
        .metadata()
        .map_err(|e| err("inspect", e))?
        .permissions()
        .mode()
        & 0o7777
        != mode
    {
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| err("set the mode of", e))?;
    }
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn owners_parse() {
        assert_eq!(
            "65532".parse::<Owner>().unwrap(),
            Owner {
                uid: 65532,
                gid: None
            }
        );
        assert_eq!(
            "1:2".parse::<Owner>().unwrap(),
            Owner {
                uid: 1,
                gid: Some(2)
            }
        );
        for bad in ["", "x", "1:", ":1", "1:2:3", "-1"] {
            assert!(bad.parse::<Owner>().is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_with_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        write_atomic(&p, b"one", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // No temporary files are left behind.
        assert_eq!(names(dir.path()), ["key.pem"]);
    }

    #[test]
    fn missing_directory_is_an_error_naming_the_file() {
        let err = write_atomic(Path::new("/nonexistent/dir/x"), b"", 0o644).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir/x"), "{err}");
    }

    #[test]
    fn a_link_at_the_target_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "victim").unwrap();
        symlink(&victim, dir.path().join("key.pem")).unwrap();
        let d = Dir::open(dir.path()).unwrap();
        d.write_atomic("key.pem", b"new", 0o600, None).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"victim");
        let meta = fs::symlink_metadata(dir.path().join("key.pem")).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(fs::read(dir.path().join("key.pem")).unwrap(), b"new");
    }

    #[test]
    fn temporary_files_are_created_exclusively_and_never_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "victim").unwrap();
        let d = Dir::open(dir.path()).unwrap();
        let name = temp_name(OsStr::new("key.pem"), 7);
        symlink(&victim, dir.path().join(&name)).unwrap();
        assert_eq!(d.create_exclusive(&name, 0o600).unwrap_err(), Errno::EEXIST);
        fs::remove_file(dir.path().join(&name)).unwrap();
        symlink(dir.path().join("dangling"), dir.path().join(&name)).unwrap();
        assert_eq!(d.create_exclusive(&name, 0o600).unwrap_err(), Errno::EEXIST);
        assert!(!dir.path().join("dangling").exists());
        assert_eq!(fs::read(&victim).unwrap(), b"victim");
        // Names are random: two in a row differ.
        let (_, a) = d.create_temp(OsStr::new("x"), 0o600).unwrap();
        let (_, b) = d.create_temp(OsStr::new("x"), 0o600).unwrap();
        assert_ne!(a, b);
        assert!(is_temp_of(&a, OsStr::new("x")), "{a:?}");
    }

    #[test]
    fn links_fifos_and_directories_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "victim").unwrap();
        symlink(&victim, dir.path().join("link")).unwrap();
        nix::unistd::mkfifo(&dir.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let d = Dir::open(dir.path()).unwrap();
        let err = d.read("link").unwrap_err();
        assert!(matches!(err, Error::Symlink { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("{}/link is a symbolic link", dir.path().display())),
            "{err}"
        );
        assert!(matches!(
            d.read("fifo").unwrap_err(),
            Error::NotRegular { .. }
        ));
        assert!(matches!(
            d.read("sub").unwrap_err(),
            Error::NotRegular { .. }
        ));
        assert!(d.read("missing").unwrap().is_none());
        assert!(matches!(
            d.ensure_content("link", b"x", 0o644).unwrap_err(),
            Error::Symlink { .. }
        ));
        assert_eq!(fs::read(&victim).unwrap(), b"victim");

        // A directory that is a link is refused too; so is a file where one is wanted.
        symlink(dir.path().join("sub"), dir.path().join("sublink")).unwrap();
        let err = Dir::open(&dir.path().join("sublink")).unwrap_err();
        assert!(matches!(err, Error::Symlink { .. }), "{err}");
        let err = Dir::create(&dir.path().join("sublink"), 0o755).unwrap_err();
        assert!(matches!(err, Error::Symlink { .. }), "{err}");
        let err = Dir::open(&victim).unwrap_err();
        assert!(matches!(err, Error::NotDirectory { .. }), "{err}");
        // A trailing slash doesn't make a link followed.
        let err = Dir::open(Path::new(&format!("{}/sublink/", dir.path().display()))).unwrap_err();
        assert!(matches!(err, Error::Symlink { .. }), "{err}");
    }

    #[test]
    fn modes_change_on_the_descriptor_and_never_across_hard_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dir::open(dir.path()).unwrap();
        d.write_atomic("f", b"x", 0o640, None).unwrap();
        let (file, _) = d.read("f").unwrap().unwrap();
        assert!(d.fix("f", &file, 0o600, None).unwrap());
        assert!(!d.fix("f", &file, 0o600, None).unwrap());
        fs::hard_link(dir.path().join("f"), dir.path().join("g")).unwrap();
        let err = d.fix("f", &file, 0o644, None).unwrap_err();
        assert!(matches!(err, Error::HardLinked { links: 2, .. }), "{err}");
        assert_eq!(
            fs::metadata(dir.path().join("g"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        // Nothing to change: fine even with other links.
        assert!(!d.fix("f", &file, 0o600, None).unwrap());
    }

    #[test]
    fn stale_temporary_files_are_recognised_and_removed() {
        let t = OsStr::new("key.pem");
        for (name, want) in [
            (".key.pem.tmp.0123456789abcdef", true),
            (".key.pem.tmp.4242", true),
            (".key.pem.tmp.", false),
            (".key.pem.tmp.0123456789abcdef0", false),
            (".key.pem.tmp.xyz", false),
            ("key.pem.tmp.1", false),
            (".cert.pem.tmp.1", false),
            ("key.pem", false),
        ] {
            assert_eq!(is_temp_of(OsStr::new(name), t), want, "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        let d = Dir::open(dir.path()).unwrap();
        fs::write(dir.path().join(".key.pem.tmp.1f"), "").unwrap();
        fs::write(dir.path().join(".other.tmp.1f"), "").unwrap();
        symlink("/etc/passwd", dir.path().join(".key.pem.tmp.2f")).unwrap();
        fs::write(dir.path().join("key.pem"), "k").unwrap();
        let mut removed = d.remove_stale_temps(&[t]).unwrap();
        removed.sort();
        assert_eq!(removed, [".key.pem.tmp.1f", ".key.pem.tmp.2f"]);
        assert_eq!(names(dir.path()), [".other.tmp.1f", "key.pem"]);
        assert!(Path::new("/etc/passwd").exists());
        // A second listing sees the directory afresh.
        assert!(d.remove_stale_temps(&[t]).unwrap().is_empty());
    }

    #[test]
    fn the_lock_is_exclusive_between_descriptions() {
        let dir = tempfile::tempdir().unwrap();
        let a = Dir::open(dir.path()).unwrap();
        let b = Dir::open(dir.path()).unwrap();
        let held = a.lock().unwrap();
        let probe = b.file.try_clone().unwrap();
        assert!(Flock::lock(probe, FlockArg::LockExclusiveNonblock).is_err());
        drop(held);
        let probe = b.file.try_clone().unwrap();
        assert!(Flock::lock(probe, FlockArg::LockExclusiveNonblock).is_ok());
    }
}
