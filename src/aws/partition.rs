//! AWS partitions and their regions (pure).
//!
//! Which partition a region belongs to follows the AWS SDK's partition table (the
//! `partitions.json` the SDK's endpoint resolver embeds): an exact known region first,
//! then each partition's region pattern, else the commercial `aws` partition. Upstream's
//! token command and verifier both resolve through that table, so following it keeps
//! our tokens and our host checks where upstream's are.

use std::fmt;
use std::str::FromStr;

/// An AWS partition (upstream `pkg/endpoints/partitions.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partition {
    /// `aws`
    Aws,
    /// `aws-cn`
    AwsCn,
    /// `aws-us-gov`
    AwsUsGov,
    /// `aws-iso`
    AwsIso,
    /// `aws-iso-b`
    AwsIsoB,
    /// `aws-iso-e`
    AwsIsoE,
    /// `aws-iso-f`
    AwsIsoF,
    /// `aws-eusc`
    AwsEusc,
}

impl Partition {
    /// All partitions, in upstream's order.
    pub const ALL: [Partition; 8] = [
        Self::Aws,
        Self::AwsCn,
        Self::AwsUsGov,
        Self::AwsIso,
        Self::AwsIsoB,
        Self::AwsIsoE,
        Self::AwsIsoF,
        Self::AwsEusc,
    ];

    /// The partition's name, e.g. `aws-cn`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::AwsCn => "aws-cn",
            Self::AwsUsGov => "aws-us-gov",
            Self::AwsIso => "aws-iso",
            Self::AwsIsoB => "aws-iso-b",
            Self::AwsIsoE => "aws-iso-e",
            Self::AwsIsoF => "aws-iso-f",
            Self::AwsEusc => "aws-eusc",
        }
    }

    /// The STS DNS suffix, e.g. `amazonaws.com.cn`.
    pub fn domain(self) -> &'static str {
        match self {
            Self::Aws | Self::AwsUsGov => "amazonaws.com",
            Self::AwsCn => "amazonaws.com.cn",
            Self::AwsIso => "c2s.ic.gov",
            Self::AwsIsoB => "sc2s.sgov.gov",
            Self::AwsIsoE => "cloud.adc-e.uk",
            Self::AwsIsoF => "csp.hci.ic.gov",
            Self::AwsEusc => "amazonaws.eu",
        }
    }

    /// The dual-stack DNS suffix, where the partition has one.
    pub fn dual_stack_domain(self) -> Option<&'static str> {
        match self {
            Self::Aws | Self::AwsUsGov => Some("api.aws"),
            Self::AwsCn => Some("api.amazonwebservices.com.cn"),
            Self::AwsEusc => Some("api.amazonwebservices.eu"),
            _ => None,
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Partition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| "invalid partition".to_owned())
    }
}

