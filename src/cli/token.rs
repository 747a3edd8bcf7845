//! `token`: mint a `k8s-aws-v1.` token and print it as an ExecCredential.
//!
//! stdout carries only the credential (kubectl parses it); every log, warning and prompt
//! goes to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{AppName, BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use clap::Args;

use super::{GlobalArgs, UsageError};
use crate::config::ConfigFile;
use crate::token::cache::{self, CacheKey, FileCacheProvider};
use crate::token::exec_credential::{self, ExecCredential};
use crate::token::generate;

/// The region upstream falls back to when none is configured and IMDS has none.
const FALLBACK_REGION: &str = "us-east-1";
/// IMDS budget off EC2: the SDK's defaults (several seconds of retries) made every
/// `token` call slow on laptops (upstream's issue with IMDS probing); on EC2 the
/// link-local endpoint answers in milliseconds.
const IMDS_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const IMDS_READ_TIMEOUT: Duration = Duration::from_secs(1);
const IMDS_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// Flag (or its environment variable) > config file > default, per key.
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
        let string = |flag: Option<String>, key: &str| -> anyhow::Result<Option<String>> {
            if let Some(v) = flag {
                return Ok(Some(v).filter(|v| !v.is_empty()));
            }
            Ok(match file {
                Some(f) => f.get_string(key)?.filter(|v| !v.is_empty()),
                None => None,
            })
        };
        let boolean = |flag: Option<bool>, key: &str| -> anyhow::Result<bool> {
            if let Some(v) = flag {
                return Ok(v);
            }
            Ok(match file {
                Some(f) => f.get_bool(key)?.unwrap_or(false),
                None => false,
            })
        };
        Ok(Self {
            region: string(region, "region")?,
            role: string(role, "role")?,
            external_id: string(external_id, "externalID")?,
            session_name: string(session_name, "sessionName")?,
            token_only: boolean(token_only, "tokenOnly")?,
            forward_session_name: boolean(forward_session_name, "forwardSessionName")?,
            cache: boolean(cache, "cache")?,
        })
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

    let (token, expiration) = get_token(&cluster_id, &settings)
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

/// Everything after flag parsing: region, credentials, role, presigning.
async fn get_token(
    cluster_id: &str,
    settings: &Settings,
) -> anyhow::Result<(crate::token::Token, SystemTime)> {
    let region = resolve_region(settings.region.as_deref()).await;
    let imds = imds_client();

    let base_chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
        .region(region.clone())
        .imds_client(imds)
        .build()
        .await;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region.clone())
        .credentials_provider(base_chain);
    if let Ok(app) = AppName::new("aws-iam-authenticator") {
        loader = loader.app_name(app);
    }
    let sdk = loader.load().await;
    let base = match mfa_role_profile().await {
        // The SDK ignores `mfa_serial`; upstream prompts for the code, so we do too.
        Some(profile) => SharedCredentialsProvider::new(profile.into_provider(&sdk, &region).await),
        None => sdk
            .credentials_provider()
            .context("no credentials provider configured")?,
    };

    let base = if settings.cache {
        wrap_in_cache(
            base,
            cluster_id,
            settings.role.as_deref().unwrap_or_default(),
        )
        .await
    } else {
        base
    };

    let provider = match settings.role.as_deref() {
        Some(role) => assume_role(&sdk, &region, base, role, settings).await?,
        None => base,
    };
    let credentials = provider
        .provide_credentials()
        .await
        .context("could not load credentials")?;

    let host = sts_host(&sdk, region.as_ref())?;
    let now = SystemTime::now();
    let generated = generate::generate(&credentials, region.as_ref(), &host, cluster_id, now)?;
    let expiration = exec_credential::expiration(now, credentials.expiry());
    Ok((generated.token, expiration))
}

/// `--region`, else the SDK's environment and profile, else IMDS, else `us-east-1`
/// (upstream's order).
async fn resolve_region(flag: Option<&str>) -> Region {
    if let Some(region) = flag {
        return Region::new(region.to_owned());
    }
    let chain = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new());
    if let Some(region) = chain.region().await {
        return region;
    }
    match imds_region().await {
        Ok(region) => Region::new(region),
        Err(e) => {
            tracing::info!(
                "failed to get region from IMDS for token generation, defaulting to {FALLBACK_REGION}. imds error: {e:#}"
            );
            Region::from_static(FALLBACK_REGION)
        }
    }
}

