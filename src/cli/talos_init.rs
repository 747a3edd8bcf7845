//! `talos-init`: the Talos extension service's entrypoint.
//!
//! Reads `CLUSTER_ID`, `HOSTNAME`, `ADDRESS`, `CONFIG_FILE`, `LOG_FORMAT`, `SERVE` (and
//! `STATE_DIR`, `KEY_OWNER`, `HEALTH_ADDRESS`, `STS_RESOLVE`, `STS_CA_FILE`) from the
//! environment, validates them, logs the command line it runs, and replaces itself with
//! `aws-iam-authenticator init …`; with `SERVE=true` it runs `init` first and then
//! replaces itself with `aws-iam-authenticator server …`.

use anyhow::anyhow;
use clap::Args;

use super::GlobalArgs;
use crate::logging::LogFormat;
use crate::talos::{self, Plan};

/// Flags of `talos-init` (its inputs come from the environment).
#[derive(Debug, Args)]
pub struct TalosInitArgs {}

/// The log format for `talos-init`: `LOG_FORMAT` when it is set and valid, else
/// `--log-format` (an invalid `LOG_FORMAT` is reported by [`run`]).
pub fn log_format(global: &GlobalArgs) -> String {
    let env = talos::process_env();
    let from_env = talos::log_format_from(
        env.iter()
            .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v.to_str()?.to_owned()))),
    );
    match from_env {
        Some(LogFormat::Json) => "json".to_owned(),
        Some(LogFormat::Text) => "text".to_owned(),
        None if env.iter().any(|(k, _)| k == "LOG_FORMAT") => "text".to_owned(),
        None => global.log_format.clone(),
    }
}

/// The log verbosity for `talos-init`: the last `AWS_IAM_AUTHENTICATOR_LOG_VERBOSITY`
/// when it is set, else `-v`. The flag's own environment fallback reads the first of
/// repeated values (`getenv`), while the exec'd `init` and `server` get the last one.
pub fn log_verbosity(global: &GlobalArgs) -> String {
    talos::process_env()
        .into_iter()
        .find(|(k, _)| k == "AWS_IAM_AUTHENTICATOR_LOG_VERBOSITY")
        .and_then(|(_, v)| v.into_string().ok())
        .unwrap_or_else(|| global.log_verbosity.clone())
}

/// Runs `talos-init`: returns only on failure (after a successful exec, `init` or
/// `server` is this process), or when there is nothing to do.
pub fn run(_args: TalosInitArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let json = log_format(global) == "json";
    // With LOG_FORMAT=json every line on stderr is JSON, the error too, so log
    // collectors parse it; the plain line `main` prints would break that.
    let fail = |e: &dyn std::fmt::Display| -> anyhow::Result<()> {
        if json {
            crate::logging::fatal(&e.to_string());
            crate::logging::flush();
            std::process::exit(1);
        }
        Err(anyhow!("{e}"))
    };
    // One environment for reading our settings and for everything exec'd: each
    // variable once, its last value.
    let env = talos::process_env();
    let settings = match Plan::from_vars(env.iter().map(|(k, v)| (k, v))) {
        Ok(Plan::Run(s)) => s,
        Ok(Plan::Unconfigured) => {
            // Exit 0: the service shows as Finished and the boot goes on. When an
            // ExtensionServiceConfig arrives, Talos starts the service again.
            tracing::info!(
                "not configured: none of {} is set (no ExtensionServiceConfig named aws-iam-authenticator on this node); nothing to do",
                talos::CONFIG_VARIABLES.join(", ")
            );
            return Ok(());
        }
        Err(e) => return fail(&e),
    };
    // The running binary is the one in the container rootfs; the log shows its path
    // there, which is where it is on a node.
    let exe =
        std::env::current_exe().map_err(|e| anyhow!("could not find the running binary: {e}"))?;
    let init_args = settings.init_args();
    let Some(server_args) = settings.server_args() else {
        tracing::info!("{}", talos::executing_line(&init_args));
        return match talos::exec(&exe, &init_args, &env) {
            Ok(never) => match never {},
            Err(e) => fail(&e),
        };
    };

    // SERVE=true: init as a child (its output is ours), then become the server, so
    // Talos's stop signal reaches the server itself.
    tracing::info!("{}", talos::running_line(&init_args));
    let status = std::process::Command::new(&exe)
        .args(&init_args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status();
    match status {
        Ok(s) if s.success() => {}
        // init has logged why; exit as it did, so Talos restarts the service.
        Ok(s) => {
            crate::logging::flush();
            std::process::exit(s.code().unwrap_or(1))
        }
        Err(e) => return fail(&format!("could not run init: {e}")),
    }
    tracing::info!("{}", talos::executing_line(&server_args));
    match talos::exec(&exe, &server_args, &talos::with_server_defaults(env)) {
        Ok(never) => match never {},
        Err(e) => fail(&e),
    }
}
