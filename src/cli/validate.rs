//! `validate`: lint a config file, a DynamicFile or an `aws-auth` ConfigMap (a file, or
//! the cluster's through `--kubeconfig`/`--master`) before it is applied; usable in CI.
//!
//! Exit 0 when there is no error (and, with `--strict`, no warning), else 1.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;

use super::{Exit, GlobalArgs, UsageError};
use crate::config::ServerFlags;
use crate::config::types::{BackendMode, FeatureGates};
use crate::mapper::configmap::{NAME, NAMESPACE};
use crate::validate::entries::Context;
use crate::validate::{self, Report};

/// Flags of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// An aws-auth ConfigMap manifest (YAML or JSON) to check
    #[arg(long = "aws-auth", value_name = "FILE")]
    pub aws_auth: Option<PathBuf>,
    /// Check the cluster's kube-system/aws-auth (through --kubeconfig or --master)
    #[arg(long = "from-cluster")]
    pub from_cluster: bool,
    /// A DynamicFile (access entries JSON) to check
    #[arg(long = "dynamic-file", value_name = "FILE")]
    pub dynamic_file: Option<PathBuf>,
    /// kubeconfig file for --from-cluster
    #[arg(long = "kubeconfig", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// master is the URL to the api server, for --from-cluster
    #[arg(long = "master", value_name = "URL")]
    pub master: Option<String>,
    /// Fail on warnings too
    #[arg(long = "strict")]
    pub strict: bool,
    /// Output format: text or json
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

/// Runs `validate`.
pub async fn run(args: ValidateArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let from_cluster = args.from_cluster
        || (args.kubeconfig.is_some() || args.master.is_some()) && args.aws_auth.is_none();
    if global.config.is_none()
        && args.aws_auth.is_none()
        && args.dynamic_file.is_none()
        && !from_cluster
    {
        return Err(UsageError::new(
            &["validate"],
            "nothing to validate: give --config, --aws-auth, --dynamic-file or --from-cluster",
        )
        .into());
    }
    let gates: FeatureGates = match &global.feature_gates {
        Some(g) => g
            .parse()
            .map_err(|e: String| anyhow::anyhow!("invalid --feature-gates: {e}"))?,
        None => FeatureGates::default(),
    };
    let mut findings = Vec::new();
    let mut config = None;
    if let Some(path) = &global.config {
        let flags = ServerFlags {
            // A missing clusterID is the server's error only if -i is not given.
            cluster_id: global.cluster_id.clone(),
            feature_gates: global.feature_gates.clone(),
            // The DynamicFile is checked on its own; do not require the mode for it.
            dynamic_file_path: None,
            ..ServerFlags::default()
        };
        let (f, c) = validate::config_file(path, flags);
        findings.extend(f);
        config = c;
    }
    let ctx = |mode| Context {
        reserved: validate::reserved_for(config.as_ref(), mode),
        sso_role_match: gates.sso_role_match,
    };
    if let Some(path) = &args.aws_auth {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let name = path.display().to_string();
        findings.extend(validate::aws_auth_manifest(
            &name,
            &text,
            &ctx(BackendMode::EksConfigMap),
        ));
    }
    if from_cluster {
        let options =
            crate::k8s::ClientOptions::new(args.kubeconfig.as_deref(), args.master.as_deref());
        let client = crate::k8s::client(&options).await?;
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, NAMESPACE);
        let cm = api
            .get(NAME)
            .await
            .with_context(|| format!("cannot read {NAMESPACE}/{NAME}"))?;
        let data = cm.data.unwrap_or_default();
        findings.extend(validate::aws_auth_data(
            &format!("{NAMESPACE}/{NAME}"),
            &data,
            &ctx(BackendMode::EksConfigMap),
        ));
    }
    if let Some(path) = &args.dynamic_file {
        let strict = config
            .as_ref()
            .is_some_and(|c| c.dynamic_file_user_id_strict);
        findings.extend(validate::dynamic_file(
            path,
            strict,
            &ctx(BackendMode::DynamicFile),
        ));
    }
    let report = Report::new(findings);
    if args.output == "json" {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.errors > 0 || (args.strict && report.warnings > 0) {
        return Err(Exit(1).into());
    }
    Ok(())
}