fn imds_disabled() -> bool {
    std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// An IMDS client with short timeouts and no retries, so that off EC2 the probe fails
/// within about a second instead of the SDK's default budget.
fn imds_client() -> aws_config::imds::Client {
    aws_config::imds::Client::builder()
        .connect_timeout(IMDS_CONNECT_TIMEOUT)
        .read_timeout(IMDS_READ_TIMEOUT)
        .operation_timeout(IMDS_OPERATION_TIMEOUT)
        .max_attempts(1)
        .build()
}

async fn imds_region() -> anyhow::Result<String> {
    if imds_disabled() {
        anyhow::bail!("IMDS is disabled (AWS_EC2_METADATA_DISABLED=true)");
    }
    let region = imds_client()
        .get("/latest/meta-data/placement/region")
        .await
        .map_err(anyhow::Error::new)?;
    let region = region.as_ref().trim().to_owned();
    anyhow::ensure!(!region.is_empty(), "empty region");
    Ok(region)
}

/// Wraps the base provider in the file cache; on any problem the run proceeds uncached
/// with upstream's message on stderr.
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
            eprintln!("unable to use cache: {:#}", anyhow::Error::new(e));
            base
        }
    }
}

/// A provider of `role`'s credentials, assumed with the base credentials.
async fn assume_role(
    sdk: &SdkConfig,
    region: &Region,
    base: SharedCredentialsProvider,
    role: &str,
    settings: &Settings,
) -> anyhow::Result<SharedCredentialsProvider> {
    let session_name = if settings.forward_session_name {
        forwarded_session_name(sdk, base.clone()).await?
    } else {
        settings.session_name.clone()
    };
    let session_name = session_name.unwrap_or_else(default_session_name);
    let mut builder = AssumeRoleProvider::builder(role)
        .configure(sdk)
        .region(region.clone())
        .session_name(session_name);
    if let Some(id) = settings.external_id.as_deref() {
        builder = builder.external_id(id);
    }
    Ok(SharedCredentialsProvider::new(
        builder.build_from_provider(base).await,
    ))
}

/// The selected profile assumes a role with MFA (`role_arn` + `mfa_serial` +
/// `source_profile`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct MfaRoleProfile {
    role_arn: String,
    mfa_serial: String,
    source_profile: String,
    external_id: Option<String>,
    session_name: Option<String>,
    duration_seconds: Option<i32>,
}

