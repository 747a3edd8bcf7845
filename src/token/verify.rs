//! Server-side token verification: pure checks first ([`validate`]), then STS
//! ([`Verifier`]).
//!
//! [`validate`] applies upstream's ordered rules with upstream's messages and never does
//! I/O, so a malformed token costs microseconds and never reaches the network. Only a
//! URL it accepted (an allow-listed STS host, path `/`, allow-listed parameters, each
//! once) is ever sent anywhere.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::arn::{self, PrincipalType};
use crate::aws::Partition;
use crate::aws::endpoints;
use crate::go;
use crate::identity::Identity;
use crate::sts::{self, CallerIdentity};

use super::{
    CLUSTER_ID_HEADER, MAX_TOKEN_LEN, PRESIGNED_URL_LIFETIME_SECS, V1_PREFIX, VerifyError,
};

/// How far in the future an `X-Amz-Date` may be (STS's own clock-skew allowance).
pub const MAX_FUTURE_SKEW_SECS: u64 = 5 * 60;

/// Query parameters a token's URL may carry (compared lower-cased).
const PARAMETER_ALLOW_LIST: [&str; 9] = [
    "action",
    "version",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
];

/// A token that passed every check that needs no I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedToken {
    /// The URL to GET: `https://<host>/?<query exactly as signed>`.
    pub url: String,
    /// The allow-listed STS host, e.g. `sts.us-west-2.amazonaws.com`.
    pub host: String,
    /// The host's region label (`global` for `sts.amazonaws.com`), as upstream's
    /// messages name it.
    pub sts_region: String,
    /// The access key id from `X-Amz-Credential` (up to the first `/`; not validated).
    pub access_key_id: String,
    /// `X-Amz-Date`.
    pub signed_at: SystemTime,
    /// When STS stops accepting the URL: `signed_at` + 15 minutes.
    pub expires_at: SystemTime,
}

fn format_err(msg: impl Into<String>) -> VerifyError {
    VerifyError::Format(msg.into())
}

/// Checks `token` without I/O, in upstream's order and with upstream's messages, for a
/// server in `partition` running in `instance_region`, at time `now`.
///
/// The steps, each failing with upstream's message for its first broken rule: decode the
/// token into a URL; check the URL (scheme, STS host, no user info, path `/`); read its
/// query (each key once, allow-listed, one value); check the parameters (action, signed
/// cluster-id header, `X-Amz-Expires`, `X-Amz-Date` present); check the date against
/// `now`; build the request URL.
pub fn validate(
    token: &str,
    partition: Partition,
    instance_region: Option<&str>,
    now: SystemTime,
) -> Result<ValidatedToken, VerifyError> {
    let url = decode(token)?;
    let sts_region = check_url(&url, partition, instance_region)?;
    let params = Params::parse(&url.raw_query)?;
    params.check()?;
    let access_key_id = params
        .get("x-amz-credential")
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let (signed_at, expires_at) = check_date(params.get("x-amz-date"), now)?;

    // Re-serialised as Go's client would send it: the query exactly as signed, the
    // fragment (never sent) dropped.
    let request_url = format!("https://{}/?{}", url.host, url.raw_query);
    if let Err(e) = request_url.parse::<http::Uri>() {
        return Err(format_err(format!("error creating HTTP request: {e}")));
    }
    Ok(ValidatedToken {
        url: request_url,
        host: url.host,
        sts_region,
        access_key_id,
        signed_at,
        expires_at,
    })
}

/// The token's size and prefix, then its base64 payload parsed as a URL.
fn decode(token: &str) -> Result<go::url::Url, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(format_err("token is too large"));
    }
    let Some(encoded) = token.strip_prefix(V1_PREFIX) else {
        return Err(format_err(format!(
            "token is missing expected {V1_PREFIX:?} prefix"
        )));
    };
    let decoded = go::base64::decode_raw_url(encoded.as_bytes()).map_err(format_err)?;
    go::url::parse(&String::from_utf8_lossy(&decoded)).map_err(format_err)
}

