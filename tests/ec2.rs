//! `{{EC2PrivateDNSName}}` lookups against a local EC2 Query API emulator.
#![allow(clippy::unwrap_used)]

mod common;

use common::sts_emulator;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_iam_authenticator::ec2::{Ec2Metrics, Ec2PrivateDns, PrivateDnsLookup, Settings};
use aws_iam_authenticator::metrics;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use sha2::{Digest, Sha256};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Checks a header-signed SigV4 POST the way AWS does (independently of the signer
/// under test): rebuild the canonical request from what was received, derive the key
/// from the secret, compare signatures.
fn verify_sigv4(headers: &hyper::HeaderMap, path: &str, body: &[u8]) -> Result<(), String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no authorization")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let field = |name: &str| {
        rest.split(", ")
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
            .ok_or(format!("no {name}"))
    };
    let credential = field("Credential")?;
    let signed_headers = field("SignedHeaders")?;
    let signature = field("Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(format!("bad credential scope {credential}"));
    };
    if key_id != "AKIDEXAMPLE" || region != "us-west-2" || service != "ec2" {
        return Err(format!("unexpected scope {credential}"));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("no x-amz-date")?;
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let value = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("signed header {name} missing"))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let canonical = format!(
        "POST\n{}\n\n{canonical_headers}\n{signed_headers}\n{}",
        sts_emulator::canonical_uri(path),
        sts_emulator::hex(&Sha256::digest(body))
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        sts_emulator::hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = sts_emulator::signing_key(SECRET, date, region, service);
    let expected = sts_emulator::hex(&sts_emulator::hmac_sha256(&key, to_sign.as_bytes()));
    if expected != signature {
        return Err(format!(
            "signature mismatch for canonical request:\n{canonical}"
        ));
    }
    Ok(())
}

/// One DescribeInstances call the emulator received.
#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    ids: Vec<String>,
}

#[derive(Debug, Default)]
struct EmuState {
    instances: HashMap<String, String>,
    calls: Vec<Call>,
    failures: u32,
    /// Bytes of filler added to each answer.
    padding: usize,
    problems: Vec<String>,
}

/// A tiny EC2: answers `DescribeInstances` (instance-id filter) from a table.
#[derive(Debug, Clone)]
struct Ec2Emulator {
    url: String,
    state: Arc<Mutex<EmuState>>,
}

fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let d = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (d(k), d(v))
        })
        .collect()
}

impl Ec2Emulator {
    async fn start(instances: &[(&str, &str)]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(EmuState {
            instances: instances
                .iter()
                .map(|(i, d)| ((*i).to_owned(), (*d).to_owned()))
                .collect(),
            ..Default::default()
        }));
        let emu = Self { url, state };
        let server = emu.clone();
        common::http::serve(listener, None, move |_, req| {
            let server = server.clone();
            async move { server.handle(req).await }
        });
        emu
    }

    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let at = Instant::now();
        let headers = req.headers().clone();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let params = form(&String::from_utf8_lossy(&body));
        let mut st = self.state.lock().unwrap();
        if method != hyper::Method::POST {
            st.problems.push(format!("method {method}"));
        }
        if let Err(e) = verify_sigv4(&headers, &path, &body) {
            st.problems.push(e);
        }
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if get("Action").as_deref() != Some("DescribeInstances")
            || get("Version").as_deref() != Some("2016-11-15")
            || get("Filter.1.Name").as_deref() != Some("instance-id")
        {
            st.problems.push(format!("bad params {params:?}"));
        }
        let ids: Vec<String> = params
            .iter()
            .filter(|(k, _)| k.starts_with("Filter.1.Value."))
            .map(|(_, v)| v.clone())
            .collect();
        st.calls.push(Call {
            at,
            ids: ids.clone(),
        });
        if st.failures > 0 {
            st.failures -= 1;
            let mut r = Response::new(Full::new(Bytes::from_static(
                b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors></Response>",
            )));
            *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
            return r;
        }
        let items: String = ids
            .iter()
            .filter_map(|id| st.instances.get(id).map(|dns| (id, dns)))
            .map(|(id, dns)| {
                format!(
                    "<item><instanceId>{id}</instanceId><privateDnsName>{dns}</privateDnsName></item>"
                )
            })
            .collect();
        let filler = "x".repeat(st.padding);
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId><filler>{filler}</filler><reservationSet><item><reservationId>r-1</reservationId><instancesSet>{items}</instancesSet></item></reservationSet></DescribeInstancesResponse>"
        );
        Response::new(Full::new(Bytes::from(xml)))
    }

    fn calls(&self) -> Vec<Call> {
        let st = self.state.lock().unwrap();
        assert!(st.problems.is_empty(), "{:?}", st.problems);
        st.calls.clone()
    }
}

