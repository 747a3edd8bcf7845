//! `talos-init`: the Talos extension service's entrypoint.
//!
//! Reads `CLUSTER_ID`, `HOSTNAME`, `ADDRESS`, `CONFIG_FILE`, `LOG_FORMAT` (and
//! `STATE_DIR`, `KEY_OWNER`) from the environment, validates them, logs the `init`
//! command line it runs, and replaces itself with `aws-iam-authenticator init …`.

use anyhow::anyhow;
use clap::Args;

use super::GlobalArgs;
use crate::logging::LogFormat;
use crate::talos::{self, Settings};

/// Flags of `talos-init` (its inputs come from the environment).
#[derive(Debug, Args)]
pub struct TalosInitArgs {}

/// The log format for `talos-init`: `LOG_FORMAT` when it is set and valid, else
/// `--log-format` (an invalid `LOG_FORMAT` is reported by [`run`]).
pub fn log_format(global: &GlobalArgs) -> String {
    let from_env = talos::log_format_from(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    );
    match from_env {
        Some(LogFormat::Json) => "json".to_owned(),
        Some(LogFormat::Text) => "text".to_owned(),
        None if std::env::var_os("LOG_FORMAT").is_some() => "text".to_owned(),
        None => global.log_format.clone(),
    }
}

/// Runs `talos-init`: returns only on failure (after a successful exec, `init` is this
/// process).
pub fn run(_args: TalosInitArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) if log_format(global) == "json" => {
            // With LOG_FORMAT=json every line on stderr is JSON, this one too, so log
            // collectors parse it; the plain line `main` prints would break that.
            tracing::error!("{e}");
            std::process::exit(1);
        }
        Err(e) => return Err(anyhow!("{e}")),
    };
    let args = settings.init_args();
    tracing::info!("{}", talos::executing_line(&args));
    // The running binary is the one in the container rootfs; the log shows its path
    // there, which is where it is on a node.
    let exe =
        std::env::current_exe().map_err(|e| anyhow!("could not find the running binary: {e}"))?;
    match talos::exec(&exe, &args) {
        Ok(never) => match never {},
        Err(e) => Err(anyhow!("{e}")),
    }
}
