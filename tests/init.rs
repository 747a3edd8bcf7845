//! `init` end to end: the binary against temporary state dirs, and the key pairs it
//! keeps (including upstream's RSA pairs) serving real TLS.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use aws_iam_authenticator::kubeconfig;
use aws_iam_authenticator::tls::{self, KeyPair};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

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

fn ip_sans(cert_pem: &str) -> (Vec<String>, Vec<IpAddr>) {
    let pair = KeyPair {
        cert_pem: cert_pem.to_owned(),
        key_pem: String::new(),
    };
    let der = pair.cert_der().unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for n in &san.value.general_names {
        match n {
            GeneralName::DNSName(d) => dns.push((*d).to_owned()),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()))
            }
            GeneralName::IPAddress(b) => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap())),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    (dns, ips)
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
    let mut names: Vec<_> = fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
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
        ip_sans(&cert),
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
    assert_eq!(ip_sans(&cert), (vec![], vec!["::1".parse().unwrap()]));
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
