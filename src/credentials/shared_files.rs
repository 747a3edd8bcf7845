//! Static keys of a profile in the shared credentials and config files (the server-side
//! chain's profile link; pure).
//!
//! The files are `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`, sections
//! `[name]`) and `AWS_CONFIG_FILE` (default `~/.aws/config`, sections `[profile name]`
//! and `[default]`); the profile is `AWS_PROFILE`, else `default`. A key in the
//! credentials file wins over the same key in the config file, as in the SDKs. Only
//! `aws_access_key_id` / `aws_secret_access_key` / `aws_session_token` are used: a
//! profile that gets its credentials any other way (SSO, `credential_process`, a role
//! to assume, a web identity) is refused with an error that says so, rather than
//! silently skipped to a link further down the chain.

use std::collections::HashMap;

use aws_credential_types::Credentials;

/// Profile keys that get credentials in ways the server-side build does not support.
const UNSUPPORTED_KEYS: &[&str] = &[
    "sso_session",
    "sso_start_url",
    "sso_account_id",
    "sso_role_name",
    "credential_process",
    "role_arn",
    "source_profile",
    "credential_source",
    "web_identity_token_file",
];

/// Why a profile gives no credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// `AWS_PROFILE` names a profile neither file has.
    #[error("profile {profile:?} (AWS_PROFILE) is not in {files}")]
    NotFound {
        /// The profile.
        profile: String,
        /// The files looked in.
        files: String,
    },
    /// The profile needs a credential source this build does not have.
    #[error(
        "profile {profile:?} sets {key}: the server-side build reads only static keys (aws_access_key_id, aws_secret_access_key, aws_session_token) from profiles, not SSO, credential_process or role profiles; use the environment, web identity, container or instance credentials"
    )]
    Unsupported {
        /// The profile.
        profile: String,
        /// The first key it sets that needs what is not built in.
        key: String,
    },
    /// Keys half given.
    #[error("profile {profile:?} sets {present} but not {missing}")]
    Incomplete {
        /// The profile.
        profile: String,
        /// The key it sets.
        present: &'static str,
        /// The key it lacks.
        missing: &'static str,
    },
}

/// The sections of an INI text, each with its `key = value` properties (keys
/// lower-cased). Comments (`#`, `;`) and indented sub-properties are skipped; a later
/// section of the same name adds to the earlier one.
pub fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue; // A sub-property of the key above (e.g. `s3 =` settings).
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name.split(']').next().unwrap_or_default().trim();
            current = Some(name.split_whitespace().collect::<Vec<_>>().join(" "));
            sections
                .entry(current.clone().unwrap_or_default())
                .or_default();
            continue;
        }
        if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            let value = strip_comment(value).trim();
            sections
                .entry(section.clone())
                .or_default()
                .insert(key.trim().to_ascii_lowercase(), value.to_owned());
        }
    }
    sections
}

/// A value without its trailing comment: `#` or `;` after whitespace, as the SDKs read it.
fn strip_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    let end = (1..bytes.len())
        .find(|&i| matches!(bytes[i], b'#' | b';') && bytes[i - 1].is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &value[..end]
}

