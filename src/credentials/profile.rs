//! A shared-config profile that assumes a role with MFA (`role_arn` + `mfa_serial` +
//! `source_profile`): the SDK ignores `mfa_serial`, upstream prompts for the code.

use std::time::Duration;

use aws_config::Region;

use super::ROLE_SESSION_DURATION;
use super::assume_role::{AssumeRole, SessionName};
use super::region::imds_client;
use super::sts::Sts;

/// The selected profile's MFA role settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaRoleProfile {
    /// `role_arn`.
    pub role_arn: String,
    /// `mfa_serial`.
    pub mfa_serial: String,
    /// `source_profile`: where the credentials that assume the role come from.
    pub source_profile: String,
    /// `external_id`.
    pub external_id: Option<String>,
    /// `role_session_name`.
    pub session_name: Option<String>,
    /// `duration_seconds`.
    pub duration_seconds: Option<u32>,
}

/// Reads the selected profile (`AWS_PROFILE`, `AWS_CONFIG_FILE`, … as the SDK does) and
/// returns it if it needs an MFA code. Unreadable files are left to the SDK to report.
pub async fn mfa_role_profile() -> Option<MfaRoleProfile> {
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
    from_keys(|key| profile.get(key))
}

/// The MFA role settings among a profile's keys, if it has all three required ones.
fn from_keys<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<MfaRoleProfile> {
    let get = |key: &str| get(key).filter(|v| !v.is_empty()).map(str::to_owned);
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
    /// The provider that prompts for the code and assumes the role with the source
    /// profile's credentials, for `duration_seconds` or else upstream's 15 minutes.
    pub async fn into_provider(self, sts: Sts, region: &Region) -> AssumeRole {
        let source = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
            .profile_name(&self.source_profile)
            .region(region.clone())
            .imds_client(imds_client())
            .build()
            .await;
        let session_name = self
            .session_name
            .map_or(SessionName::Default, SessionName::Given);
        let duration = self
            .duration_seconds
            .map_or(ROLE_SESSION_DURATION, |s| Duration::from_secs(u64::from(s)));
        AssumeRole::new(sts, source, &self.role_arn)
            .session_name(session_name.resolve())
            .external_id(self.external_id)
            .duration(duration)
            .mfa_serial(self.mfa_serial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn needs_role_mfa_serial_and_source_profile() {
        let full: HashMap<&str, &str> = [
            ("role_arn", "arn:aws:iam::1:role/r"),
            ("mfa_serial", "arn:aws:iam::1:mfa/alice"),
            ("source_profile", "base"),
            ("external_id", "ext"),
            ("role_session_name", "me"),
            ("duration_seconds", "1800"),
        ]
        .into();
        assert_eq!(
            from_keys(|k| full.get(k).copied()),
            Some(MfaRoleProfile {
                role_arn: "arn:aws:iam::1:role/r".into(),
                mfa_serial: "arn:aws:iam::1:mfa/alice".into(),
                source_profile: "base".into(),
                external_id: Some("ext".into()),
                session_name: Some("me".into()),
                duration_seconds: Some(1800),
            })
        );
        for missing in ["role_arn", "mfa_serial", "source_profile"] {
            let mut keys = full.clone();
            keys.insert(missing, "");
            assert_eq!(from_keys(|k| keys.get(k).copied()), None, "{missing}");
        }
    }
}
