//! Configuration: the upstream config file, merged with flags and environment into one
//! validated [`ServerConfig`].
//!
//! Precedence per key, as upstream's viper: flag > environment > config file > default.

//!
//! * [`mod@file`]: the file itself, case-insensitive dotted keys.
//! * [`layer`]: one setting from its layers (pure).
//! * [`keys`]: the keys upstream reads; warnings for the others.
//! * `resolve`: every server setting from its layers, validated in upstream's order.
//! * [`validate`]: backend modes, mappings, ARNs, with upstream's texts.
//! * [`types`]: the mapping and feature-gate types.

pub mod file;
pub mod keys;
pub mod layer;
mod resolve;
pub mod types;
pub mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::aws::Partition;
pub use file::ConfigFile;
pub use keys::KNOWN_KEYS;
pub use layer::Layers;
use types::{BackendMode, FeatureGates, RoleMapping, UserMapping};
pub(crate) use validate::aggregate;
pub use validate::validate_backend_modes;

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
/// Upstream's default `--ec2-describeInstances-qps`.
pub const DEFAULT_EC2_QPS: u32 = 15;
/// Upstream's default `--ec2-describeInstances-burst`.
pub const DEFAULT_EC2_BURST: u32 = 5;
/// Default limit on reading a request's headers.
///
/// upstream: pkg/server/server.go sets `ReadHeaderTimeout: 60s`; we use 10 s, which is
/// ample for the apiserver on a local connection and frees slow-loris connections sooner.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit on open connections of the webhook port.
///
/// upstream: pkg/server/server.go sets no limit; we serve 256 (64 per client address)
/// because each open connection may cost ~130 KiB under attack (RELIABILITY.md's memory
/// bound), and 256 keeps the whole process under the example DaemonSet's 128Mi limit.
/// kube-apiserver multiplexes its reviews over a handful of HTTP/2 connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default time a connection may stay open with no request in flight, between keep-alive
/// requests. kube-apiserver keeps its webhook connections for reuse; 90 s matches Go's
/// `http.DefaultTransport` idle timeout, so an idle pooled connection is seldom closed
/// under the client just before it would reuse it. A connection that never sent a first
/// request gets only the header timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default limit on one request, from its headers to its answer, body read included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for reaching STS that tests and private (VPC) endpoints need. None of them
/// can widen the host allow-list: they only change where a permitted host connects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StsOptions {
    /// `--sts-resolve HOST=IP:PORT`: connect to this address for this STS host, keeping the
    /// host name for SNI, `Host` and certificate verification.
    pub resolve: Vec<(String, SocketAddr)>,
    /// `--sts-ca-file`: extra PEM roots trusted for STS (in addition to the system's).
    pub ca_file: Option<PathBuf>,
    /// The proxy variables: none unless the command that builds the client read them from
    /// the environment (`server` and `verify` do), so a client built in-process sees no
    /// ambient proxy by accident.
    pub proxy: crate::https::proxy::ProxyEnv,
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
    /// Answer every definitive denial 403, as upstream (`--deny-with-forbidden`,
    /// `server.denyWithForbidden`); default: 200 with `authenticated: false`.
    pub deny_with_forbidden: bool,
    /// The listeners' limits (`--read-header-timeout` … `--max-connections-per-client`,
    /// or `server.readHeaderTimeout` … `server.maxConnectionsPerClient`).
    pub limits: Limits,
}

/// The listeners' limits, as configured (see `server::ListenerConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `server.readHeaderTimeout`.
    pub read_header_timeout: Duration,
    /// `server.idleTimeout`.
    pub idle_timeout: Duration,
    /// `server.requestTimeout`.
    pub request_timeout: Duration,
    /// `server.maxConnections`.
    pub max_connections: usize,
    /// `server.maxConnectionsPerClient` (0: a quarter of `max_connections`).
    pub max_connections_per_client: usize,
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
    /// `--deny-with-forbidden`.
    pub deny_with_forbidden: Option<bool>,
    /// `explain --dynamic-file`: overrides `server.dynamicfilepath`.
    pub dynamic_file_path: Option<PathBuf>,
    /// `--read-header-timeout`.
    pub read_header_timeout: Option<Duration>,
    /// `--idle-timeout`.
    pub idle_timeout: Option<Duration>,
    /// `--request-timeout`.
    pub request_timeout: Option<Duration>,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
    /// `--max-connections-per-client`.
    pub max_connections_per_client: Option<usize>,
}

/// Why the server configuration is unusable. The texts are upstream's (`getConfig()` in
/// `cmd/aws-iam-authenticator/root.go`) where it has one; errors about a config-file
/// value name the file and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A config-file value has the wrong shape (names the file and the key).
    #[error(transparent)]
    File(#[from] file::Error),
    /// `server.mapRoles` could not be decoded, or an entry is invalid (names the entry).
    #[error("invalid server role mappings: {0}")]
    RoleMappings(String),
    /// `server.mapUsers` could not be decoded, or an entry is invalid (names the entry).
    #[error("invalid server user mappings: {0}")]
    UserMappings(String),
    /// `server.mapAccounts` could not be decoded.
    #[error("invalid server account mappings: {0}")]
    AccountMappings(String),
    /// `server.reservedPrefixConfig` could not be decoded.
    #[error("invalid reserved prefix config: {0}")]
    ReservedPrefixConfig(String),
    /// No cluster id from `-i`, the environment or `clusterID`.
    #[error("cluster ID cannot be empty")]
    EmptyClusterId,
    /// The partition is not one of the eight (the value is kept for callers; upstream's
    /// text does not print it).
    #[error("invalid partition")]
    InvalidPartition(String),
    /// `DynamicFile` is a backend mode but `server.dynamicfilepath` is not set.
    #[error("dynamicfile is set in backend-mode but dynamicfilepath is not set")]
    DynamicFileWithoutPath,
    /// `server.dynamicfilepath` is set but `DynamicFile` is not a backend mode.
    #[error("dynamicfile is not set in backend-mode but dynamicfilepath is set")]
    DynamicFilePathWithoutMode,
    /// The backend modes are invalid (upstream's aggregated text, e.g.
    /// `backend-mode "Nope" is not a valid mode`).
    #[error("{0}")]
    BackendModes(String),
    /// `--feature-gates` does not parse.
    #[error("invalid argument {value:?} for \"--feature-gates\" flag: {message}")]
    FeatureGates {
        /// The flag's value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// `server.ec2DescribeInstancesRoleARN` is not an ARN.
    #[error("describeinstancesrole {0} is not a valid arn")]
    Ec2RoleArn(String),
    /// `server.sourceARN` is not an ARN.
    #[error("sourcearn {0} is not a valid arn")]
    SourceArn(String),
}
