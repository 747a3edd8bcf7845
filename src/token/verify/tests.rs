//! Upstream's pre-STS vectors (`TestVerifyTokenPreSTSValidations`) and our additions.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;

fn tok(url: &str) -> String {
    format!("k8s-aws-v1.{}", URL_SAFE_NO_PAD.encode(url))
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn t() -> String {
    amz_date(now())
}

fn err(token: &str, partition: &str) -> String {
    validate(token, partition.parse().unwrap(), None, now())
        .unwrap_err()
        .to_string()
}

const BASE: &str = "https://sts.amazonaws.com/?action=GetCallerIdentity";

/// A case of `testdata/upstream-pre-sts-vectors.json`.
#[derive(serde::Deserialize)]
struct PreStsCase {
    /// The token as is, `repeat` times; else the token encoding `url`.
    token: Option<String>,
    #[serde(default = "once")]
    repeat: usize,
    url: Option<String>,
    partition: String,
    want: String,
}

fn once() -> usize {
    1
}

#[derive(serde::Deserialize)]
struct PreStsVectors {
    cases: Vec<PreStsCase>,
}

#[test]
fn upstream_pre_sts_vectors() {
    let vectors: PreStsVectors =
        serde_json::from_str(include_str!("testdata/upstream-pre-sts-vectors.json")).unwrap();
    assert_eq!(vectors.cases.len(), 17);
    let t = t();
    for case in vectors.cases {
        let token = match (case.token, case.url) {
            (Some(token), None) => token.repeat(case.repeat),
            (None, Some(url)) => tok(&url.replace("{now}", &t)),
            _ => panic!("a case has a token or a url"),
        };
        let got = err(&token, &case.partition);
        assert!(
            got.contains(&case.want),
            "token {token:?}: got {got:?}, want {:?}",
            case.want
        );
    }
}

#[test]
fn upstream_valid_vectors() {
    let t = t();
    for region in [
        "us-east-2",
        "ap-northeast-2",
        "ca-central-1",
        "eu-west-1",
        "sa-east-1",
    ] {
        let url = format!(
            "https://sts.{region}.amazonaws.com/?action=GetCallerIdentity&x-amz-signedheaders=x-k8s-aws-id&x-amz-date={t}&x-amz-expires=60"
        );
        let v = validate(&tok(&url), Partition::Aws, None, now()).unwrap();
        assert_eq!(v.url, url);
        assert_eq!(v.host, format!("sts.{region}.amazonaws.com"));
        assert_eq!(v.sts_region, region);
        assert_eq!(v.access_key_id, "");
        assert_eq!(
            v.expires_at.duration_since(v.signed_at).unwrap(),
            Duration::from_secs(900)
        );
    }
}

fn good(extra: &str) -> String {
    format!(
        "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&X-Amz-Credential=ASIABCDEFGHIJKLMNOPQ%2F20220601%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date={}&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id{extra}",
        t()
    )
}

#[test]
fn full_messages() {
    assert_eq!(
        err(&tok(":ab:cd.af:/asda"), "aws"),
        "input token was not properly formatted: parse \":ab:cd.af:/asda\": missing protocol scheme"
    );
    assert_eq!(
        err("k8s-aws-v1.decodingerror", "aws"),
        "input token was not properly formatted: illegal base64 data at input byte 12"
    );
    assert_eq!(
        err("k8s-aws-v1.ab=c", "aws"),
        "input token was not properly formatted: illegal base64 data at input byte 2"
    );
    assert_eq!(
        err(&tok("http://"), "aws"),
        "input token was not properly formatted: unexpected scheme \"http\" in pre-signed URL"
    );
    assert_eq!(
        err(&tok("https://sts.amazonaws.com/?NoInWhiteList=abc"), "aws"),
        "input token was not properly formatted: non-whitelisted query parameter \"NoInWhiteList\""
    );
    assert_eq!(
        err(&tok(&good("&x-amz-credential=eve")), "aws"),
        "input token was not properly formatted: duplicate query parameter found: \"x-amz-credential\""
    );
    assert_eq!(
        err(
            &tok(&format!(
                "{BASE}&x-amz-signedheaders=x-k8s-aws-id&x-amz-date=19900422T010203Z&x-amz-expires=60"
            )),
            "aws"
        ),
        "input token was not properly formatted: X-Amz-Date parameter is expired (15 minute expiration) 1990-04-22 01:02:03 +0000 UTC"
    );
    assert_eq!(
        err(
            &tok(&format!(
                "{BASE}&x-amz-signedheaders=x-k8s-aws-id&x-amz-date=xxxxxxx&x-amz-expires=60"
            )),
            "aws"
        ),
        "input token was not properly formatted: error parsing X-Amz-Date parameter xxxxxxx into format 20060102T150405Z: parsing time \"xxxxxxx\" as \"20060102T150405Z\": cannot parse \"xxxxxxx\" as \"2006\""
    );
    let date_err = |d: &str| {
        err(
            &tok(&format!(
                "{BASE}&x-amz-signedheaders=x-k8s-aws-id&x-amz-date={d}&x-amz-expires=60"
            )),
            "aws",
        )
    };
    assert!(
        date_err("20221301T000000Z")
            .ends_with("parsing time \"20221301T000000Z\": month out of range")
    );
    assert!(
        date_err("20220230T000000Z")
            .ends_with("parsing time \"20220230T000000Z\": day out of range")
    );
    assert!(date_err("20220101X000000Z").ends_with("cannot parse \"X000000Z\" as \"T\""));
    assert!(date_err("20220101T000000").ends_with("cannot parse \"\" as \"Z\""));
    assert!(date_err("20220101T000000Zjunk").ends_with("extra text: \"junk\""));
    assert!(date_err("20220101T250000Z").ends_with("hour out of range"));
    for (value, printed) in [
        ("", "0"),
        ("abc", "0"),
        ("-1", "-1"),
        ("901", "901"),
        ("99999999999999999999", "9223372036854775807"),
    ] {
        let got = err(
            &tok(&format!(
                "{BASE}&x-amz-signedheaders=x-k8s-aws-id&x-amz-date={}&x-amz-expires={value}",
                t()
            )),
            "aws",
        );
        assert_eq!(
            got,
            format!(
                "input token was not properly formatted: invalid X-Amz-Expires parameter in pre-signed URL: {printed}"
            )
        );
    }
    assert_eq!(
        err(
            &tok(&format!(
                "{BASE}&x-amz-signedheaders=x-k8s-aws-id&x-amz-expires=60"
            )),
            "aws"
        ),
        "input token was not properly formatted: X-Amz-Date parameter must be present in pre-signed URL"
    );
}

#[test]
fn good_token_and_variants() {
    let v = validate(&tok(&good("")), Partition::Aws, None, now()).unwrap();
    assert_eq!(v.access_key_id, "ASIABCDEFGHIJKLMNOPQ");
    assert_eq!(v.url, good(""));
    // Go lower-cases the scheme; the fragment is never sent.
    let upper = good("").replacen("https", "HTTPS", 1);
    let v = validate(&tok(&upper), Partition::Aws, None, now()).unwrap();
    assert!(
        v.url
            .starts_with("https://sts.us-west-2.amazonaws.com/?Action=")
    );
    let v = validate(
        &tok(&format!("{}#frag", good(""))),
        Partition::Aws,
        None,
        now(),
    )
    .unwrap();
    assert!(!v.url.contains('#'));
    // Go's decoder skips line breaks inside the base64.
    let mut wrapped = tok(&good(""));
    wrapped.insert_str(20, "\r\n");
    assert!(validate(&wrapped, Partition::Aws, None, now()).is_ok());
    // Case-insensitive `x-k8s-aws-id` in the signed headers.
    assert!(
        validate(
            &tok(&good("").replace("x-k8s-aws-id", "X-K8S-AWS-ID")),
            Partition::Aws,
            None,
            now()
        )
        .is_ok()
    );
}

#[test]
fn rejections_beyond_upstream_vectors() {
    let g = good("");
    let rejected = [
        // Case-variant duplicates of every security-relevant key.
        good("&action=GetCallerIdentity"),
        good("&x-amz-signedheaders=host"),
        good("&X-AMZ-DATE=20200101T000000Z"),
        // A port, userinfo, another path, an empty path.
        g.replacen("amazonaws.com/", "amazonaws.com:443/", 1),
        g.replacen("https://", "https://user:pw@", 1),
        g.replacen(".com/?", ".com/x?", 1),
        g.replacen(".com/?", ".com?", 1),
        g.replacen(".com/?", ".com/%2F?", 1),
        // `;` separators and bad escapes.
        g.replacen("&X-Amz-Expires", ";X-Amz-Expires", 1),
        good("&x=%zz"),
        // Controls in the URL.
        good("\n"),
        // Off-list hosts.
        g.replacen(
            "sts.us-west-2.amazonaws.com",
            "sts.us-west-2.amazonaws.com.evil.com",
            1,
        ),
        g.replacen("sts.us-west-2.amazonaws.com", "evil.com", 1),
        g.replacen("sts.us-west-2.amazonaws.com", "127.0.0.1", 1),
        g.replacen("sts.us-west-2.amazonaws.com", "[::1]", 1),
        g.replacen(
            "sts.us-west-2.amazonaws.com",
            "sts.us-gov-west-1.amazonaws.com",
            1,
        ),
    ];
    for url in rejected {
        assert!(
            validate(&tok(&url), Partition::Aws, None, now()).is_err(),
            "{url} should be rejected"
        );
    }
}

#[test]
fn future_dates() {
    let n = now();
    let at = |d: Duration| {
        let date = amz_date(n + d);
        format!("{BASE}&x-amz-signedheaders=x-k8s-aws-id&x-amz-date={date}&x-amz-expires=60")
    };
    assert!(validate(&tok(&at(Duration::from_secs(240))), Partition::Aws, None, n).is_ok());
    let e = validate(&tok(&at(Duration::from_secs(600))), Partition::Aws, None, n)
        .unwrap_err()
        .to_string();
    assert!(e.contains("X-Amz-Date parameter is in the future"), "{e}");
}

#[test]
fn expiry_boundary() {
    let url = format!(
        "{BASE}&x-amz-signedheaders=x-k8s-aws-id&x-amz-date=20220101T000000Z&x-amz-expires=60"
    );
    let signed = UNIX_EPOCH + Duration::from_secs(1_640_995_200);
    let ok = validate(
        &tok(&url),
        Partition::Aws,
        None,
        signed + Duration::from_secs(900),
    )
    .unwrap();
    assert_eq!(ok.signed_at, signed);
    assert_eq!(ok.expires_at, signed + Duration::from_secs(900));
    assert!(
        validate(
            &tok(&url),
            Partition::Aws,
            None,
            signed + Duration::from_millis(900_001)
        )
        .is_err()
    );
}

#[test]
fn instance_region_fallback() {
    let url = format!(
        "https://sts.not-a-region4.amazonaws.com.cn/?action=GetCallerIdentity&x-amz-signedheaders=x-k8s-aws-id&x-amz-date={}&x-amz-expires=60",
        t()
    );
    assert!(validate(&tok(&url), Partition::AwsCn, Some("not-a-region4"), now()).is_ok());
    assert!(validate(&tok(&url), Partition::AwsCn, None, now()).is_err());
}

proptest::proptest! {
    #[test]
    fn never_panics_on_strings(s in ".*") {
        let _ = validate(&s, Partition::Aws, None, now());
        let _ = validate(&format!("k8s-aws-v1.{s}"), Partition::Aws, Some("us-west-2"), now());
        let _ = crate::arn::canonicalize(&s);
    }

    #[test]
    fn never_panics_on_bytes(b in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let token = format!("k8s-aws-v1.{}", URL_SAFE_NO_PAD.encode(&b));
        for p in Partition::ALL {
            let _ = validate(&token, p, None, now());
        }
    }

    #[test]
    fn never_panics_on_url_like(
        host in "[a-z0-9.:@%\\[\\]-]{0,40}",
        path in "[/a-z%0-9]{0,6}",
        query in "[a-zA-Z0-9=&;%+-]{0,80}",
    ) {
        let url = format!("https://{host}{path}?{query}");
        let _ = validate(&tok(&url), Partition::Aws, Some("us-east-1"), now());
        let q = format!("{}&{query}", good(""));
        let _ = validate(&tok(&q), Partition::Aws, None, now());
    }
}

/// Host errors are typed (callers such as `verify` match on the variant, not the text)
/// and keep upstream's texts and prefixes.
#[test]
fn host_errors_are_typed_with_upstreams_texts() {
    use crate::aws::endpoints::HostError;
    let e = validate(
        &tok("https://sts.s3.amazonaws.com/?action=GetCallerIdentity"),
        Partition::Aws,
        None,
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(e, VerifyError::Host(HostError::UnexpectedHostname(ref h)) if h == "sts.s3.amazonaws.com"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "input token was not properly formatted: unexpected hostname \"sts.s3.amazonaws.com\" in pre-signed URL"
    );
    let e = validate(
        &tok("https://sts.us_east_1.amazonaws.com/"),
        Partition::Aws,
        None,
        now(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid region identifier format provided: us_east_1"
    );
    assert_eq!(e.metric_label(), "invalid_token");
}
