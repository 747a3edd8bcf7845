//! `talos-init` as the extension service runs it: the binary with only the environment
//! an `ExtensionServiceConfig` gives it, and a temporary directory standing in for the
//! host mount (`STATE_DIR`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use aws_iam_authenticator::kubeconfig;
use aws_iam_authenticator::tls;

use common::certs::sans;
use common::process::is_root;

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

/// Runs `talos-init` with exactly the environment `envp` (`NAME=value` entries, repeats
/// kept, in this order), as containerd starts a container whose `environment` repeats a
/// variable. `Command` cannot do that (it keeps one value per name), nor can `env`; a
/// direct `execve` can.
fn talos_init_envp(envp: &[&str]) -> Output {
    const EXECVE: &str = "import ctypes, os, sys\n\
        a = sys.argv[1:]; i = a.index('--'); argv, envp = a[:i], a[i + 1:]\n\
        arr = lambda xs: (ctypes.c_char_p * (len(xs) + 1))(*[os.fsencode(x) for x in xs], None)\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        libc.execve(os.fsencode(argv[0]), arr(argv), arr(envp))\n\
        sys.exit('execve: ' + os.strerror(ctypes.get_errno()))\n";
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("python3 is needed to build a raw environment");
    Command::new(python)
        .args(["-c", EXECVE, BIN, "talos-init", "--"])
        .args(envp)
        .env_clear()
        .output()
        .unwrap()
}

/// Every line of `text` is a JSON object.
fn all_json(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
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
        first.starts_with("time=\"")
            && first.contains(&format!(
                " level=info msg={}",
                aws_iam_authenticator::go::strconv::quote(&expected)
            )),
        "{first}\nwant …{expected}"
    );
    // The exec'd init logged too, as text.
    assert!(stderr.contains("kubeconfig generated at"), "{stderr}");

    let names = common::dir_names(state);
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
    // JSON lines only, from talos-init and from the exec'd init, on both streams.
    let lines = all_json(&stderr);
    assert!(lines.len() > 3, "{stderr}");
    all_json(&String::from_utf8_lossy(&out.stdout));
    let version = lines
        .iter()
        .find(|l| {
            l["msg"]
                .as_str()
                .unwrap()
                .starts_with("Authenticator Version: ")
        })
        .unwrap_or_else(|| panic!("no version line: {stderr}"));
    assert_eq!(version["version"], aws_iam_authenticator::VERSION);
    assert_eq!(
        lines[0]["msg"],
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
            .any(|l| l["msg"] == "writing webhook kubeconfig file")
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
    let no_id = etc.path().join("no-id.yaml");
    fs::write(&no_id, "server:\n  port: 4443\n").unwrap();
    let no_id = no_id.display().to_string();

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
        // Partial configurations: something is set, but no cluster ID anywhere.
        (
            vec![("HOSTNAME", "auth.example.com")],
            "CLUSTER_ID is required".into(),
        ),
        (vec![("SERVE", "true")], "CLUSTER_ID is required".into()),
        (
            vec![("CONFIG_FILE", &no_id)],
            "CLUSTER_ID is required".into(),
        ),
        (
            vec![("CLUSTER_ID", "c"), ("SERVE", "yes")],
            "invalid SERVE \"yes\": expected true or false".into(),
        ),
        (
            vec![("CLUSTER_ID", "c"), ("STS_CA_FILE", "/ca.pem")],
            "STS_CA_FILE is set but SERVE is not true".into(),
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
        // The error a command ends with is logrus's `fatal`, as upstream's Fatalf.
        assert_eq!(line["level"], "fatal", "{stderr}");
        assert!(
            line["msg"].as_str().unwrap().starts_with(&want),
            "{env:?}: {stderr}\nwant {want}"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "{env:?}");
    }
}

#[test]
fn a_node_without_configuration_finishes_without_writing_anything() {
    // Nothing may appear at the default state dir either (it is not mounted here).
    let default_state = Path::new(aws_iam_authenticator::talos::DEFAULT_STATE_DIR);
    let existed = default_state.exists();
    let cases: &[&[(&str, &str)]] = &[
        // A worker: no ExtensionServiceConfig at all.
        &[],
        // How to log is not what to do.
        &[("LOG_FORMAT", "text")],
        // What Talos passes every service from the machine's environment.
        &[
            ("AWS_REGION", "eu-west-1"),
            ("https_proxy", "http://proxy.example:3128"),
            ("NO_PROXY", "10.0.0.0/8"),
        ],
        // Our variables, all empty.
        &[("CLUSTER_ID", ""), ("HOSTNAME", ""), ("SERVE", "")],
    ];
    for env in cases {
        let out = talos_init(env);
        let stderr = ok(&out);
        assert_eq!(stderr.lines().count(), 1, "{env:?}: {stderr}");
        assert!(
            stderr.contains(" level=info msg=\"not configured: none of CLUSTER_ID, HOSTNAME, "),
            "{env:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{env:?}");
    }
    // With LOG_FORMAT=json, that line is JSON.
    let out = talos_init(&[("LOG_FORMAT", "json")]);
    let lines = all_json(&ok(&out));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["level"], "info");
    assert!(
        lines[0]["msg"]
            .as_str()
            .unwrap()
            .starts_with("not configured: ")
    );
    assert_eq!(default_state.exists(), existed);
}

