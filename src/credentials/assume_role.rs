//! The one STS AssumeRole provider, and role session names.
//!
//! Used for `token --role`, for a profile's MFA role and for the server's
//! `ec2DescribeInstancesRoleARN`. Assumed credentials are kept in memory and reused until
//! [`REFRESH_BEFORE`] their expiry, so a long-running server assumes the role again in
//! time and a one-shot `token` asks once.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials};

use super::Error;

/// Assumed credentials are renewed this long before they expire.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// Upstream's MFA prompt, on stderr (stdout belongs to the ExecCredential kubectl reads).
pub const MFA_PROMPT: &str = "Assume Role MFA token code: ";

/// The role session name to ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SessionName {
    /// `--session-name` (or a profile's `role_session_name`).
    Given(String),
    /// `--forward-session-name`: the caller's own session name, if it has one.
    Forwarded,
    /// A generated `aws-iam-authenticator-<nanos>`.
    #[default]
    Default,
}

impl SessionName {
    /// The name to send. Forwarding needs the caller's identity first
    /// ([`forwarded_session_name`]); unresolved, it falls back to the default.
    pub fn resolve(self) -> String {
        match self {
            Self::Given(name) => name,
            Self::Forwarded | Self::Default => default_session_name(),
        }
    }
}

/// A session name when none is given. Upstream gets the Go SDK's `aws-go-sdk-<nanos>`;
/// ours names the tool instead.
pub fn default_session_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("aws-iam-authenticator-{nanos}")
}

/// `--forward-session-name`: the caller's own session name (the part after `:` of its
/// user id, e.g. a federated user's e-mail), if it has one.
pub async fn forwarded_session_name(
    sdk: &SdkConfig,
    base: impl ProvideCredentials + 'static,
) -> Result<Option<String>, Error> {
    let conf = aws_sdk_sts::config::Builder::from(sdk)
        .credentials_provider(base)
        .build();
    let identity = aws_sdk_sts::Client::from_conf(conf)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| Error::ForwardSessionName(Box::new(e)))?;
    Ok(session_of_user_id(identity.user_id().unwrap_or_default()))
}

/// The session part of a `<unique id>:<session>` user id.
fn session_of_user_id(user_id: &str) -> Option<String> {
    match user_id.split(':').collect::<Vec<_>>().as_slice() {
        [_, session] => Some((*session).to_owned()),
        _ => None,
    }
}

/// The `x-amz-source-arn` / `x-amz-source-account` headers that tie an AssumeRole to
/// the resource it acts for (confused-deputy protection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHeaders {
    /// `x-amz-source-arn`.
    pub arn: String,
    /// `x-amz-source-account`.
    pub account: String,
}

/// An STS AssumeRole credentials provider.
#[derive(Debug)]
pub struct AssumeRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    session_name: String,
    external_id: Option<String>,
    duration: Option<Duration>,
    mfa_serial: Option<String>,
    source: Option<SourceHeaders>,
    provider_name: &'static str,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl AssumeRole {
    /// Assumes `role_arn` with `base`'s credentials through an STS client configured
    /// like `sdk` (region, endpoint, retries). Defaults: a generated session name, STS's
    /// own duration, no external id, MFA or source headers.
    pub fn new(sdk: &SdkConfig, base: impl ProvideCredentials + 'static, role_arn: &str) -> Self {
        let conf = aws_sdk_sts::config::Builder::from(sdk)
            .credentials_provider(base)
            .build();
        Self {
            sts: aws_sdk_sts::Client::from_conf(conf),
            role_arn: role_arn.to_owned(),
            session_name: default_session_name(),
            external_id: None,
            duration: None,
            mfa_serial: None,
            source: None,
            provider_name: "AssumeRole",
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// `RoleSessionName`.
    pub fn session_name(mut self, name: String) -> Self {
        self.session_name = name;
        self
    }

    /// `ExternalId`, if any.
    pub fn external_id(mut self, id: Option<String>) -> Self {
        self.external_id = id.filter(|id| !id.is_empty());
        self
    }

    /// `DurationSeconds`.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }

    /// `SerialNumber`: the token code is read from stdin after [`MFA_PROMPT`] on stderr.
    pub fn mfa_serial(mut self, serial: String) -> Self {
        self.mfa_serial = Some(serial);
        self.provider_name = "MfaAssumeRole";
        self
    }

    /// Confused-deputy headers on every AssumeRole request.
    pub fn source_headers(mut self, source: Option<SourceHeaders>) -> Self {
        self.source = source;
        self
    }

    /// The name credentials from this provider carry.
    pub fn provider_name(mut self, name: &'static str) -> Self {
        self.provider_name = name;
        self
    }

    async fn fetch(&self) -> provider::Result {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && c.expiry()
                .is_some_and(|exp| exp > SystemTime::now() + REFRESH_BEFORE)
        {
            return Ok(c.clone());
        }
        let credentials = self.assume().await?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    async fn assume(&self) -> provider::Result {
        let token_code = match &self.mfa_serial {
            Some(_) => Some(read_mfa_code().await?),
            None => None,
        };
        let duration = self
            .duration
            .map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
        let source = self.source.clone();
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .set_external_id(self.external_id.clone())
            .set_duration_seconds(duration)
            .set_serial_number(self.mfa_serial.clone())
            .set_token_code(token_code)
            .customize()
            .mutate_request(move |req| {
                if let Some(s) = &source {
                    req.headers_mut().insert("x-amz-source-arn", s.arn.clone());
                    req.headers_mut()
                        .insert("x-amz-source-account", s.account.clone());
                }
            })
            .send()
            .await
            .map_err(CredentialsError::provider_error)?;
        let c = out.credentials().ok_or_else(|| {
            CredentialsError::provider_error("AssumeRole returned no credentials")
        })?;
        let expiry =
            SystemTime::try_from(*c.expiration()).map_err(CredentialsError::provider_error)?;
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            Some(expiry),
            self.provider_name,
        ))
    }
}

/// Prompts on stderr and reads one line from stdin, off the async runtime.
async fn read_mfa_code() -> Result<String, CredentialsError> {
    let line = tokio::task::spawn_blocking(|| {
        eprint!("{MFA_PROMPT}");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(CredentialsError::unhandled)?
    .map_err(CredentialsError::provider_error)?;
    Ok(line.trim().to_owned())
}

impl ProvideCredentials for AssumeRole {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.fetch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_session_names_are_valid_role_session_names() {
        let name = default_session_name();
        assert!(name.len() <= 64 && name.len() >= 2, "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b))
        );
        assert!(
            SessionName::Default
                .resolve()
                .starts_with("aws-iam-authenticator-")
        );
        assert_eq!(SessionName::Given("me".into()).resolve(), "me");
    }

    #[test]
    fn forwarded_session_is_the_part_after_the_colon() {
        let table = [
            ("AROAFEDERATED:alice@example.com", Some("alice@example.com")),
            ("AIDAUSER", None),
            ("a:b:c", None),
            ("", None),
        ];
        for (user_id, want) in table {
            assert_eq!(session_of_user_id(user_id).as_deref(), want, "{user_id}");
        }
    }
}
