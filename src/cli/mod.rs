//! The command line: one file per subcommand, each with its clap `Args` and a `run`.
//! [`entry`] is the process around them: parse errors, logging, runtime, exit status.
//!
//! Flag names, short forms, environment variables and messages are upstream's (cobra),
//! so kubeconfigs, DaemonSets and scripts written for the Go tool keep working.

pub mod add;
pub mod args;
pub mod completion;
pub mod entry;
pub mod explain;
pub mod init;
pub mod server;
pub mod talos_init;
#[cfg(feature = "client")]
pub mod token;
// Built in every build, so the default build's tests check it too.
pub mod token_absent;
pub mod validate;
pub mod verify;
pub mod version;

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::config::{ConfigFile, Layers};

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "aws-iam-authenticator",
    about = "A tool to authenticate to Kubernetes using AWS IAM credentials",
    disable_version_flag = true,
    arg_required_else_help = true,
    // pflag lets a flag be given again, the last value winning (scripts and manifest
    // overlays rely on it); clap would refuse the repetition.
    args_override_self = true
)]
pub struct Cli {
    /// Flags every subcommand accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Upstream's persistent (global) flags.
#[derive(Debug, Clone, Args, Default)]
pub struct GlobalArgs {
    /// Load configuration from filename
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Specify log format to use when logging to stderr [text or json]
    #[arg(
        short = 'l',
        long = "log-format",
        global = true,
        default_value = "text"
    )]
    pub log_format: String,
    /// Specify log verbosity [panic, fatal, error, warning, info, debug, trace]
    #[arg(
        short = 'v',
        long = "log-verbosity",
        global = true,
        env = "AWS_IAM_AUTHENTICATOR_LOG_VERBOSITY",
        default_value = "info"
    )]
    pub log_verbosity: String,
    /// Specify the cluster `CLUSTER_ID` for which to authenticate
    #[arg(
        short = 'i',
        long = "cluster-id",
        global = true,
        env = "KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID",
        value_name = "ID"
    )]
    pub cluster_id: Option<String>,
    /// A set of key=value pairs that describe feature gates for alpha/experimental features
    #[arg(long = "feature-gates", global = true, value_name = "GATES")]
    pub feature_gates: Option<String>,
}

impl GlobalArgs {
    /// Reads `--config`, if given. Upstream's message on failure:
    /// `Can't read configuration file "<f>": <err>`.
    pub fn config_file(&self) -> anyhow::Result<Option<ConfigFile>> {
        self.config
            .as_deref()
            .map(ConfigFile::load)
            .transpose()
            .map_err(anyhow::Error::from)
    }

    /// The cluster id: `-i` or `KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID`, else the
    /// config file's `clusterID`; `None` when empty everywhere.
    pub fn cluster_id(&self, file: Option<&ConfigFile>) -> anyhow::Result<Option<String>> {
        Ok(Layers::new(file).get(self.cluster_id.clone(), "clusterID")?)
    }
}

/// The subcommands.
// Parsed once at startup; `server`'s many flags make its variant the largest, which costs
// nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Authenticate using AWS IAM and get token for Kubernetes
    #[cfg(feature = "client")]
    Token(token::TokenArgs),
    /// Not in this build (the server-side build): says so and how to get it
    #[cfg(not(feature = "client"))]
    #[command(name = "token", disable_help_flag = true)]
    Token(token_absent::TokenArgs),
    /// Verify a token for debugging purpose
    Verify(verify::VerifyArgs),
    /// Run a webhook validation server suitable that validates tokens using AWS IAM
    Server(server::ServerArgs),
    /// Pre-generate certificate, private key, and kubeconfig files for the server.
    Init(init::InitArgs),
    /// Add IAM entities to an existing EKS cluster
    Add(add::AddArgs),
    /// Version will output the current build information
    Version(version::VersionArgs),
    /// Generate the autocompletion script for the specified shell
    Completion(completion::CompletionArgs),
    /// Explain how the server would map an ARN or a token's identity, and why
    Explain(explain::ExplainArgs),
    /// Check a config file, access-entries file or aws-auth ConfigMap for mistakes
    Validate(validate::ValidateArgs),
    /// Talos system extension entrypoint: read the environment, then run `init` once
    #[command(name = "talos-init")]
    TalosInit(talos_init::TalosInitArgs),
}

/// A usage error: printed as cobra does (`Error: <msg>` then the subcommand's usage) on
/// stderr, exit 1.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    /// The message after `Error: `.
    pub message: String,
    /// The subcommand path, e.g. `["token"]` or `["add", "user"]`.
    pub subcommand: Vec<&'static str>,
}

impl UsageError {
    /// A usage error of subcommand `subcommand`.
    pub fn new(subcommand: &[&'static str], message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            subcommand: subcommand.to_vec(),
        }
    }

    /// The subcommand's usage text (clap's rendering).
    pub fn usage(&self) -> String {
        let mut cmd = Cli::command();
        cmd.build();
        for name in &self.subcommand {
            match cmd.find_subcommand(name) {
                Some(c) => cmd = c.clone(),
                None => break,
            }
        }
        cmd.render_usage().to_string()
    }
}

/// The command has printed its answer and ends with this exit code (`explain`'s 1 for an
/// identity that does not map, `validate`'s for findings); nothing more is printed.
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct Exit(pub u8);

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { global, command } = cli;
    match command {
        #[cfg(feature = "client")]
        Command::Token(args) => token::run(args, &global).await,
        #[cfg(not(feature = "client"))]
        Command::Token(args) => token_absent::run(args),
        Command::Verify(args) => verify::run(args, &global).await,
        Command::Server(args) => server::run(args, &global).await,
        Command::Init(args) => init::run(args, &global).await,
        Command::Add(args) => add::run(args, &global).await,
        Command::Version(args) => version::run(args),
        Command::Completion(args) => completion::run(args),
        Command::Explain(args) => explain::run(args, &global).await,
        Command::Validate(args) => validate::run(args, &global).await,
        Command::TalosInit(args) => talos_init::run(args, &global),
    }
}
