//! `talos-init`: the Talos extension service's entrypoint.

use clap::Args;

use super::GlobalArgs;

/// Flags of `talos-init` (its inputs come from the environment).
#[derive(Debug, Args)]
pub struct TalosInitArgs {}

/// Runs `talos-init`.
pub fn run(_args: TalosInitArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::bail!("talos-init: not built yet")
}
