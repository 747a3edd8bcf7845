//! `token`: mint a `k8s-aws-v1.` token and print it as an ExecCredential.

use clap::Args;

use super::GlobalArgs;

/// Flags of `token`.
#[derive(Debug, Args)]
pub struct TokenArgs {}

/// Runs `token`.
pub async fn run(_args: TokenArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::bail!("token: not built yet")
}
