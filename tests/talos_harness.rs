//! A Talos node, as faithfully as one machine without Talos allows (see
//! tests/talos_harness/talos.rs for each Talos behaviour mirrored and where Talos does
//! it, and tests/talos_harness/runtime.rs for the container runtime).
//!
//! The *built* extension archive (`make extension`, else one assembled here from the musl
//! build) is unpacked for one platform, as an installer does: the platform's manifest
//! from the OCI index, its layers; the tree must be manifest.yaml + rootfs/. Its shipped
//! service spec is loaded as Talos loads it and the service started as Talos starts it,
//! in fresh mount and pid namespaces with the read-only container rootfs, the spec's
//! mounts (host paths in a temporary host tree), the ExtensionServiceConfig's files and
//! environment, `restart: untilSuccess`. Then the webhook is served either by the
//! DaemonSet's exact server command (from the built server image, as uid 65532, the host
//! directory read-only at its mountPath) or by the extension itself (`SERVE=true`), and
//! kube-apiserver's TokenReview goes through the generated kubeconfig, STS answered by the
//! emulator. arm64 runs under qemu-user, registered with binfmt_misc inside the test's own
//! user namespace.
//!
//! Needs root, util-linux (`unshare`, `nsenter`), iproute2, tar, and for arm64
//! qemu-user-static. Without the archive (and without a musl build to make one) the tests
//! skip with a notice, unless `REQUIRE_EXTENSION_BUILD` or `CI` is set: then they fail.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on setup failure by design

mod common;
#[path = "talos_harness/oci.rs"]
mod oci;
#[path = "talos_harness/runtime.rs"]
mod runtime;
#[path = "talos_harness/talos.rs"]
mod talos;

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::docs::{daemonset, readme_extension_service_config};
use common::sts_emulator::{Identity, StsEmulator};
use common::webhook::Webhook;
use common::{ACCESS_KEY_ID, CLUSTER_ID, REGION, SECRET_ACCESS_KEY, STS_HOST, TestEnv};
use runtime::Mount;
use talos::{Extension, Node, Outcome, ServiceConfig};

const SPEC: &str = include_str!("../extension/aws-iam-authenticator.yaml");
const QEMU_AARCH64: &str = "/usr/bin/qemu-aarch64-static";

/// The identity the README's mapping is for: its role, assumed with session `alice`.
const ACCOUNT: &str = "111122223333";
const ASSUMED_ARN: &str = "arn:aws:sts::111122223333:assumed-role/KubernetesAdmin/alice";
const ROLE_ID: &str = "AROAEXAMPLEKUBEADMIN";

/// The state directory on the node (the spec's mount source, the DaemonSet's hostPath).
const HOST_STATE_DIR: &str = "/var/lib/aws-iam-authenticator";

/// Talos waits 5 s between runs; the harness keeps the rule and shortens the wait.
const RESTART_INTERVAL: Duration = Duration::from_millis(200);

/// The container runtime's side: this binary, started by `runtime::Namespaces::spawn`
/// inside the container's namespaces. An ordinary test run has no plan and does nothing.
#[test]
fn container_runtime_stage() {
    let Some(plan) = std::env::var_os(runtime::STAGE_VAR) else {
        return;
    };
    match runtime::stage(Path::new(&plan)) {
        Ok(never) => match never {},
        Err(e) => panic!("container runtime: {e}"),
    }
}

// ---- The archives ----

fn required() -> bool {
    ["REQUIRE_EXTENSION_BUILD", "CI"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}

/// Under `make test` and CI a missing piece is a failure; elsewhere a loud skip.
fn cannot_run(why: &str) {
    assert!(!required(), "{why}");
    eprintln!("SKIPPED: the Talos harness did not run: {why}");
}

fn version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

#[derive(Debug)]
struct Archives {
    extension: PathBuf,
    image: Option<PathBuf>,
    _built: Option<tempfile::TempDir>,
}

/// The spec inside an extension archive (its amd64 image), to tell a stale archive.
fn archive_spec(archive: &Path) -> Result<String, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let layout = oci::Layout::extract(archive, &tmp.path().join("layout"))?;
    let image = layout.unpack("amd64", &tmp.path().join("root"))?;
    let ext = Extension::load(&image.root)?;
    Ok(ext.spec_text)
}

