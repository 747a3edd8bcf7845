//! The log lines before, and the exec of, `init` or `server`.

use std::convert::Infallible;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{BINARY_PATH, Error};

/// Go's `%v` of a string slice: `[a b c]`.
pub fn go_slice(args: &[String]) -> String {
    format!("[{}]", args.join(" "))
}

/// The line logged before the exec: `executing: /usr/local/bin/aws-iam-authenticator [init …]`.
pub fn executing_line(args: &[String]) -> String {
    format!("executing: {BINARY_PATH} {}", go_slice(args))
}

/// The line logged before `init` runs as a child (`SERVE=true`): `running: … [init …]`.
pub fn running_line(args: &[String]) -> String {
    format!("running: {BINARY_PATH} {}", go_slice(args))
}

/// Replaces this process with `binary` and `args` (`argv[0]` = `binary`) and exactly the
/// environment `env` (see [`super::process_env`]). Returns only on failure.
pub fn exec(
    binary: &Path,
    args: &[String],
    env: &[(OsString, OsString)],
) -> Result<Infallible, Error> {
    let exec_err = |source| Error::Exec {
        path: binary.to_owned(),
        source,
    };
    let c = |s: &[u8]| CString::new(s).map_err(|_| exec_err(nix::Error::EINVAL));
    let path = c(binary.as_os_str().as_bytes())?;
    let mut argv = vec![path.clone()];
    for a in args {
        argv.push(c(a.as_bytes())?);
    }
    let mut envp = Vec::with_capacity(env.len());
    for (k, v) in env {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        envp.push(c(&kv)?);
    }
    // The new program replaces this one: whatever is still queued for stderr goes first.
    crate::logging::flush();
    nix::unistd::execve(&path, &argv, &envp).map_err(exec_err)
}
