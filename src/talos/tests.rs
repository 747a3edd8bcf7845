use super::*;
use crate::init::Owner;
use crate::logging::LogFormat;
use std::ffi::OsString;

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn settings(list: &[(&str, &str)]) -> Settings {
    match Plan::from_vars(vars(list)).unwrap() {
        Plan::Run(s) => *s,
        Plan::Unconfigured => panic!("{list:?}: unconfigured"),
    }
}

fn error(list: &[(&str, &str)]) -> String {
    Plan::from_vars(vars(list)).unwrap_err().to_string()
}

#[test]
fn defaults() {
    let s = settings(&[("CLUSTER_ID", "my-cluster"), ("PATH", "/bin")]);
    assert_eq!(
        s,
        Settings {
            cluster_id: "my-cluster".into(),
            hostname: "localhost".into(),
            address: "127.0.0.1".into(),
            config_file: None,
            log_format: LogFormat::Text,
            state_dir: DEFAULT_STATE_DIR.into(),
            key_owner: Owner {
                uid: 65532,
                gid: None
            },
            serve: None,
        }
    );
    assert_eq!(
        executing_line(&s.init_args()),
        "executing: /usr/local/bin/aws-iam-authenticator [init -i=my-cluster --hostname=localhost \
         --address=127.0.0.1 --state-dir=/usr/local/lib/aws-iam-authenticator \
         --generate-kubeconfig=/usr/local/lib/aws-iam-authenticator/kubeconfig.yaml \
         --write-config=/usr/local/lib/aws-iam-authenticator/config.yaml --key-owner=65532 \
         --state-dir-mode=755 --log-format=text]"
    );
    assert_eq!(s.server_args(), None);
}

#[test]
fn unconfigured_unless_one_of_our_variables_is_set() {
    let cases: &[&[(&str, &str)]] = &[
        &[],
        // How to log is not what to do.
        &[("LOG_FORMAT", "json")],
        // Empty values are unset values.
        &[("CLUSTER_ID", ""), ("HOSTNAME", " "), ("SERVE", "")],
        // What Talos gives every service from the machine's environment.
        &[
            ("PATH", "/usr/bin"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("https_proxy", "http://proxy:3128"),
            ("HTTP_PROXY", "http://proxy:3128"),
            ("NO_PROXY", "10.0.0.0/8"),
            ("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
            ("KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID", "x"),
        ],
        // A later empty value unsets an earlier one.
        &[("CLUSTER_ID", "c"), ("CLUSTER_ID", "")],
    ];
    for env in cases {
        assert_eq!(
            Plan::from_vars(vars(env)).unwrap(),
            Plan::Unconfigured,
            "{env:?}"
        );
    }
    // Even unconfigured, a bad LOG_FORMAT is reported (the one line must be readable).
    assert!(error(&[("LOG_FORMAT", "yaml")]).starts_with("invalid LOG_FORMAT"));
    // Every variable of the list counts on its own (as a configuration, a partial
    // one, or a bad one).
    for k in CONFIG_VARIABLES {
        assert!(
            !matches!(Plan::from_vars(vars(&[(k, "x")])), Ok(Plan::Unconfigured)),
            "{k} alone should count"
        );
    }
}

#[test]
fn partial_configurations_are_errors() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("HOSTNAME", "auth.example.com")],
            "CLUSTER_ID is required",
        ),
        (&[("ADDRESS", "10.0.0.1")], "CLUSTER_ID is required"),
        (&[("KEY_OWNER", "1000")], "CLUSTER_ID is required"),
        (&[("SERVE", "true")], "CLUSTER_ID is required"),
        (&[("SERVE", "false")], "CLUSTER_ID is required"),
        (&[("STATE_DIR", "/x")], "CLUSTER_ID is required"),
        (
            &[("STS_CA_FILE", "/x.pem")],
            "STS_CA_FILE is set but SERVE is not true",
        ),
    ];
    for (env, want) in cases {
        let e = error(env);
        assert!(e.starts_with(want), "{env:?}: {e}");
    }
}

