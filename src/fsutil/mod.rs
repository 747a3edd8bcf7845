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
//!
//! The parts: [`Dir`] opens directories and files without following links (`dir`); its
//! lock lets writers take turns (`lock`); atomic writes (`atomic`) go through temporary
//! files, whose names and cleanup live in `temps`; modes and owners change on descriptors
//! (`owner`).

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

mod atomic;
mod dir;
mod lock;
mod owner;
mod temps;

pub use atomic::write_atomic;
pub use dir::Dir;
pub use lock::DirLock;
pub use owner::{Owner, fix_fd};

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

#[cfg(test)]
mod tests;
