//! Configuration: the upstream config file, merged with flags and environment into one
//! validated [`ServerConfig`].
//!
//! Precedence per key, as upstream's viper: flag > environment > config file > default.

pub mod file;
pub mod types;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use file::ConfigFile;
use types::{BackendMode, FeatureGates, Partition, RoleMapping, UserMapping};

/// Upstream's default `--state-dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/aws-iam-authenticator";
/// Upstream's default `--generate-kubeconfig`.
pub const DEFAULT_GENERATE_KUBECONFIG: &str =
    "/etc/kubernetes/aws-iam-authenticator/kubeconfig.yaml";
/// Upstream's default `--address`.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1";
/// Upstream's default `--port`.
pub const DEFAULT_PORT: u16 = 21362;
/// Upstream's default `server.hostname`.
pub const DEFAULT_HOSTNAME: &str = "localhost";
/// Upstream's health port (plain HTTP, every path answers `ok`).
pub const DEFAULT_HEALTH_PORT: u16 = 21363;

/// Options for reaching STS that tests and private (VPC) endpoints need. None of them
/// can widen the host allow-list: they only change where a permitted host connects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StsOptions {
    /// `--sts-resolve HOST=IP:PORT`: connect to this address for this STS host, keeping the
    /// host name for SNI, `Host` and certificate verification.
    pub resolve: Vec<(String, SocketAddr)>,
    /// `--sts-ca-file`: extra PEM roots trusted for STS (in addition to the system's).
    pub ca_file: Option<PathBuf>,
}

/// The validated server configuration. Every field is usable as it is.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The cluster id tokens must be bound to (never empty).
    pub cluster_id: String,
    /// The partition whose STS hosts are accepted.
    pub partition: Partition,
    /// Host name in the webhook URL and certificate (`server.hostname`).
    pub hostname: String,
    /// Bind address of the TLS listener (`--address`).
    pub address: String,
    /// TLS port (`--port`).
    pub port: u16,
    /// Where cert.pem and key.pem live (`--state-dir`).
    pub state_dir: PathBuf,
    /// Where the webhook kubeconfig is written (`--generate-kubeconfig`).
    pub generate_kubeconfig: PathBuf,
    /// Don't write the webhook kubeconfig; files were made by `init` (`--kubeconfig-pregenerated`).
    pub kubeconfig_pregenerated: bool,
    /// Client kubeconfig for the Kubernetes backends (`--kubeconfig`).
    pub kubeconfig: Option<PathBuf>,
    /// API server URL for the Kubernetes backends (`--master`).
    pub master: Option<String>,
    /// The mapping backends, in order, deduplicated and validated.
    pub backend_modes: Vec<BackendMode>,
    /// `--ec2-describeInstances-qps`.
    pub ec2_describe_instances_qps: u32,
    /// `--ec2-describeInstances-burst`.
    pub ec2_describe_instances_burst: u32,
    /// `server.ec2DescribeInstancesRoleARN`: role assumed for DescribeInstances.
    pub ec2_describe_instances_role_arn: Option<String>,
    /// `server.sourceARN`: source ARN/account headers on that AssumeRole.
    pub source_arn: Option<String>,
    /// `server.scrubbedAccounts`: accounts kept out of logs and responses.
    pub scrubbed_accounts: Vec<String>,
    /// `server.mapRoles` (validated).
    pub role_mappings: Vec<RoleMapping>,
    /// `server.mapUsers` (validated).
    pub user_mappings: Vec<UserMapping>,
    /// `server.mapAccounts`.
    pub account_mappings: Vec<String>,
    /// `server.reservedPrefixConfig`, by backend.
    pub reserved_prefixes: BTreeMap<BackendMode, Vec<String>>,
    /// `server.dynamicfilepath`.
    pub dynamic_file_path: Option<PathBuf>,
    /// `server.dynamicfileUserIDStrict`.
    pub dynamic_file_user_id_strict: bool,
    /// `server.dynamicBackendModePath`.
    pub dynamic_backend_mode_path: Option<PathBuf>,
    /// `--feature-gates`.
    pub feature_gates: FeatureGates,
    /// Plain-HTTP health listener (`--health-address`, default `0.0.0.0:21363` as upstream).
    pub health_address: SocketAddr,
    /// How STS is reached.
    pub sts: StsOptions,
}

/// Server settings as given on the command line (`None`: not given). `ServerConfig::resolve`
/// merges them over the environment, the config file and the defaults.
#[derive(Debug, Clone, Default)]
pub struct ServerFlags {
    /// `-i/--cluster-id` or `KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID`.
    pub cluster_id: Option<String>,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--generate-kubeconfig`.
    pub generate_kubeconfig: Option<PathBuf>,
    /// `--kubeconfig-pregenerated`.
    pub kubeconfig_pregenerated: Option<bool>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--master`.
    pub master: Option<String>,
    /// `--address`.
    pub address: Option<String>,
    /// `--backend-mode` (comma-separated on the command line).
    pub backend_mode: Option<Vec<String>>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--hostname` (`init`).
    pub hostname: Option<String>,
    /// `--ec2-describeInstances-qps`.
    pub ec2_describe_instances_qps: Option<u32>,
    /// `--ec2-describeInstances-burst`.
    pub ec2_describe_instances_burst: Option<u32>,
    /// `--feature-gates`.
    pub feature_gates: Option<String>,
    /// `--health-address`.
    pub health_address: Option<SocketAddr>,
    /// `--sts-resolve`, repeatable.
    pub sts_resolve: Vec<(String, SocketAddr)>,
    /// `--sts-ca-file`.
    pub sts_ca_file: Option<PathBuf>,
}
