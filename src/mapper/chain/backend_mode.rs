//! The dynamic backend-mode file (`server.dynamicBackendModePath`): parsed, followed,
//! and the chain rebuilt when it names other backends.

use serde::Deserialize;
use tracing::{info, warn};

use super::build::{build_mappers, set_gauges};
use super::{Inner, Rebuild};
use crate::config::file::lowercase_keys;
use crate::config::types::BackendMode;
use crate::config::validate_backend_modes;
use crate::mapper::dynamic_file::e2e_latency;
use crate::mapper::metrics::{Backend, E2eType};
use crate::mapper::watch::Event;

/// The dynamic backend-mode file, keys lower-cased.
#[derive(Debug, Deserialize)]
struct BackendModeFile {
    #[serde(default)]
    backendmode: String,
    #[serde(default)]
    lastupdateddatetime: Option<serde_json::Value>,
}

/// Parses the dynamic backend-mode file into valid modes (non-empty, known, distinct)
/// and its `LastUpdatedDateTime`.
pub(super) fn parse_backend_mode_file(
    bytes: &[u8],
) -> Result<(Vec<BackendMode>, Option<String>), String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let file: BackendModeFile =
        serde_json::from_value(lowercase_keys(value)).map_err(|e| e.to_string())?;
    let names: Vec<String> = file
        .backendmode
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    // upstream: pkg/server/server.go skips the duplicate check on this path; we apply the
    // same validation as --backend-mode.
    let (modes, _) = validate_backend_modes(&names).map_err(|e| e.to_string())?;
    let last = file.lastupdateddatetime.and_then(|v| match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    Ok((modes, last))
}

impl Inner {
    /// Rebuilds the chain for `modes` unless it already is that chain. A failure keeps
    /// the current chain.
    async fn switch_to(&self, modes: Vec<BackendMode>, last_updated: Option<String>) {
        let Some(Rebuild {
            config,
            mounted,
            metrics,
        }) = &self.rebuild
        else {
            return;
        };
        let current: Vec<BackendMode> = self.current().iter().map(|m| m.mode()).collect();
        if current == modes {
            return;
        }
        let names = |ms: &[BackendMode]| ms.iter().map(|m| m.name()).collect::<Vec<_>>().join(" ");
        match build_mappers(config, mounted, &modes, metrics).await {
            Ok(mappers) => {
                self.install(mappers);
                set_gauges(metrics, &modes);
                info!(from = %names(&current), to = %names(&modes), "backend modes changed; mapper chain rebuilt");
                if let Some(latency) = last_updated.as_deref().and_then(e2e_latency) {
                    metrics.e2e_latency(E2eType::DynamicBackendMode, latency);
                }
            }
            Err(e) => {
                warn!(error = %e, to = %names(&modes), "could not switch backend modes; the current chain stays");
                metrics.reload_failed(Backend::DYNAMIC_BACKEND_MODE);
            }
        }
    }

    /// Follows one change of the dynamic backend-mode file.
    pub(super) async fn backend_mode_file_changed(&self, event: Event) {
        let Some(rebuild) = &self.rebuild else { return };
        match event {
            Event::Changed(bytes) => match parse_backend_mode_file(&bytes) {
                Ok((modes, last)) => self.switch_to(modes, last).await,
                Err(e) => {
                    warn!(error = %e, "dynamic backend mode file rejected; the current chain stays");
                    rebuild.metrics.reload_failed(Backend::DYNAMIC_BACKEND_MODE);
                }
            },
            Event::Deleted => {
                info!("dynamic backend mode file deleted; returning to server.backendMode");
                let modes = rebuild.config.backend_modes.clone();
                self.switch_to(modes, None).await;
            }
            Event::Unreadable(e) => {
                warn!(error = %e, "dynamic backend mode file unreadable; the current chain stays");
                rebuild.metrics.reload_failed(Backend::DYNAMIC_BACKEND_MODE);
            }
        }
    }
}
