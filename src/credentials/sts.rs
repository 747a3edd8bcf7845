//! The STS Query API calls credentials need (`AssumeRole`, `AssumeRoleWithWebIdentity`,
//! `GetCallerIdentity`): a form `POST` (SigV4-signed, except the web identity one) over
//! the shared HTTPS client ([`crate::https`]), the XML answer read with `aws-smithy-xml`,
//! STS's error code and message kept in the error.
//!
//! The endpoint is `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the region's
//! STS host from our endpoint table ([`crate::aws::endpoints::sts_host`]); plain
//! `http://` only to loopback addresses (an emulator in tests).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::dns::GaiResolver;

use crate::https::{self, form};

/// The STS Query API version.
pub const API_VERSION: &str = "2011-06-15";
/// How long establishing a connection to STS may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The budget of one exchange (the SDK's STS client has no shorter one).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// STS answers to these calls are a few KiB.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The pause before the one retry of a transient failure.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// The most of an unreadable answer quoted in an error.
const MAX_QUOTED_BODY: usize = 256;

/// Why an STS call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsError {
    /// STS answered with an error document.
    #[error("STS {action} failed: {code}: {message} (HTTP {status})")]
    Service {
        /// The action called.
        action: &'static str,
        /// The HTTP status.
        status: u16,
        /// STS's error code, e.g. `AccessDenied`.
        code: String,
        /// STS's message.
        message: String,
    },
    /// No answer: connecting, sending, reading or the budget failed.
    #[error("STS {action} at {endpoint}: {error}")]
    Transport {
        /// The action called.
        action: &'static str,
        /// Where.
        endpoint: String,
        /// Why.
        error: String,
    },
    /// An answer that is not what STS sends.
    #[error("STS {action}: unexpected answer (HTTP {status}): {detail}")]
    Answer {
        /// The action called.
        action: &'static str,
        /// The HTTP status.
        status: u16,
        /// What is wrong with it.
        detail: String,
    },
    /// The endpoint or the request could not be built.
    #[error("STS {0}")]
    Setup(String),
}

impl StsError {
    /// Worth one more try: no answer, a server error or throttling.
    fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Service { status, code, .. } => {
                *status >= 500
                    || matches!(
                        code.as_str(),
                        "Throttling" | "ThrottlingException" | "RequestLimitExceeded"
                    )
            }
            Self::Answer { status, .. } => *status >= 500,
            Self::Setup(_) => false,
        }
    }
}

/// An STS endpoint and the client that calls it.
#[derive(Debug, Clone)]
pub struct Sts {
    http: https::Client<GaiResolver, Full<Bytes>>,
    url: String,
    region: String,
}

impl Sts {
    /// STS for `region`: the endpoint override variables, else the regional endpoint.
    pub fn for_region(region: &str, proxy: https::proxy::ProxyEnv) -> Result<Self, StsError> {
        let url = url_for_region(region, |v| std::env::var(v).ok());
        Self::new(&url, region, proxy)
    }

