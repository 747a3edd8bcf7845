//! Signing and sending `DescribeInstances`, and reading its answer.

use std::collections::HashMap;
use std::time::Duration;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::dns::GaiResolver;

use crate::https::form;

use super::{API_VERSION, Error, Settings};

/// How long establishing a connection to EC2 may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an error body quoted in an error message.
const MAX_QUOTED_BODY: usize = 512;
/// What a `DescribeInstances` answer may take beyond its instances (envelope, errors).
const BODY_BASE_BYTES: usize = 64 * 1024;
/// What one instance may take in it: a full description with its interfaces, volumes and
/// tags is a few KiB, so this leaves ample room while bounding what a call buffers.
const BODY_PER_INSTANCE_BYTES: usize = 64 * 1024;

/// The largest answer read for a call about `ids` instances (6.4 MiB for a full batch).
fn max_body_bytes(ids: usize) -> usize {
    BODY_BASE_BYTES.saturating_add(BODY_PER_INSTANCE_BYTES.saturating_mul(ids))
}

/// Signs and sends `DescribeInstances`.
#[derive(Debug)]
pub(super) struct Ec2Client {
    http: crate::https::Client<GaiResolver, Full<Bytes>>,
    endpoint: http::Uri,
    region: String,
    credentials: SharedCredentialsProvider,
    timeout: Duration,
}

impl Ec2Client {
    pub(super) fn new(
        settings: &Settings,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, Error> {
        let bad = |message: &str| Error::Endpoint {
            url: settings.endpoint.clone(),
            message: message.to_owned(),
        };
        let endpoint: http::Uri = settings
            .endpoint
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let host = endpoint.host().ok_or_else(|| bad("no host"))?;
        match endpoint.scheme_str() {
            Some("https") => {}
            Some("http") if crate::https::proxy::is_loopback(host) => {}
            Some("http") => return Err(bad("plain http is only allowed to loopback addresses")),
            _ => return Err(bad("expected an https URL")),
        }
        let mut options = crate::https::Options::new("EC2", CONNECT_TIMEOUT);
        // Plain http only to loopback (checked above): an emulator in tests.
        options.allow_http = true;
        options.http2 = false;
        options.proxy = settings.proxy.clone();
        let http = crate::https::client(GaiResolver::new(), &options)?;
        Ok(Self {
            http,
            endpoint,
            region: settings.region.clone(),
            credentials,
            timeout: settings.call_timeout,
        })
    }

    /// The form body of a `DescribeInstances` call for `ids`.
    fn body(ids: &[String]) -> String {
        let mut body =
            format!("Action=DescribeInstances&Version={API_VERSION}&Filter.1.Name=instance-id");
        for (n, id) in ids.iter().enumerate() {
            body.push_str(&format!(
                "&Filter.1.Value.{}={}",
                n + 1,
                percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
            ));
        }
        body
    }

    /// `DescribeInstances` for `ids`: instance id → private DNS name, for those found.
    pub(super) async fn describe(&self, ids: &[String]) -> Result<HashMap<String, String>, String> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("no credentials: {e}"))?;
        let signer = form::Signer {
            credentials: &credentials,
            region: &self.region,
            service: "ec2",
        };
        let request = form::post(
            &self.endpoint.to_string(),
            Self::body(ids),
            &[],
            Some(signer),
        )?;
        let limit = max_body_bytes(ids.len());
        let (status, body) = form::exchange(&self.http, request, self.timeout, limit)
            .await
            .map_err(|e| match e {
                form::ExchangeError::TooLarge(_) => format!(
                    "EC2 answered more than {limit} bytes for {} instance(s)",
                    ids.len()
                ),
                other => other.to_string(),
            })?;
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() {
            let quoted: String = text.chars().take(MAX_QUOTED_BODY).collect();
            return Err(format!("EC2 answered {status}: {quoted}"));
        }
        parse_describe_instances(&text)
    }
}

