//! `{{EC2PrivateDNSName}}`: the private DNS name of the EC2 instance whose id is the
//! role session name.
//!
//! Lookups are answered from a cache; misses are **coalesced** (one outstanding query
//! per instance id, every concurrent caller waits for it), **batched** (ids arriving
//! within a short window, up to 100, go into one `DescribeInstances`) and
//! **rate-limited** (a token bucket of `--ec2-describeInstances-qps` /
//! `--ec2-describeInstances-burst` in front of every `DescribeInstances` call).
//! Found names are cached for an hour; a not-found answer is cached briefly, so a
//! flood of logins for an unknown id costs one call, and a later lookup answers at once.
//!
//! upstream: `pkg/ec2provider` rate-limits only the STS client used for AssumeRole, not
//! `DescribeInstances`; after a not-found answer it leaves the id marked in flight, so
//! every later lookup of it waits 5 s and fails; it caches an empty `privateDnsName` as
//! a success; it never expires entries. We fix all four.
//!
//! # How EC2 is called
//!
//! Not through `aws-sdk-ec2`: that crate alone costs minutes of compile time on a small
//! builder and megabytes of binary for one API call. Credentials come from `aws-config`
//! (the standard chain; with `server.ec2DescribeInstancesRoleARN`, an STS AssumeRole
//! carrying the `x-amz-source-arn`/`x-amz-source-account` headers of `server.sourceARN`),
//! the EC2 Query API request (`Action=DescribeInstances&Version=2016-11-15`) is signed
//! with `aws-sigv4`, sent over the same hyper/rustls stack as STS, and the XML answer is
//! read with `aws-smithy-xml`. Instances are selected with the `instance-id` filter
//! rather than `InstanceId.N`: with the latter, one unknown id fails the whole batch
//! (`InvalidInstanceID.NotFound`), with the filter it is just absent from the answer.
//! The endpoint is `https://ec2.<region>.<partition domain>/`, or `AWS_ENDPOINT_URL_EC2`
//! / `AWS_ENDPOINT_URL` when set (plain `http://` only to loopback addresses).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::credentials::assume_role::{AssumeRole, SourceHeaders};

/// A boxed future, for the object-safe lookup trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Looks up an instance's private DNS name.
pub trait PrivateDnsLookup: Send + Sync + std::fmt::Debug {
    /// The private DNS name of `instance_id`, or why it is not known.
    fn private_dns_name<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// The EC2 Query API version we speak.
pub const API_VERSION: &str = "2016-11-15";
/// The most ids one `DescribeInstances` call asks for.
pub const MAX_BATCH: usize = 100;
/// The cache holds at most this many entries before expired ones are dropped.
const CACHE_PRUNE_AT: usize = 10_000;
/// How long `ec2DescribeInstancesRoleARN` sessions last (renewed five minutes early).
const ASSUMED_ROLE_DURATION: Duration = Duration::from_secs(3600);
/// The most of an error body quoted in an error message.
const MAX_QUOTED_BODY: usize = 512;

/// Why the lookup could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint is not a usable URL.
    #[error("invalid EC2 endpoint {url:?}: {message}")]
    Endpoint {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// TLS roots could not be set up.
    #[error("cannot set up TLS for EC2: {0}")]
    Tls(String),
    /// `server.ec2DescribeInstancesRoleARN` is not an ARN (upstream's text; upstream panics).
    #[error("describeinstancesrole {0} is not a valid arn")]
    RoleArn(String),
    /// `server.sourceARN` is not an ARN.
    #[error("sourcearn {0} is not a valid arn")]
    SourceArn(String),
    /// No credentials provider could be configured.
    #[error("no AWS credentials provider for EC2")]
    NoCredentials,
}

/// How the lookup behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The EC2 endpoint, e.g. `https://ec2.us-west-2.amazonaws.com/`.
    pub endpoint: String,
    /// The signing region.
    pub region: String,
    /// `DescribeInstances` calls per second (0: unlimited).
    pub qps: u32,
    /// Calls allowed at once after a quiet period (at least 1).
    pub burst: u32,
    /// How long the first id of a batch waits for others.
    pub batch_window: Duration,
    /// The most ids per call (at most [`MAX_BATCH`]).
    pub max_batch: usize,
    /// How long a found name is kept.
    pub found_ttl: Duration,
    /// How long a not-found answer is kept.
    pub not_found_ttl: Duration,
    /// Budget of one `DescribeInstances` exchange.
    pub call_timeout: Duration,
    /// How long a caller waits for its answer at most.
    pub lookup_timeout: Duration,
}

impl Settings {
    /// Defaults for `region` and `endpoint` with the given rate limit.
    pub fn new(endpoint: String, region: String, qps: u32, burst: u32) -> Self {
        Self {
            endpoint,
            region,
            qps,
            burst,
            batch_window: Duration::from_millis(200),
            max_batch: MAX_BATCH,
            found_ttl: Duration::from_secs(3600),
            not_found_ttl: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            lookup_timeout: Duration::from_secs(15),
        }
    }
}

