//! The STS emulator's own tests: its SigV4 checker against upstream's golden vector
//! and hand-made variants, and the live HTTPS server (both HTTP versions, error shapes,
//! knobs, request recording).

// `token` (the `client` feature) mints the tokens these tests check.
#![cfg(feature = "client")]
// Test code: a panic is how a helper reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::sts_emulator::*;

/// Upstream's golden vector (`TestGetWithSTS`).
const GOLDEN_URL: &str = "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAR2TG44V6AS3ZZE7C%2F20230428%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date=20230428T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=e211dba77aba9dc44b0b6be38b8eaad092599c5157f6314444c5b9d85747f5ce";
const GOLDEN_AKID: &str = "ASIAR2TG44V6AS3ZZE7C";
const GOLDEN_SECRET: &str = "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q";
const GOLDEN_TIME: u64 = 1_682_640_000;

fn golden_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(GOLDEN_TIME)
}

fn golden_cred() -> Credential {
    Credential {
        secret: GOLDEN_SECRET.to_owned(),
        session_token: None,
        identity: Identity::new(
            "arn:aws:iam::123456789012:user/test",
            "123456789012",
            "AIDA",
        ),
    }
}

fn check(url: &str, cluster: &str, now: SystemTime) -> Result<(Credential, String), StsError> {
    let rest = url.strip_prefix("https://").unwrap();
    let (host, path_query) = rest.split_once('/').unwrap();
    let (path, query) = format!("/{path_query}")
        .split_once('?')
        .map(|(p, q)| (p.to_owned(), q.to_owned()))
        .unwrap();
    let headers = vec![
        ("Host".to_owned(), host.to_owned()),
        ("X-K8s-Aws-Id".to_owned(), cluster.to_owned()),
        ("Accept".to_owned(), "application/json".to_owned()),
    ];
    verify_presigned("GET", &path, &query, &headers, now, |akid| {
        (akid == GOLDEN_AKID).then(golden_cred)
    })
}

