//! Configuration: the upstream config file, merged with flags and environment into one
//! validated [`ServerConfig`].
//!
//! Precedence per key, as upstream's viper: flag > environment > config file > default.

pub mod file;
pub mod types;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::aws::Partition;
use crate::go::strconv::{quote, quote_slice};
pub use file::ConfigFile;
use types::{BackendMode, FeatureGates, MappingError, RoleMapping, UserMapping};

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

/// Every key upstream reads from the config file, lower-cased and dotted. The client
/// keys (`token`, `verify`) are here too: one file may serve client and server.
pub const KNOWN_KEYS: &[&str] = &[
    "clusterid",
    "log-verbosity",
    "feature-gates",
    // token
    "region",
    "role",
    "externalid",
    "sessionname",
    "tokenonly",
    "forwardsessionname",
    "cache",
    // verify
    "token",
    "output",
    "partition",
    // server and init
    "server.partition",
    "server.port",
    "server.address",
    "server.hostname",
    "server.statedir",
    "server.generatekubeconfig",
    "server.kubeconfigpregenerated",
    "server.kubeconfig",
    "server.master",
    "server.backendmode",
    "server.ec2describeinstancesqps",
    "server.ec2describeinstancesburst",
    "server.ec2describeinstancesrolearn",
    "server.sourcearn",
    "server.scrubbedaccounts",
    "server.maproles",
    "server.mapusers",
    "server.mapaccounts",
    "server.reservedprefixconfig",
    "server.dynamicfilepath",
    "server.dynamicfileuseridstrict",
    "server.dynamicbackendmodepath",
    // ours
    "server.denywithforbidden",
];

/// One `server.reservedPrefixConfig` entry (keys already lower-cased by [`ConfigFile`]).
#[derive(Debug, serde::Deserialize)]
struct ReservedPrefixEntry {
    #[serde(default)]
    backendmode: String,
    #[serde(default)]
    usernameprefixreservelist: Vec<String>,
}

/// Go's `utilerrors.NewAggregate(errs).Error()`: one message as it is, several
/// deduplicated, joined with `, ` and bracketed.
pub(crate) fn aggregate(messages: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for m in messages {
        if !seen.contains(&m.as_str()) {
            seen.push(m);
        }
    }
    if seen.len() == 1 {
        seen[0].to_owned()
    } else {
        format!("[{}]", seen.join(", "))
    }
}

/// Validates a backend-mode list as upstream's `ValidateBackendMode`: every name known
/// (deprecated `File`/`ConfigMap` accepted with a warning), no duplicates, at least one.
/// Returns the modes (new names, in order) and the deprecation warnings.
// upstream: pkg/mapper/mapper.go checks duplicates on the names as written, so
// `File,MountedFile` would build two file backends; we also reject duplicates after
// resolving the deprecated names.
pub fn validate_backend_modes(names: &[String]) -> Result<(Vec<BackendMode>, Vec<String>), Error> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut modes = Vec::new();
    for name in names {
        match BackendMode::parse(name) {
            Some((mode, deprecated)) => {
                if let Some(old) = deprecated {
                    warnings.push(format!(
                        "warning: backend-mode {} is deprecated, use {} instead",
                        quote(old),
                        quote(mode.name())
                    ));
                }
                modes.push(mode);
            }
            None => errors.push(format!("backend-mode {} is not a valid mode", quote(name))),
        }
    }
    let mut distinct = modes.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != modes.len() {
        errors.push(format!(
            "backend-mode {} has duplicates",
            quote_slice(names)
        ));
    }
    if names.is_empty() {
        errors.push("at least one backend-mode must be specified".to_owned());
    }
    if errors.is_empty() {
        Ok((modes, warnings))
    } else {
        Err(Error::BackendModes(aggregate(&errors)))
    }
}

