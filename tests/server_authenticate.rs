//! `/authenticate` and routing, with a fake verifier and mapper: upstream's handler
//! vectors (`pkg/server/server_test.go`) for both TokenReview versions, plus our limits.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on setup failure by design

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use aws_iam_authenticator::identity::Identity;
use aws_iam_authenticator::metrics;
use aws_iam_authenticator::server::authenticate::MAX_BODY_BYTES;
use aws_iam_authenticator::server::process;
use aws_iam_authenticator::server::review::{V1, V1BETA1};
use aws_iam_authenticator::server::{App, Authenticate, DenyStatus, MappedUser, WebhookMetrics};
use aws_iam_authenticator::token::VerifyError;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use serde_json::{Value, json};

use common::fakes::{FakeMapper, FakeVerifier};

/// Upstream's role-mapping vector.
fn test_identity() -> Identity {
    Identity {
        arn: "arn:aws:iam::0123456789012:role/Test".into(),
        canonical_arn: "arn:aws:iam::0123456789012:role/Test".into(),
        account_id: "0123456789012".into(),
        user_id: "Test".into(),
        session_name: "TestSession".into(),
        access_key_id: "ABCDEF".into(),
        sts_endpoint: "sts.amazonaws.com".into(),
    }
}

fn test_mapper() -> FakeMapper {
    FakeMapper::of([(
        "arn:aws:iam::0123456789012:role/Test".to_owned(),
        MappedUser {
            username: "TestUser".into(),
            groups: vec!["sys:admin".into(), "listers".into()],
        },
    )])
}

/// The handler with its metrics and the process collector on a registry of its own,
/// served on its `/metrics`.
fn app(verify: Result<Identity, VerifyError>, scrubbed: &[&str]) -> App {
    let mut root = metrics::registry();
    process::register(&mut root);
    let m = WebhookMetrics::register(metrics::prefixed(&mut root));
    let handler = Authenticate::new(
        Arc::new(FakeVerifier::answering(verify)),
        Arc::new(test_mapper()),
        scrubbed.iter().map(|s| (*s).to_owned()),
    );
    App::new(handler.with_metrics(m)).with_registry(Arc::new(root))
}

fn client() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

struct Answer {
    status: StatusCode,
    content_type: String,
    retry_after: Option<String>,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

async fn call(app: &App, method: Method, path: &str, body: Option<Vec<u8>>) -> Answer {
    let r = match body {
        Some(b) => {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .body(Full::new(Bytes::from(b)))
                .unwrap();
            app.route(req, client()).await
        }
        None => {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .body(Empty::<Bytes>::new())
                .unwrap();
            app.route(req, client()).await
        }
    };
    let status = r.status();
    let content_type = r
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let retry_after = r
        .headers()
        .get(http::header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = r.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        retry_after,
        body,
    }
}

fn review(version: &str, token: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": version,
        "kind": "TokenReview",
        "metadata": {"creationTimestamp": null},
        "spec": {"token": token},
        "status": {"user": {}}
    }))
    .unwrap()
}

async fn authenticate(app: &App, version: &str, token: &str) -> Answer {
    call(
        app,
        Method::POST,
        "/authenticate",
        Some(review(version, token)),
    )
    .await
}

/// A definitive denial as kube-apiserver wants it: 200, `authenticated: false`, no
/// `status.error` (a non-empty one turns the denial into a webhook error).
fn assert_denied(a: &Answer, version: &str) {
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.content_type, "application/json; charset=UTF-8");
    let v = a.json();
    assert_eq!(
        v,
        json!({
            "apiVersion": version, "kind": "TokenReview", "metadata": {}, "spec": {},
            "status": {"authenticated": false, "user": {}}
        })
    );
    assert_eq!(a.retry_after, None);
}

/// A non-2xx answer (a failure to kube-apiserver) with the reason in `status.error`.
fn assert_failed(a: &Answer, status: StatusCode, version: &str) {
    assert_eq!(a.status, status, "{}", a.text());
    assert_eq!(a.content_type, "application/json; charset=UTF-8");
    let v = a.json();
    assert_eq!(v["apiVersion"], version);
    assert_eq!(v["kind"], "TokenReview");
    assert_eq!(v["status"]["authenticated"], false);
    assert_eq!(v["status"]["user"], json!({}));
    assert!(v["status"]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(v["spec"], json!({}), "the token must never be echoed");
}

const TOKEN: &str =
    "k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9uPUdldENhbGxlcklkZW50aXR5";

/// `authenticate_latency_seconds_count{result=label}` on the app's `/metrics`.
async fn metric_count(app: &App, label: &str) -> Option<f64> {
    let text = call(app, Method::GET, "/metrics", None)
        .await
        .text()
        .to_owned();
    let name = "aws_iam_authenticator_authenticate_latency_seconds_count";
    metrics::sample(&text, name, &format!("result=\"{label}\""))
}

#[tokio::test]
async fn get_is_405() {
    let app = app(Ok(test_identity()), &[]);
    let a = call(&app, Method::GET, "/authenticate", None).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.text(), "expected POST\n");
    assert_eq!(a.content_type, "text/plain; charset=utf-8");
    assert_eq!(metric_count(&app, "malformed_request").await, Some(1.0));
}

