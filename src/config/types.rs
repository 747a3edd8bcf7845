//! Typed values of the upstream configuration: backend modes, mappings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::arn::PrincipalType;
use crate::aws::Partition;

/// A mapping backend (`--backend-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendMode {
    /// Mappings from the config file (`server.mapRoles` …). Deprecated alias `File`.
    MountedFile,
    /// The `kube-system/aws-auth` ConfigMap. Deprecated alias `ConfigMap`.
    EksConfigMap,
    /// `IAMIdentityMapping` custom resources.
    Crd,
    /// The EKS access-entries JSON file at `server.dynamicfilepath`.
    DynamicFile,
}

impl BackendMode {
    /// The mode's name as upstream spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::MountedFile => "MountedFile",
            Self::EksConfigMap => "EKSConfigMap",
            Self::Crd => "CRD",
            Self::DynamicFile => "DynamicFile",
        }
    }

    /// Parses a mode name; the second value is the deprecated name used, if any
    /// (upstream logs `backend-mode "<old>" is deprecated, use "<new>" instead`).
    pub fn parse(s: &str) -> Option<(Self, Option<&'static str>)> {
        Some(match s {
            "MountedFile" => (Self::MountedFile, None),
            "EKSConfigMap" => (Self::EksConfigMap, None),
            "CRD" => (Self::Crd, None),
            "DynamicFile" => (Self::DynamicFile, None),
            "File" => (Self::MountedFile, Some("File")),
            "ConfigMap" => (Self::EksConfigMap, Some("ConfigMap")),
            _ => return None,
        })
    }
}

impl fmt::Display for BackendMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `sso:` part of a role mapping (`SSOARNMatcher`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SsoArnMatcher {
    /// The IAM Identity Center permission set name.
    #[serde(rename = "permissionSetName", alias = "permissionsetname")]
    pub permission_set_name: String,
    /// The 12-digit account id.
    #[serde(rename = "accountID", alias = "accountid")]
    pub account_id: String,
    /// The partition; `aws` when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub partition: String,
}

/// One `mapRoles` entry (upstream `config.RoleMapping`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RoleMapping {
    /// The IAM role ARN (case-insensitive match on its canonical form).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rolearn: String,
    /// An SSO permission-set matcher instead of `rolearn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoArnMatcher>,
    /// The Kubernetes username template.
    #[serde(default)]
    pub username: String,
    /// The Kubernetes group templates.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The role's unique id (`AROA…`), for DynamicFile's strict mode.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub userid: String,
}

/// One `mapUsers` entry (upstream `config.UserMapping`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UserMapping {
    /// The IAM user ARN.
    #[serde(default)]
    pub userarn: String,
    /// The Kubernetes username template.
    #[serde(default)]
    pub username: String,
    /// The Kubernetes group templates.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The user's unique id (`AIDA…`), for DynamicFile's strict mode.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub userid: String,
}

/// Upstream's feature gates (all alpha, all off by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeatureGates {
    /// `ConfiguredInitDirectories`: upstream's `init` writes to the configured paths.
    pub configured_init_directories: bool,
    /// `IAMIdentityMappingCRD`: declared upstream, unused.
    pub iam_identity_mapping_crd: bool,
    /// `SSORoleMatch`: `sso:` role mappings match.
    pub sso_role_match: bool,
}

impl FeatureGates {
    /// Logs the gates that are on and change what this binary does, as upstream's
    /// `getConfig()` does. Once per process: a reloaded config file does not repeat it.
    pub fn log_enabled(&self) {
        if self.sso_role_match {
            tracing::info!("SSORoleMatch feature enabled");
        }
        if self.configured_init_directories {
            tracing::info!("ConfiguredInitDirectories feature enabled");
        }
    }
}

impl FromStr for FeatureGates {
    type Err = String;

