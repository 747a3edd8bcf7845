//! `explain`: how the server would map an ARN (or a token's identity), and why.
//!
//! Reads the same configuration as `server` (config file, backend modes, DynamicFile,
//! aws-auth and IAMIdentityMappings through `--kubeconfig`/`--master`), builds the
//! server's chain once, waits for its sources to load, maps the identity with the trace
//! on and exits: 0 when the identity maps, 1 when it does not (or on an error).

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::args::{OutputArgs, SourceArgs, StsArgs};
use super::{Exit, GlobalArgs, UsageError};
use crate::aws::Partition;
use crate::config::{ServerConfig, ServerFlags};
use crate::go::time::parse_duration;
use crate::identity::Identity;
use crate::mapper::chain::Chain;

/// Flags of `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The caller's ARN, as STS reports it (`arn:aws:sts::<acct>:assumed-role/<role>/<session>`, `arn:aws:iam::<acct>:user/<name>`, …)
    #[arg(
        long = "arn",
        value_name = "ARN",
        conflicts_with = "token",
        required_unless_present = "token"
    )]
    pub arn: Option<String>,
    /// A token (`k8s-aws-v1.…`) to verify through STS first, as the server does
    #[arg(short = 't', long = "token", value_name = "TOKEN")]
    pub token: Option<String>,
    /// The caller's unique id (`AROA…`/`AIDA…`) with --arn, for DynamicFile's userid keys
    #[arg(long = "user-id", value_name = "ID", requires = "arn")]
    pub user_id: Option<String>,
    /// How the explanation is printed.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The AWS partition. Must be one of: aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc [default: aws]
    #[arg(long = "partition", value_name = "PARTITION")]
    pub partition: Option<String>,
    /// Ordered list of backends to get mappings from, comma-separated and/or repeated: MountedFile, EKSConfigMap, CRD, DynamicFile [default: MountedFile]
    #[arg(long = "backend-mode", value_name = "MODES", value_delimiter = ',')]
    pub backend_mode: Option<Vec<String>>,
    /// The DynamicFile and the cluster to read mappings from.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Longest wait for the backends to load their mappings (e.g. 30s)
    #[arg(long = "timeout", value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub timeout: Duration,
    /// How STS is reached, for --token.
    #[command(flatten)]
    pub sts: StsArgs,
}

/// Runs `explain`.
pub async fn run(args: ExplainArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let file = global.config_file()?;
    let cluster_id = global.cluster_id(file.as_ref())?;
    if args.token.is_some() && cluster_id.is_none() {
        return Err(UsageError::new(&["explain"], "cluster ID not specified").into());
    }
    let flags = ServerFlags {
        // Mapping does not depend on the cluster id; only a token's check does.
        cluster_id: Some(cluster_id.clone().unwrap_or_else(|| "-".to_owned())),
        partition: args.partition.clone(),
        kubeconfig: args.sources.kubeconfig.clone(),
        master: args.sources.master.clone(),
        backend_mode: args.backend_mode.clone(),
        feature_gates: global.feature_gates.clone(),
        sts_resolve: args.sts.sts_resolve.clone(),
        sts_ca_file: args.sts.sts_ca_file.clone(),
        dynamic_file_path: args.sources.dynamic_file.clone(),
        ..ServerFlags::default()
    };
    let (config, warnings) = ServerConfig::resolve(flags, file.as_ref())?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let identity = match (&args.arn, &args.token) {
        (Some(arn), _) => Identity::from_arn(arn, args.user_id.as_deref().unwrap_or(""))
            .with_context(|| format!("invalid --arn {arn:?}"))?,
        (None, Some(token)) => {
            let sts = args.sts.options();
            let partition: Partition = config.partition;
            let cluster = cluster_id.unwrap_or_default();
            crate::token::once::verify(token, cluster, partition, &sts).await?
        }
        (None, None) => {
            return Err(
                UsageError::new(&["explain"], "one of --arn or --token is required").into(),
            );
        }
    };
    // Nobody scrapes a one-shot command: the chain's metrics go to a registry of its own.
    let mut registry = crate::metrics::registry();
    let chain = Chain::build(&config, None, &mut registry).await?;
    crate::explain::wait_ready(&chain, args.timeout).await?;
    let explanation = crate::explain::explain(&chain, identity, &config.scrubbed_accounts).await;
    if args.output.is_json() {
        print!("{}", explanation.to_json());
    } else {
        print!("{}", explanation.to_text());
    }
    if explanation.mapped() {
        Ok(())
    } else {
        Err(Exit(1).into())
    }
}