/// The musl binary the fallback packages (as tests/extension.rs finds it).
fn musl_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AWS_IAM_AUTHENTICATOR_MUSL_BIN") {
        return Some(PathBuf::from(p));
    }
    let target = Path::new(env!("CARGO_BIN_EXE_aws-iam-authenticator"))
        .parent()?
        .parent()?
        .to_owned();
    ["dist", "release"]
        .iter()
        .map(|p| {
            target
                .join("x86_64-unknown-linux-musl")
                .join(p)
                .join("aws-iam-authenticator")
        })
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
}

fn find_archives() -> Result<Archives, String> {
    let dist = std::env::var_os("AWS_IAM_AUTHENTICATOR_DIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join("dist"));
    let extension = dist.join(format!(
        "aws-iam-authenticator-extension-{}.oci.tar",
        version()
    ));
    let image = dist.join(format!("aws-iam-authenticator-{}.oci.tar", version()));
    let mut stale = None;
    if extension.is_file() {
        match archive_spec(&extension) {
            Ok(text) if text == SPEC => {
                return Ok(Archives {
                    extension,
                    image: image.is_file().then_some(image),
                    _built: None,
                });
            }
            Ok(_) => stale = Some(format!("{} ships another spec", extension.display())),
            Err(e) => return Err(format!("{}: {e}", extension.display())),
        }
    }
    // No (current) `make extension` output: assemble today's archives from the musl build.
    let why = stale.unwrap_or_else(|| format!("no {}", extension.display()));
    let bin = musl_binary().ok_or_else(|| {
        format!("{why}, and no x86_64-unknown-linux-musl build to package (run `make extension`)")
    })?;
    let out = tempfile::tempdir().map_err(|e| e.to_string())?;
    for script in ["build-extension.sh", "build-image.sh"] {
        let run = Command::new(common::repo_root().join("scripts").join(script))
            .arg(&bin)
            .arg(out.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !run.status.success() {
            return Err(format!(
                "{why}; scripts/{script} {} failed: {}",
                bin.display(),
                String::from_utf8_lossy(&run.stderr)
            ));
        }
    }
    Ok(Archives {
        extension: out.path().join(format!(
            "aws-iam-authenticator-extension-{}.oci.tar",
            version()
        )),
        image: Some(
            out.path()
                .join(format!("aws-iam-authenticator-{}.oci.tar", version())),
        ),
        _built: Some(out),
    })
}

fn archives() -> Result<&'static Archives, String> {
    static ARCHIVES: OnceLock<Result<Archives, String>> = OnceLock::new();
    ARCHIVES
        .get_or_init(find_archives)
        .as_ref()
        .map_err(Clone::clone)
}

// ---- A node with the extension installed ----

/// A node of one architecture, the extension unpacked from the archive, STS emulated on
/// the node's network.
struct Setup {
    node: Node,
    ext: Extension,
    /// The server image's root and config, when the archive has it.
    image: Option<oci::Image>,
    sts: StsEmulator,
}

fn setup(arch: &str) -> Option<Setup> {
    if !nix::unistd::geteuid().is_root() {
        cannot_run("not root: the harness needs user, mount, pid and network namespaces");
        return None;
    }
    for tool in ["unshare", "nsenter", "ip", "tar"] {
        if Command::new(tool).arg("--version").output().is_err() {
            cannot_run(&format!("{tool} is missing"));
            return None;
        }
    }
    let archives = match archives() {
        Ok(a) => a,
        Err(e) => {
            cannot_run(&e);
            return None;
        }
    };
    // A platform the build did not make is skipped, not failed: `make test` builds the
    // platforms it exports in AWS_IAM_AUTHENTICATOR_PLATFORMS, and the fallback above only
    // the x86-64 one. A platform the build says it made must be in the archive.
    let requested = std::env::var("AWS_IAM_AUTHENTICATOR_PLATFORMS")
        .ok()
        .map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
    let staging = tempfile::tempdir().unwrap();
    let layout = oci::Layout::extract(&archives.extension, &staging.path().join("layout")).unwrap();
    let offered: Vec<String> = layout
        .manifests()
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    if !offered.contains(&format!("linux/{arch}")) {
        let why = format!(
            "{} has no linux/{arch} image (it has {offered:?})",
            archives.extension.display()
        );
        match &requested {
            Some(r) if r.iter().any(|p| p == arch) => panic!("{why}"),
            Some(_) => eprintln!("SKIPPED: {why}: not among AWS_IAM_AUTHENTICATOR_PLATFORMS"),
            None if archives._built.is_some() => {
                eprintln!("SKIPPED: {why}: build the multi-platform archive with `make extension`");
            }
            None => cannot_run(&why),
        }
        return None;
    }
    let binfmt = match arch {
        "amd64" => None,
        "arm64" => {
            if !Path::new(QEMU_AARCH64).exists() {
                cannot_run(&format!(
                    "{QEMU_AARCH64} is missing (apt-get install qemu-user-static)"
                ));
                return None;
            }
            Some(runtime::qemu_aarch64_binfmt(Path::new(QEMU_AARCH64)))
        }
        other => panic!("no such platform {other}"),
    };
    let node = Node::new(binfmt);
    let work = node.dir.path().join("images");
    let image = layout
        .unpack(arch, &work.join("extension"))
        .unwrap_or_else(|e| panic!("{}: {e}", archives.extension.display()));
    drop(staging);
    // extensions.Load(): only manifest.yaml and rootfs/ at the image root.
    let mut top: Vec<String> = fs::read_dir(&image.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["manifest.yaml", "rootfs"]);
    let ext = Extension::load(&image.root).unwrap();
    assert_eq!(ext.spec_text, SPEC, "the archive ships another spec");
    // The entrypoint is of the platform's architecture (ELF e_machine).
    let entry = ext
        .container_root
        .join(ext.spec.container.entrypoint.trim_start_matches('/'));
    assert_eq!(elf_machine(&entry), arch, "{}", entry.display());

    let image = archives.image.as_ref().and_then(|a| {
        let layout = oci::Layout::extract(a, &work.join("image-layout")).unwrap();
        match layout.unpack(arch, &work.join("image")) {
            Ok(i) => Some(i),
            Err(e) => {
                eprintln!("NOTE: {e}: the DaemonSet runs the extension's binary");
                None
            }
        }
    });

    // STS on the node's network at the real host's port, which the node's /etc/hosts
    // resolves there; the node's CA roots are the emulator's CA.
    let sts = node
        .ns
        .in_netns(|| StsEmulator::start_with(None, 443).unwrap());
    sts.add_identity(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Identity::new(ASSUMED_ARN, ACCOUNT, format!("{ROLE_ID}:alice")),
    );
    fs::write(
        node.host("/etc/hosts"),
        format!("127.0.0.1 localhost\n::1 localhost\n127.0.0.1 {STS_HOST}\n"),
    )
    .unwrap();
    fs::write(
        node.host("/etc/ssl/certs/ca-certificates.crt"),
        sts.ca_pem(),
    )
    .unwrap();
    Some(Setup {
        node,
        ext,
        image,
        sts,
    })
}

/// "amd64" or "arm64" from an ELF header's e_machine.
fn elf_machine(path: &Path) -> &'static str {
    let head = fs::read(path).unwrap();
    assert_eq!(&head[..4], b"\x7fELF");
    match u16::from_le_bytes([head[18], head[19]]) {
        62 => "amd64",
        183 => "arm64",
        other => panic!("{}: ELF machine {other}", path.display()),
    }
}

