//! The STS stage of verification against a tiny local HTTPS server on 127.0.0.1: the
//! token keeps its real `sts.us-west-2.amazonaws.com` URL, `--sts-resolve`-style mapping
//! sends the connection to the local port, and the test CA is the `--sts-ca-file`.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on setup failure by design

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use aws_iam_authenticator::aws::Partition;
use aws_iam_authenticator::config::StsOptions;
use aws_iam_authenticator::identity::Identity;
use aws_iam_authenticator::metrics::{self, Registry};
use aws_iam_authenticator::sts::{self, StsMetrics};
use aws_iam_authenticator::token::VerifyError;
use aws_iam_authenticator::token::verify::{Verifier, amz_date};

const HOST: &str = "sts.us-west-2.amazonaws.com";
const CLUSTER: &str = "my-cluster";

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path_and_query: String,
    host: String,
    cluster_id: Option<String>,
    accept: Option<String>,
    user_agent: Option<String>,
    sni: Option<String>,
}

#[derive(Debug, Clone)]
enum Reply {
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    Hang,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply::Respond {
        status,
        headers: vec![],
        body: body.to_owned(),
    }
}

struct TestSts {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    ca: tempfile::NamedTempFile,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestSts {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(reply: Reply) -> TestSts {
    start_with_alpn(reply, &[b"h2", b"http/1.1"]).await
}

async fn start_with_alpn(reply: Reply, alpn: &[&[u8]]) -> TestSts {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![HOST.to_owned(), "sts.amazonaws.com".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();

    let mut ca = tempfile::NamedTempFile::new().unwrap();
    ca.write_all(ca_cert.pem().as_bytes()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let task = common::http::serve(listener, Some(acceptor), move |conn, req| {
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        seen2.lock().unwrap().push(Seen {
            path_and_query: req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            host: header("host")
                .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
                .unwrap_or_default(),
            cluster_id: header("x-k8s-aws-id"),
            accept: header("accept"),
            user_agent: header("user-agent"),
            sni: conn.sni,
        });
        let reply = reply.clone();
        async move {
            let (status, headers, body) = match reply {
                Reply::Hang => std::future::pending().await,
                Reply::Respond {
                    status,
                    headers,
                    body,
                } => (status, headers, body),
            };
            let mut resp = hyper::Response::builder().status(status);
            for (k, v) in headers {
                resp = resp.header(k, v);
            }
            resp.body(Full::new(Bytes::from(body))).unwrap()
        }
    });
    TestSts {
        addr,
        seen,
        ca,
        task,
    }
}

fn token_url() -> String {
    format!(
        "https://{HOST}/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIABCDEFGHIJKLMNOPQ%2F20220601%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date={}&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=abcdef",
        amz_date(SystemTime::now())
    )
}

fn token() -> String {
    format!("k8s-aws-v1.{}", URL_SAFE_NO_PAD.encode(token_url()))
}

fn verifier_for(addr: SocketAddr, ca: Option<&std::path::Path>, total: Duration) -> Verifier {
    counted_verifier_for(addr, ca, total).0
}

/// A verifier whose STS client counts on a registry of its own.
fn counted_verifier_for(
    addr: SocketAddr,
    ca: Option<&std::path::Path>,
    total: Duration,
) -> (Verifier, Registry) {
    let opts = StsOptions {
        resolve: vec![(HOST.to_owned(), addr)],
        ca_file: ca.map(|p| p.to_owned()),
        ..Default::default()
    };
    let mut root = metrics::registry();
    let counted = StsMetrics::register(metrics::prefixed(&mut root));
    let client = sts::Client::with_timeouts(&opts, Duration::from_secs(1), total, counted).unwrap();
    let v = Verifier::new(CLUSTER.to_owned(), Partition::Aws, None, client);
    (v, root)
}

fn verifier(s: &TestSts) -> Verifier {
    verifier_for(s.addr, Some(s.ca.path()), Duration::from_secs(5))
}

fn counted_verifier(s: &TestSts) -> (Verifier, Registry) {
    counted_verifier_for(s.addr, Some(s.ca.path()), Duration::from_secs(5))
}

fn ok_body(arn: &str, user_id: &str) -> String {
    serde_json::json!({
        "GetCallerIdentityResponse": {
            "GetCallerIdentityResult": {"Account": "123456789012", "Arn": arn, "UserId": user_id},
            "ResponseMetadata": {"RequestId": "0b3f2f4e"}
        }
    })
    .to_string()
}

async fn identity_for(arn: &str, user_id: &str) -> Result<Identity, VerifyError> {
    let s = start(reply(200, &ok_body(arn, user_id))).await;
    verifier(&s).verify(&token()).await
}

#[tokio::test]
async fn sends_the_tokens_own_request_with_our_cluster_id() {
    let s = start(reply(
        200,
        &ok_body("arn:aws:iam::123456789012:user/Alice", "Alice"),
    ))
    .await;
    let url = token_url();
    let token = format!("k8s-aws-v1.{}", URL_SAFE_NO_PAD.encode(&url));
    let id = verifier(&s).verify(&token).await.unwrap();
    assert_eq!(
        id,
        Identity {
            arn: "arn:aws:iam::123456789012:user/Alice".into(),
            canonical_arn: "arn:aws:iam::123456789012:user/Alice".into(),
            account_id: "123456789012".into(),
            user_id: "Alice".into(),
            session_name: String::new(),
            access_key_id: "ASIABCDEFGHIJKLMNOPQ".into(),
            sts_endpoint: HOST.into(),
        }
    );
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(
        format!("https://{HOST}{}", req.path_and_query),
        url,
        "the query must reach STS exactly as signed"
    );
    assert_eq!(req.host, HOST);
    assert_eq!(req.sni.as_deref(), Some(HOST));
    assert_eq!(req.cluster_id.as_deref(), Some(CLUSTER));
    assert_eq!(req.accept.as_deref(), Some("application/json"));
    assert!(
        req.user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("aws-iam-authenticator/")),
        "{:?}",
        req.user_agent
    );
}

#[tokio::test]
async fn identities() {
    let role = identity_for("arn:aws:iam::123456789012:role/Alice", "Alice:session-name")
        .await
        .unwrap();
    assert_eq!(
        (role.user_id.as_str(), role.session_name.as_str()),
        ("Alice", "session-name")
    );
    assert_eq!(role.canonical_arn, "arn:aws:iam::123456789012:role/Alice");

    let assumed = identity_for(
        "arn:aws:sts::123456789012:assumed-role/Alice/extra",
        "AROAEXAMPLE:extra",
    )
    .await
    .unwrap();
    assert_eq!(
        assumed.canonical_arn,
        "arn:aws:iam::123456789012:role/Alice"
    );
    assert_eq!(
        assumed.arn,
        "arn:aws:sts::123456789012:assumed-role/Alice/extra"
    );
    assert_eq!(
        (assumed.user_id.as_str(), assumed.session_name.as_str()),
        ("AROAEXAMPLE", "extra")
    );

    let pathed = identity_for(
        "arn:aws:sts::123456789012:assumed-role/Org/Team/Admin/Session",
        "AROAEXAMPLE:Session",
    )
    .await
    .unwrap();
    assert_eq!(
        pathed.canonical_arn,
        "arn:aws:iam::123456789012:role/Org/Team/Admin"
    );

    let root = identity_for("arn:aws:iam::123456789012:root", "123456789012")
        .await
        .unwrap();
    assert_eq!(
        (root.user_id.as_str(), root.session_name.as_str()),
        ("123456789012", "")
    );

    let fed = identity_for(
        "arn:aws:sts::123456789012:federated-user/Alice",
        "123456789012:Alice",
    )
    .await
    .unwrap();
    assert_eq!(
        (fed.user_id.as_str(), fed.session_name.as_str()),
        ("123456789012:Alice", "")
    );
}

#[tokio::test]
async fn json_keys_are_case_insensitive() {
    let body = r#"{"getcalleridentityresponse":{"GETCALLERIDENTITYRESULT":{"account":"123456789012","arn":"arn:aws:iam::123456789012:user/Bob","userid":"AIDAEXAMPLE","Extra":1}}}"#;
    let s = start(reply(200, body)).await;
    let id = verifier(&s).verify(&token()).await.unwrap();
    assert_eq!(id.arn, "arn:aws:iam::123456789012:user/Bob");
    assert_eq!(id.user_id, "AIDAEXAMPLE");
    assert_eq!(id.account_id, "123456789012");
}

#[tokio::test]
async fn sts_errors() {
    let s = start(reply(
        403,
        "<ErrorResponse>SignatureDoesNotMatch</ErrorResponse>",
    ))
    .await;
    let (v, root) = counted_verifier(&s);
    let e = v.verify(&token()).await.unwrap_err();
    assert!(matches!(e, VerifyError::Sts(_)));
    assert_eq!(
        e.to_string(),
        "sts getCallerIdentity failed: error from AWS (expected 200, got 403) on us-west-2 endpoint. Body: <ErrorResponse>SignatureDoesNotMatch</ErrorResponse>"
    );
    let text = metrics::encode(&root);
    let responses = "aws_iam_authenticator_sts_responses_total";
    let labels = r#"ResponseCode="403",StsRegion="us-west-2""#;
    assert_eq!(
        metrics::sample(&text, responses, labels),
        Some(1.0),
        "{text}"
    );

    let s = start(reply(
        400,
        r#"{"Error":{"Code":"Throttling","Message":"Rate exceeded"}}"#,
    ))
    .await;
    let (v, root) = counted_verifier(&s);
    let e = v.verify(&token()).await.unwrap_err();
    assert_eq!(
        e,
        VerifyError::Throttled(
            r#"{"Error":{"Code":"Throttling","Message":"Rate exceeded"}}"#.into()
        )
    );
    assert!(
        e.to_string()
            .starts_with("sts getCallerIdentity was throttled: ")
    );
    let text = metrics::encode(&root);
    let throttling = "aws_iam_authenticator_sts_throttling_total";
    let region = r#"StsRegion="us-west-2""#;
    assert_eq!(
        metrics::sample(&text, throttling, region),
        Some(1.0),
        "{text}"
    );
    let labels = r#"ResponseCode="400",StsRegion="us-west-2""#;
    assert_eq!(
        metrics::sample(&text, responses, labels),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn bad_answers() {
    let s = start(reply(200, "xxxx")).await;
    let e = verifier(&s).verify(&token()).await.unwrap_err();
    assert!(matches!(e, VerifyError::Sts(_)));
    assert!(e.to_string().contains("invalid character 'x'"), "{e}");

    let e = identity_for("arn", "Alice").await.unwrap_err();
    assert!(matches!(e, VerifyError::Sts(_)));
    assert!(e.to_string().contains("arn 'arn' is invalid:"), "{e}");

    let e = identity_for("arn:aws:iam::123456789012:role/Alice", "not:vailid:userid")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "sts getCallerIdentity failed: malformed UserID \"not:vailid:userid\""
    );

    let s = start(reply(200, &"x".repeat(100_000))).await;
    let e = verifier(&s).verify(&token()).await.unwrap_err();
    assert!(e.to_string().contains("error reading HTTP result"), "{e}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let s = start(Reply::Respond {
        status: 302,
        headers: vec![("location", format!("https://{HOST}/elsewhere"))],
        body: String::new(),
    })
    .await;
    let e = verifier(&s).verify(&token()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("error from AWS (expected 200, got 302)"),
        "{e}"
    );
    assert_eq!(s.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (v, root) = counted_verifier_for(port, None, Duration::from_secs(5));
    let e = v.verify(&token()).await.unwrap_err();
    assert!(matches!(
        e,
        VerifyError::StsUnavailable {
            timed_out: false,
            ..
        }
    ));
    let text = e.to_string();
    eprintln!("{text}");
    assert!(
        text.starts_with("sts getCallerIdentity failed: error during GET: ")
            && text.ends_with(" on us-west-2 endpoint"),
        "{text}"
    );
    let text = metrics::encode(&root);
    let failures = "aws_iam_authenticator_sts_connection_failures_total";
    let region = r#"StsRegion="us-west-2""#;
    assert_eq!(
        metrics::sample(&text, failures, region),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains("sts_responses_total{"),
        "no answer, no response count"
    );
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let s = start(reply(
        200,
        &ok_body("arn:aws:iam::123456789012:user/Alice", "Alice"),
    ))
    .await;
    let v = verifier_for(s.addr, None, Duration::from_secs(5));
    let e = v.verify(&token()).await.unwrap_err();
    eprintln!("{e}");
    assert!(e.to_string().contains("error during GET: "), "{e}");
    assert!(s.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let s = start(Reply::Hang).await;
    let v = verifier_for(s.addr, Some(s.ca.path()), Duration::from_millis(300));
    let started = Instant::now();
    let e = v.verify(&token()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(e.to_string().contains("error during GET: timeout"), "{e}");
    assert!(matches!(
        e,
        VerifyError::StsUnavailable {
            timed_out: true,
            ..
        }
    ));
}

/// A 5xx is STS failing, not a verdict on the token: the webhook answers it so the
/// apiserver retries.
#[tokio::test]
async fn a_failing_sts_is_unavailable_not_a_denial() {
    let s = start(reply(
        503,
        "<ErrorResponse>ServiceUnavailable</ErrorResponse>",
    ))
    .await;
    let e = verifier(&s).verify(&token()).await.unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::StsUnavailable {
                timed_out: false,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("sts getCallerIdentity failed: error from AWS (expected 200, got 503)"),
        "{e}"
    );
}

#[tokio::test]
async fn connections_are_reused() {
    let s = start(reply(
        200,
        &ok_body("arn:aws:iam::123456789012:user/Alice", "Alice"),
    ))
    .await;
    let v = verifier(&s);
    for _ in 0..3 {
        v.verify(&token()).await.unwrap();
    }
    assert_eq!(s.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn invalid_tokens_never_reach_sts() {
    let s = start(reply(
        200,
        &ok_body("arn:aws:iam::123456789012:user/Alice", "Alice"),
    ))
    .await;
    let v = verifier(&s);
    let evil = token_url().replace("X-Amz-Expires=60", "X-Amz-Expires=60&x-amz-credential=eve");
    let e = v
        .verify(&format!("k8s-aws-v1.{}", URL_SAFE_NO_PAD.encode(evil)))
        .await
        .unwrap_err();
    assert!(matches!(e, VerifyError::Format(_)));
    assert!(s.seen.lock().unwrap().is_empty());
}

#[test]
fn bad_ca_files() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"not a certificate").unwrap();
    let opts = StsOptions {
        resolve: vec![],
        ca_file: Some(f.path().to_owned()),
        ..Default::default()
    };
    let e = sts::Client::new(&opts, StsMetrics::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("contains no usable PEM certificate"), "{e}");
    let opts = StsOptions {
        resolve: vec![],
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..Default::default()
    };
    let e = sts::Client::new(&opts, StsMetrics::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("could not read STS CA file /nonexistent/ca.pem"),
        "{e}"
    );
}

/// The whole `verify` command against the local STS: `--sts-resolve`, `--sts-ca-file`,
/// both output formats.
#[tokio::test]
async fn cli_round_trip() {
    let s = start(reply(
        200,
        &ok_body(
            "arn:aws:sts::123456789012:assumed-role/Admin/alice",
            "AROAEXAMPLE:alice",
        ),
    ))
    .await;
    let run = |output: Option<&'static str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_aws-iam-authenticator"));
        cmd.args(["verify", "-i", CLUSTER, "-t", &token()])
            .arg("--sts-resolve")
            .arg(format!("{HOST}={}", s.addr))
            .arg("--sts-ca-file")
            .arg(s.ca.path())
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        if let Some(o) = output {
            cmd.args(["-o", o]);
        }
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let o = run(Some("json")).await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["CanonicalARN"], "arn:aws:iam::123456789012:role/Admin");
    assert_eq!(v["SessionName"], "alice");
    assert_eq!(v["STSEndpoint"], HOST);
    assert!(String::from_utf8_lossy(&o.stdout).contains("\n    \"ARN\": "));

    let o = run(None).await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!(
            "&{{ARN:arn:aws:sts::123456789012:assumed-role/Admin/alice CanonicalARN:arn:aws:iam::123456789012:role/Admin AccountID:123456789012 UserID:AROAEXAMPLE SessionName:alice AccessKeyID:ASIABCDEFGHIJKLMNOPQ STSEndpoint:{HOST}}}\n"
        )
    );
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|r| r.cluster_id.as_deref() == Some(CLUSTER))
    );
}

#[tokio::test]
async fn http1_only_sts() {
    let body = ok_body("arn:aws:iam::123456789012:user/Alice", "Alice");
    for alpn in [&[b"http/1.1".as_slice()][..], &[]] {
        let s = start_with_alpn(reply(200, &body), alpn).await;
        let id = verifier(&s).verify(&token()).await.unwrap();
        assert_eq!(id.user_id, "Alice");
        assert_eq!(s.seen.lock().unwrap()[0].host, HOST);
    }
}

#[tokio::test]
async fn a_cluster_id_that_is_no_header_value() {
    let s = start(reply(200, "{}")).await;
    let opts = StsOptions {
        resolve: vec![(HOST.to_owned(), s.addr)],
        ca_file: Some(s.ca.path().to_owned()),
        ..Default::default()
    };
    let client = sts::Client::new(&opts, StsMetrics::default()).unwrap();
    let v = Verifier::new("bad\ncluster".to_owned(), Partition::Aws, None, client);
    let e = v.verify(&token()).await.unwrap_err();
    assert!(e.to_string().contains("error creating HTTP request"), "{e}");
    assert!(s.seen.lock().unwrap().is_empty());
}

/// Many distinct hosts that pass the host check (regions of the grammar that do not exist,
/// FIPS and dual-stack variants, the server's own oddly named region) add no metric series
/// beyond the known regions, `global` and `other`.
#[tokio::test]
async fn sts_region_labels_stay_a_closed_set() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let own_region = format!("x{}", "y".repeat(200));
    let mut hosts: Vec<String> = (1..=99)
        .map(|n| format!("sts.us-east-{n}.amazonaws.com"))
        .collect();
    for dir in ["north", "south", "central", "southwest"] {
        hosts.push(format!("sts.eu-{dir}-7.amazonaws.com"));
        hosts.push(format!("sts-fips.ap-{dir}-9.amazonaws.com"));
        hosts.push(format!("sts.mx-{dir}-8.api.aws"));
    }
    hosts.push(format!("sts.{own_region}.amazonaws.com"));
    let opts = StsOptions {
        resolve: hosts.iter().map(|h| (h.clone(), closed)).collect(),
        ca_file: None,
        ..Default::default()
    };
    let mut root = metrics::registry();
    let counted = StsMetrics::register(metrics::prefixed(&mut root));
    let (connect, total) = (Duration::from_secs(1), Duration::from_secs(5));
    let client = sts::Client::with_timeouts(&opts, connect, total, counted).unwrap();
    let v = Verifier::new(CLUSTER.to_owned(), Partition::Aws, Some(own_region), client);
    for host in &hosts {
        let url = token_url().replace(HOST, host);
        let token = format!("k8s-aws-v1.{}", URL_SAFE_NO_PAD.encode(&url));
        let e = v.verify(&token).await.unwrap_err();
        assert!(
            matches!(e, VerifyError::StsUnavailable { .. }),
            "{host}: {e}"
        );
    }

    let known: Vec<&str> = Partition::ALL
        .iter()
        .flat_map(|p| p.known_regions().iter().copied())
        .chain(["global", "other"])
        .collect();
    let text = metrics::encode(&root);
    let counts: Vec<(&str, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("aws_iam_authenticator_sts_connection_failures_total{"))
        .map(|l| {
            let (labels, value) = l.split_once("} ").unwrap();
            let region = labels.strip_prefix("StsRegion=\"").unwrap();
            (region.trim_end_matches('"'), value.parse().unwrap())
        })
        .collect();
    assert!(counts.iter().any(|(r, _)| *r == "other"), "{text}");
    for (label, _) in &counts {
        assert!(known.contains(label), "unbounded label {label:?}");
    }
    let total: f64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(
        total,
        hosts.len() as f64,
        "every failure counted once: {text}"
    );
}