    /// Parses `A=true,B=false`, plus `AllAlpha`/`AllBeta` (k8s component-base syntax).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut gates = Self::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("missing bool value for {item}"))?;
            let value: bool = value
                .trim()
                .parse()
                .map_err(|_| format!("invalid value of {name}={value}, err: invalid syntax"))?;
            match name.trim() {
                "ConfiguredInitDirectories" => gates.configured_init_directories = value,
                "IAMIdentityMappingCRD" => gates.iam_identity_mapping_crd = value,
                "SSORoleMatch" => gates.sso_role_match = value,
                "AllAlpha" => {
                    gates = Self {
                        configured_init_directories: value,
                        iam_identity_mapping_crd: value,
                        sso_role_match: value,
                    }
                }
                "AllBeta" => {}
                other => return Err(format!("unrecognized feature gate: {other}")),
            }
        }
        Ok(gates)
    }
}

/// Why a role or user mapping is unusable. `Display` is upstream's text
/// (`pkg/config/types.go` `Validate`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// Neither `rolearn` nor `sso`.
    #[error("one of rolearn or SSO must be supplied")]
    NoRoleKey,
    /// Both `rolearn` and `sso`.
    #[error("only one of rolearn or SSO can be supplied")]
    BothRoleKeys,
    /// `sso.accountID` is not twelve digits.
    #[error("AccountID '{0}' is not a valid AWS Account ID")]
    SsoAccountId(String),
    /// `sso.permissionSetName` has characters or a length IAM Identity Center rejects.
    #[error("PermissionSetName '{0}' is not a valid AWS SSO PermissionSet Name")]
    SsoPermissionSetName(String),
    /// `sso.partition` is not a known partition.
    #[error("partition '{0}' is not a valid AWS partition")]
    SsoPartition(String),
    /// The generated SSO pattern is not a role ARN pattern.
    #[error("SSO pattern '{0}' is not a valid IAM role ARN pattern")]
    SsoPattern(String),
    /// A user mapping without `userarn`.
    #[error("value for userarn must be supplied")]
    NoUserArn,
    /// The ARN could not be canonicalised (upstream's `arn` package text).
    #[error("{0}")]
    Arn(String),
}

/// IAM Identity Center's `AWSReservedSSO_<permission set>_<suffix>` role name prefix,
/// lower-cased (all matching is case-insensitive).
const SSO_ROLE_PREFIX: &str = "awsreservedsso_";

