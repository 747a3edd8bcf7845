//! The Talos system extension's sources and the image tree built from them, checked as
//! Talos and its `extensions-validator` check them, and more strictly: Talos decodes the
//! service spec leniently (a misplaced key is silently dropped), so here every key must
//! be where Talos reads it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SPEC: &str = include_str!("../extension/aws-iam-authenticator.yaml");
const MANIFEST: &str = include_str!("../manifest.yaml");
const PKG: &str = include_str!("../pkg.yaml");
const VARS: &str = include_str!("../vars.yaml");

// ---- A mirror of Talos's extension service `Spec` (pkg/machinery/extensions/services). ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    container: Container,
    #[serde(default)]
    depends: Vec<Dependency>,
    restart: Option<String>,
    #[serde(default, rename = "logToConsole")]
    _log_to_console: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Container {
    #[serde(default)]
    entrypoint: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    environment: Vec<String>,
    #[serde(default, rename = "environmentFile")]
    _environment_file: Option<String>,
    #[serde(default)]
    mounts: Vec<Mount>,
    #[serde(default)]
    security: Option<Security>,
}

/// opencontainers runtime-spec `Mount`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mount {
    destination: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    options: Vec<String>,
    #[serde(default, rename = "uidMappings")]
    _uid_mappings: Vec<IdMapping>,
    #[serde(default, rename = "gidMappings")]
    _gid_mappings: Vec<IdMapping>,
}

