//! STS endpoints (pure): the host a token is presigned for, and the hosts a server of a
//! partition accepts.
//!
//! A token is a URL the server will GET, so the host check is what stops a token from
//! sending the server (with our cluster id header) anywhere but a real STS endpoint of
//! the server's partition. The hosts it accepts for a region are exactly the hosts
//! [`sts_host`] gives for that region, so whatever `token` mints, a server of the same
//! partition accepts.

use crate::go::strconv::quote;

use super::partition::{Partition, is_region_name, known_partition, region_partition};

/// The global STS endpoint (only in the `aws` partition).
pub const GLOBAL_HOST: &str = "sts.amazonaws.com";

/// The region name that selects STS's global endpoint.
pub const GLOBAL_REGION: &str = "aws-global";

/// The region SigV4 signs for: STS's global endpoint signs as `us-east-1` (as the AWS
/// SDKs' endpoint rules say), every other region as itself.
pub fn signing_region(region: &str) -> &str {
    if region == GLOBAL_REGION {
        "us-east-1"
    } else {
        region
    }
}

/// The STS host a token for `region` is presigned against, following the AWS SDK v2
/// endpoint rules upstream uses: always the regional endpoint (`sts.<region>.<domain>`),
/// `aws-global` → `sts.amazonaws.com`, FIPS → `sts-fips.…` (GovCloud's regional endpoints
/// are FIPS already), dual-stack → the partition's dual-stack domain.
pub fn sts_host(region: &str, use_fips: bool, use_dual_stack: bool) -> String {
    if region == GLOBAL_REGION && !use_fips && !use_dual_stack {
        return GLOBAL_HOST.to_owned();
    }
    let region = signing_region(region);
    let partition = region_partition(region);
    // A partition without dual-stack endpoints keeps its IPv4 domain (the SDK would fail
    // instead; a working token is more useful than an error here).
    let domain = match (use_dual_stack, partition.dual_stack_domain()) {
        (true, Some(d)) => d,
        _ => partition.domain(),
    };
    // The SDK's STS rules send FIPS in aws-us-gov to the regular regional host: those
    // are FIPS endpoints already.
    let gov_ipv4 = partition == Partition::AwsUsGov && !use_dual_stack;
    let service = if use_fips && !gov_ipv4 {
        "sts-fips"
    } else {
        "sts"
    };
    format!("{service}.{region}.{domain}")
}

/// The hosts [`sts_host`] gives for `region` with every combination of FIPS and
/// dual-stack (upstream asks the SDK's resolver for the same four).
pub fn resolved_hosts(region: &str) -> Vec<String> {
    let mut hosts = Vec::with_capacity(4);
    for (fips, dual) in [(false, false), (true, false), (false, true), (true, true)] {
        let h = sts_host(region, fips, dual);
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    hosts
}

/// Why a host has no region label (upstream's texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// The host is empty.
    #[error("host is empty")]
    Empty,
    /// Fewer than three DNS labels.
    #[error("invalid host format: {0}")]
    Format(String),
}

/// The region label of an STS host: `global` for `sts.amazonaws.com`, else the second
/// DNS label.
pub fn region_label(host: &str) -> Result<&str, LabelError> {
    if host.is_empty() {
        return Err(LabelError::Empty);
    }
    if host == GLOBAL_HOST {
        return Ok("global");
    }
    match host.split('.').collect::<Vec<_>>().as_slice() {
        [_, region, _, ..] => Ok(region),
        _ => Err(LabelError::Format(host.to_owned())),
    }
}

/// The `StsRegion` metric label for a host's region label: `global`, a known region,
/// else `other`.
///
/// upstream: labels its STS metrics with the host's second label as it comes, before
/// STS has checked any signature, so every made-up host adds a permanent series; we
/// keep the label to a closed set, so no token can grow the metrics.
pub fn metric_region(label: &str) -> &'static str {
    if label == "global" {
        return "global";
    }
    known_partition(label)
        .and_then(|p| p.known_regions().iter().find(|r| **r == label))
        .copied()
        .unwrap_or("other")
}

