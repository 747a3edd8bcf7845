//! The pure modules stay pure: no async runtime, no metrics, no server configuration,
//! and the `aws` leaf imports nothing else of the crate but Go's quoting (`go`, a leaf
//! too).

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on a missing source by design

use std::path::Path;

/// Every `.rs` file under `src/<module>` (or `src/<module>.rs`), with its text.
fn sources(module: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let file = root.join(format!("{module}.rs"));
    if file.is_file() {
        out.push((
            file.display().to_string(),
            std::fs::read_to_string(&file).unwrap(),
        ));
    }
    let dir = root.join(module);
    if dir.is_dir() {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push((
                        p.display().to_string(),
                        std::fs::read_to_string(&p).unwrap(),
                    ));
                }
            }
        }
    }
    assert!(!out.is_empty(), "no sources for {module}");
    out
}

/// The code lines of a file, without comments and without its `#[cfg(test)] mod tests`
/// (tests may use anything).
fn production(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

const FORBIDDEN: [&str; 6] = [
    "tokio",
    "async ",
    "await",
    "metrics",
    "ServerConfig",
    "hyper",
];

#[test]
fn pure_modules_import_nothing_async_no_metrics_no_server_config() {
    for module in ["aws", "arn", "go"] {
        for (path, text) in sources(module) {
            let code = production(&text);
            for word in FORBIDDEN {
                assert!(!code.contains(word), "{path} mentions {word:?}");
            }
        }
    }
}

#[test]
fn the_aws_and_go_leaves_import_nothing_else_of_the_crate() {
    for (path, text) in sources("go") {
        assert!(
            !production(&text).contains("crate::"),
            "{path} imports the crate"
        );
    }
    for (path, text) in sources("aws") {
        for line in production(&text).lines() {
            let line = line.trim();
            if line.starts_with("use crate::") || line.starts_with("pub use crate::") {
                assert!(
                    line.contains("crate::aws") || line.contains("crate::go::"),
                    "{path} imports from outside the leaf: {line}"
                );
            }
            assert!(
                !line.contains("crate::")
                    || line.contains("crate::aws")
                    || line.contains("crate::go::"),
                "{path}: {line}"
            );
        }
    }
}

/// `token` builds on `sts` (it hands STS a validated URL and reads the caller back); `sts`
/// knows nothing of tokens.
#[test]
fn sts_does_not_import_token() {
    for (path, text) in sources("sts") {
        let code = production(&text);
        assert!(!code.contains("crate::token"), "{path} imports token");
    }
}
