//! Prometheus metrics with upstream's names and labels (namespace `aws_iam_authenticator`),
//! so existing dashboards and alerts keep working.
//!
//! No process-wide registry: the server's composition builds one [`Registry`] with
//! [`registry`], each component registers its own metrics on it at construction and keeps
//! the handles (`sts::StsMetrics`, `server::WebhookMetrics`, `mapper::MapperMetrics`,
//! `ec2::Ec2Metrics`), and `/metrics` encodes it with [`encode`]. A test builds its own
//! registry and asserts exact values on it.
//!
//! Every label value is a closed set (an enum, or a value picked from a fixed table), never
//! text taken from a request or a mapping source, so no input can grow the metrics.

use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;

/// The prefix of every metric but the process ones (upstream's namespace).
pub const PREFIX: &str = "aws_iam_authenticator";

/// Prometheus' default histogram buckets (what Go's client uses for upstream's latency).
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram with [`DEFAULT_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

/// The registry components register on: metrics named under [`PREFIX`]. Collectors
/// that must stay unprefixed (the `process_*` metrics) go on the root `registry` itself.
pub fn prefixed(registry: &mut Registry) -> &mut Registry {
    registry.sub_registry_with_prefix(PREFIX)
}

/// An empty root registry (see [`prefixed`]).
pub fn registry() -> Registry {
    Registry::default()
}

/// The registry's text exposition (OpenMetrics text format, ending in `# EOF`).
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// The value of the sample `name{labels}` in `text` (an exposition), e.g.
/// `sample(&text, "aws_iam_authenticator_ready", "")`; `None` when absent. For tests and
/// tools that read an exposition.
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let series = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str())?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn components_are_prefixed_and_samples_read_back() {
        let mut root = registry();
        let c = Counter::<u64>::default();
        prefixed(&mut root).register("sts_throttling", "Sts call got throttled", c.clone());
        c.inc();
        let text = encode(&root);
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(
            sample(&text, "aws_iam_authenticator_sts_throttling_total", ""),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "aws_iam_authenticator_sts_throttling", ""),
            None
        );
    }
}