/// The URL's scheme, host (allow-listed for this partition and region), user info and
/// path. Returns the host's region label.
fn check_url(
    url: &go::url::Url,
    partition: Partition,
    instance_region: Option<&str>,
) -> Result<String, VerifyError> {
    if url.scheme != "https" {
        return Err(format_err(format!(
            "unexpected scheme {} in pre-signed URL",
            go::strconv::quote(&url.scheme)
        )));
    }
    endpoints::verify_host(&url.host, partition, instance_region).map_err(VerifyError::Host)?;
    let sts_region = endpoints::region_label(&url.host)
        .map_err(|e| VerifyError::Plain(e.to_string()))?
        .to_owned();
    // upstream: Go's client would send `user:pass@` as basic auth to STS; we refuse a
    // token that carries credentials of its own in the URL.
    if url.has_userinfo {
        return Err(format_err("unexpected user info in pre-signed URL"));
    }
    if url.path != "/" {
        return Err(format_err("unexpected path in pre-signed URL"));
    }
    Ok(sts_region)
}

/// The query's parameters, keys lower-cased, each allow-listed and present once with one
/// value.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw_query: &str) -> Result<Self, VerifyError> {
        let params =
            go::url::parse_query(raw_query).map_err(|_| format_err("malformed query parameter"))?;
        // CVE-2022-2385: case variants of one key (`X-Amz-Credential` and
        // `x-amz-credential`) would let the checks below see one value and STS another.
        let mut seen: Vec<String> = Vec::with_capacity(params.len());
        for (key, _) in &params {
            let lower = key.to_lowercase();
            if seen.contains(&lower) {
                return Err(format_err(format!(
                    "duplicate query parameter found: {}",
                    go::strconv::quote(key)
                )));
            }
            seen.push(lower);
        }
        let mut lower: Vec<(String, String)> = Vec::with_capacity(params.len());
        for (key, values) in &params {
            let k = key.to_lowercase();
            if !PARAMETER_ALLOW_LIST.contains(&k.as_str()) {
                return Err(format_err(format!(
                    "non-whitelisted query parameter {}",
                    go::strconv::quote(key)
                )));
            }
            let [value] = values.as_slice() else {
                return Err(format_err(
                    "query parameter with multiple values not supported",
                ));
            };
            lower.push((k, value.clone()));
        }
        Ok(Self(lower))
    }

    /// The value of the lower-case `key`, empty when absent (Go's `Query().Get`).
    fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The action, the signed cluster-id header, `X-Amz-Expires` and that `X-Amz-Date` is
    /// present.
    fn check(&self) -> Result<(), VerifyError> {
        if self.get("action") != "GetCallerIdentity" {
            return Err(format_err("unexpected action parameter in pre-signed URL"));
        }
        if !self
            .get("x-amz-signedheaders")
            .split(';')
            .any(|h| h.to_lowercase() == CLUSTER_ID_HEADER)
        {
            return Err(format_err(format!(
                "client did not sign the {CLUSTER_ID_HEADER} header in the pre-signed URL"
            )));
        }
        match go::strconv::atoi(self.get("x-amz-expires")) {
            Ok(v) if (0..=900).contains(&v) => {}
            Ok(v) | Err(v) => {
                return Err(format_err(format!(
                    "invalid X-Amz-Expires parameter in pre-signed URL: {v}"
                )));
            }
        }
        if self.get("x-amz-date").is_empty() {
            return Err(format_err(
                "X-Amz-Date parameter must be present in pre-signed URL",
            ));
        }
        Ok(())
    }
}

/// `X-Amz-Date` parsed, neither expired nor too far ahead at `now`. Returns when it was
/// signed and when it expires.
fn check_date(date: &str, now: SystemTime) -> Result<(SystemTime, SystemTime), VerifyError> {
    let signed = go::time::parse_amz_date(date).map_err(|e| {
        format_err(format!(
            "error parsing X-Amz-Date parameter {date} into format {}: {e}",
            go::time::AMZ_DATE_LAYOUT
        ))
    })?;
    let (signed_at, expires_at) = signed.system_times(PRESIGNED_URL_LIFETIME_SECS);
    if now > expires_at {
        return Err(format_err(format!(
            "X-Amz-Date parameter is expired ({} minute expiration) {}",
            PRESIGNED_URL_LIFETIME_SECS / 60,
            signed.display()
        )));
    }
    // upstream: accepts any future X-Amz-Date (STS alone enforces its skew); we reject
    // dates more than STS's 5-minute skew ahead, so a future-dated token cannot be
    // cached or replayed beyond its real lifetime.
    if signed_at > now + Duration::from_secs(MAX_FUTURE_SKEW_SECS) {
        return Err(format_err(format!(
            "X-Amz-Date parameter is in the future (more than {} minutes ahead) {}",
            MAX_FUTURE_SKEW_SECS / 60,
            signed.display()
        )));
    }
    Ok((signed_at, expires_at))
}

