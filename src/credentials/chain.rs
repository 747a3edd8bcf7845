//! The server's credential chain, without the AWS SDK.
//!
//! In the order of the SDK's default chain, as far as a node needs it ([`ORDER`]); the
//! first link that has credentials gives them, a link that is configured but fails
//! stops the chain with its error (as in the SDK), and one that is not configured passes
//! to the next:
//!
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. the static keys of `AWS_PROFILE` (else `default`) in the shared credentials and
//!    config files ([`super::shared_files`]; SSO, `credential_process` and role
//!    profiles are refused with an error saying so);
//! 3. web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`
//!    (+ `AWS_ROLE_SESSION_NAME`), an unsigned STS `AssumeRoleWithWebIdentity`;
//! 4. container credentials (EKS Pod Identity, ECS: [`super::container`]);
//! 5. the instance role through IMDSv2 ([`super::imds`]).
//!
//! The result is kept and renewed ahead of expiry ([`super::refresh`]).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials};

use super::assume_role::default_session_name;
use super::link_local::{self, Http, LinkError};
use super::refresh::Cache;
use super::sts::{self, Sts};
use super::{container, imds, shared_files};
use crate::https::proxy::ProxyEnv;

/// A link of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Keys in the environment.
    Environment,
    /// Static keys of a profile.
    Profile,
    /// `AssumeRoleWithWebIdentity` with a token file.
    WebIdentity,
    /// EKS Pod Identity or ECS.
    Container,
    /// The instance role.
    Imds,
}

/// The order the links are tried in.
pub const ORDER: [Source; 5] = [
    Source::Environment,
    Source::Profile,
    Source::WebIdentity,
    Source::Container,
    Source::Imds,
];

/// How the chain reads a variable.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The chain; cheap to share.
pub struct Chain {
    env: Env,
    region: String,
    proxy: ProxyEnv,
    http: OnceLock<Result<Http, LinkError>>,
    cache: Cache,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// A link's outcome: credentials, not configured (`None`), or its failure.
type LinkResult = Result<Option<Credentials>, CredentialsError>;

impl Chain {
    /// The chain over the process's environment, for STS calls in `region` (web
    /// identity) through `proxy`.
    pub fn new(region: &str, proxy: ProxyEnv) -> Self {
        Self::with_env(region, proxy, Arc::new(|name| std::env::var(name).ok()))
    }

    /// The chain over the variables `env` gives.
    pub fn with_env(region: &str, proxy: ProxyEnv, env: Env) -> Self {
        Self {
            env,
            region: region.to_owned(),
            proxy,
            http: OnceLock::new(),
            cache: Cache::new(),
        }
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.trim().is_empty())
    }

    /// The link-local client, built when a link first needs it.
    fn http(&self) -> Result<&Http, CredentialsError> {
        self.http
            .get_or_init(link_local::client)
            .as_ref()
            .map_err(|e| CredentialsError::invalid_configuration(e.clone()))
    }

    /// Tries the links in [`ORDER`].
    pub async fn resolve(&self) -> provider::Result {
        for source in ORDER {
            if let Some(credentials) = self.link(source).await? {
                tracing::debug!("AWS credentials from {source:?}");
                return Ok(credentials);
            }
        }
        Err(CredentialsError::not_loaded(
            "no AWS credentials in the environment, profile files, web identity, container or instance metadata",
        ))
    }

    async fn link(&self, source: Source) -> LinkResult {
        match source {
            Source::Environment => Ok(self.environment()),
            Source::Profile => self.profile().await,
            Source::WebIdentity => self.web_identity().await,
            Source::Container => self.container().await,
            Source::Imds => self.imds().await,
        }
    }

    fn environment(&self) -> Option<Credentials> {
        let id = self.var("AWS_ACCESS_KEY_ID")?;
        let secret = self.var("AWS_SECRET_ACCESS_KEY")?;
        let token = self.var("AWS_SESSION_TOKEN");
        Some(Credentials::new(id, secret, token, None, "Environment"))
    }

    async fn profile(&self) -> LinkResult {
        let home = self.var("HOME").map(PathBuf::from);
        let file = |var: &str, default: &str| {
            self.var(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
        };
        let config = file("AWS_CONFIG_FILE", "config");
        let credentials = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
        let read = |path: Option<PathBuf>| async move {
            match path {
                Some(p) => tokio::fs::read_to_string(&p).await.ok(),
                None => None,
            }
        };
        let files = [&config, &credentials]
            .iter()
            .filter_map(|p| p.as_ref().map(|p| p.display().to_string()))
            .collect::<Vec<_>>()
            .join(" or ");
        let explicit = self.var("AWS_PROFILE");
        let profile = explicit.clone().unwrap_or_else(|| "default".to_owned());
        shared_files::profile_credentials(
            read(config).await.as_deref(),
            read(credentials).await.as_deref(),
            &profile,
            explicit.is_some(),
            &files,
        )
        .map_err(CredentialsError::invalid_configuration)
    }

    async fn web_identity(&self) -> LinkResult {
        let Some(token_file) = self.var("AWS_WEB_IDENTITY_TOKEN_FILE") else {
            return Ok(None);
        };
        let role_arn = self.var("AWS_ROLE_ARN").ok_or_else(|| {
            CredentialsError::invalid_configuration(
                "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not",
            )
        })?;
        let session = self
            .var("AWS_ROLE_SESSION_NAME")
            .unwrap_or_else(default_session_name);
        let token = tokio::fs::read_to_string(&token_file).await.map_err(|e| {
            CredentialsError::invalid_configuration(format!(
                "AWS_WEB_IDENTITY_TOKEN_FILE {token_file}: {e}"
            ))
        })?;
        let url = sts::url_for_region(&self.region, |v| self.var(v));
        let sts = Sts::new(&url, &self.region, self.proxy.clone())
            .map_err(CredentialsError::invalid_configuration)?;
        const ACTION: &str = "AssumeRoleWithWebIdentity";
        let params = [
            ("RoleArn", role_arn.as_str()),
            ("RoleSessionName", session.as_str()),
            ("WebIdentityToken", token.trim()),
        ];
        let fields = sts
            .call(ACTION, &params, &[], None, sts::CREDENTIAL_FIELDS)
            .await
            .map_err(CredentialsError::provider_error)?;
        sts::credentials_of(ACTION, &fields, "WebIdentityToken")
            .map(Some)
            .map_err(CredentialsError::provider_error)
    }

    async fn container(&self) -> LinkResult {
        let endpoint = container::endpoint(&|v| self.var(v))
            .map_err(CredentialsError::invalid_configuration)?;
        let Some(endpoint) = endpoint else {
            return Ok(None);
        };
        container::credentials(self.http()?, &endpoint)
            .await
            .map(Some)
            .map_err(|e| {
                CredentialsError::provider_error(format!(
                    "container credentials from {}: {e}",
                    endpoint.url
                ))
            })
    }

    async fn imds(&self) -> LinkResult {
        if imds::disabled(&|v| self.var(v)) {
            return Ok(None);
        }
        let imds = imds::Imds::new(self.http()?.clone(), imds::endpoint(&|v| self.var(v)));
        imds.credentials().await.map_err(|e| {
            CredentialsError::provider_error(format!("instance metadata credentials: {e}"))
        })
    }
}

impl ProvideCredentials for Chain {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.cache.get_or_fetch(|| self.resolve()))
    }
}
