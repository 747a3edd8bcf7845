//! `init`: create the webhook key pair, kubeconfig and config in the state dir.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Args;

use super::GlobalArgs;
use crate::config::{DEFAULT_GENERATE_KUBECONFIG, Layers, ServerConfig, ServerFlags};
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
    // The doc comment is the --help text, shown as written: `<state-dir>` is no HTML tag.
    #[allow(rustdoc::invalid_html_tags)]
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

/// Where `init` writes, and where the files belong on the control-plane nodes.
struct Plan {
    /// What [`init::run`] writes (in the working directory unless `in_place`).
    options: Options,
    /// Whether the files are written where they belong.
    in_place: bool,
    /// The configured state dir.
    state_dir: PathBuf,
    /// The configured webhook kubeconfig.
    kubeconfig: PathBuf,
}

/// Resolves the configuration as `server` does, and where the files go.
fn plan(args: &InitArgs, global: &GlobalArgs) -> anyhow::Result<Plan> {
    let file = global
        .config_file()
        .map_err(|e| anyhow!("could not get config: {e:#}"))?;
    let cluster_id = global
        .cluster_id(file.as_ref())
        .map_err(|e| anyhow!("could not get config: {e:#}"))?
        .ok_or_else(|| anyhow!("could not get config: cluster ID cannot be empty"))?;
    let file = file.as_ref();
    // upstream: cmd/aws-iam-authenticator/init.go calls getConfig(), which validates the
    // whole configuration as `server` does (partition, backend modes, mappings, …), so a
    // config that `server` would refuse is refused here too, before anything is written.
    // Its warnings are the server's to log.
    // upstream: init.go binds --address to server.address, but server.go re-binds that key
    // to its own flag, so `init --address` is ignored; here the flag takes effect.
    let flags = ServerFlags {
        cluster_id: Some(cluster_id.clone()),
        feature_gates: global.feature_gates.clone(),
        hostname: args.hostname.clone(),
        address: args.address.clone(),
        port: args.port,
        state_dir: args.state_dir.clone(),
        generate_kubeconfig: args.generate_kubeconfig.clone(),
        ..ServerFlags::default()
    };
    let (config, _) =
        ServerConfig::resolve(flags, file).map_err(|e| anyhow!("could not get config: {e:#}"))?;
    config.feature_gates.log_enabled();
    // Without a path of its own, the kubeconfig goes beside the key pair when the state
    // dir is given on the command line.
    let kubeconfig = match Layers::new(file).get(
        args.generate_kubeconfig.clone(),
        "server.generateKubeconfig",
    )? {
        Some(path) => path,
        None if args.state_dir.is_some() => config.state_dir.join("kubeconfig.yaml"),
        None => PathBuf::from(DEFAULT_GENERATE_KUBECONFIG),
    };
    // Upstream's default (no feature gate): write to the working directory and tell the
    // operator where to copy the files. Asking for a path on the command line is enough
    // to have it written there.
    let in_place = config.feature_gates.configured_init_directories
        || args.state_dir.is_some()
        || args.generate_kubeconfig.is_some();
    let (out_state_dir, out_kubeconfig) = if in_place {
        (config.state_dir.clone(), kubeconfig.clone())
    } else {
        (PathBuf::from("."), PathBuf::from(init::CWD_KUBECONFIG))
    };
    let config_file = match &args.write_config {
        Some(path) => Some((
            path.clone(),
            init::config_file::content(file, &cluster_id, &config.address)
                .map_err(|e| anyhow!("could not initialize: {}", error_chain(&e)))?,
        )),
        None => None,
    };
    Ok(Plan {
        options: Options {
            state_dir: out_state_dir,
            kubeconfig_path: out_kubeconfig,
            hostname: config.hostname,
            address: config.address,
            port: config.port,
            key_owner: args.key_owner,
            config: config_file,
            state_dir_mode: args.state_dir_mode,
        },
        in_place,
        state_dir: config.state_dir,
        kubeconfig,
    })
}

/// Runs `init`.
pub async fn run(args: InitArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    // Upstream prints this before anything else; scripts grep for it.
    crate::logging::announce_version(&global.log_format);
    let plan = plan(&args, global)?;
    let opts = plan.options.clone();
    let (_, outcome) = tokio::task::spawn_blocking(move || init::run(&opts))
        .await?
        .map_err(|e| anyhow!("could not initialize: {}", error_chain(&e)))?;
    tracing::debug!(?outcome, "init finished");
    report(&plan);
    Ok(())
}

/// Tells the operator where the files are, or where to copy them, as upstream does.
fn report(plan: &Plan) {
    let out = &plan.options;
    let cert = out.state_dir.join(tls::CERT_FILE);
    let key = out.state_dir.join(tls::KEY_FILE);
    if plan.in_place {
        tracing::info!("certificate generated at {}", cert.display());
        tracing::info!("key generated at {}", key.display());
        tracing::info!(
            "kubeconfig generated at {} on kubernetes master node(s)",
            out.kubeconfig_path.display()
        );
    } else {
        for (src, dst) in [
            (cert.as_path(), plan.state_dir.join(tls::CERT_FILE)),
            (key.as_path(), plan.state_dir.join(tls::KEY_FILE)),
            (out.kubeconfig_path.as_path(), plan.kubeconfig.clone()),
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
        plan.kubeconfig.display()
    );
}

/// `./cert.pem` → `cert.pem`, as upstream prints working-directory paths.
fn shown(p: &Path) -> String {
    p.strip_prefix(".").unwrap_or(p).display().to_string()
}