#[test]
fn the_cluster_id_may_come_from_the_config_file() {
    let dir = state_dir();
    let s = dir.path().display().to_string();
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("config.yaml");
    fs::write(&cfg, "clusterID: from-file\n").unwrap();
    let c = cfg.display().to_string();
    let stderr = ok(&talos_init(&[("CONFIG_FILE", &c), ("STATE_DIR", &s)]));
    assert!(
        stderr.contains("[init -i=from-file --hostname=localhost "),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("config.yaml")).unwrap(),
        "clusterID: from-file\n"
    );
}

#[test]
fn repeated_variables_take_their_last_value_here_and_in_what_is_executed() {
    // The README's patch applied twice, then edited: each variable twice, the new value
    // last. AWS_IAM_AUTHENTICATOR_LOG_VERBOSITY is read by the exec'd init itself: its
    // info lines appear only if it, too, sees the last value.
    let dir = state_dir();
    let s = dir.path().display().to_string();
    let state = format!("STATE_DIR={s}");
    let out = talos_init_envp(&[
        "PATH=/usr/bin:/bin",
        "AWS_IAM_AUTHENTICATOR_LOG_VERBOSITY=error",
        "CLUSTER_ID=old-cluster",
        "HOSTNAME=old.example",
        "LOG_FORMAT=text",
        &state,
        "AWS_IAM_AUTHENTICATOR_LOG_VERBOSITY=info",
        "CLUSTER_ID=new-cluster",
        "HOSTNAME=new.example",
        "LOG_FORMAT=json",
        &state,
    ]);
    let stderr = ok(&out);
    let lines = all_json(&stderr);
    all_json(&String::from_utf8_lossy(&out.stdout));
    let messages: Vec<&str> = lines.iter().map(|l| l["msg"].as_str().unwrap()).collect();
    assert!(
        messages[0].starts_with(
            "executing: /usr/local/bin/aws-iam-authenticator [init -i=new-cluster --hostname=new.example "
        ),
        "{stderr}"
    );
    assert!(
        messages.contains(&"writing webhook kubeconfig file"),
        "the exec'd init did not log at info: {stderr}"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("config.yaml")).unwrap(),
        "clusterID: \"new-cluster\"\n"
    );
    let (url, _) = kubeconfig::read_webhook(&dir.path().join("kubeconfig.yaml")).unwrap();
    assert_eq!(url, "https://new.example:21362/authenticate");
}

