//! `init`: create the webhook key pair, kubeconfig and config in the state dir.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Args;

use super::GlobalArgs;
use crate::config::types::FeatureGates;
use crate::config::{
    ConfigFile, DEFAULT_ADDRESS, DEFAULT_GENERATE_KUBECONFIG, DEFAULT_HOSTNAME, DEFAULT_PORT,
    DEFAULT_STATE_DIR, ServerConfig, ServerFlags,
};
use crate::error::error_chain;
use crate::init::{self, Options, Owner};
use crate::tls;

/// Flags of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Hostname that should be used for writing the self-signed certificates [default: localhost]
    #[arg(long, value_name = "HOST")]
    pub hostname: Option<String>,
    /// IP Address to bind the server to listen to. (should be a 127.0.0.1 or 0.0.0.0) [default: 127.0.0.1]
    #[arg(long, value_name = "IP")]
    pub address: Option<String>,
    /// Port the server listens on, used in the webhook URL [default: 21362]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Directory to write cert.pem and key.pem to [default: the working directory, or
    /// /var/aws-iam-authenticator with --feature-gates=ConfiguredInitDirectories=true]
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Path to write the webhook kubeconfig to [default: ./aws-iam-authenticator.kubeconfig;
    /// <state-dir>/kubeconfig.yaml with --state-dir]
    #[arg(long = "generate-kubeconfig", value_name = "FILE")]
    pub generate_kubeconfig: Option<PathBuf>,
    /// Also write the server's config file here: the --config file's content, or a minimal
    /// one with the cluster ID
    #[arg(long = "write-config", value_name = "FILE")]
    pub write_config: Option<PathBuf>,
    /// Give key.pem to this owner (UID or UID:GID), e.g. the server's non-root user
    #[arg(long = "key-owner", value_name = "UID[:GID]")]
    pub key_owner: Option<Owner>,
    /// Mode to give the state directory, in octal (e.g. 755)
    #[arg(long = "state-dir-mode", value_name = "MODE", value_parser = parse_mode)]
    pub state_dir_mode: Option<u32>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("invalid mode {s:?}: expected octal, e.g. 755"))
}

fn string_setting(
    flag: Option<&String>,
    file: Option<&ConfigFile>,
    key: &str,
) -> anyhow::Result<Option<String>> {
    if let Some(v) = flag {
        return Ok(Some(v.clone()));
    }
    Ok(match file {
        Some(f) => f.get_string(key)?.filter(|s| !s.is_empty()),
        None => None,
    })
}

/// The server config to write: the `--config` file as it is when it names the cluster,
/// else that file with `clusterID` added, else a minimal one (with the `--address` the
/// certificate names, so the server listens there).
fn config_content(
    file: Option<&ConfigFile>,
    cluster_id: &str,
    address: &str,
) -> anyhow::Result<Vec<u8>> {
    let Some(file) = file else {
        return Ok(init::minimal_server_config(cluster_id, address).into_bytes());
    };
    let raw = std::fs::read(file.path())
        .map_err(|e| anyhow!("could not read {}: {e}", file.path().display()))?;
    match file.get_string("clusterID")?.filter(|s| !s.is_empty()) {
        Some(id) if id == cluster_id => Ok(raw),
        Some(id) => Err(anyhow!(
            "cluster ID {cluster_id:?} disagrees with clusterID {id:?} in {}",
            file.path().display()
        )),
        None => {
            // Re-serialise with the key added (comments are lost, the content is kept):
            // the server reads its cluster id from this file alone.
            let text = String::from_utf8_lossy(&raw);
            let mut value: serde_json::Value = if text.trim().is_empty() {
                serde_json::Value::Object(Default::default())
            } else if file.path().extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text)?
            } else {
                serde_saphyr::from_str(&text)
                    .map_err(|e| anyhow!("{}: {e}", file.path().display()))?
            };
            let obj = value
                .as_object_mut()
                .ok_or_else(|| anyhow!("{}: not a mapping", file.path().display()))?;
            // Drop an empty clusterID of any spelling, then add ours.
            obj.retain(|k, _| !k.eq_ignore_ascii_case("clusterid"));
            obj.insert(
                "clusterID".to_owned(),
                serde_json::Value::String(cluster_id.to_owned()),
            );
            Ok(serde_saphyr::to_string(&value)?.into_bytes())
        }
    }
}