fn dns(i: usize) -> String {
    format!("ip-10-0-0-{i}.us-west-2.compute.internal")
}

fn id(i: usize) -> String {
    format!("i-{i:017x}")
}

fn lookup(emu: &Ec2Emulator, tweak: impl FnOnce(&mut Settings)) -> Arc<Ec2PrivateDns> {
    lookup_counted(emu, tweak, Ec2Metrics::default())
}

fn lookup_counted(
    emu: &Ec2Emulator,
    tweak: impl FnOnce(&mut Settings),
    counted: Ec2Metrics,
) -> Arc<Ec2PrivateDns> {
    let mut s = Settings::new(emu.url.clone(), "us-west-2".to_owned(), 0, 1);
    s.batch_window = Duration::from_millis(50);
    tweak(&mut s);
    let creds =
        SharedCredentialsProvider::new(Credentials::new("AKIDEXAMPLE", SECRET, None, None, "test"));
    Arc::new(Ec2PrivateDns::new(s, creds, counted).unwrap())
}

async fn fleet(n: usize) -> Ec2Emulator {
    let table: Vec<(String, String)> = (0..n).map(|i| (id(i), dns(i))).collect();
    let refs: Vec<(&str, &str)> = table
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Ec2Emulator::start(&refs).await
}

#[tokio::test]
async fn a_found_name_is_cached() {
    let emu = fleet(3).await;
    let mut root = metrics::registry();
    let counted = Ec2Metrics::register(metrics::prefixed(&mut root));
    let l = lookup_counted(&emu, |_| {}, counted);
    assert_eq!(l.private_dns_name(&id(1)).await.unwrap(), dns(1));
    assert_eq!(l.private_dns_name(&id(1)).await.unwrap(), dns(1));
    assert_eq!(emu.calls().len(), 1);
    let text = metrics::encode(&root);
    let calls = "aws_iam_authenticator_ec2_describe_instances_calls_total";
    assert_eq!(metrics::sample(&text, calls, ""), Some(1.0), "{text}");
}

#[tokio::test]
async fn concurrent_lookups_are_coalesced_and_batched() {
    let emu = fleet(150).await;
    let l = lookup(&emu, |s| s.batch_window = Duration::from_millis(100));
    let mut tasks = Vec::new();
    // 150 distinct ids, each asked for three times at once.
    for round in 0..3 {
        for i in 0..150 {
            let l = Arc::clone(&l);
            tasks.push(tokio::spawn(async move {
                let _ = round;
                (i, l.private_dns_name(&id(i)).await)
            }));
        }
    }
    for t in tasks {
        let (i, answer) = t.await.unwrap();
        assert_eq!(answer.unwrap(), dns(i));
    }
    let calls = emu.calls();
    // At most 100 ids per call: two calls for 150 ids, each id asked once.
    assert_eq!(
        calls.len(),
        2,
        "{:?}",
        calls.iter().map(|c| c.ids.len()).collect::<Vec<_>>()
    );
    assert!(calls.iter().all(|c| c.ids.len() <= 100));
    let asked: usize = calls.iter().map(|c| c.ids.len()).sum();
    assert_eq!(asked, 150);
}

