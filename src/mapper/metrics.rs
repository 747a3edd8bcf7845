//! The mappers' metrics: upstream's (`configmap_watch_failures_total`,
//! `dynamicfile_failures_total`, `dynamic_e2e_latency_seconds{type}`,
//! `dynamic_file_enabled`, `dynamic_file_only`) and ours (`mapping_reload_failures_total`,
//! `mapping_invalid_entries`, `mapping_invalid_entry`).

use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::config::types::BackendMode;

/// Label value `backend`: a backend mode's name, or `DynamicBackendMode` (the dynamic
/// backend-mode file). Built only from those, so the set is closed.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub struct Backend(&'static str);

impl Backend {
    /// The dynamic backend-mode file.
    pub const DYNAMIC_BACKEND_MODE: Self = Self("DynamicBackendMode");

    /// The label value.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl From<BackendMode> for Backend {
    fn from(mode: BackendMode) -> Self {
        Self(mode.name())
    }
}

impl EncodeLabelValue for Backend {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0, encoder)
    }
}

/// Label value `entry`: a mapping section (`mapRoles`, `server.mapUsers`, …), or one
/// entry of it by position (`mapRoles[1]`). Names a place, never the entry's text.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub struct InvalidEntry {
    /// The section's key.
    pub section: &'static str,
    /// The entry's position (from 0); `None` for the whole section.
    pub index: Option<usize>,
}

impl InvalidEntry {
    /// The whole `section`.
    pub fn section(section: &'static str) -> Self {
        Self {
            section,
            index: None,
        }
    }

    /// Entry `index` of `section`.
    pub fn at(section: &'static str, index: usize) -> Self {
        Self {
            section,
            index: Some(index),
        }
    }
}

impl std::fmt::Display for InvalidEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}[{i}]", self.section),
            None => f.write_str(self.section),
        }
    }
}

impl EncodeLabelValue for InvalidEntry {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        write!(encoder, "{self}")
    }
}

/// Label value `type` of `dynamic_e2e_latency_seconds`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum E2eType {
    /// `dynamic_file`.
    DynamicFile,
    /// `dynamic_backend_mode`.
    DynamicBackendMode,
}

impl EncodeLabelValue for E2eType {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let v = match self {
            Self::DynamicFile => "dynamic_file",
            Self::DynamicBackendMode => "dynamic_backend_mode",
        };
        EncodeLabelValue::encode(&v, encoder)
    }
}

/// Label `backend`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    /// Which backend.
    pub backend: Backend,
}

/// Labels `backend`, `entry` of `mapping_invalid_entry`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EntryLabels {
    /// Which backend.
    pub backend: Backend,
    /// The skipped entry or unreadable section.
    pub entry: InvalidEntry,
}

/// Label `type` of `dynamic_e2e_latency_seconds`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// What changed.
    pub r#type: E2eType,
}

fn dynamic_histogram() -> Histogram {
    Histogram::new([1.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0])
}

/// The mappers' metric handles, shared by the chain and its backends; cheap to clone.
/// `Default` gives handles registered nowhere.
#[derive(Debug, Clone)]
pub struct MapperMetrics {
    configmap_watch_failures: Counter,
    dynamicfile_failures: Counter,
    dynamic_e2e_latency: Family<TypeLabel, Histogram, fn() -> Histogram>,
    dynamic_file_enabled: Gauge,
    dynamic_file_only: Gauge,
    reload_failures: Family<BackendLabel, Counter>,
    invalid_entries: Family<BackendLabel, Gauge>,
    invalid_entry: Family<EntryLabels, Gauge>,
}

impl Default for MapperMetrics {
    fn default() -> Self {
        Self {
            configmap_watch_failures: Counter::default(),
            dynamicfile_failures: Counter::default(),
            dynamic_e2e_latency: Family::new_with_constructor(dynamic_histogram),
            dynamic_file_enabled: Gauge::default(),
            dynamic_file_only: Gauge::default(),
            reload_failures: Family::default(),
            invalid_entries: Family::default(),
            invalid_entry: Family::default(),
        }
    }
}