/// Runs `init`.
pub async fn run(args: InitArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    // Upstream prints this before anything else; scripts grep for it.
    crate::logging::announce_version(&global.log_format);
    let file = global
        .config_file()
        .map_err(|e| anyhow!("could not get config: {e:#}"))?;
    let cluster_id = global
        .cluster_id(file.as_ref())
        .map_err(|e| anyhow!("could not get config: {e:#}"))?
        .ok_or_else(|| anyhow!("could not get config: cluster ID cannot be empty"))?;
    let gates: FeatureGates = match &global.feature_gates {
        Some(g) => g
            .parse()
            .map_err(|e| anyhow!("could not get config: {e}"))?,
        None => FeatureGates::default(),
    };
    let file = file.as_ref();
    // upstream: cmd/aws-iam-authenticator/init.go calls getConfig(), which validates the
    // whole configuration as `server` does (partition, backend modes, mappings, …), so a
    // config that `server` would refuse is refused here too, before anything is written.
    // Its warnings are the server's to log.
    let flags = ServerFlags {
        cluster_id: Some(cluster_id.clone()),
        feature_gates: global.feature_gates.clone(),
        ..ServerFlags::default()
    };
    ServerConfig::resolve(flags, file).map_err(|e| anyhow!("could not get config: {e:#}"))?;

    let hostname = string_setting(args.hostname.as_ref(), file, "server.hostname")?
        .unwrap_or_else(|| DEFAULT_HOSTNAME.to_owned());
    // upstream: init.go binds --address to server.address, but server.go re-binds that key
    // to its own flag, so `init --address` is ignored; here the flag takes effect.
    let address = string_setting(args.address.as_ref(), file, "server.address")?
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
    let port = match args.port {
        Some(p) => p,
        None => match file
            .map(|f| f.get_i64("server.port"))
            .transpose()?
            .flatten()
        {
            Some(p) => u16::try_from(p)
                .map_err(|_| anyhow!("could not get config: invalid server.port {p}"))?,
            None => DEFAULT_PORT,
        },
    };
    let configured_state_dir = match &args.state_dir {
        Some(d) => Some(d.clone()),
        None => string_setting(None, file, "server.stateDir")?.map(PathBuf::from),
    };
    let configured_kubeconfig = match &args.generate_kubeconfig {
        Some(k) => Some(k.clone()),
        None => string_setting(None, file, "server.generateKubeconfig")?.map(PathBuf::from),
    };
    let state_dir = configured_state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let kubeconfig = configured_kubeconfig.clone().unwrap_or_else(|| {
        if args.state_dir.is_some() {
            state_dir.join("kubeconfig.yaml")
        } else {
            PathBuf::from(DEFAULT_GENERATE_KUBECONFIG)
        }
    });
    // Upstream's default (no feature gate): write to the working directory and tell the
    // operator where to copy the files. Asking for a path on the command line is enough
    // to have it written there.
    let in_place = gates.configured_init_directories
        || args.state_dir.is_some()
        || args.generate_kubeconfig.is_some();
    let (out_state_dir, out_kubeconfig) = if in_place {
        (state_dir.clone(), kubeconfig.clone())
    } else {
        (PathBuf::from("."), PathBuf::from(init::CWD_KUBECONFIG))
    };

    let config = match &args.write_config {
        Some(path) => Some((
            path.clone(),
            config_content(file, &cluster_id, &address)
                .map_err(|e| anyhow!("could not initialize: {e:#}"))?,
        )),
        None => None,
    };
    let opts = Options {
        state_dir: out_state_dir.clone(),
        kubeconfig_path: out_kubeconfig.clone(),
        hostname,
        address,
        port,
        key_owner: args.key_owner,
        config,
        state_dir_mode: args.state_dir_mode,
    };
    let (_, outcome) = tokio::task::spawn_blocking(move || init::run(&opts))
        .await?
        .map_err(|e| anyhow!("could not initialize: {}", error_chain(&e)))?;
    tracing::debug!(?outcome, "init finished");

    let cert = out_state_dir.join(tls::CERT_FILE);
    let key = out_state_dir.join(tls::KEY_FILE);
    if in_place {
        tracing::info!("certificate generated at {}", cert.display());
        tracing::info!("key generated at {}", key.display());
        tracing::info!(
            "kubeconfig generated at {} on kubernetes master node(s)",
            out_kubeconfig.display()
        );
    } else {
        for (src, dst) in [
            (cert.as_path(), state_dir.join(tls::CERT_FILE)),
            (key.as_path(), state_dir.join(tls::KEY_FILE)),
            (out_kubeconfig.as_path(), kubeconfig.clone()),
        ] {
            tracing::info!(
                "copy {} to {} on kubernetes master node(s)",
                shown(src),
                dst.display()
            );
        }
    }
    tracing::info!(
        "configure your apiserver with `--authentication-token-webhook-config-file={}` to enable authentication with aws-iam-authenticator",
        kubeconfig.display()
    );
    Ok(())
}

/// `./cert.pem` → `cert.pem`, as upstream prints working-directory paths.
fn shown(p: &Path) -> String {
    p.strip_prefix(".").unwrap_or(p).display().to_string()
}
