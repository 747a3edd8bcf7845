//! Adding a mapping to the cluster's aws-auth (`add`): get → [`add`] → update with the
//! object's `resourceVersion`, from the get again when another writer got there first.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;

use super::{EditError, NAME, NAMESPACE, NewMapping, add};

/// How many times an update is tried when the ConfigMap keeps changing underneath
/// (client-go's `retry.DefaultRetry`: 5 steps, 10 ms apart).
const UPDATE_ATTEMPTS: u32 = 5;

/// Why the mapping was not added. The messages are upstream's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// There is no aws-auth to add to.
    #[error("configmaps {NAME:?} not found")]
    NotFound,
    /// The ConfigMap could not be read.
    #[error("cannot get configmap {NAMESPACE}/{NAME}")]
    Get(#[source] kube::Error),
    /// The mapping cannot be added to what the ConfigMap holds.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// The update was refused (a conflict on the last attempt included).
    #[error("cannot update configmap {NAMESPACE}/{NAME}")]
    Update(#[source] kube::Error),
}

/// Adds `mapping` to `kube-system/aws-auth` and returns the updated ConfigMap. Its
/// metadata is kept.
pub async fn add_to_cluster(
    client: kube::Client,
    mapping: &NewMapping,
) -> Result<ConfigMap, UpdateError> {
    let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut cm = match api.get(NAME).await {
            Ok(cm) => cm,
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                tracing::warn!("not found map {NAME}");
                return Err(UpdateError::NotFound);
            }
            Err(e) => return Err(UpdateError::Get(e)),
        };
        let data = cm.data.take().unwrap_or_default();
        cm.data = Some(add(&data, mapping)?);
        // The object keeps the resourceVersion we read: the API server refuses the
        // update (409) if anyone changed it since.
        match api.replace(NAME, &PostParams::default(), &cm).await {
            Ok(updated) => return Ok(updated),
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < UPDATE_ATTEMPTS => {
                tracing::info!(attempt, "aws-auth changed while we edited it, retrying");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => return Err(UpdateError::Update(e)),
        }
    }
}