/// opencontainers runtime-spec `LinuxIDMapping`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdMapping {
    #[serde(rename = "containerID")]
    _container_id: u32,
    #[serde(rename = "hostID")]
    _host_id: u32,
    #[serde(rename = "size")]
    _size: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Security {
    #[serde(default, rename = "writeableRootfs")]
    writeable_rootfs: bool,
    #[serde(default, rename = "writeableSysfs")]
    _writeable_sysfs: bool,
    #[serde(default, rename = "maskedPaths")]
    _masked_paths: Option<Vec<String>>,
    #[serde(default, rename = "readonlyPaths")]
    _readonly_paths: Option<Vec<String>>,
    #[serde(default, rename = "rootfsPropagation")]
    _rootfs_propagation: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Dependency {
    service: Option<String>,
    path: Option<String>,
    network: Option<Vec<String>>,
    time: Option<bool>,
    configuration: Option<bool>,
}

/// `Spec.Validate()` as Talos and the validator run it.
fn validate_spec(spec: &Spec) -> Result<(), String> {
    let mut errors = Vec::new();
    if spec.name.is_empty()
        || !spec
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        errors.push(format!("name {:?} is invalid", spec.name));
    }
    match spec.restart.as_deref() {
        Some("always" | "never" | "untilSuccess") => {}
        other => errors.push(format!("restart kind is invalid: {other:?}")),
    }
    if spec.container.entrypoint.is_empty() {
        errors.push("container endpoint can't be empty".to_owned());
    }
    for dep in &spec.depends {
        let set = [
            dep.service.is_some(),
            dep.path.is_some(),
            dep.network.is_some(),
            dep.time.is_some(),
            dep.configuration.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        match set {
            0 => errors.push("no dependency specified".to_owned()),
            1 => {}
            _ => errors.push("more than a single dependency is set".to_owned()),
        }
        if let Some(p) = &dep.path
            && !p.starts_with('/')
        {
            errors.push(format!("path is not absolute: {p:?}"));
        }
        for n in dep.network.iter().flatten() {
            if !["addresses", "connectivity", "hostname", "etcfiles"].contains(&n.as_str()) {
                errors.push(format!("invalid network dependency {n:?}"));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn parse_spec(text: &str) -> Result<Spec, String> {
    let spec: Spec = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    validate_spec(&spec)?;
    Ok(spec)
}

#[test]
fn service_spec_is_strictly_valid_and_does_what_the_design_says() {
    let spec = parse_spec(SPEC).unwrap();
    assert_eq!(spec.name, "aws-iam-authenticator");
    assert_eq!(spec.restart.as_deref(), Some("untilSuccess"));
    assert_eq!(
        spec.container.entrypoint,
        "/usr/local/bin/aws-iam-authenticator"
    );
    assert_eq!(spec.container.args, ["talos-init"]);
    // No environment in the spec: ExtensionServiceConfig values would be shadowed by it.
    assert!(spec.container.environment.is_empty());
    // Writes must reach the host, not a tmpfs overlay dropped on exit.
    assert!(
        spec.container
            .security
            .as_ref()
            .is_none_or(|s| !s.writeable_rootfs)
    );
    let [state, certs] = spec.container.mounts.as_slice() else {
        panic!("two mounts expected: {:?}", spec.container.mounts);
    };
    assert_eq!(
        state.source.as_deref(),
        Some("/var/lib/aws-iam-authenticator")
    );
    assert_eq!(state.destination, "/usr/local/lib/aws-iam-authenticator");
    assert_eq!(state.kind.as_deref(), Some("bind"));
    assert_eq!(state.options, ["rbind", "rw"]);
    // The destination is talos-init's default STATE_DIR.
    assert_eq!(
        state.destination,
        aws_iam_authenticator::talos::DEFAULT_STATE_DIR
    );
    // The host's CA roots, read-only, where the system trust store is looked up.
    assert_eq!(certs.source.as_deref(), Some("/etc/ssl/certs"));
    assert_eq!(certs.destination, "/etc/ssl/certs");
    assert_eq!(certs.kind.as_deref(), Some("bind"));
    assert_eq!(certs.options, ["rbind", "ro"]);
}

/// What each dependency waits for, one line each.
fn dependencies(spec: &Spec) -> Vec<String> {
    spec.depends
        .iter()
        .map(|d| match d {
            Dependency {
                service: Some(s), ..
            } => format!("service {s}"),
            Dependency { path: Some(p), .. } => format!("path {p}"),
            Dependency {
                network: Some(n), ..
            } => format!("network {}", n.join(",")),
            Dependency { time: Some(t), .. } => format!("time {t}"),
            Dependency {
                configuration: Some(c),
                ..
            } => format!("configuration {c}"),
            _ => "nothing".to_owned(),
        })
        .collect()
}

#[test]
fn the_service_waits_only_for_what_every_node_gets() {
    let spec = parse_spec(SPEC).unwrap();
    // Boot waits for every ext-* service to be Up or Finished; a condition that some
    // node never meets (an ExtensionServiceConfig on a worker, a default route on an
    // isolated network, a file that never appears) keeps that node in Booting.
    assert_eq!(
        dependencies(&spec),
        [
            "service cri",
            "network addresses,hostname,etcfiles",
            "time true"
        ]
    );
}

#[test]
fn every_mount_has_a_mount_point_in_the_container_rootfs() {
    let spec = parse_spec(SPEC).unwrap();
    let script = include_str!("../scripts/build-extension.sh").replace("$name", &spec.name);
    // The spec's mounts, and the directory of the config file the README's
    // ExtensionServiceConfig mounts (configFiles' mountPath).
    let mut points: Vec<String> = spec
        .container
        .mounts
        .iter()
        .map(|m| m.destination.clone())
        .collect();
    points.push("/usr/local/etc/aws-iam-authenticator".to_owned());
    for dest in &points {
        let needle = format!("\"$ctr{dest}\"");
        assert!(
            script.contains(&needle),
            "scripts/build-extension.sh makes no {needle}"
        );
        assert!(PKG.contains(&needle), "pkg.yaml makes no {needle}");
    }
}

/// Every key Talos's `Spec` has, each where Talos reads it (its documented example).
const FULL_SPEC: &str = "\
name: hello-world
container:
  entrypoint: ./hello-world
  args: [--msg, x]
  environment:
    - PATH=/sbin:/usr/local/bin
  environmentFile: /var/etc/x.env
  mounts:
    - source: /var/lib/example
      destination: /var/lib/example
      type: bind
      options: [rbind, rshared, rw]
      uidMappings: [{containerID: 0, hostID: 1000, size: 1}]
  security:
    writeableRootfs: false
    writeableSysfs: true
    maskedPaths: []
    readonlyPaths: []
    rootfsPropagation: shared
depends:
  - service: cri
  - path: /system/run/machined/machine.sock
  - network: [addresses, connectivity, hostname, etcfiles]
  - time: true
  - configuration: true
restart: always
logToConsole: true
";

#[test]
fn the_spec_mirror_accepts_every_talos_key() {
    let spec = parse_spec(FULL_SPEC).unwrap();
    assert_eq!(spec.depends.len(), 5);
    assert_eq!(spec.container.mounts[0].options, ["rbind", "rshared", "rw"]);
    // Each key one level off is rejected (Talos would drop it silently).
    for (from, to) in [
        ("container:\n", "container:\n  logToConsole: true\n"),
        ("container:\n", "container:\n  restart: always\n"),
        ("depends:\n", "args: [x]\ndepends:\n"),
        ("  security:\n", "  security:\n    entrypoint: x\n"),
        (
            "      type: bind\n",
            "      type: bind\n      readonly: true\n",
        ),
        ("writeableSysfs", "writableSysfs"),
        ("uidMappings", "uidMapping"),
    ] {
        let moved = FULL_SPEC.replacen(from, to, 1);
        assert!(parse_spec(&moved).is_err(), "{from:?} -> {to:?} accepted");
    }
    // Validator rules beyond the decoder.
    for (from, to, want) in [
        (
            "  - path: /system",
            "  - path: system",
            "path is not absolute",
        ),
        (
            "hostname, etcfiles",
            "hostname, dns",
            "invalid network dependency",
        ),
        (
            "restart: always",
            "restart: sometimes",
            "restart kind is invalid",
        ),
        ("name: hello-world", "name: Hello", "name"),
        ("name: hello-world", "name: \"\"", "name"),
        ("  - time: true\n", "  - {}\n", "no dependency specified"),
    ] {
        let e = parse_spec(&FULL_SPEC.replacen(from, to, 1)).unwrap_err();
        assert!(e.contains(want), "{to:?}: {e}");
    }
}

/// The service spec of the original extension draft: `mounts:` at the top level, where
/// Talos silently ignores it (so nothing reached the host).
const DRAFT_SPEC: &str = "\
name: aws-iam-authenticator
depends:
  - service: cri
  - network:
      - addresses
      - connectivity
      - etcfiles
  - configuration: true
  - time: true
container:
  entrypoint: ./init
  environment:
    - PATH=/sbin:/usr/local/bin
  security:
    writeableRootfs: true
mounts:
  - source: /usr/local/lib/aws-iam-authenticator
    destination: /usr/local/lib/aws-iam-authenticator
    type: bind
    options:
      - rbind
      - rshared
      - rw
restart: never
";

#[test]
fn misplaced_or_invalid_spec_keys_are_rejected() {
    let e = parse_spec(DRAFT_SPEC).unwrap_err();
    assert!(e.contains("mounts"), "{e}");
    // The same draft with its mounts where Talos reads them decodes.
    let fixed = DRAFT_SPEC
        .replace("mounts:\n  - source", "  mounts:\n    - source")
        .replace("\n    destination", "\n      destination")
        .replace("\n    type", "\n      type")
        .replace(
            "\n    options:\n      - rbind\n      - rshared\n      - rw",
            "\n      options: [rbind, rshared, rw]",
        );
    parse_spec(&fixed).unwrap();

    let no_restart = SPEC.replace("restart: untilSuccess", "");
    assert!(
        parse_spec(&no_restart)
            .unwrap_err()
            .contains("restart kind is invalid")
    );
    let two_keys = SPEC.replace(
        "  - time: true\n",
        "  - time: true\n    configuration: true\n",
    );
    assert!(
        parse_spec(&two_keys)
            .unwrap_err()
            .contains("more than a single dependency")
    );
    let bad_name = SPEC.replace("name: aws-iam-authenticator", "name: AWS");
    assert!(parse_spec(&bad_name).unwrap_err().contains("name"));
    let no_entry = SPEC.replace("  entrypoint: /usr/local/bin/aws-iam-authenticator\n", "");
    assert!(
        parse_spec(&no_entry)
            .unwrap_err()
            .contains("endpoint can't be empty")
    );
    let typo = SPEC.replace("restart:", "restrat: x\nrestart:");
    assert!(parse_spec(&typo).is_err());
}

// ---- manifest.yaml (pkg/machinery/extensions/metadata.go) ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    version: String,
    metadata: Metadata,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
    version: String,
    author: String,
    description: String,
    compatibility: Compatibility,
    #[serde(default, rename = "extraInfo")]
    _extra_info: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Compatibility {
    talos: Constraint,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Constraint {
    version: String,
}

/// `^v?\d+\.\d+\.\d+(-prerelease)?$`, the validator's semver form.
fn parse_semver(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let core = v
        .split_once('-')
        .map_or(v, |(c, pre)| if pre.is_empty() { "" } else { c });
    let mut parts = core.split('.');
    let mut num = || {
        parts
            .next()
            .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))?
            .parse()
            .ok()
    };
    let r = (num()?, num()?, num()?);
    parts.next().is_none().then_some(r)
}

fn cargo_version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

#[test]
fn manifest_is_valid_and_versioned_from_cargo_toml() {
    let m: Manifest = serde_saphyr::from_str(MANIFEST).unwrap();
    assert_eq!(m.version, "v1alpha1");
    assert_eq!(m.metadata.name, "aws-iam-authenticator");
    assert!(!m.metadata.author.is_empty() && !m.metadata.description.is_empty());
    assert!(
        parse_semver(&m.metadata.version).is_some(),
        "{}",
        m.metadata.version
    );
    assert_eq!(m.metadata.version, cargo_version());
    // A ">= vX.Y.Z" range the pinned validator (Talos machinery 1.13.0) accepts.
    let min = m
        .metadata
        .compatibility
        .talos
        .version
        .strip_prefix(">= ")
        .and_then(parse_semver)
        .unwrap();
    assert!(min <= (1, 13, 0), "{min:?}");
    assert!(
        min >= (1, 10, 0),
        "readonly volume mounts need Talos 1.10: {min:?}"
    );

    // vars.yaml (pkg.yaml's VERSION) agrees too.
    let vars: serde_json::Value = serde_saphyr::from_str(VARS).unwrap();
    assert_eq!(vars["VERSION"], cargo_version());

    // The checker itself.
    assert_eq!(parse_semver("0.7.18"), Some((0, 7, 18)));
    assert_eq!(parse_semver("v1.2.3-rc.1"), Some((1, 2, 3)));
    for bad in ["v1.2", "1.2.3.4", "x1.2.3", "v1.2.3-", ""] {
        assert_eq!(parse_semver(bad), None, "{bad}");
    }
}

/// bldr's rendering of pkg.yaml for one architecture: Go's text/template, of which the file
/// uses `{{ .VAR }}`, `{{ if eq .ARCH "…" }}`, `{{ if .VAR }}`, `{{ else }}` and `{{ end }}`.
/// `vars` are vars.yaml's plus ARCH and any build arguments (`BUILD_ARG_*`); a variable
/// the template reads and nobody set is an error here (Go would print `<no value>`), except
/// in an `if`, where it is false.
fn render_pkg(arch: &str, build_args: &[(&str, &str)]) -> String {
    let vars_yaml: std::collections::BTreeMap<String, String> =
        serde_saphyr::from_str(VARS).unwrap();
    let mut vars = vars_yaml;
    vars.insert("ARCH".to_owned(), arch.to_owned());
    for (k, v) in build_args {
        vars.insert(format!("BUILD_ARG_{k}"), (*v).to_owned());
    }
    let var = |name: &str| -> Option<&String> { vars.get(name.strip_prefix('.').unwrap()) };
    let mut out = String::new();
    // One entry per open `if`: (this branch is taken, an earlier branch was taken).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let emitting = |stack: &[(bool, bool)]| stack.iter().all(|(on, _)| *on);
    let mut rest = PKG;
    while let Some(start) = rest.find("{{") {
        if emitting(&stack) {
            out.push_str(&rest[..start]);
        }
        let end = rest[start..].find("}}").expect("unclosed {{") + start;
        let action = rest[start + 2..end].trim();
        rest = &rest[end + 2..];
        let words: Vec<&str> = action.split_whitespace().collect();
        match words.as_slice() {
            ["if", "eq", v, lit] => {
                let on = var(v).expect(v) == lit.trim_matches('"');
                stack.push((on, on));
            }
            ["if", v] => {
                let on = var(v).is_some_and(|s| !s.is_empty());
                stack.push((on, on));
            }
            ["else", ..] => {
                let (_, taken) = stack.pop().expect("else without if");
                stack.push((!taken, true));
            }
            ["end", ..] => {
                stack.pop().expect("end without if");
            }
            [v] if v.starts_with('.') => {
                if emitting(&stack) {
                    out.push_str(var(v).unwrap_or_else(|| panic!("pkg.yaml reads unset {v}")));
                }
            }
            _ => panic!("unsupported template action {action:?}"),
        }
    }
    assert!(stack.is_empty(), "unclosed if");
    out.push_str(rest);
    out
}

/// rust-toolchain.toml's release.
fn toolchain_channel() -> String {
    include_str!("../rust-toolchain.toml")
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"')
        .to_owned()
}

#[test]
fn pkg_yaml_builds_the_documented_layout() {
    for arch in ["x86_64", "aarch64"] {
        let rendered = render_pkg(arch, &[]);
        assert!(!rendered.contains("{{"), "unrendered template left");
        let pkg: serde_json::Value = serde_saphyr::from_str(&rendered).unwrap();
        let m: Manifest = serde_saphyr::from_str(MANIFEST).unwrap();
        assert_eq!(pkg["name"], m.metadata.name);
        let text = rendered.as_str();
        for needle in [
            format!("--target {arch}-unknown-linux-musl"),
            format!("/src/target/{arch}-unknown-linux-musl/dist/aws-iam-authenticator"),
            format!("CC_{arch}_unknown_linux_musl: musl-gcc"),
            "--profile dist --locked --offline --no-default-features".to_owned(),
            "/rootfs/usr/local/lib/containers/aws-iam-authenticator".to_owned(),
            "$ctr/usr/local/bin/".to_owned(),
            "/rootfs/usr/local/etc/containers/".to_owned(),
            "extensions-validator validate --rootfs=/extensions-validator-rootfs --pkg-name=\"${PKG_NAME}\"".to_owned(),
        ] {
            assert!(text.contains(&needle), "{arch}: {needle}");
        }
        // The tools image and the validator.
        assert!(
            pkg["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["stage"] == "base" && d["to"] == "/base-rootfs")
        );
        let steps = pkg["steps"].as_array().unwrap();
        assert!(
            steps
                .iter()
                .any(|s| s["network"] == "default" && s["prepare"].is_array())
        );
        assert!(
            steps
                .iter()
                .any(|s| s["network"] == "none" && s["build"].is_array())
        );
        let finalize = pkg["finalize"].as_array().unwrap();
        assert_eq!(finalize[0]["from"], "/rootfs");
        assert_eq!(finalize[1]["from"], "/pkg/manifest.yaml");
        assert_eq!(finalize[1]["to"], "/");
    }
    // bldr's ARCH names, never Go's.
    assert!(!PKG.contains("arm64") && !PKG.contains("amd64"));
}

/// The toolchain comes as archives pinned by both checksums bldr verifies, for each
/// architecture, of the release rust-toolchain.toml names; nothing is downloaded and run
/// unchecked, and no step declares a cache it never uses.
#[test]
fn pkg_yaml_pins_the_rust_toolchain_by_sha256_and_sha512() {
    let channel = toolchain_channel();
    let vars: serde_json::Value = serde_saphyr::from_str(VARS).unwrap();
    assert_eq!(vars["RUST_VERSION"], channel.as_str(), "vars.yaml");
    let hex = |s: &serde_json::Value, len: usize| {
        s.as_str()
            .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let mut seen = std::collections::BTreeSet::new();
    for arch in ["x86_64", "aarch64"] {
        let rendered = render_pkg(arch, &[]);
        for banned in [
            "rustup",
            "curl",
            "wget",
            "| sh",
            "|sh",
            "| bash",
            "cachePaths",
        ] {
            assert!(
                !rendered.contains(banned),
                "{arch}: pkg.yaml has {banned:?}"
            );
        }
        let pkg: serde_json::Value = serde_saphyr::from_str(&rendered).unwrap();
        let steps = pkg["steps"].as_array().unwrap();
        assert!(steps.iter().all(|s| s.get("cachePaths").is_none()));
        let sources: Vec<_> = steps
            .iter()
            .filter_map(|s| s["sources"].as_array())
            .flatten()
            .collect();
        // rustc, cargo and the host's std (build scripts, proc macros), and the target's std.
        let mut names: Vec<String> = sources
            .iter()
            .map(|s| {
                let url = s["url"].as_str().unwrap();
                assert!(
                    url.starts_with("https://static.rust-lang.org/dist/"),
                    "{url}"
                );
                assert!(hex(&s["sha256"], 64) && hex(&s["sha512"], 128), "{s}");
                // Each pair of checksums belongs to one archive.
                assert!(seen.insert(s["sha512"].as_str().unwrap().to_owned()), "{s}");
                url.rsplit('/').next().unwrap().to_owned()
            })
            .collect();
        names.sort();
        let want =
            |c: &str, libc: &str| format!("{c}-{channel}-{arch}-unknown-linux-{libc}.tar.xz");
        let mut expected = vec![
            want("cargo", "gnu"),
            want("rust-std", "gnu"),
            want("rust-std", "musl"),
            want("rustc", "gnu"),
        ];
        expected.sort();
        assert_eq!(names, expected, "{arch}");
        // What is installed is checked to be that release.
        assert!(rendered.contains(&format!(
            "test \"$(rustc --version | cut -d' ' -f2)\" = \"{channel}\""
        )));
    }
}

/// `--build-arg=COMMIT=…` is what `version` reports, and the package test checks it; a
/// build without it leaves the commit unknown, which `version` omits.
#[test]
fn pkg_yaml_stamps_the_commit_it_is_given() {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let with = render_pkg("x86_64", &[("COMMIT", commit)]);
    let pkg: serde_json::Value = serde_saphyr::from_str(&with).unwrap();
    let build = pkg["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| s["build"].as_array())
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect::<String>();
    let export = format!("export AWS_IAM_AUTHENTICATOR_COMMIT={commit}\n");
    let cargo = build.find("cargo build").unwrap();
    assert!(build.find(&export).is_some_and(|i| i < cargo), "{build}");
    assert!(with.contains(&format!("grep -qF '\"Commit\":\"{commit}\"'")));
    let without = render_pkg("x86_64", &[]);
    assert!(!without.contains("AWS_IAM_AUTHENTICATOR_COMMIT"));
    assert!(!without.contains("Commit"));
    // The variable is the one the binary reads at compile time.
    assert!(
        include_str!("../src/lib.rs").contains("option_env!(\"AWS_IAM_AUTHENTICATOR_COMMIT\")")
    );
}

// ---- The built image tree ----

/// Talos's `AllowedPaths` for files in an extension's rootfs.
const ALLOWED: &[&str] = &[
    "/etc/cri/conf.d",
    "/usr/lib/firmware",
    "/usr/lib/modules",
    "/usr/lib/ld-linux-x86-64.so.2",
    "/usr/lib/ld-linux-aarch64.so.1",
    "/usr/bin/ldconfig",
    "/etc/ld.so.conf",
    "/etc/ld.so.cache",
    "/usr/bin/nvidia-modprobe",
    "/usr/bin/nvidia-pcc",
    "/usr/bin/nvidia-smi",
    "/usr/bin/nvidia-ctk",
    "/usr/bin/nvidia-cdi-hook",
    "/usr/bin/nvme",
    "/usr/lib/udev/rules.d",
    "/usr/local",
    "/usr/share/glvnd",
    "/usr/share/egl",
    "/etc/vulkan",
];

fn allowed(path: &str) -> bool {
    ALLOWED
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// The OCI platforms the extension and the image ship, and their musl targets.
const PLATFORMS: [(&str, &str); 2] = [
    ("amd64", "x86_64-unknown-linux-musl"),
    ("arm64", "aarch64-unknown-linux-musl"),
];

/// The platforms that must be there: `AWS_IAM_AUTHENTICATOR_PLATFORMS` (the Makefile's
/// PLATFORMS under `make test`), else amd64.
fn required_platforms() -> Vec<String> {
    std::env::var("AWS_IAM_AUTHENTICATOR_PLATFORMS")
        .unwrap_or_else(|_| "amd64".to_owned())
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The static musl binaries to package, by platform: for each platform built, the newer of
/// its dist and release builds in the target dir (`AWS_IAM_AUTHENTICATOR_MUSL_BIN`
/// overrides the x86-64 one). Err names a required platform that has none.
fn musl_binaries() -> Result<Vec<(&'static str, PathBuf)>, String> {
    // target/debug/aws-iam-authenticator → target/
    let target = Path::new(env!("CARGO_BIN_EXE_aws-iam-authenticator"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_owned();
    let mut found = Vec::new();
    for (platform, triple) in PLATFORMS {
        let env = (platform == "amd64")
            .then(|| std::env::var_os("AWS_IAM_AUTHENTICATOR_MUSL_BIN"))
            .flatten()
            .map(PathBuf::from);
        let built = env.or_else(|| {
            ["dist", "release"]
                .iter()
                .map(|p| target.join(triple).join(p).join("aws-iam-authenticator"))
                .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
                .max()
                .map(|(_, p)| p)
        });
        match built {
            Some(bin) => found.push((platform, bin)),
            None if required_platforms().iter().any(|p| p == platform) => {
                return Err(format!(
                    "no {triple} build to package: run `make binaries PROFILE=release`"
                ));
            }
            None => eprintln!("NOTE: no {triple} build: its image is not checked"),
        }
    }
    Ok(found)
}

/// `make test` and CI build both binaries and the archives first and install umoci,
/// skopeo and qemu-user-static (scripts/install-deps.sh): there, a missing piece is a
/// failure. Elsewhere the test says loudly what it could not do.
fn cannot_build(why: &str) {
    let required = ["REQUIRE_EXTENSION_BUILD", "CI"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    assert!(!required, "{why}");
    eprintln!("SKIPPED: the built extension was not checked: {why}");
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The binaries by platform, and the tools the scripts need, or why not.
fn build_inputs() -> Result<Vec<(&'static str, PathBuf)>, String> {
    let bins = musl_binaries()?;
    let qemu = bins
        .iter()
        .any(|(p, _)| *p == "arm64")
        .then_some(QEMU_AARCH64);
    for tool in ["umoci", "skopeo"].into_iter().chain(qemu) {
        if !have(tool) {
            return Err(format!(
                "{tool} is missing: run scripts/install-deps.sh (apt-get install umoci skopeo qemu-user-static)"
            ));
        }
    }
    Ok(bins)
}

const QEMU_AARCH64: &str = "qemu-aarch64-static";

/// The OCI platform of an ELF executable, from its header's e_machine.
fn elf_platform(path: &Path) -> &'static str {
    let head = fs::read(path).unwrap();
    assert_eq!(&head[..4], b"\x7fELF", "{}", path.display());
    match u16::from_le_bytes([head[18], head[19]]) {
        62 => "amd64",
        183 => "arm64",
        other => panic!("{}: ELF machine {other}", path.display()),
    }
}

/// A command running `bin`, under qemu-user when it is of another architecture.
fn run_binary(bin: &Path) -> Command {
    let native = if cfg!(target_arch = "x86_64") {
        "amd64"
    } else {
        "arm64"
    };
    match elf_platform(bin) {
        p if p == native => Command::new(bin),
        "arm64" => {
            let mut c = Command::new(QEMU_AARCH64);
            c.arg(bin);
            c
        }
        _ => {
            let mut c = Command::new("qemu-x86_64-static");
            c.arg(bin);
            c
        }
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, fs::Metadata)>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let meta = fs::symlink_metadata(e.path()).unwrap();
        let is_dir = meta.is_dir();
        out.push((name.clone(), meta));
        if is_dir {
            walk(&e.path(), &name, out);
        }
    }
}

fn run_script(script: &str, bins: &[(&str, PathBuf)], out: &Path) -> std::process::Output {
    Command::new(format!("{ROOT}/scripts/{script}"))
        .args(bins.iter().map(|(_, b)| b))
        .arg(out)
        .output()
        .unwrap()
}

// ---- OCI archives, read as containerd and Talos's imager read them ----

/// An OCI archive unpacked: its image layout.
struct Layout {
    dir: tempfile::TempDir,
}

/// One platform's image in a layout.
struct PlatformImage {
    config: serde_json::Value,
    /// The layer digests, in order.
    layers: Vec<String>,
}

impl Layout {
    fn extract(archive: &Path) -> Layout {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .arg("-xf")
            .arg(archive)
            .status()
            .unwrap();
        assert!(status.success(), "{}", archive.display());
        Layout { dir }
    }

    fn blob(&self, digest: &str) -> PathBuf {
        self.dir
            .path()
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    }

    fn json(&self, digest: &str) -> serde_json::Value {
        let path = self.blob(digest);
        let bytes = fs::read(&path).unwrap();
        // Content-addressed: a blob is what its name says.
        let got = sha2_hex(&bytes);
        assert_eq!(format!("sha256:{got}"), digest);
        serde_json::from_slice(&bytes).unwrap()
    }

    /// index.json names `tag` once, for an image index whose manifests are the platforms'.
    fn platforms(&self, tag: &str) -> Vec<(String, PlatformImage)> {
        let top: serde_json::Value =
            serde_json::from_slice(&fs::read(self.dir.path().join("index.json")).unwrap()).unwrap();
        let [desc] = top["manifests"].as_array().unwrap().as_slice() else {
            panic!("one image expected in index.json: {top}");
        };
        assert_eq!(
            desc["annotations"]["org.opencontainers.image.ref.name"],
            tag
        );
        assert_eq!(
            desc["mediaType"], "application/vnd.oci.image.index.v1+json",
            "not a multi-platform image: {desc}"
        );
        let index = self.json(desc["digest"].as_str().unwrap());
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let p = &m["platform"];
                let name = format!(
                    "{}/{}",
                    p["os"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap()
                );
                let manifest = self.json(m["digest"].as_str().unwrap());
                let config = self.json(manifest["config"]["digest"].as_str().unwrap());
                // The platform the index claims is the one the image's config says.
                assert_eq!(
                    format!(
                        "{}/{}",
                        config["os"].as_str().unwrap(),
                        config["architecture"].as_str().unwrap()
                    ),
                    name
                );
                let layers = manifest["layers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["digest"].as_str().unwrap().to_owned())
                    .collect();
                (name, PlatformImage { config, layers })
            })
            .collect()
    }

    /// The layer's listing (`tar -tzv`) and its files unpacked into `dir`.
    fn unpack_layer(&self, digest: &str, dir: &Path) -> String {
        fs::create_dir_all(dir).unwrap();
        let blob = self.blob(digest);
        let listing = Command::new("tar")
            .arg("-tzvf")
            .arg(&blob)
            .output()
            .unwrap();
        assert!(listing.status.success());
        let status = Command::new("tar")
            .arg("-C")
            .arg(dir)
            .arg("-xzf")
            .arg(&blob)
            .status()
            .unwrap();
        assert!(status.success());
        String::from_utf8(listing.stdout).unwrap()
    }
}

fn sha2_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Regular files in a `tar -tv` listing, without a leading "./".
fn listed_files(listing: &str) -> Vec<String> {
    let mut files: Vec<String> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .unwrap()
                .trim_start_matches("./")
                .to_owned()
        })
        .collect();
    files.sort();
    files
}

const ENTRYPOINT_IN_EXTENSION: &str =
    "rootfs/usr/local/lib/containers/aws-iam-authenticator/usr/local/bin/aws-iam-authenticator";

#[test]
fn built_extension_trees_and_oci_archive_are_what_talos_loads() {
    let bins = match build_inputs() {
        Ok(b) => b,
        Err(e) => return cannot_build(&e),
    };
    let out = tempfile::tempdir().unwrap();
    let status = run_script("build-extension.sh", &bins, out.path());
    let log = String::from_utf8_lossy(&status.stderr);
    if !status.status.success() && log.contains("the sources are") {
        // A stale build of another version: not this tree's binary.
        return cannot_build(&log);
    }
    assert!(status.status.success(), "{log}");

    let spec = parse_spec(SPEC).unwrap();
    let mut expected_files = Vec::new();
    for (platform, bin) in &bins {
        let tree = out.path().join("extension").join(platform);
        // Only manifest.yaml and rootfs/ at the root (extensions.Load()).
        let mut root: Vec<_> = fs::read_dir(&tree)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        root.sort();
        assert_eq!(root, ["manifest.yaml", "rootfs"]);
        assert_eq!(
            fs::read_to_string(tree.join("manifest.yaml")).unwrap(),
            MANIFEST
        );

        let mut entries = Vec::new();
        walk(&tree.join("rootfs"), "", &mut entries);
        for (path, meta) in &entries {
            let ft = meta.file_type();
            assert!(
                ft.is_dir() || ft.is_file() || ft.is_symlink(),
                "special file {path}"
            );
            assert!(
                !(ft.is_block_device() || ft.is_char_device() || ft.is_fifo() || ft.is_socket())
            );
            assert_eq!(
                meta.permissions().mode() & 0o002,
                0,
                "world-writable {path}"
            );
            if !ft.is_dir() {
                assert!(allowed(path), "{path} is outside Talos's allowed paths");
            }
        }
        let files: Vec<_> = entries
            .iter()
            .filter(|(_, m)| !m.is_dir())
            .map(|(p, _)| p.clone())
            .collect();
        assert_eq!(
            files,
            [
                "/usr/local/etc/containers/aws-iam-authenticator.yaml",
                "/usr/local/lib/containers/aws-iam-authenticator/usr/local/bin/aws-iam-authenticator",
            ]
        );
        assert_eq!(
            fs::read_to_string(
                tree.join("rootfs/usr/local/etc/containers/aws-iam-authenticator.yaml")
            )
            .unwrap(),
            SPEC
        );

        // The spec's entrypoint exists inside the service's container rootfs and is a static
        // executable of the tree's platform: the binary given for it, byte for byte.
        let ctr = tree.join(format!("rootfs/usr/local/lib/containers/{}", spec.name));
        let entry = ctr.join(spec.container.entrypoint.trim_start_matches('/'));
        let meta = fs::metadata(&entry).unwrap();
        assert!(meta.is_file() && meta.permissions().mode() & 0o111 == 0o111);
        assert_eq!(elf_platform(&entry), *platform);
        assert_eq!(fs::read(&entry).unwrap(), fs::read(bin).unwrap());
        let file = Command::new("file").arg("-L").arg(&entry).output().unwrap();
        let file = String::from_utf8_lossy(&file.stdout);
        assert!(
            file.contains("statically linked") || file.contains("static-pie linked"),
            "{file}"
        );
        assert!(!file.contains("interpreter"), "{file}");
        // Every mount destination exists there too.
        for mount in &spec.container.mounts {
            assert!(
                ctr.join(mount.destination.trim_start_matches('/')).is_dir(),
                "{}",
                mount.destination
            );
        }
        // And the directory the README's ExtensionServiceConfig mounts CONFIG_FILE into.
        assert!(ctr.join("usr/local/etc/aws-iam-authenticator").is_dir());
        expected_files = files;
    }

    // The OCI archive: one image per platform, each layer exactly that platform's tree.
    let archive = out.path().join(format!(
        "aws-iam-authenticator-extension-{}.oci.tar",
        cargo_version()
    ));
    let layout = Layout::extract(&archive);
    let platforms = layout.platforms(&cargo_version());
    let names: Vec<_> = platforms.iter().map(|(n, _)| n.clone()).collect();
    let want: Vec<_> = bins.iter().map(|(p, _)| format!("linux/{p}")).collect();
    assert_eq!(names, want);
    let mut expected: Vec<String> = expected_files
        .iter()
        .map(|f| format!("rootfs{f}"))
        .collect();
    expected.push("manifest.yaml".to_owned());
    expected.sort();
    for ((name, image), (platform, _)) in platforms.iter().zip(&bins) {
        let [layer] = image.layers.as_slice() else {
            panic!("{name}: one layer expected");
        };
        let root = out.path().join("unpacked").join(platform);
        let listing = layout.unpack_layer(layer, &root);
        assert_eq!(listed_files(&listing), expected, "{name}");
        assert!(!listing.contains("rwxrwxrwx") && !listing.contains("rw-rw-rw-"));
        // Owned by root, as every file on a Talos node.
        assert!(listing.lines().all(|l| l.contains(" 0/0 ")), "{listing}");
        assert_eq!(
            elf_platform(&root.join(ENTRYPOINT_IN_EXTENSION)),
            *platform,
            "{name}"
        );
        assert_eq!(
            image.config["config"]["Labels"]["org.opencontainers.image.version"],
            cargo_version()
        );
    }

    // skopeo, what pushes the archive to a registry, reads it too, each platform.
    for (arch, _) in &bins {
        let inspect = Command::new("skopeo")
            .args(["inspect", "--override-os", "linux", "--override-arch", arch])
            .arg(format!("oci-archive:{}", archive.display()))
            .output()
            .unwrap();
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(inspect["Architecture"], *arch);
        assert_eq!(inspect["Os"], "linux");
        assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
    }
}

/// A build script given a binary of one architecture can only put it in the image of
/// that architecture: the platform comes from the binary, never from a name or a flag.
#[test]
fn a_binary_lands_only_in_the_image_of_its_own_architecture() {
    let bins = match build_inputs() {
        Ok(b) => b,
        Err(e) => return cannot_build(&e),
    };
    let out = tempfile::tempdir().unwrap();
    // The x86-64 binary alone: an amd64-only archive, no arm64 image carrying it.
    let run = run_script("build-extension.sh", &bins[..1], out.path());
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let archive = out.path().join(format!(
        "aws-iam-authenticator-extension-{}.oci.tar",
        cargo_version()
    ));
    let names: Vec<_> = Layout::extract(&archive)
        .platforms(&cargo_version())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["linux/amd64"]);
    // Two binaries of one architecture are refused.
    let twice = [bins[0].clone(), bins[0].clone()];
    let run = run_script("build-extension.sh", &twice, out.path());
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("two binaries for amd64"));
    // Anything but an amd64/arm64 ELF executable is refused.
    let not_elf = out.path().join("not-elf");
    fs::write(&not_elf, "#!/bin/sh\necho 0.7.18\n").unwrap();
    fs::set_permissions(&not_elf, fs::Permissions::from_mode(0o755)).unwrap();
    let run = run_script("build-extension.sh", &[("?", not_elf)], out.path());
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("not an amd64 or arm64 ELF"));
}

/// `make extension` works for a user who is not root (umoci's rootless mode), and the
/// layer's files are still owned by root.
#[test]
fn extension_builds_as_a_non_root_user() {
    let bins = match build_inputs() {
        Ok(b) => b,
        Err(e) => return cannot_build(&e),
    };
    // A copy of what the script reads, all owned by the user who runs it.
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    for dir in ["scripts", "extension"] {
        fs::create_dir_all(repo.join(dir)).unwrap();
        for e in fs::read_dir(Path::new(ROOT).join(dir)).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), repo.join(dir).join(e.file_name())).unwrap();
        }
    }
    for file in ["Cargo.toml", "manifest.yaml", "vars.yaml"] {
        fs::copy(Path::new(ROOT).join(file), repo.join(file)).unwrap();
    }
    let mut copies = Vec::new();
    for (platform, bin) in &bins {
        let copy = work.path().join(format!("bin-{platform}"));
        fs::copy(bin, &copy).unwrap();
        copies.push(copy);
    }
    let out = work.path().join("out");
    let mut cmd = if nix::unistd::geteuid().is_root() {
        // nobody, with nothing of root's
        let (uid, gid) = (65534, 65534);
        let status = Command::new("chown")
            .args(["-R", &format!("{uid}:{gid}")])
            .arg(work.path())
            .status()
            .unwrap();
        assert!(status.success());
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
        ]);
        c.arg(repo.join("scripts/build-extension.sh"));
        c.env("HOME", work.path()).env("TMPDIR", work.path());
        c
    } else {
        Command::new(repo.join("scripts/build-extension.sh"))
    };
    let run = cmd.args(&copies).arg(&out).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let archive = out.join(format!(
        "aws-iam-authenticator-extension-{}.oci.tar",
        cargo_version()
    ));
    let layout = Layout::extract(&archive);
    for (name, image) in layout.platforms(&cargo_version()) {
        let listing = layout.unpack_layer(&image.layers[0], &work.path().join(&name));
        assert!(
            listing.lines().all(|l| l.contains(" 0/0 ")),
            "{name}: {listing}"
        );
    }
}

// ---- What `make extension` and `make image` wrote (what the harness and users take) ----

/// `AWS_IAM_AUTHENTICATOR_DIST_DIR`, else dist/ (the Makefile's DIST_DIR).
fn dist_dir() -> PathBuf {
    std::env::var_os("AWS_IAM_AUTHENTICATOR_DIST_DIR")
        .map_or_else(|| Path::new(ROOT).join("dist"), PathBuf::from)
}

/// An arm64 installer built from the archive must get an arm64 binary, an amd64 one an
/// x86-64 binary: each platform's image carries a static binary of its own architecture,
/// which runs (arm64 under qemu-user), is this version, and reports the commit it was
/// built from.
#[test]
fn make_extension_and_make_image_carry_each_platforms_own_binary() {
    let dist = dist_dir();
    let archives = [
        (
            dist.join(format!(
                "aws-iam-authenticator-extension-{}.oci.tar",
                cargo_version()
            )),
            ENTRYPOINT_IN_EXTENSION,
        ),
        (
            dist.join(format!("aws-iam-authenticator-{}.oci.tar", cargo_version())),
            "usr/local/bin/aws-iam-authenticator",
        ),
    ];
    if let Some((missing, _)) = archives.iter().find(|(a, _)| !a.is_file()) {
        return cannot_build(&format!(
            "no {}: run `make extension image` (or `make test`)",
            missing.display()
        ));
    }
    let required: Vec<_> = required_platforms()
        .iter()
        .map(|p| format!("linux/{p}"))
        .collect();
    if required.iter().any(|p| p == "linux/arm64") && !have(QEMU_AARCH64) {
        return cannot_build("qemu-aarch64-static is missing: run scripts/install-deps.sh");
    }
    let work = tempfile::tempdir().unwrap();
    for (archive, entry) in &archives {
        let layout = Layout::extract(archive);
        let platforms = layout.platforms(&cargo_version());
        let names: Vec<_> = platforms.iter().map(|(n, _)| n.clone()).collect();
        assert!(
            required.iter().all(|p| names.contains(p)),
            "{}: {names:?}, {required:?} expected",
            archive.display()
        );
        for (name, image) in &platforms {
            let root = work.path().join(format!(
                "{}-{}",
                archive.file_name().unwrap().to_string_lossy(),
                name.replace('/', "-")
            ));
            for layer in &image.layers {
                layout.unpack_layer(layer, &root);
            }
            let bin = root.join(entry);
            let want = name.strip_prefix("linux/").unwrap();
            assert_eq!(elf_platform(&bin), want, "{}: {name}", archive.display());
            let short = run_binary(&bin)
                .args(["version", "--short"])
                .output()
                .unwrap();
            assert!(short.status.success(), "{name}: {short:?}");
            assert_eq!(
                format!("v{}", String::from_utf8_lossy(&short.stdout).trim()),
                cargo_version()
            );
            if *entry == ENTRYPOINT_IN_EXTENSION {
                talos_init_writes_the_state_dir(&bin, &root.join("state"));
            }
            // Stamped by the Makefile from `git rev-parse HEAD`.
            let version = run_binary(&bin).arg("version").output().unwrap();
            let version: serde_json::Value = serde_json::from_slice(&version.stdout).unwrap();
            let commit = version["Commit"].as_str().unwrap_or_default();
            assert!(
                commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
                "{name}: {version}"
            );
        }
    }
}

// ---- The server's image (`make image`) ----

#[test]
fn server_image_is_the_static_binary_running_as_uid_65532() {
    let bins = match build_inputs() {
        Ok(b) => b,
        Err(e) => return cannot_build(&e),
    };
    let out = tempfile::tempdir().unwrap();
    let run = run_script("build-image.sh", &bins, out.path());
    let log = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() && log.contains("the sources are") {
        return cannot_build(&log);
    }
    assert!(run.status.success(), "{log}");
    let archive = out
        .path()
        .join(format!("aws-iam-authenticator-{}.oci.tar", cargo_version()));
    for (arch, _) in &bins {
        let arch = *arch;
        let config = Command::new("skopeo")
            .args([
                "inspect",
                "--config",
                "--override-os",
                "linux",
                "--override-arch",
                arch,
            ])
            .arg(format!("oci-archive:{}", archive.display()))
            .output()
            .unwrap();
        assert!(
            config.status.success(),
            "{}",
            String::from_utf8_lossy(&config.stderr)
        );
        let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
        let c = &config["config"];
        assert_eq!(c["User"], "65532:65532");
        assert_eq!(
            c["Entrypoint"],
            serde_json::json!(["/usr/local/bin/aws-iam-authenticator"])
        );
        assert!(c["Cmd"].is_null(), "{c}");
        assert_eq!(
            c["Labels"]["org.opencontainers.image.version"],
            cargo_version()
        );
        assert_eq!(config["os"], "linux");
        assert_eq!(config["architecture"], arch);
        assert!(c["Env"].as_array().unwrap().contains(&serde_json::json!(
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
        )));
        // One layer: the binary, the CA roots for STS (and an empty /tmp), nothing else.
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
        let tree = out.path().join("image").join(arch);
        let mut entries = Vec::new();
        walk(&tree, "", &mut entries);
        let files: Vec<_> = entries
            .iter()
            .filter(|(_, m)| !m.is_dir())
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(
            files,
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/usr/local/bin/aws-iam-authenticator"
            ]
        );
        assert_eq!(
            elf_platform(&tree.join("usr/local/bin/aws-iam-authenticator")),
            arch
        );
    }
}