impl MapperMetrics {
    /// Registers the mappers' metrics on `registry` (the prefixed one, see
    /// [`crate::metrics::prefixed`]).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "configmap_watch_failures",
            "EKS Configmap watch failures",
            m.configmap_watch_failures.clone(),
        );
        registry.register(
            "dynamicfile_failures",
            "Dynamic file failures",
            m.dynamicfile_failures.clone(),
        );
        registry.register(
            "dynamic_e2e_latency_seconds",
            "End to end latency in seconds partitioned by type.",
            m.dynamic_e2e_latency.clone(),
        );
        registry.register(
            "dynamic_file_enabled",
            "Dynamic file in backend mode is enabled",
            m.dynamic_file_enabled.clone(),
        );
        registry.register(
            "dynamic_file_only",
            "Only dynamic file in backend mode is enabled",
            m.dynamic_file_only.clone(),
        );
        registry.register(
            "mapping_reload_failures",
            "A mapping source changed but could not be used; the last good mappings stay in force",
            m.reload_failures.clone(),
        );
        registry.register(
            "mapping_invalid_entries",
            "Entries skipped in the current mapping source",
            m.invalid_entries.clone(),
        );
        registry.register(
            "mapping_invalid_entry",
            "1 for each entry or section of the current mapping source that is not in force",
            m.invalid_entry.clone(),
        );
        m
    }

    /// The aws-auth watch failed (it backs off and retries).
    pub fn configmap_watch_failed(&self) {
        self.configmap_watch_failures.inc();
    }

    /// aws-auth watch failures so far.
    pub fn configmap_watch_failures(&self) -> u64 {
        self.configmap_watch_failures.get()
    }

    /// The dynamic file was rejected.
    pub fn dynamicfile_failed(&self) {
        self.dynamicfile_failures.inc();
    }

    /// A dynamic source took `seconds` from its `LastUpdatedDateTime` to be in force.
    pub fn e2e_latency(&self, r#type: E2eType, seconds: f64) {
        self.dynamic_e2e_latency
            .get_or_create(&TypeLabel { r#type })
            .observe(seconds);
    }

    /// Describes the chain in force: DynamicFile in it, and alone in it.
    pub fn set_dynamic_file(&self, enabled: bool, only: bool) {
        self.dynamic_file_enabled.set(i64::from(enabled));
        self.dynamic_file_only.set(i64::from(only));
    }

    /// `backend`'s source changed but could not be used.
    pub fn reload_failed(&self, backend: Backend) {
        self.reload_failures
            .get_or_create(&BackendLabel { backend })
            .inc();
    }

    /// `backend`'s reload failures so far.
    pub fn reload_failures(&self, backend: Backend) -> u64 {
        self.reload_failures
            .get_or_create(&BackendLabel { backend })
            .get()
    }

    /// The `mapping_invalid_entry`/`mapping_invalid_entries` series of `backend`.
    pub fn invalid_entries(&self, backend: Backend) -> InvalidEntries {
        InvalidEntries {
            metrics: self.clone(),
            backend,
            flagged: Mutex::default(),
        }
    }
}

/// The invalid entries one backend reports for its current source: replaced whole on
/// every new version, so a fixed entry's series disappears.
#[derive(Debug)]
pub struct InvalidEntries {
    metrics: MapperMetrics,
    backend: Backend,
    flagged: Mutex<Vec<EntryLabels>>,
}

impl InvalidEntries {
    /// Replaces the previous version's series by `entries`, and sets
    /// `mapping_invalid_entries` to their number.
    pub fn replace(&self, entries: impl IntoIterator<Item = InvalidEntry>) {
        let family = &self.metrics.invalid_entry;
        let mut flagged = self.flagged.lock().unwrap_or_else(PoisonError::into_inner);
        for old in flagged.drain(..) {
            family.remove(&old);
        }
        for entry in entries {
            let labels = EntryLabels {
                backend: self.backend,
                entry,
            };
            family.get_or_create(&labels).set(1);
            flagged.push(labels);
        }
        self.metrics
            .invalid_entries
            .get_or_create(&BackendLabel {
                backend: self.backend,
            })
            .set(i64::try_from(flagged.len()).unwrap_or(i64::MAX));
    }

    /// Whether `entry` is flagged now.
    pub fn is_flagged(&self, entry: InvalidEntry) -> bool {
        self.flagged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|l| l.entry == entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode, prefixed, registry, sample};

    #[test]
    fn names_labels_and_exact_values() {
        let mut root = registry();
        let m = MapperMetrics::register(prefixed(&mut root));
        let file = m.invalid_entries(BackendMode::MountedFile.into());
        file.replace([
            InvalidEntry::at("server.mapRoles", 1),
            InvalidEntry::section("server.mapUsers"),
        ]);
        m.reload_failed(BackendMode::MountedFile.into());
        m.reload_failed(Backend::DYNAMIC_BACKEND_MODE);
        m.e2e_latency(E2eType::DynamicBackendMode, 2.0);
        m.set_dynamic_file(true, false);
        m.configmap_watch_failed();
        let text = encode(&root);
        let exact = |name: &str, labels: &str| sample(&text, name, labels);
        let entry = "aws_iam_authenticator_mapping_invalid_entry";
        assert_eq!(
            exact(entry, r#"backend="MountedFile",entry="server.mapRoles[1]""#),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            exact(entry, r#"backend="MountedFile",entry="server.mapUsers""#),
            Some(1.0)
        );
        let count = "aws_iam_authenticator_mapping_invalid_entries";
        assert_eq!(exact(count, r#"backend="MountedFile""#), Some(2.0));
        let failures = "aws_iam_authenticator_mapping_reload_failures_total";
        assert_eq!(
            exact(failures, r#"backend="DynamicBackendMode""#),
            Some(1.0)
        );
        assert_eq!(
            exact(
                "aws_iam_authenticator_dynamic_e2e_latency_seconds_count",
                r#"type="dynamic_backend_mode""#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            exact("aws_iam_authenticator_dynamic_file_enabled", ""),
            Some(1.0)
        );
        assert_eq!(
            exact("aws_iam_authenticator_dynamic_file_only", ""),
            Some(0.0)
        );
        let watch = "aws_iam_authenticator_configmap_watch_failures_total";
        assert_eq!(exact(watch, ""), Some(1.0));

        // A new version without problems removes the series and zeroes the count.
        file.replace([]);
        let text = encode(&root);
        assert!(!text.contains("server.mapRoles[1]"), "{text}");
        assert_eq!(sample(&text, count, r#"backend="MountedFile""#), Some(0.0));
    }
}
