//! AWS Query API calls: a form `POST`, SigV4-signed in the headers (EC2, STS) or unsigned
//! (STS `AssumeRoleWithWebIdentity`), and the bounded exchange that reads its answer.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};

/// The content type of every Query API body.
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Who signs a request: the keys, the signing region and the service (`ec2`, `sts`).
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    /// The keys.
    pub credentials: &'a Credentials,
    /// The signing region.
    pub region: &'a str,
    /// The signing name of the service.
    pub service: &'a str,
}

/// A form `POST` of `body` to `url` with `headers`, signed by `signer` (headers
/// included) when given.
pub fn post(
    url: &str,
    body: String,
    headers: &[(&'static str, String)],
    signer: Option<Signer<'_>>,
) -> Result<http::Request<Full<Bytes>>, String> {
    let mut builder = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
        .header(http::header::USER_AGENT, super::user_agent());
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    let Some(signer) = signer else {
        return builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string());
    };
    let identity = signer.credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(signer.region)
        .name(signer.service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signed_headers = std::iter::once(("content-type", CONTENT_TYPE))
        .chain(headers.iter().map(|(n, v)| (*n, v.as_str())));
    let signable = SignableRequest::new(
        "POST",
        url,
        signed_headers,
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(request)
}

/// Why an exchange gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Transport(String),
    /// The answer was longer than the limit.
    #[error("the answer is longer than {0} bytes")]
    TooLarge(usize),
    /// No whole answer within the budget.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Sends `request` and reads the status and at most `limit` bytes of body, all within
/// `timeout`.
pub async fn exchange<C, B>(
    client: &hyper_util::client::legacy::Client<C, B>,
    request: http::Request<B>,
    timeout: Duration,
    limit: usize,
) -> Result<(http::StatusCode, Bytes), ExchangeError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let call = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| ExchangeError::Transport(crate::error::error_chain(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    ExchangeError::TooLarge(limit)
                } else {
                    ExchangeError::Transport(crate::error::error_chain(e.as_ref()))
                }
            })?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| ExchangeError::Timeout(timeout))?
}

/// What a form body leaves unencoded: RFC 3986's unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `key=value&…` with both sides percent-encoded as the Query API expects.
pub fn encode(params: &[(&str, &str)]) -> String {
    let enc = |s| percent_encoding::utf8_percent_encode(s, UNRESERVED);
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_posts_sign_the_extra_headers() {
        let creds = Credentials::new("AKID", "secret", Some("tok".into()), None, "t");
        let signer = Signer {
            credentials: &creds,
            region: "us-west-2",
            service: "sts",
        };
        let headers = [("x-amz-source-account", "111122223333".to_owned())];
        let req = post(
            "https://sts.example.com/",
            "A=1".into(),
            &headers,
            Some(signer),
        )
        .unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(auth.contains("/us-west-2/sts/aws4_request"), "{auth}");
        assert!(auth.contains("x-amz-source-account"), "{auth}");
        assert_eq!(req.headers()["x-amz-security-token"], "tok");
        let unsigned = post("https://sts.example.com/", "A=1".into(), &headers, None).unwrap();
        assert!(unsigned.headers().get("authorization").is_none());
        assert_eq!(unsigned.headers()["x-amz-source-account"], "111122223333");
    }

    #[test]
    fn form_bodies_are_percent_encoded() {
        assert_eq!(
            encode(&[
                ("Action", "AssumeRole"),
                ("RoleArn", "arn:aws:iam::1:role/a b")
            ]),
            "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b"
        );
    }
}
