//! Running the binary under test as a process: free ports, privileges, and a copy of
//! the binary that another user can execute.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the tests run as root (and so can give files away and drop privileges).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A copy of the binary under test that any user can execute, for a process started
/// with `Command::uid`: as a kubelet-run pod sees its image's binary, not the build
/// tree. The build tree may sit below a directory only its owner can enter (a checkout
/// in a `mktemp -d` directory is 0700), where exec as another uid fails with EACCES.
pub struct BinaryForAnyUser {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl BinaryForAnyUser {
    /// Copies [`super::bin`] into a fresh 0755 directory under `/tmp`, mode 0755.
    pub fn install() -> Self {
        let dir = traversable_tempdir();
        let path = dir.path().join("aws-iam-authenticator");
        fs::copy(super::bin(), &path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir, path }
    }

    /// The copy's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory the copy is in (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A fresh 0755 directory that every user can reach (a process that drops privileges
/// may run in it or from it).
pub fn traversable_tempdir() -> tempfile::TempDir {
    // Under /tmp itself, not $TMPDIR: that may be a private directory too.
    let dir = tempfile::Builder::new()
        .prefix("aws-iam-authenticator-test")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for ancestor in dir.path().ancestors() {
        assert_traversable(ancestor);
    }
    dir
}

/// Panics unless everyone may search `dir`, so a failure names the directory instead of
/// an EACCES at spawn.
fn assert_traversable(dir: &Path) {
    let mode = fs::metadata(dir).unwrap().permissions().mode();
    assert!(
        mode & 0o001 != 0,
        "{} (mode {:o}) cannot be entered by other users",
        dir.display(),
        mode & 0o7777
    );
}

/// A running `server` process and its log.
pub struct Running {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    pub fn spawn(mut cmd: std::process::Command) -> Self {
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The first JSON log line whose message starts with `prefix`.
    pub fn find_log(&self, prefix: &str) -> Option<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["msg"].as_str().is_some_and(|m| m.starts_with(prefix)))
    }

    /// Waits (bounded) for a log line starting with `prefix`.
    pub async fn wait_log(&mut self, prefix: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = self.find_log(prefix) {
                return v;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader thread catch up with the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Some(v) = self.find_log(prefix) {
                    return v;
                }
                panic!(
                    "server exited ({status}) before logging {prefix:?}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no log line {prefix:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded) until the server serves; fails at once if it exits first.
    pub async fn listening(&mut self) {
        self.wait_log("serving health checks on").await;
    }

    pub fn tls_addr(&self) -> SocketAddr {
        let v = self.find_log("listening on ").unwrap();
        v["address"].as_str().unwrap().parse().unwrap()
    }

    pub fn health_addr(&self) -> SocketAddr {
        let v = self.find_log("serving health checks on").unwrap();
        v["address"].as_str().unwrap().parse().unwrap()
    }

    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "server still running after {within:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `server` to completion (for startup failures); one that keeps running is
/// killed after a bound, so the test fails instead of hanging.
pub fn run_to_exit(mut cmd: std::process::Command) -> std::process::Output {
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}