    /// STS at `url`, signing for `region`.
    pub fn new(url: &str, region: &str, proxy: https::proxy::ProxyEnv) -> Result<Self, StsError> {
        let bad = |m: &str| StsError::Setup(format!("endpoint {url:?}: {m}"));
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if https::proxy::is_loopback(host) => {}
            Some("http") => return Err(bad("plain http is only allowed to loopback addresses")),
            _ => return Err(bad("expected an https URL")),
        }
        let mut options = https::Options::new("STS", CONNECT_TIMEOUT);
        options.allow_http = true;
        options.http2 = false;
        options.proxy = proxy;
        let http = https::client(GaiResolver::new(), &options)
            .map_err(|e| StsError::Setup(e.to_string()))?;
        Ok(Self {
            http,
            url: uri.to_string(),
            region: region.to_owned(),
        })
    }

    /// The endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `action` with `params` (signed with `credentials` when given, with the extra
    /// `headers`), once more after a transient failure, and returns the named fields
    /// of its answer.
    pub async fn call(
        &self,
        action: &'static str,
        params: &[(&str, &str)],
        headers: &[(&'static str, String)],
        credentials: Option<&Credentials>,
        fields: &[&str],
    ) -> Result<HashMap<String, String>, StsError> {
        let mut all = vec![("Action", action), ("Version", API_VERSION)];
        all.extend_from_slice(params);
        let body = form::encode(&all);
        let first = self.once(action, &body, headers, credentials, fields).await;
        match first {
            Err(e) if e.is_transient() => {
                tracing::debug!("retrying STS {action} once: {e}");
                tokio::time::sleep(RETRY_PAUSE).await;
                self.once(action, &body, headers, credentials, fields).await
            }
            other => other,
        }
    }

    async fn once(
        &self,
        action: &'static str,
        body: &str,
        headers: &[(&'static str, String)],
        credentials: Option<&Credentials>,
        fields: &[&str],
    ) -> Result<HashMap<String, String>, StsError> {
        let signer = credentials.map(|credentials| form::Signer {
            credentials,
            region: crate::aws::endpoints::signing_region(&self.region),
            service: "sts",
        });
        let request =
            form::post(&self.url, body.to_owned(), headers, signer).map_err(StsError::Setup)?;
        let (status, answer) = form::exchange(&self.http, request, CALL_TIMEOUT, MAX_BODY_BYTES)
            .await
            .map_err(|e| StsError::Transport {
                action,
                endpoint: self.url.clone(),
                error: e.to_string(),
            })?;
        interpret(
            action,
            status.as_u16(),
            &String::from_utf8_lossy(&answer),
            fields,
        )
    }
}

/// The endpoint override `get` names, else `region`'s STS endpoint (FIPS and dual-stack
/// as `AWS_USE_FIPS_ENDPOINT` / `AWS_USE_DUALSTACK_ENDPOINT` say).
pub fn url_for_region(region: &str, get: impl Fn(&str) -> Option<String>) -> String {
    let on = |var: &str| get(var).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let (fips, dual_stack) = (
        on("AWS_USE_FIPS_ENDPOINT"),
        on("AWS_USE_DUALSTACK_ENDPOINT"),
    );
    endpoint_override(get).unwrap_or_else(|| {
        format!(
            "https://{}/",
            crate::aws::endpoints::sts_host(region, fips, dual_stack)
        )
    })
}

/// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL` (unless
/// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), as the SDK's STS client reads them.
pub fn endpoint_override(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    if get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|var| get(var).filter(|v| !v.trim().is_empty()))
}

/// Reads an STS answer: `<Action>Response` with the wanted `fields` (each required),
/// or an `ErrorResponse`'s code and message.
pub fn interpret(
    action: &'static str,
    status: u16,
    xml: &str,
    fields: &[&str],
) -> Result<HashMap<String, String>, StsError> {
    let unexpected = |detail: String| StsError::Answer {
        action,
        status,
        detail,
    };
    let quoted = || xml.chars().take(MAX_QUOTED_BODY).collect::<String>();
    let (root, found) = match leaves(xml, &["Code", "Message"]) {
        Ok(parsed) => parsed,
        Err(e) => return Err(unexpected(format!("{e}: {}", quoted()))),
    };
    if root == "ErrorResponse" || !(200..300).contains(&status) {
        return match found.get("Code") {
            Some(code) => Err(StsError::Service {
                action,
                status,
                code: code.clone(),
                message: found.get("Message").cloned().unwrap_or_default(),
            }),
            None => Err(unexpected(quoted())),
        };
    }
    if root != format!("{action}Response") {
        return Err(unexpected(format!("<{root}>")));
    }
    let (_, found) = leaves(xml, fields).map_err(|e| unexpected(e.to_string()))?;
    match fields.iter().find(|f| !found.contains_key(**f)) {
        Some(missing) => Err(unexpected(format!("no {missing}"))),
        None => Ok(found),
    }
}

/// The root element's name and the text of the first element named each of `names`.
fn leaves(
    xml: &str,
    names: &[&str],
) -> Result<(String, HashMap<String, String>), aws_smithy_xml::decode::XmlDecodeError> {
    use aws_smithy_xml::decode::{Document, ScopedDecoder, XmlDecodeError, try_data};

    fn walk(
        el: &mut ScopedDecoder<'_, '_>,
        names: &[&str],
        out: &mut HashMap<String, String>,
    ) -> Result<(), XmlDecodeError> {
        while let Some(mut child) = el.next_tag() {
            let name = child.start_el().local().to_owned();
            if names.contains(&name.as_str()) && !out.contains_key(&name) {
                let text = try_data(&mut child)?.trim().to_owned();
                out.insert(name, text);
            } else {
                walk(&mut child, names, out)?;
            }
        }
        Ok(())
    }

    let mut doc = Document::new(xml);
    let mut root = doc.root_element()?;
    let name = root.start_el().local().to_owned();
    let mut out = HashMap::new();
    walk(&mut root, names, &mut out)?;
    Ok((name, out))
}

/// The `<Credentials>` fields of an AssumeRole-family answer.
pub const CREDENTIAL_FIELDS: &[&str] = &[
    "AccessKeyId",
    "SecretAccessKey",
    "SessionToken",
    "Expiration",
];

/// Temporary credentials from an answer's [`CREDENTIAL_FIELDS`].
pub fn credentials_of(
    action: &'static str,
    fields: &HashMap<String, String>,
    provider_name: &'static str,
) -> Result<Credentials, StsError> {
    let get = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    let expiry = parse_time(get("Expiration")).ok_or_else(|| StsError::Answer {
        action,
        status: 200,
        detail: format!("bad Expiration {:?}", get("Expiration")),
    })?;
    Ok(Credentials::new(
        get("AccessKeyId"),
        get("SecretAccessKey"),
        Some(get("SessionToken").to_owned()),
        Some(expiry),
        provider_name,
    ))
}

/// An RFC 3339 time, as STS, IMDS and container endpoints write expirations.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(SystemTime::from(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASSUMED: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>x</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/demo/s</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <SessionToken>AQoDYXdzEPT//////////wEXAMPLE</SessionToken>
      <Expiration>2026-12-02T09:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;

    #[test]
    fn assume_role_answers_give_temporary_credentials() {
        let fields = interpret("AssumeRole", 200, ASSUMED, CREDENTIAL_FIELDS).unwrap();
        let c = credentials_of("AssumeRole", &fields, "p").unwrap();
        assert_eq!(c.access_key_id(), "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(
            c.secret_access_key(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
        );
        assert_eq!(c.session_token(), Some("AQoDYXdzEPT//////////wEXAMPLE"));
        assert_eq!(c.expiry(), parse_time("2026-12-02T09:00:00Z"));
        let who = r#"<GetCallerIdentityResponse><GetCallerIdentityResult><UserId>AROA:me</UserId></GetCallerIdentityResult></GetCallerIdentityResponse>"#;
        let fields = interpret("GetCallerIdentity", 200, who, &["UserId"]).unwrap();
        assert_eq!(fields["UserId"], "AROA:me");
    }

    #[test]
    fn errors_carry_stss_code_and_message() {
        let denied = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::1:user/x is not authorized to perform: sts:AssumeRole</Message></Error>
  <RequestId>r</RequestId>
</ErrorResponse>"#;
        let e = interpret("AssumeRole", 403, denied, CREDENTIAL_FIELDS).unwrap_err();
        assert_eq!(
            e.to_string(),
            "STS AssumeRole failed: AccessDenied: User: arn:aws:iam::1:user/x is not authorized to perform: sts:AssumeRole (HTTP 403)"
        );
        assert!(!e.is_transient());
        let throttled = "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
        let e = interpret("AssumeRole", 400, throttled, CREDENTIAL_FIELDS).unwrap_err();
        assert!(e.is_transient(), "{e}");
        let table = [
            (
                502,
                "<html>bad gateway</html>",
                "unexpected answer (HTTP 502)",
                true,
            ),
            (200, "not xml", "unexpected answer (HTTP 200)", false),
            (
                200,
                "<GetCallerIdentityResponse/>",
                "<GetCallerIdentityResponse>",
                false,
            ),
            (
                200,
                "<AssumeRoleResponse><Credentials><AccessKeyId>a</AccessKeyId></Credentials></AssumeRoleResponse>",
                "no SecretAccessKey",
                false,
            ),
        ];
        for (status, body, want, transient) in table {
            let e = interpret("AssumeRole", status, body, CREDENTIAL_FIELDS).unwrap_err();
            assert!(e.to_string().contains(want), "{body}: {e}");
            assert_eq!(e.is_transient(), transient, "{body}");
        }
        let mut fields = interpret("AssumeRole", 200, ASSUMED, CREDENTIAL_FIELDS).unwrap();
        fields.insert("Expiration".into(), "tomorrow".into());
        let e = credentials_of("AssumeRole", &fields, "p").unwrap_err();
        assert!(e.to_string().contains("bad Expiration"), "{e}");
    }

    #[test]
    fn endpoint_overrides_and_plain_http_only_to_loopback() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(endpoint_override(env(&[])), None);
        assert_eq!(
            endpoint_override(env(&[
                ("AWS_ENDPOINT_URL", "https://all"),
                ("AWS_ENDPOINT_URL_STS", "https://sts")
            ])),
            Some("https://sts".into())
        );
        assert_eq!(
            endpoint_override(env(&[("AWS_ENDPOINT_URL", "https://all")])),
            Some("https://all".into())
        );
        assert_eq!(
            endpoint_override(env(&[
                ("AWS_ENDPOINT_URL_STS", "https://sts"),
                ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
            ])),
            None
        );
        let none = crate::https::proxy::ProxyEnv::none;
        assert!(Sts::new("http://127.0.0.1:1/", "us-west-2", none()).is_ok());
        let e = Sts::new("http://sts.example.com/", "us-west-2", none()).unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        assert_eq!(
            url_for_region("eu-west-1", env(&[])),
            "https://sts.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            url_for_region("cn-north-1", env(&[])),
            "https://sts.cn-north-1.amazonaws.com.cn/"
        );
        assert_eq!(
            url_for_region("us-east-2", env(&[("AWS_USE_FIPS_ENDPOINT", "true")])),
            "https://sts-fips.us-east-2.amazonaws.com/"
        );
    }
}
