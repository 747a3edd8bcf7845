//! The `IAMIdentityMapping` custom resource (`deploy/iamidentitymapping.yaml` is its
//! manifest) and the names our Events about it carry.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Serialize};

/// The CRD's API group.
pub const GROUP: &str = "iamauthenticator.k8s.aws";
/// The CRD's version.
pub const VERSION: &str = "v1alpha1";
/// The CRD's kind.
pub const KIND: &str = "IAMIdentityMapping";
/// The CRD's plural resource name.
pub const PLURAL: &str = "iamidentitymappings";
/// The component named in the Events we emit.
pub const COMPONENT: &str = "aws-iam-authenticator";
/// The Event reason after a status write.
pub const SYNCED_REASON: &str = "Synced";
/// The Event message after a status write.
pub const SYNCED_MESSAGE: &str = "Identity synced successfully";

/// An `IAMIdentityMapping` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IamIdentityMapping {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to map.
    pub spec: IamIdentityMappingSpec,
    /// What the authenticator made of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<IamIdentityMappingStatus>,
}

/// `spec` of an [`IamIdentityMapping`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamIdentityMappingSpec {
    /// The IAM user or role ARN (required).
    pub arn: String,
    /// The Kubernetes username template (required).
    pub username: String,
    /// The Kubernetes group templates.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `status` of an [`IamIdentityMapping`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamIdentityMappingStatus {
    /// The lower-cased canonical ARN the mapping is found under.
    #[serde(
        rename = "canonicalARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub canonical_arn: Option<String>,
    /// The principal's unique id (declared upstream, never set).
    #[serde(rename = "userID", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl Resource for IamIdentityMapping {
    type DynamicType = ();
    type Scope = k8s_openapi::ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(KIND)
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(GROUP)
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(VERSION)
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(PLURAL)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_path_is_cluster_scoped() {
        assert_eq!(
            IamIdentityMapping::url_path(&(), None),
            "/apis/iamauthenticator.k8s.aws/v1alpha1/iamidentitymappings"
        );
    }
}
