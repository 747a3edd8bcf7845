//! The ordered chain of mapping backends and upstream's mapping algorithm
//! (`doMapping` in `pkg/server/server.go`).
//!
//! For each backend, in `--backend-mode` order:
//! 1. a mapping is found → render the username and groups (render error → deny), check
//!    the backend's reserved username prefixes (match → deny), and answer; no later
//!    backend is asked;
//! 2. a backend error other than "not mapped" is collected;
//! 3. the caller's account is in this backend's `mapAccounts` → the username is the
//!    canonical ARN, no groups. This runs inside the loop, so an account listed in an
//!    earlier backend wins over an explicit mapping in a later one (kept as upstream).
//!
//! Nothing found → deny with the collected errors, or `identity is not mapped`.
//!
//! With `server.dynamicBackendModePath` the chain follows that JSON file
//! (`{"backendMode":"MountedFile DynamicFile",…}`) and is rebuilt when it names other
//! backends; an invalid or empty list is ignored (the current chain stays), and deleting
//! the file returns to `server.backendMode`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use tracing::{info, warn};

use super::configmap::{ConfigMapMapper, Settings as ConfigMapSettings};
use super::crd::CrdMapper;
use super::dynamic_file::{DynamicFileMapper, e2e_latency};
use super::file::{ConfigSource, FileMapper};
use super::metrics::{Backend, E2eType, MapperMetrics};
use super::template;
use super::trace::{Outcome, Trace};
use super::watch::{self, Event, FileWatch};
use super::{IdentityMapping, MapError, Mapper};
use crate::config::file::lowercase_keys;
use crate::config::types::BackendMode;
use crate::config::{ServerConfig, aggregate, validate_backend_modes};
use crate::ec2::{self, Ec2Metrics, PrivateDnsLookup};
use crate::identity::Identity;
use crate::metrics::Registry;

/// Why the chain could not be built. `Display` is upstream's text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A backend could not be created or started.
    #[error("failed to build mapper chain: backend-mode {:?} creation failed: {message}", mode.name())]
    Backend {
        /// The backend.
        mode: BackendMode,
        /// Why.
        message: String,
    },
    /// The EC2 lookup for `{{EC2PrivateDNSName}}` could not be set up.
    #[error("failed to build mapper chain: ec2 provider: {0}")]
    Ec2(ec2::Error),
}

/// A mapped identity: what the TokenReview reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedUser {
    /// The rendered Kubernetes username.
    pub username: String,
    /// The rendered Kubernetes groups (empty for `mapAccounts` matches).
    pub groups: Vec<String>,
}

/// A mapping failure: the caller is denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Denied {
    /// Why, in upstream's words (logged; the deny TokenReview itself carries no text).
    pub reason: String,
}

impl Denied {
    /// Upstream's text when no backend knows the identity.
    pub const NOT_MAPPED: &'static str = "identity is not mapped";

    /// The `result` label of `authenticate_latency_seconds` for every mapping failure
    /// (upstream's spelling, kept so dashboards keep working).
    pub fn metric_label(&self) -> &'static str {
        "uknown_user"
    }
}

type Mappers = Arc<Vec<Arc<dyn Mapper>>>;

/// What rebuilding the chain on a backend-mode change needs.
#[derive(Debug)]
struct Rebuild {
    config: ServerConfig,
    /// The one MountedFile backend: every chain built uses it, so the mappings it
    /// reloaded from the config file survive a backend-mode change.
    mounted: Arc<FileMapper>,
    metrics: MapperMetrics,
}

#[derive(Debug)]
struct Inner {
    /// `None` for a fixed chain.
    rebuild: Option<Rebuild>,
    reserved: BTreeMap<BackendMode, Vec<String>>,
    lookup: Option<Arc<dyn PrivateDnsLookup>>,
    mappers: RwLock<Mappers>,
    /// Follows the dynamic backend-mode file; stopped when the chain goes.
    watcher: std::sync::OnceLock<watch::Task>,
}

