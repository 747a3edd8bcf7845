//! `add user|role`: edit the kube-system/aws-auth ConfigMap.

use clap::Args;

use super::GlobalArgs;

/// Flags of `add`.
#[derive(Debug, Args)]
pub struct AddArgs {}

/// Runs `add`.
pub async fn run(_args: AddArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::bail!("add: not built yet")
}