#[test]
fn golden_vector_verifies() {
    let (cred, canonical) = check(GOLDEN_URL, "test-cluster", golden_now()).unwrap();
    assert_eq!(cred.secret, GOLDEN_SECRET);
    assert_eq!(
        canonical,
        "GET\n/\nAction=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=ASIAR2TG44V6AS3ZZE7C%2F20230428%2Fus-west-2%2Fsts%2Faws4_request\
         &X-Amz-Date=20230428T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id\n\
         host:sts.us-west-2.amazonaws.com\nx-k8s-aws-id:test-cluster\n\nhost;x-k8s-aws-id\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn golden_vector_still_valid_just_under_fifteen_minutes() {
    let now = golden_now() + Duration::from_secs(15 * 60);
    assert!(check(GOLDEN_URL, "test-cluster", now).is_ok());
}

#[test]
fn golden_vector_expired_after_fifteen_minutes() {
    let now = golden_now() + Duration::from_secs(15 * 60 + 1);
    let e = check(GOLDEN_URL, "test-cluster", now).unwrap_err();
    assert_eq!((e.status, e.code), (403, "ExpiredToken"));
    assert!(
        e.message.starts_with(
            "Signature expired: 20230428T000000Z is now earlier than 20230428T000001Z"
        ),
        "{}",
        e.message
    );
}

#[test]
fn far_future_date_is_refused() {
    let now = golden_now() - Duration::from_secs(16 * 60);
    let e = check(GOLDEN_URL, "test-cluster", now).unwrap_err();
    assert_eq!(e.code, "ExpiredToken");
    assert!(
        e.message.starts_with("Signature not yet current"),
        "{}",
        e.message
    );
}

#[test]
fn other_cluster_id_breaks_the_signature() {
    let e = check(GOLDEN_URL, "other-cluster", golden_now()).unwrap_err();
    assert_eq!((e.status, e.code), (403, "SignatureDoesNotMatch"));
}

#[test]
fn tampered_signature_is_refused() {
    let url = GOLDEN_URL.replace("f5ce", "f5cf");
    let e = check(&url, "test-cluster", golden_now()).unwrap_err();
    assert_eq!(e.code, "SignatureDoesNotMatch");
}

#[test]
fn tampered_parameter_is_refused() {
    let url = GOLDEN_URL.replace("X-Amz-Expires=60", "X-Amz-Expires=61");
    assert_eq!(
        check(&url, "test-cluster", golden_now()).unwrap_err().code,
        "SignatureDoesNotMatch"
    );
    let url = format!("{GOLDEN_URL}&Extra=1");
    assert_eq!(
        check(&url, "test-cluster", golden_now()).unwrap_err().code,
        "SignatureDoesNotMatch"
    );
}

#[test]
fn parameter_order_does_not_matter() {
    let (base, sig) = GOLDEN_URL.split_once("&X-Amz-Signature=").unwrap();
    let (prefix, query) = base.split_once('?').unwrap();
    let mut parts: Vec<&str> = query.split('&').collect();
    parts.reverse();
    let url = format!("{prefix}?X-Amz-Signature={sig}&{}", parts.join("&"));
    assert!(check(&url, "test-cluster", golden_now()).is_ok());
}

#[test]
fn unknown_key_is_invalid_client_token_id() {
    let url = GOLDEN_URL.replace("ASIAR2TG44V6AS3ZZE7C", "AKIAUNKNOWN000000000");
    let e = check(&url, "test-cluster", golden_now()).unwrap_err();
    assert_eq!((e.status, e.code), (403, "InvalidClientTokenId"));
}

#[test]
fn wrong_secret_is_signature_mismatch() {
    let headers = vec![
        ("host".to_owned(), "sts.us-west-2.amazonaws.com".to_owned()),
        ("x-k8s-aws-id".to_owned(), "test-cluster".to_owned()),
    ];
    let (_, query) = GOLDEN_URL.split_once('?').unwrap();
    let e = verify_presigned("GET", "/", query, &headers, golden_now(), |_| {
        Some(Credential {
            secret: "not-the-secret".to_owned(),
            ..golden_cred()
        })
    })
    .unwrap_err();
    assert_eq!(e.code, "SignatureDoesNotMatch");
}

#[test]
fn wrong_host_breaks_the_signature_or_the_scope() {
    // Another region's host: the credential scope no longer fits.
    let url = GOLDEN_URL.replace("sts.us-west-2.", "sts.us-east-1.");
    let e = check(&url, "test-cluster", golden_now()).unwrap_err();
    assert_eq!(e.code, "SignatureDoesNotMatch");
    assert!(e.message.contains("valid region"), "{}", e.message);
    // A host without a region (the listener's own address): the signed host differs.
    let url = GOLDEN_URL.replace("sts.us-west-2.amazonaws.com", "127.0.0.1:4443");
    assert_eq!(
        check(&url, "test-cluster", golden_now()).unwrap_err().code,
        "SignatureDoesNotMatch"
    );
}

#[test]
fn missing_auth_parameters() {
    let e = check(
        "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
        "c",
        golden_now(),
    )
    .unwrap_err();
    assert_eq!((e.status, e.code), (403, "MissingAuthenticationToken"));
    let url = GOLDEN_URL.replace("&X-Amz-Date=20230428T000000Z", "");
    let e = check(&url, "test-cluster", golden_now()).unwrap_err();
    assert_eq!((e.status, e.code), (400, "IncompleteSignature"));
    assert!(e.message.contains("'X-Amz-Date'"), "{}", e.message);
}

#[test]
fn session_token_must_match() {
    let cred = Credential {
        session_token: Some("FwoGZXIvYXdzEXAMPLE/+=".to_owned()),
        ..golden_cred()
    };
    let signed_at = golden_now();
    // Our own presigner does not add tokens, so assert the refusal of a missing one.
    let url = presign_for_tests(
        "sts.us-west-2.amazonaws.com",
        GOLDEN_AKID,
        GOLDEN_SECRET,
        "us-west-2",
        "c",
        signed_at,
    );
    let (_, query) = url.split_once('?').unwrap();
    let headers = vec![
        ("host".to_owned(), "sts.us-west-2.amazonaws.com".to_owned()),
        ("x-k8s-aws-id".to_owned(), "c".to_owned()),
    ];
    let e = verify_presigned("GET", "/", query, &headers, signed_at, |_| {
        Some(cred.clone())
    })
    .unwrap_err();
    assert_eq!(e.code, "InvalidClientTokenId");
}

#[test]
fn own_presigner_reproduces_the_golden_vector() {
    let url = presign_for_tests(
        "sts.us-west-2.amazonaws.com",
        GOLDEN_AKID,
        GOLDEN_SECRET,
        "us-west-2",
        "test-cluster",
        golden_now(),
    );
    assert_eq!(url, GOLDEN_URL);
}

#[test]
fn uri_encoding_is_sigv4s() {
    assert_eq!(
        uri_encode("a b+c/d~e_f-g.h=i%", true),
        "a%20b%2Bc%2Fd~e_f-g.h%3Di%25"
    );
    assert_eq!(uri_encode("a/b", false), "a/b");
    assert_eq!(
        parse_query("a=b%2Fc&d&e=f+g"),
        vec![
            ("a".to_owned(), "b/c".to_owned()),
            ("d".to_owned(), String::new()),
            ("e".to_owned(), "f g".to_owned()),
        ]
    );
}

#[test]
fn region_of_host_table() {
    assert_eq!(
        region_of_host("sts.amazonaws.com").as_deref(),
        Some("us-east-1")
    );
    assert_eq!(
        region_of_host("sts.eu-west-1.amazonaws.com").as_deref(),
        Some("eu-west-1")
    );
    assert_eq!(
        region_of_host("sts-fips.us-east-2.amazonaws.com:443").as_deref(),
        Some("us-east-2")
    );
    assert_eq!(region_of_host("localhost:4443"), None);
    assert_eq!(region_of_host("127.0.0.1"), None);
}

#[test]
fn amz_dates_round_trip() {
    assert_eq!(parse_amz_date("20230428T000000Z"), Some(golden_now()));
    assert_eq!(format_amz_date(golden_now()), "20230428T000000Z");
    assert_eq!(parse_amz_date("2023-04-28T00:00:00Z"), None);
}

#[test]
fn error_bodies_have_aws_shapes() {
    let e = StsError::new(403, "SignatureDoesNotMatch", "a <b> & c");
    let json: serde_json::Value = serde_json::from_str(&error_body(&e, "rid", true)).unwrap();
    assert_eq!(json["Error"]["Code"], "SignatureDoesNotMatch");
    assert_eq!(json["Error"]["Type"], "Sender");
    assert_eq!(json["Error"]["Message"], "a <b> & c");
    assert_eq!(json["RequestId"], "rid");
    let xml = error_body(&e, "rid", false);
    assert!(xml.contains("<Code>SignatureDoesNotMatch</Code>"));
    assert!(xml.contains("<Message>a &lt;b&gt; &amp; c</Message>"));
    assert!(xml.contains("<Type>Sender</Type>"));
    let id = Identity::new("arn:aws:iam::1:user/a", "1", "AIDA");
    let json: serde_json::Value = serde_json::from_str(&success_body(&id, "rid", true)).unwrap();
    let r = &json["GetCallerIdentityResponse"]["GetCallerIdentityResult"];
    assert_eq!(
        (
            r["Account"].as_str(),
            r["Arn"].as_str(),
            r["UserId"].as_str()
        ),
        (Some("1"), Some("arn:aws:iam::1:user/a"), Some("AIDA"))
    );
    assert_eq!(
        json["GetCallerIdentityResponse"]["ResponseMetadata"]["RequestId"],
        "rid"
    );
    assert!(success_body(&id, "rid", false).starts_with(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
    ));
}

// ---------------------------------------------------------------------------------------
// The live server.

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

/// GETs `url` from the emulator over TLS, trusting only its CA and checking the
/// certificate for the URL's host (as a client would after `--sts-resolve`).
async fn get(emu: &StsEmulator, url: &str, headers: &[(&str, &str)], h2: bool) -> Reply {
    use http_body_util::{BodyExt, Empty};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};

    common::install_crypto_provider();
    let host = url
        .strip_prefix("https://")
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_owned();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(emu.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![if h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(emu.addr()).await.unwrap();
    let server_name = ServerName::try_from(host.split(':').next().unwrap().to_owned()).unwrap();
    let tls = connector.connect(server_name, tcp).await.unwrap();

    let mut builder = hyper::Request::get(if h2 {
        url.to_owned()
    } else {
        url.strip_prefix(&format!("https://{host}"))
            .unwrap()
            .to_owned()
    });
    if !h2 {
        builder = builder.header("host", &host);
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder.body(Empty::<bytes::Bytes>::new()).unwrap();
    let resp = common::http::send_once(tls, req, h2).await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn golden_emulator() -> StsEmulator {
    let emu = StsEmulator::start().unwrap();
    emu.add_identity(
        GOLDEN_AKID,
        GOLDEN_SECRET,
        Identity::new(
            "arn:aws:iam::123456789012:user/test",
            "123456789012",
            "AIDAEXAMPLEUSERID",
        ),
    );
    emu.set_now(Some(golden_now()));
    emu
}

const JSON: (&str, &str) = ("accept", "application/json");
const CLUSTER: (&str, &str) = ("x-k8s-aws-id", "test-cluster");

#[tokio::test]
async fn serves_the_golden_vector_as_json_over_http1_and_http2() {
    let emu = golden_emulator();
    for h2 in [false, true] {
        let r = get(&emu, GOLDEN_URL, &[CLUSTER, JSON], h2).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.content_type, "application/json");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let result = &v["GetCallerIdentityResponse"]["GetCallerIdentityResult"];
        assert_eq!(result["Arn"], "arn:aws:iam::123456789012:user/test");
        assert_eq!(result["Account"], "123456789012");
        assert_eq!(result["UserId"], "AIDAEXAMPLEUSERID");
        assert!(v["GetCallerIdentityResponse"]["ResponseMetadata"]["RequestId"].is_string());
    }
    let reqs = emu.requests();
    assert_eq!(emu.request_count(), 2);
    assert_eq!(reqs[0].version, "HTTP/1.1");
    assert_eq!(reqs[1].version, "HTTP/2.0");
    for r in &reqs {
        assert_eq!(r.header("x-k8s-aws-id"), Some("test-cluster"));
        assert_eq!(r.header("host"), Some("sts.us-west-2.amazonaws.com"));
        assert_eq!(r.status, 200);
        assert_eq!(r.access_key_id.as_deref(), Some(GOLDEN_AKID));
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/");
        assert!(r.query.starts_with("Action=GetCallerIdentity&"));
    }
}

#[tokio::test]
async fn answers_xml_without_accept_json() {
    let emu = golden_emulator();
    let r = get(&emu, GOLDEN_URL, &[CLUSTER], false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/xml");
    assert!(
        r.body
            .contains("<Arn>arn:aws:iam::123456789012:user/test</Arn>"),
        "{}",
        r.body
    );
    assert!(r.body.contains("<Account>123456789012</Account>"));

    let r = get(&emu, GOLDEN_URL, &[("x-k8s-aws-id", "other")], false).await;
    assert_eq!(r.status, 403);
    assert!(r.body.starts_with("<ErrorResponse"), "{}", r.body);
    assert!(
        r.body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn refusals_have_aws_json_shapes() {
    let emu = golden_emulator();
    let cases = [
        (
            GOLDEN_URL.replace(GOLDEN_AKID, "AKIANOTREGISTERED000"),
            403,
            "InvalidClientTokenId",
        ),
        (
            GOLDEN_URL.replace("f5ce", "0000"),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            GOLDEN_URL.replace("Action=GetCallerIdentity", "Action=GetSessionToken"),
            403,
            "SignatureDoesNotMatch",
        ),
    ];
    for (url, status, code) in cases {
        let r = get(&emu, &url, &[CLUSTER, JSON], false).await;
        assert_eq!(r.status, status, "{url}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["Error"]["Code"], code, "{url}");
        assert_eq!(v["Error"]["Type"], "Sender");
        assert!(
            v["Error"]["Message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(v["RequestId"].is_string());
    }
    assert_eq!(
        emu.requests()
            .iter()
            .map(|r| r.error_code.clone().unwrap())
            .collect::<Vec<_>>(),
        [
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
            "SignatureDoesNotMatch"
        ]
    );

    emu.set_now(Some(golden_now() + Duration::from_secs(3600)));
    let r = get(&emu, GOLDEN_URL, &[CLUSTER, JSON], false).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("\"ExpiredToken\""), "{}", r.body);
}

#[tokio::test]
async fn system_clock_is_the_default() {
    let emu = StsEmulator::start().unwrap();
    emu.add_identity(
        "AKIDNOW",
        "secret-now",
        Identity::new("arn:aws:iam::1:user/now", "1", "AIDANOW"),
    );
    let url = presign_for_tests(
        "sts.eu-west-1.amazonaws.com",
        "AKIDNOW",
        "secret-now",
        "eu-west-1",
        "c1",
        SystemTime::now(),
    );
    let r = get(&emu, &url, &[("x-k8s-aws-id", "c1"), JSON], false).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The golden vector is from 2023: long expired by the real clock.
    let r = get(&emu, GOLDEN_URL, &[CLUSTER, JSON], false).await;
    assert_eq!(r.status, 403, "{}", r.body);
}

#[tokio::test]
async fn throttle_knob() {
    let emu = golden_emulator();
    emu.set_throttle(true);
    let r = get(&emu, GOLDEN_URL, &[CLUSTER, JSON], false).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Throttling"), "{}", r.body);
    assert!(r.body.contains("Rate exceeded"), "{}", r.body);
    emu.set_throttle(false);
    assert_eq!(
        get(&emu, GOLDEN_URL, &[CLUSTER, JSON], false).await.status,
        200
    );
}

#[tokio::test]
async fn delay_knob() {
    let emu = golden_emulator();
    emu.set_delay(Duration::from_millis(300));
    let started = Instant::now();
    let r = get(&emu, GOLDEN_URL, &[CLUSTER, JSON], false).await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The request is recorded on arrival, before the delay.
    assert_eq!(emu.request_count(), 1);
}

#[tokio::test]
async fn fixed_answer_for_load_runs() {
    let emu = StsEmulator::start().unwrap();
    let alice = Identity::new(
        "arn:aws:iam::111122223333:user/alice",
        "111122223333",
        "AIDAALICE",
    );
    emu.answer_fixed(&alice, Duration::ZERO);
    // Any signature, known key or not: the one identity, as JSON, over both versions.
    let forged = GOLDEN_URL.replace("X-Amz-Signature=e2", "X-Amz-Signature=00");
    for h2 in [false, true] {
        let r = get(&emu, &forged, &[CLUSTER, JSON], h2).await;
        assert_eq!(
            (r.status, r.content_type.as_str()),
            (200, "application/json"),
            "{}",
            r.body
        );
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let result = &v["GetCallerIdentityResponse"]["GetCallerIdentityResult"];
        assert_eq!(result["Arn"], "arn:aws:iam::111122223333:user/alice");
        assert_eq!(result["Account"], "111122223333");
        assert_eq!(result["UserId"], "AIDAALICE");
    }
    let other = GOLDEN_URL.replace("Action=GetCallerIdentity", "Action=GetSessionToken");
    assert_eq!(get(&emu, &other, &[CLUSTER, JSON], false).await.status, 400);
    // Counted, not recorded.
    assert_eq!(emu.request_count(), 3);
    assert!(emu.requests().is_empty());
}

#[tokio::test]
async fn down_knob_refuses_connections_then_recovers() {
    let emu = golden_emulator();
    assert_eq!(
        get(&emu, GOLDEN_URL, &[CLUSTER, JSON], false).await.status,
        200
    );
    emu.set_down(true);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if tokio::net::TcpStream::connect(emu.addr()).await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "still accepting connections");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    emu.set_down(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(emu.addr()).await.is_err() {
        assert!(Instant::now() < deadline, "not listening again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        get(&emu, GOLDEN_URL, &[CLUSTER, JSON], false).await.status,
        200
    );
}

#[test]
fn ca_file_holds_the_ca_and_resolve_arg_names_the_listener() {
    let emu = StsEmulator::start().unwrap();
    let pem = std::fs::read_to_string(emu.ca_file()).unwrap();
    assert_eq!(pem, emu.ca_pem());
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        emu.resolve_arg("sts.us-west-2.amazonaws.com"),
        format!("sts.us-west-2.amazonaws.com=127.0.0.1:{}", emu.port())
    );
    let dir = emu.ca_file().parent().unwrap().to_path_buf();
    drop(emu);
    assert!(!dir.exists(), "the CA's temp dir outlived the emulator");
}

// ---------------------------------------------------------------------------------------
// The emulator against the crate's presigner (aws-sigv4): two independent SigV4
// implementations must agree.

fn crate_presign(session_token: Option<&str>, cluster: &str, at: SystemTime) -> String {
    let creds = aws_credential_types::Credentials::new(
        "ASIAEXAMPLESESSION01",
        "session/secret+with=odd/chars",
        session_token.map(str::to_owned),
        None,
        "test",
    );
    aws_iam_authenticator::token::generate::presign(
        &creds,
        "eu-central-1",
        "sts.eu-central-1.amazonaws.com",
        cluster,
        at,
    )
    .unwrap()
}

#[tokio::test]
async fn accepts_the_crates_presigned_urls_with_and_without_session_token() {
    let emu = StsEmulator::start().unwrap();
    let id = Identity::new(
        "arn:aws:sts::123456789012:assumed-role/admin/alice",
        "123456789012",
        "AROAEXAMPLE:alice",
    );
    // Slashes, plus signs and `=` exercise the canonical query's encoding.
    let session_token = "IQoJb3JpZ2luX2VjEXAMPLE/+tok=en//==";
    emu.add_session_identity(
        "ASIAEXAMPLESESSION01",
        "session/secret+with=odd/chars",
        session_token,
        id,
    );
    let now = SystemTime::now();
    let url = crate_presign(Some(session_token), "prod", now);
    assert!(url.contains("X-Amz-Security-Token="), "{url}");
    let r = get(&emu, &url, &[("x-k8s-aws-id", "prod"), JSON], false).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("assumed-role/admin/alice"));

    // Without the session token the key is not valid; with another cluster the
    // signature is not.
    let r = get(
        &emu,
        &crate_presign(None, "prod", now),
        &[("x-k8s-aws-id", "prod"), JSON],
        false,
    )
    .await;
    assert!(r.body.contains("InvalidClientTokenId"), "{}", r.body);
    let r = get(&emu, &url, &[("x-k8s-aws-id", "staging"), JSON], false).await;
    assert!(r.body.contains("SignatureDoesNotMatch"), "{}", r.body);
}