/// The server side of token verification: the cluster it serves, its partition and
/// region, and the shared STS client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Verifier {
    cluster_id: String,
    partition: Partition,
    instance_region: Option<String>,
    sts: sts::Client,
}

impl Verifier {
    /// A verifier for tokens bound to `cluster_id`, accepting STS hosts of `partition`
    /// (and of `instance_region` in it, see [`endpoints::verify_host`]).
    pub fn new(
        cluster_id: String,
        partition: Partition,
        instance_region: Option<String>,
        sts: sts::Client,
    ) -> Self {
        let instance_region = instance_region.filter(|r| !r.is_empty());
        if let Some(r) = instance_region.as_deref()
            && !endpoints::is_valid_region(r)
        {
            tracing::info!("invalid instance region {r:?}: not used for the STS host check");
        }
        let instance_region = instance_region.filter(|r| endpoints::is_valid_region(r));
        Self {
            cluster_id,
            partition,
            instance_region,
            sts,
        }
    }

    /// The cluster id sent to STS as `x-k8s-aws-id`.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The partition whose STS hosts are accepted.
    pub fn partition(&self) -> Partition {
        self.partition
    }

    /// The region used for the host allow-list's fallback, if known.
    pub fn instance_region(&self) -> Option<&str> {
        self.instance_region.as_deref()
    }

    /// The pure checks ([`validate`]) at the current time.
    pub fn validate(&self, token: &str) -> Result<ValidatedToken, VerifyError> {
        validate(
            token,
            self.partition,
            self.instance_region.as_deref(),
            SystemTime::now(),
        )
    }

    /// Asks STS who signed `token` (GET of its own URL with *our* cluster id as
    /// `x-k8s-aws-id`, so a token minted for another cluster fails STS's signature
    /// check), then canonicalises the ARN.
    pub async fn verify_validated(&self, token: &ValidatedToken) -> Result<Identity, VerifyError> {
        let caller = self
            .sts
            .get_caller_identity(&token.url, &self.cluster_id, &token.sts_region)
            .await?;
        identity_from_caller(caller, token)
    }

    /// [`Verifier::validate`], then [`Verifier::verify_validated`].
    pub async fn verify(&self, token: &str) -> Result<Identity, VerifyError> {
        let validated = self.validate(token)?;
        self.verify_validated(&validated).await
    }
}

/// Builds the identity from the caller STS named: the canonical ARN, and for roles the
/// role id and session name from `UserId` (`AROA…:session`).
pub fn identity_from_caller(
    caller: CallerIdentity,
    token: &ValidatedToken,
) -> Result<Identity, VerifyError> {
    let CallerIdentity {
        arn,
        account,
        user_id,
    } = caller;
    let (kind, canonical) = arn::canonicalize(&arn).map_err(|e| VerifyError::Sts(e.to_string()))?;
    let (user_id, session_name) = match kind {
        PrincipalType::User | PrincipalType::Root | PrincipalType::FederatedUser => {
            (user_id, String::new())
        }
        PrincipalType::Role | PrincipalType::AssumedRole => {
            let parts: Vec<&str> = user_id.split(':').collect();
            match parts.as_slice() {
                [id, session] => ((*id).to_owned(), (*session).to_owned()),
                _ => {
                    return Err(VerifyError::Sts(format!(
                        "malformed UserID {}",
                        go::strconv::quote(&user_id)
                    )));
                }
            }
        }
    };
    Ok(Identity {
        arn,
        canonical_arn: canonical,
        account_id: account,
        user_id,
        session_name,
        access_key_id: token.access_key_id.clone(),
        sts_endpoint: token.host.clone(),
    })
}

/// Formats `t` as an `X-Amz-Date` (`20060102T150405Z`, UTC; whole seconds).
pub fn amz_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        ),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests;