#[test]
fn bad_inputs_name_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("CLUSTER_ID", "  "), ("HOSTNAME", "h")],
            "CLUSTER_ID is required",
        ),
        (
            &[("CLUSTER_ID", "c"), ("LOG_FORMAT", "yaml")],
            "invalid LOG_FORMAT \"yaml\"",
        ),
        (
            &[("CLUSTER_ID", "c"), ("ADDRESS", "example.com")],
            "invalid ADDRESS \"example.com\"",
        ),
        (
            &[("CLUSTER_ID", "c"), ("HOSTNAME", "a b")],
            "invalid HOSTNAME \"a b\"",
        ),
        (
            &[("CLUSTER_ID", "c"), ("KEY_OWNER", "nobody")],
            "invalid KEY_OWNER",
        ),
        (
            &[("CLUSTER_ID", "c"), ("STATE_DIR", "rel")],
            "invalid STATE_DIR \"rel\"",
        ),
        (
            &[("CLUSTER_ID", "c"), ("CONFIG_FILE", "/nonexistent/c.yaml")],
            "invalid CONFIG_FILE /nonexistent/c.yaml",
        ),
        (
            &[
                ("CLUSTER_ID", "c"),
                (
                    "CONFIG_FILE",
                    "/usr/local/lib/aws-iam-authenticator/config.yaml",
                ),
            ],
            "must not be inside STATE_DIR",
        ),
        (
            &[("CLUSTER_ID", "c"), ("SERVE", "yes")],
            "invalid SERVE \"yes\": expected true or false",
        ),
        (
            &[("CLUSTER_ID", "c"), ("HEALTH_ADDRESS", "0.0.0.0:1")],
            "HEALTH_ADDRESS is set but SERVE is not true",
        ),
        (
            &[
                ("CLUSTER_ID", "c"),
                ("SERVE", "false"),
                ("STS_RESOLVE", "a=1.2.3.4:5"),
            ],
            "STS_RESOLVE is set but SERVE is not true",
        ),
        (
            &[
                ("CLUSTER_ID", "c"),
                ("SERVE", "true"),
                ("HEALTH_ADDRESS", ":21363"),
            ],
            "invalid HEALTH_ADDRESS \":21363\"",
        ),
        (
            &[
                ("CLUSTER_ID", "c"),
                ("SERVE", "true"),
                ("STS_RESOLVE", "sts.amazonaws.com"),
            ],
            "invalid STS_RESOLVE: \"sts.amazonaws.com\" is not HOST=IP:PORT",
        ),
        (
            &[
                ("CLUSTER_ID", "c"),
                ("SERVE", "true"),
                ("STS_CA_FILE", "ca.pem"),
            ],
            "invalid STS_CA_FILE \"ca.pem\"",
        ),
    ];
    for (env, want) in cases {
        let e = error(env);
        assert!(e.contains(want), "{env:?}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn the_last_value_of_a_repeated_variable_wins() {
    // A patch applied twice, then edited: every variable twice, the new values last.
    let s = settings(&[
        ("CLUSTER_ID", "old"),
        ("HOSTNAME", "old.example"),
        ("LOG_FORMAT", "text"),
        ("SERVE", "false"),
        ("CLUSTER_ID", "new"),
        ("HOSTNAME", "new.example"),
        ("LOG_FORMAT", "json"),
        ("SERVE", "true"),
    ]);
    assert_eq!(
        (s.cluster_id.as_str(), s.hostname.as_str()),
        ("new", "new.example")
    );
    assert_eq!(s.log_format, LogFormat::Json);
    assert!(s.serve.is_some());
    // Only the winning value must be UTF-8.
    use std::os::unix::ffi::OsStringExt;
    let bad = OsString::from_vec(vec![0xff]);
    let env = [
        (OsString::from("CLUSTER_ID"), bad.clone()),
        (OsString::from("CLUSTER_ID"), OsString::from("c")),
    ];
    assert!(matches!(Plan::from_vars(env), Ok(Plan::Run(_))));
    let env = [
        (OsString::from("CLUSTER_ID"), OsString::from("c")),
        (OsString::from("CLUSTER_ID"), bad),
    ];
    assert_eq!(
        Plan::from_vars(env).unwrap_err().to_string(),
        "invalid environment: CLUSTER_ID is not valid UTF-8"
    );
    // The same value twice is no error either.
    settings(&[("CLUSTER_ID", "c"), ("CLUSTER_ID", "c")]);
    // An earlier bad value is overridden, not reported.
    settings(&[
        ("CLUSTER_ID", "c"),
        ("ADDRESS", "bad"),
        ("ADDRESS", "10.0.0.1"),
    ]);
    assert_eq!(
        log_format_from(vars(&[("LOG_FORMAT", "text"), ("LOG_FORMAT", "json")])),
        Some(LogFormat::Json)
    );
}

#[test]
fn last_wins_keeps_the_first_place_and_the_last_value() {
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Env<'_>, Env<'_>)] = &[
        (&[], &[]),
        (&[("A", "1")], &[("A", "1")]),
        (&[("A", "1"), ("A", "2")], &[("A", "2")]),
        (
            &[("A", "1"), ("B", "x"), ("A", "2"), ("C", "y"), ("A", "3")],
            &[("A", "3"), ("B", "x"), ("C", "y")],
        ),
        (&[("A", "1"), ("A", "")], &[("A", "")]),
    ];
    for (input, want) in cases {
        let got = last_wins(input.iter().copied());
        assert_eq!(got, want.to_vec(), "{input:?}");
    }
}

