//! The state dir's lock: writers of one directory take turns.

use std::fs::File;

use nix::fcntl::{Flock, FlockArg};

use super::{Dir, Error, errno};

/// An exclusive lock on a [`Dir`] (`flock`), released when dropped or when the process
/// dies. Runs that write the same state dir take turns.
#[derive(Debug)]
pub struct DirLock {
    _lock: Flock<File>,
}

impl Dir {
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
}
