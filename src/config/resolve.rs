//! [`ServerConfig::resolve`]: the command line over the config file and the defaults
//! (see [`super::layer`]), validated in upstream's order.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::layer::Layers;
use super::types::{BackendMode, FeatureGates};
use super::validate::{self, Mappings, check_arn, split_modes};
use super::{
    ConfigFile, DEFAULT_ADDRESS, DEFAULT_EC2_BURST, DEFAULT_EC2_QPS, DEFAULT_GENERATE_KUBECONFIG,
    DEFAULT_HEALTH_PORT, DEFAULT_HOSTNAME, DEFAULT_PORT, DEFAULT_STATE_DIR, Error, Limits,
    ServerConfig, ServerFlags, StsOptions, keys,
};
use crate::aws::Partition;

/// The settings read flag > config file > default, before validation.
struct Settings {
    cluster_id: String,
    partition: String,
    hostname: String,
    address: String,
    port: u16,
    state_dir: PathBuf,
    generate_kubeconfig: PathBuf,
    kubeconfig_pregenerated: bool,
    deny_with_forbidden: bool,
    limits: Limits,
    kubeconfig: Option<PathBuf>,
    master: Option<String>,
    backend_modes: Vec<String>,
    ec2_describe_instances_qps: u32,
    ec2_describe_instances_burst: u32,
    ec2_describe_instances_role_arn: Option<String>,
    source_arn: Option<String>,
    scrubbed_accounts: Vec<String>,
    dynamic_file_path: Option<PathBuf>,
    dynamic_file_user_id_strict: bool,
    dynamic_backend_mode_path: Option<PathBuf>,
}

impl Settings {
    /// Reads every setting, in the order upstream builds its Config struct. Settings
    /// with no flag come from the file alone.
    fn read(flags: &ServerFlags, l: &Layers<'_>) -> Result<Self, Error> {
        let f = flags.clone();
        let mode_flag = f.backend_mode.as_deref().map(split_modes);
        Ok(Self {
            cluster_id: l.get_or(f.cluster_id, "clusterID", String::new())?,
            partition: l.get_or(f.partition, "server.partition", "aws".to_owned())?,
            hostname: l.get_or(f.hostname, "server.hostname", DEFAULT_HOSTNAME.into())?,
            address: l.get_or(f.address, "server.address", DEFAULT_ADDRESS.into())?,
            port: l.get_or(f.port, "server.port", DEFAULT_PORT)?,
            state_dir: l.get_or(f.state_dir, "server.stateDir", DEFAULT_STATE_DIR.into())?,
            generate_kubeconfig: l.get_or(
                f.generate_kubeconfig,
                "server.generateKubeconfig",
                DEFAULT_GENERATE_KUBECONFIG.into(),
            )?,
            kubeconfig_pregenerated: l.get_or(
                f.kubeconfig_pregenerated,
                "server.kubeconfigPregenerated",
                false,
            )?,
            deny_with_forbidden: l.get_or(
                f.deny_with_forbidden,
                "server.denyWithForbidden",
                false,
            )?,
            limits: Limits {
                read_header_timeout: l.get_or(
                    f.read_header_timeout,
                    "server.readHeaderTimeout",
                    super::DEFAULT_HEADER_READ_TIMEOUT,
                )?,
                idle_timeout: l.get_or(
                    f.idle_timeout,
                    "server.idleTimeout",
                    super::DEFAULT_IDLE_TIMEOUT,
                )?,
                request_timeout: l.get_or(
                    f.request_timeout,
                    "server.requestTimeout",
                    super::DEFAULT_REQUEST_TIMEOUT,
                )?,
                max_connections: l.get_or(
                    f.max_connections,
                    "server.maxConnections",
                    super::DEFAULT_MAX_CONNECTIONS,
                )?,
                max_connections_per_client: l.get_or(
                    f.max_connections_per_client,
                    "server.maxConnectionsPerClient",
                    0,
                )?,
            },
            kubeconfig: l.get(f.kubeconfig, "server.kubeconfig")?,
            master: l.get(f.master, "server.master")?,
            backend_modes: l.get_or(
                mode_flag,
                "server.backendMode",
                vec![BackendMode::MountedFile.name().to_owned()],
            )?,
            ec2_describe_instances_qps: l.get_or(
                f.ec2_describe_instances_qps,
                "server.ec2DescribeInstancesQps",
                DEFAULT_EC2_QPS,
            )?,
            ec2_describe_instances_burst: l.get_or(
                f.ec2_describe_instances_burst,
                "server.ec2DescribeInstancesBurst",
                DEFAULT_EC2_BURST,
            )?,
            ec2_describe_instances_role_arn: l.file_value("server.ec2DescribeInstancesRoleARN")?,
            source_arn: l.file_value("server.sourceARN")?,
            scrubbed_accounts: l.get_or(None, "server.scrubbedAccounts", Vec::new())?,
            dynamic_file_path: l.get(f.dynamic_file_path, "server.dynamicfilepath")?,
            dynamic_file_user_id_strict: l.get_or(None, "server.dynamicfileUserIDStrict", false)?,
            dynamic_backend_mode_path: l.file_value("server.dynamicBackendModePath")?,
        })
    }
}