/// The backends in order, with the reserved prefixes and the EC2 lookup. Cheap to
/// clone (shared state); lookups never wait for a rebuild.
#[derive(Debug, Clone)]
pub struct Chain {
    inner: Arc<Inner>,
}

/// Creates (and starts) the backends for `modes`.
async fn build_mappers(
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
                    .ok_or_else(|| fail(super::dynamic_file::Error::NoPath.to_string()))?;
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
fn set_gauges(metrics: &MapperMetrics, modes: &[BackendMode]) {
    let enabled = modes.contains(&BackendMode::DynamicFile);
    metrics.set_dynamic_file(enabled, modes == [BackendMode::DynamicFile]);
}

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
fn parse_backend_mode_file(bytes: &[u8]) -> Result<(Vec<BackendMode>, Option<String>), String> {
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

impl Chain {
    /// Builds and starts the backends of `config` (or of the dynamic backend-mode file,
    /// when it exists and is valid), and follows that file if configured. With
    /// `config_file`, the MountedFile mappings follow that file (see
    /// [`FileMapper::follow`]), whether or not MountedFile is in the chain yet. The
    /// mappers' and the EC2 lookup's metrics are registered on `registry` (the prefixed
    /// one, see [`crate::metrics::prefixed`]).
    pub async fn build(
        config: &ServerConfig,
        config_file: Option<ConfigSource>,
        registry: &mut Registry,
    ) -> Result<Chain, Error> {
        let metrics = MapperMetrics::register(registry);
        let ec2_metrics = Ec2Metrics::register(registry);
        let lookup = ec2::from_config(config, ec2_metrics)
            .await
            .map_err(Error::Ec2)?;
        let mounted = Arc::new(
            FileMapper::from_mappings(
                &config.role_mappings,
                &config.user_mappings,
                &config.account_mappings,
                config.feature_gates.sso_role_match,
            )
            .map_err(|e| Error::Backend {
                mode: BackendMode::MountedFile,
                message: e.to_string(),
            })?,
        );
        if let Some(source) = config_file {
            mounted.follow(source, config.clone(), metrics.clone());
        }
        let mut modes = config.backend_modes.clone();
        let mut watch = None;
        if let Some(path) = &config.dynamic_backend_mode_path {
            let mut w = FileWatch::new(path.clone());
            if let Some(Event::Changed(bytes)) = w.check().await {
                match parse_backend_mode_file(&bytes) {
                    Ok((m, _)) => modes = m,
                    Err(e) => warn!(
                        path = %path.display(),
                        error = %e,
                        "dynamic backend mode file ignored; using server.backendMode"
                    ),
                }
            }
            watch = Some(w);
        }
        let mappers = build_mappers(config, &mounted, &modes, &metrics).await?;
        set_gauges(&metrics, &modes);
        let chain = Chain {
            inner: Arc::new(Inner {
                rebuild: Some(Rebuild {
                    config: config.clone(),
                    mounted,
                    metrics,
                }),
                reserved: config.reserved_prefixes.clone(),
                lookup,
                mappers: RwLock::new(mappers),
                watcher: std::sync::OnceLock::new(),
            }),
        };
        if let Some(w) = watch {
            let task = watch::follow(&chain.inner, w, |inner, event| async move {
                inner.backend_mode_file_changed(event).await;
            });
            // A fresh chain: the slot is empty.
            let _ = chain.inner.watcher.set(task);
        }
        Ok(chain)
    }

    /// A fixed chain of ready-made backends (no backend-mode file), for embedding and
    /// tests.
    pub fn from_mappers(
        mappers: Vec<Arc<dyn Mapper>>,
        reserved: BTreeMap<BackendMode, Vec<String>>,
        lookup: Option<Arc<dyn PrivateDnsLookup>>,
    ) -> Chain {
        Chain {
            inner: Arc::new(Inner {
                rebuild: None,
                reserved,
                lookup,
                mappers: RwLock::new(Arc::new(mappers)),
                watcher: std::sync::OnceLock::new(),
            }),
        }
    }

    fn mappers(&self) -> Mappers {
        self.inner.current()
    }

    /// The backends in force, in order.
    pub fn modes(&self) -> Vec<BackendMode> {
        self.mappers().iter().map(|m| m.mode()).collect()
    }

    /// Whether every backend has loaded its source at least once.
    pub fn is_ready(&self) -> bool {
        self.mappers().iter().all(|m| m.is_ready())
    }

    /// Maps `identity` with upstream's algorithm (see the module docs).
    pub async fn map(&self, identity: &Identity) -> Result<MappedUser, Denied> {
        self.map_traced(identity, &mut Trace::off()).await
    }

    /// [`Chain::map`], recording in `trace` what each backend was asked and answered,
    /// the templates rendered and any refusal (`explain`). The decision is the same
    /// code's either way.
    pub async fn map_traced(
        &self,
        identity: &Identity,
        trace: &mut Trace,
    ) -> Result<MappedUser, Denied> {
        let mappers = self.mappers();
        let mut errors = Vec::new();
        for m in mappers.iter() {
            let mode = m.mode();
            let refused = match m.map_traced(identity, trace) {
                Ok(mapping) => return self.answer(mode, &mapping, identity, trace).await,
                Err(MapError::NotMapped) => None,
                Err(e) => {
                    let reason = format!("mapper {} Map error: {e}", mode.name());
                    errors.push(reason.clone());
                    Some(reason)
                }
            };
            if m.is_account_allowed(&identity.account_id) {
                if let Some(r) = refused {
                    trace.note(|| r);
                }
                trace.answered(
                    mode,
                    Outcome::AccountAllowed,
                    Some(&format!(
                        "account {} is in mapAccounts: the username is the caller's ARN, without groups",
                        identity.account_id
                    )),
                );
                return Ok(MappedUser {
                    username: identity.canonical_arn.clone(),
                    groups: Vec::new(),
                });
            }
            match refused {
                Some(r) => trace.answered(mode, Outcome::Refused, Some(&r)),
                None => trace.answered(mode, Outcome::NotMapped, None),
            }
        }
        Err(Denied {
            reason: if errors.is_empty() {
                Denied::NOT_MAPPED.to_owned()
            } else {
                aggregate(&errors)
            },
        })
    }

    /// The answer for a mapping backend `mode` found: templates rendered (an error
    /// denies), then its reserved username prefixes checked (a match denies).
    async fn answer(
        &self,
        mode: BackendMode,
        mapping: &IdentityMapping,
        identity: &Identity,
        trace: &mut Trace,
    ) -> Result<MappedUser, Denied> {
        let name = mode.name();
        let lookup = self.inner.lookup.as_deref();
        let username = render(mode, "username", &mapping.username, identity, lookup, trace).await?;
        let mut groups = Vec::with_capacity(mapping.groups.len());
        for g in &mapping.groups {
            groups.push(render(mode, "group", g, identity, lookup, trace).await?);
        }
        if let Some(prefixes) = self.inner.reserved.get(&mode)
            && prefixes
                .iter()
                .any(|p| !p.is_empty() && username.starts_with(p.as_str()))
        {
            // The doubled "with" is upstream's text, kept so existing log searches and
            // alerts keep matching.
            let reason = format!(
                "invalid username '{username}' for mapper {name}: username must not begin with with the following prefixes: [{}]",
                prefixes.join(" ")
            );
            trace.answered(mode, Outcome::ReservedPrefix, Some(&reason));
            return Err(Denied { reason });
        }
        trace.answered(mode, Outcome::Matched, None);
        Ok(MappedUser { username, groups })
    }
}

/// Renders template `t` of `field` (`username` or `group`); an error denies with
/// upstream's text.
async fn render(
    mode: BackendMode,
    field: &'static str,
    t: &str,
    identity: &Identity,
    lookup: Option<&dyn PrivateDnsLookup>,
    trace: &mut Trace,
) -> Result<String, Denied> {
    match template::render(t, identity, lookup).await {
        Ok(value) => {
            trace.rendered(field, t, &value);
            Ok(value)
        }
        Err(e) => {
            let reason = format!(
                "mapper {} renderTemplates error: error rendering {field} template {t:?}: {e}",
                mode.name()
            );
            trace.answered(mode, Outcome::RenderError, Some(&reason));
            Err(Denied { reason })
        }
    }
}

impl Inner {
    fn current(&self) -> Mappers {
        match self.mappers.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn install(&self, mappers: Mappers) {
        match self.mappers.write() {
            Ok(mut g) => *g = mappers,
            Err(poisoned) => *poisoned.into_inner() = mappers,
        }
    }

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
}

impl Inner {
    /// Follows one change of the dynamic backend-mode file.
    async fn backend_mode_file_changed(&self, event: Event) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::BackendMode::{Crd, DynamicFile, EksConfigMap, MountedFile};
    use crate::mapper::IdentityMapping;

    /// canonical ARN → (username, groups) or a refusal.
    type FakeEntry = (
        &'static str,
        Result<(&'static str, Vec<&'static str>), &'static str>,
    );
    /// name, chain, identity, expected answer.
    type Case = (
        &'static str,
        Vec<Arc<dyn Mapper>>,
        Identity,
        Result<MappedUser, Denied>,
    );

    /// A backend answering from a fixed table.
    #[derive(Debug)]
    struct Fake {
        mode: BackendMode,
        /// canonical ARN → (username, groups) or a refusal.
        entries: Vec<FakeEntry>,
        accounts: Vec<&'static str>,
    }

    impl Mapper for Fake {
        fn mode(&self) -> BackendMode {
            self.mode
        }
        fn map(&self, identity: &Identity) -> Result<IdentityMapping, MapError> {
            match self
                .entries
                .iter()
                .find(|(arn, _)| *arn == identity.canonical_arn)
            {
                Some((arn, Ok((u, g)))) => Ok(IdentityMapping {
                    key: arn.to_string(),
                    username: u.to_string(),
                    groups: g.iter().map(|s| s.to_string()).collect(),
                }),
                Some((_, Err(e))) => Err(MapError::Refused(e.to_string())),
                None => Err(MapError::NotMapped),
            }
        }
        fn is_account_allowed(&self, account: &str) -> bool {
            self.accounts.contains(&account)
        }
    }

    fn fake(
        mode: BackendMode,
        entries: Vec<FakeEntry>,
        accounts: Vec<&'static str>,
    ) -> Arc<dyn Mapper> {
        Arc::new(Fake {
            mode,
            entries,
            accounts,
        })
    }

    const ALICE: &str = "arn:aws:iam::123456789012:role/Alice";
    const BOB: &str = "arn:aws:iam::123456789012:user/Bob";

    fn identity(arn: &str, account: &str) -> Identity {
        Identity {
            arn: arn.into(),
            canonical_arn: arn.into(),
            account_id: account.into(),
            user_id: "AROAEXAMPLE".into(),
            session_name: "alice@example.com".into(),
            access_key_id: "ASIAKEY".into(),
            ..Default::default()
        }
    }

    fn reserved() -> BTreeMap<BackendMode, Vec<String>> {
        let list: Vec<String> = ["aws:", "eks:", "amazon:", "iam:", "system:", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        [(MountedFile, list.clone()), (DynamicFile, list)].into()
    }

    fn ok(u: &str, g: &[&str]) -> Result<MappedUser, Denied> {
        Ok(MappedUser {
            username: u.into(),
            groups: g.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn denied(reason: &str) -> Result<MappedUser, Denied> {
        Err(Denied {
            reason: reason.into(),
        })
    }

    #[tokio::test]
    async fn do_mapping_table() {
        let cases: Vec<Case> = vec![
            (
                "first backend wins",
                vec![
                    fake(
                        MountedFile,
                        vec![(ALICE, Ok(("first", vec!["g1"])))],
                        vec![],
                    ),
                    fake(DynamicFile, vec![(ALICE, Ok(("second", vec![])))], vec![]),
                ],
                identity(ALICE, "123456789012"),
                ok("first", &["g1"]),
            ),
            (
                "order is the configured order",
                vec![
                    fake(DynamicFile, vec![(ALICE, Ok(("second", vec![])))], vec![]),
                    fake(
                        MountedFile,
                        vec![(ALICE, Ok(("first", vec!["g1"])))],
                        vec![],
                    ),
                ],
                identity(ALICE, "123456789012"),
                ok("second", &[]),
            ),
            (
                "later backend is asked when the first does not know the identity",
                vec![
                    fake(MountedFile, vec![], vec![]),
                    fake(DynamicFile, vec![(BOB, Ok(("bob", vec!["devs"])))], vec![]),
                ],
                identity(BOB, "123456789012"),
                ok("bob", &["devs"]),
            ),
            (
                "account in an earlier backend wins over a later explicit mapping",
                vec![
                    fake(MountedFile, vec![], vec!["123456789012"]),
                    fake(DynamicFile, vec![(ALICE, Ok(("alice", vec!["g"])))], vec![]),
                ],
                identity(ALICE, "123456789012"),
                ok(ALICE, &[]),
            ),
            (
                "explicit mapping in the same backend wins over its account",
                vec![fake(
                    MountedFile,
                    vec![(ALICE, Ok(("alice", vec!["g"])))],
                    vec!["123456789012"],
                )],
                identity(ALICE, "123456789012"),
                ok("alice", &["g"]),
            ),
            (
                "account in a later backend",
                vec![
                    fake(MountedFile, vec![], vec![]),
                    fake(DynamicFile, vec![], vec!["123456789012"]),
                ],
                identity(ALICE, "123456789012"),
                ok(ALICE, &[]),
            ),
            (
                "unmapped",
                vec![fake(MountedFile, vec![], vec!["999999999999"])],
                identity(ALICE, "123456789012"),
                denied("identity is not mapped"),
            ),
            (
                "no backends",
                vec![],
                identity(ALICE, "123456789012"),
                denied("identity is not mapped"),
            ),
            (
                "a refusal is collected and the chain goes on",
                vec![
                    fake(
                        DynamicFile,
                        vec![(ALICE, Err("ARN does not match User ID"))],
                        vec![],
                    ),
                    fake(MountedFile, vec![(ALICE, Ok(("alice", vec![])))], vec![]),
                ],
                identity(ALICE, "123456789012"),
                ok("alice", &[]),
            ),
            (
                "a refusal in the same backend does not stop its account fallback",
                vec![fake(
                    DynamicFile,
                    vec![(ALICE, Err("ARN does not match User ID"))],
                    vec!["123456789012"],
                )],
                identity(ALICE, "123456789012"),
                ok(ALICE, &[]),
            ),
            (
                "one refusal",
                vec![fake(
                    DynamicFile,
                    vec![(ALICE, Err("ARN does not match User ID"))],
                    vec![],
                )],
                identity(ALICE, "123456789012"),
                denied("mapper DynamicFile Map error: ARN does not match User ID"),
            ),
            (
                "refusals are aggregated",
                vec![
                    fake(DynamicFile, vec![(ALICE, Err("nope"))], vec![]),
                    fake(Crd, vec![(ALICE, Err("no way"))], vec![]),
                ],
                identity(ALICE, "123456789012"),
                denied("[mapper DynamicFile Map error: nope, mapper CRD Map error: no way]"),
            ),
            (
                "templates are rendered",
                vec![fake(
                    MountedFile,
                    vec![(
                        ALICE,
                        Ok((
                            "u:{{SessionName}}",
                            vec!["{{AccountID}}", "{{SessionNameRaw}}"],
                        )),
                    )],
                    vec![],
                )],
                identity(ALICE, "123456789012"),
                ok(
                    "u:alice-example.com",
                    &["123456789012", "alice@example.com"],
                ),
            ),
            (
                "username render error denies, no fallthrough",
                vec![
                    fake(
                        MountedFile,
                        vec![(ALICE, Ok(("{{EC2PrivateDNSName}}", vec![])))],
                        vec![],
                    ),
                    fake(DynamicFile, vec![(ALICE, Ok(("alice", vec![])))], vec![]),
                ],
                identity(ALICE, "123456789012"),
                denied(
                    "mapper MountedFile renderTemplates error: error rendering username template \"{{EC2PrivateDNSName}}\": SessionName did not contain an instance id",
                ),
            ),
            (
                "group render error denies",
                vec![fake(
                    MountedFile,
                    vec![(ALICE, Ok(("alice", vec!["node:{{EC2PrivateDNSName}}"])))],
                    vec![],
                )],
                identity(ALICE, "123456789012"),
                denied(
                    "mapper MountedFile renderTemplates error: error rendering group template \"node:{{EC2PrivateDNSName}}\": SessionName did not contain an instance id",
                ),
            ),
            (
                "reserved prefix system: denies, no fallthrough",
                vec![
                    fake(
                        MountedFile,
                        vec![(ALICE, Ok(("system:masters", vec![])))],
                        vec![],
                    ),
                    fake(Crd, vec![(ALICE, Ok(("alice", vec![])))], vec![]),
                ],
                identity(ALICE, "123456789012"),
                denied(
                    "invalid username 'system:masters' for mapper MountedFile: username must not begin with with the following prefixes: [aws: eks: amazon: iam: system: ]",
                ),
            ),
            (
                "reserved prefix eks:",
                vec![fake(
                    DynamicFile,
                    vec![(ALICE, Ok(("eks:test", vec![])))],
                    vec![],
                )],
                identity(ALICE, "123456789012"),
                denied(
                    "invalid username 'eks:test' for mapper DynamicFile: username must not begin with with the following prefixes: [aws: eks: amazon: iam: system: ]",
                ),
            ),
            (
                "test is not reserved",
                vec![fake(
                    MountedFile,
                    vec![(ALICE, Ok(("test", vec![])))],
                    vec![],
                )],
                identity(ALICE, "123456789012"),
                ok("test", &[]),
            ),
            (
                "eksb:test is not reserved",
                vec![fake(
                    MountedFile,
                    vec![(ALICE, Ok(("eksb:test", vec![])))],
                    vec![],
                )],
                identity(ALICE, "123456789012"),
                ok("eksb:test", &[]),
            ),
            (
                "prefixes apply per backend",
                vec![fake(
                    EksConfigMap,
                    vec![(ALICE, Ok(("system:masters", vec![])))],
                    vec![],
                )],
                identity(ALICE, "123456789012"),
                ok("system:masters", &[]),
            ),
            (
                "prefixes are checked on the rendered username",
                vec![fake(
                    MountedFile,
                    vec![(ALICE, Ok(("{{AccountID}}", vec![])))],
                    vec![],
                )],
                identity(ALICE, "system:x"),
                denied(
                    "invalid username 'system:x' for mapper MountedFile: username must not begin with with the following prefixes: [aws: eks: amazon: iam: system: ]",
                ),
            ),
            (
                "account fallback skips the reserved-prefix check",
                vec![fake(MountedFile, vec![], vec!["123456789012"])],
                identity("system:odd", "123456789012"),
                ok("system:odd", &[]),
            ),
        ];
        for (name, mappers, id, want) in cases {
            let chain = Chain::from_mappers(mappers, reserved(), None);
            assert_eq!(chain.map(&id).await, want, "{name}");
            let mut trace = Trace::on();
            assert_eq!(chain.map_traced(&id, &mut trace).await, want, "{name}");
            // Every backend asked has one record, the last one saying how it ended.
            let last = trace.backends().last().map(|b| b.outcome);
            match &want {
                Ok(_) => assert!(
                    matches!(last, Some(Outcome::Matched | Outcome::AccountAllowed)),
                    "{name}"
                ),
                Err(d) => assert!(
                    last.is_none()
                        || d.reason.contains(
                            trace
                                .backends()
                                .last()
                                .map_or("", |b| b.reason.as_deref().unwrap_or(""))
                        ),
                    "{name}"
                ),
            }
        }
    }

    #[tokio::test]
    async fn trace_records_each_backend_and_the_templates() {
        let chain = Chain::from_mappers(
            vec![
                fake(
                    DynamicFile,
                    vec![(ALICE, Err("ARN does not match User ID"))],
                    vec![],
                ),
                fake(Crd, vec![], vec![]),
                fake(
                    MountedFile,
                    vec![(ALICE, Ok(("u:{{SessionName}}", vec!["{{AccountID}}"])))],
                    vec![],
                ),
            ],
            reserved(),
            None,
        );
        let mut trace = Trace::on();
        let got = chain
            .map_traced(&identity(ALICE, "123456789012"), &mut trace)
            .await;
        assert_eq!(got, ok("u:alice-example.com", &["123456789012"]));
        let b = trace.into_backends();
        let outcomes: Vec<_> = b.iter().map(|b| (b.backend, b.outcome)).collect();
        assert_eq!(
            outcomes,
            [
                ("DynamicFile", Outcome::Refused),
                ("CRD", Outcome::NotMapped),
                ("MountedFile", Outcome::Matched)
            ]
        );
        assert_eq!(
            b[0].reason.as_deref(),
            Some("mapper DynamicFile Map error: ARN does not match User ID")
        );
        let rendered: Vec<_> = b[2]
            .rendered
            .iter()
            .map(|r| (r.field, r.template.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(
            rendered,
            [
                ("username", "u:{{SessionName}}", "u:alice-example.com"),
                ("group", "{{AccountID}}", "123456789012")
            ]
        );
    }

    #[test]
    fn denied_metric_label_is_upstreams() {
        let d = Denied { reason: "x".into() };
        assert_eq!(d.metric_label(), "uknown_user");
        assert_eq!(d.to_string(), "x");
    }

    #[test]
    fn backend_mode_file() {
        let (modes, last) = parse_backend_mode_file(
            br#"{"BackendMode":"MountedFile DynamicFile","LastUpdatedDateTime":"1"}"#,
        )
        .unwrap();
        assert_eq!(modes, [MountedFile, DynamicFile]);
        assert_eq!(last.as_deref(), Some("1"));
        assert!(parse_backend_mode_file(br#"{"backendMode":""}"#).is_err());
        assert!(parse_backend_mode_file(br#"{"backendMode":"Nope"}"#).is_err());
        assert!(parse_backend_mode_file(br#"{"backendMode":"CRD CRD"}"#).is_err());
        assert!(parse_backend_mode_file(b"{").is_err());
    }

    #[test]
    fn build_error_text() {
        let e = Error::Backend {
            mode: EksConfigMap,
            message: "boom".into(),
        };
        assert_eq!(
            e.to_string(),
            "failed to build mapper chain: backend-mode \"EKSConfigMap\" creation failed: boom"
        );
        let e = Error::Ec2(ec2::Error::RoleArn("nope".into()));
        assert_eq!(
            e.to_string(),
            "failed to build mapper chain: ec2 provider: describeinstancesrole nope is not a valid arn"
        );
        assert!(matches!(e, Error::Ec2(ec2::Error::RoleArn(_))));
    }
}