/// Where the test's STS CA is mounted in the pod (the one test-only addition).
const POD_STS_CA: &str = "/run/aws-iam-authenticator-test/sts-ca.pem";

/// Starts the DaemonSet's server as kubelet and containerd would on the node.
fn start_daemonset_pod(s: &Setup) -> runtime::Container {
    let pod = daemonset();
    assert_eq!(pod.host_path, HOST_STATE_DIR);
    // The server image's entrypoint and environment (CRI: image env, then the
    // container's, which the DaemonSet leaves empty), else the extension's binary.
    let (rootfs, mut args, env) = match &s.image {
        Some(image) => {
            let c = &image.config["config"];
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect()
            };
            assert_eq!(c["User"], format!("{}:{}", pod.uid, pod.gid));
            let mut env = strings(&c["Env"]);
            if env.is_empty() {
                env = talos::CONTAINERD_DEFAULT_ENV
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
            }
            (image.root.clone(), strings(&c["Entrypoint"]), env)
        }
        None => (
            s.ext.container_root.clone(),
            vec![s.ext.spec.container.entrypoint.clone()],
            talos::CONTAINERD_DEFAULT_ENV
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        ),
    };
    args.extend(pod.args.iter().cloned());
    // The test's one addition: trust the emulator's CA (the image's roots cannot).
    args.push(format!("--sts-ca-file={POD_STS_CA}"));
    let mut plan = s.node.plan("daemonset", &rootfs, args, env);
    plan.uid = pod.uid;
    plan.gid = pod.gid;
    plan.readonly_root = pod.read_only_root;
    // kubelet gives a hostNetwork pod the node's /etc/hosts (base mounts), and the
    // hostPath volume at its mountPath.
    let ro: &[&str] = if pod.read_only {
        &["rbind", "ro"]
    } else {
        &["rbind", "rw"]
    };
    plan.mounts.push(Mount::bind(
        &s.node.host(&pod.host_path),
        &pod.mount_path,
        ro,
    ));
    plan.mounts
        .push(Mount::bind(s.sts.ca_file(), POD_STS_CA, &["rbind", "ro"]));
    s.node.start(&plan)
}

