//! `token`: mint a `k8s-aws-v1.` token and print it as an ExecCredential.
//!
//! stdout carries only the credential (kubectl parses it); every log, warning and prompt
//! goes to stderr.

use std::io::Write;
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;

use super::{GlobalArgs, UsageError};
use crate::config::{ConfigFile, Layers};
use crate::credentials::assume_role::SessionName;
use crate::credentials::{self, RoleOptions};
use crate::token::exec_credential::{self, ExecCredential};
use crate::token::generate;

/// Flags of `token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// AWS region to use for assume role calls and the STS endpoint in the token
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Assume an IAM Role ARN before signing this token
    #[arg(short = 'r', long, env = "DEFAULT_ROLE", value_name = "ARN")]
    pub role: Option<String>,
    /// External ID to pass when assuming the IAM Role
    #[arg(short = 'e', long = "external-id", value_name = "ID")]
    pub external_id: Option<String>,
    /// Session name to pass when assuming the IAM Role
    #[arg(short = 's', long = "session-name", value_name = "NAME")]
    pub session_name: Option<String>,
    /// Return only the token for use with Bearer token based tools
    #[arg(
        long = "token-only",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub token_only: Option<bool>,
    /// Enable mapping a federated sessions caller-specified-role-name attribute onto newly
    /// assumed sessions. NOTE: Only applicable when a new role is requested via --role
    #[arg(
        long = "forward-session-name",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub forward_session_name: Option<bool>,
    /// Cache the credential on disk until it expires. Uses the aws profile specified by
    /// AWS_PROFILE or the default profile.
    #[arg(
        long = "cache",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub cache: Option<bool>,
}

/// `token`'s settings after merging flags, environment and config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Settings {
    region: Option<String>,
    role: Option<String>,
    external_id: Option<String>,
    session_name: Option<String>,
    token_only: bool,
    forward_session_name: bool,
    cache: bool,
}

impl Settings {
    /// Flag (or its environment variable) > config file > default, per key, through
    /// [`Layers`] as every command reads its settings.
    fn resolve(args: TokenArgs, file: Option<&ConfigFile>) -> anyhow::Result<Self> {
        let TokenArgs {
            region,
            role,
            external_id,
            session_name,
            token_only,
            forward_session_name,
            cache,
        } = args;
        let layers = Layers::new(file);
        Ok(Self {
            region: layers.get(region, "region")?,
            role: layers.get(role, "role")?,
            external_id: layers.get(external_id, "externalID")?,
            session_name: layers.get(session_name, "sessionName")?,
            token_only: layers.get_or(token_only, "tokenOnly", false)?,
            forward_session_name: layers.get_or(
                forward_session_name,
                "forwardSessionName",
                false,
            )?,
            cache: layers.get_or(cache, "cache", false)?,
        })
    }

    /// What the credentials library is asked for. `--session-name` and
    /// `--forward-session-name` only matter with a role, as upstream.
    fn credential_options(&self, cluster_id: &str) -> credentials::Options {
        let session_name = match (&self.session_name, self.forward_session_name) {
            (_, true) => SessionName::Forwarded,
            (Some(name), false) => SessionName::Given(name.clone()),
            (None, false) => SessionName::Default,
        };
        credentials::Options {
            region: self.region.clone(),
            role: self.role.as_ref().map(|role_arn| RoleOptions {
                role_arn: role_arn.clone(),
                external_id: self.external_id.clone(),
                session_name,
            }),
            cache_for_cluster: self.cache.then(|| cluster_id.to_owned()),
        }
    }
}

