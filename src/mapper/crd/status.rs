//! Writing `IAMIdentityMapping` status (through the status subresource) and the
//! `Synced` Event after it, as upstream's controller does.

use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::sync::mpsc;

use super::types::{
    COMPONENT, GROUP, IamIdentityMapping, KIND, SYNCED_MESSAGE, SYNCED_REASON, VERSION,
};

/// A status write to do.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StatusJob {
    /// The object's name.
    pub(super) name: String,
    /// The merge patch of the status subresource.
    pub(super) patch: serde_json::Value,
    /// Whether this records the canonical ARN (followed by the `Synced` Event).
    pub(super) synced: bool,
}

/// Writes `status.canonicalARN` and emits the `Synced` Event, one object at a time.
pub(super) async fn write_statuses(
    client: kube::Client,
    mut jobs: mpsc::UnboundedReceiver<StatusJob>,
) {
    let api: Api<IamIdentityMapping> = Api::all(client.clone());
    while let Some(StatusJob {
        name,
        patch,
        synced,
    }) = jobs.recv().await
    {
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) if synced => {
                tracing::info!(name = %name, status = %patch["status"], "IAMIdentityMapping synced");
                if let Err(e) = emit_synced(&client, &updated).await {
                    tracing::warn!(name = %name, error = %e, "cannot record the Synced event");
                }
            }
            Ok(_) => {
                tracing::info!(name = %name, status = %patch["status"], "IAMIdentityMapping status updated");
            }
            Err(e) => {
                tracing::warn!(name = %name, error = %e, "cannot write IAMIdentityMapping status");
            }
        }
    }
}

/// Creates the core/v1 Event upstream's recorder creates after a status write. Events
/// about cluster-scoped objects go to the `default` namespace, as client-go's do.
async fn emit_synced(client: &kube::Client, obj: &IamIdentityMapping) -> Result<(), String> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    let event = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{name}.{:x}", now.unix_timestamp_nanos()),
            "namespace": "default",
        },
        "involvedObject": {
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": KIND,
            "name": name,
            "uid": obj.metadata.uid,
            "resourceVersion": obj.metadata.resource_version,
        },
        "reason": SYNCED_REASON,
        "message": SYNCED_MESSAGE,
        "type": "Normal",
        "source": { "component": COMPONENT },
        "reportingComponent": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    });
    let request = http::Request::post("/api/v1/namespaces/default/events")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(event.to_string().into_bytes())
        .map_err(|e| e.to_string())?;
    client
        .request::<serde_json::Value>(request)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