/// Runs `f` inside the node's network namespace on a current-thread runtime.
fn on_node<T: Send + 'static>(
    node: &Node,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    node.ns.in_netns(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
}

async fn plain_get(addr: SocketAddr, path: &str) -> Option<u16> {
    Some(common::http::plain_get(addr, path).await?.0.as_u16())
}

/// Waits (bounded) for the server's readiness probe on the node's default health port.
fn wait_ready(node: &Node, server: &mut runtime::Container) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = server.try_wait() {
            panic!(
                "the server exited ({status}) before it was ready:\n{}",
                server.logs()
            );
        }
        let health: SocketAddr = "127.0.0.1:21363".parse().unwrap();
        if on_node(node, plain_get(health, "/readyz")) == Some(200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready after 60 s:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `token` for the README's cluster, as a client would mint it.
fn token(access_key: &str) -> String {
    let mut client = TestEnv::new();
    client.set("AWS_REGION", REGION);
    client.set("AWS_ACCESS_KEY_ID", access_key);
    let out = client.run(&["token", "-i", CLUSTER_ID, "--token-only"]);
    assert!(out.status.success(), "{}", common::describe(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// kube-apiserver's TokenReviews through the node's webhook kubeconfig: the README's
/// identity is allowed as its mapping says, a key STS does not know is denied.
fn reviews_through_the_kubeconfig(s: &Setup) {
    let kubeconfig = s.node.host(HOST_STATE_DIR).join("kubeconfig.yaml");
    let (good, stranger) = (token(ACCESS_KEY_ID), token("AKIAUNKNOWNEXAMPLE00"));
    let (allowed, denied) = on_node(&s.node, async move {
        let webhook = Webhook::from_kubeconfig(&kubeconfig);
        let a = webhook
            .review("authentication.k8s.io/v1", &good)
            .await
            .json();
        let d = webhook
            .review("authentication.k8s.io/v1", &stranger)
            .await
            .json();
        (a, d)
    });
    assert_eq!(allowed["status"]["authenticated"], true, "{allowed}");
    let user = &allowed["status"]["user"];
    assert_eq!(user["username"], "kubernetes-admin:alice", "{allowed}");
    assert_eq!(user["groups"], json!(["system:masters"]), "{allowed}");
    assert_eq!(user["extra"]["arn"], json!([ASSUMED_ARN]));
    assert_eq!(denied["status"]["authenticated"], false, "{denied}");
    assert!(s.sts.request_count() >= 2);
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// What a successful `talos-init` leaves on the node.
fn assert_initialised(s: &Setup) {
    let dir = s.node.host(HOST_STATE_DIR);
    assert_eq!(
        file_names(&dir),
        ["cert.pem", "config.yaml", "key.pem", "kubeconfig.yaml"]
    );
    // key.pem belongs to the DaemonSet's user (uid 65532 inside is 65532 here).
    let key = fs::metadata(dir.join("key.pem")).unwrap();
    assert_eq!(key.uid(), daemonset().uid);
    assert_eq!(key.mode() & 0o777, 0o600);
}

/// Every mount of the shipped spec has its mount point in the extension's rootfs, and so
/// has the directory of every configFiles `mountPath`: runc would create them in the
/// overlay Talos mounts over it, but the image should not rely on that.
fn assert_mount_points_shipped(s: &Setup, run: &runtime::Container, config: &ServiceConfig) {
    let created = run.report().created_mount_points;
    for m in &s.ext.spec.container.mounts {
        assert!(
            !created.contains(&m.destination),
            "{} is not in the extension's rootfs",
            m.destination
        );
    }
    for (_, mount_path) in &config.config_files {
        let dir = Path::new(mount_path).parent().unwrap();
        assert!(
            s.ext
                .container_root
                .join(dir.strip_prefix("/").unwrap())
                .is_dir(),
            "{} is not in the extension's rootfs",
            dir.display()
        );
    }
}

// ---- The tests ----

/// README's configuration; the DaemonSet serves.
fn daemonset_model(arch: &str) {
    let Some(s) = setup(arch) else { return };
    let config = ServiceConfig::from_document(&readme_extension_service_config());
    let (outcome, runs) = s
        .ext
        .run_until_success(&s.node, Some(&config), 3, RESTART_INTERVAL);
    let last = runs
        .last()
        .map(runtime::Container::logs)
        .unwrap_or_default();
    assert_eq!(outcome, Outcome::Finished { attempts: 1 }, "{last}");
    assert_mount_points_shipped(&s, &runs[0], &config);
    assert_initialised(&s);

    let mut pod = start_daemonset_pod(&s);
    wait_ready(&s.node, &mut pod);
    reviews_through_the_kubeconfig(&s);
    // kubelet stops it with SIGTERM: it drains and exits 0.
    pod.terminate();
    let status = pod.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", pod.logs());
}

#[test]
fn daemonset_model_amd64() {
    daemonset_model("amd64");
}

#[test]
fn daemonset_model_arm64() {
    daemonset_model("arm64");
}

/// A node with the extension and no ExtensionServiceConfig: the service must finish
/// (boot waits for it), writing nothing.
#[test]
fn without_extension_service_config_the_service_finishes_and_writes_nothing() {
    let Some(s) = setup("amd64") else { return };
    let (outcome, runs) = s.ext.run_until_success(&s.node, None, 3, RESTART_INTERVAL);
    let logs = runs
        .last()
        .map(runtime::Container::logs)
        .unwrap_or_default();
    assert_eq!(outcome, Outcome::Finished { attempts: 1 }, "{logs}");
    assert_eq!(
        file_names(&s.node.host(HOST_STATE_DIR)),
        Vec::<String>::new()
    );
    let out = format!("{}{}", runs[0].stdout(), runs[0].stderr());
    assert_eq!(out.lines().count(), 1, "{logs}");
}

/// A patch applied twice repeats the variables (containerd keeps both): the last value
/// of each wins.
#[test]
fn repeated_variables_the_last_value_wins() {
    let Some(s) = setup("amd64") else { return };
    let mut config = ServiceConfig::from_document(&readme_extension_service_config());
    let original = config.environment.clone();
    config.environment = vec![
        "CLUSTER_ID=an-older-cluster".to_owned(),
        "HOSTNAME=node-1.example".to_owned(),
    ];
    config.environment.extend(original.iter().cloned());
    config.environment.push("HOSTNAME=127.0.0.1".to_owned());
    // The container gets both copies of each, in order.
    let plan = s.ext.runner(&s.node, Some(&config));
    let cluster_ids: Vec<_> = plan
        .env
        .iter()
        .filter(|e| e.starts_with("CLUSTER_ID="))
        .collect();
    assert_eq!(
        cluster_ids,
        [
            "CLUSTER_ID=an-older-cluster",
            &format!("CLUSTER_ID={CLUSTER_ID}")
        ]
    );
    let (outcome, runs) = s
        .ext
        .run_until_success(&s.node, Some(&config), 2, RESTART_INTERVAL);
    let logs = runs
        .last()
        .map(runtime::Container::logs)
        .unwrap_or_default();
    assert_eq!(outcome, Outcome::Finished { attempts: 1 }, "{logs}");
    assert_initialised(&s);
    let kubeconfig =
        fs::read_to_string(s.node.host(HOST_STATE_DIR).join("kubeconfig.yaml")).unwrap();
    assert!(
        kubeconfig.contains("https://127.0.0.1:21362/"),
        "{kubeconfig}"
    );
    let config_yaml: Value = serde_saphyr::from_str(
        &fs::read_to_string(s.node.host(HOST_STATE_DIR).join("config.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(config_yaml["clusterID"], CLUSTER_ID);
}

/// `restart: untilSuccess`: a configuration missing CLUSTER_ID fails every run, each
/// retried after the interval, writing nothing; a corrected configuration (Talos restarts
/// the service on a changed ExtensionServiceConfig) then finishes.
#[test]
fn a_failing_run_is_retried_until_a_corrected_config_succeeds() {
    let Some(s) = setup("amd64") else { return };
    let broken = ServiceConfig {
        environment: vec!["HOSTNAME=127.0.0.1".to_owned()],
        config_files: Vec::new(),
    };
    let (outcome, runs) = s
        .ext
        .run_until_success(&s.node, Some(&broken), 2, RESTART_INTERVAL);
    assert_eq!(outcome, Outcome::Failing { attempts: 2 });
    for run in &runs {
        assert!(run.stderr().contains("CLUSTER_ID"), "{}", run.logs());
    }
    assert_eq!(
        file_names(&s.node.host(HOST_STATE_DIR)),
        Vec::<String>::new()
    );

    let fixed = ServiceConfig::from_document(&readme_extension_service_config());
    let (outcome, runs) = s
        .ext
        .run_until_success(&s.node, Some(&fixed), 2, RESTART_INTERVAL);
    let logs = runs
        .last()
        .map(runtime::Container::logs)
        .unwrap_or_default();
    assert_eq!(outcome, Outcome::Finished { attempts: 1 }, "{logs}");
    assert_initialised(&s);
}

/// `SERVE=true`: the extension serves the webhook itself (STS through the node's
/// /etc/hosts and CA roots, mounted as the spec says); SIGTERM from Talos drains it and
/// it exits 0. With `LOG_FORMAT=json` every line it prints is JSON.
fn serve_model(arch: &str) {
    let Some(s) = setup(arch) else { return };
    let mut config = ServiceConfig::from_document(&readme_extension_service_config());
    // As the README's serve-mode section says: AWS_REGION off EC2.
    config.environment.push("SERVE=true".to_owned());
    config.environment.push(format!("AWS_REGION={REGION}"));
    config.environment.push("LOG_FORMAT=json".to_owned());
    let mut service = s.ext.start(&s.node, Some(&config));
    wait_ready(&s.node, &mut service);
    assert_mount_points_shipped(&s, &service, &config);
    assert_initialised(&s);
    reviews_through_the_kubeconfig(&s);
    service.terminate();
    let status = service.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", service.logs());
    for line in service.stdout().lines().chain(service.stderr().lines()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not JSON: {line}\n{}",
            service.logs()
        );
    }
}

#[test]
fn serve_model_amd64() {
    serve_model("amd64");
}

#[test]
fn serve_model_arm64() {
    serve_model("arm64");
}

#[test]
fn environment_is_assembled_as_containerd_does() {
    let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let defaults = v(&["PATH=/bin", "A=1"]);
    assert_eq!(
        talos::replace_or_append_env(&defaults, &v(&["A=2", "B=1", "A=3", "B=2", "PATH"])),
        v(&["A=3", "B=1", "B=2"])
    );
}