#[tokio::test]
async fn calls_are_rate_limited() {
    let emu = fleet(5).await;
    // One id per call, no batching window: only the token bucket spaces the calls.
    let l = lookup(&emu, |s| {
        s.max_batch = 1;
        s.batch_window = Duration::ZERO;
        s.qps = 20;
        s.burst = 1;
    });
    let start = Instant::now();
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let l = Arc::clone(&l);
            tokio::spawn(async move { l.private_dns_name(&id(i)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let calls = emu.calls();
    assert_eq!(calls.len(), 5);
    // 20 qps with a burst of 1: the k-th call cannot leave before k × 50 ms (a call can
    // arrive late under load, never early; a little slack for timer granularity).
    for (k, call) in calls.iter().enumerate() {
        let earliest =
            Duration::from_millis(50 * k as u64).saturating_sub(Duration::from_millis(5));
        let at = call.at.duration_since(start);
        assert!(at >= earliest, "call {k} at {at:?}, before {earliest:?}");
    }
}

#[tokio::test]
async fn not_found_fails_fast_and_is_cached_briefly() {
    let emu = fleet(1).await;
    let l = lookup(&emu, |s| s.not_found_ttl = Duration::from_millis(300));
    let missing = "i-0123456789abcdef0";
    let e = l.private_dns_name(missing).await.unwrap_err();
    assert_eq!(e, format!("failed to find node {missing} "));
    // A second lookup answers at once from the negative cache: no hang, no call.
    let start = Instant::now();
    let e = l.private_dns_name(missing).await.unwrap_err();
    assert!(e.contains("failed to find node"));
    assert!(start.elapsed() < Duration::from_millis(100));
    assert_eq!(emu.calls().len(), 1);
    // Found ids in the same process still work.
    assert_eq!(l.private_dns_name(&id(0)).await.unwrap(), dns(0));
    // After the negative TTL, EC2 is asked again (the instance may exist by now). The
    // TTL is on tokio's clock: it is advanced past it instead of slept through, and
    // resumed before the next lookup's real I/O (a paused clock would jump ahead while
    // the lookup waits on its socket).
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(350)).await;
    tokio::time::resume();
    emu.state
        .lock()
        .unwrap()
        .instances
        .insert(missing.to_owned(), "ip-10-9-9-9.ec2.internal".to_owned());
    assert_eq!(
        l.private_dns_name(missing).await.unwrap(),
        "ip-10-9-9-9.ec2.internal"
    );
}

#[tokio::test]
async fn api_errors_are_reported_and_not_cached() {
    let emu = fleet(1).await;
    emu.state.lock().unwrap().failures = 1;
    let l = lookup(&emu, |_| {});
    let e = l.private_dns_name(&id(0)).await.unwrap_err();
    assert!(
        e.starts_with(&format!(
            "failed querying private DNS from EC2 API for node {}: ",
            id(0)
        )),
        "{e}"
    );
    assert!(e.contains("RequestLimitExceeded"), "{e}");
    assert_eq!(l.private_dns_name(&id(0)).await.unwrap(), dns(0));
    assert_eq!(emu.calls().len(), 2);
}

#[tokio::test]
async fn an_empty_private_dns_name_is_not_a_name() {
    let emu = Ec2Emulator::start(&[("i-00000000000000001", "")]).await;
    let l = lookup(&emu, |_| {});
    assert!(l.private_dns_name("i-00000000000000001").await.is_err());
}

#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let emu = fleet(1).await;
    // One id per call: the answer may take 64 KiB plus 64 KiB per instance.
    emu.state.lock().unwrap().padding = 200 * 1024;
    let l = lookup(&emu, |s| s.max_batch = 1);
    let e = l.private_dns_name(&id(0)).await.unwrap_err();
    assert!(
        e.contains("EC2 answered more than 131072 bytes for 1 instance(s)"),
        "{e}"
    );
    // Just under the cap is read as usual.
    emu.state.lock().unwrap().padding = 100 * 1024;
    assert_eq!(l.private_dns_name(&id(0)).await.unwrap(), dns(0));
}

#[tokio::test]
async fn https_proxy_carries_the_calls() {
    // A proxy that records the CONNECT it is asked for and refuses it.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let asked = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut conn, _) = proxy.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0 && head.len() < 16 * 1024);
            head.extend_from_slice(&buf[..n]);
        }
        conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&head)
            .lines()
            .next()
            .unwrap()
            .to_owned()
    });
    let mut s = Settings::new(
        "https://ec2.us-west-2.amazonaws.com/".to_owned(),
        "us-west-2".to_owned(),
        0,
        1,
    );
    s.batch_window = Duration::ZERO;
    s.proxy = aws_iam_authenticator::https::proxy::ProxyEnv::from_lookup(|name| {
        (name == "HTTPS_PROXY").then(|| proxy_url.clone())
    });
    let creds =
        SharedCredentialsProvider::new(Credentials::new("AKIDEXAMPLE", SECRET, None, None, "test"));
    let l = Ec2PrivateDns::new(s, creds, Ec2Metrics::default()).unwrap();
    let e = l.private_dns_name(&id(0)).await.unwrap_err();
    assert!(
        e.contains(&format!("through the proxy {proxy_url}/")),
        "{e}"
    );
    assert_eq!(
        asked.await.unwrap(),
        "CONNECT ec2.us-west-2.amazonaws.com:443 HTTP/1.1"
    );
}
