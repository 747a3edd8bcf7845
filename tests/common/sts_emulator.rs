//! A local stand-in for AWS STS `GetCallerIdentity`, for tests and the demo.
//!
//! It serves HTTPS (HTTP/1.1 and HTTP/2) on `127.0.0.1:<ephemeral port>` with a
//! certificate from its own test CA, valid for `sts.amazonaws.com`, the regional STS
//! host names, `localhost` and `127.0.0.1`. Callers keep a token's real
//! `https://sts.<region>.amazonaws.com/` URL and only redirect the connection (the
//! binary's `--sts-resolve HOST=127.0.0.1:PORT`), so the `Host` the client sends is the
//! one it signed.
//!
//! Presigned requests are checked the way AWS checks them, by an implementation of
//! SigV4 that shares no code with the one under test: the canonical request is rebuilt
//! from what was *received* (method, path, every query parameter but
//! `X-Amz-Signature`, exactly the headers named in `X-Amz-SignedHeaders`), the signing
//! key is derived from the registered secret, and the signatures must match. Failures
//! come back in AWS's error shapes (JSON when the client sends
//! `Accept: application/json`, XML otherwise).
//!
//! `AssumeRole` (a header-signed form `POST`, as the AWS SDKs send it) is emulated too:
//! the signature is checked over the received body, and the answer's temporary
//! credentials are registered, so what is signed with them verifies as the assumed role.
//!
//! The emulator runs on a thread of its own with its own runtime, so synchronous tests
//! (which run the binary as a child process) and async tests can both use it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// SHA-256 of the empty string: the payload hash of every presigned GET.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// How far `X-Amz-Date` may lie from "now", either way, before STS refuses the request.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// The STS XML namespace, which AWS puts on every XML answer.
pub const STS_XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Regions whose `sts.<region>.amazonaws.com` (and `sts-fips.…`) the certificate covers.
pub const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
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
    "sa-east-1",
];

/// Who a registered access key belongs to: what `GetCallerIdentity` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `Arn`, e.g. `arn:aws:iam::123456789012:user/alice`.
    pub arn: String,
    /// `Account`, e.g. `123456789012`.
    pub account: String,
    /// `UserId`, e.g. `AIDAEXAMPLE` or `AROAEXAMPLE:session`.
    pub user_id: String,
}

impl Identity {
    /// An identity from its three parts.
    pub fn new(
        arn: impl Into<String>,
        account: impl Into<String>,
        user_id: impl Into<String>,
    ) -> Self {
        Self {
            arn: arn.into(),
            account: account.into(),
            user_id: user_id.into(),
        }
    }
}

/// A registered access key.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The secret access key.
    pub secret: String,
    /// The session token requests must carry, for temporary credentials.
    pub session_token: Option<String>,
    /// Who the key belongs to.
    pub identity: Identity,
}

/// An error as STS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsError {
    /// HTTP status.
    pub status: u16,
    /// AWS error code, e.g. `SignatureDoesNotMatch`.
    pub code: &'static str,
    /// AWS's message.
    pub message: String,
}

impl StsError {
    /// An error with AWS's status, code and message.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn signature_mismatch(message: impl Into<String>) -> Self {
        Self::new(403, "SignatureDoesNotMatch", message)
    }

    fn incomplete(message: impl Into<String>) -> Self {
        Self::new(400, "IncompleteSignature", message)
    }
}

/// One request as the emulator received it, for assertions.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Request path, as received.
    pub path: String,
    /// Raw query string, as received (without `?`).
    pub query: String,
    /// The form body of a `POST` (e.g. `Action=AssumeRole&…`), else empty.
    pub body: String,
    /// Headers, names lower-cased, in arrival order. On HTTP/2 the `:authority` is
    /// reported as `host`.
    pub headers: Vec<(String, String)>,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// The status the emulator answered.
    pub status: u16,
    /// The AWS error code, for refused requests.
    pub error_code: Option<String>,
    /// The access key the request was signed with, once known.
    pub access_key_id: Option<String>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the emulator knows and how it behaves; shared with its serving thread.
