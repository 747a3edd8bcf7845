//! Minting tokens: a SigV4 query-presigned STS `GetCallerIdentity` URL, base64url-encoded.
//!
//! Everything here is pure (no I/O, no clock): credentials, region, host, cluster id and
//! signing time go in, the URL or token comes out. Fetching credentials is the CLI's job.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{CLUSTER_ID_HEADER, PRESIGN_EXPIRES_SECS, TOKEN_LIFETIME_SECS, Token, V1_PREFIX};
// The host and signing region come from the table the server checks hosts against.
pub use crate::aws::endpoints::{GLOBAL_REGION, signing_region, sts_host as sts_host_for};

/// The query every token starts with (upstream's parameter order).
const BASE_QUERY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// SigV4's unreserved characters (RFC 3986): everything else is percent-encoded, as
/// upstream's Go signer does (`/` → `%2F`, `;` → `%3B`, `+` → `%2B`, `=` → `%3D`).
const AWS_QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why a token could not be presigned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The STS host (from the region or an endpoint override) does not make a valid URL.
    #[error("invalid sts endpoint host {host:?}")]
    InvalidHost {
        /// The offending host.
        host: String,
    },
    /// The signer rejected its parameters (e.g. an empty region).
    #[error("could not build the signing parameters")]
    Params(#[source] aws_sigv4::sign::v4::signing_params::BuildError),
    /// The signer failed (e.g. a header value it cannot sign).
    #[error("could not presign the sts request")]
    Signing(#[source] aws_sigv4::http_request::SigningError),
}

/// A freshly minted token and the time kubectl should stop using it.
#[derive(Debug, Clone)]
pub struct GeneratedToken {
    /// The `k8s-aws-v1.` token.
    pub token: Token,
    /// Signing time + 14 minutes (upstream's lifetime), possibly capped by the caller.
    pub expiration: SystemTime,
}

/// Presigns STS `GetCallerIdentity` at `https://<sts_host>/` for `cluster_id`, signed at
/// `at`, and returns the URL.
///
/// The signature covers the headers `host` and `x-k8s-aws-id` (whose value is not in the
/// URL: the server re-supplies its own cluster id, so a token only works for one cluster)
/// and the SHA-256 of an empty payload. `X-Amz-Expires` is always 60. The query parameters
/// come in upstream's order: `Action, Version, X-Amz-Algorithm, X-Amz-Credential,
/// X-Amz-Date, X-Amz-Expires, [X-Amz-Security-Token], X-Amz-SignedHeaders, X-Amz-Signature`.
pub fn presign(
    credentials: &Credentials,
    region: &str,
    sts_host: &str,
    cluster_id: &str,
    at: SystemTime,
) -> Result<String, Error> {
    let base = format!("https://{sts_host}/");
    if base.parse::<http::Uri>().is_err() || sts_host.is_empty() || sts_host.contains('/') {
        return Err(Error::InvalidHost {
            host: sts_host.to_owned(),
        });
    }
    let unsigned = format!("{base}?{BASE_QUERY}");

    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(PRESIGN_EXPIRES_SECS));
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(signing_region(region))
        .name("sts")
        .time(at)
        .settings(settings)
        .build()
        .map_err(Error::Params)?
        .into();
    // `SignableBody::Bytes(b"")` hashes the empty payload (upstream signs
    // `e3b0c442…b855`, not `UNSIGNED-PAYLOAD`).
    let request = SignableRequest::new(
        "GET",
        unsigned.as_str(),
        std::iter::once((CLUSTER_ID_HEADER, cluster_id)),
        SignableBody::Bytes(&[]),
    )
    .map_err(Error::Signing)?;
    let (instructions, _signature) = sign(request, &params).map_err(Error::Signing)?.into_parts();
    let (_headers, signed) = instructions.into_parts();

    // The signer returns its parameters in its own order; the signature does not depend on
    // the order in the URL, so lay them out as upstream does.
    const ORDER: [&str; 7] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-Security-Token",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    ];
    let rank = |name: &str| ORDER.iter().position(|o| *o == name).unwrap_or(ORDER.len());
    let mut signed: Vec<(&str, Cow<'static, str>)> = signed;
    signed.sort_by_key(|(name, _)| rank(name));
    let mut url = unsigned;
    for (name, value) in &signed {
        url.push('&');
        url.extend(utf8_percent_encode(name, AWS_QUERY));
        url.push('=');
        url.extend(utf8_percent_encode(value, AWS_QUERY));
    }
    Ok(url)
}

/// Encodes a presigned URL as a token: `k8s-aws-v1.` + base64url without padding.
pub fn encode_token(url: &str) -> Token {
    Token::new(format!("{V1_PREFIX}{}", URL_SAFE_NO_PAD.encode(url)))
}

/// Presigns and encodes in one step; the expiration is `at` + 14 minutes (a minute short
/// of the 15 STS accepts the URL for).
pub fn generate(
    credentials: &Credentials,
    region: &str,
    sts_host: &str,
    cluster_id: &str,
    at: SystemTime,
) -> Result<GeneratedToken, Error> {
    let url = presign(credentials, region, sts_host, cluster_id, at)?;
    Ok(GeneratedToken {
        token: encode_token(&url),
        expiration: at + Duration::from_secs(TOKEN_LIFETIME_SECS.unsigned_abs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden_creds(session_token: Option<&str>) -> Credentials {
        Credentials::new(
            "ASIAR2TG44V6AS3ZZE7C",
            "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q",
            session_token.map(str::to_owned),
            None,
            "test",
        )
    }

    fn golden_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_682_640_000)
    }

    const GOLDEN_URL: &str = "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAR2TG44V6AS3ZZE7C%2F20230428%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date=20230428T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=e211dba77aba9dc44b0b6be38b8eaad092599c5157f6314444c5b9d85747f5ce";

    #[test]
    fn golden_vector_matches_upstream_byte_for_byte() {
        let host = sts_host_for("us-west-2", false, false);
        let url = presign(
            &golden_creds(None),
            "us-west-2",
            &host,
            "test-cluster",
            golden_time(),
        )
        .unwrap();
        assert_eq!(url, GOLDEN_URL);
    }

    #[test]
    fn token_is_prefixed_base64url_of_the_url_and_lives_14_minutes() {
        let host = sts_host_for("us-west-2", false, false);
        let generated = generate(
            &golden_creds(None),
            "us-west-2",
            &host,
            "test-cluster",
            golden_time(),
        )
        .unwrap();
        let token = generated.token.expose();
        let encoded = token.strip_prefix("k8s-aws-v1.").unwrap();
        assert!(!encoded.contains('='), "no padding: {encoded}");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(encoded).unwrap(),
            GOLDEN_URL.as_bytes()
        );
        assert_eq!(
            generated.expiration,
            golden_time() + Duration::from_secs(14 * 60)
        );
    }

    #[test]
    fn another_cluster_gives_another_signature() {
        let url = presign(
            &golden_creds(None),
            "us-west-2",
            "sts.us-west-2.amazonaws.com",
            "other-cluster",
            golden_time(),
        )
        .unwrap();
        assert_ne!(url, GOLDEN_URL);
        assert!(url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature="));
    }

    /// Recomputes the signature with a plain SigV4 implementation (HMAC-SHA256 by hand),
    /// with the session token in the canonical query, and checks the URL's signature.
    #[test]
    fn session_token_is_in_the_url_and_signed() {
        let session = "FwoGZXIvYXdzEJr//////////wEaDNo+token=";
        let url = presign(
            &golden_creds(Some(session)),
            "us-west-2",
            "sts.us-west-2.amazonaws.com",
            "test-cluster",
            golden_time(),
        )
        .unwrap();
        let encoded_session = utf8_percent_encode(session, AWS_QUERY).to_string();
        assert!(encoded_session.contains("%2F") && encoded_session.contains("%2B"));
        let (prefix, signature) = url.split_once("&X-Amz-Signature=").unwrap();
        let expected_prefix = format!(
            "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAR2TG44V6AS3ZZE7C%2F20230428%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date=20230428T000000Z&X-Amz-Expires=60&X-Amz-Security-Token={encoded_session}&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"
        );
        assert_eq!(prefix, expected_prefix);

        assert_eq!(
            signature,
            independent_signature(
                prefix,
                "test-cluster",
                "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q",
                "20230428T000000Z",
                "us-west-2"
            )
        );
    }

    /// SigV4 by hand (HMAC-SHA256 from the `hmac` crate), sharing no code with the
    /// signer: the URL's query (sorted already, by construction) is the canonical query.
    fn independent_signature(
        url_without_signature: &str,
        cluster_id: &str,
        secret: &str,
        amz_date: &str,
        region: &str,
    ) -> String {
        use hmac::{Hmac, KeyInit, Mac};
        use sha2::{Digest, Sha256};

        let rest = url_without_signature.strip_prefix("https://").unwrap();
        let (host, query) = rest.split_once("/?").unwrap();
        let canonical = format!(
            "GET\n/\n{query}\nhost:{host}\nx-k8s-aws-id:{cluster_id}\n\nhost;x-k8s-aws-id\n{}",
            hex(&Sha256::digest(b""))
        );
        let day = &amz_date[..8];
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{day}/{region}/sts/aws4_request\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let mac = |key: &[u8], data: &[u8]| {
            let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        };
        let k = mac(format!("AWS4{secret}").as_bytes(), day.as_bytes());
        let k = mac(&k, region.as_bytes());
        let k = mac(&k, b"sts");
        let k = mac(&k, b"aws4_request");
        hex(&mac(&k, string_to_sign.as_bytes()))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any realistic cluster id, session token, secret, region and time: the
        /// parameters keep upstream's order and the signature is what SigV4 says.
        #[test]
        fn any_input_signs_correctly(
            cluster_id in "[a-zA-Z0-9._:/-]{1,100}",
            secret in "[a-zA-Z0-9+/]{40}",
            session in proptest::option::of("[a-zA-Z0-9+/=]{1,400}"),
            region in "(us|eu|ap|cn|us-gov)-(east|west|south)-[1-9]",
            secs in 0u64..4_000_000_000,
        ) {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let creds = Credentials::new("ASIAEXAMPLE", secret.clone(), session.clone(), None, "p");
            let host = sts_host_for(&region, false, false);
            let url = presign(&creds, &region, &host, &cluster_id, at).unwrap();
            let amz_date = time::OffsetDateTime::from(at)
                .format(time::macros::format_description!(
                    "[year][month][day]T[hour][minute][second]Z"
                ))
                .unwrap();
            let names: Vec<&str> = url
                .split_once('?')
                .unwrap()
                .1
                .split('&')
                .map(|kv| kv.split_once('=').unwrap().0)
                .collect();
            let mut want = vec![
                "Action",
                "Version",
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Date",
                "X-Amz-Expires",
            ];
            if session.is_some() {
                want.push("X-Amz-Security-Token");
            }
            want.extend(["X-Amz-SignedHeaders", "X-Amz-Signature"]);
            proptest::prop_assert_eq!(names, want);
            let (prefix, signature) = url.split_once("&X-Amz-Signature=").unwrap();
            let date_param = format!("&X-Amz-Date={amz_date}&");
            proptest::prop_assert!(prefix.contains(&date_param));
            proptest::prop_assert_eq!(
                signature,
                independent_signature(prefix, &cluster_id, &secret, &amz_date, &region)
            );
            // The token round-trips to the URL.
            let token = encode_token(&url);
            let decoded = URL_SAFE_NO_PAD
                .decode(token.expose().strip_prefix(V1_PREFIX).unwrap())
                .unwrap();
            proptest::prop_assert_eq!(decoded, url.as_bytes());
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn global_region_signs_as_us_east_1() {
        let url = presign(
            &golden_creds(None),
            GLOBAL_REGION,
            &sts_host_for(GLOBAL_REGION, false, false),
            "test-cluster",
            golden_time(),
        )
        .unwrap();
        assert!(url.starts_with("https://sts.amazonaws.com/?"), "{url}");
        assert!(
            url.contains("%2F20230428%2Fus-east-1%2Fsts%2Faws4_request"),
            "{url}"
        );
    }

    #[test]
    fn invalid_hosts_are_rejected() {
        for host in ["", "a b", "x/y"] {
            let err =
                presign(&golden_creds(None), "us-west-2", host, "c", golden_time()).unwrap_err();
            assert!(matches!(err, Error::InvalidHost { .. }), "{host}: {err}");
        }
    }
}
