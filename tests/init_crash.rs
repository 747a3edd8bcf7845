//! Crash safety of `init` and `talos-init`: each is killed with SIGKILL at random moments
//! of its run, on a state dir that starts empty and on one holding a complete set.
//!
//! After every kill the state dir holds only complete files that parse: never a partial
//! or empty one. `cert.pem` is the commit point of the pair (whenever it exists, `key.pem`
//! is its key), the kubeconfig trusts that `cert.pem`, and an existing pair is never
//! touched. Temporary files may be left by a kill; the next run that completes removes
//! them, and keeps the certificate (the apiserver's CA) the killed run committed.
//!
//! The moments are drawn from a seeded generator; the seed is printed (set
//! `INIT_CRASH_SEED` to replay one). Each scenario is bounded in iterations and in time.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_iam_authenticator::config::ConfigFile;
use aws_iam_authenticator::kubeconfig;
use aws_iam_authenticator::tls::KeyPair;
use rustls_pki_types::PrivateKeyDer;

use common::process::is_root;
use rustls_pki_types::pem::PemObject;

const BIN: &str = env!("CARGO_BIN_EXE_aws-iam-authenticator");
const FILES: [&str; 4] = ["cert.pem", "key.pem", "kubeconfig.yaml", "config.yaml"];
const MAX_ITERATIONS: u32 = 200;
/// Wall-clock budget of one scenario's kill loop (the machine may be slow and shared:
/// fewer iterations then, never a failure).
const BUDGET: Duration = Duration::from_secs(5);

/// SplitMix64: small, seedable, good enough to spread kill moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

fn seed(scenario: &str) -> u64 {
    let seed = std::env::var("INIT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{scenario}: INIT_CRASH_SEED={seed}");
    seed
}

#[derive(Clone, Copy, Debug)]
enum Tool {
    Init,
    TalosInit,
}

/// The two settings a scenario alternates between: each changes the kubeconfig only.
const VARIANTS: [(&str, &str); 2] = [("21362", "localhost"), ("4443", "127.0.0.1")];