/// `SERVE=true`: talos-init runs init, then becomes the server, which answers
/// TokenReviews sent as kube-apiserver sends them (MountedFile and DynamicFile mappings)
/// and drains and exits 0 on Talos's SIGTERM.
#[tokio::test]
async fn serve_runs_the_webhook_until_sigterm() {
    use common::process::{Running, free_port};
    use common::sts_emulator::Identity;
    use common::webhook::Webhook;

    const ALICE: &str = "arn:aws:sts::111122223333:assumed-role/KubernetesAdmin/alice";
    const BOB: &str = "arn:aws:iam::111122223333:user/bob";
    const BOB_KEY: &str = "AKIAIOSFODNN7BOBEXAM";
    const BOB_SECRET: &str = "bobSecretKeyEXAMPLEKEYbobSecretKeyEXAMPL";

    let world = common::webhook::World::new();
    world.sts.add_identity(
        common::ACCESS_KEY_ID,
        common::SECRET_ACCESS_KEY,
        Identity::new(ALICE, "111122223333", "AROAEXAMPLEKUBEADMIN:alice"),
    );
    world.sts.add_identity(
        BOB_KEY,
        BOB_SECRET,
        Identity::new(BOB, "111122223333", "AIDAEXAMPLEBOB"),
    );
    // The host directory as Talos creates a missing mount source, and the config files
    // as an ExtensionServiceConfig's configFiles would be mounted.
    let host_dir = world.path("var-lib-aws-iam-authenticator");
    fs::create_dir(&host_dir).unwrap();
    fs::set_permissions(&host_dir, fs::Permissions::from_mode(0o700)).unwrap();
    let dynamic = world.path("access-entries.json");
    fs::write(
        &dynamic,
        serde_json::json!({
            "mapUsers": [{"userarn": BOB, "username": "bob", "groups": ["devs"]}]
        })
        .to_string(),
    )
    .unwrap();
    let port = free_port();
    let config = world.write_config(&format!(
        "clusterID: {cluster}\nserver:\n  port: {port}\n  backendMode: [MountedFile, DynamicFile]\n  \
         dynamicfilepath: {dynamic}\n  mapRoles:\n    - roleARN: arn:aws:iam::111122223333:role/KubernetesAdmin\n      \
         username: kubernetes-admin:{{{{SessionName}}}}\n      groups: [system:masters]\n",
        cluster = common::CLUSTER_ID,
        dynamic = dynamic.display(),
    ));
    let health = format!("127.0.0.1:{}", free_port());
    let (u, g) = (nix::unistd::getuid(), nix::unistd::getgid());
    let mut cmd = world.env.command(BIN);
    cmd.arg("talos-init")
        .env("CLUSTER_ID", common::CLUSTER_ID)
        .env("CONFIG_FILE", &config)
        .env("STATE_DIR", &host_dir)
        .env("SERVE", "true")
        .env("LOG_FORMAT", "json")
        .env("HEALTH_ADDRESS", &health)
        .env("STS_RESOLVE", world.sts.resolve_arg(common::STS_HOST))
        .env("STS_CA_FILE", world.sts.ca_file())
        .env("AWS_REGION", common::REGION)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !is_root() {
        // Without root the key cannot be given away: keep it.
        cmd.env("KEY_OWNER", format!("{u}:{g}"));
    }
    let mut server = Running::spawn(cmd);
    server.listening().await;
    let ran = server.find_log("running: ").unwrap();
    assert!(
        ran["msg"]
            .as_str()
            .unwrap()
            .contains(" [init -i=my-cluster "),
        "{ran}"
    );
    let exec = server.find_log("executing: ").unwrap();
    let h = host_dir.display();
    assert_eq!(
        exec["msg"],
        format!(
            "executing: /usr/local/bin/aws-iam-authenticator [server --config={h}/config.yaml \
             --state-dir={h} --generate-kubeconfig={h}/kubeconfig.yaml \
             --kubeconfig-pregenerated=true --health-address={health} \
             --sts-resolve={} --sts-ca-file={} --log-format=json]",
            world.sts.resolve_arg(common::STS_HOST),
            world.sts.ca_file().display()
        )
    );
    assert_eq!(server.health_addr().to_string(), health);

    // kube-apiserver's view: the kubeconfig init wrote.
    let hook = Webhook::from_kubeconfig(&host_dir.join("kubeconfig.yaml"));
    assert_eq!(
        hook.url.to_string(),
        format!("https://localhost:{port}/authenticate")
    );
    let alice = world.token();
    let review = hook.review("authentication.k8s.io/v1", &alice).await.json();
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(
        review["status"]["user"]["username"],
        "kubernetes-admin:alice"
    );
    let bob = world.token_with(BOB_KEY, BOB_SECRET);
    let review = hook.review("authentication.k8s.io/v1", &bob).await.json();
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(review["status"]["user"]["username"], "bob");

    // Talos stops the service with SIGTERM to the process it started: the server.
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}:\n{}", server.log_text());
    // Every line the service printed on stderr was JSON.
    all_json(&server.log_text());
}

#[test]
fn serve_fails_when_init_fails_and_never_starts_the_server() {
    // A state dir that cannot be created: init fails, talos-init exits non-zero (Talos
    // restarts it), and no server line is logged.
    let etc = tempfile::tempdir().unwrap();
    let file = etc.path().join("not-a-dir");
    fs::write(&file, "").unwrap();
    let state = file.join("state").display().to_string();
    let out = talos_init(&[
        ("CLUSTER_ID", "c"),
        ("SERVE", "true"),
        ("STATE_DIR", &state),
        ("LOG_FORMAT", "json"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let lines = all_json(&stderr);
    all_json(&String::from_utf8_lossy(&out.stdout));
    assert!(
        lines[0]["msg"].as_str().unwrap().starts_with("running: "),
        "{stderr}"
    );
    assert_eq!(lines.last().unwrap()["level"], "fatal", "{stderr}");
    assert!(!stderr.contains("executing: "), "{stderr}");
}

#[test]
fn with_json_logs_even_a_bad_verbosity_is_reported_as_json() {
    let dir = state_dir();
    let s = dir.path().display().to_string();
    let out = talos_init(&[
        ("CLUSTER_ID", "c"),
        ("STATE_DIR", &s),
        ("LOG_FORMAT", "json"),
        ("AWS_IAM_AUTHENTICATOR_LOG_VERBOSITY", "loud"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let lines = all_json(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(lines[0]["level"], "error");
    assert!(
        lines[0]["msg"]
            .as_str()
            .unwrap()
            .starts_with("Invalid log level \"loud\"")
    );
    assert!(out.stdout.is_empty());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}
