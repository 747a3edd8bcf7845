use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

type Layer = Option<String>;

/// Every combination of the three layers, each unset, empty or set.
#[test]
fn flag_over_env_over_file_over_default() {
    use Source::*;
    let n = None;
    #[rustfmt::skip]
    let cases: [(Layer, Layer, Layer, (&str, Source)); 27] = [
        // flag      env       file       → value and layer
        (n.clone(), n.clone(), n.clone(), ("dflt", Default)),
        (n.clone(), n.clone(), s(""),     ("dflt", Default)),
        (n.clone(), n.clone(), s("file"), ("file", File)),
        (n.clone(), s(""),     n.clone(), ("dflt", Default)),
        (n.clone(), s(""),     s(""),     ("dflt", Default)),
        (n.clone(), s(""),     s("file"), ("file", File)),
        (n.clone(), s("env"),  n.clone(), ("env", Env)),
        (n.clone(), s("env"),  s(""),     ("env", Env)),
        (n.clone(), s("env"),  s("file"), ("env", Env)),
        (s(""),     n.clone(), n.clone(), ("dflt", Default)),
        (s(""),     n.clone(), s(""),     ("dflt", Default)),
        (s(""),     n.clone(), s("file"), ("file", File)),
        (s(""),     s(""),     n.clone(), ("dflt", Default)),
        (s(""),     s(""),     s(""),     ("dflt", Default)),
        (s(""),     s(""),     s("file"), ("file", File)),
        (s(""),     s("env"),  n.clone(), ("env", Env)),
        (s(""),     s("env"),  s(""),     ("env", Env)),
        (s(""),     s("env"),  s("file"), ("env", Env)),
        (s("flag"), n.clone(), n.clone(), ("flag", Flag)),
        (s("flag"), n.clone(), s(""),     ("flag", Flag)),
        (s("flag"), n.clone(), s("file"), ("flag", Flag)),
        (s("flag"), s(""),     n.clone(), ("flag", Flag)),
        (s("flag"), s(""),     s(""),     ("flag", Flag)),
        (s("flag"), s(""),     s("file"), ("flag", Flag)),
        (s("flag"), s("env"),  n.clone(), ("flag", Flag)),
        (s("flag"), s("env"),  s(""),     ("flag", Flag)),
        (s("flag"), s("env"),  s("file"), ("flag", Flag)),
    ];
    for (flag, env, file, (want, source)) in cases {
        let row = format!("{flag:?} {env:?} {file:?}");
        let got = pick_or(flag, env, file, "dflt".to_owned());
        assert_eq!(got, (want.to_owned(), source), "{row}");
    }
}

/// Values that cannot be empty are set whatever they hold: `false`, `0` and an empty list
/// are explicit choices.
#[test]
fn false_zero_and_empty_lists_are_set() {
    assert_eq!(
        pick_or(Some(false), None, Some(true), true),
        (false, Source::Flag)
    );
    assert_eq!(pick_or(None, Some(0u16), Some(7), 9), (0, Source::Env));
    assert_eq!(
        pick_or(None, None, Some(Vec::<String>::new()), vec!["d".to_owned()]),
        (vec![], Source::File)
    );
    assert_eq!(
        pick_or(Some(PathBuf::new()), None, None, PathBuf::from("/d")),
        (PathBuf::from("/d"), Source::Default)
    );
    assert_eq!(pick::<bool>(None, None, None), None);
}

fn file(yaml: &str) -> ConfigFile {
    ConfigFile::parse(Path::new("/etc/c.yaml"), yaml).unwrap()
}

#[test]
fn layers_read_each_type_from_the_file() {
    let f = file(
        "clusterID: file\nserver:\n  port: 1234\n  stateDir: /s\n  kubeconfigPregenerated: true\n  backendMode: MountedFile CRD\n  idle: 1m30s\n  empty: \"\"\n",
    );
    let l = Layers::new(Some(&f));
    let none = Layers::new(None);
    // flag > file > default, per type.
    assert_eq!(
        l.get_or(s("flag"), "clusterID", "d".into()).unwrap(),
        "flag"
    );
    assert_eq!(l.get_or(None, "clusterID", "d".to_owned()).unwrap(), "file");
    assert_eq!(
        l.get_or(s(""), "clusterID", "d".to_owned()).unwrap(),
        "file"
    );
    assert_eq!(none.get_or(None, "clusterID", "d".to_owned()).unwrap(), "d");
    assert_eq!(l.get_or(None, "server.empty", "d".to_owned()).unwrap(), "d");
    assert_eq!(l.get_or(Some(1u16), "server.port", 2).unwrap(), 1);
    assert_eq!(l.get_or(None, "server.port", 2u16).unwrap(), 1234);
    assert_eq!(none.get_or(None, "server.port", 2u16).unwrap(), 2);
    assert_eq!(
        l.get::<PathBuf>(None, "server.stateDir").unwrap(),
        Some(PathBuf::from("/s"))
    );
    assert_eq!(l.get::<PathBuf>(None, "server.nothing").unwrap(), None);
    assert!(
        l.get_or(None, "server.kubeconfigPregenerated", false)
            .unwrap()
    );
    assert!(
        !l.get_or(Some(false), "server.kubeconfigPregenerated", true)
            .unwrap()
    );
    assert_eq!(
        l.get::<Vec<String>>(None, "server.backendMode").unwrap(),
        Some(vec!["MountedFile".to_owned(), "CRD".to_owned()])
    );
    assert_eq!(
        l.get_or(None, "server.idle", Duration::ZERO).unwrap(),
        Duration::from_secs(90)
    );
    assert_eq!(l.file_value::<String>("clusterID").unwrap(), s("file"));
    assert_eq!(none.file_value::<String>("clusterID").unwrap(), None);
}

/// A value of the wrong shape names the file and the key, also when a flag overrides it.
#[test]
fn bad_file_values_name_the_file_and_the_key() {
    let f = file("server:\n  port: 70000\n  qps: -1\n  pregenerated: maybe\n  idle: soon\n");
    let l = Layers::new(Some(&f));
    let cases = [
        (
            l.get::<u16>(Some(1), "server.port").map(|_| ()),
            "70000 is out of range 0..=65535",
        ),
        (
            l.get::<u32>(None, "server.qps").map(|_| ()),
            "-1 is out of range 0..=4294967295",
        ),
        (
            l.get::<bool>(None, "server.pregenerated").map(|_| ()),
            "expected a boolean",
        ),
        (
            l.get::<Duration>(None, "server.idle").map(|_| ()),
            "invalid duration \"soon\"",
        ),
    ];
    for (got, want) in cases {
        let e = got.unwrap_err().to_string();
        assert!(e.contains("/etc/c.yaml") && e.contains(want), "{e}");
    }
}
