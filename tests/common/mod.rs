//! Helpers shared by the integration tests: the STS emulator, the binary under test
//! run with a clean environment, token decoding, and the Python tools of `.venv`.

#![allow(dead_code)]

pub mod aws_fakes;
pub mod certs;
pub mod docs;
pub mod fake_k8s;
pub mod fakes;
pub mod golden;
pub mod http;
pub mod process;
pub mod sts_emulator;
pub mod wait;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;

use base64::Engine as _;

/// The fake access key every test signs with (AWS's documentation example).
pub const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
/// Its fake secret.
pub const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// The region tokens are minted for.
pub const REGION: &str = "us-west-2";
/// The regional STS host of [`REGION`].
pub const STS_HOST: &str = "sts.us-west-2.amazonaws.com";
/// The cluster tokens are minted for.
pub const CLUSTER_ID: &str = "my-cluster";

/// Installs the process's rustls crypto provider (ring) once.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_aws-iam-authenticator")
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A clean environment for running the binary: its own `HOME` and AWS config files
/// in a temporary directory, fake static keys, IMDS disabled, nothing inherited but
/// `PATH`.
#[derive(Debug)]
pub struct TestEnv {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl TestEnv {
    /// A fresh environment with [`ACCESS_KEY_ID`]/[`SECRET_ACCESS_KEY`].
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("aws-iam-authenticator-test")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let home = dir.path().to_path_buf();
        let path = |name: &str| home.join(name).to_string_lossy().into_owned();
        let vars = vec![
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".to_owned(), home.to_string_lossy().into_owned()),
            ("AWS_CONFIG_FILE".to_owned(), path("aws-config")),
            (
                "AWS_SHARED_CREDENTIALS_FILE".to_owned(),
                path("aws-credentials"),
            ),
            ("AWS_ACCESS_KEY_ID".to_owned(), ACCESS_KEY_ID.to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                SECRET_ACCESS_KEY.to_owned(),
            ),
            ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
        ];
        Self { dir, vars }
    }

    /// The temporary `HOME`.
    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    /// Sets (or replaces) a variable.
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Removes a variable.
    pub fn unset(&mut self, name: &str) -> &mut Self {
        self.vars.retain(|(n, _)| n != name);
        self
    }

    /// `program` with exactly this environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear();
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd.current_dir(self.dir.path());
        cmd.stdin(std::process::Stdio::null());
        cmd
    }

    /// Runs the binary with `args` and waits for it.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(bin())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin()))
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// `verify -i CLUSTER -t TOKEN -o json`, with STS reached at the emulator.
pub fn verify_against(
    env: &TestEnv,
    emu: &sts_emulator::StsEmulator,
    cluster: &str,
    token: &str,
) -> Output {
    let ca = emu.ca_file().to_string_lossy().into_owned();
    env.run(&[
        "verify",
        "-i",
        cluster,
        "-t",
        token,
        "-o",
        "json",
        "--sts-resolve",
        &emu.resolve_arg(STS_HOST),
        "--sts-ca-file",
        &ca,
    ])
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The messages of a JSON log (one per line; a line that is not JSON as it is).
pub fn log_messages(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|l| {
            match serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .as_ref()
                .and_then(|v| v["msg"].as_str())
            {
                Some(m) => m.to_owned(),
                None => l.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The presigned URL inside a `k8s-aws-v1.` token.
pub fn token_url(token: &str) -> String {
    let b64 = token
        .strip_prefix("k8s-aws-v1.")
        .unwrap_or_else(|| panic!("not a k8s-aws-v1 token: {token}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .unwrap_or_else(|e| panic!("token is not base64url: {e}"));
    String::from_utf8(raw).unwrap_or_else(|e| panic!("token URL is not UTF-8: {e}"))
}

/// A `k8s-aws-v1.` token for `url`.
pub fn url_token(url: &str) -> String {
    format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
    )
}

/// The Python virtual environment the interop tests use:
/// `$AWS_IAM_AUTHENTICATOR_TEST_VENV`, else `<repo>/.venv` (`scripts/setup-venv.sh`).
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("AWS_IAM_AUTHENTICATOR_TEST_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => repo_root().join(".venv"),
    }
}

/// `.venv/bin/<tool>`, when it exists. When it does not, the test cannot run: under
/// CI (`CI` set) that is a failure; elsewhere the test is skipped with a notice.
pub fn venv_tool(tool: &str) -> Option<PathBuf> {
    let path = venv_dir().join("bin").join(tool);
    if path.exists() {
        return Some(path);
    }
    let msg = format!(
        "{} is missing: run `scripts/setup-venv.sh` (or `make venv`) to create the test \
         virtual environment, or point AWS_IAM_AUTHENTICATOR_TEST_VENV at one",
        path.display()
    );
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// The names in `dir`, sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}
