//! `init`: create the webhook key pair, kubeconfig and config in the state dir.

use clap::Args;

use super::GlobalArgs;

/// Flags of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {}

/// Runs `init`.
pub async fn run(_args: InitArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::bail!("init: not built yet")
}