/// The static keys of `profile` in the two files' texts. `Ok(None)`: no credentials
/// there, try the next link (the `default` profile missing, or one without keys).
/// `explicit`: the profile was named by `AWS_PROFILE`, so its absence is an error.
pub fn profile_credentials(
    config: Option<&str>,
    credentials: Option<&str>,
    profile: &str,
    explicit: bool,
    files: &str,
) -> Result<Option<Credentials>, ProfileError> {
    let config_section = if profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile}")
    };
    let from_config = config.map(parse_ini).and_then(|mut s| {
        s.remove(&config_section).or_else(|| {
            (profile == "default")
                .then(|| s.remove("profile default"))
                .flatten()
        })
    });
    let from_credentials = credentials
        .map(parse_ini)
        .and_then(|mut s| s.remove(profile));
    if from_config.is_none() && from_credentials.is_none() {
        return if explicit {
            Err(ProfileError::NotFound {
                profile: profile.to_owned(),
                files: files.to_owned(),
            })
        } else {
            Ok(None)
        };
    }
    let mut keys = from_config.unwrap_or_default();
    keys.extend(from_credentials.unwrap_or_default());
    let get = |k: &str| keys.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let (id, secret) = (get("aws_access_key_id"), get("aws_secret_access_key"));
    let missing = |present, missing| ProfileError::Incomplete {
        profile: profile.to_owned(),
        present,
        missing,
    };
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some(Credentials::new(
            id,
            secret,
            get("aws_session_token").map(str::to_owned),
            None,
            "SharedCredentialsFile",
        ))),
        (Some(_), None) => Err(missing("aws_access_key_id", "aws_secret_access_key")),
        (None, Some(_)) => Err(missing("aws_secret_access_key", "aws_access_key_id")),
        (None, None) => match UNSUPPORTED_KEYS.iter().find(|k| get(k).is_some()) {
            Some(key) => Err(ProfileError::Unsupported {
                profile: profile.to_owned(),
                key: (*key).to_owned(),
            }),
            None => Ok(None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# comment
[default]
region = us-west-2
s3 =
  max_concurrent_requests = 20

[profile node]
aws_access_key_id = AKIDCONFIG
aws_secret_access_key = config-secret

[profile sso]
sso_session = corp
sso_account_id = 111122223333

[profile half]
aws_access_key_id = AKIDHALF
";

    const CREDENTIALS: &str = "\
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = default-secret ; a comment
aws_session_token = tok#not-a-comment

[node]
; the credentials file wins
aws_secret_access_key = credentials-secret
";

    fn get(
        profile: &str,
        explicit: bool,
    ) -> Result<Option<(String, String, Option<String>)>, ProfileError> {
        profile_credentials(Some(CONFIG), Some(CREDENTIALS), profile, explicit, "f").map(|c| {
            c.map(|c| {
                (
                    c.access_key_id().to_owned(),
                    c.secret_access_key().to_owned(),
                    c.session_token().map(str::to_owned),
                )
            })
        })
    }

    #[test]
    fn ini_sections_keys_and_sub_properties() {
        let s = parse_ini(CONFIG);
        assert_eq!(s["default"]["region"], "us-west-2");
        assert_eq!(s["default"]["s3"], "");
        assert!(!s["default"].contains_key("max_concurrent_requests"));
        assert_eq!(s["profile node"]["aws_access_key_id"], "AKIDCONFIG");
        assert_eq!(parse_ini("[  profile   x ]\nA=b")["profile x"]["a"], "b");
        assert!(parse_ini("key = before any section").is_empty());
    }

    #[test]
    fn static_keys_of_the_selected_profile() {
        assert_eq!(
            get("default", false).unwrap(),
            Some((
                "AKIDDEFAULT".into(),
                "default-secret".into(),
                Some("tok#not-a-comment".into())
            ))
        );
        assert_eq!(
            get("node", true).unwrap(),
            Some(("AKIDCONFIG".into(), "credentials-secret".into(), None))
        );
        // No files, or a default profile without keys: the next link.
        assert_eq!(
            profile_credentials(None, None, "default", false, "f"),
            Ok(None)
        );
        assert_eq!(
            profile_credentials(Some("[default]\nregion=x"), None, "default", false, "f")
                .map(|c| c.is_some()),
            Ok(false)
        );
    }

    #[test]
    fn what_the_server_side_build_cannot_do_is_an_error() {
        let e = get("sso", true).unwrap_err();
        assert!(e.to_string().contains("sso_session"), "{e}");
        assert!(e.to_string().contains("not SSO, credential_process"), "{e}");
        let e = get("missing", true).unwrap_err().to_string();
        assert_eq!(e, "profile \"missing\" (AWS_PROFILE) is not in f");
        let e = get("half", true).unwrap_err().to_string();
        assert_eq!(
            e,
            "profile \"half\" sets aws_access_key_id but not aws_secret_access_key"
        );
    }
}