/// Splits command-line backend modes the way pflag's string slice does (commas), and
/// drops empty items.
fn split_modes(items: &[String]) -> Vec<String> {
    items
        .iter()
        .flat_map(|i| i.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `s` has an ARN's shape: `arn:` and six `:`-separated sections.
fn looks_like_arn(s: &str) -> bool {
    crate::arn::parse(s).is_ok()
}

impl ServerConfig {
    /// Merges `flags` (which already include the environment variables clap binds) over
    /// the config `file` and the defaults, and validates the result in upstream's order.
    ///
    /// Returns the configuration and warnings for the caller to log: unknown config-file
    /// keys (naming the file and the key), deprecated backend-mode names, settings that
    /// are read from the command line only, and suspicious `mapAccounts` entries.
    pub fn resolve(
        flags: ServerFlags,
        file: Option<&ConfigFile>,
    ) -> Result<(ServerConfig, Vec<String>), Error> {
        let mut warnings = Vec::new();

        // Feature gates are parsed with the flags, before anything else.
        // upstream: cmd/aws-iam-authenticator/root.go binds `feature-gates` in viper but
        // reads only the flag; we keep that (the config-file value is ignored, with a
        // warning so the operator knows).
        let feature_gates = match flags.feature_gates.as_deref() {
            Some(v) => v
                .parse::<FeatureGates>()
                .map_err(|message| Error::FeatureGates {
                    value: v.to_owned(),
                    message,
                })?,
            None => FeatureGates::default(),
        };

        if let Some(f) = file {
            let path = f.path().display();
            for key in f.keys() {
                // A key may have been written as a nested mapping where a leaf is known
                // (`server.mapRoles: {…}`): its value error is reported when read.
                if f.get(&key).is_some()
                    && !KNOWN_KEYS.contains(&key.as_str())
                    && !KNOWN_KEYS.iter().any(|k| key.starts_with(&format!("{k}.")))
                {
                    warnings.push(format!(
                        "configuration file \"{path}\": unknown key {key:?} is ignored"
                    ));
                }
            }
            if f.get("feature-gates").is_some() {
                warnings.push(format!(
                    "configuration file \"{path}\": key \"feature-gates\" is read from the command line only; the file's value is ignored"
                ));
            }
        }

        // Scalars first, as upstream builds its Config struct from them.
        let get_string = |key: &str| -> Result<Option<String>, Error> {
            Ok(match file {
                Some(f) => f.get_string(key)?,
                None => None,
            })
        };
        let get_bool = |key: &str| -> Result<Option<bool>, Error> {
            Ok(match file {
                Some(f) => f.get_bool(key)?,
                None => None,
            })
        };
        let get_int = |key: &str, min: i64, max: i64| -> Result<Option<i64>, Error> {
            let Some(f) = file else { return Ok(None) };
            match f.get_i64(key)? {
                Some(v) if !(min..=max).contains(&v) => Err(f
                    .bad_value(key, format!("{v} is out of range {min}..={max}"))
                    .into()),
                v => Ok(v),
            }
        };
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());

        let cluster_id = non_empty(flags.cluster_id.clone())
            .or(non_empty(get_string("clusterID")?))
            .unwrap_or_default();
        let partition_name = non_empty(flags.partition.clone())
            .or(non_empty(get_string("server.partition")?))
            .unwrap_or_else(|| "aws".to_owned());
        let hostname = non_empty(flags.hostname.clone())
            .or(non_empty(get_string("server.hostname")?))
            .unwrap_or_else(|| DEFAULT_HOSTNAME.to_owned());
        let address = non_empty(flags.address.clone())
            .or(non_empty(get_string("server.address")?))
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
        let port = match flags.port {
            Some(p) => p,
            None => {
                get_int("server.port", 0, i64::from(u16::MAX))?.map_or(DEFAULT_PORT, |p| p as u16)
            }
        };
        let state_dir = match flags.state_dir.clone() {
            Some(p) => p,
            None => non_empty(get_string("server.stateDir")?)
                .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from),
        };
        let generate_kubeconfig = match flags.generate_kubeconfig.clone() {
            Some(p) => p,
            None => non_empty(get_string("server.generateKubeconfig")?)
                .map_or_else(|| PathBuf::from(DEFAULT_GENERATE_KUBECONFIG), PathBuf::from),
        };
        let kubeconfig_pregenerated = match flags.kubeconfig_pregenerated {
            Some(b) => b,
            None => get_bool("server.kubeconfigPregenerated")?.unwrap_or(false),
        };
        let deny_with_forbidden = match flags.deny_with_forbidden {
            Some(b) => b,
            None => get_bool("server.denyWithForbidden")?.unwrap_or(false),
        };
        let kubeconfig = flags
            .kubeconfig
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .or(non_empty(get_string("server.kubeconfig")?).map(PathBuf::from));
        let master = non_empty(flags.master.clone()).or(non_empty(get_string("server.master")?));
        let mode_names = match &flags.backend_mode {
            Some(modes) => split_modes(modes),
            None => match file {
                Some(f) => f.get_string_list("server.backendMode")?,
                None => None,
            }
            .unwrap_or_else(|| vec![BackendMode::MountedFile.name().to_owned()]),
        };
        let ec2_describe_instances_qps = match flags.ec2_describe_instances_qps {
            Some(v) => v,
            None => get_int("server.ec2DescribeInstancesQps", 0, i64::from(u32::MAX))?
                .map_or(15, |v| v as u32),
        };
        let ec2_describe_instances_burst = match flags.ec2_describe_instances_burst {
            Some(v) => v,
            None => get_int("server.ec2DescribeInstancesBurst", 0, i64::from(u32::MAX))?
                .map_or(5, |v| v as u32),
        };
        let ec2_describe_instances_role_arn =
            non_empty(get_string("server.ec2DescribeInstancesRoleARN")?);
        let source_arn = non_empty(get_string("server.sourceARN")?);
        let scrubbed_accounts = match file {
            Some(f) => f.get_string_list("server.scrubbedAccounts")?,
            None => None,
        }
        .unwrap_or_default();
        let dynamic_file_path = match flags.dynamic_file_path.clone() {
            Some(p) => Some(p),
            None => non_empty(get_string("server.dynamicfilepath")?).map(PathBuf::from),
        };
        let dynamic_file_user_id_strict =
            get_bool("server.dynamicfileUserIDStrict")?.unwrap_or(false);
        let dynamic_backend_mode_path =
            non_empty(get_string("server.dynamicBackendModePath")?).map(PathBuf::from);

        // Then upstream's getConfig() order.
        let (role_mappings, user_mappings, account_mappings, reserved) = match file {
            Some(f) => (
                f.get_as::<Vec<RoleMapping>>("server.mapRoles")
                    .map_err(|e| Error::RoleMappings(e.to_string()))?
                    .unwrap_or_default(),
                f.get_as::<Vec<UserMapping>>("server.mapUsers")
                    .map_err(|e| Error::UserMappings(e.to_string()))?
                    .unwrap_or_default(),
                f.get_string_list("server.mapAccounts")
                    .map_err(|e| Error::AccountMappings(e.to_string()))?
                    .unwrap_or_default(),
                f.get_as::<Vec<ReservedPrefixEntry>>("server.reservedPrefixConfig")
                    .map_err(|e| Error::ReservedPrefixConfig(e.to_string()))?
                    .unwrap_or_default(),
            ),
            None => Default::default(),
        };
        let mut reserved_prefixes = BTreeMap::new();
        for entry in reserved {
            match BackendMode::parse(&entry.backendmode) {
                Some((mode, _)) => {
                    // Later entries for the same mode win, as upstream's map assignment.
                    reserved_prefixes.insert(mode, entry.usernameprefixreservelist);
                }
                None => warnings.push(format!(
                    "server.reservedPrefixConfig: backend-mode {:?} is not a valid mode; entry ignored",
                    entry.backendmode
                )),
            }
        }
        if feature_gates.sso_role_match {
            tracing::info!("SSORoleMatch feature enabled");
        }
        if feature_gates.configured_init_directories {
            tracing::info!("ConfiguredInitDirectories feature enabled");
        }
        if cluster_id.is_empty() {
            return Err(Error::EmptyClusterId);
        }
        let partition: Partition = partition_name
            .parse()
            .map_err(|_| Error::InvalidPartition(partition_name.clone()))?;
        let dynamic_in_modes = mode_names.iter().any(|m| m == "DynamicFile");
        if dynamic_in_modes && dynamic_file_path.is_none() {
            return Err(Error::DynamicFileWithoutPath);
        }
        if !dynamic_in_modes && dynamic_file_path.is_some() {
            return Err(Error::DynamicFilePathWithoutMode);
        }
        let (backend_modes, mode_warnings) = validate_backend_modes(&mode_names)?;
        warnings.extend(mode_warnings);

        // Every mapping is validated now, whichever backends are configured, so a typo
        // fails at startup (and in `init`) rather than when a backend is switched on.
        // upstream: pkg/mapper/file/mapper.go validates only when MountedFile is built.
        for (i, m) in role_mappings.iter().enumerate() {
            let named = |e: MappingError| Error::RoleMappings(format!("server.mapRoles[{i}]: {e}"));
            m.validate().map_err(named)?;
            if !m.rolearn.is_empty() {
                types::role_arn_key(&m.rolearn).map_err(named)?;
            }
        }
        for (i, m) in user_mappings.iter().enumerate() {
            let named = |e: MappingError| Error::UserMappings(format!("server.mapUsers[{i}]: {e}"));
            m.validate().map_err(named)?;
            types::user_arn_key(&m.userarn).map_err(named)?;
        }
        for account in &account_mappings {
            if !types::is_account_id(account) {
                warnings.push(format!(
                    "server.mapAccounts: {account:?} is not a 12-digit account ID and will never match"
                ));
            }
        }
        if let Some(arn) = &ec2_describe_instances_role_arn
            && !looks_like_arn(arn)
        {
            return Err(Error::Ec2RoleArn(arn.clone()));
        }
        if let Some(arn) = &source_arn
            && !looks_like_arn(arn)
        {
            return Err(Error::SourceArn(arn.clone()));
        }

        let config = ServerConfig {
            cluster_id,
            partition,
            hostname,
            address,
            port,
            state_dir,
            generate_kubeconfig,
            kubeconfig_pregenerated,
            kubeconfig,
            master,
            backend_modes,
            ec2_describe_instances_qps,
            ec2_describe_instances_burst,
            ec2_describe_instances_role_arn,
            source_arn,
            scrubbed_accounts,
            role_mappings,
            user_mappings,
            account_mappings,
            reserved_prefixes,
            dynamic_file_path,
            dynamic_file_user_id_strict,
            dynamic_backend_mode_path,
            feature_gates,
            health_address: flags
                .health_address
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_HEALTH_PORT))),
            sts: StsOptions {
                resolve: flags.sts_resolve,
                ca_file: flags.sts_ca_file,
                proxy: crate::https::proxy::ProxyEnv::none(),
            },
            deny_with_forbidden,
        };
        Ok((config, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Names are quoted as Go's `%q` quotes them (`\x1b`, not Rust's `\u{1b}`).
    #[test]
    fn backend_mode_errors_quote_as_go_does() {
        let e = validate_backend_modes(&["Bad\u{1b}".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(r#"backend-mode "Bad\x1b" is not a valid mode"#),
            "{e}"
        );
        let e = validate_backend_modes(&["MountedFile".to_owned(), "File".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(r#"backend-mode ["MountedFile" "File"] has duplicates"#),
            "{e}"
        );
    }

    fn resolve(flag: Option<bool>, yaml: &str) -> ServerConfig {
        let file = ConfigFile::parse(Path::new("c.yaml"), yaml).unwrap();
        let flags = ServerFlags {
            deny_with_forbidden: flag,
            ..ServerFlags::default()
        };
        ServerConfig::resolve(flags, Some(&file)).unwrap().0
    }

    #[test]
    fn deny_with_forbidden_flag_over_file_over_default() {
        let cases = [
            (None, "clusterID: c\n", false),
            (
                None,
                "clusterID: c\nserver:\n  denyWithForbidden: true\n",
                true,
            ),
            (
                Some(false),
                "clusterID: c\nserver:\n  denyWithForbidden: true\n",
                false,
            ),
            (Some(true), "clusterID: c\n", true),
        ];
        for (flag, yaml, want) in cases {
            assert_eq!(
                resolve(flag, yaml).deny_with_forbidden,
                want,
                "{flag:?} {yaml}"
            );
        }
        let file = ConfigFile::parse(
            Path::new("c.yaml"),
            "clusterID: c\nserver:\n  denyWithForbidden: maybe\n",
        )
        .unwrap();
        let e = ServerConfig::resolve(ServerFlags::default(), Some(&file)).unwrap_err();
        assert!(e.to_string().contains("c.yaml"), "{e}");
    }
}
