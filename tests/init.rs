//! `init` end to end: the binary against temporary state dirs, and the key pairs it
//! keeps (including upstream's RSA pairs) serving real TLS.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_iam_authenticator::kubeconfig;
use aws_iam_authenticator::tls::{self, KeyPair};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::process::is_root;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aws-iam-authenticator"));
    c.env_remove("KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID")
        .env_remove("AWS_IAM_AUTHENTICATOR_LOG_VERBOSITY");
    c
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn init_in(dir: &Path, extra: &[&str]) -> Output {
    run_ok(
        bin()
            .args(["init", "-i", "my-cluster"])
            .arg(format!("--state-dir={}", dir.display()))
            .args(extra),
    )
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// (inode, mtime) of a file: unchanged when nothing rewrote it.
fn stamp(p: &Path) -> (u64, i64, i64) {
    let m = fs::metadata(p).unwrap();
    (m.ino(), m.mtime(), m.mtime_nsec())
}

#[test]
fn init_twice_keeps_everything_byte_identical_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let out = init_in(state, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("Authenticator Version: \"0.7.18\""),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "--authentication-token-webhook-config-file={}/kubeconfig.yaml",
            state.display()
        )),
        "{stderr}"
    );
    let cert = state.join("cert.pem");
    let key = state.join("key.pem");
    let kc = state.join("kubeconfig.yaml");
    assert_eq!(mode(&cert), 0o644);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&kc), 0o644);
    let (c1, k1, kc1) = (
        fs::read(&cert).unwrap(),
        fs::read(&key).unwrap(),
        fs::read(&kc).unwrap(),
    );
    let stamps = [stamp(&cert), stamp(&key), stamp(&kc)];

    init_in(state, &[]);
    assert_eq!(fs::read(&cert).unwrap(), c1);
    assert_eq!(fs::read(&key).unwrap(), k1);
    assert_eq!(fs::read(&kc).unwrap(), kc1);
    assert_eq!([stamp(&cert), stamp(&key), stamp(&kc)], stamps);

    // The kubeconfig trusts the cert and points at the default URL.
    let (url, ca) = kubeconfig::read_webhook(&kc).unwrap();
    assert_eq!(url, "https://localhost:21362/authenticate");
    assert_eq!(ca.as_bytes(), c1.as_slice());
    // No stray temporary files.
    let names = common::dir_names(state);
    assert_eq!(names, ["cert.pem", "key.pem", "kubeconfig.yaml"]);
}

#[test]
fn corrupt_or_missing_key_is_replaced_and_kubeconfig_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    init_in(state, &[]);
    let cert = state.join("cert.pem");
    let key = state.join("key.pem");
    let kc = state.join("kubeconfig.yaml");
    let old_cert = fs::read_to_string(&cert).unwrap();

    fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = init_in(state, &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("replacing invalid key pair"));
    let new_cert = fs::read_to_string(&cert).unwrap();
    assert_ne!(new_cert, old_cert);
    let pair = tls::load(state).unwrap().unwrap();
    assert!(kubeconfig::matches_pair(&kc, &pair).unwrap());
    assert_eq!(mode(&key), 0o600);

    fs::remove_file(&key).unwrap();
    init_in(state, &[]);
    let pair2 = tls::load(state).unwrap().unwrap();
    assert_ne!(pair2, pair);
    assert!(kubeconfig::matches_pair(&kc, &pair2).unwrap());

    // Wrong modes are corrected without rewriting.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let before = fs::read(&key).unwrap();
    init_in(state, &[]);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(fs::read(&key).unwrap(), before);
}

#[test]
fn address_hostname_and_port_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    init_in(
        state,
        &[
            "--address=10.1.2.3",
            "--hostname=auth.example.com",
            "--port=4443",
        ],
    );
    let cert = fs::read_to_string(state.join("cert.pem")).unwrap();
    assert_eq!(
        common::certs::dns_and_ips(&cert),
        (
            vec!["auth.example.com".to_owned()],
            vec!["10.1.2.3".parse().unwrap()]
        )
    );
    let (url, _) = kubeconfig::read_webhook(&state.join("kubeconfig.yaml")).unwrap();
    assert_eq!(url, "https://auth.example.com:4443/authenticate");

    // IPv6 hostname: bracketed URL, IP SAN.
    let dir = tempfile::tempdir().unwrap();
    init_in(dir.path(), &["--address=::", "--hostname=::1"]);
    let cert = fs::read_to_string(dir.path().join("cert.pem")).unwrap();
    assert_eq!(
        common::certs::dns_and_ips(&cert),
        (vec![], vec!["::1".parse().unwrap()])
    );
    let (url, _) = kubeconfig::read_webhook(&dir.path().join("kubeconfig.yaml")).unwrap();
    assert_eq!(url, "https://[::1]:21362/authenticate");
}

