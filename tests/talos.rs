//! `talos-init` as the extension service runs it: the binary with only the environment
//! an `ExtensionServiceConfig` gives it, and a temporary directory standing in for the
//! host mount (`STATE_DIR`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use aws_iam_authenticator::kubeconfig;
use aws_iam_authenticator::tls::{self, KeyPair};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

const BIN: &str = env!("CARGO_BIN_EXE_aws-iam-authenticator");

/// Runs `talos-init` with exactly `env` (plus PATH), as a Talos container would.
fn talos_init(env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .arg("talos-init")
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "talos-init failed: {stderr}");
    stderr
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn stamp(p: &Path) -> (u64, i64, i64, Vec<u8>) {
    let m = fs::metadata(p).unwrap();
    (m.ino(), m.mtime(), m.mtime_nsec(), fs::read(p).unwrap())
}

/// A state dir as Talos creates a missing mount source: root, 0700.
fn state_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn sans(cert_pem: &str) -> Vec<String> {
    let pair = KeyPair {
        cert_pem: cert_pem.to_owned(),
        key_pem: String::new(),
    };
    let der = pair.cert_der().unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::IPAddress(b) if b.len() == 4 => format!(
                "IP:{}",
                std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap())
            ),
            other => format!("{other:?}"),
        })
        .collect()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn defaults_produce_the_documented_files() {
    let dir = state_dir();
    let state = dir.path();
    let s = state.display().to_string();
    let out = talos_init(&[("CLUSTER_ID", "my-cluster"), ("STATE_DIR", &s)]);
    let stderr = ok(&out);
    let expected = format!(
        "executing: /usr/local/bin/aws-iam-authenticator [init -i=my-cluster --hostname=localhost \
         --address=127.0.0.1 --state-dir={s} --generate-kubeconfig={s}/kubeconfig.yaml \
         --write-config={s}/config.yaml --key-owner=65532 --state-dir-mode=755 --log-format=text]"
    );
    let first = stderr.lines().next().unwrap();
    assert!(
        first.ends_with(&format!(" INFO {expected}")),
        "{first}\nwant …{expected}"
    );
    // The exec'd init logged too, as text.
    assert!(stderr.contains("kubeconfig generated at"), "{stderr}");

    let mut names: Vec<_> = fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["cert.pem", "config.yaml", "key.pem", "kubeconfig.yaml"]
    );
    assert_eq!(mode(state), 0o755);
    assert_eq!(mode(&state.join("cert.pem")), 0o644);
    assert_eq!(mode(&state.join("key.pem")), 0o600);
    assert_eq!(mode(&state.join("kubeconfig.yaml")), 0o644);
    assert_eq!(mode(&state.join("config.yaml")), 0o644);
    if is_root() {
        assert_eq!(fs::metadata(state.join("key.pem")).unwrap().uid(), 65532);
        assert_eq!(fs::metadata(state.join("cert.pem")).unwrap().uid(), 0);
    }
    let cert = fs::read_to_string(state.join("cert.pem")).unwrap();
    assert_eq!(sans(&cert), ["IP:127.0.0.1", "DNS:localhost"]);
    let (url, ca) = kubeconfig::read_webhook(&state.join("kubeconfig.yaml")).unwrap();
    assert_eq!(url, "https://localhost:21362/authenticate");
    assert_eq!(ca, cert);
    let pair = tls::load(state).unwrap().unwrap();
    assert!(kubeconfig::matches_pair(&state.join("kubeconfig.yaml"), &pair).unwrap());
    assert_eq!(
        fs::read_to_string(state.join("config.yaml")).unwrap(),
        "clusterID: \"my-cluster\"\n"
    );

    // Every boot runs it again: nothing changes, not even a timestamp.
    let files = ["cert.pem", "key.pem", "kubeconfig.yaml", "config.yaml"];
    let before: Vec<_> = files.iter().map(|f| stamp(&state.join(f))).collect();
    ok(&talos_init(&[
        ("CLUSTER_ID", "my-cluster"),
        ("STATE_DIR", &s),
    ]));
    let after: Vec<_> = files.iter().map(|f| stamp(&state.join(f))).collect();
    assert_eq!(before, after);
}