/// Whether `region` is a well-formed region identifier (upstream's
/// `^[[:alnum:]]([[:alnum:]\-]*[[:alnum:]])?$`, ASCII only).
pub fn is_valid_region(region: &str) -> bool {
    let b = region.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

/// Why a host is not an STS endpoint of the server's partition. The texts are
/// upstream's; [`HostError::is_format_error`] says which ones upstream reports as a
/// malformed token (prefixed `input token was not properly formatted: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The host has no region label.
    #[error("could not parse region for pre-signed URL {host}, {source}")]
    Unparsable {
        /// The token's host.
        host: String,
        /// Why.
        source: LabelError,
    },
    /// `sts.amazonaws.com` outside the `aws` partition.
    #[error("global endpoint unsupported in partition {0}")]
    GlobalUnsupported(Partition),
    /// The region label is not a region identifier.
    #[error("invalid region identifier format provided: {0}")]
    InvalidRegion(String),
    /// The host is not an STS endpoint of its region (nor of the server's own region).
    #[error("unexpected hostname {} in pre-signed URL", quote(.0))]
    UnexpectedHostname(String),
    /// An STS endpoint with fewer than four labels.
    #[error("invalid host format, too few labels: {0}")]
    TooFewLabels(String),
    /// An STS endpoint of another partition.
    #[error("partition {{{partition}}} does not support hostname {host}")]
    OtherPartition {
        /// The server's partition.
        partition: Partition,
        /// The token's host.
        host: String,
    },
}

impl HostError {
    /// Whether upstream reports this as a `FormatError` (the rest are plain errors).
    pub fn is_format_error(&self) -> bool {
        !matches!(self, Self::InvalidRegion(_) | Self::TooFewLabels(_))
    }
}

/// Checks that `host` (the token URL's host, port included if any) is an STS endpoint
/// of `partition`. `instance_region` is the region the server runs in: a host of that
/// region in the server's partition is accepted even when the SDK's table does not
/// know the region (new regions); callers pass only a well-formed one (see
/// [`is_valid_region`]).
///
/// The rules and messages are upstream's `verifyHost`, in its order.
pub fn verify_host(
    host: &str,
    partition: Partition,
    instance_region: Option<&str>,
) -> Result<(), HostError> {
    let region = region_label(host).map_err(|source| HostError::Unparsable {
        host: host.to_owned(),
        source,
    })?;
    if region == "global" {
        if partition == Partition::Aws {
            return Ok(());
        }
        return Err(HostError::GlobalUnsupported(partition));
    }
    if !is_valid_region(region) {
        return Err(HostError::InvalidRegion(region.to_owned()));
    }

    // upstream: any well-formed label resolves (unknown ones to the commercial
    // pattern), so `sts.s3.amazonaws.com` and `sts.s3-us-west-2.amazonaws.com` (an S3
    // bucket named `sts`), `sts.elb.amazonaws.com` or `sts.execute-api.amazonaws.com`
    // pass, and the server connects to them. Such names exist: AWS serves other
    // services, and customers' buckets, under the same domains. We accept only labels
    // that name a region (a known one, or one that follows the region grammar), so
    // upstream's vectors that use made-up names (`sts.not-a-region.amazonaws.com`)
    // are refused unless the name is the server's own region.
    if !is_region_name(region) || !resolved_hosts(region).iter().any(|h| h == host) {
        // Fallback: the server's own region in the server's partition.
        let fallback = instance_region.filter(|r| is_valid_region(r)).map(|r| {
            let mut v = vec![format!("sts.{r}.{}", partition.domain())];
            if let Some(ds) = partition.dual_stack_domain() {
                v.push(format!("sts.{r}.{ds}"));
            }
            v
        });
        if fallback.is_some_and(|v| v.iter().any(|h| h == host)) {
            return Ok(());
        }
        return Err(HostError::UnexpectedHostname(host.to_owned()));
    }

    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 4 {
        return Err(HostError::TooFewLabels(host.to_owned()));
    }
    let suffix = labels[2..].join(".");
    let domain_ok =
        suffix == partition.domain() || partition.dual_stack_domain() == Some(suffix.as_str());
    // upstream: `verifyHost` checks only the DNS suffix, so `aws` and `aws-us-gov` (which
    // share `amazonaws.com` and `api.aws`) accept each other's regional hosts; we also
    // require the region to belong to the server's partition, so a GovCloud server
    // never sends tokens to commercial STS and vice versa. (The grammar above admits
    // only lower-case names, so `sts.US-GOV-WEST-1.amazonaws.com` never gets here.)
    if !domain_ok || region_partition(region) != partition {
        return Err(HostError::OtherPartition {
            partition,
            host: host.to_owned(),
        });
    }
    Ok(())
}