#[test]
fn config_file_settings_apply_below_flags() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    let state = dir.path().join("state");
    fs::write(
        &cfg,
        format!(
            "clusterID: from-file\nserver:\n  hostname: file.example\n  port: 1234\n  stateDir: {}\n  generateKubeconfig: {}/wh.yaml\n",
            state.display(),
            dir.path().display()
        ),
    )
    .unwrap();
    run_ok(
        bin()
            .arg("init")
            .arg(format!("--config={}", cfg.display()))
            .args([
                "--feature-gates=ConfiguredInitDirectories=true",
                "--write-config",
            ])
            .arg(dir.path().join("out/config.yaml")),
    );
    assert!(state.join("key.pem").exists());
    let (url, _) = kubeconfig::read_webhook(&dir.path().join("wh.yaml")).unwrap();
    assert_eq!(url, "https://file.example:1234/authenticate");
    // The config file is copied as it is.
    assert_eq!(
        fs::read(dir.path().join("out/config.yaml")).unwrap(),
        fs::read(&cfg).unwrap()
    );
    assert_eq!(mode(&dir.path().join("out/config.yaml")), 0o644);
}

#[test]
fn write_config_adds_the_cluster_id() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("config.yaml");
    init_in(dir.path(), &["--write-config", out.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        "clusterID: \"my-cluster\"\n"
    );

    // A config file without clusterID gets the one from -i.
    let cfg = dir.path().join("in.yaml");
    fs::write(&cfg, "server:\n  mapUsers:\n    - userarn: arn:aws:iam::000000000000:user/a\n      username: a\n").unwrap();
    let out2 = dir.path().join("config2.yaml");
    init_in(
        dir.path(),
        &[
            &format!("--config={}", cfg.display()),
            "--write-config",
            out2.to_str().unwrap(),
        ],
    );
    let written = aws_iam_authenticator::config::ConfigFile::load(&out2).unwrap();
    assert_eq!(
        written.get_string("clusterID").unwrap().as_deref(),
        Some("my-cluster")
    );
    assert!(written.get("server.mapUsers").is_some());

    // A config file naming another cluster is refused.
    fs::write(&cfg, "clusterID: other\n").unwrap();
    let out = bin()
        .args(["init", "-i", "my-cluster"])
        .arg(format!("--state-dir={}", dir.path().display()))
        .arg(format!("--config={}", cfg.display()))
        .arg("--write-config")
        .arg(&out2)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("disagrees"));
}

#[test]
fn key_owner_is_applied() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    init_in(dir.path(), &["--key-owner=4321:8765"]);
    let m = fs::metadata(dir.path().join("key.pem")).unwrap();
    assert_eq!((m.uid(), m.gid()), (4321, 8765));
    let cert = fs::metadata(dir.path().join("cert.pem")).unwrap();
    assert_eq!(cert.uid(), 0);
}

#[test]
fn without_paths_init_writes_to_the_working_directory_like_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        bin()
            .current_dir(dir.path())
            .args(["init", "--cluster-id=my-cluster"]),
    );
    for f in ["cert.pem", "key.pem", "aws-iam-authenticator.kubeconfig"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "copy cert.pem to /var/aws-iam-authenticator/cert.pem on kubernetes master node(s)",
        "copy key.pem to /var/aws-iam-authenticator/key.pem on kubernetes master node(s)",
        "copy aws-iam-authenticator.kubeconfig to /etc/kubernetes/aws-iam-authenticator/kubeconfig.yaml on kubernetes master node(s)",
        "configure your apiserver with `--authentication-token-webhook-config-file=/etc/kubernetes/aws-iam-authenticator/kubeconfig.yaml` to enable authentication with aws-iam-authenticator",
    ] {
        assert!(stderr.contains(line), "{line} not in {stderr}");
    }
}

