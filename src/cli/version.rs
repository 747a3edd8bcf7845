//! `version`: build information as JSON (default), YAML or the bare version.

use clap::Args;
use serde::Serialize;

/// Flags of `version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print only the version
    #[arg(short = 's', long = "short")]
    pub short: bool,
    /// Output format [json, yaml]
    #[arg(short = 'o', long = "output", default_value = "json")]
    pub output: String,
}

/// upstream: cmd/aws-iam-authenticator/version.go encodes its fields with `omitempty`,
/// so an unknown (empty) commit is left out of the JSON; we do the same.
#[derive(Serialize)]
struct Info<'a> {
    #[serde(rename = "Version")]
    version: &'a str,
    #[serde(rename = "Commit", skip_serializing_if = "str::is_empty")]
    commit: &'a str,
}

/// The JSON line of `version`.
fn json(version: &str, commit: &str) -> serde_json::Result<String> {
    serde_json::to_string(&Info { version, commit })
}

/// upstream: yaml.v2 ignores the json tags and prints lower-case keys, every one of them
/// (an unknown commit as `""`), plus an empty `date`; we print the same so scripts parsing
/// either keep working.
fn yaml(version: &str, commit: &str) -> String {
    let commit = if commit.is_empty() { "\"\"" } else { commit };
    format!("version: {version}\ncommit: {commit}\ndate: \"\"\n")
}

/// Prints the version.
pub fn run(args: VersionArgs) -> anyhow::Result<()> {
    let VersionArgs { short, output } = args;
    if short {
        println!("{}", crate::VERSION);
        return Ok(());
    }
    match output.as_str() {
        "json" => {
            println!("{}", json(crate::VERSION, crate::COMMIT)?);
        }
        "yaml" => print!("{}", yaml(crate::VERSION, crate::COMMIT)),
        // upstream: prints to stderr and exits 0; we exit 1 because the output asked
        // for was not produced.
        other => anyhow::bail!("unknown version option {other:?}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_commit_is_omitted_from_json_and_empty_in_yaml() {
        let table = [
            (
                "abc123",
                r#"{"Version":"0.7.18","Commit":"abc123"}"#,
                "version: 0.7.18\ncommit: abc123\ndate: \"\"\n",
            ),
            (
                "",
                r#"{"Version":"0.7.18"}"#,
                "version: 0.7.18\ncommit: \"\"\ndate: \"\"\n",
            ),
        ];
        for (commit, want_json, want_yaml) in table {
            assert_eq!(json("0.7.18", commit).unwrap(), want_json);
            assert_eq!(yaml("0.7.18", commit), want_yaml);
        }
    }
}
