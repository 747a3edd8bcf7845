//! Logs in upstream's logrus shapes, parsed the way a logrus-oriented query parses them:
//! text lines `time="…" level=… msg=… key=value`, JSON objects with `time`, `level`, `msg`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::{Command, Output};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_aws-iam-authenticator")
}

/// `init` in a fresh state dir with `-l <format>`: it logs at info with fields.
fn init(format: &str) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["init", "-i", "my-cluster", "-l", format, "--state-dir"])
        .arg(dir.path().join("state"))
        .env_remove("AWS_IAM_AUTHENTICATOR_LOG_FILTER")
        .env_remove("AWS_IAM_AUTHENTICATOR_LOG_VERBOSITY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (dir, out)
}

/// One logrus text line as its key/value pairs, in order. A value is either bare
/// (`[A-Za-z0-9-._/@^+]*`) or a Go-quoted string; anything else fails the parse.
fn parse_text(line: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = &rest[..eq];
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
            return None;
        }
        rest = &rest[eq + 1..];
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i,
                    '\\' => match chars.next()?.1 {
                        'n' => v.push('\n'),
                        't' => v.push('\t'),
                        c @ ('"' | '\\') => v.push(c),
                        _ => return None,
                    },
                    c => v.push(c),
                }
            };
            value = v;
            rest = &q[end + 1..];
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            value = rest[..end].to_owned();
            if !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c))
            {
                return None;
            }
            rest = &rest[end..];
        }
        pairs.push((key.to_owned(), value));
        rest = match rest.strip_prefix(' ') {
            Some(r) => r,
            None if rest.is_empty() => rest,
            None => return None,
        };
    }
    Some(pairs)
}

fn assert_rfc3339_utc(t: &str) {
    OffsetDateTime::parse(t, &Rfc3339).unwrap_or_else(|e| panic!("{t}: {e}"));
    assert!(t.ends_with('Z') && t.len() == 20, "{t}");
}

#[test]
fn text_logs_are_logrus_text_lines() {
    let (dir, out) = init("text");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.is_empty());
    let mut lines = Vec::new();
    for line in stderr.lines() {
        let pairs = parse_text(line).unwrap_or_else(|| panic!("not a logrus line: {line}"));
        let keys: Vec<_> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys[..3], ["time", "level", "msg"], "{line}");
        // logrus sorts the other keys.
        assert!(keys[3..].is_sorted(), "{line}");
        assert_rfc3339_utc(&pairs[0].1);
        assert_eq!(pairs[1].1, "info", "{line}");
        lines.push(pairs);
    }
    let saving = lines
        .iter()
        .find(|p| p[2].1 == "saving new key and certificate")
        .unwrap_or_else(|| panic!("{stderr}"));
    let cert = dir.path().join("state/cert.pem");
    assert!(
        saving.contains(&("certPath".to_owned(), cert.display().to_string())),
        "{saving:?}"
    );

    // A warning is spelled as logrus spells it.
    let out = Command::new(bin())
        .args(["init", "-i", "c", "-l", "yaml", "--state-dir"])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let first = parse_text(stderr.lines().next().unwrap()).unwrap();
    assert_eq!(first[1], ("level".into(), "warning".into()), "{stderr}");
    assert_eq!(
        first[2].1,
        "Unknown log format specified (yaml), will use default text formatter instead."
    );
}

#[test]
fn json_logs_are_logrus_json_objects() {
    let (dir, out) = init("json");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let mut saw_fields = false;
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let obj = v.as_object().unwrap();
        assert_rfc3339_utc(obj["time"].as_str().unwrap());
        assert_eq!(obj["level"], "info", "{line}");
        assert!(obj["msg"].is_string(), "{line}");
        for gone in ["timestamp", "message", "fields"] {
            assert!(!obj.contains_key(gone), "{line}");
        }
        if obj["msg"] == "saving new key and certificate" {
            let cert = dir.path().join("state/cert.pem");
            assert_eq!(obj["certPath"], cert.display().to_string());
            saw_fields = true;
        }
        // Go marshals a map with its keys sorted.
        let keys: Vec<_> = obj.keys().collect();
        assert!(keys.is_sorted(), "{line}");
    }
    assert!(saw_fields, "{stderr}");
}

#[test]
fn a_failing_command_ends_with_a_fatal_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["server", "-i", "c", "-l", "json", "--backend-mode=bogus"])
        .arg("--state-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let last: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "fatal", "{stderr}");
    assert!(last["msg"].as_str().unwrap().contains("bogus"), "{stderr}");
}
