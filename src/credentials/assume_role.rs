//! The one STS AssumeRole provider, and role session names.
//!
//! Used for `token --role`, for a profile's MFA role and for the server's
//! `ec2DescribeInstancesRoleARN`. Our own signed STS call ([`super::sts`]), not
//! `aws-sdk-sts`: the server-side build carries no SDK. Assumed credentials are kept in
//! memory and renewed [`REFRESH_BEFORE`] their expiry ([`super::refresh`]), so a
//! long-running server assumes the role again in time and a one-shot `token` asks once.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};

use super::Error;
use super::refresh::Cache;
pub use super::refresh::REFRESH_BEFORE;
use super::sts::{self, Sts};

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
    sts: &Sts,
    base: &SharedCredentialsProvider,
) -> Result<Option<String>, Error> {
    let credentials = base.provide_credentials().await.map_err(Error::Load)?;
    let identity = sts
        .call(
            "GetCallerIdentity",
            &[],
            &[],
            Some(&credentials),
            &["UserId"],
        )
        .await
        .map_err(|e| Error::ForwardSessionName(Box::new(e)))?;
    Ok(identity.get("UserId").and_then(|id| session_of_user_id(id)))
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
    sts: Sts,
    base: SharedCredentialsProvider,
    role_arn: String,
    session_name: String,
    external_id: Option<String>,
    duration: Option<Duration>,
    mfa_serial: Option<String>,
    source: Option<SourceHeaders>,
    provider_name: &'static str,
    cache: Cache,
}

impl AssumeRole {
    /// Assumes `role_arn` with `base`'s credentials through `sts`. Defaults: a generated
    /// session name, STS's own duration, no external id, MFA or source headers.
    pub fn new(sts: Sts, base: impl ProvideCredentials + 'static, role_arn: &str) -> Self {
        Self {
            sts,
            base: SharedCredentialsProvider::new(base),
            role_arn: role_arn.to_owned(),
            session_name: default_session_name(),
            external_id: None,
            duration: None,
            mfa_serial: None,
            source: None,
            provider_name: "AssumeRole",
            cache: Cache::new(),
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

    async fn assume(&self) -> provider::Result {
        let base = self.base.provide_credentials().await?;
        let token_code = match &self.mfa_serial {
            Some(_) => Some(read_mfa_code().await?),
            None => None,
        };
        let duration = self.duration.map(|d| d.as_secs().to_string());
        let mut params = vec![
            ("RoleArn", self.role_arn.as_str()),
            ("RoleSessionName", self.session_name.as_str()),
        ];
        let optional = [
            ("DurationSeconds", duration.as_deref()),
            ("ExternalId", self.external_id.as_deref()),
            ("SerialNumber", self.mfa_serial.as_deref()),
            ("TokenCode", token_code.as_deref()),
        ];
        params.extend(optional.iter().filter_map(|(k, v)| Some((*k, (*v)?))));
        let headers: Vec<(&'static str, String)> = match &self.source {
            Some(s) => vec![
                ("x-amz-source-arn", s.arn.clone()),
                ("x-amz-source-account", s.account.clone()),
            ],
            None => Vec::new(),
        };
        let fields = self
            .sts
            .call(
                "AssumeRole",
                &params,
                &headers,
                Some(&base),
                sts::CREDENTIAL_FIELDS,
            )
            .await
            .map_err(CredentialsError::provider_error)?;
        sts::credentials_of("AssumeRole", &fields, self.provider_name)
            .map_err(CredentialsError::provider_error)
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
        provider::future::ProvideCredentials::new(self.cache.get_or_fetch(|| self.assume()))
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