/// upstream's not-found text (trailing space included).
fn not_found(id: &str) -> String {
    format!("failed to find node {id} ")
}

#[derive(Debug, Clone)]
enum Cached {
    Found(String, Instant),
    Missing(Instant),
}

type Waiter = oneshot::Sender<Result<String, String>>;

#[derive(Debug, Default)]
struct State {
    cache: HashMap<String, Cached>,
    /// Ids with a query queued or in flight, and who waits for them.
    waiting: HashMap<String, Vec<Waiter>>,
}

/// A token bucket: `capacity` calls at once, refilled at `rate` per second.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(qps: u32, burst: u32) -> Self {
        let capacity = f64::from(burst.max(1));
        Self {
            rate: f64::from(qps),
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    async fn acquire(&mut self) {
        if self.rate <= 0.0 {
            return;
        }
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
            self.last = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                return;
            }
            let wait = (1.0 - self.tokens) / self.rate;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Signs and sends `DescribeInstances`.
#[derive(Debug)]
struct Ec2Client {
    http: HyperClient<Https, Full<Bytes>>,
    endpoint: http::Uri,
    region: String,
    credentials: SharedCredentialsProvider,
    timeout: Duration,
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn root_store() -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!("could not load a system trust root: {e}");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("no system trust roots found: EC2 calls over HTTPS will fail");
    }
    Ok(roots)
}

impl Ec2Client {
    fn new(settings: &Settings, credentials: SharedCredentialsProvider) -> Result<Self, Error> {
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
            Some("http") if is_loopback(host) => {}
            Some("http") => return Err(bad("plain http is only allowed to loopback addresses")),
            _ => return Err(bad("expected an https URL")),
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(root_store()?)
            .with_no_client_auth();
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(Duration::from_secs(5)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(Self {
            http: HyperClient::builder(TokioExecutor::new()).build(https),
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

    fn signed_request(
        &self,
        credentials: &Credentials,
        body: String,
    ) -> Result<http::Request<Full<Bytes>>, String> {
        const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
        let url = self.endpoint.to_string();
        let identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("ec2")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            std::iter::once(("content-type", CONTENT_TYPE)),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        let mut request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(
                http::header::USER_AGENT,
                format!("aws-iam-authenticator/{}", crate::VERSION),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }

    /// `DescribeInstances` for `ids`: instance id → private DNS name, for those found.
    async fn describe(&self, ids: &[String]) -> Result<HashMap<String, String>, String> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("no credentials: {e}"))?;
        let request = self.signed_request(&credentials, Self::body(ids))?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                use std::error::Error as _;
                match e.source() {
                    Some(s) => format!("{e}: {s}"),
                    None => e.to_string(),
                }
            })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))??;
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

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    queue: mpsc::UnboundedSender<String>,
    settings: Settings,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the answers for `ids` and wakes everyone waiting for them.
    fn settle(&self, ids: &[String], answer: &Result<HashMap<String, String>, String>) {
        let now = Instant::now();
        let mut st = self.lock();
        if st.cache.len() > CACHE_PRUNE_AT {
            st.cache.retain(|_, c| match c {
                Cached::Found(_, exp) | Cached::Missing(exp) => *exp > now,
            });
        }
        for id in ids {
            let result = match answer {
                Ok(found) => match found.get(id).filter(|n| !n.is_empty()) {
                    Some(name) => {
                        st.cache.insert(
                            id.clone(),
                            Cached::Found(name.clone(), now + self.settings.found_ttl),
                        );
                        Ok(name.clone())
                    }
                    None => {
                        st.cache.insert(
                            id.clone(),
                            Cached::Missing(now + self.settings.not_found_ttl),
                        );
                        Err(not_found(id))
                    }
                },
                Err(e) => Err(format!(
                    "failed querying private DNS from EC2 API for node {id}: {e} "
                )),
            };
            for waiter in st.waiting.remove(id).unwrap_or_default() {
                let _ = waiter.send(result.clone());
            }
        }
    }
}

/// Aborts the batching task when the lookup goes away.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The cached, coalescing, batching, rate-limited `DescribeInstances` lookup.
#[derive(Debug)]
pub struct Ec2PrivateDns {
    shared: Arc<Shared>,
    _task: AbortOnDrop,
}

