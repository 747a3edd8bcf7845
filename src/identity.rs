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
