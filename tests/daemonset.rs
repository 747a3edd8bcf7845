//! `example-daemonset.yaml` and the README's Talos manifests: valid against the
//! Kubernetes schemas (PyPI's `kubernetes-validate`, strict) or, for Talos documents,
//! against strict mirrors of Talos's types; and consistent with what `talos-init` and the
//! extension's service spec actually do.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use aws_iam_authenticator::talos;
use serde::Deserialize;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_aws-iam-authenticator");
const DAEMONSET: &str = include_str!("../example-daemonset.yaml");
const README: &str = include_str!("../README.md");
const SPEC: &str = include_str!("../extension/aws-iam-authenticator.yaml");

/// The host directory and its in-container path, from the extension's service spec.
fn spec_mount() -> (String, String) {
    let spec: Value = serde_saphyr::from_str(SPEC).unwrap();
    let m = &spec["container"]["mounts"][0];
    (
        m["source"].as_str().unwrap().to_owned(),
        m["destination"].as_str().unwrap().to_owned(),
    )
}

/// Runs `kubernetes-validate --strict` on `yaml`; `None` when the tool is missing
/// outside CI (skipped with a notice by `venv_tool`).
fn kubernetes_validate(yaml: &str) -> Option<Output> {
    let tool = common::venv_tool("kubernetes-validate")?;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifest.yaml");
    fs::write(&file, yaml).unwrap();
    Some(
        Command::new(tool)
            .args(["--strict", "--kubernetes-version", "1.33.0"])
            .arg(&file)
            .output()
            .unwrap(),
    )
}