#[test]
fn serve_runs_the_server_on_the_state_dir() {
    let s = settings(&[
        ("CLUSTER_ID", "c"),
        ("SERVE", "True"),
        ("STATE_DIR", "/state"),
        ("HEALTH_ADDRESS", "127.0.0.1:8081"),
        (
            "STS_RESOLVE",
            "sts.us-west-2.amazonaws.com=10.0.0.9:443, sts.amazonaws.com=10.0.0.8:443",
        ),
        ("STS_CA_FILE", "/etc/ca.pem"),
        ("LOG_FORMAT", "json"),
    ]);
    assert_eq!(
        go_slice(&s.server_args().unwrap()),
        "[server --config=/state/config.yaml --state-dir=/state \
         --generate-kubeconfig=/state/kubeconfig.yaml --kubeconfig-pregenerated=true \
         --health-address=127.0.0.1:8081 \
         --sts-resolve=sts.us-west-2.amazonaws.com=10.0.0.9:443 \
         --sts-resolve=sts.amazonaws.com=10.0.0.8:443 --sts-ca-file=/etc/ca.pem \
         --log-format=json]"
    );
    let s = settings(&[("CLUSTER_ID", "c"), ("SERVE", "1")]);
    assert_eq!(
        s.server_args().unwrap(),
        [
            "server",
            "--config=/usr/local/lib/aws-iam-authenticator/config.yaml",
            "--state-dir=/usr/local/lib/aws-iam-authenticator",
            "--generate-kubeconfig=/usr/local/lib/aws-iam-authenticator/kubeconfig.yaml",
            "--kubeconfig-pregenerated=true",
            "--log-format=text",
        ]
    );
    for off in ["false", "0", "F", ""] {
        let s = settings(&[("CLUSTER_ID", "c"), ("SERVE", off)]);
        assert_eq!(s.server_args(), None, "{off:?}");
    }
}

#[test]
fn the_cluster_id_may_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let with = dir.path().join("with.yaml");
    std::fs::write(&with, "clusterID: from-file\n").unwrap();
    let without = dir.path().join("without.yaml");
    std::fs::write(&without, "server: {}\n").unwrap();
    let with = with.to_str().unwrap();
    let without = without.to_str().unwrap();

    assert_eq!(settings(&[("CONFIG_FILE", with)]).cluster_id, "from-file");
    assert_eq!(
        settings(&[("CONFIG_FILE", with), ("CLUSTER_ID", "from-file")]).cluster_id,
        "from-file"
    );
    assert!(
        error(&[("CONFIG_FILE", with), ("CLUSTER_ID", "other")])
            .contains("its clusterID \"from-file\" disagrees with CLUSTER_ID \"other\"")
    );
    assert!(error(&[("CONFIG_FILE", without)]).starts_with("CLUSTER_ID is required"));
    assert!(
        error(&[("CONFIG_FILE", without), ("HOSTNAME", "h")]).starts_with("CLUSTER_ID is required")
    );
}

#[test]
fn log_format_peek() {
    assert_eq!(
        log_format_from(vars(&[("LOG_FORMAT", "json")])),
        Some(LogFormat::Json)
    );
    assert_eq!(log_format_from(vars(&[("LOG_FORMAT", "x")])), None);
    assert_eq!(log_format_from(vars(&[])), None);
}

#[test]
fn go_slice_format() {
    assert_eq!(go_slice(&[]), "[]");
    assert_eq!(go_slice(&["a".into(), "b c".into()]), "[a b c]");
}

#[test]
fn the_served_server_gets_the_allocator_defaults_unless_set() {
    let os = |k: &str, v: &str| (OsString::from(k), OsString::from(v));
    let got = with_server_defaults(vec![os("CLUSTER_ID", "c")]);
    assert_eq!(
        got,
        vec![
            os("CLUSTER_ID", "c"),
            os("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
            os("MIMALLOC_PURGE_DELAY", "0"),
        ]
    );
    // The ExtensionServiceConfig's own value stays.
    let got = with_server_defaults(vec![os("MIMALLOC_PURGE_DELAY", "10")]);
    assert_eq!(
        got,
        vec![
            os("MIMALLOC_PURGE_DELAY", "10"),
            os("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
        ]
    );
}
