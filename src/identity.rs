//! The verified caller, as STS described it.

use serde::Serialize;

/// Who signed a token, after STS has vouched for it and the ARN has been canonicalised.
///
/// Serialises with upstream's Go field names, so `verify -o json` prints what scripts
/// written for the Go tool expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Identity {
    /// The ARN STS returned, e.g. `arn:aws:sts::123456789012:assumed-role/Admin/alice`.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// The ARN mappings are matched against, e.g. `arn:aws:iam::123456789012:role/Admin`.
    #[serde(rename = "CanonicalARN")]
    pub canonical_arn: String,
    /// The account STS returned.
    #[serde(rename = "AccountID")]
    pub account_id: String,
    /// The unique id (`AIDA…`, `AROA…`, the account for root, `<acct>:<name>` for federated users).
    #[serde(rename = "UserID")]
    pub user_id: String,
    /// The role session name; empty for users, root and federated users.
    #[serde(rename = "SessionName")]
    pub session_name: String,
    /// The access key id from the token's `X-Amz-Credential`.
    #[serde(rename = "AccessKeyID")]
    pub access_key_id: String,
    /// The STS host the token was presigned for.
    #[serde(rename = "STSEndpoint")]
    pub sts_endpoint: String,
}

impl Identity {
    /// The identity STS would report for `arn` (an IAM user, role, root or federated
    /// user, or an STS assumed role), without a token: canonical ARN and account from
    /// the ARN, the session name from an assumed-role ARN, `user_id` as given, no access
    /// key. For `explain --arn`.
    pub fn from_arn(arn: &str, user_id: &str) -> Result<Self, crate::arn::ArnError> {
        let (kind, canonical_arn) = crate::arn::canonicalize(arn)?;
        let parsed = crate::arn::parse(arn).map_err(crate::arn::ArnError::new)?;
        let session_name = match kind {
            crate::arn::PrincipalType::AssumedRole => parsed
                .resource
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        };
        Ok(Self {
            arn: arn.to_owned(),
            canonical_arn,
            account_id: parsed.account_id.to_owned(),
            user_id: user_id.to_owned(),
            session_name,
            access_key_id: String::new(),
            sts_endpoint: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_arn() {
        let id = Identity::from_arn(
            "arn:aws:sts::123456789012:assumed-role/Admin/alice@example.com",
            "AROAEXAMPLE",
        )
        .unwrap();
        assert_eq!(id.canonical_arn, "arn:aws:iam::123456789012:role/Admin");
        assert_eq!(id.account_id, "123456789012");
        assert_eq!(id.session_name, "alice@example.com");
        assert_eq!(id.user_id, "AROAEXAMPLE");
        let user = Identity::from_arn("arn:aws:iam::123456789012:user/ops/bob", "").unwrap();
        assert_eq!(user.canonical_arn, user.arn);
        assert_eq!(user.session_name, "");
        assert!(Identity::from_arn("arn:aws:s3:::bucket", "").is_err());
        assert!(Identity::from_arn("nope", "").is_err());
    }
}
