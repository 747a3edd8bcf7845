//! Which STS hosts a token may name (pure): the partition table, the region-label parser,
//! the region regex and the host allow-list.
//!
//! A token is a URL the server will GET, so the host check is what stops a token from
//! sending the server (with our cluster id header) anywhere but a real STS endpoint of
//! the server's partition.

use crate::config::types::Partition;
use crate::token::VerifyError;

/// The global STS endpoint (only in the `aws` partition).
pub const GLOBAL_HOST: &str = "sts.amazonaws.com";

/// The region label of an STS host: `global` for `sts.amazonaws.com`, else the second
/// DNS label. Errors are upstream's: `host is empty`, `invalid host format: <h>`.
pub fn region_label(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("host is empty".to_owned());
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() < 3 {
        return Err(format!("invalid host format: {host}"));
    }
    if host == GLOBAL_HOST {
        return Ok("global".to_owned());
    }
    Ok(parts[1].to_owned())
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

fn invalid_region(region: &str) -> VerifyError {
    VerifyError::Plain(format!(
        "invalid region identifier format provided: {region}"
    ))
}

/// `<service>.<region>.<partition domain>`, e.g. `sts.us-iso-test-1.c2s.ic.gov`; the
/// region must be well formed.
pub fn default_hostname(
    partition: Partition,
    region: &str,
    service: &str,
) -> Result<String, VerifyError> {
    if !is_valid_region(region) {
        return Err(invalid_region(region));
    }
    Ok(format!("{service}.{region}.{}", partition.domain()))
}

/// `\w+-\d+` at the end of a region name, as in the SDK's partition regexes.
fn word_dash_digits(rest: &str) -> bool {
    let Some((word, digits)) = rest.rsplit_once('-') else {
        return false;
    };
    !word.is_empty()
        && word.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
}

/// The partition the AWS SDK's endpoint resolver places `region` in (its partition
/// regexes, matched on the lower-cased name); unknown regions fall back to `aws`, as
/// the SDK's do.
pub fn region_partition(region: &str) -> Partition {
    let r = region.to_ascii_lowercase();
    let with = |prefix: &str| r.strip_prefix(prefix).is_some_and(word_dash_digits);
    if with("us-gov-") {
        Partition::AwsUsGov
    } else if with("us-iso-") {
        Partition::AwsIso
    } else if with("us-isob-") {
        Partition::AwsIsoB
    } else if with("us-isof-") {
        Partition::AwsIsoF
    } else if with("eu-isoe-") {
        Partition::AwsIsoE
    } else if with("eusc-de-") {
        Partition::AwsEusc
    } else if with("cn-") {
        Partition::AwsCn
    } else {
        Partition::Aws
    }
}

/// The hosts the SDK's STS endpoint resolver gives for `region` with every combination
/// of FIPS and dual-stack (the region label is substituted verbatim).
pub fn resolved_hosts(region: &str) -> Vec<String> {
    let p = region_partition(region);
    let domain = p.domain();
    let mut hosts = vec![format!("sts.{region}.{domain}")];
    // The SDK's STS rules send FIPS in aws-us-gov to the regular regional host.
    if p != Partition::AwsUsGov {
        hosts.push(format!("sts-fips.{region}.{domain}"));
    }
    if let Some(ds) = p.dual_stack_domain() {
        hosts.push(format!("sts.{region}.{ds}"));
        hosts.push(format!("sts-fips.{region}.{ds}"));
    }
    hosts
}

/// Checks that `host` (the token URL's host, port included if any) is an STS endpoint
/// of `partition`. `instance_region` is the region the server runs in: a host of that
/// region in the server's partition is accepted even when the SDK's table does not
/// know the region (new regions).
///
/// The rules and messages are upstream's `verifyHost`, in its order.
pub fn verify_host(
    host: &str,
    partition: Partition,
    instance_region: Option<&str>,
) -> Result<(), VerifyError> {
    let region = region_label(host).map_err(|e| {
        VerifyError::Format(format!(
            "could not parse region for pre-signed URL {host}, {e}"
        ))
    })?;
    if region == "global" {
        if partition == Partition::Aws {
            return Ok(());
        }
        return Err(VerifyError::Format(format!(
            "global endpoint unsupported in partition {partition}"
        )));
    }
    if !is_valid_region(&region) {
        return Err(invalid_region(&region));
    }

    // upstream: any well-formed region label resolves (unknown ones to the commercial
    // pattern), so `sts.not-a-region.amazonaws.com` is accepted in `aws`. We keep that:
    // upstream's conformance vectors require it, and such a host only ever resolves to
    // AWS's own DNS zone, where it does not exist.
    if !resolved_hosts(&region).iter().any(|h| h == host) {
        // Fallback: the server's own region in the server's partition.
        let fallback = instance_region.filter(|r| is_valid_region(r)).map(|r| {
            let mut v = vec![format!("sts.{r}.{}", partition.domain())];
            if let Some(ds) = partition.dual_stack_domain() {
                v.push(format!("sts.{r}.{ds}"));
            }
            v
        });
        if let Some(r) = instance_region.filter(|r| !r.is_empty() && !is_valid_region(r)) {
            tracing::info!("invalid instance region {r:?}: not used for the STS host check");
        }
        if fallback.is_some_and(|v| v.iter().any(|h| h == host)) {
            return Ok(());
        }
        return Err(VerifyError::Format(format!(
            "unexpected hostname {host:?} in pre-signed URL"
        )));
    }

    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 4 {
        return Err(VerifyError::Plain(format!(
            "invalid host format, too few labels: {host}"
        )));
    }
    let suffix = labels[2..].join(".");
    let domain_ok =
        suffix == partition.domain() || partition.dual_stack_domain() == Some(suffix.as_str());
    // upstream: `verifyHost` checks only the DNS suffix, so `aws` and `aws-us-gov` (which
    // share `amazonaws.com` and `api.aws`) accept each other's regional hosts; we also
    // require the region to belong to the server's partition, so a GovCloud server
    // never sends tokens to commercial STS and vice versa.
    if !domain_ok || region_partition(&region) != partition {
        return Err(VerifyError::Format(format!(
            "partition {{{partition}}} does not support hostname {host}"
        )));
    }
    Ok(())
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
            ("aws", "sts.default-region.amazonaws.com".into(), None),
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
            ("aws", "sts.not-a-region.amazonaws.com".into(), None),
            (
                "aws",
                "sts.not-a-region.amazonaws.com".into(),
                Some("us-west-2"),
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
                    Err(VerifyError::Format(format!(
                        "global endpoint unsupported in partition {part}"
                    )))
                );
            }
        }
        assert!("aws-not-a-partition".parse::<Partition>().is_err());
        let cases: [(&str, &str, Option<&str>); 17] = [
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
        ];
        for (part, host, region) in cases {
            assert!(
                verify_host(host, p(part), region).is_err(),
                "({part}, {host}, {region:?}) should be rejected"
            );
        }
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
            "input token was not properly formatted: could not parse region for pre-signed URL google.com, invalid host format: google.com"
        );
        assert_eq!(
            verify_host("sts.amazonaws.com", Partition::AwsCn, None)
                .unwrap_err()
                .to_string(),
            "input token was not properly formatted: global endpoint unsupported in partition aws-cn"
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
            "input token was not properly formatted: unexpected hostname \"website.amazonaws.com\" in pre-signed URL"
        );
        assert_eq!(
            verify_host("sts.not-a-region.amazonaws.com", Partition::AwsCn, None)
                .unwrap_err()
                .to_string(),
            "input token was not properly formatted: partition {aws-cn} does not support hostname sts.not-a-region.amazonaws.com"
        );
    }

    #[test]
    fn region_label_parser() {
        assert_eq!(region_label("sts.amazonaws.com").unwrap(), "global");
        assert_eq!(
            region_label("sts.us-west-2.amazonaws.com").unwrap(),
            "us-west-2"
        );
        assert_eq!(region_label("").unwrap_err(), "host is empty");
        assert_eq!(region_label("sts").unwrap_err(), "invalid host format: sts");
        assert_eq!(
            region_label("sts.wrongformat").unwrap_err(),
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
    fn region_partitions() {
        let cases = [
            ("us-east-1", Partition::Aws),
            ("not-a-region", Partition::Aws),
            ("cn-north-1", Partition::AwsCn),
            ("us-gov-west-1", Partition::AwsUsGov),
            ("us-iso-east-1", Partition::AwsIso),
            ("us-isob-east-1", Partition::AwsIsoB),
            ("eu-isoe-west-1", Partition::AwsIsoE),
            ("us-isof-south-1", Partition::AwsIsoF),
            ("eusc-de-east-1", Partition::AwsEusc),
            ("us-gov-1", Partition::Aws),
        ];
        for (r, want) in cases {
            assert_eq!(region_partition(r), want, "{r}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(h in ".*", r in proptest::option::of(".*")) {
            for part in Partition::ALL {
                let _ = verify_host(&h, part, r.as_deref());
            }
        }
    }
}
