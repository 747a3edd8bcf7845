//! The pure modules stay pure: no async runtime, no metrics, no server configuration,
//! and the `aws` leaf imports nothing else of the crate but Go's quoting (`go`, a leaf
//! too). The module map in `src/lib.rs` names exactly the modules there are, and the
//! top-level modules import each other without cycles.

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

/// The top-level modules `src/lib.rs` declares.
fn top_level_modules() -> Vec<String> {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

/// The modules the map in `src/lib.rs`'s documentation names: each row's first cell,
/// `[`name`]` or `[`a::b`]`.
fn mapped_modules() -> Vec<String> {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| {
            let cell = l.strip_prefix("//! |")?.split('|').next()?.trim();
            let name = cell.strip_prefix("[`")?.strip_suffix("`]")?;
            Some(name.to_owned())
        })
        .collect()
}

/// Whether `src/` holds the module at `path` (`a` or `a::b`), as a file or a directory.
fn module_exists(path: &str) -> bool {
    let rel = path.replace("::", "/");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    src.join(format!("{rel}.rs")).is_file() || src.join(&rel).join("mod.rs").is_file()
}

#[test]
fn the_module_map_names_every_top_level_module_and_nothing_else() {
    let declared = top_level_modules();
    let mapped = mapped_modules();
    assert!(declared.len() > 10, "lib.rs declares {declared:?}");
    for module in &declared {
        assert!(
            mapped.contains(module),
            "src/lib.rs declares `{module}` but its module map has no row for it"
        );
    }
    for name in &mapped {
        let top = name.split("::").next().unwrap();
        assert!(
            declared.iter().any(|d| d == top),
            "src/lib.rs's module map names `{name}`, but lib.rs declares no module `{top}`"
        );
        assert!(
            module_exists(name),
            "src/lib.rs's module map names `{name}`, which has no source file"
        );
    }
    let mut seen = std::collections::HashSet::new();
    for name in &mapped {
        assert!(seen.insert(name), "the module map names `{name}` twice");
    }
}

/// The top-level modules named by `crate::` paths in `code`, including those of a
/// `crate::{a, b::c}` group.
fn crate_references(code: &str) -> Vec<String> {
    let ident = |s: &str| {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect::<String>()
    };
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            out.push(ident(rest));
            continue;
        };
        // The group's top-level items, skipping nested groups.
        let (mut depth, mut item) = (0usize, String::new());
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => out.push(ident(&std::mem::take(&mut item))),
                _ if depth == 0 => item.push(c),
                _ => {}
            }
        }
        out.push(ident(&item));
    }
    out.retain(|m| !m.is_empty());
    out
}

/// Which top-level modules each one imports in production code (`tests.rs` files and
/// `#[cfg(test)]` blocks left out), with a file that does it, for messages.
fn import_graph() -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>
{
    let modules = top_level_modules();
    let mut graph = std::collections::BTreeMap::new();
    for module in &modules {
        let edges: &mut std::collections::BTreeMap<String, String> =
            graph.entry(module.clone()).or_default();
        for (path, text) in sources(module) {
            if path.ends_with("/tests.rs") {
                continue;
            }
            for target in crate_references(&production(&text)) {
                if &target != module && modules.contains(&target) {
                    let rel = path
                        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                        .unwrap_or(&path);
                    edges
                        .entry(target)
                        .or_insert_with(|| rel.trim_start_matches('/').to_owned());
                }
            }
        }
    }
    graph
}

/// A cycle of `graph` as the modules along it (the first repeated at the end), if any.
fn find_cycle(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
) -> Option<Vec<String>> {
    // Depth-first: a module met again while still on the path closes a cycle.
    fn visit(
        graph: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut std::collections::HashSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(graph, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = std::collections::HashSet::new();
    graph
        .keys()
        .find_map(|start| visit(graph, start, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    let graph = import_graph();
    // The graph is real: a few edges every version of the crate has.
    assert!(graph["cli"].contains_key("server"), "{graph:?}");
    assert!(graph["token"].contains_key("sts"), "{graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| format!("{} → {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
            .collect();
        panic!(
            "import cycle {}:\n  {}",
            cycle.join(" → "),
            steps.join("\n  ")
        );
    }
}

#[test]
fn crate_references_read_paths_and_groups() {
    assert_eq!(
        crate_references("use crate::config::{Limits, X};\nlet a = crate::sts::parse(x);"),
        ["config", "sts"]
    );
    assert_eq!(
        crate_references("use crate::{\n    aws::{Partition, endpoints},\n    go,\n};"),
        ["aws", "go"]
    );
}

#[test]
fn a_cycle_is_found_and_named() {
    let edge = |pairs: &[(&str, &str)]| {
        let mut g: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> =
            std::collections::BTreeMap::new();
        for (a, b) in pairs {
            g.entry((*a).to_owned())
                .or_default()
                .insert((*b).to_owned(), String::new());
            g.entry((*b).to_owned()).or_default();
        }
        g
    };
    assert_eq!(
        find_cycle(&edge(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_cycle(&edge(&[("a", "b"), ("b", "c"), ("c", "b")])),
        Some(vec!["b".to_owned(), "c".to_owned(), "b".to_owned()])
    );
}
