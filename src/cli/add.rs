//! `add user|role`: add a mapping to the `kube-system/aws-auth` ConfigMap.
//!
//! [`configmap::add_to_cluster`]: get → [`configmap::add`] (parse, duplicate check, rewrite
//! the one section that changes) → update with the object's `resourceVersion`, retried
//! from the get when another writer got there first (409). The ConfigMap's metadata is
//! kept.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::bail;
use clap::{ArgAction, Args, Subcommand};

use super::GlobalArgs;
use crate::config::types::{RoleMapping, SsoArnMatcher, UserMapping};
use crate::go::strconv::{quote, quote_slice};
use crate::k8s::ClientOptions;
use crate::mapper::configmap;
pub use crate::mapper::configmap::NewMapping;

/// Flags of `add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// 'false' to disable prompt'
    #[arg(
        long = "prompt",
        global = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub prompt: bool,
    /// kube-apiserver URL for creating Kubernetes client
    #[arg(long = "master-url", global = true, value_name = "URL")]
    pub master_url: Option<String>,
    /// kubeconfig file path, if empty, it loads the default config
    #[arg(long = "kubeconfig", global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context, if empty, it uses the default context
    #[arg(long = "kubeconfig-context", global = true, value_name = "CONTEXT")]
    pub kubeconfig_context: Option<String>,
    /// What to add.
    #[command(subcommand)]
    pub what: AddCommand,
}

/// `add user` or `add role`.
#[derive(Debug, Subcommand)]
pub enum AddCommand {
    /// add a user entity to an existing aws-auth configmap, not for CRD/file backends
    User(AddUserArgs),
    /// add a role entity to an existing aws-auth configmap, not for CRD/file backends
    Role(AddRoleArgs),
}

/// Flags of `add user`.
#[derive(Debug, Args)]
pub struct AddUserArgs {
    /// A new user ARN
    #[arg(long = "userarn", default_value = "")]
    pub userarn: String,
    /// A new user name
    #[arg(long = "username", default_value = "")]
    pub username: String,
    /// A new user groups
    #[arg(long = "groups", value_delimiter = ',')]
    pub groups: Vec<String>,
}

/// Flags of `add role`.
#[derive(Debug, Args)]
pub struct AddRoleArgs {
    /// A new role ARN
    #[arg(long = "rolearn", default_value = "")]
    pub rolearn: String,
    /// Settings for a new SSO role. Expects "permissionSetName", "accountID", and "partition" (optional)
    #[arg(long = "sso", value_delimiter = ',', value_name = "KEY=VALUE")]
    pub sso: Vec<String>,
    /// A new user name
    #[arg(long = "username", default_value = "")]
    pub username: String,
    /// A new role groups
    #[arg(long = "groups", value_delimiter = ',')]
    pub groups: Vec<String>,
}

/// Go's `%s` of a string slice: `[a b]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Parses `--sso` (`k=v` pairs, as pflag's `StringToString`).
fn parse_sso(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => bail!(
                "invalid argument {:?} for \"--sso\" flag: {kv} must be formatted as key=value",
                pairs.join(",")
            ),
        })
        .collect()
}

/// The mapping `add user` describes, checked with upstream's messages.
pub fn user_mapping(args: &AddUserArgs) -> anyhow::Result<NewMapping> {
    if args.userarn.is_empty() || args.username.is_empty() || args.groups.is_empty() {
        bail!(
            "invalid empty value in userARN {}, username {}, groups {}",
            quote(&args.userarn),
            quote(&args.username),
            quote_slice(&args.groups)
        );
    }
    Ok(NewMapping::User(UserMapping {
        userarn: args.userarn.clone(),
        username: args.username.clone(),
        groups: args.groups.clone(),
        ..Default::default()
    }))
}

/// The mapping `add role` describes, checked with upstream's messages.
///
/// upstream: `add role --sso` dereferences a nil pointer and panics; here it adds the
/// `sso:` entry. The partition is written only when given (an absent one means `aws`).
pub fn role_mapping(args: &AddRoleArgs) -> anyhow::Result<NewMapping> {
    let sso = (!args.sso.is_empty())
        .then(|| parse_sso(&args.sso))
        .transpose()?;
    if (args.rolearn.is_empty() && sso.is_none())
        || args.username.is_empty()
        || args.groups.is_empty()
    {
        bail!(
            "invalid empty value in rolearn {}, username {}, groups {}",
            quote(&args.rolearn),
            quote(&args.username),
            quote_slice(&args.groups)
        );
    }
    let sso = match sso {
        Some(_) if !args.rolearn.is_empty() => {
            bail!("only one of --rolearn or --sso can be supplied")
        }
        Some(map) => {
            for key in ["permissionSetName", "accountID"] {
                if !map.contains_key(key) {
                    bail!("required key '{key}' missing from --sso flag");
                }
            }
            let get = |k: &str| map.get(k).cloned().unwrap_or_default();
            Some(SsoArnMatcher {
                permission_set_name: get("permissionSetName"),
                account_id: get("accountID"),
                partition: get("partition"),
            })
        }
        None => None,
    };
    let mapping = RoleMapping {
        rolearn: args.rolearn.clone(),
        sso,
        username: args.username.clone(),
        groups: args.groups.clone(),
        ..Default::default()
    };
    if mapping.sso.is_some() {
        configmap::validate_role(&mapping)
            .map_err(|e| anyhow::anyhow!("error validating --sso: {e}"))?;
    }
    Ok(NewMapping::Role(mapping))
}