impl Tool {
    /// The command writing the full set into `state`, with settings `variant`.
    fn command(self, state: &Path, variant: usize) -> Command {
        let s = state.display().to_string();
        let (port, hostname) = VARIANTS[variant];
        let mut c = Command::new(BIN);
        match self {
            Tool::Init => {
                c.env_remove("KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID")
                    .args(["init", "-i", "my-cluster", "--state-dir-mode=755"])
                    .arg(format!("--state-dir={s}"))
                    .arg(format!("--generate-kubeconfig={s}/kubeconfig.yaml"))
                    .arg(format!("--write-config={s}/config.yaml"))
                    .arg(format!("--port={port}"));
                if is_root() {
                    c.arg("--key-owner=65532");
                }
            }
            Tool::TalosInit => {
                // The port is not among talos-init's settings; the hostname is.
                c.arg("talos-init")
                    .env_clear()
                    .env("PATH", "/usr/bin:/bin")
                    .env("CLUSTER_ID", "my-cluster")
                    .env("HOSTNAME", hostname)
                    .env("STATE_DIR", &s);
            }
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// The webhook URLs the kubeconfig may hold.
    fn urls(self) -> Vec<String> {
        VARIANTS
            .iter()
            .map(|(port, hostname)| match self {
                Tool::Init => kubeconfig::server_url("localhost", port.parse().unwrap()),
                Tool::TalosInit => kubeconfig::server_url(hostname, 21362),
            })
            .collect()
    }

    fn run_to_completion(self, state: &Path, variant: usize) {
        let mut c = self.command(state, variant);
        let out = c.stderr(Stdio::piped()).output().unwrap();
        assert!(
            out.status.success(),
            "{self:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The longest of three complete runs on fresh state dirs.
    fn run_time(self) -> Duration {
        (0..3)
            .map(|_| {
                let dir = tempfile::tempdir().unwrap();
                let start = Instant::now();
                self.run_to_completion(dir.path(), 0);
                start.elapsed()
            })
            .max()
            .unwrap()
    }

    /// Starts a run and kills it after `delay`. Returns whether it finished first (and
    /// succeeded).
    fn kill_after(self, state: &Path, variant: usize, delay: Duration) -> bool {
        let mut child = self.command(state, variant).spawn().unwrap();
        std::thread::sleep(delay);
        // It may have finished already: then there is nothing to kill.
        let _ = child.kill();
        child.wait().unwrap().success()
    }
}

/// What a state dir holds, checked: every file of ours is complete and parses.
#[derive(Debug, Default)]
struct Snapshot {
    cert: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
    kubeconfig: bool,
    config: bool,
    temps: usize,
}

impl Snapshot {
    /// A short name of the state, for the histogram printed at the end.
    fn label(&self) -> String {
        let mut parts = Vec::new();
        for (present, name) in [
            (self.key.is_some(), "key"),
            (self.cert.is_some(), "cert"),
            (self.kubeconfig, "kubeconfig"),
            (self.config, "config"),
        ] {
            if present {
                parts.push(name);
            }
        }
        if parts.is_empty() {
            parts.push("empty");
        }
        let mut label = parts.join("+");
        if self.temps > 0 {
            label.push_str(&format!(" ({} temp)", self.temps));
        }
        label
    }
}

fn is_temp(name: &str) -> bool {
    FILES.iter().any(|f| {
        name.strip_prefix(&format!(".{f}.tmp."))
            .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

fn check(state: &Path, urls: &[String], context: &str) -> Snapshot {
    let mut snap = Snapshot::default();
    for entry in fs::read_dir(state).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        if is_temp(&name) {
            snap.temps += 1;
            continue;
        }
        assert!(FILES.contains(&name.as_str()), "{context}: stray {name}");
        assert!(meta.is_file(), "{context}: {name} is not a regular file");
        assert_eq!(meta.nlink(), 1, "{context}: {name}");
        let bytes = fs::read(entry.path()).unwrap();
        assert!(!bytes.is_empty(), "{context}: {name} is empty");
        match name.as_str() {
            "key.pem" => {
                PrivateKeyDer::from_pem_slice(&bytes)
                    .unwrap_or_else(|e| panic!("{context}: key.pem does not parse: {e}"));
                snap.key = Some(bytes);
            }
            "cert.pem" => snap.cert = Some(bytes),
            "kubeconfig.yaml" => snap.kubeconfig = true,
            _ => {
                let text = String::from_utf8(bytes).unwrap();
                let c = ConfigFile::parse(&entry.path(), &text)
                    .unwrap_or_else(|e| panic!("{context}: config.yaml: {e}"));
                assert_eq!(
                    c.get_string("clusterID").unwrap().as_deref(),
                    Some("my-cluster"),
                    "{context}"
                );
                snap.config = true;
            }
        }
    }
    // cert.pem is the commit point: its key is always there beside it.
    if let Some(cert) = &snap.cert {
        let key = snap
            .key
            .as_ref()
            .unwrap_or_else(|| panic!("{context}: cert.pem without key.pem"));
        KeyPair {
            cert_pem: String::from_utf8(cert.clone()).unwrap(),
            key_pem: String::from_utf8(key.clone()).unwrap(),
        }
        .certified_key()
        .unwrap_or_else(|e| panic!("{context}: cert.pem and key.pem don't match: {e}"));
    }
    // The kubeconfig is written after the pair and trusts its certificate.
    if snap.kubeconfig {
        let (url, ca) = kubeconfig::read_webhook(&state.join("kubeconfig.yaml"))
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        assert!(urls.contains(&url), "{context}: {url}");
        let cert = snap
            .cert
            .as_ref()
            .unwrap_or_else(|| panic!("{context}: a kubeconfig without cert.pem"));
        assert_eq!(ca.as_bytes(), cert.as_slice(), "{context}: kubeconfig's CA");
    }
    snap
}

fn complete(state: &Path, urls: &[String], context: &str) -> Snapshot {
    let snap = check(state, urls, context);
    assert_eq!(snap.temps, 0, "{context}: temporary files left");
    assert!(
        snap.cert.is_some() && snap.kubeconfig && snap.config,
        "{context}: incomplete set {}",
        snap.label()
    );
    if is_root() {
        let key = fs::metadata(state.join("key.pem")).unwrap();
        assert_eq!(key.uid(), 65532, "{context}: key.pem's owner");
    }
    snap
}

fn clear(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
}

fn report(scenario: &str, iterations: u32, run_time: Duration, seen: &BTreeMap<String, u32>) {
    eprintln!(
        "{scenario}: {iterations} kills, a complete run takes {run_time:?}; states after a kill:"
    );
    for (label, n) in seen {
        eprintln!("  {n:4} × {label}");
    }
}

/// Kills `tool` on a state dir that starts empty. Each kill's run starts from what the
/// last one left (as on a node whose init keeps being killed), until one finishes: that
/// one must leave the complete set and no temporary file, and then the state dir starts
/// empty again. Once a killed run has committed a certificate, it stays.
fn killed_on_an_empty_state_dir(tool: Tool) {
    let scenario = format!("{tool:?} on an empty state dir");
    let mut rng = Rng(seed(&scenario));
    let run_time = tool.run_time();
    let urls = tool.urls();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let mut seen = BTreeMap::new();
    let mut committed: Option<Snapshot> = None;
    let start = Instant::now();
    let mut iterations = 0;
    let mut completions = 0;
    while iterations < MAX_ITERATIONS && start.elapsed() < BUDGET {
        iterations += 1;
        let delay = Duration::from_micros(rng.below(run_time.as_micros() as u64 + 1));
        let context = format!("{scenario}, kill #{iterations} after {delay:?}");
        let finished = tool.kill_after(state, 0, delay);
        let snap = check(state, &urls, &context);
        if let Some(c) = &committed {
            assert_eq!(snap.cert, c.cert, "{context}: the CA changed");
            assert_eq!(snap.key, c.key, "{context}: the key changed");
        }
        if finished {
            complete(state, &urls, &format!("{context}, which finished"));
            completions += 1;
            clear(state);
            committed = None;
        } else {
            *seen.entry(snap.label()).or_insert(0) += 1;
            if snap.cert.is_some() {
                committed = Some(snap);
            }
        }
    }
    // However the last kill left it, a complete run finishes the set and cleans up.
    tool.run_to_completion(state, 0);
    let done = complete(state, &urls, &format!("{scenario}, at the end"));
    if let Some(c) = &committed {
        assert_eq!(done.cert, c.cert, "{scenario}: the CA changed at the end");
    }
    report(&scenario, iterations, run_time, &seen);
    eprintln!("  {completions} runs finished before their kill");
}

/// Kills `tool` over a complete set, alternating settings that change the kubeconfig:
/// the pair is never touched, the kubeconfig is the old one or the new one.
fn killed_over_an_existing_set(tool: Tool) {
    let scenario = format!("{tool:?} over an existing set");
    let mut rng = Rng(seed(&scenario));
    let run_time = tool.run_time();
    let urls = tool.urls();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    tool.run_to_completion(state, 0);
    let first = complete(state, &urls, &scenario);
    let mut seen = BTreeMap::new();
    let start = Instant::now();
    let mut iterations = 0;
    while iterations < MAX_ITERATIONS && start.elapsed() < BUDGET {
        iterations += 1;
        let delay = Duration::from_micros(rng.below(run_time.as_micros() as u64 + 1));
        let context = format!("{scenario}, kill #{iterations} after {delay:?}");
        tool.kill_after(state, iterations as usize % 2, delay);
        let killed = check(state, &urls, &context);
        assert_eq!(killed.cert, first.cert, "{context}: the CA changed");
        assert_eq!(killed.key, first.key, "{context}: the key changed");
        assert!(killed.kubeconfig && killed.config, "{context}");
        *seen.entry(killed.label()).or_insert(0) += 1;
    }
    tool.run_to_completion(state, 0);
    let done = complete(state, &urls, &format!("{scenario}, at the end"));
    assert_eq!(done.cert, first.cert);
    assert_eq!(
        kubeconfig::read_webhook(&state.join("kubeconfig.yaml"))
            .unwrap()
            .0,
        urls[0]
    );
    report(&scenario, iterations, run_time, &seen);
}

#[test]
fn init_killed_on_an_empty_state_dir() {
    killed_on_an_empty_state_dir(Tool::Init);
}

#[test]
fn init_killed_over_an_existing_set() {
    killed_over_an_existing_set(Tool::Init);
}

#[test]
fn talos_init_killed_on_an_empty_state_dir() {
    killed_on_an_empty_state_dir(Tool::TalosInit);
}

#[test]
fn talos_init_killed_over_an_existing_set() {
    killed_over_an_existing_set(Tool::TalosInit);
}
