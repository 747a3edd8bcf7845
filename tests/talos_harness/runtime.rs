//! A minimal container runtime, as close to what containerd and runc do for a Talos
//! extension service (or a pod) as one root process can get without them.
//!
//! The namespaces: one user namespace with uids and gids 0-65535 mapped to themselves (so
//! uid 65532 inside is uid 65532 on the machine, and root inside is root), and one network
//! namespace with only `lo`, both held by a `Node`; every container gets a fresh mount and
//! pid namespace in them (`unshare --mount --pid --fork`), its entrypoint is pid 1 there,
//! as in a containerd task. The user namespace is what lets the harness register
//! `qemu-aarch64` with binfmt_misc for the containers only (Linux ≥ 6.7 gives every user
//! namespace its own binfmt_misc instance) instead of machine-wide. The network namespace
//! stands for the node's host network (Talos runs extension services with
//! `oci.WithHostNamespace(specs.NetworkNamespace)`: siderolabs/talos
//! internal/app/machined/pkg/system/services/extension.go `getOCIOptions`): the server
//! gets its real ports, and the STS emulator listens on 127.0.0.1:443 there.
//!
//! The container's side is a second run of this test binary (the `container_runtime_stage`
//! test, selected with [`STAGE_VAR`]): inside the new namespaces it builds the root as runc
//! does, then `chroot`s and `execve`s the entrypoint with the exact environment list, so
//! repeated variables reach the process as containerd passes them (`Command::env` would
//! merge them).

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, statvfs};
use serde::{Deserialize, Serialize};

/// Set (to the plan's path) when this test binary runs as a container's runtime stage.
pub const STAGE_VAR: &str = "TALOS_HARNESS_CONTAINER_PLAN";

/// The test that is the runtime stage (see `container_runtime_stage` in the test file).
pub const STAGE_TEST: &str = "container_runtime_stage";

/// One mount of the OCI runtime spec (`specs.Mount`): host sources already mapped into
/// the node's host tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: Option<PathBuf>,
    pub options: Vec<String>,
}

impl Mount {
    pub fn bind(source: &Path, destination: &str, options: &[&str]) -> Self {
        Self {
            destination: destination.to_owned(),
            kind: "bind".to_owned(),
            source: Some(source.to_owned()),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
        }
    }
}

/// Everything the stage needs: the OCI spec's process and mounts, and where to log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The image's root directory (the overlay's lower layer).
    pub rootfs: PathBuf,
    /// An empty directory for the overlay's writable layer and the merged root.
    pub scratch: PathBuf,
    /// `root.readonly` of the OCI spec.
    pub readonly_root: bool,
    /// In the OCI spec's order (runc mounts them in this order).
    pub mounts: Vec<Mount>,
    /// `process.args`: args[0] is the entrypoint, a path inside the container.
    pub args: Vec<String>,
    /// `process.env`, exactly (repeats kept).
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Files the process's stdout and stderr go to (containerd's log FIFOs).
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The stage writes the mount points it had to create here, before the exec.
    pub report: PathBuf,
    /// A binfmt_misc registration line to write (for foreign-architecture entrypoints).
    pub binfmt: Option<String>,
}

/// What the stage reports before the exec.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Mount destinations that did not exist in the image (runc creates them in the
    /// writable overlay Talos mounts over the extension's rootfs).
    pub created_mount_points: Vec<String>,
}

/// The binfmt_misc line for arm64 ELF executables: Debian's qemu-user-static entry
/// (/usr/lib/binfmt.d/qemu-aarch64.conf), its interpreter the static qemu, with flag `F`
/// (the interpreter is opened at registration, so it works inside the chroot).
pub fn qemu_aarch64_binfmt(qemu: &Path) -> String {
    format!(
        r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:{}:F",
        qemu.display()
    )
}

// ---------------------------------------------------------------------------------------
// The node's namespaces (host side).

/// The user and network namespaces every container of a test runs in, held open by a
/// `cat` that ends with the test process (its stdin is a pipe from us).
#[derive(Debug)]
pub struct Namespaces {
    holder: Child,
}

fn ns_id(path: &str) -> Option<PathBuf> {
    fs::read_link(path).ok()
}