#[test]
fn every_variable_overrides_its_default() {
    let dir = state_dir();
    let state = dir.path();
    let s = state.display().to_string();
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("config.yaml");
    let cfg_text = "# mappings\nclusterID: my-cluster\nserver:\n  address: 10.0.0.5\n  mapRoles:\n    - roleARN: arn:aws:iam::000000000000:role/admin\n      username: admin\n      groups: [system:masters]\n";
    fs::write(&cfg, cfg_text).unwrap();
    let c = cfg.display().to_string();
    let out = talos_init(&[
        ("CLUSTER_ID", "my-cluster"),
        ("HOSTNAME", "auth.example.com"),
        ("ADDRESS", "10.0.0.5"),
        ("CONFIG_FILE", &c),
        ("LOG_FORMAT", "json"),
        ("STATE_DIR", &s),
        ("KEY_OWNER", "1000:2000"),
    ]);
    let stderr = ok(&out);
    // JSON lines only, from talos-init and from the exec'd init.
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() > 3, "{stderr}");
    assert_eq!(
        lines[0]["message"],
        format!(
            "executing: /usr/local/bin/aws-iam-authenticator [init -i=my-cluster \
             --hostname=auth.example.com --address=10.0.0.5 --config={c} --state-dir={s} \
             --generate-kubeconfig={s}/kubeconfig.yaml --write-config={s}/config.yaml \
             --key-owner=1000:2000 --state-dir-mode=755 --log-format=json]"
        )
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "writing webhook kubeconfig file")
    );

    let cert = fs::read_to_string(state.join("cert.pem")).unwrap();
    assert_eq!(sans(&cert), ["IP:10.0.0.5", "DNS:auth.example.com"]);
    let (url, _) = kubeconfig::read_webhook(&state.join("kubeconfig.yaml")).unwrap();
    assert_eq!(url, "https://auth.example.com:21362/authenticate");
    assert_eq!(
        fs::read_to_string(state.join("config.yaml")).unwrap(),
        cfg_text
    );
    if is_root() {
        let m = fs::metadata(state.join("key.pem")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1000, 2000));
    }

    // The config file's server.port reaches the webhook URL.
    fs::write(&cfg, "clusterID: my-cluster\nserver:\n  port: 4443\n").unwrap();
    ok(&talos_init(&[
        ("CLUSTER_ID", "my-cluster"),
        ("CONFIG_FILE", &c),
        ("STATE_DIR", &s),
    ]));
    let (url, _) = kubeconfig::read_webhook(&state.join("kubeconfig.yaml")).unwrap();
    assert_eq!(url, "https://localhost:4443/authenticate");
    // The key pair survived the configuration change.
    assert_eq!(fs::read_to_string(state.join("cert.pem")).unwrap(), cert);
}

#[test]
fn the_server_config_carries_the_listen_address() {
    // Without CONFIG_FILE, a non-default ADDRESS goes into the minimal config.yaml, so
    // the server listens where the certificate says.
    let dir = state_dir();
    let s = dir.path().display().to_string();
    ok(&talos_init(&[
        ("CLUSTER_ID", "c"),
        ("ADDRESS", "10.1.2.3"),
        ("STATE_DIR", &s),
    ]));
    assert_eq!(
        fs::read_to_string(dir.path().join("config.yaml")).unwrap(),
        "clusterID: \"c\"\nserver:\n  address: \"10.1.2.3\"\n"
    );
    let cert = fs::read_to_string(dir.path().join("cert.pem")).unwrap();
    assert_eq!(sans(&cert), ["IP:10.1.2.3", "DNS:localhost"]);

    // With CONFIG_FILE, unset HOSTNAME and ADDRESS come from its server section.
    let dir = state_dir();
    let s = dir.path().display().to_string();
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("config.yaml");
    fs::write(
        &cfg,
        "clusterID: c\nserver:\n  hostname: 127.0.0.1\n  address: 10.9.8.7\n",
    )
    .unwrap();
    let c = cfg.display().to_string();
    let stderr = ok(&talos_init(&[
        ("CLUSTER_ID", "c"),
        ("CONFIG_FILE", &c),
        ("STATE_DIR", &s),
    ]));
    assert!(
        stderr.contains(&format!(
            "[init -i=c --hostname=127.0.0.1 --address=10.9.8.7 --config={c} "
        )),
        "{stderr}"
    );
    let (url, _) = kubeconfig::read_webhook(&dir.path().join("kubeconfig.yaml")).unwrap();
    assert_eq!(url, "https://127.0.0.1:21362/authenticate");
}

#[test]
fn empty_values_mean_defaults() {
    let dir = state_dir();
    let s = dir.path().display().to_string();
    let stderr = ok(&talos_init(&[
        ("CLUSTER_ID", "c"),
        ("HOSTNAME", ""),
        ("ADDRESS", ""),
        ("CONFIG_FILE", ""),
        ("LOG_FORMAT", ""),
        ("KEY_OWNER", ""),
        ("STATE_DIR", &s),
    ]));
    assert!(
        stderr.contains("[init -i=c --hostname=localhost --address=127.0.0.1 --state-dir="),
        "{stderr}"
    );
}

