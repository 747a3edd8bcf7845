//! The endpoints the server's credential chain calls, faked on one plain-HTTP loopback
//! listener: IMDSv2 (`/latest/...`), a container credentials endpoint (`/creds`) and
//! STS's `AssumeRole` (header-signed, checked with the STS emulator's SigV4 verifier)
//! and `AssumeRoleWithWebIdentity` (unsigned) at `POST /`. Every request is recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};

use super::sts_emulator::{self, Credential, Identity};

/// The key `AssumeRole` requests must be signed with.
pub const BASE_KEY_ID: &str = "AKIDBASEEXAMPLE";
/// Its secret.
pub const BASE_SECRET: &str = "base-secret";
/// The IMDS session token the fake hands out.
pub const IMDS_TOKEN: &str = "imds-session-token";
/// The instance role's name.
pub const INSTANCE_ROLE: &str = "node-role";
/// A role `AssumeRole` refuses with `AccessDenied`.
pub const DENIED_ROLE: &str = "arn:aws:iam::111122223333:role/denied";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Seen {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The form parameter `name` of the body.
    pub fn param(&self, name: &str) -> Option<String> {
        sts_emulator::parse_query(&self.body)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// The fake; cheap to clone.
#[derive(Debug, Clone)]
pub struct AwsFakes {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn expiration() -> String {
    let t = time::OffsetDateTime::from(SystemTime::now() + Duration::from_secs(3600));
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn answer(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn credentials_json(akid: &str) -> String {
    format!(
        r#"{{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"{akid}","SecretAccessKey":"s","Token":"t","Expiration":"{}"}}"#,
        expiration()
    )
}

fn sts_credentials(action: &str, akid: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{}\"><{action}Result><Credentials><AccessKeyId>{akid}</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>{}</Expiration></Credentials></{action}Result></{action}Response>",
        sts_emulator::STS_XMLNS,
        expiration()
    )
}

fn sts_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    answer(
        status,
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        ),
    )
}

impl AwsFakes {
    /// Starts the fake on 127.0.0.1.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fakes = Self {
            url,
            seen: Arc::default(),
        };
        let server = fakes.clone();
        super::http::serve(listener, None, move |_, req| {
            let server = server.clone();
            async move { server.handle(req).await }
        });
        fakes
    }

    /// What it received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let seen = Seen {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        self.seen.lock().unwrap().push(seen.clone());
        self.answer(&seen)
    }

    fn answer(&self, seen: &Seen) -> Response<Full<Bytes>> {
        let imds_token_ok = seen.header("x-aws-ec2-metadata-token") == Some(IMDS_TOKEN);
        match (seen.method.as_str(), seen.path.as_str()) {
            ("PUT", "/latest/api/token")
                if seen
                    .header("x-aws-ec2-metadata-token-ttl-seconds")
                    .is_some() =>
            {
                answer(200, IMDS_TOKEN.to_owned())
            }
            ("GET", p) if p.starts_with("/latest/") && !imds_token_ok => answer(401, String::new()),
            ("GET", "/latest/meta-data/placement/region") => answer(200, "eu-west-3".to_owned()),
            ("GET", "/latest/meta-data/iam/security-credentials/") => {
                answer(200, format!("{INSTANCE_ROLE}\n"))
            }
            ("GET", p)
                if p == format!("/latest/meta-data/iam/security-credentials/{INSTANCE_ROLE}") =>
            {
                answer(200, credentials_json("ASIAIMDS"))
            }
            ("GET", "/creds") => match seen.header("authorization") {
                Some("pod-identity-token") => answer(200, credentials_json("ASIAPOD")),
                _ => answer(401, r#"{"Message":"unauthorized"}"#.to_owned()),
            },
            ("POST", "/") => self.sts(seen),
            _ => answer(404, String::new()),
        }
    }

    fn sts(&self, seen: &Seen) -> Response<Full<Bytes>> {
        match seen.param("Action").as_deref() {
            Some("AssumeRoleWithWebIdentity") => {
                if seen.header("authorization").is_some() {
                    return sts_error(400, "InvalidParameterValue", "signed web identity call");
                }
                match seen.param("WebIdentityToken").as_deref() {
                    Some("projected-jwt") => {
                        answer(200, sts_credentials("AssumeRoleWithWebIdentity", "ASIAWEB"))
                    }
                    _ => sts_error(400, "InvalidIdentityToken", "bad token"),
                }
            }
            Some("AssumeRole") => {
                let lookup = |akid: &str| {
                    (akid == BASE_KEY_ID).then(|| Credential {
                        secret: BASE_SECRET.to_owned(),
                        session_token: None,
                        identity: Identity::new(
                            "arn:aws:iam::111122223333:user/base",
                            "111122223333",
                            "AIDABASE",
                        ),
                    })
                };
                let verified = sts_emulator::verify_header_signed(
                    "POST",
                    "/",
                    &seen.headers,
                    &seen.body,
                    SystemTime::now(),
                    lookup,
                );
                if let Err(e) = verified {
                    return sts_error(403, "SignatureDoesNotMatch", &format!("{e:?}"));
                }
                if seen.param("RoleArn").as_deref() == Some(DENIED_ROLE) {
                    return sts_error(
                        403,
                        "AccessDenied",
                        "not authorized to perform: sts:AssumeRole",
                    );
                }
                answer(200, sts_credentials("AssumeRole", "ASIAROLE"))
            }
            _ => sts_error(400, "InvalidAction", "unknown action"),
        }
    }
}