impl Partition {
    /// The regions the AWS SDK's partition table lists for this partition (its
    /// `*-global` pseudo-regions left out), as of aws-sdk-sts 1.124.
    pub fn known_regions(self) -> &'static [&'static str] {
        match self {
            Self::Aws => &[
                "af-south-1",
                "ap-east-1",
                "ap-east-2",
                "ap-northeast-1",
                "ap-northeast-2",
                "ap-northeast-3",
                "ap-south-1",
                "ap-south-2",
                "ap-southeast-1",
                "ap-southeast-2",
                "ap-southeast-3",
                "ap-southeast-4",
                "ap-southeast-5",
                "ap-southeast-6",
                "ap-southeast-7",
                "ca-central-1",
                "ca-west-1",
                "eu-central-1",
                "eu-central-2",
                "eu-north-1",
                "eu-south-1",
                "eu-south-2",
                "eu-west-1",
                "eu-west-2",
                "eu-west-3",
                "il-central-1",
                "me-central-1",
                "me-south-1",
                "mx-central-1",
                "sa-east-1",
                "us-east-1",
                "us-east-2",
                "us-west-1",
                "us-west-2",
            ],
            Self::AwsCn => &["cn-north-1", "cn-northwest-1"],
            Self::AwsUsGov => &["us-gov-east-1", "us-gov-west-1"],
            Self::AwsIso => &["us-iso-east-1", "us-iso-west-1"],
            Self::AwsIsoB => &["us-isob-east-1", "us-isob-west-1"],
            Self::AwsIsoE => &["eu-isoe-west-1"],
            Self::AwsIsoF => &["us-isof-east-1", "us-isof-south-1"],
            Self::AwsEusc => &["eusc-de-east-1"],
        }
    }

    /// The SDK's `regionRegex` of this partition up to its `\w+\-\d+` tail, e.g.
    /// `^us\-gov\-` (the commercial one is `^(us|eu|ap|sa|ca|me|af|il|mx)\-`).
    fn pattern_prefixes(self) -> &'static [&'static str] {
        match self {
            Self::Aws => &[
                "us-", "eu-", "ap-", "sa-", "ca-", "me-", "af-", "il-", "mx-",
            ],
            Self::AwsCn => &["cn-"],
            Self::AwsUsGov => &["us-gov-"],
            Self::AwsIso => &["us-iso-"],
            Self::AwsIsoB => &["us-isob-"],
            Self::AwsIsoE => &["eu-isoe-"],
            Self::AwsIsoF => &["us-isof-"],
            Self::AwsEusc => &["eusc-de-"],
        }
    }

    /// Whether `region` matches this partition's `regionRegex` in the SDK's table, e.g.
    /// `^us\-gov\-\w+\-\d+$`.
    fn sdk_pattern_matches(self, region: &str) -> bool {
        self.pattern_prefixes()
            .iter()
            .any(|p| region.strip_prefix(p).is_some_and(word_dash_digits))
    }

    /// Whether `region` follows the AWS region grammar in this partition: the SDK's
    /// pattern with its `\w+` narrowed to a compass direction and its `\d+` to a region
    /// number (`us-west-2`, `us-gov-east-1`, `eu-isoe-west-1`, `cn-northwest-1`).
    pub fn follows_region_grammar(self, region: &str) -> bool {
        self.pattern_prefixes().iter().any(|p| {
            region
                .strip_prefix(p)
                .and_then(|rest| rest.split_once('-'))
                .is_some_and(|(direction, number)| {
                    DIRECTIONS.contains(&direction) && is_region_number(number)
                })
        })
    }
}

