//! `token` in the server-side build (without the `client` feature): the subcommand is
//! still known, so a caller gets a clear error and the way to the full build instead of
//! clap's "unrecognized subcommand".

use clap::Args;

/// Whatever was given after `token`: none of it is read.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Ignored: `token` is not built in.
    #[arg(
        num_args = 0..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        hide = true
    )]
    pub ignored: Vec<String>,
}

/// Why `token` cannot run here.
#[derive(Debug, thiserror::Error)]
#[error(
    "the token subcommand is not built into this binary: it is the server-side build \
     (cargo feature \"client\" left out, as in the Talos extension and the server image); \
     use the full build for tokens (cargo build --release, the default features)"
)]
pub struct NotBuilt;

/// Fails with [`NotBuilt`].
pub fn run(_args: TokenArgs) -> anyhow::Result<()> {
    Err(NotBuilt.into())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: TokenArgs,
    }

    #[test]
    fn any_token_flags_parse_and_the_error_names_the_full_build() {
        let args = Wrapper::try_parse_from(["token", "-i", "c", "--token-only", "-r", "arn"])
            .map(|w| w.args);
        let e = run(args.unwrap()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("not built into this binary"), "{text}");
        assert!(text.contains("cargo build --release"), "{text}");
    }
}