/// Reads `instanceId` → `privateDnsName` from a `DescribeInstancesResponse`.
pub fn parse_describe_instances(xml: &str) -> Result<HashMap<String, String>, String> {
    use aws_smithy_xml::decode::{Document, ScopedDecoder, try_data};

    fn instance(item: &mut ScopedDecoder<'_, '_>) -> Result<(String, String), String> {
        let (mut id, mut dns) = (String::new(), String::new());
        while let Some(mut field) = item.next_tag() {
            if field.start_el().matches("instanceId") {
                id = try_data(&mut field)
                    .map_err(|e| e.to_string())?
                    .into_owned();
            } else if field.start_el().matches("privateDnsName") {
                dns = try_data(&mut field)
                    .map_err(|e| e.to_string())?
                    .into_owned();
            }
        }
        Ok((id, dns))
    }

    fn walk(
        el: &mut ScopedDecoder<'_, '_>,
        out: &mut HashMap<String, String>,
    ) -> Result<(), String> {
        while let Some(mut child) = el.next_tag() {
            if child.start_el().matches("instancesSet") {
                while let Some(mut item) = child.next_tag() {
                    let (id, dns) = instance(&mut item)?;
                    if !id.is_empty() {
                        out.insert(id, dns);
                    }
                }
            } else {
                walk(&mut child, out)?;
            }
        }
        Ok(())
    }

    let mut doc = Document::new(xml);
    let mut root = doc.root_element().map_err(|e| e.to_string())?;
    if !root.start_el().matches("DescribeInstancesResponse") {
        return Err(format!(
            "unexpected EC2 answer <{}>",
            root.start_el().local()
        ));
    }
    let mut out = HashMap::new();
    walk(&mut root, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    const ANSWER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
    <reservationSet>
        <item>
            <reservationId>r-1234567890abcdef0</reservationId>
            <ownerId>123456789012</ownerId>
            <groupSet/>
            <instancesSet>
                <item>
                    <instanceId>i-1234567890abcdef0</instanceId>
                    <imageId>ami-bff32ccc</imageId>
                    <instanceState><code>16</code><name>running</name></instanceState>
                    <privateDnsName>ip-192-168-1-88.eu-west-1.compute.internal</privateDnsName>
                    <dnsName/>
                    <networkInterfaceSet><item><privateDnsName>other</privateDnsName></item></networkInterfaceSet>
                </item>
                <item>
                    <instanceId>i-0598c7d356eba48d7</instanceId>
                    <privateDnsName/>
                </item>
            </instancesSet>
        </item>
    </reservationSet>
</DescribeInstancesResponse>"#;

    #[test]
    fn parses_describe_instances() {
        let m = parse_describe_instances(ANSWER).unwrap();
        assert_eq!(
            m["i-1234567890abcdef0"],
            "ip-192-168-1-88.eu-west-1.compute.internal"
        );
        assert_eq!(m["i-0598c7d356eba48d7"], "");
        assert_eq!(m.len(), 2);
        let empty = parse_describe_instances(
            "<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>",
        )
        .unwrap();
        assert!(empty.is_empty());
        assert!(parse_describe_instances("<Response><Errors/></Response>").is_err());
        assert!(parse_describe_instances("not xml").is_err());
    }

    #[test]
    fn request_body_uses_the_instance_id_filter() {
        assert_eq!(
            Ec2Client::body(&["i-1".to_owned(), "i-2".to_owned()]),
            "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-id&Filter.1.Value.1=i%2D1&Filter.1.Value.2=i%2D2"
        );
    }

    #[test]
    fn endpoints() {
        let creds = SharedCredentialsProvider::new(Credentials::new("a", "b", None, None, "t"));
        let s = |url: &str| Settings::new(url.to_owned(), "us-west-2".to_owned(), 1, 1);
        assert!(Ec2Client::new(&s("https://ec2.us-west-2.amazonaws.com/"), creds.clone()).is_ok());
        assert!(Ec2Client::new(&s("http://127.0.0.1:8080/"), creds.clone()).is_ok());
        let e = Ec2Client::new(&s("http://ec2.example.com/"), creds.clone()).unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        assert!(Ec2Client::new(&s("ftp://x/"), creds).is_err());
    }
}