/// The direction part of every AWS region name.
const DIRECTIONS: [&str; 9] = [
    "north",
    "south",
    "east",
    "west",
    "central",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

/// `1` to `99`, no leading zero.
fn is_region_number(s: &str) -> bool {
    (1..=2).contains(&s.len()) && !s.starts_with('0') && s.bytes().all(|c| c.is_ascii_digit())
}

/// `\w+\-\d+` (a whole string), as at the end of every partition pattern.
fn word_dash_digits(rest: &str) -> bool {
    let Some((word, digits)) = rest.split_once('-') else {
        return false;
    };
    !word.is_empty()
        && word.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
}

/// The partition that lists `region` among its regions, if any.
pub fn known_partition(region: &str) -> Option<Partition> {
    Partition::ALL
        .into_iter()
        .find(|p| p.known_regions().contains(&region))
}

/// Whether `region` names an AWS region: a known region, or a name that follows the
/// region grammar of some partition ([`Partition::follows_region_grammar`]). Words such
/// as `s3`, `elb`, `execute-api` or `s3-us-west-2` are not regions, though they are
/// DNS labels under AWS domains.
pub fn is_region_name(region: &str) -> bool {
    known_partition(region).is_some()
        || Partition::ALL
            .into_iter()
            .any(|p| p.follows_region_grammar(region))
}

/// The partition the AWS SDK's endpoint resolver places `region` in: the partition that
/// lists it, else the one whose pattern it matches, else `aws` (the SDK's fallback, so
/// an unknown name is treated as a commercial region).
///
/// The client presigns for this partition's domain and the server files a host's region
/// under it, so both sides always agree.
pub fn region_partition(region: &str) -> Partition {
    known_partition(region)
        .or_else(|| {
            Partition::ALL
                .into_iter()
                .find(|p| p.sdk_pattern_matches(region))
        })
        .unwrap_or(Partition::Aws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_round_trip() {
        for p in Partition::ALL {
            assert_eq!(p.name().parse::<Partition>().unwrap(), p);
        }
        assert_eq!(
            "aws-nk".parse::<Partition>().unwrap_err(),
            "invalid partition"
        );
    }

    #[test]
    fn region_partitions() {
        let cases = [
            ("us-east-1", Partition::Aws),
            ("ap-southeast-7", Partition::Aws),
            ("not-a-region", Partition::Aws),
            ("cn-north-1", Partition::AwsCn),
            ("cn-south-9", Partition::AwsCn),
            ("us-gov-west-1", Partition::AwsUsGov),
            ("us-iso-east-1", Partition::AwsIso),
            ("us-isob-east-1", Partition::AwsIsoB),
            ("eu-isoe-west-1", Partition::AwsIsoE),
            ("us-isof-south-1", Partition::AwsIsoF),
            ("eusc-de-east-1", Partition::AwsEusc),
            ("eusc-de-north-2", Partition::AwsEusc),
            // Not a pattern of the SDK's table: the SDK (and so upstream's client and
            // server) falls back to `aws`.
            ("eusc-fr-west-1", Partition::Aws),
            ("us-gov-1", Partition::Aws),
            ("US-GOV-WEST-1", Partition::Aws),
        ];
        for (r, want) in cases {
            assert_eq!(region_partition(r), want, "{r}");
        }
    }

    #[test]
    fn region_grammar() {
        for r in [
            "us-west-2",
            "us-gov-east-1",
            "eu-isoe-west-1",
            "cn-north-1",
            "cn-northwest-1",
            "us-isob-east-1",
            "us-isof-south-1",
            "eusc-de-east-1",
            "ap-southeast-7",
            "mx-central-1",
            "eu-central-12",
        ] {
            assert!(is_region_name(r), "{r}");
        }
        for r in [
            "s3",
            "s3-us-west-2",
            "elb",
            "execute-api",
            "s3-website",
            "not-a-region",
            "default-region",
            "us-west-2a",
            "us-west-02",
            "us-west-100",
            "us-west-0",
            "US-WEST-2",
            "us-west",
            "us-gov-1",
            "xx-east-1",
            "eusc-fr-west-1",
            "us-iso-s3-1",
            "us-west-2-lax-1",
            "",
        ] {
            assert!(!is_region_name(r), "{r}");
        }
    }

    #[test]
    fn grammar_and_sdk_pattern_agree_on_the_partition() {
        for p in Partition::ALL {
            for r in p.known_regions() {
                assert!(p.follows_region_grammar(r), "{r}");
            }
        }
    }

    proptest::proptest! {
        /// A name that follows a partition's grammar is placed in that partition.
        #[test]
        fn grammar_implies_partition(r in "[a-z]{2,4}(-[a-z]{3,5})?-[a-z]{4,9}-[0-9]{1,2}") {
            for p in Partition::ALL {
                if p.follows_region_grammar(&r) {
                    proptest::prop_assert_eq!(region_partition(&r), p);
                }
            }
        }
    }

    #[test]
    fn every_known_region_matches_its_partitions_pattern_only() {
        for p in Partition::ALL {
            for r in p.known_regions() {
                let matching: Vec<Partition> = Partition::ALL
                    .into_iter()
                    .filter(|q| q.sdk_pattern_matches(r))
                    .collect();
                assert_eq!(matching, [p], "{r}");
                assert_eq!(known_partition(r), Some(p), "{r}");
            }
        }
    }
}
