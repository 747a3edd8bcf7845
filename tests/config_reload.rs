//! The server follows its `--config` file: the Talos flow, where a `talosctl patch` of
//! the ExtensionServiceConfig re-runs `talos-init`, which rewrites the state dir's
//! `config.yaml` by temp file + rename, and the running server (reading that directory,
//! as the DaemonSet's hostPath directory mount does) picks the new MountedFile mappings
//! up within seconds. Broken edits keep the last good mappings, are logged with the file,
//! key and problem, and are counted; startup-only settings wait for a restart.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on setup failure by design

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::Value;

use common::process::Running;
use common::sts_emulator::Identity;
use common::webhook::{V1, Webhook, World, username_is};
use common::{ACCESS_KEY_ID, CLUSTER_ID, SECRET_ACCESS_KEY, bin};

const ACCOUNT: &str = "123456789012";
const ASSUMED_ARN: &str = "arn:aws:sts::123456789012:assumed-role/Admin/alice";

/// The ExtensionServiceConfig's `CONFIG_FILE` content: `mapRoles` as given.
fn extension_config(map_roles: &str) -> String {
    format!("clusterID: {CLUSTER_ID}\nserver:\n  mapRoles:\n{map_roles}")
}

const OTHER_ROLE_ONLY: &str = "    - rolearn: arn:aws:iam::123456789012:role/Other
      username: other
";

const ADMIN_MAPPED: &str = "    - rolearn: arn:aws:iam::123456789012:role/Admin
      username: admin:{{SessionName}}
      groups: [system:masters]
";

/// Runs `talos-init` as the extension service does, with `CONFIG_FILE` at `source`.
fn talos_init(world: &World, source: &Path) {
    let out = std::process::Command::new(bin())
        .arg("talos-init")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CLUSTER_ID", CLUSTER_ID)
        .env("CONFIG_FILE", source)
        .env("STATE_DIR", world.state_dir())
        .env(
            "KEY_OWNER",
            format!(
                "{}:{}",
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw()
            ),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
}

/// Waits (bounded) until `/metrics` has the exact sample `line`.
async fn metric_until(hook: &Webhook, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = hook.send(Method::GET, "/metrics", Vec::new()).await.text();
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(Instant::now() < deadline, "no {line:?} in:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The JSON log lines whose message starts with `prefix`.
fn logs(server: &Running, prefix: &str) -> Vec<Value> {
    server
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["msg"].as_str().is_some_and(|m| m.starts_with(prefix)))
        .collect()
}

/// Writes `text` to `path` by temp file + rename, as `init` and editors do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_file_name(".config.yaml.edit");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

const REJECTED: &str = "configuration file rejected";
const FAILURES: &str =
    "aws_iam_authenticator_mapping_reload_failures_total{backend=\"MountedFile\"}";

#[tokio::test]
async fn talos_init_rewrite_reloads_the_mounted_file_mappings() {
    let world = World::new();
    world.sts.add_identity(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Identity::new(ASSUMED_ARN, ACCOUNT, "AROAEXAMPLEADMIN:alice"),
    );
    // The ExtensionServiceConfig's config file, and what talos-init makes of it.
    let source = world.path("extension-config.yaml");
    std::fs::write(&source, extension_config(OTHER_ROLE_ONLY)).unwrap();
    talos_init(&world, &source);
    let config = world.state_dir().join("config.yaml");
    assert!(config.exists());

    // The server reads the state dir's config.yaml, as the DaemonSet does.
    let mut server = world
        .start_without_id(&["--config", config.to_str().unwrap()])
        .await;
    let hook = Webhook::from_kubeconfig(&world.kubeconfig());
    let token = world.token();
    let a = hook.review(V1, &token).await;
    // A denial: 200 with authenticated=false (403 only with --deny-with-forbidden).
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["status"]["authenticated"], false, "{}", a.text());

    // `talosctl patch`: talos-init runs again and rewrites config.yaml atomically.
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&config);
    std::fs::write(
        &source,
        extension_config(&format!("{OTHER_ROLE_ONLY}{ADMIN_MAPPED}")),
    )
    .unwrap();
    talos_init(&world, &source);
    assert_ne!(inode(&config), before, "talos-init replaces the file");
    hook.review_until(&token, "mapped", username_is("admin:alice"))
        .await;
    let reloaded = server
        .wait_log("reloaded MountedFile mappings from the configuration file")
        .await;
    assert_eq!(reloaded["mapRoles"], 2, "{reloaded}");
    assert_eq!(
        reloaded["path"].as_str(),
        Some(config.to_str().unwrap()),
        "{reloaded}"
    );

    // A broken edit in place (not YAML): the mapping stays, it is counted and logged.
    std::fs::write(&config, "server:\n  mapRoles: [ {rolearn: \n").unwrap();
    metric_until(&hook, &format!("{FAILURES} 1")).await;
    let a = hook.review(V1, &token).await;
    assert!(username_is("admin:alice")(&a), "{}", a.text());
    let rejected = server.wait_log(REJECTED).await;
    assert_eq!(rejected["level"], "warning", "{rejected}");
    assert_eq!(rejected["path"].as_str(), Some(config.to_str().unwrap()));
    let why = rejected["error"].as_str().unwrap();
    assert!(
        why.starts_with(&format!("can't parse configuration file {config:?}")),
        "{why}"
    );

    // An invalid entry: the whole version is refused, and the entry is named in the
    // log and in `mapping_invalid_entry`.
    replace(
        &config,
        &extension_config(&format!("{ADMIN_MAPPED}    - username: nobody\n")),
    );
    metric_until(&hook, &format!("{FAILURES} 2")).await;
    metric_until(
        &hook,
        "aws_iam_authenticator_mapping_invalid_entry{backend=\"MountedFile\",entry=\"server.mapRoles[1]\"} 1",
    )
    .await;
    let a = hook.review(V1, &token).await;
    assert!(username_is("admin:alice")(&a), "{}", a.text());
    let rejected = logs(&server, REJECTED);
    let why = rejected.last().unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(why.contains("server.mapRoles[1]"), "{why}");

    // Deleted: still mapped, counted.
    std::fs::remove_file(&config).unwrap();
    metric_until(&hook, &format!("{FAILURES} 3")).await;
    let a = hook.review(V1, &token).await;
    assert!(username_is("admin:alice")(&a), "{}", a.text());

    // Back, with a new mapping and a cluster ID the running server cannot take without
    // a restart: the mapping applies, the cluster ID stays (the token for the running
    // one is still accepted), and the log says a restart is needed.
    replace(
        &config,
        &extension_config(
            "    - rolearn: arn:aws:iam::123456789012:role/Admin\n      username: renamed\n",
        )
        .replace(
            &format!("clusterID: {CLUSTER_ID}"),
            "clusterID: another-cluster",
        ),
    );
    hook.review_until(&token, "renamed", username_is("renamed"))
        .await;
    let restart = server.wait_log("configuration file changed settings").await;
    assert_eq!(restart["keys"], "clusterID", "{restart}");
    // A good version clears the flagged entry.
    metric_until(
        &hook,
        "aws_iam_authenticator_mapping_invalid_entries{backend=\"MountedFile\"} 0",
    )
    .await;
    let text = hook.send(Method::GET, "/metrics", Vec::new()).await.text();
    assert!(!text.contains("entry=\"server.mapRoles[1]\""), "{text}");
    // One STS call for the whole test: mappings are applied fresh to the cached identity.
    assert_eq!(world.sts.request_count(), 1);
}