/// Whether `s` matches `^[\w+=,.@-]{1,32}$` (IAM Identity Center's permission set names).
fn is_permission_set_name(s: &str) -> bool {
    (1..=32).contains(&s.chars().count())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

/// Whether `s` is a twelve-digit AWS account id (`^[0-9]{12}$`).
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

impl SsoArnMatcher {
    /// The partition the pattern is for: the configured one, `aws` when empty.
    // upstream: pkg/config/types.go sets the partition to "aws" only when it is empty and
    // leaves it "" otherwise, so any explicit partition (even "aws") yields the pattern
    // `arn::iam::…` that never matches; we honour the configured partition.
    fn effective_partition(&self) -> &str {
        if self.partition.is_empty() {
            "aws"
        } else {
            &self.partition
        }
    }

    /// Upstream's checks: twelve-digit account, a valid permission set name, a known
    /// partition, and a pattern that is `ArnLike` `arn:*:iam:*:*:role/*`.
    pub fn validate(&self) -> Result<(), MappingError> {
        if !is_account_id(&self.account_id) {
            return Err(MappingError::SsoAccountId(self.account_id.clone()));
        }
        if !is_permission_set_name(&self.permission_set_name) {
            return Err(MappingError::SsoPermissionSetName(
                self.permission_set_name.clone(),
            ));
        }
        if !self.partition.is_empty() && self.partition.parse::<Partition>().is_err() {
            return Err(MappingError::SsoPartition(self.partition.clone()));
        }
        let pattern = self.pattern();
        match crate::arn::arn_like(&pattern, "arn:*:iam:*:*:role/*") {
            Ok(true) => Ok(()),
            _ => Err(MappingError::SsoPattern(pattern)),
        }
    }

    /// The lower-cased pattern upstream uses as the mapping's key:
    /// `arn:<partition>:iam::<account>:role/awsreservedsso_<permission set>_*`.
    pub fn pattern(&self) -> String {
        format!(
            "arn:{}:iam::{}:role/{SSO_ROLE_PREFIX}{}_*",
            self.effective_partition(),
            self.account_id,
            self.permission_set_name
        )
        .to_lowercase()
    }

    /// Whether the canonical role ARN `arn` is an IAM Identity Center role of this
    /// permission set in this account and partition (case-insensitive).
    // upstream: pkg/config/types.go matches `…role/AWSReservedSSO_<name>_*` with ArnLike,
    // so permission set `Admin` also matches `AWSReservedSSO_Admin_ReadOnly_<suffix>`
    // (the roles of permission set `Admin_ReadOnly`). We require the suffix after
    // `AWSReservedSSO_<name>_` to be one non-empty token without `_` or `/`: AWS's
    // suffix is 16 hex digits, and permission set names may contain `_`, so this is the
    // only reading under which a role belongs to exactly one permission set.
    pub fn matches(&self, arn: &str) -> bool {
        let arn = arn.to_lowercase();
        let prefix = format!(
            "arn:{}:iam::{}:role/{SSO_ROLE_PREFIX}{}_",
            self.effective_partition(),
            self.account_id,
            self.permission_set_name
        )
        .to_lowercase();
        match arn.strip_prefix(&prefix) {
            Some(suffix) => !suffix.is_empty() && !suffix.contains(['_', '/', ':']),
            None => false,
        }
    }
}

/// The key a configured role ARN is matched under: canonical (an `assumed-role` ARN
/// becomes its role), path stripped, lower-cased.
///
/// STS reports a role without its path (`assumed-role/<name>/<session>`), so a
/// configured `role/team/Admin` could never match as written. Stripping the path makes
/// it match the role `Admin`; the caveat is that two roles with the same name under
/// different paths in one account become indistinguishable (the first entry wins).
pub fn role_arn_key(rolearn: &str) -> Result<String, MappingError> {
    let (_, canonical) =
        crate::arn::canonicalize(rolearn).map_err(|e| MappingError::Arn(e.to_string()))?;
    let stripped =
        crate::arn::strip_path(&canonical).map_err(|e| MappingError::Arn(e.to_string()))?;
    Ok(stripped.to_lowercase())
}

/// The key a configured user ARN is matched under: canonical and lower-cased (user
/// ARNs keep their path: STS reports it). An assumed-role ARN written under `mapUsers`
/// becomes its role's ARN, as the caller's canonical ARN does.
pub fn user_arn_key(userarn: &str) -> Result<String, MappingError> {
    let (_, canonical) = crate::arn::canonicalize(&userarn.to_lowercase())
        .map_err(|e| MappingError::Arn(e.to_string()))?;
    Ok(canonical)
}

/// The key of an ARN of any kind (a CRD's `spec.arn`): a role's ([`role_arn_key`]) for
/// roles and assumed roles, a user's ([`user_arn_key`]) for everything else.
pub fn principal_arn_key(arn: &str) -> Result<String, MappingError> {
    let (kind, _) = crate::arn::canonicalize(&arn.to_lowercase())
        .map_err(|e| MappingError::Arn(e.to_string()))?;
    match kind {
        PrincipalType::Role | PrincipalType::AssumedRole => role_arn_key(arn),
        PrincipalType::User | PrincipalType::FederatedUser | PrincipalType::Root => {
            user_arn_key(arn)
        }
    }
}

/// The key an allowed account is found under: the text as written (an account id is
/// digits; `mapAccounts` entries are compared literally, as upstream).
pub fn account_key(account: &str) -> &str {
    account
}

impl RoleMapping {
    /// Upstream's checks: exactly one of `rolearn` and `sso`, and a valid `sso`.
    pub fn validate(&self) -> Result<(), MappingError> {
        match (&self.rolearn.is_empty(), &self.sso) {
            (true, None) => Err(MappingError::NoRoleKey),
            (false, Some(_)) => Err(MappingError::BothRoleKeys),
            (true, Some(sso)) => sso.validate(),
            (false, None) => Ok(()),
        }
    }

    /// Upstream's `Key()`: the lower-cased `rolearn`, or the SSO pattern.
    pub fn key(&self) -> String {
        match &self.sso {
            Some(sso) if self.rolearn.is_empty() => sso.pattern(),
            _ => self.rolearn.to_lowercase(),
        }
    }
}

impl UserMapping {
    /// Upstream's check: `userarn` must be set.
    pub fn validate(&self) -> Result<(), MappingError> {
        if self.userarn.is_empty() {
            Err(MappingError::NoUserArn)
        } else {
            Ok(())
        }
    }

    /// Upstream's `Key()`: `userarn` as written.
    pub fn key(&self) -> String {
        self.userarn.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_modes_and_deprecated_names() {
        assert_eq!(
            BackendMode::parse("File"),
            Some((BackendMode::MountedFile, Some("File")))
        );
        assert_eq!(
            BackendMode::parse("ConfigMap"),
            Some((BackendMode::EksConfigMap, Some("ConfigMap")))
        );
        assert_eq!(BackendMode::parse("CRD"), Some((BackendMode::Crd, None)));
        assert_eq!(BackendMode::parse("crd"), None);
    }

    #[test]
    fn feature_gates() {
        let g: FeatureGates = "SSORoleMatch=true, ConfiguredInitDirectories=false"
            .parse()
            .unwrap();
        assert!(g.sso_role_match && !g.configured_init_directories);
        let g: FeatureGates = "AllAlpha=true".parse().unwrap();
        assert!(g.sso_role_match && g.configured_init_directories && g.iam_identity_mapping_crd);
        assert!("Nope=true".parse::<FeatureGates>().is_err());
        assert!("SSORoleMatch".parse::<FeatureGates>().is_err());
    }

    fn sso(name: &str, account: &str, partition: &str) -> SsoArnMatcher {
        SsoArnMatcher {
            permission_set_name: name.into(),
            account_id: account.into(),
            partition: partition.into(),
        }
    }

    #[test]
    fn sso_vectors() {
        let m = sso("ViewOnlyAccess", "012345678912", "");
        m.validate().unwrap();
        assert_eq!(
            m.pattern(),
            "arn:aws:iam::012345678912:role/awsreservedsso_viewonlyaccess_*"
        );
        let rm = RoleMapping {
            sso: Some(m.clone()),
            username: "u".into(),
            ..Default::default()
        };
        assert_eq!(rm.key(), m.pattern());
        let yes = "arn:aws:iam::012345678912:role/awsreservedsso_viewonlyaccess_abcdefg";
        let no = "arn:aws:iam::012345678912:role/awsreservedsso_billing_hijklmn";
        assert!(m.matches(yes));
        assert!(m.matches(&yes.to_uppercase().replace("ARN:AWS:IAM", "arn:aws:iam")));
        assert!(!m.matches(no));
        // Other account, other partition.
        assert!(!m.matches("arn:aws:iam::111111111111:role/awsreservedsso_viewonlyaccess_abcdefg"));
        assert!(
            !m.matches("arn:aws-cn:iam::012345678912:role/awsreservedsso_viewonlyaccess_abcdefg")
        );
    }

    #[test]
    fn sso_invalid_vectors() {
        assert_eq!(
            sso("ViewOnlyAccess", "012345678912", "aws-nk")
                .validate()
                .unwrap_err()
                .to_string(),
            "partition 'aws-nk' is not a valid AWS partition"
        );
        assert_eq!(
            sso("ViewOnlyAccess", "0123456789", "")
                .validate()
                .unwrap_err()
                .to_string(),
            "AccountID '0123456789' is not a valid AWS Account ID"
        );
        assert_eq!(
            sso("View*", "012345678912", "")
                .validate()
                .unwrap_err()
                .to_string(),
            "PermissionSetName 'View*' is not a valid AWS SSO PermissionSet Name"
        );
        assert!(sso(&"a".repeat(33), "012345678912", "").validate().is_err());
        sso(&"a".repeat(32), "012345678912", "").validate().unwrap();
    }

    #[test]
    fn sso_explicit_partition_is_honoured() {
        let gov = sso("Admin", "012345678912", "aws-us-gov");
        gov.validate().unwrap();
        assert!(gov.matches(
            "arn:aws-us-gov:iam::012345678912:role/AWSReservedSSO_Admin_0123456789abcdef"
        ));
        assert!(
            !gov.matches("arn:aws:iam::012345678912:role/AWSReservedSSO_Admin_0123456789abcdef")
        );
        let aws = sso("Admin", "012345678912", "aws");
        assert!(
            aws.matches("arn:aws:iam::012345678912:role/AWSReservedSSO_Admin_0123456789abcdef")
        );
    }

    #[test]
    fn sso_prefix_does_not_over_match() {
        let admin = sso("Admin", "012345678912", "");
        let read_only =
            "arn:aws:iam::012345678912:role/AWSReservedSSO_Admin_ReadOnly_0123456789abcdef";
        assert!(!admin.matches(read_only));
        assert!(sso("Admin_ReadOnly", "012345678912", "").matches(read_only));
        assert!(!admin.matches("arn:aws:iam::012345678912:role/AWSReservedSSO_Admin_"));
    }

    #[test]
    fn role_mapping_validation() {
        let none = RoleMapping::default();
        assert_eq!(
            none.validate().unwrap_err().to_string(),
            "one of rolearn or SSO must be supplied"
        );
        let both = RoleMapping {
            rolearn: "arn:aws:iam::012345678912:role/x".into(),
            sso: Some(sso("Admin", "012345678912", "")),
            ..Default::default()
        };
        assert_eq!(
            both.validate().unwrap_err().to_string(),
            "only one of rolearn or SSO can be supplied"
        );
        assert_eq!(
            UserMapping::default().validate().unwrap_err().to_string(),
            "value for userarn must be supplied"
        );
    }

    #[test]
    fn role_and_user_keys() {
        let r = RoleMapping {
            rolearn: "arn:aws:iam::012345678912:role/Team/Admin".into(),
            ..Default::default()
        };
        assert_eq!(r.key(), "arn:aws:iam::012345678912:role/team/admin");
        assert_eq!(
            role_arn_key(&r.rolearn).unwrap(),
            "arn:aws:iam::012345678912:role/admin"
        );
        assert_eq!(
            role_arn_key("arn:aws:sts::012345678912:assumed-role/Admin/s").unwrap(),
            "arn:aws:iam::012345678912:role/admin"
        );
        assert!(role_arn_key("not an arn").is_err());
        let u = UserMapping {
            userarn: "arn:aws:iam::012345678912:user/Path/Alice".into(),
            ..Default::default()
        };
        assert_eq!(u.key(), "arn:aws:iam::012345678912:user/Path/Alice");
        assert_eq!(
            user_arn_key(&u.userarn).unwrap(),
            "arn:aws:iam::012345678912:user/path/alice"
        );
    }

    #[test]
    fn principal_keys_follow_the_arn_kind() {
        for (arn, key) in [
            (
                "arn:aws:iam::123456789012:role/Team/Sub/Admin",
                "arn:aws:iam::123456789012:role/admin",
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/Admin/session",
                "arn:aws:iam::123456789012:role/admin",
            ),
            (
                "arn:aws:iam::123456789012:user/Path/Admin",
                "arn:aws:iam::123456789012:user/path/admin",
            ),
            (
                "ARN:AWS:IAM::123456789012:USER/ALICE",
                "arn:aws:iam::123456789012:user/alice",
            ),
        ] {
            assert_eq!(principal_arn_key(arn).unwrap(), key, "{arn}");
        }
        assert!(principal_arn_key("not an arn").is_err());
        assert_eq!(account_key("012345678901"), "012345678901");
    }
}