/// Reads the selected profile (`AWS_PROFILE`, `AWS_CONFIG_FILE`, … as the SDK does) and
/// returns it if it needs an MFA code. Unreadable files are left to the SDK to report.
async fn mfa_role_profile() -> Option<MfaRoleProfile> {
    // Environment keys come before any profile in the chain, as in the SDK.
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let profiles = aws_config::profile::load(
        &aws_types::os_shim_internal::Fs::real(),
        &aws_types::os_shim_internal::Env::real(),
        // The default files (`~/.aws/config`, `~/.aws/credentials`, or their variables).
        &Default::default(),
        None,
    )
    .await
    .ok()?;
    let profile = profiles.get_profile(profiles.selected_profile())?;
    let get = |key: &str| {
        profile
            .get(key)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Some(MfaRoleProfile {
        role_arn: get("role_arn")?,
        mfa_serial: get("mfa_serial")?,
        source_profile: get("source_profile")?,
        external_id: get("external_id"),
        session_name: get("role_session_name"),
        duration_seconds: get("duration_seconds").and_then(|d| d.parse().ok()),
    })
}

impl MfaRoleProfile {
    async fn into_provider(self, sdk: &SdkConfig, region: &Region) -> MfaAssumeRoleProvider {
        let source = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
            .profile_name(&self.source_profile)
            .region(region.clone())
            .imds_client(imds_client())
            .build()
            .await;
        let conf = aws_sdk_sts::config::Builder::from(sdk)
            .credentials_provider(source)
            .build();
        MfaAssumeRoleProvider {
            client: aws_sdk_sts::Client::from_conf(conf),
            profile: self,
        }
    }
}

/// AssumeRole with `SerialNumber` and a code typed by the user. The prompt goes to
/// stderr: stdout belongs to the ExecCredential kubectl reads.
#[derive(Debug)]
struct MfaAssumeRoleProvider {
    client: aws_sdk_sts::Client,
    profile: MfaRoleProfile,
}

/// Upstream's prompt, on stderr.
const MFA_PROMPT: &str = "Assume Role MFA token code: ";

impl MfaAssumeRoleProvider {
    async fn assume(&self) -> aws_credential_types::provider::Result {
        use aws_credential_types::provider::error::CredentialsError;

        let code = tokio::task::spawn_blocking(|| {
            eprint!("{MFA_PROMPT}");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await
        .map_err(CredentialsError::unhandled)?
        .map_err(CredentialsError::provider_error)?;
        let p = &self.profile;
        let out = self
            .client
            .assume_role()
            .role_arn(&p.role_arn)
            .role_session_name(p.session_name.clone().unwrap_or_else(default_session_name))
            .serial_number(&p.mfa_serial)
            .token_code(code.trim())
            .set_external_id(p.external_id.clone())
            .set_duration_seconds(p.duration_seconds)
            .send()
            .await
            .map_err(CredentialsError::provider_error)?;
        let c = out.credentials().ok_or_else(|| {
            CredentialsError::provider_error("AssumeRole returned no credentials")
        })?;
        let expiry =
            SystemTime::try_from(*c.expiration()).map_err(CredentialsError::provider_error)?;
        Ok(aws_credential_types::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            Some(expiry),
            "MfaAssumeRole",
        ))
    }
}

impl ProvideCredentials for MfaAssumeRoleProvider {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(self.assume())
    }
}

/// `--forward-session-name`: the caller's own session name (the part after `:` of its
/// user id, e.g. a federated user's e-mail), if it has one.
async fn forwarded_session_name(
    sdk: &SdkConfig,
    base: SharedCredentialsProvider,
) -> anyhow::Result<Option<String>> {
    let conf = aws_sdk_sts::config::Builder::from(sdk)
        .credentials_provider(base)
        .build();
    let identity = aws_sdk_sts::Client::from_conf(conf)
        .get_caller_identity()
        .send()
        .await
        .context("could not get the caller identity to forward its session name")?;
    let user_id = identity.user_id().unwrap_or_default();
    let parts: Vec<&str> = user_id.split(':').collect();
    Ok(match parts.as_slice() {
        [_, session] => Some((*session).to_owned()),
        _ => None,
    })
}

/// A session name when none is given. Upstream gets the Go SDK's `aws-go-sdk-<nanos>`;
/// ours names the tool instead.
fn default_session_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("aws-iam-authenticator-{nanos}")
}

/// The host the token is presigned for: `AWS_ENDPOINT_URL_STS` or `AWS_ENDPOINT_URL` if
/// set (as the SDK's STS client would use), else the regional endpoint, honouring
/// `AWS_USE_FIPS_ENDPOINT` / `AWS_USE_DUALSTACK_ENDPOINT` (environment or profile).
fn sts_host(sdk: &SdkConfig, region: &str) -> anyhow::Result<String> {
    // The SDK already leaves the global endpoint out of `sdk` when this is set.
    let ignore_configured = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let override_url = std::env::var("AWS_ENDPOINT_URL_STS")
        .ok()
        .filter(|u| !u.is_empty() && !ignore_configured)
        .or_else(|| sdk.endpoint_url().map(str::to_owned));
    if let Some(url) = override_url {
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("invalid sts endpoint url {url:?}"))?;
        let authority = uri
            .authority()
            .with_context(|| format!("sts endpoint url {url:?} has no host"))?;
        return Ok(authority.as_str().to_owned());
    }
    Ok(generate::sts_host_for(
        region,
        sdk.use_fips().unwrap_or(false),
        sdk.use_dual_stack().unwrap_or(false),
    ))
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
    fn defaults_without_file() {
        assert_eq!(
            Settings::resolve(args(), None).unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn default_session_names_are_valid_role_session_names() {
        let name = default_session_name();
        assert!(name.len() <= 64 && name.len() >= 2, "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b))
        );
    }
}
