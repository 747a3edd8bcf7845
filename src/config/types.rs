//! Typed values of the upstream configuration: partitions, backend modes, mappings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An AWS partition (`pkg/endpoints/partitions.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partition {
    /// `aws`
    Aws,
    /// `aws-cn`
    AwsCn,
    /// `aws-us-gov`
    AwsUsGov,
    /// `aws-iso`
    AwsIso,
    /// `aws-iso-b`
    AwsIsoB,
    /// `aws-iso-e`
    AwsIsoE,
    /// `aws-iso-f`
    AwsIsoF,
    /// `aws-eusc`
    AwsEusc,
}

impl Partition {
    /// All partitions, in upstream's order.
    pub const ALL: [Partition; 8] = [
        Self::Aws,
        Self::AwsCn,
        Self::AwsUsGov,
        Self::AwsIso,
        Self::AwsIsoB,
        Self::AwsIsoE,
        Self::AwsIsoF,
        Self::AwsEusc,
    ];

    /// The partition's name, e.g. `aws-cn`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::AwsCn => "aws-cn",
            Self::AwsUsGov => "aws-us-gov",
            Self::AwsIso => "aws-iso",
            Self::AwsIsoB => "aws-iso-b",
            Self::AwsIsoE => "aws-iso-e",
            Self::AwsIsoF => "aws-iso-f",
            Self::AwsEusc => "aws-eusc",
        }
    }

    /// The STS DNS suffix, e.g. `amazonaws.com.cn`.
    pub fn domain(self) -> &'static str {
        match self {
            Self::Aws | Self::AwsUsGov => "amazonaws.com",
            Self::AwsCn => "amazonaws.com.cn",
            Self::AwsIso => "c2s.ic.gov",
            Self::AwsIsoB => "sc2s.sgov.gov",
            Self::AwsIsoE => "cloud.adc-e.uk",
            Self::AwsIsoF => "csp.hci.ic.gov",
            Self::AwsEusc => "amazonaws.eu",
        }
    }

    /// The dual-stack DNS suffix, where the partition has one.
    pub fn dual_stack_domain(self) -> Option<&'static str> {
        match self {
            Self::Aws | Self::AwsUsGov => Some("api.aws"),
            Self::AwsCn => Some("api.amazonwebservices.com.cn"),
            Self::AwsEusc => Some("api.amazonwebservices.eu"),
            _ => None,
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Partition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| "invalid partition".to_owned())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_round_trip() {
        for p in Partition::ALL {
            assert_eq!(p.name().parse::<Partition>().unwrap(), p);
        }
        assert_eq!(
            "aws-nk".parse::<Partition>().unwrap_err(),
            "invalid partition"
        );
    }

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
}
