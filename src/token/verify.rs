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
use crate::identity::Identity;
use crate::sts::{self, CallerIdentity};

use super::{
    CLUSTER_ID_HEADER, MAX_TOKEN_LEN, PRESIGNED_URL_LIFETIME_SECS, V1_PREFIX, VerifyError,
};

/// How far in the future an `X-Amz-Date` may be (STS's own clock-skew allowance).
pub const MAX_FUTURE_SKEW_SECS: u64 = 5 * 60;

/// The Go layout upstream parses `X-Amz-Date` with (quoted in its messages).
const DATE_LAYOUT: &str = "20060102T150405Z";

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
pub fn validate(
    token: &str,
    partition: Partition,
    instance_region: Option<&str>,
    now: SystemTime,
) -> Result<ValidatedToken, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(format_err("token is too large"));
    }
    let Some(encoded) = token.strip_prefix(V1_PREFIX) else {
        return Err(format_err(format!(
            "token is missing expected {V1_PREFIX:?} prefix"
        )));
    };
    let decoded = decode_raw_url_base64(encoded.as_bytes()).map_err(format_err)?;
    let raw_url = String::from_utf8_lossy(&decoded);
    let url = go_url::parse(&raw_url).map_err(format_err)?;

    if url.scheme != "https" {
        return Err(format_err(format!(
            "unexpected scheme {} in pre-signed URL",
            go_quote(&url.scheme)
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

    let params = go_url::parse_query(&url.raw_query)
        .map_err(|()| format_err("malformed query parameter"))?;
    // CVE-2022-2385: case variants of one key (`X-Amz-Credential` and `x-amz-credential`)
    // would let the checks below see one value and STS another.
    let mut seen: Vec<String> = Vec::with_capacity(params.len());
    for (key, _) in &params {
        let lower = key.to_lowercase();
        if seen.contains(&lower) {
            return Err(format_err(format!(
                "duplicate query parameter found: {}",
                go_quote(key)
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
                go_quote(key)
            )));
        }
        let [value] = values.as_slice() else {
            return Err(format_err(
                "query parameter with multiple values not supported",
            ));
        };
        lower.push((k, value.clone()));
    }
    let get = |k: &str| {
        lower
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };

    if get("action") != "GetCallerIdentity" {
        return Err(format_err("unexpected action parameter in pre-signed URL"));
    }
    if !get("x-amz-signedheaders")
        .split(';')
        .any(|h| h.to_lowercase() == CLUSTER_ID_HEADER)
    {
        return Err(format_err(format!(
            "client did not sign the {CLUSTER_ID_HEADER} header in the pre-signed URL"
        )));
    }
    let expires = go_atoi(get("x-amz-expires"));
    match expires {
        Ok(v) if (0..=900).contains(&v) => {}
        Ok(v) | Err(v) => {
            return Err(format_err(format!(
                "invalid X-Amz-Expires parameter in pre-signed URL: {v}"
            )));
        }
    }
    let date = get("x-amz-date");
    if date.is_empty() {
        return Err(format_err(
            "X-Amz-Date parameter must be present in pre-signed URL",
        ));
    }
    let access_key_id = get("x-amz-credential")
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let signed = go_time::parse_amz_date(date).map_err(|e| {
        format_err(format!(
            "error parsing X-Amz-Date parameter {date} into format {DATE_LAYOUT}: {e}"
        ))
    })?;
    let (signed_at, expires_at) = signed.system_times();
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
                        go_quote(&user_id)
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

/// `strconv.Atoi`: `Err(0)` on a syntax error, `Err(i64::MAX/MIN)` on overflow (the value
/// Go prints in the message).
fn go_atoi(s: &str) -> Result<i64, i64> {
    match s.parse::<i64>() {
        Ok(v) => Ok(v),
        Err(e) => match e.kind() {
            std::num::IntErrorKind::PosOverflow => Err(i64::MAX),
            std::num::IntErrorKind::NegOverflow => Err(i64::MIN),
            _ => Err(0),
        },
    }
}

/// Go's `base64.RawURLEncoding.DecodeString`: URL alphabet, no padding, `\r`/`\n`
/// skipped, non-zero trailing bits tolerated; the error names the offending offset.
fn decode_raw_url_base64(input: &[u8]) -> Result<Vec<u8>, String> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'-' => Some(62),
            b'_' => Some(63),
            _ => None,
        }
    }
    let illegal = |at: usize| format!("illegal base64 data at input byte {at}");
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut n = 0;
    let mut last_at = 0;
    for (i, &c) in input.iter().enumerate() {
        if c == b'\r' || c == b'\n' {
            continue;
        }
        let v = value(c).ok_or_else(|| illegal(i))?;
        acc = (acc << 6) | v;
        n += 1;
        last_at = i;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        1 => return Err(illegal(last_at)),
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    Ok(out)
}

/// Go's `strconv.Quote` (`%q`) closely enough for messages: quotes, backslash escapes,
/// control characters as `\x..`/`\u....`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The parts of Go's `net/url` that token validation depends on, with its messages.
mod go_url {
    use super::go_quote;

    /// A parsed URL: only what the checks look at.
    #[derive(Debug)]
    pub(super) struct Url {
        pub(super) scheme: String,
        pub(super) has_userinfo: bool,
        pub(super) host: String,
        /// The raw (still escaped) path.
        pub(super) path: String,
        pub(super) raw_query: String,
    }

    fn err(url: &str, msg: impl std::fmt::Display) -> String {
        format!("parse {}: {msg}", go_quote(url))
    }

    fn is_hex(c: u8) -> bool {
        c.is_ascii_hexdigit()
    }

    fn hex_value(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => 0,
        }
    }

    /// The first bad `%` escape of `s`, as Go's `EscapeError` text.
    fn check_escapes(s: &str) -> Result<(), String> {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                if i + 2 >= b.len() || !is_hex(b[i + 1]) || !is_hex(b[i + 2]) {
                    let end = (i + 3).min(b.len());
                    let frag = String::from_utf8_lossy(&b[i..end]);
                    return Err(format!("invalid URL escape {}", go_quote(&frag)));
                }
                i += 3;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Go's host unescaping rules (`unescape(host, encodeHost)`), returning the host.
    fn parse_host(host: &str) -> Result<String, String> {
        let b = host.as_bytes();
        if b.first() == Some(&b'[') {
            let Some(end) = host.find(']') else {
                return Err("missing ']' in host".to_owned());
            };
            let port = &host[end + 1..];
            if !valid_optional_port(port) {
                return Err(format!("invalid port {} after host", go_quote(port)));
            }
        } else if let Some(i) = host.rfind(':') {
            let port = &host[i..];
            if !valid_optional_port(port) {
                return Err(format!("invalid port {} after host", go_quote(port)));
            }
        }
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c == b'%' {
                if i + 2 >= b.len() || !is_hex(b[i + 1]) || !is_hex(b[i + 2]) {
                    let end = (i + 3).min(b.len());
                    let frag = String::from_utf8_lossy(&b[i..end]);
                    return Err(format!("invalid URL escape {}", go_quote(&frag)));
                }
                // Go allows only escapes of non-ASCII bytes (and `%25`) in a host.
                if hex_value(b[i + 1]) < 8 && &b[i..i + 3] != b"%25" {
                    let frag = String::from_utf8_lossy(&b[i..i + 3]);
                    return Err(format!("invalid URL escape {}", go_quote(&frag)));
                }
                out.push(hex_value(b[i + 1]) << 4 | hex_value(b[i + 2]));
                i += 3;
                continue;
            }
            if c < 0x80 && !host_char_ok(c) {
                let s = (c as char).to_string();
                return Err(format!("invalid character {} in host name", go_quote(&s)));
            }
            out.push(c);
            i += 1;
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn host_char_ok(c: u8) -> bool {
        c.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"".contains(&c)
    }

    fn valid_optional_port(port: &str) -> bool {
        match port.strip_prefix(':') {
            None => port.is_empty(),
            Some(digits) => digits.bytes().all(|c| c.is_ascii_digit()),
        }
    }

    /// `url.Parse`.
    pub(super) fn parse(raw: &str) -> Result<Url, String> {
        let (u, frag) = match raw.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (raw, None),
        };
        let url = parse_without_fragment(u).map_err(|e| err(u, e))?;
        if let Some(f) = frag {
            check_escapes(f).map_err(|e| err(raw, e))?;
        }
        Ok(url)
    }

    fn parse_without_fragment(u: &str) -> Result<Url, String> {
        if u.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err("net/url: invalid control character in URL".to_owned());
        }
        let (scheme, rest) = get_scheme(u)?;
        let scheme = scheme.to_ascii_lowercase();
        let (rest, raw_query) = if rest.ends_with('?') && rest.matches('?').count() == 1 {
            (&rest[..rest.len() - 1], "")
        } else {
            rest.split_once('?').unwrap_or((rest, ""))
        };
        let mut url = Url {
            scheme,
            has_userinfo: false,
            host: String::new(),
            path: String::new(),
            raw_query: raw_query.to_owned(),
        };
        if !rest.starts_with('/') {
            if !url.scheme.is_empty() {
                // An opaque URL (`https:foo`): no host, no path.
                return Ok(url);
            }
            let segment = rest.split('/').next().unwrap_or("");
            if segment.contains(':') {
                return Err("first path segment in URL cannot contain colon".to_owned());
            }
        }
        let mut path = rest;
        if (!url.scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
            let after = &rest[2..];
            let (authority, p) = match after.find('/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            };
            let host = match authority.rfind('@') {
                Some(i) => {
                    let userinfo = &authority[..i];
                    if !userinfo
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&c))
                    {
                        return Err("net/url: invalid userinfo".to_owned());
                    }
                    check_escapes(userinfo)?;
                    url.has_userinfo = true;
                    &authority[i + 1..]
                }
                None => authority,
            };
            url.host = parse_host(host)?;
            path = p;
        }
        check_escapes(path)?;
        url.path = path.to_owned();
        Ok(url)
    }

    fn get_scheme(u: &str) -> Result<(&str, &str), String> {
        for (i, c) in u.bytes().enumerate() {
            match c {
                b'a'..=b'z' | b'A'..=b'Z' => {}
                b'0'..=b'9' | b'+' | b'-' | b'.' => {
                    if i == 0 {
                        return Ok(("", u));
                    }
                }
                b':' => {
                    if i == 0 {
                        return Err("missing protocol scheme".to_owned());
                    }
                    return Ok((&u[..i], &u[i + 1..]));
                }
                _ => return Ok(("", u)),
            }
        }
        Ok(("", u))
    }

    /// `url.QueryUnescape`.
    fn query_unescape(s: &str) -> Result<String, ()> {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' => {
                    if i + 2 >= b.len() || !is_hex(b[i + 1]) || !is_hex(b[i + 2]) {
                        return Err(());
                    }
                    out.push(hex_value(b[i + 1]) << 4 | hex_value(b[i + 2]));
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// `url.ParseQuery`: keys in order of first appearance, each with its values. Any
    /// error (a `;` separator, a bad escape) fails the whole query, as upstream treats it.
    pub(super) fn parse_query(q: &str) -> Result<Vec<(String, Vec<String>)>, ()> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut failed = false;
        for pair in q.split('&') {
            if pair.contains(';') {
                failed = true;
                continue;
            }
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (Ok(k), Ok(v)) = (query_unescape(k), query_unescape(v)) else {
                failed = true;
                continue;
            };
            match out.iter_mut().find(|(key, _)| *key == k) {
                Some((_, values)) => values.push(v),
                None => out.push((k, vec![v])),
            }
        }
        if failed { Err(()) } else { Ok(out) }
    }
}

