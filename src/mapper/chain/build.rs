//! Creating the backends of a chain: one Kubernetes client shared by the EKSConfigMap
//! and CRD backends, and the gauges that describe the chain in force.

use std::sync::Arc;

use tracing::info;

use super::{Error, Mappers, ServerConfig};
use crate::config::types::BackendMode;
use crate::mapper::Mapper;
use crate::mapper::configmap::{ConfigMapMapper, Settings as ConfigMapSettings};
use crate::mapper::crd::CrdMapper;
use crate::mapper::dynamic_file::DynamicFileMapper;
use crate::mapper::file::FileMapper;
use crate::mapper::metrics::MapperMetrics;

/// Creates (and starts) the backends for `modes`.
pub(super) async fn build_mappers(
    config: &ServerConfig,
    mounted: &Arc<FileMapper>,
    modes: &[BackendMode],
    metrics: &MapperMetrics,
) -> Result<Mappers, Error> {
    let mut out: Vec<Arc<dyn Mapper>> = Vec::with_capacity(modes.len());
    let mut client = None;
    for &mode in modes {
        info!(mapper = mode.name(), "starting mapper {:?}", mode.name());
        let fail = |message: String| Error::Backend { mode, message };
        let mapper: Arc<dyn Mapper> = match mode {
            BackendMode::MountedFile => Arc::clone(mounted) as Arc<dyn Mapper>,
            BackendMode::DynamicFile => {
                let path = config
                    .dynamic_file_path
                    .clone()
                    .ok_or_else(|| fail(crate::mapper::dynamic_file::Error::NoPath.to_string()))?;
                let strict = config.dynamic_file_user_id_strict;
                DynamicFileMapper::start_at(path, strict, metrics.clone()).await
            }
            BackendMode::EksConfigMap => {
                let settings = ConfigMapSettings {
                    sso_role_match: config.feature_gates.sso_role_match,
                };
                let client = kube_client(&mut client, config).await.map_err(fail)?;
                Arc::new(ConfigMapMapper::spawn_with(
                    client,
                    settings,
                    metrics.clone(),
                ))
            }
            BackendMode::Crd => {
                let client = kube_client(&mut client, config).await.map_err(fail)?;
                Arc::new(CrdMapper::spawn(client))
            }
        };
        out.push(mapper);
    }
    Ok(Arc::new(out))
}

/// The Kubernetes client of `--kubeconfig`/`--master`, created once per chain and
/// shared by the EKSConfigMap and CRD backends (one connection pool, one token
/// refresher).
async fn kube_client(
    slot: &mut Option<kube::Client>,
    config: &ServerConfig,
) -> Result<kube::Client, String> {
    if let Some(client) = slot {
        return Ok(client.clone());
    }
    let options =
        crate::k8s::ClientOptions::new(config.kubeconfig.as_deref(), config.master.as_deref());
    let client = crate::k8s::client(&options)
        .await
        .map_err(|e| e.to_string())?;
    *slot = Some(client.clone());
    Ok(client)
}

/// Sets `dynamic_file_enabled` and `dynamic_file_only` for the chain `modes`.
// upstream: pkg/server/server.go sets these gauges to 1 and never back to 0; we set
// both on every (re)build, so they describe the chain in force.
pub(super) fn set_gauges(metrics: &MapperMetrics, modes: &[BackendMode]) {
    let enabled = modes.contains(&BackendMode::DynamicFile);
    metrics.set_dynamic_file(enabled, modes == [BackendMode::DynamicFile]);
}
