//! Modes and owners, changed on an open descriptor and never across hard links.

use std::ffi::OsStr;
use std::fs::{File, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::{Dir, Error};

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

impl Dir {
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
