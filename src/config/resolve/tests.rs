use std::path::{Path, PathBuf};

use super::*;

fn file(yaml: &str) -> ConfigFile {
    ConfigFile::parse(Path::new("/etc/c.yaml"), yaml).unwrap()
}

fn resolve(flags: ServerFlags, yaml: Option<&str>) -> Result<ServerConfig, Error> {
    let file = yaml.map(file);
    ServerConfig::resolve(flags, file.as_ref()).map(|(c, _)| c)
}

fn id() -> ServerFlags {
    ServerFlags {
        cluster_id: Some("flag-id".into()),
        ..ServerFlags::default()
    }
}

#[test]
fn deny_with_forbidden_flag_over_file_over_default() {
    let cases = [
        (None, "clusterID: c\n", false),
        (
            None,
            "clusterID: c\nserver:\n  denyWithForbidden: true\n",
            true,
        ),
        (
            Some(false),
            "clusterID: c\nserver:\n  denyWithForbidden: true\n",
            false,
        ),
        (Some(true), "clusterID: c\n", true),
    ];
    for (flag, yaml, want) in cases {
        let flags = ServerFlags {
            deny_with_forbidden: flag,
            ..ServerFlags::default()
        };
        assert_eq!(
            resolve(flags, Some(yaml)).unwrap().deny_with_forbidden,
            want,
            "{flag:?} {yaml}"
        );
    }
    let e = resolve(
        ServerFlags::default(),
        Some("clusterID: c\nserver:\n  denyWithForbidden: maybe\n"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("/etc/c.yaml"), "{e}");
}

/// Each setting with a flag: the flag, else the file, else the default.
#[test]
fn settings_flag_over_file_over_default() {
    let yaml = "clusterID: file-id\nserver:\n  partition: aws-cn\n  hostname: file-host\n  address: 10.0.0.1\n  port: 1000\n  stateDir: /file/state\n  generateKubeconfig: /file/kc\n  kubeconfigPregenerated: true\n  kubeconfig: /file/client\n  master: https://file\n  backendMode: [CRD]\n  ec2DescribeInstancesQps: 1\n  ec2DescribeInstancesBurst: 2\n";
    let flags = ServerFlags {
        cluster_id: Some("flag-id".into()),
        partition: Some("aws-us-gov".into()),
        hostname: Some("flag-host".into()),
        address: Some("10.0.0.2".into()),
        port: Some(2000),
        state_dir: Some("/flag/state".into()),
        generate_kubeconfig: Some("/flag/kc".into()),
        kubeconfig_pregenerated: Some(false),
        kubeconfig: Some("/flag/client".into()),
        master: Some("https://flag".into()),
        backend_mode: Some(vec!["EKSConfigMap,MountedFile".into()]),
        ec2_describe_instances_qps: Some(3),
        ec2_describe_instances_burst: Some(4),
        ..ServerFlags::default()
    };
    let flag = resolve(flags, Some(yaml)).unwrap();
    let from_file = resolve(ServerFlags::default(), Some(yaml)).unwrap();
    let default = resolve(id(), None).unwrap();
    type Row = (&'static str, fn(&ServerConfig) -> String, [&'static str; 3]);
    let rows: [Row; 13] = [
        (
            "cluster id",
            |c| c.cluster_id.clone(),
            ["flag-id", "file-id", "flag-id"],
        ),
        (
            "partition",
            |c| c.partition.name().into(),
            ["aws-us-gov", "aws-cn", "aws"],
        ),
        (
            "hostname",
            |c| c.hostname.clone(),
            ["flag-host", "file-host", "localhost"],
        ),
        (
            "address",
            |c| c.address.clone(),
            ["10.0.0.2", "10.0.0.1", "127.0.0.1"],
        ),
        ("port", |c| c.port.to_string(), ["2000", "1000", "21362"]),
        (
            "state dir",
            |c| c.state_dir.display().to_string(),
            ["/flag/state", "/file/state", DEFAULT_STATE_DIR],
        ),
        (
            "generate kubeconfig",
            |c| c.generate_kubeconfig.display().to_string(),
            ["/flag/kc", "/file/kc", DEFAULT_GENERATE_KUBECONFIG],
        ),
        (
            "pregenerated",
            |c| c.kubeconfig_pregenerated.to_string(),
            ["false", "true", "false"],
        ),
        (
            "kubeconfig",
            |c| format!("{:?}", c.kubeconfig),
            ["Some(\"/flag/client\")", "Some(\"/file/client\")", "None"],
        ),
        (
            "master",
            |c| format!("{:?}", c.master),
            ["Some(\"https://flag\")", "Some(\"https://file\")", "None"],
        ),
        (
            "backend modes",
            |c| format!("{:?}", c.backend_modes),
            ["[EksConfigMap, MountedFile]", "[Crd]", "[MountedFile]"],
        ),
        (
            "qps",
            |c| c.ec2_describe_instances_qps.to_string(),
            ["3", "1", "15"],
        ),
        (
            "burst",
            |c| c.ec2_describe_instances_burst.to_string(),
            ["4", "2", "5"],
        ),
    ];
    for (name, get, [want_flag, want_file, want_default]) in rows {
        assert_eq!(get(&flag), want_flag, "{name} from the flag");
        assert_eq!(get(&from_file), want_file, "{name} from the file");
        assert_eq!(get(&default), want_default, "{name} by default");
    }
}