/// Parses `--feature-gates` (absent: all off).
pub(super) fn feature_gates(flag: Option<&str>) -> Result<FeatureGates, Error> {
    match flag {
        Some(v) => v.parse().map_err(|message| Error::FeatureGates {
            value: v.to_owned(),
            message,
        }),
        None => Ok(FeatureGates::default()),
    }
}

impl ServerConfig {
    /// Merges `flags` (which already include the environment variables clap binds) over
    /// the config `file` and the defaults, and validates the result in upstream's order.
    ///
    /// Returns the configuration and warnings for the caller to log: unknown config-file
    /// keys (naming the file and the key), deprecated backend-mode names, settings that
    /// are read from the command line only, and suspicious `mapAccounts` entries. Logs
    /// nothing itself: the server resolves its file again on every change.
    pub fn resolve(
        flags: ServerFlags,
        file: Option<&ConfigFile>,
    ) -> Result<(ServerConfig, Vec<String>), Error> {
        // Feature gates are parsed with the flags, before anything else.
        let feature_gates = feature_gates(flags.feature_gates.as_deref())?;
        let mut warnings = file.map(keys::warnings).unwrap_or_default();
        let s = Settings::read(&flags, &Layers::new(file))?;
        let mappings = Mappings::read(file, &mut warnings)?;

        // Then upstream's getConfig() order.
        if s.cluster_id.is_empty() {
            return Err(Error::EmptyClusterId);
        }
        let partition: Partition = s
            .partition
            .parse()
            .map_err(|_| Error::InvalidPartition(s.partition.clone()))?;
        let dynamic_in_modes = s.backend_modes.iter().any(|m| m == "DynamicFile");
        if dynamic_in_modes && s.dynamic_file_path.is_none() {
            return Err(Error::DynamicFileWithoutPath);
        }
        if !dynamic_in_modes && s.dynamic_file_path.is_some() {
            return Err(Error::DynamicFilePathWithoutMode);
        }
        let (backend_modes, mode_warnings) = validate::validate_backend_modes(&s.backend_modes)?;
        warnings.extend(mode_warnings);
        mappings.validate(&mut warnings)?;
        check_arn(
            s.ec2_describe_instances_role_arn.as_ref(),
            Error::Ec2RoleArn,
        )?;
        check_arn(s.source_arn.as_ref(), Error::SourceArn)?;

        let config = ServerConfig {
            cluster_id: s.cluster_id,
            partition,
            hostname: s.hostname,
            address: s.address,
            port: s.port,
            state_dir: s.state_dir,
            generate_kubeconfig: s.generate_kubeconfig,
            kubeconfig_pregenerated: s.kubeconfig_pregenerated,
            kubeconfig: s.kubeconfig,
            master: s.master,
            backend_modes,
            ec2_describe_instances_qps: s.ec2_describe_instances_qps,
            ec2_describe_instances_burst: s.ec2_describe_instances_burst,
            ec2_describe_instances_role_arn: s.ec2_describe_instances_role_arn,
            source_arn: s.source_arn,
            scrubbed_accounts: s.scrubbed_accounts,
            role_mappings: mappings.roles,
            user_mappings: mappings.users,
            account_mappings: mappings.accounts,
            reserved_prefixes: mappings.reserved_prefixes,
            dynamic_file_path: s.dynamic_file_path,
            dynamic_file_user_id_strict: s.dynamic_file_user_id_strict,
            dynamic_backend_mode_path: s.dynamic_backend_mode_path,
            feature_gates,
            health_address: flags
                .health_address
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_HEALTH_PORT))),
            sts: StsOptions {
                resolve: flags.sts_resolve,
                ca_file: flags.sts_ca_file,
                proxy: crate::https::proxy::ProxyEnv::none(),
            },
            deny_with_forbidden: s.deny_with_forbidden,
            limits: s.limits,
        };
        Ok((config, warnings))
    }
}

#[cfg(test)]
mod tests;