#[derive(Debug, Default)]
struct State {
    credentials: Mutex<HashMap<String, Credential>>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Requests answered while recording was off.
    unrecorded: AtomicUsize,
    knobs: Mutex<Knobs>,
    request_ids: AtomicU64,
    /// Set for load runs: every `GetCallerIdentity` gets this answer, unchecked.
    fixed: std::sync::OnceLock<Fixed>,
}

/// The one answer of a load run's emulator (see [`StsEmulator::answer_fixed`]).
#[derive(Debug)]
struct Fixed {
    body: Bytes,
    delay: Duration,
}

#[derive(Debug, Default, Clone)]
struct Knobs {
    /// `true`: requests are not kept (long load runs), only counted.
    no_recording: bool,
    throttle: bool,
    delay: Duration,
    /// `None`: the system clock.
    now: Option<SystemTime>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The lifecycle signal the serving thread watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Up,
    Down,
    Stop,
}

/// A running emulator. Dropping it stops the server and removes its CA file.
#[derive(Debug)]
pub struct StsEmulator {
    addr: SocketAddr,
    state: Arc<State>,
    ca_pem: String,
    ca_file: PathBuf,
    /// Holds the CA file when the emulator chose where to write it.
    _dir: Option<tempfile::TempDir>,
    run: watch::Sender<Run>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StsEmulator {
    /// Starts an emulator on `127.0.0.1:0`, its CA certificate in a temporary directory.
    pub fn start() -> io::Result<Self> {
        Self::start_with(None, 0)
    }

    /// Starts an emulator on `127.0.0.1:port` (0: any), writing its CA certificate to
    /// `ca_file` (or into a temporary directory).
    pub fn start_with(ca_file: Option<&Path>, port: u16) -> io::Result<Self> {
        let pki = TestPki::generate().map_err(io::Error::other)?;
        let (dir, ca_file) = match ca_file {
            Some(p) => (None, p.to_path_buf()),
            None => {
                let dir = tempfile::Builder::new().prefix("sts-emulator").tempdir()?;
                let path = dir.path().join("ca.pem");
                (Some(dir), path)
            }
        };
        std::fs::write(&ca_file, &pki.ca_pem)?;

        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let tls = Arc::new(pki.server_config()?);
        let state = Arc::new(State::default());
        let (run, run_rx) = watch::channel(Run::Up);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("sts-emulator".into())
            .spawn(move || {
                runtime.block_on(serve(listener, addr, tls, thread_state, run_rx));
            })?;

        Ok(Self {
            addr,
            state,
            ca_pem: pki.ca_pem,
            ca_file,
            _dir: dir,
            run,
            thread: Some(thread),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The test CA certificate (PEM) that issued the emulator's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A file holding [`Self::ca_pem`] (for `--sts-ca-file` / `SSL_CERT_FILE`).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The `--sts-resolve` value that sends `host` here: `host=127.0.0.1:PORT`.
    pub fn resolve_arg(&self, host: &str) -> String {
        format!("{host}={}", self.addr)
    }

    /// Registers an access key and the identity it authenticates as.
    pub fn add_identity(&self, access_key_id: &str, secret: &str, identity: Identity) {
        self.insert(access_key_id, secret, None, identity);
    }

    /// Registers temporary credentials: requests must carry this
    /// `X-Amz-Security-Token`.
    pub fn add_session_identity(
        &self,
        access_key_id: &str,
        secret: &str,
        session_token: &str,
        identity: Identity,
    ) {
        self.insert(
            access_key_id,
            secret,
            Some(session_token.to_owned()),
            identity,
        );
    }

    fn insert(&self, akid: &str, secret: &str, token: Option<String>, identity: Identity) {
        lock(&self.state.credentials).insert(
            akid.to_owned(),
            Credential {
                secret: secret.to_owned(),
                session_token: token,
                identity,
            },
        );
    }

    /// Makes every request fail with STS's `Throttling` error while `on`.
    pub fn set_throttle(&self, on: bool) {
        lock(&self.state.knobs).throttle = on;
    }

    /// Delays every answer by `delay` (zero: answer at once).
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.state.knobs).delay = delay;
    }

    /// Fixes the emulator's clock at `now` (`None`: the system clock again).
    pub fn set_now(&self, now: Option<SystemTime>) {
        lock(&self.state.knobs).now = now;
    }

    /// `true`: close the listener and every open connection, so clients get
    /// "connection refused"; `false`: listen again on the same address.
    pub fn set_down(&self, down: bool) {
        let _ = self.run.send(if down { Run::Down } else { Run::Up });
    }

    /// `false`: requests are only counted, not kept (for long load runs).
    pub fn set_recording(&self, on: bool) {
        lock(&self.state.knobs).no_recording = !on;
    }

    /// For load runs (`make bench`): from now on, answer every `GetCallerIdentity` with
    /// `identity`, after `delay`, without checking its signature or recording it (only
    /// counting). The answer's bytes are made once; a request costs no allocation of
    /// ours, so the emulator takes as little of the machine's cores as a stand-in for a
    /// remote STS can. Has no effect after the first call.
    pub fn answer_fixed(&self, identity: &Identity, delay: Duration) {
        let body = Bytes::from(success_body(
            identity,
            "00000000-5e55-4e57-8000-000000000000",
            true,
        ));
        let _ = self.state.fixed.set(Fixed { body, delay });
    }

    /// Every request received so far (while recording).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// How many requests arrived so far.
    pub fn request_count(&self) -> usize {
        lock(&self.state.requests).len() + self.state.unrecorded.load(Ordering::Relaxed)
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.state.requests).clear();
    }
}

impl Drop for StsEmulator {
    fn drop(&mut self) {
        let _ = self.run.send(Run::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The test CA and the server certificate it issued.
struct TestPki {
    ca_pem: String,
    leaf_der: Vec<u8>,
    ca_der: Vec<u8>,
    leaf_key_der: Vec<u8>,
}

impl TestPki {
    fn generate() -> Result<Self, rcgen::Error> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose, SanType,
        };

        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(
            DnType::CommonName,
            "aws-iam-authenticator STS emulator test CA",
        );
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let mut names = vec!["sts.amazonaws.com".to_owned(), "localhost".to_owned()];
        for r in REGIONS {
            names.push(format!("sts.{r}.amazonaws.com"));
            names.push(format!("sts-fips.{r}.amazonaws.com"));
            names.push(format!("sts.{r}.api.aws"));
        }
        let mut leaf = CertificateParams::new(names)?;
        leaf.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        leaf.distinguished_name
            .push(DnType::CommonName, "sts.amazonaws.com");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate()?;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

        Ok(Self {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().to_vec(),
            leaf_der: leaf_cert.der().to_vec(),
            leaf_key_der: leaf_key.serialize_der(),
        })
    }

    fn server_config(&self) -> io::Result<rustls::ServerConfig> {
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = vec![
            CertificateDer::from(self.leaf_der.clone()),
            CertificateDer::from(self.ca_der.clone()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(io::Error::other)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Accepts connections until told to stop; closes everything while "down".
async fn serve(
    listener: std::net::TcpListener,
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    mut run: watch::Receiver<Run>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut listener = tokio::net::TcpListener::from_std(listener).ok();
    loop {
        let current = *run.borrow_and_update();
        match current {
            Run::Stop => return,
            Run::Down => {
                listener = None;
                if run.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Run::Up => {}
        }
        if listener.is_none() {
            // Back up: listen on the same address again (std sets SO_REUSEADDR).
            listener = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(tokio::net::TcpListener::from_std)
                .ok();
        }
        let Some(l) = listener.as_ref() else {
            // Could not listen again; wait for the next command.
            if run.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            changed = run.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            accepted = l.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let state = Arc::clone(&state);
                let mut run = run.clone();
                tokio::spawn(async move {
                    let connection = async {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let service = service_fn(move |req| handle(Arc::clone(&state), req));
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    };
                    // Going down or stopping drops the connection mid-flight, as a
                    // vanished endpoint would.
                    tokio::select! {
                        () = connection => {}
                        _ = run.wait_for(|r| *r != Run::Up) => {}
                    }
                });
            }
        }
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(fixed) = state.fixed.get() {
        return Ok(answer_fixed(&state, fixed, &req).await);
    }
    let knobs = lock(&state.knobs).clone();
    let now = knobs.now.unwrap_or_else(SystemTime::now);
    let request_id = request_id(&state);

    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(authority) = req.uri().authority()
        && !req.headers().contains_key(hyper::header::HOST)
    {
        headers.push(("host".to_owned(), authority.to_string()));
    }
    for (name, value) in req.headers() {
        headers.push((
            name.as_str().to_owned(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        ));
    }
    let wants_json = headers
        .iter()
        .any(|(n, v)| n == "accept" && v.to_ascii_lowercase().contains("application/json"));
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let version = format!("{:?}", req.version());
    let body = match http_body_util::BodyExt::collect(req.into_body()).await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };

    let credentials = lock(&state.credentials).clone();
    let lookup = |akid: &str| credentials.get(akid).cloned();
    let outcome = if knobs.throttle {
        Err(StsError::new(400, "Throttling", "Rate exceeded"))
    } else if method == "POST" {
        verify_header_signed(&method, &path, &headers, &body, now, lookup)
            .and_then(|_| assume_role(&state, &body, now, &request_id))
    } else if method != "GET" {
        Err(StsError::new(
            405,
            "MethodNotAllowed",
            "only presigned GET and signed POST requests are emulated",
        ))
    } else {
        verify_presigned(&method, &path, &query, &headers, now, lookup).and_then(|(cred, _)| {
            let action = parse_query(&query)
                .into_iter()
                .find(|(k, _)| k == "Action")
                .map(|(_, v)| v)
                .unwrap_or_default();
            if action == "GetCallerIdentity" {
                Ok(success_body(&cred.identity, &request_id, wants_json))
            } else {
                Err(StsError::new(
                    400,
                    "InvalidAction",
                    format!("Could not find operation {action} for version 2011-06-15"),
                ))
            }
        })
    };
    // The SDKs read STS's query-protocol answers as XML.
    let wants_json = wants_json && method != "POST";

    let access_key_id = parse_query(&query)
        .into_iter()
        .find(|(k, _)| k == "X-Amz-Credential")
        .map(|(_, v)| v)
        .or_else(|| header_credential(&headers))
        .and_then(|v| v.split('/').next().map(str::to_owned));
    let (status, answer, error_code) = match outcome {
        Ok(answer) => (200, answer, None),
        Err(e) => (
            e.status,
            error_body(&e, &request_id, wants_json),
            Some(e.code.to_owned()),
        ),
    };
    if knobs.no_recording {
        state.unrecorded.fetch_add(1, Ordering::Relaxed);
    } else {
        lock(&state.requests).push(RecordedRequest {
            method,
            path,
            query,
            body,
            headers,
            version,
            status,
            error_code,
            access_key_id,
        });
    }

    if !knobs.delay.is_zero() {
        tokio::time::sleep(knobs.delay).await;
    }
    let content_type = if wants_json {
        "application/json"
    } else {
        "text/xml"
    };
    let mut response = Response::new(Full::new(Bytes::from(answer)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = request_id.parse() {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    Ok(response)
}

/// The fixed answer for a `GetCallerIdentity` (a 400 for anything else), counted.
async fn answer_fixed(
    state: &State,
    fixed: &Fixed,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    state.unrecorded.fetch_add(1, Ordering::Relaxed);
    let asked = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "Action=GetCallerIdentity"));
    if !fixed.delay.is_zero() {
        tokio::time::sleep(fixed.delay).await;
    }
    let (status, body) = if asked {
        (StatusCode::OK, fixed.body.clone())
    } else {
        (
            StatusCode::BAD_REQUEST,
            Bytes::from_static(b"{\"Error\":{\"Code\":\"InvalidAction\",\"Type\":\"Sender\"}}"),
        )
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn request_id(state: &State) -> String {
    let n = state.request_ids.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{t:08x}-5e55-4e57-8000-{n:012x}")
}

/// STS's `GetCallerIdentity` answer, as JSON or XML.
pub fn success_body(identity: &Identity, request_id: &str, json: bool) -> String {
    if json {
        serde_json::json!({
            "GetCallerIdentityResponse": {
                "GetCallerIdentityResult": {
                    "Account": identity.account,
                    "Arn": identity.arn,
                    "UserId": identity.user_id,
                },
                "ResponseMetadata": { "RequestId": request_id },
            }
        })
        .to_string()
    } else {
        format!(
            "<GetCallerIdentityResponse xmlns=\"{STS_XMLNS}\">\n  <GetCallerIdentityResult>\n    \
             <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n  \
             </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  \
             </ResponseMetadata>\n</GetCallerIdentityResponse>\n",
            xml_escape(&identity.arn),
            xml_escape(&identity.user_id),
            xml_escape(&identity.account),
            xml_escape(request_id),
        )
    }
}

/// STS's error document, as JSON or XML.
pub fn error_body(e: &StsError, request_id: &str, json: bool) -> String {
    if json {
        serde_json::json!({
            "Error": { "Code": e.code, "Message": e.message, "Type": "Sender" },
            "RequestId": request_id,
        })
        .to_string()
    } else {
        format!(
            "<ErrorResponse xmlns=\"{STS_XMLNS}\">\n  <Error>\n    <Type>Sender</Type>\n    \
             <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
             <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            xml_escape(e.code),
            xml_escape(&e.message),
            xml_escape(request_id),
        )
    }
}

/// Escapes text for an XML element.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

// ---------------------------------------------------------------------------------------
// SigV4 query-signature verification.

/// Checks a presigned SigV4 request as STS does: credential scope, the key's
/// existence (and session token), the date window, then the signature over the
/// canonical request rebuilt from what was received.
///
/// `headers` are the received headers (any case); `lookup` finds an access key's
/// secret. On success returns the matched credential and the canonical request.
pub fn verify_presigned(
    method: &str,
    path: &str,
    raw_query: &str,
    headers: &[(String, String)],
    now: SystemTime,
    lookup: impl Fn(&str) -> Option<Credential>,
) -> Result<(Credential, String), StsError> {
    let params = parse_query(raw_query);
    let first = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    let auth = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    ];
    let missing: Vec<&str> = auth
        .iter()
        .copied()
        .filter(|k| first(k).is_none())
        .collect();
    if missing.len() == auth.len() {
        return Err(StsError::new(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ));
    }
    if !missing.is_empty() {
        return Err(StsError::incomplete(format!(
            "AWS query-string parameters must include {}. Re-examine the query-string parameters.",
            missing
                .iter()
                .map(|m| format!("'{m}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let algorithm = first("X-Amz-Algorithm").unwrap_or_default();
    let credential = first("X-Amz-Credential").unwrap_or_default();
    let amz_date = first("X-Amz-Date").unwrap_or_default();
    let signed_headers = first("X-Amz-SignedHeaders").unwrap_or_default();
    let signature = first("X-Amz-Signature").unwrap_or_default();

    if algorithm != "AWS4-HMAC-SHA256" {
        return Err(StsError::incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'"
        )));
    }
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, scope_date, region, service, terminator] = scope[..] else {
        return Err(StsError::incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{credential}'"
        )));
    };

    let Some(cred) = lookup(akid) else {
        return Err(StsError::new(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ));
    };
    if cred.session_token.as_deref() != first("X-Amz-Security-Token") {
        return Err(StsError::new(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ));
    }

    let Some(signed_at) = parse_amz_date(amz_date) else {
        return Err(StsError::incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. \
             See http://en.wikipedia.org/wiki/ISO_8601"
        )));
    };
    if now > signed_at + MAX_CLOCK_SKEW {
        return Err(StsError::new(
            403,
            "ExpiredToken",
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
                format_amz_date(now - MAX_CLOCK_SKEW),
                format_amz_date(now)
            ),
        ));
    }
    if signed_at > now + MAX_CLOCK_SKEW {
        return Err(StsError::new(
            403,
            "ExpiredToken",
            format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
                format_amz_date(now + MAX_CLOCK_SKEW),
                format_amz_date(now)
            ),
        ));
    }

    if amz_date.get(..8) != Some(scope_date) {
        return Err(StsError::signature_mismatch(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{scope_date}' != '{}', from '{amz_date}'.",
            amz_date.get(..8).unwrap_or_default()
        )));
    }
    if service != "sts" {
        return Err(StsError::signature_mismatch(format!(
            "Credential should be scoped to correct service: 'sts'. not '{service}'"
        )));
    }
    if terminator != "aws4_request" {
        return Err(StsError::signature_mismatch(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    let host = header_values(headers, "host").join(",");
    if let Some(expected) = region_of_host(&host)
        && expected != region
    {
        return Err(StsError::signature_mismatch(format!(
            "Credential should be scoped to a valid region, not '{region}'. "
        )));
    }

    let canonical = canonical_request(method, path, &params, headers, signed_headers);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope_date}/{region}/{service}/aws4_request\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(&cred.secret, scope_date, region, service);
    let expected = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        return Err(StsError::signature_mismatch(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        ));
    }
    Ok((cred, canonical))
}

// ---------------------------------------------------------------------------------------
// AssumeRole: header-signed POSTs.

/// The `Credential=` of an `Authorization: AWS4-HMAC-SHA256 …` header.
fn header_credential(headers: &[(String, String)]) -> Option<String> {
    authorization_field(headers, "Credential")
}

fn authorization_field(headers: &[(String, String)], name: &str) -> Option<String> {
    let auth = header_values(headers, "authorization").first().copied()?;
    auth.strip_prefix("AWS4-HMAC-SHA256 ")?
        .split(',')
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
        .map(str::to_owned)
}

/// Checks a header-signed SigV4 request (`Authorization`, `X-Amz-Date`) over the
/// received body, as STS does for the SDKs' form POSTs.
pub fn verify_header_signed(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
    now: SystemTime,
    lookup: impl Fn(&str) -> Option<Credential>,
) -> Result<Credential, StsError> {
    let missing = || {
        StsError::new(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
    };
    let credential = authorization_field(headers, "Credential").ok_or_else(missing)?;
    let signed_headers = authorization_field(headers, "SignedHeaders").ok_or_else(missing)?;
    let signature = authorization_field(headers, "Signature").ok_or_else(missing)?;
    let amz_date = header_values(headers, "x-amz-date")
        .first()
        .copied()
        .ok_or_else(|| StsError::incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, scope_date, region, "sts", "aws4_request"] = scope[..] else {
        return Err(StsError::incomplete(format!(
            "Credential should be scoped to correct service: 'sts', got '{credential}'"
        )));
    };
    let invalid = || {
        StsError::new(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    };
    let cred = lookup(akid).ok_or_else(invalid)?;
    if cred.session_token.as_deref()
        != header_values(headers, "x-amz-security-token")
            .first()
            .copied()
    {
        return Err(invalid());
    }
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        StsError::incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        ))
    })?;
    if now > signed_at + MAX_CLOCK_SKEW || signed_at > now + MAX_CLOCK_SKEW {
        return Err(StsError::signature_mismatch(format!(
            "Signature expired or not yet current: {amz_date}, now {}",
            format_amz_date(now)
        )));
    }
    let canonical = canonical_request_with_payload(
        method,
        path,
        &[],
        headers,
        &signed_headers,
        &hex(&Sha256::digest(body.as_bytes())),
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope_date}/{region}/sts/aws4_request\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(&cred.secret, scope_date, region, "sts");
    let expected = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        return Err(StsError::signature_mismatch(
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    Ok(cred)
}

/// `AssumeRole` of a verified form body: STS's parameter checks, then fresh temporary
/// credentials for `DurationSeconds` (STS's default, an hour, when absent), registered
/// so that they authenticate as `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
fn assume_role(
    state: &State,
    body: &str,
    now: SystemTime,
    request_id: &str,
) -> Result<String, StsError> {
    let form = parse_query(body);
    let param = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let validation = |message: String| StsError::new(400, "ValidationError", message);
    if param("Action") != Some("AssumeRole") {
        return Err(StsError::new(
            400,
            "InvalidAction",
            format!(
                "Could not find operation {} for version 2011-06-15",
                param("Action").unwrap_or_default()
            ),
        ));
    }
    let role_arn = param("RoleArn").unwrap_or_default();
    let Some((account, role_name)) = role_arn
        .strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.split_once(":role/"))
        .map(|(account, path)| (account, path.rsplit('/').next().unwrap_or(path)))
    else {
        return Err(validation(format!("{role_arn} is invalid")));
    };
    let session = param("RoleSessionName").unwrap_or_default();
    if !(2..=64).contains(&session.len())
        || !session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b))
    {
        return Err(validation(format!(
            "1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint"
        )));
    }
    let duration = match param("DurationSeconds") {
        None => 3600,
        Some(d) => d
            .parse::<u64>()
            .ok()
            .filter(|d| (900..=43_200).contains(d))
            .ok_or_else(|| {
                validation(format!(
                    "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200"
                ))
            })?,
    };
    let n = state.request_ids.fetch_add(1, Ordering::Relaxed);
    let akid = format!("ASIAEMULATED{n:08}");
    let secret = format!("emulated-secret-{n}");
    let token = format!("emulated-session-token-{n}");
    let role_id = "AROAEMULATEDROLE";
    let identity = Identity::new(
        format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session}"),
        account,
        format!("{role_id}:{session}"),
    );
    let expires = now + Duration::from_secs(duration);
    let answer = format!(
        "<AssumeRoleResponse xmlns=\"{STS_XMLNS}\">\n  <AssumeRoleResult>\n    <Credentials>\n      \
         <AccessKeyId>{akid}</AccessKeyId>\n      <SecretAccessKey>{secret}</SecretAccessKey>\n      \
         <SessionToken>{token}</SessionToken>\n      <Expiration>{}</Expiration>\n    \
         </Credentials>\n    <AssumedRoleUser>\n      <AssumedRoleId>{}</AssumedRoleId>\n      \
         <Arn>{}</Arn>\n    </AssumedRoleUser>\n  </AssumeRoleResult>\n  <ResponseMetadata>\n    \
         <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</AssumeRoleResponse>\n",
        iso8601(expires),
        xml_escape(&identity.user_id),
        xml_escape(&identity.arn),
        xml_escape(request_id),
    );
    lock(&state.credentials).insert(
        akid,
        Credential {
            secret,
            session_token: Some(token),
            identity,
        },
    );
    Ok(answer)
}

/// `2026-12-01T23:59:00Z`, as STS writes `Expiration`.
fn iso8601(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The SigV4 canonical request of a presigned GET.
pub fn canonical_request(
    method: &str,
    path: &str,
    params: &[(String, String)],
    headers: &[(String, String)],
    signed_headers: &str,
) -> String {
    canonical_request_with_payload(
        method,
        path,
        params,
        headers,
        signed_headers,
        EMPTY_PAYLOAD_SHA256,
    )
}

/// The SigV4 canonical request of any request, given its payload's SHA-256 (hex).
pub fn canonical_request_with_payload(
    method: &str,
    path: &str,
    params: &[(String, String)],
    headers: &[(String, String)],
    signed_headers: &str,
    payload_sha256: &str,
) -> String {
    let mut query: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");

    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<String> = header_values(headers, name)
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        let _ = writeln!(
            canonical_headers,
            "{}:{}",
            name.to_ascii_lowercase(),
            values.join(",")
        );
    }

    format!(
        "{method}\n{}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}",
        canonical_uri(path)
    )
}

/// Non-S3 services normalise the path and URI-encode each segment of the (already
/// encoded) path once more.
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    path.split('/')
        .map(|seg| uri_encode(seg, true))
        .collect::<Vec<_>>()
        .join("/")
}

fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// The region a regional STS host name implies (`sts.amazonaws.com`: `us-east-1`);
/// `None` for other hosts (`localhost`, an IP address), which accept any scope.
pub fn region_of_host(host: &str) -> Option<String> {
    let host = host
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if host == "sts.amazonaws.com" {
        return Some("us-east-1".to_owned());
    }
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        ["sts" | "sts-fips", region, rest @ ..] if rest.len() >= 2 => Some((*region).to_owned()),
        _ => None,
    }
}