#[test]
fn bad_inputs_fail_with_one_line_and_write_nothing() {
    let etc = tempfile::tempdir().unwrap();
    let other = etc.path().join("other.yaml");
    fs::write(&other, "clusterID: someone-else\n").unwrap();
    let broken = etc.path().join("broken.yaml");
    fs::write(&broken, "server: [\n").unwrap();
    let other = other.display().to_string();
    let broken = broken.display().to_string();
    let missing = etc.path().join("missing.yaml").display().to_string();
    let listen = etc.path().join("listen.yaml");
    fs::write(
        &listen,
        "clusterID: c\nserver:\n  hostname: a.example\n  address: 10.0.0.1\n",
    )
    .unwrap();
    let listen = listen.display().to_string();
    let bare = etc.path().join("bare.yaml");
    fs::write(&bare, "clusterID: c\n").unwrap();
    let bare = bare.display().to_string();

    let cases: Vec<(Vec<(&str, &str)>, String)> = vec![
        (vec![], "CLUSTER_ID is required".into()),
        (vec![("CLUSTER_ID", "")], "CLUSTER_ID is required".into()),
        (
            vec![("CLUSTER_ID", "c"), ("LOG_FORMAT", "xml")],
            "invalid LOG_FORMAT \"xml\": expected text or json".into(),
        ),
        (
            vec![("CLUSTER_ID", "c"), ("ADDRESS", "localhost")],
            "invalid ADDRESS \"localhost\"".into(),
        ),
        (
            vec![("CLUSTER_ID", "c"), ("KEY_OWNER", "server")],
            "invalid KEY_OWNER".into(),
        ),
        (
            vec![("CLUSTER_ID", "c"), ("CONFIG_FILE", &missing)],
            format!("invalid CONFIG_FILE {missing}: can't read configuration file"),
        ),
        (
            vec![("CLUSTER_ID", "c"), ("CONFIG_FILE", &broken)],
            format!("invalid CONFIG_FILE {broken}: can't parse configuration file"),
        ),
        (
            vec![("CLUSTER_ID", "c"), ("CONFIG_FILE", &other)],
            format!(
                "invalid CONFIG_FILE {other}: its clusterID \"someone-else\" disagrees with CLUSTER_ID \"c\""
            ),
        ),
        (
            vec![
                ("CLUSTER_ID", "c"),
                ("HOSTNAME", "b.example"),
                ("CONFIG_FILE", &listen),
            ],
            format!(
                "invalid CONFIG_FILE {listen}: its server.hostname \"a.example\" disagrees with HOSTNAME \"b.example\""
            ),
        ),
        (
            vec![
                ("CLUSTER_ID", "c"),
                ("ADDRESS", "10.0.0.2"),
                ("CONFIG_FILE", &listen),
            ],
            format!(
                "invalid CONFIG_FILE {listen}: its server.address \"10.0.0.1\" disagrees with ADDRESS \"10.0.0.2\""
            ),
        ),
        (
            vec![
                ("CLUSTER_ID", "c"),
                ("ADDRESS", "10.0.0.2"),
                ("CONFIG_FILE", &bare),
            ],
            format!(
                "invalid CONFIG_FILE {bare}: its server.address \"127.0.0.1\", its default, disagrees with ADDRESS \"10.0.0.2\""
            ),
        ),
        (
            vec![("CLUSTER_ID", "c"), ("HOSTNAME", "a b")],
            "invalid HOSTNAME \"a b\"".into(),
        ),
        (
            vec![("CLUSTER_ID", "c"), ("STATE_DIR", "relative/dir")],
            "invalid STATE_DIR \"relative/dir\"".into(),
        ),
    ];
    for (env, want) in cases {
        let dir = state_dir();
        let s = dir.path().display().to_string();
        let mut env = env.clone();
        if !env.iter().any(|(k, _)| *k == "STATE_DIR") {
            env.push(("STATE_DIR", &s));
        }
        let out = talos_init(&env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} succeeded");
        assert_eq!(stderr.lines().count(), 1, "{env:?}: {stderr}");
        assert!(stderr.starts_with(&want), "{env:?}: {stderr}\nwant {want}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "{env:?}");
        assert_eq!(mode(dir.path()), 0o700, "{env:?}");

        // With LOG_FORMAT=json, the one line is JSON (unless LOG_FORMAT is the problem).
        if env.iter().any(|(k, _)| *k == "LOG_FORMAT") {
            continue;
        }
        env.push(("LOG_FORMAT", "json"));
        let out = talos_init(&env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} succeeded");
        let lines: Vec<_> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{env:?}: {stderr}");
        let line: serde_json::Value = serde_json::from_str(lines[0])
            .unwrap_or_else(|e| panic!("{env:?}: not JSON ({e}): {stderr}"));
        assert_eq!(line["level"], "ERROR", "{stderr}");
        assert!(
            line["message"].as_str().unwrap().starts_with(&want),
            "{env:?}: {stderr}\nwant {want}"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "{env:?}");
    }
}