/// `<service>.<region>.<partition domain>`, e.g. `sts.us-iso-test-1.c2s.ic.gov`; the
/// region must be well formed (upstream's `getDefaultHostNameForRegion`).
pub fn default_hostname(
    partition: Partition,
    region: &str,
    service: &str,
) -> Result<String, HostError> {
    if !is_valid_region(region) {
        return Err(HostError::InvalidRegion(region.to_owned()));
    }
    Ok(format!("{service}.{region}.{}", partition.domain()))
}
#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Partition {
        s.parse().unwrap()
    }

    #[test]
    fn valid_hosts() {
        let mut cases: Vec<(&str, String, Option<&str>)> = vec![
            ("aws", "sts.amazonaws.com".into(), None),
            ("aws-cn", "sts.cn-northwest-1.amazonaws.com.cn".into(), None),
            ("aws-cn", "sts.cn-north-1.amazonaws.com.cn".into(), None),
            (
                "aws-cn",
                "sts.not-a-region2.amazonaws.com.cn".into(),
                Some("not-a-region2"),
            ),
            ("aws", "sts-fips.us-west-2.amazonaws.com".into(), None),
            ("aws", "sts-fips.us-east-1.amazonaws.com".into(), None),
            ("aws-iso", "sts.us-iso-east-1.c2s.ic.gov".into(), None),
            ("aws-us-gov", "sts.us-gov-east-1.amazonaws.com".into(), None),
            (
                "aws-cn",
                "sts.us-isob-east-1.amazonaws.com.cn".into(),
                Some("us-isob-east-1"),
            ),
            ("aws", "sts.us-west-2.api.aws".into(), None),
            (
                "aws-cn",
                "sts.cn-north-1.api.amazonwebservices.com.cn".into(),
                None,
            ),
            (
                "aws",
                "sts.not-a-region.amazonaws.com".into(),
                Some("not-a-region"),
            ),
            (
                "aws-cn",
                "sts.not-a-region4.amazonaws.com.cn".into(),
                Some("not-a-region4"),
            ),
        ];
        for r in [
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
            "ap-south-1",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ca-central-1",
            "eu-central-1",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "eu-north-1",
        ] {
            cases.push(("aws", format!("sts.{r}.amazonaws.com"), None));
        }
        for (part, host, region) in cases {
            assert_eq!(
                verify_host(&host, p(part), region),
                Ok(()),
                "({part}, {host}, {region:?})"
            );
        }
    }

    #[test]
    fn invalid_hosts() {
        for part in Partition::ALL {
            if part != Partition::Aws {
                assert_eq!(
                    verify_host("sts.amazonaws.com", part, None),
                    Err(HostError::GlobalUnsupported(part))
                );
            }
        }
        assert!("aws-not-a-partition".parse::<Partition>().is_err());
        let cases = [
            ("aws-cn", "sts.us-iso-east-1.c2s.ic.gov", None),
            ("aws-cn", "sts.not-a-region1.amazonaws.com.cn", None),
            ("aws", "sts.amazonaws.com.cn", None),
            ("aws", "website.amazonaws.com", None),
            ("aws-iso", "sts.cn-north-1.amazonaws.com.cn", None),
            ("aws-iso-b", "sts.cn-north-1.amazonaws.com.cn", None),
            ("aws-cn", "sts-fips.us-east-1.amazonaws.com", None),
            ("aws-cn", "sts.us-isob-east-1.amazonaws.com.cn", None),
            ("aws-iso-b", "sts.us-isob-east-1.amazonaws.com.cn", None),
            ("aws", "sts.cn-north-1.api.amazonwebservices.com.cn", None),
            ("aws-cn", "sts.not-a-region3.amazonaws.com.cn", None),
            (
                "aws-cn",
                "sts.not-a-region5.amazonaws.com.cn",
                Some("us-west-2"),
            ),
            ("aws-cn", "sts.us-west-2.amazonaws.com.cn", None),
            ("aws", "sts.us-west-2.amazonaws.com.cn", None),
            ("aws-cn", "sts.not-a-region.amazonaws.com", None),
            ("aws", "invalid.amazonaws.com", None),
            // A port is part of the URL host and never allowed.
            ("aws", "sts.us-west-2.amazonaws.com:443", None),
            // upstream accepts these: labels that are no region. Some exist (an S3
            // bucket named `sts`, other services' endpoints).
            ("aws", "sts.default-region.amazonaws.com", None),
            ("aws", "sts.not-a-region.amazonaws.com", None),
            ("aws", "sts.not-a-region.amazonaws.com", Some("us-west-2")),
            ("aws", "sts.s3.amazonaws.com", None),
            ("aws", "sts.s3-us-west-2.amazonaws.com", None),
            ("aws", "sts.s3-website.amazonaws.com", None),
            ("aws", "sts.elb.amazonaws.com", None),
            ("aws", "sts.execute-api.amazonaws.com", None),
            ("aws", "sts.dualstack.amazonaws.com", None),
            ("aws", "sts.s3.api.aws", None),
            ("aws", "sts-fips.s3.amazonaws.com", None),
            ("aws", "sts.US-WEST-2.amazonaws.com", None),
            ("aws", "sts.us-west-2a.amazonaws.com", None),
            ("aws-cn", "sts.s3.amazonaws.com.cn", None),
            ("aws-us-gov", "sts.s3.amazonaws.com", None),
            ("aws-us-gov", "sts.s3-fips.amazonaws.com", None),
            ("aws-iso", "sts.s3.c2s.ic.gov", None),
        ];
        for (part, host, region) in cases {
            assert!(
                verify_host(host, p(part), region).is_err(),
                "({part}, {host}, {region:?}) should be rejected"
            );
        }
    }

    /// A region the SDK's table does not know yet is accepted when it follows the
    /// grammar, as the partition's own.
    #[test]
    fn new_regions_that_follow_the_grammar() {
        assert_eq!(
            verify_host("sts.eu-southwest-9.amazonaws.com", Partition::Aws, None),
            Ok(())
        );
        assert_eq!(
            verify_host(
                "sts.us-gov-central-1.amazonaws.com",
                Partition::AwsUsGov,
                None
            ),
            Ok(())
        );
        assert_eq!(
            verify_host("sts.cn-south-1.amazonaws.com.cn", Partition::AwsCn, None),
            Ok(())
        );
        assert!(verify_host("sts.us-gov-central-1.amazonaws.com", Partition::Aws, None).is_err());
    }

    #[test]
    fn partition_isolation_between_aws_and_gov() {
        // Upstream accepts these; we do not (documented difference).
        assert!(verify_host("sts.us-gov-west-1.amazonaws.com", Partition::Aws, None).is_err());
        assert!(verify_host("sts.us-gov-west-1.api.aws", Partition::Aws, None).is_err());
        assert!(verify_host("sts.US-GOV-WEST-1.amazonaws.com", Partition::Aws, None).is_err());
        assert!(verify_host("sts.us-east-1.amazonaws.com", Partition::AwsUsGov, None).is_err());
        assert!(verify_host("sts.not-a-region.amazonaws.com", Partition::AwsUsGov, None).is_err());
        assert_eq!(
            verify_host("sts.us-gov-west-1.amazonaws.com", Partition::AwsUsGov, None),
            Ok(())
        );
        assert_eq!(
            verify_host("sts.us-gov-west-1.api.aws", Partition::AwsUsGov, None),
            Ok(())
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            verify_host("google.com", Partition::Aws, None)
                .unwrap_err()
                .to_string(),
            "could not parse region for pre-signed URL google.com, invalid host format: google.com"
        );
        assert_eq!(
            verify_host("sts.amazonaws.com", Partition::AwsCn, None)
                .unwrap_err()
                .to_string(),
            "global endpoint unsupported in partition aws-cn"
        );
        assert_eq!(
            verify_host("sts.us_east_1.amazonaws.com", Partition::Aws, None)
                .unwrap_err()
                .to_string(),
            "invalid region identifier format provided: us_east_1"
        );
        assert_eq!(
            verify_host("website.amazonaws.com", Partition::Aws, None)
                .unwrap_err()
                .to_string(),
            "unexpected hostname \"website.amazonaws.com\" in pre-signed URL"
        );
        assert_eq!(
            verify_host("sts.us-east-1.amazonaws.com", Partition::AwsCn, None)
                .unwrap_err()
                .to_string(),
            "partition {aws-cn} does not support hostname sts.us-east-1.amazonaws.com"
        );
        assert_eq!(
            verify_host("sts.s3.amazonaws.com", Partition::Aws, None)
                .unwrap_err()
                .to_string(),
            "unexpected hostname \"sts.s3.amazonaws.com\" in pre-signed URL"
        );
    }

    #[test]
    fn metric_regions_are_a_closed_set() {
        assert_eq!(metric_region("global"), "global");
        assert_eq!(metric_region("us-west-2"), "us-west-2");
        assert_eq!(metric_region("eusc-de-east-1"), "eusc-de-east-1");
        for hostile in ["us-east-99", "not-a-region", "s3", "", &"a".repeat(2500)] {
            assert_eq!(metric_region(hostile), "other", "{hostile}");
        }
    }

    #[test]
    fn region_label_parser() {
        assert_eq!(region_label("sts.amazonaws.com").unwrap(), "global");
        assert_eq!(
            region_label("sts.us-west-2.amazonaws.com").unwrap(),
            "us-west-2"
        );
        assert_eq!(region_label("").unwrap_err().to_string(), "host is empty");
        assert_eq!(
            region_label("sts").unwrap_err().to_string(),
            "invalid host format: sts"
        );
        assert_eq!(
            region_label("sts.wrongformat").unwrap_err().to_string(),
            "invalid host format: sts.wrongformat"
        );
    }

    #[test]
    fn region_regex() {
        for r in ["us-east-1", "local", "9-west-1", "a", "A1"] {
            assert!(is_valid_region(r), "{r}");
        }
        for r in [
            "invalid.com",
            "@invalid.com/%23",
            "us_east_1",
            "",
            "-a",
            "a-",
            "é",
        ] {
            assert!(!is_valid_region(r), "{r}");
        }
    }

    #[test]
    fn default_hostnames() {
        assert_eq!(
            default_hostname(Partition::AwsIsoE, "eu-isoe-west-1", "test").unwrap(),
            "test.eu-isoe-west-1.cloud.adc-e.uk"
        );
        assert_eq!(
            default_hostname(Partition::AwsIso, "us-iso-test-1", "sts").unwrap(),
            "sts.us-iso-test-1.c2s.ic.gov"
        );
        assert!(default_hostname(Partition::Aws, "test_123", "sts").is_err());
    }

    #[test]
    fn sts_hosts_follow_the_sdk_endpoint_rules() {
        // (region, fips, dual-stack, host): cases from the AWS SDK's STS endpoint tests.
        let cases = [
            ("us-west-2", false, false, "sts.us-west-2.amazonaws.com"),
            ("us-east-1", false, false, "sts.us-east-1.amazonaws.com"),
            ("us-east-1", true, false, "sts-fips.us-east-1.amazonaws.com"),
            ("us-east-1", false, true, "sts.us-east-1.api.aws"),
            ("us-east-1", true, true, "sts-fips.us-east-1.api.aws"),
            ("aws-global", false, false, "sts.amazonaws.com"),
            (
                "cn-north-1",
                false,
                false,
                "sts.cn-north-1.amazonaws.com.cn",
            ),
            (
                "cn-north-1",
                true,
                false,
                "sts-fips.cn-north-1.amazonaws.com.cn",
            ),
            (
                "cn-north-1",
                false,
                true,
                "sts.cn-north-1.api.amazonwebservices.com.cn",
            ),
            (
                "cn-north-1",
                true,
                true,
                "sts-fips.cn-north-1.api.amazonwebservices.com.cn",
            ),
            (
                "us-gov-west-1",
                false,
                false,
                "sts.us-gov-west-1.amazonaws.com",
            ),
            (
                "us-gov-east-1",
                true,
                false,
                "sts.us-gov-east-1.amazonaws.com",
            ),
            ("us-gov-east-1", false, true, "sts.us-gov-east-1.api.aws"),
            (
                "us-gov-east-1",
                true,
                true,
                "sts-fips.us-gov-east-1.api.aws",
            ),
            (
                "us-iso-east-1",
                false,
                false,
                "sts.us-iso-east-1.c2s.ic.gov",
            ),
            (
                "us-iso-east-1",
                true,
                false,
                "sts-fips.us-iso-east-1.c2s.ic.gov",
            ),
            (
                "us-isob-east-1",
                false,
                false,
                "sts.us-isob-east-1.sc2s.sgov.gov",
            ),
            (
                "us-isof-south-1",
                false,
                false,
                "sts.us-isof-south-1.csp.hci.ic.gov",
            ),
            (
                "eu-isoe-west-1",
                false,
                false,
                "sts.eu-isoe-west-1.cloud.adc-e.uk",
            ),
            (
                "eusc-de-east-1",
                false,
                false,
                "sts.eusc-de-east-1.amazonaws.eu",
            ),
            (
                "eusc-de-east-1",
                false,
                true,
                "sts.eusc-de-east-1.api.amazonwebservices.eu",
            ),
            (
                "ap-southeast-7",
                false,
                false,
                "sts.ap-southeast-7.amazonaws.com",
            ),
            // Ours: the global endpoint has no FIPS variant; use us-east-1's, where it lives.
            (
                "aws-global",
                true,
                false,
                "sts-fips.us-east-1.amazonaws.com",
            ),
        ];
        for (region, fips, dual, host) in cases {
            assert_eq!(
                sts_host(region, fips, dual),
                host,
                "{region} fips={fips} dual={dual}"
            );
        }
    }

    /// The hosts `token` presigns for, for every known region and variant, are accepted
    /// by a server of the region's partition and by no other.
    #[test]
    fn client_and_server_agree_on_every_known_region() {
        for p in Partition::ALL {
            for region in p.known_regions() {
                assert_eq!(region_partition(region), p, "{region}");
                for (fips, dual) in [(false, false), (true, false), (false, true), (true, true)] {
                    let host = sts_host(region, fips, dual);
                    for server in Partition::ALL {
                        let verdict = verify_host(&host, server, None);
                        if server == p {
                            assert_eq!(verdict, Ok(()), "{host} in {server}");
                        } else {
                            assert!(verdict.is_err(), "{host} accepted in {server}");
                        }
                    }
                }
            }
        }
        assert_eq!(
            verify_host(&sts_host(GLOBAL_REGION, false, false), Partition::Aws, None),
            Ok(())
        );
    }

    /// An `eusc-` region outside the SDK's `eusc-de-` pattern is a commercial name to the
    /// SDK: the client presigns for `amazonaws.com`, where the server files it too.
    #[test]
    fn eusc_regions_outside_the_pattern_are_commercial_on_both_sides() {
        assert_eq!(
            sts_host("eusc-de-east-1", false, false),
            "sts.eusc-de-east-1.amazonaws.eu"
        );
        assert_eq!(
            sts_host("eusc-fr-west-1", false, false),
            "sts.eusc-fr-west-1.amazonaws.com"
        );
        assert!(verify_host("sts.eusc-fr-west-1.amazonaws.eu", Partition::AwsEusc, None).is_err());
    }

    proptest::proptest! {
        /// Whatever region the client is given, a server that accepts the host it
        /// presigns for is a server of the partition the client signed for.
        #[test]
        fn a_clients_host_is_accepted_only_in_its_partition(
            region in "[a-z]{2,4}(-[a-z0-9]{2,9}){1,2}-[0-9]{1,2}",
            fips: bool,
            dual: bool,
        ) {
            let host = sts_host(&region, fips, dual);
            for server in Partition::ALL {
                if verify_host(&host, server, None).is_ok() {
                    proptest::prop_assert_eq!(server, region_partition(&region), "{}", host);
                }
            }
        }

        #[test]
        fn never_panics(h in ".*", r in proptest::option::of(".*")) {
            for part in Partition::ALL {
                let _ = verify_host(&h, part, r.as_deref());
            }
        }
    }
}