/// A backend-mode change rebuilds the chain with the MountedFile mappings reloaded since
/// startup, not the ones the server started with; a reload logs no startup notices again.
#[tokio::test]
async fn a_backend_mode_switch_keeps_the_reloaded_mappings() {
    let world = World::new();
    world.sts.add_identity(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Identity::new(ASSUMED_ARN, ACCOUNT, "AROAEXAMPLEADMIN:alice"),
    );
    world.init(0);
    let modes = world.path("backend-modes.json");
    let config_for = |username: &str| {
        format!(
            "clusterID: {CLUSTER_ID}\nserver:\n  backendMode: [MountedFile, DynamicFile]\n  dynamicfilepath: {}\n  dynamicBackendModePath: {}\n  mapRoles:\n    - rolearn: arn:aws:iam::123456789012:role/Admin\n      username: {username}\n",
            world.path("access-entries.json").display(),
            modes.display(),
        )
    };
    let config = world.write_config(&config_for("at-startup"));
    let mut server = world
        .start_without_id(&[
            "--config",
            config.to_str().unwrap(),
            "--feature-gates=SSORoleMatch=true",
        ])
        .await;
    let hook = Webhook::from_kubeconfig(&world.kubeconfig());
    let token = world.token();
    hook.review_until(&token, "mapped", username_is("at-startup"))
        .await;

    replace(&config, &config_for("reloaded"));
    hook.review_until(&token, "reloaded", username_is("reloaded"))
        .await;
    // The feature gates are announced at startup, not again for each version of the file.
    assert_eq!(logs(&server, "SSORoleMatch feature enabled").len(), 1);

    std::fs::write(&modes, r#"{"backendMode":"DynamicFile MountedFile"}"#).unwrap();
    server
        .wait_log("backend modes changed; mapper chain rebuilt")
        .await;
    let a = hook.review(V1, &token).await;
    assert!(username_is("reloaded")(&a), "{}", a.text());
}
