//! The STS client's metrics, with upstream's names and labels: `sts_responses_total`,
//! `sts_throttling_total`, `sts_connection_failures_total`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::aws::endpoints::metric_region;

/// Label value `StsRegion`: `global`, a known region, or `other`. Built only through
/// [`StsRegion::of`], so a token's host can never add a value.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub struct StsRegion(&'static str);

impl StsRegion {
    /// The label of the host's region label `region` ([`metric_region`]).
    pub fn of(region: &str) -> Self {
        Self(metric_region(region))
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl EncodeLabelValue for StsRegion {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0, encoder)
    }
}

/// Label value `ResponseCode`: an HTTP status with a registered meaning (a closed set),
/// else `other`.
///
/// upstream: pkg/token/token.go labels with whatever status code came back; we keep the
/// label to the registered codes, so an answer cannot add series (STS only sends those).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ResponseCode {
    /// A status `http` knows a reason phrase for.
    Known(u16),
    /// Any other status.
    Other,
}

impl ResponseCode {
    /// The label for `status`.
    pub fn of(status: u16) -> Self {
        match http::StatusCode::from_u16(status) {
            Ok(s) if s.canonical_reason().is_some() => Self::Known(status),
            _ => Self::Other,
        }
    }
}

impl EncodeLabelValue for ResponseCode {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        match self {
            Self::Known(code) => EncodeLabelValue::encode(&u32::from(*code), encoder),
            Self::Other => EncodeLabelValue::encode(&"other", encoder),
        }
    }
}

/// Label `StsRegion` (upstream's spelling, hence the field name).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
#[allow(non_snake_case)]
pub struct RegionLabel {
    /// The STS host's region.
    pub StsRegion: StsRegion,
}

/// Labels `ResponseCode`, `StsRegion` (upstream's spelling, hence the field names).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
#[allow(non_snake_case)]
pub struct ResponseLabels {
    /// The HTTP status STS answered.
    pub ResponseCode: ResponseCode,
    /// The STS host's region.
    pub StsRegion: StsRegion,
}

/// The STS client's metric handles; cheap to clone (the families are shared).
/// `Default` gives handles registered nowhere (a client whose answers nobody scrapes,
/// such as the `verify` command's).
#[derive(Debug, Clone, Default)]
pub struct StsMetrics {
    connection_failures: Family<RegionLabel, Counter>,
    responses: Family<ResponseLabels, Counter>,
    throttling: Family<RegionLabel, Counter>,
}

impl StsMetrics {
    /// Registers the STS metrics on `registry` (the prefixed one, see
    /// [`crate::metrics::prefixed`]).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "sts_connection_failures",
            "Sts call could not succeed or timedout",
            m.connection_failures.clone(),
        );
        registry.register(
            "sts_responses",
            "Sts responses with error code label",
            m.responses.clone(),
        );
        registry.register(
            "sts_throttling",
            "Sts call got throttled",
            m.throttling.clone(),
        );
        m
    }

    /// STS could not be reached or did not answer in time.
    pub fn connection_failed(&self, region: StsRegion) {
        self.connection_failures
            .get_or_create(&RegionLabel { StsRegion: region })
            .inc();
    }

    /// STS answered `status`.
    pub fn responded(&self, status: u16, region: StsRegion) {
        self.responses
            .get_or_create(&ResponseLabels {
                ResponseCode: ResponseCode::of(status),
                StsRegion: region,
            })
            .inc();
    }

    /// STS throttled the call.
    pub fn throttled(&self, region: StsRegion) {
        self.throttling
            .get_or_create(&RegionLabel { StsRegion: region })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode, prefixed, registry, sample};

    #[test]
    fn names_labels_and_exact_values() {
        let mut root = registry();
        let m = StsMetrics::register(prefixed(&mut root));
        let west = StsRegion::of("us-west-2");
        m.responded(200, west);
        m.responded(200, west);
        m.responded(799, StsRegion::of("us-east-99"));
        m.throttled(StsRegion::of("global"));
        m.connection_failed(west);
        let text = encode(&root);
        let exact = |name: &str, labels: &str| sample(&text, name, labels);
        assert_eq!(
            exact(
                "aws_iam_authenticator_sts_responses_total",
                r#"ResponseCode="200",StsRegion="us-west-2""#
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            exact(
                "aws_iam_authenticator_sts_responses_total",
                r#"ResponseCode="other",StsRegion="other""#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            exact(
                "aws_iam_authenticator_sts_throttling_total",
                r#"StsRegion="global""#
            ),
            Some(1.0)
        );
        assert_eq!(
            exact(
                "aws_iam_authenticator_sts_connection_failures_total",
                r#"StsRegion="us-west-2""#
            ),
            Some(1.0)
        );
        assert!(text.contains(
            "# HELP aws_iam_authenticator_sts_responses Sts responses with error code label.\n"
        ));
    }

    #[test]
    fn response_codes_are_a_closed_set() {
        assert_eq!(ResponseCode::of(403), ResponseCode::Known(403));
        assert_eq!(ResponseCode::of(503), ResponseCode::Known(503));
        for odd in [0, 99, 299, 600, 999, u16::MAX] {
            assert_eq!(ResponseCode::of(odd), ResponseCode::Other, "{odd}");
        }
    }
}
