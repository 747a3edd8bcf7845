//! What a Talos node does with an extension service, mirrored step by step from
//! siderolabs/talos (main; the same in release-1.10 and later unless noted):
//!
//! - the spec is decoded leniently (`yaml.NewDecoder(f).Decode(&spec)`, unknown keys are
//!   dropped) and validated (internal/app/machined/pkg/controllers/runtime/
//!   extension_service.go `loadSpec`, pkg/machinery/extensions/services `Validate`);
//! - the service waits for its `depends` conditions (internal/app/machined/pkg/system/
//!   services/extension.go `Condition`, `DependsOn`; system/service_runner.go waits for
//!   them before `PreFunc` and `Runner`);
//! - `Runner()` creates every missing mount source with `os.MkdirAll(source, 0o700)`,
//!   appends a read-only bind mount of each ExtensionServiceConfig file at its
//!   `mountPath`, from `/system/overlays/extensions/<name>/<mountPath with / → ->`, and the
//!   ExtensionServiceConfig's environment after the spec's;
//! - the files are written 0644 in a 0755 directory by internal/app/machined/pkg/
//!   controllers/runtime/extension_service_config_files.go;
//! - containerd builds `process.env` from its default `PATH`, then Talos's system
//!   environment (`runner.WithEnv(environment.Get(...))`, internal/pkg/environment), then
//!   the service's list, each step through `replaceOrAppendEnvValues` (Talos's copy:
//!   internal/app/machined/pkg/system/runner/containerd/opts.go; the calls:
//!   runner/containerd/containerd.go `newOCISpecOpts` and services/extension.go
//!   `getOCIOptions`, both `oci.WithEnv`);
//! - `/etc/hosts` and `/etc/resolv.conf` are the host's, bound read-only
//!   (`oci.WithHostHostsFile`, `oci.WithHostResolvconf` in `newOCISpecOpts`); the root is
//!   read-only unless `security.writeableRootfs` (`oci.WithRootFSReadonly`);
//! - `restart: untilSuccess` reruns a failed run after `RestartInterval` (5 s) until one
//!   exits 0, which is Finished (internal/app/machined/pkg/system/runner/restart/
//!   restart.go `Run`); stopping sends SIGTERM to the task, SIGKILL after 10 s
//!   (runner/containerd/containerd.go `Run`, runner/runner.go `GracefulShutdownTimeout`).

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::runtime::{Container, Mount, Namespaces, Plan};

/// Where Talos reads extension service specs (constants.ExtensionServiceConfigPath).
pub const SPEC_DIR: &str = "usr/local/etc/containers";
/// Where each service's container rootfs lives (constants.ExtensionServiceRootfsPath).
pub const ROOTFS_DIR: &str = "usr/local/lib/containers";
/// Where ExtensionServiceConfig files are written (constants.ExtensionServiceUserConfigPath).
pub const USER_CONFIG_DIR: &str = "system/overlays/extensions";

/// The node's services that are up when extension services start (a booted control
/// plane node has more; these are the ones a spec here may depend on).
pub const UP_SERVICES: &[&str] = &["containerd", "cri", "udevd", "apid", "machined"];

