//! Prometheus metrics with upstream's names and labels (namespace `aws_iam_authenticator`),
//! so existing dashboards and alerts keep working.
//!
//! One process-wide registry ([`global`]): the webhook, the STS client and the mappers all
//! count into it, and `/metrics` encodes it.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Prometheus' default histogram buckets (what Go's client uses for upstream's latency).
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Label `result` of `authenticate_latency_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `success`, `malformed_request`, `invalid_token`, `sts_error`, `sts_throttling`, `uknown_user`.
    pub result: String,
}

/// Label `StsRegion` (upstream's spelling, hence the field name).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
#[allow(non_snake_case)]
pub struct RegionLabel {
    /// `global`, a known region, or `other` ([`crate::aws::endpoints::metric_region`]).
    pub StsRegion: String,
}

/// Labels `ResponseCode`, `StsRegion` (upstream's spelling, hence the field names).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
#[allow(non_snake_case)]
pub struct ResponseLabels {
    /// The HTTP status STS answered.
    pub ResponseCode: String,
    /// `global`, a known region, or `other` ([`crate::aws::endpoints::metric_region`]).
    pub StsRegion: String,
}

/// Label `type` of `dynamic_e2e_latency_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// `dynamic_file` or `dynamic_backend_mode`.
    pub r#type: String,
}

/// Label `backend` of our own mapping-reload metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    /// The backend mode name, e.g. `DynamicFile`.
    pub backend: String,
}

/// Labels `backend`, `entry` of `mapping_invalid_entry`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EntryLabels {
    /// The backend mode name, e.g. `EKSConfigMap`.
    pub backend: String,
    /// The skipped entry or unreadable section, e.g. `mapRoles[1]` or `mapUsers`.
    pub entry: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

fn dynamic_histogram() -> Histogram {
    Histogram::new([1.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0])
}

/// Every metric the process exports.
#[derive(Debug)]
pub struct Metrics {
    /// `authenticate_latency_seconds{result}`.
    pub authenticate_latency: Family<ResultLabel, Histogram, fn() -> Histogram>,
    /// `sts_connection_failures_total{StsRegion}`.
    pub sts_connection_failures: Family<RegionLabel, Counter>,
    /// `sts_responses_total{ResponseCode,StsRegion}`.
    pub sts_responses: Family<ResponseLabels, Counter>,
    /// `sts_throttling_total{StsRegion}`.
    pub sts_throttling: Family<RegionLabel, Counter>,
    /// `configmap_watch_failures_total`.
    pub configmap_watch_failures: Counter,
    /// `dynamicfile_failures_total`.
    pub dynamicfile_failures: Counter,
    /// `ec2_describe_instances_calls_total`.
    pub ec2_describe_instances_calls: Counter,
    /// `dynamic_e2e_latency_seconds{type}`.
    pub dynamic_e2e_latency: Family<TypeLabel, Histogram, fn() -> Histogram>,
    /// `dynamic_file_enabled`.
    pub dynamic_file_enabled: Gauge,
    /// `dynamic_file_only`.
    pub dynamic_file_only: Gauge,
    /// Ours: `mapping_reload_failures_total{backend}`: a mapping source changed but could
    /// not be used; the last good mappings stay in force.
    pub mapping_reload_failures: Family<BackendLabel, Counter>,
    /// Ours: `mapping_invalid_entries{backend}`: entries skipped in the current source.
    pub mapping_invalid_entries: Family<BackendLabel, Gauge>,
    /// Ours: `mapping_invalid_entry{backend,entry}`: 1 for each entry (or whole section)
    /// of the current source that is not in force, so an alert can name it.
    pub mapping_invalid_entry: Family<EntryLabels, Gauge>,
    /// Ours: `token_cache_hits_total`: reviews answered from the verified-identity cache.
    pub token_cache_hits: Counter,
    /// Ours: `token_cache_misses_total`: reviews that needed an STS call.
    pub token_cache_misses: Counter,
    /// Ours: `ready`: 1 once every configured backend has loaded.
    pub ready: Gauge,
    registry: Registry,
}