/// Go's `time.Parse("20060102T150405Z", …)` with its messages, and Go's `Time.String`.
mod go_time {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::{DATE_LAYOUT, PRESIGNED_URL_LIFETIME_SECS, go_quote};

    /// A parsed `X-Amz-Date` (UTC).
    #[derive(Debug, Clone, Copy)]
    pub(super) struct AmzDate {
        year: i32,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        unix: i64,
    }

    impl AmzDate {
        /// Go's `Time.String()`: `1990-04-22 01:02:03 +0000 UTC`.
        pub(super) fn display(&self) -> String {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
                self.year, self.month, self.day, self.hour, self.minute, self.second
            )
        }

        /// (signed at, expires at) as `SystemTime`s.
        pub(super) fn system_times(&self) -> (SystemTime, SystemTime) {
            let at = |secs: i64| {
                let d = Duration::from_secs(secs.unsigned_abs());
                let t = if secs >= 0 {
                    UNIX_EPOCH.checked_add(d)
                } else {
                    UNIX_EPOCH.checked_sub(d)
                };
                t.unwrap_or(UNIX_EPOCH)
            };
            (
                at(self.unix),
                at(self.unix.saturating_add(PRESIGNED_URL_LIFETIME_SECS)),
            )
        }
    }

    fn cannot_parse(value: &str, value_elem: &str, layout_elem: &str) -> String {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            go_quote(value),
            go_quote(DATE_LAYOUT),
            go_quote(value_elem),
            go_quote(layout_elem)
        )
    }

    fn digit(s: &[u8], i: usize) -> Option<u8> {
        s.get(i).filter(|c| c.is_ascii_digit()).map(|c| c - b'0')
    }

    /// Go's `getnum`: one or two digits (exactly two when `fixed`).
    fn getnum(s: &str, fixed: bool) -> Option<(u8, &str)> {
        let b = s.as_bytes();
        let d0 = digit(b, 0)?;
        match digit(b, 1) {
            Some(d1) => Some((d0 * 10 + d1, &s[2..])),
            None if fixed => None,
            None => Some((d0, &s[1..])),
        }
    }

    /// Parses `value` with layout `20060102T150405Z`.
    pub(super) fn parse_amz_date(value: &str) -> Result<AmzDate, String> {
        let range = |what: &str| format!("parsing time {}: {what} out of range", go_quote(value));
        let mut rest = value;
        // "2006": four characters, an optional sign then digits (Go's atoi).
        let year = {
            let b = rest.as_bytes();
            let p = b
                .get(..4)
                .ok_or_else(|| cannot_parse(value, rest, "2006"))?;
            let (neg, digits) = match p[0] {
                b'-' => (true, &p[1..]),
                b'+' => (false, &p[1..]),
                _ => (false, p),
            };
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(cannot_parse(value, rest, "2006"));
            }
            let v = digits
                .iter()
                .fold(0i32, |a, d| a * 10 + i32::from(d - b'0'));
            rest = &rest[4..];
            if neg { -v } else { v }
        };
        let (month, r) = getnum(rest, true).ok_or_else(|| cannot_parse(value, rest, "01"))?;
        if !(1..=12).contains(&month) {
            return Err(range("month"));
        }
        rest = r;
        let (day, r) = getnum(rest, true).ok_or_else(|| cannot_parse(value, rest, "02"))?;
        rest = r;
        rest = rest
            .strip_prefix('T')
            .ok_or_else(|| cannot_parse(value, rest, "T"))?;
        let (hour, r) = getnum(rest, false).ok_or_else(|| cannot_parse(value, rest, "15"))?;
        if hour >= 24 {
            return Err(range("hour"));
        }
        rest = r;
        let (minute, r) = getnum(rest, true).ok_or_else(|| cannot_parse(value, rest, "04"))?;
        if minute >= 60 {
            return Err(range("minute"));
        }
        rest = r;
        let (second, r) = getnum(rest, true).ok_or_else(|| cannot_parse(value, rest, "05"))?;
        if second >= 60 {
            return Err(range("second"));
        }
        rest = r;
        // Go accepts fractional seconds after a seconds field even when the layout has none.
        let b = rest.as_bytes();
        if b.len() >= 2 && (b[0] == b'.' || b[0] == b',') && b[1].is_ascii_digit() {
            let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            rest = &rest[n..];
        }
        rest = rest
            .strip_prefix('Z')
            .ok_or_else(|| cannot_parse(value, rest, "Z"))?;
        if !rest.is_empty() {
            return Err(format!(
                "parsing time {}: extra text: {}",
                go_quote(value),
                go_quote(rest)
            ));
        }
        let m = time::Month::try_from(month).map_err(|_| range("month"))?;
        let date = time::Date::from_calendar_date(year, m, day).map_err(|_| range("day"))?;
        let t = time::Time::from_hms(hour, minute, second).map_err(|_| range("hour"))?;
        let unix = time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp();
        Ok(AmzDate {
            year,
            month,
            day,
            hour,
            minute,
            second,
            unix,
        })
    }
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
