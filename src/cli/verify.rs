//! `verify`: run the server's verification of a token and print the identity.

use clap::Args;

use super::GlobalArgs;

/// Flags of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {}

/// Runs `verify`.
pub async fn run(_args: VerifyArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::bail!("verify: not built yet")
}