impl Metrics {
    fn new() -> Self {
        let m = Self {
            authenticate_latency: Family::new_with_constructor(latency_histogram),
            sts_connection_failures: Family::default(),
            sts_responses: Family::default(),
            sts_throttling: Family::default(),
            configmap_watch_failures: Counter::default(),
            dynamicfile_failures: Counter::default(),
            ec2_describe_instances_calls: Counter::default(),
            dynamic_e2e_latency: Family::new_with_constructor(dynamic_histogram),
            dynamic_file_enabled: Gauge::default(),
            dynamic_file_only: Gauge::default(),
            mapping_reload_failures: Family::default(),
            mapping_invalid_entries: Family::default(),
            mapping_invalid_entry: Family::default(),
            token_cache_hits: Counter::default(),
            token_cache_misses: Counter::default(),
            ready: Gauge::default(),
            registry: Registry::with_prefix("aws_iam_authenticator"),
        };
        let mut r = Registry::with_prefix("aws_iam_authenticator");
        r.register(
            "authenticate_latency_seconds",
            "Authenticate call latency",
            m.authenticate_latency.clone(),
        );
        r.register(
            "sts_connection_failures",
            "Sts call could not succeed or timedout",
            m.sts_connection_failures.clone(),
        );
        r.register(
            "sts_responses",
            "Sts responses with error code label",
            m.sts_responses.clone(),
        );
        r.register(
            "sts_throttling",
            "Sts call got throttled",
            m.sts_throttling.clone(),
        );
        r.register(
            "configmap_watch_failures",
            "EKS Configmap watch failures",
            m.configmap_watch_failures.clone(),
        );
        r.register(
            "dynamicfile_failures",
            "Dynamic file failures",
            m.dynamicfile_failures.clone(),
        );
        r.register(
            "ec2_describe_instances_calls",
            "Number of EC2 describe instances calls.",
            m.ec2_describe_instances_calls.clone(),
        );
        r.register(
            "dynamic_e2e_latency_seconds",
            "End to end latency in seconds partitioned by type.",
            m.dynamic_e2e_latency.clone(),
        );
        r.register(
            "dynamic_file_enabled",
            "Dynamic file in backend mode is enabled",
            m.dynamic_file_enabled.clone(),
        );
        r.register(
            "dynamic_file_only",
            "Only dynamic file in backend mode is enabled",
            m.dynamic_file_only.clone(),
        );
        r.register(
            "mapping_reload_failures",
            "A mapping source changed but could not be used; the last good mappings stay in force",
            m.mapping_reload_failures.clone(),
        );
        r.register(
            "mapping_invalid_entries",
            "Entries skipped in the current mapping source",
            m.mapping_invalid_entries.clone(),
        );
        r.register(
            "mapping_invalid_entry",
            "1 for each entry or section of the current mapping source that is not in force",
            m.mapping_invalid_entry.clone(),
        );
        r.register(
            "token_cache_hits",
            "TokenReviews answered from the verified-identity cache",
            m.token_cache_hits.clone(),
        );
        r.register(
            "token_cache_misses",
            "TokenReviews that needed an STS call",
            m.token_cache_misses.clone(),
        );
        r.register(
            "ready",
            "1 once every configured mapping backend has loaded",
            m.ready.clone(),
        );
        Self { registry: r, ..m }
    }

    /// The registry, for extra collectors (process metrics) and for encoding.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry's text exposition (OpenMetrics text format).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_upstreams() {
        let m = global();
        m.sts_responses
            .get_or_create(&ResponseLabels {
                ResponseCode: "200".into(),
                StsRegion: "us-west-2".into(),
            })
            .inc();
        m.authenticate_latency
            .get_or_create(&ResultLabel {
                result: "success".into(),
            })
            .observe(0.01);
        let text = m.encode();
        assert!(
            text.contains(
                "aws_iam_authenticator_sts_responses_total{ResponseCode=\"200\",StsRegion=\"us-west-2\"}"
            ),
            "{text}"
        );
        assert!(text.contains("aws_iam_authenticator_authenticate_latency_seconds_bucket"));
        assert!(text.contains("aws_iam_authenticator_dynamic_file_enabled"));
    }
}