/// An empty flag or file value leaves the next layer in force.
#[test]
fn empty_values_are_unset() {
    let flags = ServerFlags {
        cluster_id: Some(String::new()),
        hostname: Some(String::new()),
        kubeconfig: Some(PathBuf::new()),
        ..ServerFlags::default()
    };
    let c = resolve(
        flags,
        Some("clusterID: file-id\nserver:\n  hostname: \"\"\n  kubeconfig: \"\"\n"),
    )
    .unwrap();
    assert_eq!(c.cluster_id, "file-id");
    assert_eq!(c.hostname, DEFAULT_HOSTNAME);
    assert_eq!(c.kubeconfig, None);
    assert!(matches!(
        resolve(ServerFlags::default(), Some("clusterID: \"\"\n")),
        Err(Error::EmptyClusterId)
    ));
}

/// The errors in upstream's order, and file errors naming the file and the key.
#[test]
fn errors() {
    let cases: [(ServerFlags, &str, &str); 8] = [
        (ServerFlags::default(), "{}", "cluster ID cannot be empty"),
        (id(), "server:\n  partition: mars\n", "invalid partition"),
        (
            id(),
            "server:\n  port: 70000\n",
            "configuration file \"/etc/c.yaml\": key \"server.port\": 70000 is out of range 0..=65535",
        ),
        (
            ServerFlags {
                port: Some(1),
                ..id()
            },
            "server:\n  port: nope\n",
            "key \"server.port\": expected an integer",
        ),
        (
            id(),
            "server:\n  backendMode: [DynamicFile]\n",
            "dynamicfile is set in backend-mode but dynamicfilepath is not set",
        ),
        (
            id(),
            "server:\n  dynamicfilepath: /d\n",
            "dynamicfile is not set in backend-mode but dynamicfilepath is set",
        ),
        (
            id(),
            "server:\n  mapRoles:\n    - username: u\n",
            "invalid server role mappings: server.mapRoles[0]: one of rolearn or SSO must be supplied",
        ),
        (
            id(),
            "server:\n  sourceARN: nope\n",
            "sourcearn nope is not a valid arn",
        ),
    ];
    for (flags, yaml, want) in cases {
        let e = resolve(flags, Some(yaml)).unwrap_err().to_string();
        assert!(e.contains(want), "{yaml}: {e}");
    }
    let e = resolve(
        ServerFlags {
            feature_gates: Some("Nope=true".into()),
            ..id()
        },
        None,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("unrecognized feature gate: Nope"),
        "{e}"
    );
}

#[test]
fn warnings_name_what_is_ignored() {
    let f = file(
        "clusterID: c\nnope: 1\nserver:\n  backendMode: [File]\n  mapAccounts: [\"12\"]\n  reservedPrefixConfig:\n    - backendMode: Bad\n",
    );
    let (_, warnings) = ServerConfig::resolve(ServerFlags::default(), Some(&f)).unwrap();
    assert_eq!(
        warnings,
        [
            "configuration file \"/etc/c.yaml\": unknown key \"nope\" is ignored",
            "server.reservedPrefixConfig: backend-mode \"Bad\" is not a valid mode; entry ignored",
            "warning: backend-mode \"File\" is deprecated, use \"MountedFile\" instead",
            "server.mapAccounts: \"12\" is not a 12-digit account ID and will never match",
        ]
    );
}

/// The listeners' limits: the flag, else `server.*` in the file, else the listener's
/// defaults; a bad value names the file and the key.
#[test]
fn limits_flag_over_file_over_default() {
    use std::time::Duration;
    let defaults = resolve(id(), None).unwrap().limits;
    assert_eq!(
        defaults,
        Limits {
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            request_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_connections_per_client: 0,
        }
    );
    let yaml = "clusterID: c\nserver:\n  readHeaderTimeout: 5s\n  idleTimeout: 1m\n  requestTimeout: 12s\n  maxConnections: 512\n  maxConnectionsPerClient: 32\n";
    let from_file = resolve(ServerFlags::default(), Some(yaml)).unwrap().limits;
    assert_eq!(
        from_file,
        Limits {
            read_header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(12),
            max_connections: 512,
            max_connections_per_client: 32,
        }
    );
    let flags = ServerFlags {
        read_header_timeout: Some(Duration::from_secs(1)),
        idle_timeout: Some(Duration::from_secs(2)),
        request_timeout: Some(Duration::from_secs(3)),
        max_connections: Some(4),
        max_connections_per_client: Some(5),
        ..ServerFlags::default()
    };
    let from_flags = resolve(flags, Some(yaml)).unwrap().limits;
    assert_eq!(
        from_flags,
        Limits {
            read_header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(3),
            max_connections: 4,
            max_connections_per_client: 5,
        }
    );
    for (yaml, key) in [
        (
            "clusterID: c\nserver:\n  idleTimeout: soon\n",
            "idleTimeout",
        ),
        (
            "clusterID: c\nserver:\n  maxConnections: -1\n",
            "maxConnections",
        ),
    ] {
        let e = resolve(ServerFlags::default(), Some(yaml))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/c.yaml") && e.contains(key), "{e}");
    }
}