impl Namespaces {
    pub fn new() -> Self {
        let holder = Command::new("unshare")
            .args(["--user", "--net", "--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = holder.id();
        let ours = ns_id("/proc/self/ns/user").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while ns_id(&format!("/proc/{pid}/ns/user")).as_ref() == Some(&ours) {
            assert!(Instant::now() < deadline, "unshare --user did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Root writes any mapping for a child namespace's process (user_namespaces(7)).
        fs::write(format!("/proc/{pid}/uid_map"), "0 0 65536\n").unwrap();
        fs::write(format!("/proc/{pid}/gid_map"), "0 0 65536\n").unwrap();
        let ns = Self { holder };
        let out = Command::new("nsenter")
            .arg(format!("--net={}", ns.path("net").display()))
            .args(["--", "ip", "link", "set", "lo", "up"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        ns
    }

    pub fn path(&self, kind: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{kind}", self.holder.id()))
    }

    /// Runs `f` on a thread inside the network namespace: every socket it (and the
    /// threads it spawns, which inherit the namespace) opens is on the node's network.
    pub fn in_netns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let net = fs::File::open(self.path("net")).unwrap();
        std::thread::spawn(move || {
            nix::sched::setns(&net, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Starts a container from `plan` (files for the plan and the stage's own log go in
    /// `dir`).
    pub fn spawn(&self, plan: &Plan, dir: &Path, name: &str) -> Container {
        fs::create_dir_all(dir).unwrap();
        let plan_file = dir.join(format!("{name}.plan.json"));
        fs::write(&plan_file, serde_json::to_vec_pretty(plan).unwrap()).unwrap();
        let stage_log = dir.join(format!("{name}.stage.log"));
        let log = fs::File::create(&stage_log).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--user={}", self.path("user").display()))
            .arg(format!("--net={}", self.path("net").display()))
            .args([
                "--",
                "unshare",
                "--mount",
                "--pid",
                "--fork",
                "--propagation",
                "private",
                "--kill-child",
                "--",
            ])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", STAGE_TEST, "--nocapture", "--test-threads=1"])
            .env_clear()
            .env(STAGE_VAR, &plan_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Container {
            child,
            plan: plan.clone(),
            stage_log,
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A running (or finished) container. Dropping it kills it.
#[derive(Debug)]
pub struct Container {
    child: Child,
    pub plan: Plan,
    stage_log: PathBuf,
}

impl Container {
    /// The container's pid 1, as the machine numbers it (`unshare --fork`'s child).
    pub fn init_pid(&self) -> Option<i32> {
        let unshare = self.child.id();
        let children = fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .unwrap_or_default();
        children.split_whitespace().next()?.parse().ok()
    }

    /// SIGTERM to the container's pid 1, as containerd's `task.Kill` does.
    pub fn terminate(&self) {
        let pid = self.init_pid().expect("the container has no process");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits (bounded) for the container to exit.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.try_wait() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "container still running after {within:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.plan.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.plan.stderr).unwrap_or_default()
    }

    pub fn report(&self) -> Report {
        fs::read(&self.plan.report)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Everything for an assertion message.
    pub fn logs(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}\n--- runtime ---\n{}",
            self.stdout(),
            self.stderr(),
            fs::read_to_string(&self.stage_log).unwrap_or_default()
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // unshare --kill-child takes the container with it.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The runtime stage (container side, in the new mount and pid namespaces).

/// Builds the container's root from the plan, then execs its entrypoint. Returns only on
/// failure.
pub fn stage(plan_file: &Path) -> Result<Infallible, String> {
    let plan: Plan = serde_json::from_slice(&fs::read(plan_file).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let root = build_root(&plan)?;

    let open = |p: &Path| {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let (out, err) = (open(&plan.stdout)?, open(&plan.stderr)?);
    let null = fs::File::open("/dev/null").map_err(|e| e.to_string())?;

    nix::unistd::chroot(&root).map_err(|e| format!("chroot: {e}"))?;
    nix::unistd::chdir(plan.cwd.as_str()).map_err(|e| format!("chdir {}: {e}", plan.cwd))?;
    let gid = nix::unistd::Gid::from_raw(plan.gid);
    nix::unistd::setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setgid(gid).map_err(|e| format!("setgid: {e}"))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(plan.uid))
        .map_err(|e| format!("setuid: {e}"))?;
    // `unshare --kill-child` set the parent-death signal on the process it forked, but the
    // test harness may run this stage on another thread, whose exec leaves that setting
    // behind (it is per thread, and a credential change clears it too): set it again, so
    // a test that dies takes its container with it.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("prctl: {e}"))?;

    let cstr = |s: &str| CString::new(s).map_err(|e| e.to_string());
    let args = plan
        .args
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let env = plan
        .env
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let entrypoint = args.first().ok_or("no process args")?.clone();
    // The test harness printed its banner on the old stdout; from here on the process's
    // output goes where containerd would send it.
    nix::unistd::dup2_stdin(&null).map_err(|e| e.to_string())?;
    nix::unistd::dup2_stdout(&out).map_err(|e| e.to_string())?;
    nix::unistd::dup2_stderr(&err).map_err(|e| e.to_string())?;
    nix::unistd::execve(&entrypoint, &args, &env).map_err(|e| format!("exec {}: {e}", plan.args[0]))
}

fn mounted(
    source: Option<&Path>,
    target: &Path,
    kind: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    mount(source, target, kind, flags, data).map_err(|e| {
        format!(
            "mount {:?} ({kind:?}) on {}: {e}",
            source.map(Path::display),
            target.display()
        )
    })
}

/// A read-only remount of a bind mount: the flags the kernel locked on it (nosuid, nodev,
/// noexec, atime) must be repeated or the remount is refused.
fn remount_ro(target: &Path, recursive: bool) -> Result<(), String> {
    let st = statvfs(target).map_err(|e| format!("statvfs {}: {e}", target.display()))?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (f, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.flags().contains(f) {
            flags |= m;
        }
    }
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mounted(None, target, None, flags, None)
}

/// The mount point for `dest` under `root`, created as runc creates it (a file for a
/// file source, else a directory); returns whether it had to be created.
fn mount_point(root: &Path, dest: &str, file: bool) -> Result<(PathBuf, bool), String> {
    let path = root.join(dest.trim_start_matches('/'));
    if path.exists() {
        return Ok((path, false));
    }
    let err = |e: std::io::Error| format!("mount point {dest}: {e}");
    if file {
        fs::create_dir_all(path.parent().unwrap()).map_err(err)?;
        fs::File::create(&path).map_err(err)?;
    } else {
        fs::create_dir_all(&path).map_err(err)?;
    }
    Ok((path, true))
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn build_root(plan: &Plan) -> Result<PathBuf, String> {
    // Talos's PreFunc: the extension's rootfs under a writable overlay, so the runtime can
    // create mount points in it (siderolabs/talos services/extension.go `PreFunc`); a
    // pod's snapshot is such an overlay too.
    mounted(
        Some(Path::new("tmpfs")),
        &plan.scratch,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )?;
    let (upper, work, root) = (
        plan.scratch.join("upper"),
        plan.scratch.join("work"),
        plan.scratch.join("root"),
    );
    for d in [&upper, &work, &root] {
        fs::create_dir(d).map_err(io("scratch"))?;
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        plan.rootfs.display(),
        upper.display(),
        work.display()
    );
    mounted(
        Some(Path::new("overlay")),
        &root,
        Some("overlay"),
        MsFlags::empty(),
        Some(&data),
    )?;

    let mut report = Report::default();
    for m in &plan.mounts {
        let file = m.source.as_deref().is_some_and(Path::is_file);
        let (target, created) = mount_point(&root, &m.destination, file)?;
        if created {
            report.created_mount_points.push(m.destination.clone());
        }
        let has = |o: &str| m.options.iter().any(|x| x == o);
        match m.kind.as_str() {
            "bind" => {
                let source = m.source.as_deref().ok_or("bind mount without source")?;
                let mut flags = MsFlags::MS_BIND;
                if has("rbind") {
                    flags |= MsFlags::MS_REC;
                }
                mounted(Some(source), &target, None, flags, None)?;
                if has("ro") {
                    remount_ro(&target, has("rbind"))?;
                }
            }
            // The devices a container gets: a tmpfs with the host's harmless nodes bound
            // in (no mknod in a user namespace; rootless runc does the same).
            "dev" => {
                mounted(
                    Some(Path::new("tmpfs")),
                    &target,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
                    Some("mode=755,size=65536k"),
                )?;
                for node in ["null", "zero", "full", "random", "urandom", "tty"] {
                    let dest = target.join(node);
                    fs::File::create(&dest).map_err(io("/dev node"))?;
                    let host = PathBuf::from("/dev").join(node);
                    mounted(Some(&host), &dest, None, MsFlags::MS_BIND, None)?;
                }
            }
            kind => {
                let mut flags = MsFlags::empty();
                let mut data = Vec::new();
                for o in &m.options {
                    match o.as_str() {
                        "nosuid" => flags |= MsFlags::MS_NOSUID,
                        "nodev" => flags |= MsFlags::MS_NODEV,
                        "noexec" => flags |= MsFlags::MS_NOEXEC,
                        "ro" => flags |= MsFlags::MS_RDONLY,
                        "rw" => {}
                        other => data.push(other.to_owned()),
                    }
                }
                let data = data.join(",");
                let source = m.source.clone().unwrap_or_else(|| PathBuf::from(kind));
                mounted(
                    Some(&source),
                    &target,
                    Some(kind),
                    flags,
                    (!data.is_empty()).then_some(data.as_str()),
                )?;
            }
        }
    }

    if let Some(line) = &plan.binfmt {
        let dir = plan.scratch.join("binfmt_misc");
        fs::create_dir(&dir).map_err(io("binfmt_misc dir"))?;
        mounted(
            Some(Path::new("binfmt_misc")),
            &dir,
            Some("binfmt_misc"),
            MsFlags::empty(),
            None,
        )?;
        // One instance per user namespace: registered by the first container only.
        let name = line.split(':').nth(1).unwrap_or_default();
        if !dir.join(name).exists() {
            fs::write(dir.join("register"), line).map_err(io("binfmt_misc register"))?;
        }
    }

    if plan.readonly_root {
        // runc makes the root read-only after the mounts (`oci.WithRootFSReadonly`).
        remount_ro(&root, false)?;
    }
    fs::write(&plan.report, serde_json::to_vec(&report).unwrap()).map_err(io("report"))?;
    Ok(root)
}
