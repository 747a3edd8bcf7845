//! Which settings of a new config file version only a restart applies: the running
//! server keeps its values and says which keys changed.

use crate::config::ServerConfig;

/// Whether a setting differs between the running configuration and a new one.
type Changed = fn(&ServerConfig, &ServerConfig) -> bool;

/// The settings only a restart applies, by config key (command-line names for those that
/// have no key), in the order they are reported.
const STARTUP_SETTINGS: &[(&str, Changed)] = &[
    ("clusterID", |a, b| a.cluster_id != b.cluster_id),
    ("server.partition", |a, b| a.partition != b.partition),
    ("server.hostname", |a, b| a.hostname != b.hostname),
    ("server.address", |a, b| a.address != b.address),
    ("server.port", |a, b| a.port != b.port),
    ("server.stateDir", |a, b| a.state_dir != b.state_dir),
    ("server.generateKubeconfig", |a, b| {
        a.generate_kubeconfig != b.generate_kubeconfig
    }),
    ("server.kubeconfigPregenerated", |a, b| {
        a.kubeconfig_pregenerated != b.kubeconfig_pregenerated
    }),
    ("server.kubeconfig", |a, b| a.kubeconfig != b.kubeconfig),
    ("server.master", |a, b| a.master != b.master),
    ("server.backendMode", |a, b| {
        a.backend_modes != b.backend_modes
    }),
    ("server.ec2DescribeInstancesQps", |a, b| {
        a.ec2_describe_instances_qps != b.ec2_describe_instances_qps
    }),
    ("server.ec2DescribeInstancesBurst", |a, b| {
        a.ec2_describe_instances_burst != b.ec2_describe_instances_burst
    }),
    ("server.ec2DescribeInstancesRoleARN", |a, b| {
        a.ec2_describe_instances_role_arn != b.ec2_describe_instances_role_arn
    }),
    ("server.sourceARN", |a, b| a.source_arn != b.source_arn),
    ("server.readHeaderTimeout", |a, b| {
        a.limits.read_header_timeout != b.limits.read_header_timeout
    }),
    ("server.idleTimeout", |a, b| {
        a.limits.idle_timeout != b.limits.idle_timeout
    }),
    ("server.requestTimeout", |a, b| {
        a.limits.request_timeout != b.limits.request_timeout
    }),
    ("server.maxConnections", |a, b| {
        a.limits.max_connections != b.limits.max_connections
    }),
    ("server.maxConnectionsPerClient", |a, b| {
        a.limits.max_connections_per_client != b.limits.max_connections_per_client
    }),
    ("server.scrubbedAccounts", |a, b| {
        a.scrubbed_accounts != b.scrubbed_accounts
    }),
    ("server.denyWithForbidden", |a, b| {
        a.deny_with_forbidden != b.deny_with_forbidden
    }),
    ("server.reservedPrefixConfig", |a, b| {
        a.reserved_prefixes != b.reserved_prefixes
    }),
    ("server.dynamicfilepath", |a, b| {
        a.dynamic_file_path != b.dynamic_file_path
    }),
    ("server.dynamicfileUserIDStrict", |a, b| {
        a.dynamic_file_user_id_strict != b.dynamic_file_user_id_strict
    }),
    ("server.dynamicBackendModePath", |a, b| {
        a.dynamic_backend_mode_path != b.dynamic_backend_mode_path
    }),
    // Command line only: they cannot differ, but are compared all the same.
    ("feature-gates", |a, b| a.feature_gates != b.feature_gates),
    ("health-address", |a, b| {
        a.health_address != b.health_address
    }),
    ("sts-resolve, sts-ca-file", |a, b| a.sts != b.sts),
];

/// The config keys whose value in `new` differs from the running configuration and
/// that only a restart applies ([`STARTUP_SETTINGS`]).
pub fn restart_needed(running: &ServerConfig, new: &ServerConfig) -> Vec<&'static str> {
    // Every field is named, so a new setting must be sorted into "reloaded" or into
    // STARTUP_SETTINGS before this compiles.
    let ServerConfig {
        // Reloaded.
        role_mappings: _,
        user_mappings: _,
        account_mappings: _,
        // In STARTUP_SETTINGS.
        cluster_id: _,
        partition: _,
        hostname: _,
        address: _,
        port: _,
        state_dir: _,
        generate_kubeconfig: _,
        kubeconfig_pregenerated: _,
        kubeconfig: _,
        master: _,
        backend_modes: _,
        ec2_describe_instances_qps: _,
        ec2_describe_instances_burst: _,
        ec2_describe_instances_role_arn: _,
        source_arn: _,
        scrubbed_accounts: _,
        deny_with_forbidden: _,
        limits: _,
        reserved_prefixes: _,
        dynamic_file_path: _,
        dynamic_file_user_id_strict: _,
        dynamic_backend_mode_path: _,
        feature_gates: _,
        health_address: _,
        sts: _,
    } = new;
    STARTUP_SETTINGS
        .iter()
        .filter(|(_, changed)| changed(running, new))
        .map(|(key, _)| *key)
        .collect()
}