/// The action named in the prompt, e.g. `add userarn <arn>, username <u>, groups [<g…>]`.
pub fn action(mapping: &NewMapping) -> String {
    match mapping {
        NewMapping::User(u) => format!(
            "add userarn {}, username {}, groups {}",
            u.userarn,
            u.username,
            go_list(&u.groups)
        ),
        NewMapping::Role(r) => {
            let what = match &r.sso {
                Some(sso) => format!("sso {}", sso.pattern()),
                None => format!("rolearn {}", r.rolearn),
            };
            format!(
                "add {what}, username {}, groups {}",
                r.username,
                go_list(&r.groups)
            )
        }
    }
}

/// Asks on stdout, reads the answer from `input`; `y`/`yes` (any case) continues.
pub fn confirm(action: &str, input: &mut impl BufRead, out: &mut impl Write) -> bool {
    let _ = write!(out, "Ready to add {action:?}, should we continue? [y/N]: ");
    let _ = out.flush();
    let mut answer = String::new();
    if input.read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Runs `add`.
pub async fn run(args: AddArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    let mapping = match &args.what {
        AddCommand::User(u) => user_mapping(u)?,
        AddCommand::Role(r) => role_mapping(r)?,
    };
    let action = action(&mapping);
    if args.prompt {
        let stdin = std::io::stdin();
        let proceed = confirm(&action, &mut stdin.lock(), &mut std::io::stdout());
        if !proceed {
            println!("cancelled {action:?}");
            return Ok(());
        }
    }
    // upstream: an empty --kubeconfig is an error (`empty kubeconfig`) although the help
    // says the default config is used; we do what the help says: the default kubeconfig
    // ($KUBECONFIG, ~/.kube/config), then the in-cluster configuration.
    let options = ClientOptions {
        kubeconfig: args
            .kubeconfig
            .clone()
            .filter(|p| !p.as_os_str().is_empty()),
        master: args.master_url.clone().filter(|m| !m.is_empty()),
        context: args.kubeconfig_context.clone().filter(|c| !c.is_empty()),
        prefer_default_kubeconfig: true,
    };
    let client = crate::k8s::client(&options).await?;
    let updated = configmap::add_to_cluster(client, &mapping).await?;
    let yaml = serde_saphyr::to_string(&updated)?;
    println!("updated configmap:\n\n{yaml}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(arn: &str, name: &str, groups: &[&str]) -> AddUserArgs {
        AddUserArgs {
            userarn: arn.into(),
            username: name.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    fn role(arn: &str, sso: &[&str], name: &str, groups: &[&str]) -> AddRoleArgs {
        AddRoleArgs {
            rolearn: arn.into(),
            sso: sso.iter().map(|s| (*s).to_owned()).collect(),
            username: name.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    #[test]
    fn upstream_messages() {
        let e = user_mapping(&user("", "u", &[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid empty value in userARN \"\", username \"u\", groups []"
        );
        let e = role_mapping(&role("", &[], "u", &["a", "b"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid empty value in rolearn \"\", username \"u\", groups [\"a\" \"b\"]"
        );
        let e = role_mapping(&role("arn:x", &["accountID=1"], "u", &["g"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "only one of --rolearn or --sso can be supplied"
        );
        let e = role_mapping(&role("", &["accountID=012345678912"], "u", &["g"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "required key 'permissionSetName' missing from --sso flag"
        );
        let e = role_mapping(&role(
            "",
            &["accountID=0123", "permissionSetName=X"],
            "u",
            &["g"],
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "error validating --sso: AccountID '0123' is not a valid AWS Account ID"
        );
    }

    #[test]
    fn actions() {
        let m = user_mapping(&user("arn:aws:iam::1:user/a", "a", &["x", "y"])).unwrap();
        assert_eq!(
            action(&m),
            "add userarn arn:aws:iam::1:user/a, username a, groups [x y]"
        );
        let m = role_mapping(&role("arn:aws:iam::1:role/R", &[], "r", &["x"])).unwrap();
        assert_eq!(
            action(&m),
            "add rolearn arn:aws:iam::1:role/R, username r, groups [x]"
        );
        let m = role_mapping(&role(
            "",
            &["permissionSetName=Admin", "accountID=012345678912"],
            "r",
            &["x"],
        ))
        .unwrap();
        assert_eq!(
            action(&m),
            "add sso arn:aws:iam::012345678912:role/awsreservedsso_admin_*, username r, groups [x]"
        );
    }

    #[test]
    fn prompt_answers() {
        for (answer, expected) in [
            ("y\n", true),
            (" YES \n", true),
            ("n\n", false),
            ("\n", false),
            ("", false),
        ] {
            let mut out = Vec::new();
            let got = confirm("add x", &mut answer.as_bytes(), &mut out);
            assert_eq!(got, expected, "{answer:?}");
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "Ready to add \"add x\", should we continue? [y/N]: "
            );
        }
    }
}