/// Runs `talos-init` as the extension service would (only its variables, a fresh state
/// dir), in a user and mount namespace of its own where a foreign binary runs under
/// qemu-user through binfmt_misc: `talos-init` execs itself as `init`, which qemu-user
/// alone cannot follow. The host's binfmt_misc is left alone (the mount is the
/// namespace's). The key stays root's: the namespace maps no other user.
fn talos_init_writes_the_state_dir(bin: &Path, state: &Path) {
    fs::create_dir_all(state).unwrap();
    let qemu = Command::new("sh")
        .args(["-c", &format!("command -v {QEMU_AARCH64}")])
        .output()
        .unwrap();
    let qemu = String::from_utf8(qemu.stdout).unwrap();
    // Every aarch64 ELF executable, run by qemu (F: the interpreter is opened now, so it
    // works from any mount namespace).
    let register = format!(
        ":qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:{}:F",
        qemu.trim()
    );
    let script = "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && \
         printf '%s' \"$REGISTER\" > /proc/sys/fs/binfmt_misc/register && \
         exec env -i PATH=/usr/bin:/bin CLUSTER_ID=arch-check KEY_OWNER=0 STATE_DIR=\"$STATE\" \"$BIN\" talos-init";
    let out = Command::new("unshare")
        .args(["--map-root-user", "--mount", "sh", "-c", script])
        .env("REGISTER", register)
        .env("STATE", state)
        .env("BIN", bin)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}: talos-init: {stderr}",
        bin.display()
    );
    let names = common::dir_names(state);
    assert_eq!(
        names,
        ["cert.pem", "config.yaml", "key.pem", "kubeconfig.yaml"],
        "{stderr}"
    );
    // The certificate the binary made (its own crypto, on its own architecture) is the
    // one the kubeconfig tells the apiserver to trust.
    let cert = fs::read_to_string(state.join("cert.pem")).unwrap();
    let der: String = cert.lines().filter(|l| !l.starts_with("-----")).collect();
    let kubeconfig = fs::read_to_string(state.join("kubeconfig.yaml")).unwrap();
    let ca = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap();
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(ca)
        .unwrap();
    assert_eq!(
        String::from_utf8(ca)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>(),
        der
    );
}
