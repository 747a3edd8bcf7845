//! `validate`: golden text and JSON outputs on broken aws-auth ConfigMaps (the typo
//! cases operators hit: a mis-indented or misspelt `mapRoles`/`rolearn`, `groups` as a
//! string, a missing `username`, a role ARN with a path, YAML that does not parse,
//! `mapUsers` inside `mapRoles`), on config files and on a DynamicFile.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{TestEnv, golden};

fn dir(sub: &str) -> PathBuf {
    common::repo_root().join("tests/golden/validate").join(sub)
}

/// Runs `validate args` in `sub` (so findings name files relative to it).
fn validate(env: &TestEnv, sub: &str, args: &[&str]) -> Output {
    env.command(common::bin())
        .current_dir(dir(sub))
        .arg("validate")
        .args(args)
        .output()
        .unwrap()
}

/// Checks both outputs of `validate args` against `<golden>.txt` and `<golden>.json`,
/// and that the exit code says whether there were errors.
fn check(env: &TestEnv, sub: &str, golden_name: &str, args: &[&str]) {
    let text = validate(env, sub, args);
    let json = validate(env, sub, &[args, &["-o", "json"]].concat());
    let report: serde_json::Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("{golden_name}: {e}: {}", common::describe(&json)));
    let code = if report["errors"] == 0 { 0 } else { 1 };
    assert_eq!(
        text.status.code(),
        Some(code),
        "{golden_name}: {}",
        common::describe(&text)
    );
    assert_eq!(json.status.code(), Some(code), "{golden_name}");
    golden::check(
        &format!("validate/{golden_name}.txt"),
        &String::from_utf8(text.stdout).unwrap(),
    );
    golden::check(
        &format!("validate/{golden_name}.json"),
        &String::from_utf8(json.stdout).unwrap(),
    );
}

#[test]
fn aws_auth_variants() {
    let env = TestEnv::new();
    let mut names: Vec<String> = std::fs::read_dir(dir("aws-auth"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 12, "{names:?}");
    for name in names {
        let stem = name.trim_end_matches(".yaml");
        check(
            &env,
            "aws-auth",
            &format!("aws-auth/{stem}"),
            &["--aws-auth", &name],
        );
    }
}

#[test]
fn config_files_and_dynamic_files() {
    let env = TestEnv::new();
    check(
        &env,
        "config",
        "config/typo",
        &["-c", "typo.yaml", "--dynamic-file", "access-entries.json"],
    );
    check(&env, "config", "config/reserved", &["-c", "reserved.yaml"]);
}

#[test]
fn warnings_fail_only_with_strict() {
    let env = TestEnv::new();
    let args = ["--aws-auth", "path-in-role.yaml"];
    assert_eq!(validate(&env, "aws-auth", &args).status.code(), Some(0));
    let strict = validate(&env, "aws-auth", &[&args[..], &["--strict"]].concat());
    assert_eq!(strict.status.code(), Some(1));
    let clean = validate(&env, "aws-auth", &["--aws-auth", "ok.yaml", "--strict"]);
    assert_eq!(clean.status.code(), Some(0), "{}", common::describe(&clean));
}

#[test]
fn nothing_to_validate_is_a_usage_error() {
    let env = TestEnv::new();
    let out = validate(&env, "aws-auth", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to validate"));
}
