//! `token`'s credential story (the `client` feature): region, the SDK's standard chain,
//! a profile's MFA role, the `--cache` file, `--role` and the STS host.

use std::path::PathBuf;
use std::time::Duration;

use aws_config::{AppName, BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use super::assume_role::{self, AssumeRole, SessionName};
use super::cache::{self, CacheKey, FileCacheProvider};
use super::{Error, profile, region};

/// How long assumed-role sessions of `token` last unless a profile says otherwise.
/// Upstream (`kubernetes-sigs/aws-iam-authenticator:pkg/token/token.go`,
/// `GetWithOptions`) sets no duration on its `stscreds` AssumeRole provider, for `--role`
/// and for a profile's `role_arn` alike, so aws-sdk-go-v2's `DefaultDuration` of 15
/// minutes applies, where STS alone would grant an hour. So credentials kept in the
/// `--cache` file live no longer than upstream's.
pub const ROLE_SESSION_DURATION: Duration = Duration::from_secs(15 * 60);

/// `--role` and its companions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleOptions {
    /// The role to assume.
    pub role_arn: String,
    /// `--external-id`.
    pub external_id: Option<String>,
    /// `--session-name` / `--forward-session-name`.
    pub session_name: SessionName,
}

/// What `token` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--region`.
    pub region: Option<String>,
    /// `--role`, assumed with the base credentials.
    pub role: Option<RoleOptions>,
    /// `--cache`: keep the base credentials in the file cache under this cluster id.
    pub cache_for_cluster: Option<String>,
}

/// Credentials to sign with and where to send what they sign.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The credentials (the role's, with `--role`).
    pub credentials: Credentials,
    /// The signing region.
    pub region: Region,
    /// The STS host the token names.
    pub sts_host: String,
}

/// `token`'s credentials: region, base chain (MFA profile, file cache), role, STS host.
pub async fn resolve(options: &Options) -> Result<Resolved, Error> {
    let region = region::resolve(options.region.as_deref()).await;
    let base_chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
        .region(region.clone())
        .imds_client(region::imds_client())
        .build()
        .await;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region.clone())
        .credentials_provider(base_chain);
    if let Ok(app) = AppName::new("aws-iam-authenticator") {
        loader = loader.app_name(app);
    }
    let sdk = loader.load().await;
    // Built only when a role is assumed: a plain-http endpoint override is fine for
    // presigning and refused only for the calls we make ourselves.
    let sts = || region::sts_client(&sdk, region.as_ref());
    let base = match profile::mfa_role_profile().await {
        // The SDK ignores `mfa_serial`; upstream prompts for the code, so we do too.
        Some(profile) => {
            SharedCredentialsProvider::new(profile.into_provider(sts()?, &region).await)
        }
        None => sdk.credentials_provider().ok_or(Error::NoProvider)?,
    };
    let base = match &options.cache_for_cluster {
        Some(cluster_id) => {
            let role_arn = options.role.as_ref().map(|r| r.role_arn.as_str());
            wrap_in_cache(base, cluster_id, role_arn.unwrap_or_default()).await
        }
        None => base,
    };
    let provider = match &options.role {
        Some(role) => {
            let sts = sts()?;
            let session_name = match &role.session_name {
                SessionName::Forwarded => assume_role::forwarded_session_name(&sts, &base)
                    .await?
                    .map_or(SessionName::Default, SessionName::Given),
                other => other.clone(),
            };
            let assume = AssumeRole::new(sts, base, &role.role_arn)
                .session_name(session_name.resolve())
                .external_id(role.external_id.clone())
                .duration(ROLE_SESSION_DURATION);
            SharedCredentialsProvider::new(assume)
        }
        None => base,
    };
    let credentials = provider.provide_credentials().await.map_err(Error::Load)?;
    let sts_host = region::sts_host(&sdk, region.as_ref())?;
    Ok(Resolved {
        credentials,
        region,
        sts_host,
    })
}

/// Wraps the base provider in the file cache; on any problem the run proceeds uncached
/// with upstream's message on stderr (where upstream prints it, beside the log).
async fn wrap_in_cache(
    base: SharedCredentialsProvider,
    cluster_id: &str,
    role_arn: &str,
) -> SharedCredentialsProvider {
    let env_file = std::env::var(cache::CACHE_FILE_ENV).ok();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let Some(path) = cache::cache_path(env_file.as_deref(), home.as_deref()) else {
        eprintln!("unable to use cache: {}", cache::Error::NoLocation);
        return base;
    };
    let profile = std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let key = CacheKey {
        cluster_id: cluster_id.to_owned(),
        profile,
        role_arn: role_arn.to_owned(),
    };
    match FileCacheProvider::new(path, key, base.clone()).await {
        Ok(cached) => SharedCredentialsProvider::new(cached),
        Err(e) => {
            eprintln!("unable to use cache: {}", crate::error::error_chain(&e));
            base
        }
    }
}