/// Splits a raw query string into decoded pairs, in order (`+` is a space, as in
/// form encoding; a key without `=` has an empty value).
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// SigV4 URI encoding: everything but `A-Za-z0-9-_.~` as `%XX` (upper-case hex);
/// `/` kept when `encode_slash` is false.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b'/' if !encode_slash => out.push('/'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The SigV4 signing key: HMAC chain over date, region, service, `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// HMAC-SHA256.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `YYYYMMDDTHHMMSSZ` → time.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(s, format).ok()?.assume_utc();
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// time → `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

/// Presigns a `GetCallerIdentity` URL with this module's SigV4 code. Only the
/// emulator's own tests use it (to build requests the binary would never produce);
/// tests of the binary use the binary's tokens.
pub fn presign_for_tests(
    host: &str,
    access_key_id: &str,
    secret: &str,
    region: &str,
    cluster_id: &str,
    signed_at: SystemTime,
) -> String {
    presign_with_expires(
        host,
        access_key_id,
        secret,
        region,
        cluster_id,
        signed_at,
        60,
    )
}

/// [`presign_for_tests`] with another `X-Amz-Expires` (which STS ignores): distinct
/// valid URLs for one key and one second, for load runs with many distinct tokens.
pub fn presign_with_expires(
    host: &str,
    access_key_id: &str,
    secret: &str,
    region: &str,
    cluster_id: &str,
    signed_at: SystemTime,
    expires: u32,
) -> String {
    let amz_date = format_amz_date(signed_at);
    let date = amz_date.get(..8).unwrap_or_default().to_owned();
    let params = vec![
        ("Action".to_owned(), "GetCallerIdentity".to_owned()),
        ("Version".to_owned(), "2011-06-15".to_owned()),
        ("X-Amz-Algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
        (
            "X-Amz-Credential".to_owned(),
            format!("{access_key_id}/{date}/{region}/sts/aws4_request"),
        ),
        ("X-Amz-Date".to_owned(), amz_date.clone()),
        ("X-Amz-Expires".to_owned(), expires.to_string()),
        (
            "X-Amz-SignedHeaders".to_owned(),
            "host;x-k8s-aws-id".to_owned(),
        ),
    ];
    let headers = vec![
        ("host".to_owned(), host.to_owned()),
        ("x-k8s-aws-id".to_owned(), cluster_id.to_owned()),
    ];
    let canonical = canonical_request("GET", "/", &params, &headers, "host;x-k8s-aws-id");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/sts/aws4_request\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let signature = hex(&hmac_sha256(
        &signing_key(secret, &date, region, "sts"),
        string_to_sign.as_bytes(),
    ));
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k, true), uri_encode(v, true)))
        .collect::<Vec<_>>()
        .join("&");
    format!("https://{host}/?{query}&X-Amz-Signature={signature}")
}
