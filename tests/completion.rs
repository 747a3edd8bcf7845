//! `completion`: a script per shell; without a shell, the help on stdout and exit 0.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::{Command, Output};

fn completion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aws-iam-authenticator"))
        .arg("completion")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn without_a_shell_it_prints_help_on_stdout() {
    let out = completion(&[]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        assert!(help.contains(shell), "{help}");
    }
}

#[test]
fn every_shell_gets_a_script() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = completion(&[shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains("aws-iam-authenticator"), "{shell}");
        assert!(script.contains("talos-init"), "{shell}");
        assert!(script.contains("explain"), "{shell}");
        assert!(script.contains("validate"), "{shell}");
    }
    assert!(!completion(&["tcsh"]).status.success());
}

#[test]
fn bash_accepts_the_bash_script() {
    let out = completion(&["bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("completion.bash");
    std::fs::write(&path, &out.stdout).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(check.status.success(), "{check:?}");
}
