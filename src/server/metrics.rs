//! The webhook's metrics: upstream's `authenticate_latency_seconds{result}`, and ours:
//! the identity cache's hits and misses, and `ready`.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics::latency_histogram;

/// Label value `result` of `authenticate_latency_seconds`: upstream's closed set.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum AuthResult {
    /// `malformed_request`: the request never reached the verifier.
    MalformedRequest,
    /// `invalid_token`: a token refused before or by STS validation.
    InvalidToken,
    /// `sts_error`: STS refused the token or failed.
    StsError,
    /// `sts_throttling`: STS throttled us.
    StsThrottling,
    /// `uknown_user`: no mapping for the identity.
    UnknownUser,
    /// `success`: an accepted token.
    Success,
}

impl AuthResult {
    /// Every value, in [`AuthResult::index`] order.
    pub const ALL: [Self; 6] = [
        Self::MalformedRequest,
        Self::InvalidToken,
        Self::StsError,
        Self::StsThrottling,
        Self::UnknownUser,
        Self::Success,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed_request",
            Self::InvalidToken => "invalid_token",
            Self::StsError => "sts_error",
            Self::StsThrottling => "sts_throttling",
            // upstream: pkg/metrics/metrics.go spells it `uknown_user`; we keep the typo so
            // existing dashboards and alerts keep matching.
            Self::UnknownUser => "uknown_user",
            Self::Success => "success",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl EncodeLabelValue for AuthResult {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Label `result` of `authenticate_latency_seconds`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// What became of the request.
    pub result: AuthResult,
}

type LatencyFamily = Family<ResultLabel, Histogram, fn() -> Histogram>;

/// The `/authenticate` handler's metric handles; cheap to clone. `Default` gives handles
/// registered nowhere.
#[derive(Debug, Clone)]
pub struct WebhookMetrics {
    latency: LatencyFamily,
    /// Each result's histogram, looked up in the family once, on first use (a series
    /// appears when it has a sample, as with upstream's Go client).
    resolved: Arc<[OnceLock<Histogram>; 6]>,
    ready: Gauge,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        Self {
            latency: Family::new_with_constructor(latency_histogram),
            resolved: Arc::default(),
            ready: Gauge::default(),
        }
    }
}

impl WebhookMetrics {
    /// Registers `authenticate_latency_seconds` and `ready` on `registry` (the prefixed
    /// one, see [`crate::metrics::prefixed`]).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "authenticate_latency_seconds",
            "Authenticate call latency",
            m.latency.clone(),
        );
        registry.register(
            "ready",
            "1 once every configured mapping backend has loaded",
            m.ready.clone(),
        );
        m
    }

    /// Records one request's `seconds` under `result`.
    pub fn observe(&self, result: AuthResult, seconds: f64) {
        self.resolved[result.index()]
            .get_or_init(|| self.latency.get_or_create(&ResultLabel { result }).clone())
            .observe(seconds);
    }

    /// Sets `ready`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }
}

/// The identity cache's metric handles; cheap to clone. `Default` gives handles
/// registered nowhere.
#[derive(Debug, Clone, Default)]
pub struct CacheMetrics {
    hits: Counter,
    misses: Counter,
}

impl CacheMetrics {
    /// Registers `token_cache_hits_total` and `token_cache_misses_total` on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "token_cache_hits",
            "TokenReviews answered from the verified-identity cache",
            m.hits.clone(),
        );
        registry.register(
            "token_cache_misses",
            "TokenReviews that needed an STS call",
            m.misses.clone(),
        );
        m
    }

    /// A review answered from the cache.
    pub fn hit(&self) {
        self.hits.inc();
    }

    /// A review that needed the verifier.
    pub fn miss(&self) {
        self.misses.inc();
    }

    /// Hits so far.
    pub fn hits(&self) -> u64 {
        self.hits.get()
    }

    /// Misses so far.
    pub fn misses(&self) -> u64 {
        self.misses.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode, prefixed, registry, sample};

    #[test]
    fn indexes_follow_all() {
        for (i, r) in AuthResult::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }

    #[test]
    fn names_labels_and_exact_values() {
        let mut root = registry();
        let m = WebhookMetrics::register(prefixed(&mut root));
        let c = CacheMetrics::register(prefixed(&mut root));
        m.observe(AuthResult::Success, 0.001);
        m.observe(AuthResult::Success, 0.2);
        m.observe(AuthResult::UnknownUser, 0.001);
        m.set_ready(true);
        c.hit();
        c.miss();
        c.miss();
        let text = encode(&root);
        let exact = |name: &str, labels: &str| sample(&text, name, labels);
        let count = "aws_iam_authenticator_authenticate_latency_seconds_count";
        assert_eq!(exact(count, r#"result="success""#), Some(2.0), "{text}");
        assert_eq!(exact(count, r#"result="uknown_user""#), Some(1.0));
        assert_eq!(
            exact(count, r#"result="sts_error""#),
            None,
            "no sample, no series"
        );
        assert_eq!(
            exact(
                "aws_iam_authenticator_authenticate_latency_seconds_bucket",
                r#"le="0.005",result="success""#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(exact("aws_iam_authenticator_ready", ""), Some(1.0));
        assert_eq!(
            exact("aws_iam_authenticator_token_cache_hits_total", ""),
            Some(1.0)
        );
        assert_eq!(
            exact("aws_iam_authenticator_token_cache_misses_total", ""),
            Some(2.0)
        );
        assert!(text.contains(
            "# HELP aws_iam_authenticator_authenticate_latency_seconds Authenticate call latency.\n"
        ));
    }
}