/// Runs `token`.
pub async fn run(args: TokenArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let file = global.config_file()?;
    let Some(cluster_id) = global.cluster_id(file.as_ref())? else {
        return Err(UsageError::new(&["token"], "cluster ID not specified").into());
    };
    let settings = Settings::resolve(args, file.as_ref())?;
    if settings.forward_session_name && settings.session_name.is_some() {
        return Err(UsageError::new(
            &["token"],
            "cannot specify both --forward-session-name and --session-name parameter",
        )
        .into());
    }

    let (token, expiration) = get_token(&cluster_id, settings.credential_options(&cluster_id))
        .await
        .context("could not get token")?;

    let line = if settings.token_only {
        token.expose().to_owned()
    } else {
        let exec_info = std::env::var(exec_credential::EXEC_INFO_ENV).ok();
        let version = exec_credential::api_version(exec_info.as_deref());
        ExecCredential::new(version, &token, expiration).to_json()
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .context("could not write the token to stdout")
}

/// Credentials, then the presigned token and the time kubectl should drop it.
async fn get_token(
    cluster_id: &str,
    options: credentials::Options,
) -> anyhow::Result<(crate::token::Token, SystemTime)> {
    let resolved = credentials::resolve(&options).await?;
    let now = SystemTime::now();
    let generated = generate::generate(
        &resolved.credentials,
        resolved.region.as_ref(),
        &resolved.sts_host,
        cluster_id,
        now,
    )?;
    let expiration = exec_credential::expiration(now, resolved.credentials.expiry());
    Ok((generated.token, expiration))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn args() -> TokenArgs {
        TokenArgs {
            region: None,
            role: None,
            external_id: None,
            session_name: None,
            token_only: None,
            forward_session_name: None,
            cache: None,
        }
    }

    #[test]
    fn config_file_fills_what_flags_leave_open() {
        let file = ConfigFile::parse(
            Path::new("c.yaml"),
            "clusterID: c\nregion: eu-west-1\nrole: arn:aws:iam::1:role/file\nexternalID: ext\nsessionName: sess\ntokenOnly: true\nforwardSessionName: false\ncache: true\n",
        )
        .unwrap();
        let s = Settings::resolve(args(), Some(&file)).unwrap();
        assert_eq!(
            s,
            Settings {
                region: Some("eu-west-1".into()),
                role: Some("arn:aws:iam::1:role/file".into()),
                external_id: Some("ext".into()),
                session_name: Some("sess".into()),
                token_only: true,
                forward_session_name: false,
                cache: true,
            }
        );
        let mut a = args();
        a.region = Some("us-west-2".into());
        a.token_only = Some(false);
        a.role = Some("arn:aws:iam::1:role/flag".into());
        let s = Settings::resolve(a, Some(&file)).unwrap();
        assert_eq!(s.region.as_deref(), Some("us-west-2"));
        assert_eq!(s.role.as_deref(), Some("arn:aws:iam::1:role/flag"));
        assert!(!s.token_only);
        assert!(s.cache);
    }

    #[test]
    fn layered_as_every_command() {
        let file =
            ConfigFile::parse(Path::new("c.yaml"), "region: eu-west-1\ncache: notabool\n").unwrap();
        // An empty flag leaves the file's value in force, as for `server` and `init`.
        let mut a = args();
        a.region = Some(String::new());
        a.cache = Some(true);
        let err = Settings::resolve(a, Some(&file)).unwrap_err();
        // A value of the wrong shape is a bad file even when a flag overrides it.
        assert!(err.to_string().contains("cache"), "{err:#}");
        let file = ConfigFile::parse(Path::new("c.yaml"), "region: eu-west-1\n").unwrap();
        let mut a = args();
        a.region = Some(String::new());
        let s = Settings::resolve(a, Some(&file)).unwrap();
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn defaults_without_file() {
        assert_eq!(
            Settings::resolve(args(), None).unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn credential_options_from_settings() {
        let role = |session_name| {
            Some(RoleOptions {
                role_arn: "arn:aws:iam::1:role/r".into(),
                external_id: Some("ext".into()),
                session_name,
            })
        };
        let base = Settings {
            region: Some("eu-west-1".into()),
            role: Some("arn:aws:iam::1:role/r".into()),
            external_id: Some("ext".into()),
            ..Settings::default()
        };
        let table = [
            (base.clone(), role(SessionName::Default), None),
            (
                Settings {
                    session_name: Some("me".into()),
                    cache: true,
                    ..base.clone()
                },
                role(SessionName::Given("me".into())),
                Some("c".to_owned()),
            ),
            (
                Settings {
                    forward_session_name: true,
                    ..base.clone()
                },
                role(SessionName::Forwarded),
                None,
            ),
            (
                Settings {
                    role: None,
                    session_name: Some("ignored".into()),
                    ..base
                },
                None,
                None,
            ),
        ];
        for (settings, want_role, want_cache) in table {
            let o = settings.credential_options("c");
            assert_eq!(o.region.as_deref(), Some("eu-west-1"));
            assert_eq!(o.role, want_role);
            assert_eq!(o.cache_for_cluster, want_cache);
        }
    }
}