#[test]
fn missing_cluster_id_is_upstreams_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin().current_dir(dir.path()).arg("init").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Authenticator Version:"));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "could not get config: cluster ID cannot be empty"
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn unwritable_state_dir_is_could_not_initialize() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let out = bin()
        .args(["init", "-i", "x"])
        .arg(format!("--state-dir={}/sub", file.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("could not initialize: "), "{stderr}");
}

/// Serves one TLS connection with `pair` and checks a client pinning `trust` completes
/// the handshake (ALPN included) and exchanges bytes.
async fn handshake(pair: &KeyPair, trust: &str) -> Result<Vec<u8>, std::io::Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(pair).unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        Ok::<_, std::io::Error>(())
    });
    let connector = tokio_rustls::TlsConnector::from(tls::pinned_client_config(trust).unwrap());
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let result = async {
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        tls.write_all(b"ping").await?;
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await?;
        Ok(out)
    }
    .await;
    let _ = server.await;
    result
}

#[tokio::test]
async fn upstream_rsa_pair_is_kept_and_serves_tls() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let key = state.join("key.pem");
    let cert = state.join("cert.pem");
    let ok = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-new", "-key"])
        .arg(&key)
        .args(["-subj", "/CN=aws-iam-authenticator", "-days", "36500"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let key_before = fs::read_to_string(&key).unwrap();
    assert!(key_before.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let cert_before = fs::read(&cert).unwrap();

    init_in(state, &[]);
    assert_eq!(fs::read_to_string(&key).unwrap(), key_before);
    assert_eq!(fs::read(&cert).unwrap(), cert_before);

    let pair = tls::load(state).unwrap().unwrap();
    let (_, ca) = kubeconfig::read_webhook(&state.join("kubeconfig.yaml")).unwrap();
    // The kubeconfig's CA is the cert (openssl writes Go's PEM layout too).
    assert_eq!(ca.as_bytes(), cert_before.as_slice());
    assert_eq!(handshake(&pair, &ca).await.unwrap(), b"pong");

    // A client trusting another certificate refuses the server.
    let other = tls::generate("localhost", "127.0.0.1").unwrap();
    assert!(handshake(&pair, &other.cert_pem).await.is_err());
}

#[tokio::test]
async fn generated_pair_serves_tls() {
    let dir = tempfile::tempdir().unwrap();
    init_in(dir.path(), &[]);
    let pair = tls::load(dir.path()).unwrap().unwrap();
    assert!(pair.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let (_, ca) = kubeconfig::read_webhook(&dir.path().join("kubeconfig.yaml")).unwrap();
    assert_eq!(handshake(&pair, &ca).await.unwrap(), b"pong");
}

// The state dir's attack cases: whoever can write the state dir (the server's user, say)
// plants links, hard links or FIFOs there before `init` runs as root. None of them may
// make `init` write, chmod or chown anything but the state dir's own files.

/// Runs `init` into `state` with the server's owner for the key, expecting a failure;
/// returns its stderr. A run that hangs (on a FIFO, say) is killed after a minute.
fn init_refused(state: &Path, extra: &[&str]) -> String {
    let mut child = bin()
        .args(["init", "-i", "my-cluster", "--key-owner=65532"])
        .arg(format!("--state-dir={}", state.display()))
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("init did not finish");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "init succeeded: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("could not initialize: "), "{stderr}");
    stderr
}

/// Another service's key pair, outside the state dir: `other.crt` (0644) and
/// `other.key` (0640), root's.
fn other_service(dir: &Path) -> KeyPair {
    let pair = tls::generate("other.example", "10.9.9.9").unwrap();
    fs::write(dir.join("other.crt"), &pair.cert_pem).unwrap();
    fs::write(dir.join("other.key"), &pair.key_pem).unwrap();
    fs::set_permissions(dir.join("other.crt"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(dir.join("other.key"), fs::Permissions::from_mode(0o640)).unwrap();
    pair
}

/// (uid, gid, mode, content) of a file: what an attack must not change.
fn untouched(p: &Path) -> (u32, u32, u32, Vec<u8>) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777, fs::read(p).unwrap())
}

/// A temporary directory holding an empty state dir and a second directory `outside`
/// (another service's, or an attacker's): (the guard, `outside`, `state`).
fn state_and(outside: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (outside, state) = (dir.path().join(outside), dir.path().join("state"));
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(&state).unwrap();
    (dir, outside, state)
}

/// The refusal of a planted symbolic link.
const FOLLOW: &str = "is a symbolic link; refusing to follow it";

/// Runs `init` into `state`, which must refuse with `why` (said of `state/<name>`) and
/// leave `target`, the file a planted link leads to, exactly as it was.
fn refused_leaving_alone(state: &Path, extra: &[&str], name: &str, why: &str, target: &Path) {
    let before = untouched(target);
    let stderr = init_refused(state, extra);
    let expected = format!("{}/{name} {why}", state.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(untouched(target), before);
}

#[test]
fn a_key_link_to_another_services_key_is_refused_and_that_key_left_alone() {
    let (_dir, other, state) = state_and("other");
    let pair = other_service(&other);
    // The pair is valid, so an `init` that follows the link keeps it and "fixes" the
    // key's owner and mode: hands the other service's key to the server's user.
    fs::write(state.join("cert.pem"), &pair.cert_pem).unwrap();
    std::os::unix::fs::symlink(other.join("other.key"), state.join("key.pem")).unwrap();

    refused_leaving_alone(&state, &[], "key.pem", FOLLOW, &other.join("other.key"));
    assert!(
        fs::symlink_metadata(state.join("key.pem"))
            .unwrap()
            .is_symlink()
    );
}

#[test]
fn a_cert_link_to_a_file_holding_a_private_key_is_refused_and_stays_private() {
    let (_dir, other, state) = state_and("other");
    let pair = other_service(&other);
    // A combined PEM file (certificate and key, 0600), as some servers keep them.
    let combined = other.join("combined.pem");
    fs::write(&combined, format!("{}{}", pair.cert_pem, pair.key_pem)).unwrap();
    fs::set_permissions(&combined, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&combined, state.join("cert.pem")).unwrap();
    fs::write(state.join("key.pem"), &pair.key_pem).unwrap();

    refused_leaving_alone(&state, &[], "cert.pem", FOLLOW, &combined);
}

#[test]
fn a_key_link_to_a_file_the_attacker_owns_is_refused() {
    let (_dir, attacker, state) = state_and("attacker");
    // The attacker's own pair, its key in a file the attacker owns and can rewrite.
    let pair = tls::generate("localhost", "127.0.0.1").unwrap();
    let theirs = attacker.join("key");
    fs::write(&theirs, &pair.key_pem).unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o666)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&theirs, Some(1000), Some(1000)).unwrap();
    }
    fs::write(state.join("cert.pem"), &pair.cert_pem).unwrap();
    std::os::unix::fs::symlink(&theirs, state.join("key.pem")).unwrap();

    refused_leaving_alone(&state, &[], "key.pem", FOLLOW, &theirs);
}

#[test]
fn a_hard_linked_key_is_not_chowned_or_chmodded() {
    let (_dir, other, state) = state_and("other");
    let pair = other_service(&other);
    fs::write(state.join("cert.pem"), &pair.cert_pem).unwrap();
    fs::hard_link(other.join("other.key"), state.join("key.pem")).unwrap();

    refused_leaving_alone(
        &state,
        &[],
        "key.pem",
        "has 2 hard links; refusing to change its mode or owner",
        &other.join("other.key"),
    );
}

#[test]
fn a_fifo_at_key_pem_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    nix::unistd::mkfifo(
        &dir.path().join("key.pem"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let stderr = init_refused(dir.path(), &[]);
    assert!(
        stderr.contains(&format!(
            "{}/key.pem is not a regular file",
            dir.path().display()
        )),
        "{stderr}"
    );
}

#[test]
fn links_at_the_kubeconfig_and_config_are_refused_and_their_targets_left_alone() {
    let (_dir, other, state) = state_and("other");
    let config = format!("--write-config={}/config.yaml", state.display());
    init_in(&state, &[&config]);
    for name in ["kubeconfig.yaml", "config.yaml"] {
        // The link points at a private file holding exactly what `init` would write, so
        // an `init` that follows it finds the content right and "fixes" the mode to 0644.
        let target = other.join(name);
        fs::rename(state.join(name), &target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&target, state.join(name)).unwrap();

        refused_leaving_alone(&state, &[&config], name, FOLLOW, &target);
        fs::remove_file(state.join(name)).unwrap();
        fs::rename(&target, state.join(name)).unwrap();
    }
}

#[test]
fn a_state_dir_that_is_a_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::create_dir_all(&real).unwrap();
    let link = dir.path().join("state");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let stderr = init_refused(&link, &[]);
    assert!(
        stderr.contains(&format!("{} is a symbolic link", link.display())),
        "{stderr}"
    );
    assert_eq!(fs::read_dir(&real).unwrap().count(), 0);
    // A dangling one too (nothing is created where it points).
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let stderr = init_refused(&dangling, &[]);
    assert!(stderr.contains("is a symbolic link"), "{stderr}");
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn links_at_the_old_temporary_names_are_not_written_through() {
    // Earlier versions wrote through `.<file>.tmp.<pid>`, a name an attacker could
    // predict and plant a link at. This process is the writer here, so its pid is known.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    let state = dir.path().join("state");
    fs::create_dir_all(&other).unwrap();
    fs::create_dir_all(&state).unwrap();
    let pid = std::process::id();
    let victim = other.join("victim");
    fs::write(&victim, "root's file\n").unwrap();
    let theirs = other.join("theirs");
    fs::write(&theirs, "").unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o666)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&theirs, Some(1000), Some(1000)).unwrap();
    }
    for (name, target) in [
        ("key.pem", &theirs),
        ("cert.pem", &victim),
        ("kubeconfig.yaml", &victim),
        ("config.yaml", &victim),
    ] {
        std::os::unix::fs::symlink(target, state.join(format!(".{name}.tmp.{pid}"))).unwrap();
    }
    let before = (untouched(&victim), untouched(&theirs));
    let opts = aws_iam_authenticator::init::Options {
        state_dir: state.clone(),
        kubeconfig_path: state.join("kubeconfig.yaml"),
        hostname: "localhost".into(),
        address: "127.0.0.1".into(),
        port: 21362,
        key_owner: None,
        config: Some((state.join("config.yaml"), b"clusterID: c\n".to_vec())),
        state_dir_mode: None,
    };
    let (pair, outcome) = aws_iam_authenticator::init::run(&opts).unwrap();
    assert!(outcome.key_pair_created);
    assert_eq!((untouched(&victim), untouched(&theirs)), before);
    // The state dir holds regular files of its own, and the planted links are gone.
    let names = common::dir_names(&state);
    assert_eq!(
        names,
        ["cert.pem", "config.yaml", "key.pem", "kubeconfig.yaml"]
    );
    for name in &names {
        assert!(fs::symlink_metadata(state.join(name)).unwrap().is_file());
    }
    assert_eq!(tls::load(&state).unwrap().unwrap(), pair);
}

