//! `completion bash|zsh|fish|powershell`: a shell completion script on stdout.
//!
//! upstream: cobra adds this command; its scripts call back into the binary
//! (`__complete`) to complete. Ours are clap_complete's static scripts: they know every
//! subcommand and flag, and need no hidden subcommand.

use std::io::Write as _;

use clap::{Args, CommandFactory, Subcommand};
use clap_complete::Shell;

use super::Cli;

/// Flags of `completion`.
#[derive(Debug, Args)]
#[command(
    long_about = "Generate the autocompletion script for aws-iam-authenticator for the specified shell.\n\
See each sub-command's help for details on how to use the generated script."
)]
pub struct CompletionArgs {
    /// The shell; without it, this help.
    #[command(subcommand)]
    pub shell: Option<CompletionShell>,
}

/// The shells a script can be generated for.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum CompletionShell {
    /// Generate the autocompletion script for bash
    #[command(
        long_about = "Generate the autocompletion script for the bash shell.\n\n\
To load completions in your current shell session:\n\n\
\tsource <(aws-iam-authenticator completion bash)"
    )]
    Bash,
    /// Generate the autocompletion script for zsh
    #[command(
        long_about = "Generate the autocompletion script for the zsh shell.\n\n\
To load completions in your current shell session:\n\n\
\tsource <(aws-iam-authenticator completion zsh)"
    )]
    Zsh,
    /// Generate the autocompletion script for fish
    #[command(
        long_about = "Generate the autocompletion script for the fish shell.\n\n\
To load completions in your current shell session:\n\n\
\taws-iam-authenticator completion fish | source"
    )]
    Fish,
    /// Generate the autocompletion script for powershell
    #[command(long_about = "Generate the autocompletion script for powershell.\n\n\
To load completions in your current shell session:\n\n\
\taws-iam-authenticator completion powershell | Out-String | Invoke-Expression")]
    Powershell,
}

impl CompletionShell {
    fn shell(self) -> Shell {
        match self {
            Self::Bash => Shell::Bash,
            Self::Zsh => Shell::Zsh,
            Self::Fish => Shell::Fish,
            Self::Powershell => Shell::PowerShell,
        }
    }
}

/// The completion script of `shell`.
pub fn script(shell: CompletionShell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(shell.shell(), &mut cmd, name, &mut out);
    out
}

/// Prints the script, or with no shell this command's help on stdout (exit 0), as cobra
/// does for a command that only groups others.
pub fn run(args: CompletionArgs) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match args.shell {
        Some(shell) => stdout.write_all(&script(shell))?,
        None => {
            let mut cmd = Cli::command();
            cmd.build();
            let help = cmd
                .find_subcommand_mut("completion")
                .map(|c| c.render_long_help().to_string())
                .unwrap_or_default();
            stdout.write_all(help.as_bytes())?;
        }
    }
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_has_a_script_naming_the_subcommands() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
            CompletionShell::Powershell,
        ] {
            let s = String::from_utf8(script(shell)).unwrap();
            assert!(s.contains("aws-iam-authenticator"), "{shell:?}");
            for sub in ["token", "verify", "server", "init", "talos-init"] {
                assert!(s.contains(sub), "{shell:?} lacks {sub}");
            }
            assert!(s.contains("log-format"), "{shell:?}");
        }
    }
}
