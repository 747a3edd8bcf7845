//! `server`: the TokenReview webhook.

use clap::Args;

use super::GlobalArgs;

/// Flags of `server`.
#[derive(Debug, Args)]
pub struct ServerArgs {}

/// Runs `server`.
pub async fn run(_args: ServerArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::bail!("server: not built yet")
}