/// `init` validates the whole configuration as `server` does: a config the server would
/// refuse fails `init` too, naming the problem, and nothing is written.
#[test]
fn a_config_the_server_would_refuse_fails_init() {
    let cases = [
        ("clusterID: c\nserver:\n  partition: aws-nk\n", "partition"),
        (
            "clusterID: c\nserver:\n  backendMode: [Bogus]\n",
            "backend-mode \"Bogus\" is not a valid mode",
        ),
    ];
    for (content, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, content).unwrap();
        let state = dir.path().join("state");
        let out = bin()
            .args(["init", "-c"])
            .arg(&config)
            .arg(format!("--state-dir={}", state.display()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{content}: {stderr}");
        assert!(stderr.contains(want), "{content}: {stderr}");
        assert!(!state.join("cert.pem").exists(), "{content}");
    }
}

#[test]
fn concurrent_runs_take_turns_and_agree_on_one_pair() {
    // Runs on one state dir hold its lock in turn: the first creates the pair, the others
    // keep it, and the kubeconfig trusts it. Without the lock, one run's key could end up
    // beside another's certificate.
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let children: Vec<_> = (0..4)
            .map(|_| {
                bin()
                    .args(["init", "-i", "my-cluster"])
                    .arg(format!("--state-dir={}", state.display()))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut created = 0;
        for child in children {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "round {round}: {stderr}");
            if stderr.contains("saving new key and certificate") {
                created += 1;
            }
        }
        assert_eq!(created, 1, "round {round}");
        let pair = tls::load(state).unwrap().unwrap();
        assert!(kubeconfig::matches_pair(&state.join("kubeconfig.yaml"), &pair).unwrap());
    }
}