impl Ec2PrivateDns {
    /// Builds the lookup and starts its batching task.
    pub fn new(settings: Settings, credentials: SharedCredentialsProvider) -> Result<Self, Error> {
        let client = Ec2Client::new(&settings, credentials)?;
        let (queue, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            queue,
            settings,
        });
        let task = tokio::spawn(batcher(Arc::clone(&shared), client, rx));
        Ok(Self {
            shared,
            _task: AbortOnDrop(task),
        })
    }

    async fn lookup(&self, id: &str) -> Result<String, String> {
        let rx = {
            let mut st = self.shared.lock();
            let now = Instant::now();
            match st.cache.get(id) {
                Some(Cached::Found(name, exp)) if *exp > now => return Ok(name.clone()),
                Some(Cached::Missing(exp)) if *exp > now => return Err(not_found(id)),
                _ => {}
            }
            let (tx, rx) = oneshot::channel();
            match st.waiting.entry(id.to_owned()) {
                Entry::Occupied(mut e) => e.get_mut().push(tx),
                Entry::Vacant(e) => {
                    e.insert(vec![tx]);
                    if self.shared.queue.send(id.to_owned()).is_err() {
                        st.waiting.remove(id);
                        return Err("the EC2 lookup has stopped".to_owned());
                    }
                }
            }
            rx
        };
        match tokio::time::timeout(self.shared.settings.lookup_timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the EC2 lookup has stopped".to_owned()),
            Err(_) => Err(format!(
                "failed to find node {id} in PrivateDNSNameCache returning from loop"
            )),
        }
    }
}

impl PrivateDnsLookup for Ec2PrivateDns {
    fn private_dns_name<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(self.lookup(instance_id))
    }
}

/// Collects ids into batches and sends one rate-limited call per batch.
async fn batcher(shared: Arc<Shared>, client: Ec2Client, mut rx: mpsc::UnboundedReceiver<String>) {
    let client = Arc::new(client);
    let settings = shared.settings.clone();
    let max_batch = settings.max_batch.clamp(1, MAX_BATCH);
    let mut bucket = TokenBucket::new(settings.qps, settings.burst);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = Instant::now() + settings.batch_window;
        while batch.len() < max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(id)) => batch.push(id),
                Ok(None) | Err(_) => break,
            }
        }
        bucket.acquire().await;
        crate::metrics::global().ec2_describe_instances_calls.inc();
        if let [id] = batch.as_slice() {
            tracing::info!("Calling ec2:DescribeInstances for the InstanceId = {id}");
        } else {
            tracing::info!(
                "Making Batch Query to DescribeInstances for {} instances",
                batch.len()
            );
        }
        let shared = Arc::clone(&shared);
        let client = Arc::clone(&client);
        tokio::spawn(async move {
            let answer = client.describe(&batch).await;
            if let Err(e) = &answer {
                tracing::warn!(instances = batch.len(), error = %e, "ec2:DescribeInstances failed");
            }
            shared.settle(&batch, &answer);
        });
    }
}

/// The EC2 endpoint: `AWS_ENDPOINT_URL_EC2`, else `AWS_ENDPOINT_URL`, else the
/// partition's regional endpoint.
fn endpoint(region: &str, domain: &str) -> String {
    ["AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| format!("https://ec2.{region}.{domain}/"))
}

/// The lookup the server uses, built from the server configuration. `None` when no
/// region is known (then `{{EC2PrivateDNSName}}` cannot be rendered).
pub async fn from_config(
    config: &ServerConfig,
) -> Result<Option<Arc<dyn PrivateDnsLookup>>, String> {
    let Some(region) = crate::sts::instance_region().await else {
        tracing::warn!(
            "no AWS region (AWS_REGION or instance metadata): {{{{EC2PrivateDNSName}}}} will not be rendered"
        );
        return Ok(None);
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.clone()))
        .load()
        .await;
    let mut credentials = sdk
        .credentials_provider()
        .ok_or_else(|| Error::NoCredentials.to_string())?;
    if let Some(role_arn) = config
        .ec2_describe_instances_role_arn
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        if crate::arn::parse(role_arn).is_err() {
            return Err(Error::RoleArn(role_arn.to_owned()).to_string());
        }
        let source = match config.source_arn.as_deref().filter(|s| !s.is_empty()) {
            Some(arn) => {
                let account = crate::arn::parse(arn)
                    .map_err(|_| Error::SourceArn(arn.to_owned()).to_string())?
                    .account_id
                    .to_owned();
                Some(SourceHeaders {
                    arn: arn.to_owned(),
                    account,
                })
            }
            None => None,
        };
        tracing::info!("Using assumed role for EC2 API");
        let assume = AssumeRole::new(&sdk, credentials, role_arn)
            .session_name("aws-iam-authenticator".to_owned())
            .duration(ASSUMED_ROLE_DURATION)
            .source_headers(source)
            .provider_name("ec2DescribeInstancesRoleARN");
        credentials = SharedCredentialsProvider::new(assume);
    }
    let settings = Settings::new(
        endpoint(&region, config.partition.domain()),
        region,
        config.ec2_describe_instances_qps,
        config.ec2_describe_instances_burst,
    );
    let lookup = Ec2PrivateDns::new(settings, credentials).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(lookup)))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn token_bucket_spaces_calls() {
        let mut b = TokenBucket::new(10, 2);
        let start = Instant::now();
        for _ in 0..4 {
            b.acquire().await;
        }
        // Two at once (burst), then one every 100 ms.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(199), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
        let mut unlimited = TokenBucket::new(0, 0);
        let start = Instant::now();
        for _ in 0..100 {
            unlimited.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(20));
    }
}