/// containerd's default process environment (`defaultUnixEnv`, also in Talos's
/// runner/containerd/opts.go).
pub const CONTAINERD_DEFAULT_ENV: &[&str] =
    &["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];

/// `extservices.Spec`, the keys Talos reads; anything else is ignored as Talos ignores it.
#[derive(Debug, Clone, Deserialize)]
pub struct Spec {
    pub name: String,
    #[serde(default)]
    pub depends: Vec<Dependency>,
    pub container: ServiceContainer,
    #[serde(default)]
    pub restart: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServiceContainer {
    #[serde(default)]
    pub entrypoint: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub environment: Vec<String>,
    #[serde(default, rename = "environmentFile")]
    pub environment_file: String,
    #[serde(default)]
    pub mounts: Vec<SpecMount>,
    #[serde(default)]
    pub security: Security,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Security {
    #[serde(default, rename = "writeableRootfs")]
    pub writeable_rootfs: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SpecMount {
    pub destination: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Dependency {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub configuration: bool,
    // `network` and `time` conditions hold on the test node: not read.
}

impl Spec {
    /// The part of `Spec.Validate()` that decides whether Talos loads the service.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("name can't be empty".into());
        }
        if self.container.entrypoint.is_empty() {
            return Err("container endpoint can't be empty".into());
        }
        if !["always", "never", "untilSuccess"].contains(&self.restart.as_str()) {
            return Err(format!("restart kind is invalid: {:?}", self.restart));
        }
        Ok(())
    }
}

/// An ExtensionServiceConfig document.
#[derive(Debug, Clone, Default)]
pub struct ServiceConfig {
    pub environment: Vec<String>,
    /// (content, mountPath)
    pub config_files: Vec<(String, String)>,
}

impl ServiceConfig {
    pub fn from_document(doc: &Value) -> Self {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        };
        Self {
            environment: strings(&doc["environment"]),
            config_files: doc["configFiles"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    (
                        f["content"].as_str().unwrap().to_owned(),
                        f["mountPath"].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
        }
    }
}

/// containerd's `replaceOrAppendEnvValues` (containerd pkg/oci/spec_opts.go, what
/// `oci.WithEnv` applies): a key the defaults have is replaced in place (the last override
/// wins), a new key is appended every time it comes (so a new key repeated in the
/// overrides appears twice); an override without `=` unsets a default. Talos's own copy
/// (runner/containerd/opts.go, for image configs) omits the unset rule.
pub fn replace_or_append_env(defaults: &[String], overrides: &[String]) -> Vec<String> {
    let mut results: Vec<Option<String>> = defaults.iter().cloned().map(Some).collect();
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_owned();
    let cache: std::collections::HashMap<String, usize> = defaults
        .iter()
        .enumerate()
        .map(|(i, e)| (key(e), i))
        .collect();
    for value in overrides {
        let k = key(value);
        match (value.contains('='), cache.get(&k)) {
            (false, Some(&i)) => results[i] = None,
            (false, None) => {}
            (true, Some(&i)) => results[i] = Some(value.clone()),
            (true, None) => results.push(Some(value.clone())),
        }
    }
    results.into_iter().flatten().collect()
}

/// A node: a host filesystem tree standing for `/`, and the namespaces its services run
/// in.
#[derive(Debug)]
pub struct Node {
    pub dir: tempfile::TempDir,
    pub ns: Namespaces,
    /// Talos's system environment (`environment.Get`: the `talos.environment` kernel
    /// arguments and `machine.env`).
    pub talos_env: Vec<String>,
    /// The binfmt_misc registration foreign-architecture containers need.
    pub binfmt: Option<String>,
    runs: std::cell::Cell<u32>,
}

impl Node {
    pub fn new(binfmt: Option<String>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("talos-node")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let node = Self {
            dir,
            ns: Namespaces::new(),
            talos_env: Vec::new(),
            binfmt,
            runs: std::cell::Cell::new(0),
        };
        fs::create_dir_all(node.host("/etc/ssl/certs")).unwrap();
        fs::create_dir_all(node.host("/var/lib")).unwrap();
        fs::write(node.host("/etc/resolv.conf"), "nameserver 127.0.0.53\n").unwrap();
        node
    }

    /// `path` on the node (an absolute path) in the host tree.
    pub fn host(&self, path: &str) -> PathBuf {
        self.dir
            .path()
            .join("host")
            .join(path.trim_start_matches('/'))
    }

    /// A fresh directory for one container's plan, scratch and logs.
    pub fn run_dir(&self, name: &str) -> (PathBuf, String) {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let id = format!("{n:02}-{name}");
        let dir = self.dir.path().join("runs").join(&id);
        fs::create_dir_all(dir.join("scratch")).unwrap();
        (dir, id)
    }

    /// The mounts every container gets before its own: containerd's defaults that matter
    /// here (`/proc`, `/dev`), then the host's `/etc/hosts` and `/etc/resolv.conf`.
    /// Not mounted: /sys, /dev/pts, /dev/mqueue, cgroups (nothing here reads them).
    pub fn base_mounts(&self) -> Vec<Mount> {
        vec![
            Mount {
                destination: "/proc".into(),
                kind: "proc".into(),
                source: None,
                options: vec!["nosuid".into(), "noexec".into(), "nodev".into()],
            },
            Mount {
                destination: "/dev".into(),
                kind: "dev".into(),
                source: None,
                options: vec![],
            },
            Mount::bind(&self.host("/etc/hosts"), "/etc/hosts", &["rbind", "ro"]),
            Mount::bind(
                &self.host("/etc/resolv.conf"),
                "/etc/resolv.conf",
                &["rbind", "ro"],
            ),
        ]
    }

    /// A plan with the node's defaults: the scratch dir and log files of a new run.
    pub fn plan(&self, name: &str, rootfs: &Path, args: Vec<String>, env: Vec<String>) -> Plan {
        let (dir, id) = self.run_dir(name);
        Plan {
            rootfs: rootfs.to_owned(),
            scratch: dir.join("scratch"),
            readonly_root: true,
            mounts: self.base_mounts(),
            args,
            env,
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            stdout: dir.join(format!("{id}.stdout")),
            stderr: dir.join(format!("{id}.stderr")),
            report: dir.join(format!("{id}.report.json")),
            binfmt: self.binfmt.clone(),
        }
    }

    /// `plan` again, with a new run's scratch and log files.
    pub fn rerun(&self, plan: &Plan) -> Plan {
        let fresh = self.plan("rerun", &plan.rootfs, Vec::new(), Vec::new());
        Plan {
            scratch: fresh.scratch,
            stdout: fresh.stdout,
            stderr: fresh.stderr,
            report: fresh.report,
            ..plan.clone()
        }
    }

    pub fn start(&self, plan: &Plan) -> Container {
        let dir = plan.scratch.parent().unwrap().to_owned();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        self.ns.spawn(plan, &dir, &name)
    }
}

/// The extension as the installer lays it out on the node: its spec and its rootfs.
#[derive(Debug, Clone)]
pub struct Extension {
    pub spec: Spec,
    /// The spec file's text.
    pub spec_text: String,
    /// `/usr/local/lib/containers/<name>` of the extension's tree.
    pub container_root: PathBuf,
}

/// A service run's end, as `talosctl services` would show it.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Waiting for a `depends` condition that never came.
    Waiting(String),
    /// Exited 0 after `attempts` runs.
    Finished { attempts: u32 },
    /// Every one of `attempts` runs failed; Talos would go on retrying.
    Failing { attempts: u32 },
}

impl Extension {
    /// Loads the one spec of the extension tree `root` (manifest.yaml + rootfs/) as the
    /// ExtensionServiceController does.
    pub fn load(root: &Path) -> Result<Self, String> {
        let dir = root.join("rootfs").join(SPEC_DIR);
        let mut specs = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = fs::read_to_string(&path).map_err(|e| e.to_string())?;
                let spec: Spec = serde_saphyr::from_str(&text)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                spec.validate()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                specs.push((spec, text));
            }
        }
        let [(spec, spec_text)] = <[_; 1]>::try_from(specs)
            .map_err(|s| format!("{} service specs in {}", s.len(), dir.display()))?;
        let container_root = root.join("rootfs").join(ROOTFS_DIR).join(&spec.name);
        Ok(Self {
            spec,
            spec_text,
            container_root,
        })
    }

    /// The first `depends` condition that does not hold on this node, if any. The
    /// services in [`UP_SERVICES`], network readiness and time sync are taken as up.
    pub fn waiting_for(&self, node: &Node, config: Option<&ServiceConfig>) -> Option<String> {
        if !self.spec.container.environment_file.is_empty()
            && !node.host(&self.spec.container.environment_file).exists()
        {
            return Some(format!("file {}", self.spec.container.environment_file));
        }
        for dep in &self.spec.depends {
            if !dep.path.is_empty() && !node.host(&dep.path).exists() {
                return Some(format!("file {}", dep.path));
            }
            if !dep.service.is_empty() && !UP_SERVICES.contains(&dep.service.as_str()) {
                return Some(format!("service {}", dep.service));
            }
            if dep.configuration && config.is_none() {
                return Some(format!(
                    "extension service config {} to be present",
                    self.spec.name
                ));
            }
        }
        None
    }

    /// The ExtensionServiceConfigFilesController: each file, 0644, under
    /// /system/overlays/extensions/<name>/.
    pub fn write_config_files(&self, node: &Node, config: &ServiceConfig) {
        let dir = node.host(USER_CONFIG_DIR).join(&self.spec.name);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        for (content, mount_path) in &config.config_files {
            let file = dir.join(mount_path.trim_start_matches('/').replace('/', "-"));
            fs::write(&file, content).unwrap();
            fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }

    /// `Runner()`: creates missing mount sources (0700), and returns the OCI spec of
    /// the service's container.
    pub fn runner(&self, node: &Node, config: Option<&ServiceConfig>) -> Plan {
        let c = &self.spec.container;
        let mut mounts = Vec::new();
        for m in &c.mounts {
            let source = node.host(&m.source);
            if !source.exists() {
                fs::create_dir_all(&source).unwrap();
                fs::set_permissions(&source, fs::Permissions::from_mode(0o700)).unwrap();
            }
            mounts.push(Mount {
                destination: m.destination.clone(),
                kind: if m.kind.is_empty() {
                    "bind".into()
                } else {
                    m.kind.clone()
                },
                source: Some(source),
                options: m.options.clone(),
            });
        }
        let mut service_env = c.environment.clone();
        if let Some(config) = config {
            self.write_config_files(node, config);
            let dir = node.host(USER_CONFIG_DIR).join(&self.spec.name);
            for (_, mount_path) in &config.config_files {
                mounts.push(Mount::bind(
                    &dir.join(mount_path.trim_start_matches('/').replace('/', "-")),
                    mount_path,
                    &["ro", "bind"],
                ));
            }
            service_env.extend(config.environment.iter().cloned());
        }
        let defaults: Vec<String> = CONTAINERD_DEFAULT_ENV
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let env = replace_or_append_env(&defaults, &node.talos_env);
        let env = replace_or_append_env(&env, &service_env);
        let mut args = vec![c.entrypoint.clone()];
        args.extend(c.args.iter().cloned());
        let mut plan = node.plan(
            &format!("ext-{}", self.spec.name),
            &self.container_root,
            args,
            env,
        );
        plan.mounts.extend(mounts);
        plan.readonly_root = !c.security.writeable_rootfs;
        plan
    }

    /// Starts the service once (a long-running one: the caller stops it).
    pub fn start(&self, node: &Node, config: Option<&ServiceConfig>) -> Container {
        assert_eq!(self.waiting_for(node, config), None);
        node.start(&self.runner(node, config))
    }

    /// Runs the service as Talos's restarter does with `restart: untilSuccess`: a failed
    /// run is retried after `interval` (Talos: 5 s), at most `max_attempts` runs here.
    /// Returns the outcome and every run (for its logs).
    pub fn run_until_success(
        &self,
        node: &Node,
        config: Option<&ServiceConfig>,
        max_attempts: u32,
        interval: Duration,
    ) -> (Outcome, Vec<Container>) {
        assert_eq!(self.spec.restart, "untilSuccess");
        if let Some(what) = self.waiting_for(node, config) {
            return (Outcome::Waiting(what), Vec::new());
        }
        let plan = self.runner(node, config);
        let mut runs = Vec::new();
        for attempt in 1..=max_attempts {
            if attempt > 1 {
                std::thread::sleep(interval);
            }
            // Each run is a new task of the same spec (its own scratch and logs).
            let run_plan = if attempt == 1 {
                plan.clone()
            } else {
                node.rerun(&plan)
            };
            let mut run = node.start(&run_plan);
            let status = run.wait(Duration::from_secs(60));
            runs.push(run);
            if status.success() {
                return (Outcome::Finished { attempts: attempt }, runs);
            }
        }
        (
            Outcome::Failing {
                attempts: max_attempts,
            },
            runs,
        )
    }
}