#[tokio::test]
async fn empty_body_is_400() {
    let app = app(Ok(test_identity()), &[]);
    let a = call(&app, Method::POST, "/authenticate", None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.text(), "expected a request body\n");
}

#[tokio::test]
async fn bad_json_is_400() {
    let app = app(Ok(test_identity()), &[]);
    for body in [
        &b"not valid json"[..],
        b"[1,2]",
        b"{\"spec\": {\"token\": 5}}",
    ] {
        let a = call(&app, Method::POST, "/authenticate", Some(body.to_vec())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert_eq!(a.text(), "expected a request body to be a TokenReview\n");
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = app(Ok(test_identity()), &[]);
    let mut body = review(V1, TOKEN);
    body.resize(MAX_BODY_BYTES + 1, b' ');
    let a = call(&app, Method::POST, "/authenticate", Some(body)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Exactly at the limit is fine.
    let mut body = review(V1, TOKEN);
    body.resize(MAX_BODY_BYTES, b' ');
    let a = call(&app, Method::POST, "/authenticate", Some(body)).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_path_is_404() {
    let app = app(Ok(test_identity()), &[]);
    for path in ["/", "/authenticate/", "/authenticatex", "/nope"] {
        let a = call(&app, Method::POST, path, Some(review(V1, TOKEN))).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(a.text(), "404 page not found\n");
    }
}

#[tokio::test]
async fn empty_token_is_denied() {
    let app = app(Ok(test_identity()), &[]);
    for v in [V1, V1BETA1] {
        let a = authenticate(&app, v, "").await;
        assert_denied(&a, v);
    }
}

fn sts_down() -> VerifyError {
    VerifyError::StsUnavailable {
        message: "error during GET: connection refused on us-west-2 endpoint".into(),
        timed_out: false,
    }
}

fn sts_slow() -> VerifyError {
    VerifyError::StsUnavailable {
        message: "error during GET: timeout after 10s awaiting response headers".into(),
        timed_out: true,
    }
}

/// Definitive denials are 200s; throttling is a 429 with `Retry-After`, an STS timeout a
/// 504 and any other STS failure a 500: the answers kube-apiserver retries.
#[tokio::test]
async fn verifier_errors() {
    let denials = [
        (VerifyError::Plain("an error".into()), "invalid_token"),
        (
            VerifyError::Format("token is too large".into()),
            "invalid_token",
        ),
        (
            VerifyError::Sts("error from AWS (expected 200, got 403)".into()),
            "sts_error",
        ),
    ];
    for (err, label) in denials {
        for v in [V1, V1BETA1] {
            let app = app(Err(err.clone()), &[]);
            let a = authenticate(&app, v, TOKEN).await;
            assert_denied(&a, v);
            assert_eq!(metric_count(&app, label).await, Some(1.0), "{label}");
        }
    }
    let failures = [
        (
            VerifyError::Throttled("Throttling".into()),
            StatusCode::TOO_MANY_REQUESTS,
            Some("1"),
            "sts_throttling",
        ),
        (sts_slow(), StatusCode::GATEWAY_TIMEOUT, None, "sts_error"),
        (
            sts_down(),
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "sts_error",
        ),
    ];
    for (err, status, retry_after, label) in failures {
        for v in [V1, V1BETA1] {
            let app = app(Err(err.clone()), &[]);
            let a = authenticate(&app, v, TOKEN).await;
            assert_failed(&a, status, v);
            assert_eq!(a.retry_after.as_deref(), retry_after, "{status}");
            assert!(!a.text().contains(TOKEN));
            assert_eq!(metric_count(&app, label).await, Some(1.0), "{label}");
        }
    }
}

#[tokio::test]
async fn unmapped_is_denied() {
    let mut id = test_identity();
    id.arn = "arn:aws:iam::0123456789012:role/Other".into();
    id.canonical_arn = id.arn.clone();
    for v in [V1, V1BETA1] {
        let app = app(Ok(id.clone()), &[]);
        let a = authenticate(&app, v, TOKEN).await;
        assert_denied(&a, v);
        assert_eq!(metric_count(&app, "uknown_user").await, Some(1.0));
        assert_eq!(metric_count(&app, "success").await, None);
    }
}

/// `--deny-with-forbidden`: every definitive denial is upstream's 403 with a reason;
/// transient failures keep the answers the apiserver retries.
#[tokio::test]
async fn deny_with_forbidden_restores_upstream_403() {
    let forbidden = |verify: Result<Identity, VerifyError>| {
        App::new(
            Authenticate::new(
                Arc::new(FakeVerifier::answering(verify)),
                Arc::new(test_mapper()),
                Vec::new(),
            )
            .with_deny_status(DenyStatus::Forbidden),
        )
    };
    let mut unmapped = test_identity();
    unmapped.canonical_arn = "arn:aws:iam::0123456789012:role/Other".into();
    for v in [V1, V1BETA1] {
        let a = authenticate(&forbidden(Ok(test_identity())), v, "").await;
        assert_failed(&a, StatusCode::FORBIDDEN, v);
        assert_eq!(a.json()["status"]["error"], "invalid token: empty");
        for err in [
            VerifyError::Format("bad".into()),
            VerifyError::Sts("got 403".into()),
        ] {
            let a = authenticate(&forbidden(Err(err)), v, TOKEN).await;
            assert_failed(&a, StatusCode::FORBIDDEN, v);
        }
        let a = authenticate(&forbidden(Ok(unmapped.clone())), v, TOKEN).await;
        assert_failed(&a, StatusCode::FORBIDDEN, v);
        assert_eq!(
            a.json()["status"]["error"],
            "ARN is not mapped: arn:aws:iam::0123456789012:role/Other"
        );
        let a = authenticate(&forbidden(Err(sts_down())), v, TOKEN).await;
        assert_failed(&a, StatusCode::INTERNAL_SERVER_ERROR, v);
        let a = authenticate(&forbidden(Ok(test_identity())), v, TOKEN).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.json()["status"]["authenticated"], true);
    }
}

#[tokio::test]
async fn role_mapping_success() {
    for v in [V1, V1BETA1] {
        let app = app(Ok(test_identity()), &["111122223333"]);
        let a = authenticate(&app, v, TOKEN).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_eq!(a.content_type, "application/json; charset=UTF-8");
        assert!(
            a.text().ends_with("}\n"),
            "upstream ends a success with a newline"
        );
        assert_eq!(
            a.json(),
            json!({
                "apiVersion": v,
                "kind": "TokenReview",
                "metadata": {},
                "spec": {},
                "status": {
                    "authenticated": true,
                    "user": {
                        "username": "TestUser",
                        "uid": "aws-iam-authenticator:0123456789012:Test",
                        "groups": ["sys:admin", "listers"],
                        "extra": {
                            "arn": ["arn:aws:iam::0123456789012:role/Test"],
                            "canonicalArn": ["arn:aws:iam::0123456789012:role/Test"],
                            "sessionName": ["TestSession"],
                            "accessKeyId": ["ABCDEF"],
                            "principalId": ["Test"],
                            "sigs.k8s.io/aws-iam-authenticator/principalId": ["Test"]
                        }
                    }
                }
            })
        );
    }
}

#[tokio::test]
async fn empty_session_name_is_still_present_and_empty_groups_omitted() {
    let mut id = test_identity();
    id.session_name = String::new();
    let app = App::new(Authenticate::new(
        Arc::new(FakeVerifier::answering(Ok(id))),
        Arc::new(FakeMapper::of([(
            "arn:aws:iam::0123456789012:role/Test".to_owned(),
            MappedUser {
                username: "TestUser".into(),
                groups: vec![],
            },
        )])),
        Vec::new(),
    ));
    let a = authenticate(&app, V1, TOKEN).await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    assert_eq!(v["status"]["user"]["extra"]["sessionName"], json!([""]));
    assert!(v["status"]["user"].get("groups").is_none());
}

#[tokio::test]
async fn scrubbed_accounts() {
    let mut id = test_identity();
    id.account_id = "111122223333".into();
    let app = app(Ok(id), &["111122223333", "012345678901"]);
    for v in [V1, V1BETA1] {
        let a = authenticate(&app, v, TOKEN).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            a.json()["status"],
            json!({
                "authenticated": true,
                "user": {
                    "username": "TestUser",
                    "uid": "aws-iam-authenticator:administrative:TestUser",
                    "groups": ["sys:admin", "listers"]
                }
            })
        );
    }
    // A different account is not scrubbed.
    let app2 = app_with_account("222233334444", &["111122223333", "012345678901"]);
    let a = authenticate(&app2, V1, TOKEN).await;
    assert_eq!(
        a.json()["status"]["user"]["uid"],
        "aws-iam-authenticator:222233334444:Test"
    );
}

fn app_with_account(account: &str, scrubbed: &[&str]) -> App {
    let mut id = test_identity();
    id.account_id = account.into();
    app(Ok(id), scrubbed)
}

#[tokio::test]
async fn unknown_version_answers_v1beta1_and_trailing_data_is_ignored() {
    let app = app(Ok(test_identity()), &[]);
    let mut body = serde_json::to_vec(&json!({"spec": {"token": TOKEN}})).unwrap();
    body.extend_from_slice(b" trailing garbage");
    let a = call(&app, Method::POST, "/authenticate", Some(body)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["apiVersion"], V1BETA1);
}

#[tokio::test]
async fn healthz_and_metrics_routes() {
    let app = app(Ok(test_identity()), &[]);
    let a = call(&app, Method::GET, "/healthz", None).await;
    assert_eq!((a.status, a.text()), (StatusCode::OK, "ok"));
    authenticate(&app, V1, TOKEN).await;
    let a = call(&app, Method::GET, "/metrics", None).await;
    assert_eq!(a.status, StatusCode::OK);
    let text = a.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let bucket = "aws_iam_authenticator_authenticate_latency_seconds_bucket";
    let labels = r#"le="+Inf",result="success""#;
    assert_eq!(metrics::sample(text, bucket, labels), Some(1.0), "{text}");
    assert_eq!(
        metrics::sample(text, "aws_iam_authenticator_ready", ""),
        Some(1.0)
    );
    assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
}

/// Bodies being read hold the process's body budget: with it spent (by one client, or
/// overall), a further request is answered 503 with `Retry-After` at once, not buffered,
/// and the budget comes back when the holders end.
#[tokio::test]
async fn spent_body_budget_is_503_with_retry_after() {
    use aws_iam_authenticator::server::BodyBudget;
    use http_body_util::channel::Channel;
    let budget = BodyBudget::new(4 * MAX_BODY_BYTES);
    assert_eq!(budget.per_peer(), MAX_BODY_BYTES);
    let app = Arc::new(App::new(
        Authenticate::new(
            Arc::new(FakeVerifier::answering(Ok(test_identity()))),
            Arc::new(test_mapper()),
            Vec::new(),
        )
        .with_body_budget(budget.clone()),
    ));
    // Each held request sends all but one byte of a full body, and not its end.
    const HELD: usize = MAX_BODY_BYTES - 1;
    let hold = |from: [u8; 4]| {
        let app = Arc::clone(&app);
        let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(1);
        let req = Request::post("/authenticate").body(body).unwrap();
        let task = tokio::spawn(async move {
            app.route(req, SocketAddr::from((from, 40000)))
                .await
                .status()
        });
        async move {
            let mut part = vec![b' '; HELD];
            part[0] = b'{';
            tx.send_data(Bytes::from(part)).await.unwrap();
            (tx, task)
        }
    };
    let mut held = vec![hold([10, 0, 0, 1]).await];
    while budget.used() < HELD {
        tokio::task::yield_now().await;
    }
    // The first client's share is spent; another client still gets its own.
    let same = |from: [u8; 4]| {
        let app = Arc::clone(&app);
        async move {
            let req = Request::post("/authenticate")
                .body(Full::new(Bytes::from(review(V1, TOKEN))))
                .unwrap();
            app.route(req, SocketAddr::from((from, 40001))).await
        }
    };
    let r = same([10, 0, 0, 1]).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()[http::header::RETRY_AFTER], "1");
    assert_eq!(same([10, 0, 0, 2]).await.status(), StatusCode::OK);
    // Three more clients spend the whole budget: a fifth is refused too.
    for i in 2..5 {
        held.push(hold([10, 0, 0, i]).await);
    }
    while budget.used() < 4 * HELD {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        same([10, 0, 0, 9]).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The holders give up: everything is given back.
    for (tx, task) in held {
        drop(tx);
        assert_eq!(task.await.unwrap(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(budget.used(), 0);
    assert_eq!(same([10, 0, 0, 9]).await.status(), StatusCode::OK);
}