fn assert_valid(yaml: &str, what: &str) {
    if let Some(out) = kubernetes_validate(yaml) {
        assert!(
            out.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn docs() -> Vec<Value> {
    serde_saphyr::from_multiple(DAEMONSET).unwrap()
}

fn doc<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in example-daemonset.yaml"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn daemonset_validates_against_the_kubernetes_schemas() {
    assert_valid(DAEMONSET, "example-daemonset.yaml");
    // The validator does reject what Talos users get wrong.
    if let Some(out) = kubernetes_validate(&DAEMONSET.replace("readOnly: true", "readonly: true")) {
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("'readonly' was unexpected"));
    }
}

/// Runs `talos-init` with `env` into `state_dir` (standing in for the host directory);
/// returns its log.
fn talos_init(state_dir: &Path, env: &[(&str, &str)]) -> String {
    let out = Command::new(BIN)
        .arg("talos-init")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("STATE_DIR", state_dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

#[test]
fn daemonset_serves_what_talos_init_writes() {
    let docs = docs();
    let ds = doc(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let [container] = pod["containers"].as_array().unwrap().as_slice() else {
        panic!("one container expected");
    };
    let (host_dir, dir) = spec_mount();
    assert_eq!(dir, talos::DEFAULT_STATE_DIR);

    // The exact command line.
    let args = strings(&container["args"]);
    assert_eq!(
        args,
        [
            "server".to_owned(),
            format!("--config={dir}/{}", talos::CONFIG_FILE),
            format!("--state-dir={dir}"),
            format!("--generate-kubeconfig={dir}/{}", talos::KUBECONFIG_FILE),
            "--kubeconfig-pregenerated=true".to_owned(),
        ]
    );

    // The host directory the extension writes, mounted read-only where the args point.
    let [volume] = pod["volumes"].as_array().unwrap().as_slice() else {
        panic!("one volume expected");
    };
    assert_eq!(volume["hostPath"]["path"], host_dir.as_str());
    assert_eq!(volume["hostPath"]["type"], "Directory");
    let [mount] = container["volumeMounts"].as_array().unwrap().as_slice() else {
        panic!("one volume mount expected");
    };
    assert_eq!(mount["name"], volume["name"]);
    assert_eq!(mount["mountPath"], dir.as_str());
    assert_eq!(mount["readOnly"], true);

    // talos-init's defaults produce every file the args name, and the key for the uid
    // the pod runs as.
    let host = tempfile::tempdir().unwrap();
    talos_init(host.path(), &[("CLUSTER_ID", "my-cluster")]);
    for arg in &args[1..] {
        let Some((flag, path)) = arg.split_once('=') else {
            continue;
        };
        let Some(rel) = path.strip_prefix(&dir) else {
            continue;
        };
        let local = host.path().join(rel.trim_start_matches('/'));
        match flag {
            "--state-dir" => {
                assert!(local.join("cert.pem").is_file() && local.join("key.pem").is_file());
            }
            "--config" | "--generate-kubeconfig" => assert!(local.is_file(), "{arg}"),
            other => panic!("unexpected path flag {other}"),
        }
    }
    let security = &pod["securityContext"];
    assert_eq!(
        security["runAsUser"].to_string(),
        talos::DEFAULT_KEY_OWNER,
        "the pod must run as the owner of key.pem"
    );
    assert_eq!(security["runAsNonRoot"], true);
    let c_security = &container["securityContext"];
    assert_eq!(c_security["readOnlyRootFilesystem"], true);
    assert_eq!(c_security["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&c_security["capabilities"]["drop"]), ["ALL"]);

    // Control-plane nodes, host network (the apiserver calls localhost), critical.
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(
        pod["nodeSelector"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert!(
        pod["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "node-role.kubernetes.io/control-plane"
                && t["effect"] == "NoSchedule")
    );

    // Probes on the plain health port.
    let probe = |p: &str| {
        let g = &container[p]["httpGet"];
        (g["path"].clone(), g["port"].clone(), g["scheme"].clone())
    };
    assert_eq!(
        probe("livenessProbe"),
        (json!("/healthz"), json!(21363), json!("HTTP"))
    );
    assert_eq!(
        probe("readinessProbe"),
        (json!("/readyz"), json!(21363), json!("HTTP"))
    );
    // mimalloc commits arenas as used and returns freed memory at once (BENCHMARKS.md).
    let env: Vec<_> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    assert!(
        env.contains(&("MIMALLOC_ARENA_EAGER_COMMIT", "0")),
        "{env:?}"
    );
    assert!(env.contains(&("MIMALLOC_PURGE_DELAY", "0")), "{env:?}");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());

    // The image is this version's `make image`.
    let image = container["image"].as_str().unwrap();
    assert!(
        image.ends_with(&format!(":v{}", env!("CARGO_PKG_VERSION"))),
        "{image}"
    );
}

#[test]
fn rbac_covers_the_kubernetes_backends() {
    let docs = docs();
    let sa = doc(&docs, "ServiceAccount");
    let ds = doc(&docs, "DaemonSet");
    assert_eq!(
        ds["spec"]["template"]["spec"]["serviceAccountName"],
        sa["metadata"]["name"]
    );
    assert_eq!(sa["metadata"]["namespace"], "kube-system");
    assert_eq!(ds["metadata"]["namespace"], "kube-system");

    let allows = |rules: &Value, group: &str, resource: &str, verbs: &[&str]| {
        rules.as_array().unwrap().iter().any(|r| {
            strings(&r["apiGroups"]).contains(&group)
                && strings(&r["resources"]).contains(&resource)
                && verbs.iter().all(|v| strings(&r["verbs"]).contains(v))
        })
    };
    let cluster = &doc(&docs, "ClusterRole")["rules"];
    assert!(allows(
        cluster,
        "iamauthenticator.k8s.aws",
        "iamidentitymappings",
        &["get", "list", "watch"]
    ));
    assert!(allows(
        cluster,
        "iamauthenticator.k8s.aws",
        "iamidentitymappings/status",
        &["update", "patch"]
    ));
    assert!(allows(cluster, "", "events", &["create", "patch"]));
    let role = doc(&docs, "Role");
    assert_eq!(role["metadata"]["namespace"], "kube-system");
    assert!(allows(
        &role["rules"],
        "",
        "configmaps",
        &["get", "list", "watch"]
    ));

    for (binding, role_kind) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
    ] {
        let b = doc(&docs, binding);
        assert_eq!(b["roleRef"]["kind"], role_kind);
        assert_eq!(
            b["roleRef"]["name"],
            doc(&docs, role_kind)["metadata"]["name"]
        );
        assert_eq!(b["subjects"][0]["kind"], "ServiceAccount");
        assert_eq!(b["subjects"][0]["name"], sa["metadata"]["name"]);
        assert_eq!(b["subjects"][0]["namespace"], "kube-system");
    }
}

// ---- The README's Talos section ----

/// The `yaml` code blocks of the README's "Talos Linux" section.
fn readme_talos_yaml() -> Vec<String> {
    let start = README
        .find("\n## Talos Linux\n")
        .expect("no Talos Linux section");
    let rest = &README[start + 1..];
    let section = &rest[..rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3)];
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match &mut current {
            None if line.trim_start() == "```yaml" => current = Some(String::new()),
            Some(block) if line.trim_start() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "unterminated code block");
    blocks
}

/// Talos's `ExtensionServiceConfig` document (strict, as Talos loads machine config).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtensionServiceConfig {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    name: String,
    #[serde(default, rename = "configFiles")]
    config_files: Vec<ConfigFile>,
    #[serde(default)]
    environment: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    content: String,
    #[serde(rename = "mountPath")]
    mount_path: String,
}

/// The part of Talos's v1alpha1 machine config the apiserver patch sets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineConfigPatch {
    cluster: ClusterConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterConfig {
    #[serde(rename = "apiServer")]
    api_server: ApiServerConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiServerConfig {
    #[serde(default, rename = "extraArgs")]
    extra_args: BTreeMap<String, String>,
    #[serde(default, rename = "extraVolumes")]
    extra_volumes: Vec<VolumeMountConfig>,
}

/// Talos's `VolumeMountConfig`: note `readonly`, all lowercase.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeMountConfig {
    #[serde(rename = "hostPath")]
    host_path: String,
    #[serde(rename = "mountPath")]
    mount_path: String,
    #[serde(default)]
    readonly: bool,
}

#[test]
fn readme_talos_manifests_are_valid_and_consistent() {
    let blocks = readme_talos_yaml();
    let (host_dir, dir) = spec_mount();
    let (mut esc_seen, mut patch_seen, mut kubeconfig_seen) = (None, false, false);
    for block in &blocks {
        let value: Value = serde_saphyr::from_str(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        match value["kind"].as_str() {
            Some("ExtensionServiceConfig") => {
                let esc: ExtensionServiceConfig = serde_saphyr::from_str(block).unwrap();
                assert_eq!(
                    (esc.api_version.as_str(), esc.kind.as_str()),
                    ("v1alpha1", "ExtensionServiceConfig")
                );
                esc_seen = Some(esc);
            }
            Some("Config") => {
                // The client kubeconfig: `token` as the exec credential plugin.
                let exec = &value["users"][0]["user"]["exec"];
                assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1beta1");
                assert_eq!(exec["command"], "aws-iam-authenticator");
                assert_eq!(strings(&exec["args"])[..2], ["token", "-i"]);
                kubeconfig_seen = true;
            }
            Some(kind) => panic!("unexpected {kind} in the README's Talos section"),
            None => {
                let patch: MachineConfigPatch = serde_saphyr::from_str(block)
                    .unwrap_or_else(|e| panic!("not a valid Talos patch: {e}\n{block}"));
                let api = patch.cluster.api_server;
                let [volume] = api.extra_volumes.as_slice() else {
                    panic!("one extra volume expected");
                };
                assert_eq!(volume.host_path, host_dir);
                assert_eq!(volume.mount_path, dir);
                assert!(volume.readonly);
                assert_eq!(
                    api.extra_args["authentication-token-webhook-config-file"],
                    format!("{dir}/{}", talos::KUBECONFIG_FILE)
                );
                // What Talos renders into the kube-apiserver static pod from it: a
                // hostPath volume without a type, mounted read-only.
                let pod = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "kube-apiserver", "namespace": "kube-system"},
                    "spec": {
                        "hostNetwork": true,
                        "containers": [{
                            "name": "kube-apiserver",
                            "image": "registry.k8s.io/kube-apiserver:v1.33.0",
                            "command": ["/usr/local/bin/kube-apiserver"],
                            "args": api.extra_args.iter().map(|(k, v)| format!("--{k}={v}")).collect::<Vec<_>>(),
                            "securityContext": {"runAsUser": 65534, "runAsGroup": 65534, "runAsNonRoot": true, "readOnlyRootFilesystem": true},
                            "volumeMounts": [{"name": "aws-iam-authenticator", "mountPath": volume.mount_path, "readOnly": volume.readonly}],
                        }],
                        "volumes": [{"name": "aws-iam-authenticator", "hostPath": {"path": volume.host_path}}],
                    },
                });
                assert_valid(
                    &pod.to_string(),
                    "the apiserver pod the README's patch gives",
                );
                patch_seen = true;
            }
        }
    }
    assert!(
        patch_seen && kubeconfig_seen,
        "README Talos section lacks the patch or the kubeconfig"
    );
    let esc = esc_seen.expect("README Talos section lacks the ExtensionServiceConfig");

    // The ExtensionServiceConfig configures the extension's service, and talos-init
    // accepts it as written (its config files placed in a temp dir).
    let spec: Value = serde_saphyr::from_str(SPEC).unwrap();
    assert_eq!(esc.name, spec["name"].as_str().unwrap());
    let etc = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut config_paths = None;
    for var in &esc.environment {
        let (k, v) = var.split_once('=').unwrap();
        let v = match esc.config_files.iter().position(|f| f.mount_path == v) {
            Some(i) if k == "CONFIG_FILE" => {
                let local = etc.path().join(format!("config-{i}.yaml"));
                fs::write(&local, &esc.config_files[i].content).unwrap();
                config_paths = Some((local.display().to_string(), v.to_owned()));
                local.display().to_string()
            }
            _ => v.to_owned(),
        };
        assert!(
            README.contains(&format!("| `{k}` |")),
            "{k} is not in the README's table"
        );
        env.push((k.to_owned(), v));
    }
    for f in &esc.config_files {
        assert!(
            !f.mount_path.starts_with(&dir),
            "{} is inside the state dir",
            f.mount_path
        );
    }
    let host = tempfile::tempdir().unwrap();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let log = talos_init(host.path(), &env_refs);
    let written = fs::read_to_string(host.path().join(talos::CONFIG_FILE)).unwrap();
    assert_eq!(written, esc.config_files[0].content);

    // The README's example of the service's first log line is what it logs (with the
    // paths as they are inside the service's container).
    let (local_config, mounted_config) = config_paths.expect("no CONFIG_FILE in the README");
    let logged = log
        .lines()
        .find_map(|l| l.split_once("executing: ").map(|(_, rest)| rest))
        .unwrap()
        .replace(&local_config, &mounted_config)
        .replace(host.path().to_str().unwrap(), talos::DEFAULT_STATE_DIR);
    let documented = README
        .split("`executing: ")
        .nth(1)
        .and_then(|rest| rest.split(" …]`").next())
        .expect("no `executing: … …]` example in the README");
    assert!(
        logged.starts_with(documented),
        "README: {documented}\nlogged: {logged}"
    );

    // Every variable talos-init reads has a row in the table, and no Talos block uses the
    // camel-case key Talos rejects.
    for var in [
        "CLUSTER_ID",
        "HOSTNAME",
        "ADDRESS",
        "CONFIG_FILE",
        "LOG_FORMAT",
        "KEY_OWNER",
    ] {
        assert!(
            README.contains(&format!("| `{var}` |")),
            "{var} missing from the table"
        );
    }
    assert!(blocks.iter().all(|b| !b.contains("readOnly")));
}
