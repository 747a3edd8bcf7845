//! Argument groups more than one subcommand takes, flattened into each (`#[command(flatten)]`)
//! so a flag is declared, and documented, once.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::config::StsOptions;
use crate::https::proxy::ProxyEnv;

/// Where the mappings come from besides the config file (`explain`, `validate`).
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// A DynamicFile (access entries JSON) to read; for explain, instead of server.dynamicfilepath
    #[arg(long = "dynamic-file", value_name = "FILE")]
    pub dynamic_file: Option<PathBuf>,
    /// kubeconfig file for reading aws-auth and IAMIdentityMappings from the cluster
    #[arg(long = "kubeconfig", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// master is the URL to the api server
    #[arg(long = "master", value_name = "URL")]
    pub master: Option<String>,
}

/// How a report is printed (`explain`, `validate`).
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output format: text or json
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

impl OutputArgs {
    /// Whether `-o json` was asked for.
    pub fn is_json(&self) -> bool {
        self.output == "json"
    }
}

/// How STS is reached (`server`, `verify`, `explain`).
#[derive(Debug, Clone, Default, Args)]
pub struct StsArgs {
    /// Connect to IP:PORT whenever STS host HOST is called (name kept for TLS and Host); repeatable. For private endpoints and tests.
    #[arg(long = "sts-resolve", value_name = "HOST=IP:PORT", value_parser = crate::sts::parse_resolve)]
    pub sts_resolve: Vec<(String, SocketAddr)>,
    /// Extra PEM certificates trusted for STS, besides the system's
    #[arg(long = "sts-ca-file", value_name = "FILE")]
    pub sts_ca_file: Option<PathBuf>,
}

impl StsArgs {
    /// The STS client's options, with the proxy variables of this process's environment
    /// (a command-line client follows them, as the server does).
    pub fn options(&self) -> StsOptions {
        StsOptions {
            resolve: self.sts_resolve.clone(),
            ca_file: self.sts_ca_file.clone(),
            proxy: ProxyEnv::from_env(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use crate::cli::Cli;

    /// Each shared flag reads the same in every subcommand that takes it: declared once.
    #[test]
    fn shared_flags_have_one_help_text() {
        let cli = Cli::command();
        for (flag, commands) in [
            ("dynamic-file", &["explain", "validate"][..]),
            ("kubeconfig", &["explain", "validate"]),
            ("master", &["explain", "validate"]),
            ("output", &["explain", "validate"]),
            ("sts-resolve", &["server", "verify", "explain"]),
            ("sts-ca-file", &["server", "verify", "explain"]),
        ] {
            let helps: Vec<String> = commands
                .iter()
                .map(|name| {
                    let sub = cli.find_subcommand(name).unwrap();
                    let arg = sub
                        .get_arguments()
                        .find(|a| a.get_long() == Some(flag))
                        .unwrap_or_else(|| panic!("{name} has no --{flag}"));
                    arg.get_help().map(ToString::to_string).unwrap_or_default()
                })
                .collect();
            assert!(
                helps.windows(2).all(|w| w[0] == w[1]),
                "--{flag}: {helps:?}"
            );
        }
    }
}
