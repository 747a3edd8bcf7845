//! `validate`: lint a config file, a DynamicFile or an `aws-auth` ConfigMap (a file, or
//! the cluster's through `--kubeconfig`/`--master`) before it is applied; usable in CI.
//!
//! Exit 0 when there is no error (and, with `--strict`, no warning), else 1.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;

use super::args::{OutputArgs, SourceArgs};
use super::{Exit, GlobalArgs, UsageError};
use crate::config::types::{BackendMode, FeatureGates};
use crate::config::{ServerConfig, ServerFlags};
use crate::mapper::configmap::{NAME, NAMESPACE};
use crate::validate::entries::Context;
use crate::validate::{self, Finding, Report};

/// Flags of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// An aws-auth ConfigMap manifest (YAML or JSON) to check
    #[arg(long = "aws-auth", value_name = "FILE")]
    pub aws_auth: Option<PathBuf>,
    /// Check the cluster's kube-system/aws-auth (through --kubeconfig or --master)
    #[arg(long = "from-cluster")]
    pub from_cluster: bool,
    /// The DynamicFile to check and the cluster to read aws-auth from.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Fail on warnings too
    #[arg(long = "strict")]
    pub strict: bool,
    /// How the report is printed.
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ValidateArgs {
    /// Whether the cluster's aws-auth is checked: `--from-cluster`, or a way to reach the
    /// cluster without an aws-auth file.
    fn reads_cluster(&self) -> bool {
        self.from_cluster
            || (self.sources.kubeconfig.is_some() || self.sources.master.is_some())
                && self.aws_auth.is_none()
    }
}

/// Runs `validate`.
pub async fn run(args: ValidateArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let from_cluster = args.reads_cluster();
    if global.config.is_none()
        && args.aws_auth.is_none()
        && args.sources.dynamic_file.is_none()
        && !from_cluster
    {
        return Err(UsageError::new(
            &["validate"],
            "nothing to validate: give --config, --aws-auth, --dynamic-file or --from-cluster",
        )
        .into());
    }
    let gates = feature_gates(global)?;
    let mut findings = Vec::new();
    let config = match &global.config {
        Some(path) => {
            let (f, config) = config_file(path, global);
            findings.extend(f);
            config
        }
        None => None,
    };
    let ctx = |mode| Context {
        reserved: validate::reserved_for(config.as_ref(), mode),
        sso_role_match: gates.sso_role_match,
    };
    if let Some(path) = &args.aws_auth {
        findings.extend(aws_auth_file(path, &ctx(BackendMode::EksConfigMap))?);
    }
    if from_cluster {
        findings.extend(aws_auth_of_cluster(&args.sources, &ctx(BackendMode::EksConfigMap)).await?);
    }
    if let Some(path) = &args.sources.dynamic_file {
        let strict = config
            .as_ref()
            .is_some_and(|c| c.dynamic_file_user_id_strict);
        findings.extend(validate::dynamic_file(
            path,
            strict,
            &ctx(BackendMode::DynamicFile),
        ));
    }
    print(Report::new(findings), &args)
}

/// The feature gates of `--feature-gates`.
fn feature_gates(global: &GlobalArgs) -> anyhow::Result<FeatureGates> {
    match &global.feature_gates {
        Some(g) => g
            .parse()
            .map_err(|e: String| anyhow::anyhow!("invalid --feature-gates: {e}")),
        None => Ok(FeatureGates::default()),
    }
}

/// The config file's findings, and the server's configuration when it resolves.
fn config_file(path: &Path, global: &GlobalArgs) -> (Vec<Finding>, Option<ServerConfig>) {
    let flags = ServerFlags {
        // A missing clusterID is the server's error only if -i is not given.
        cluster_id: global.cluster_id.clone(),
        feature_gates: global.feature_gates.clone(),
        // The DynamicFile is checked on its own; do not require the mode for it.
        dynamic_file_path: None,
        ..ServerFlags::default()
    };
    validate::config_file(path, flags)
}

/// The findings on an aws-auth manifest file.
fn aws_auth_file(path: &Path, ctx: &Context) -> anyhow::Result<Vec<Finding>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(validate::aws_auth_manifest(
        &path.display().to_string(),
        &text,
        ctx,
    ))
}

/// The findings on the cluster's `kube-system/aws-auth`.
async fn aws_auth_of_cluster(sources: &SourceArgs, ctx: &Context) -> anyhow::Result<Vec<Finding>> {
    let options =
        crate::k8s::ClientOptions::new(sources.kubeconfig.as_deref(), sources.master.as_deref());
    let client = crate::k8s::client(&options).await?;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, NAMESPACE);
    let cm = api
        .get(NAME)
        .await
        .with_context(|| format!("cannot read {NAMESPACE}/{NAME}"))?;
    let data = cm.data.unwrap_or_default();
    Ok(validate::aws_auth_data(
        &format!("{NAMESPACE}/{NAME}"),
        &data,
        ctx,
    ))
}

/// Prints the report; exit 1 on errors (with `--strict`, on warnings too).
fn print(report: Report, args: &ValidateArgs) -> anyhow::Result<()> {
    if args.output.is_json() {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.errors > 0 || (args.strict && report.warnings > 0) {
        return Err(Exit(1).into());
    }
    Ok(())
}
