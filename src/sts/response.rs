//! What STS's answer to `GetCallerIdentity` means (pure): the caller, or a typed error
//! whose text is upstream's.

/// Who signed the URL, as STS says (before any canonicalisation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallerIdentity {
    /// `Arn`, e.g. `arn:aws:sts::123456789012:assumed-role/Admin/alice`.
    pub arn: String,
    /// `Account`.
    pub account: String,
    /// `UserId`, e.g. `AROAEXAMPLE:alice`.
    pub user_id: String,
}

/// Why an STS exchange gave no caller. The texts are upstream's (its `STSError`
/// messages, without the `sts getCallerIdentity failed: ` prefix the token adds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The request could not be built (e.g. a cluster id that is not a valid header value).
    #[error("error creating HTTP request: {0}")]
    Request(String),
    /// No response: connection, TLS or protocol failure.
    #[error("error during GET: {error} on {region} endpoint")]
    Transport {
        /// What failed.
        error: String,
        /// The host's region label.
        region: String,
    },
    /// The timeout ran out before the whole answer (headers and body) arrived.
    #[error("error during GET: {error} on {region} endpoint")]
    Timeout {
        /// What timed out.
        error: String,
        /// The host's region label.
        region: String,
    },
    /// Headers arrived but the body could not be read (or was too large).
    #[error("error reading HTTP result: {0}")]
    Body(String),
    /// STS throttled us: a non-200 answer whose body mentions `Throttling`. The text is
    /// the body.
    #[error("{0}")]
    Throttled(String),
    /// Any other non-200 answer.
    #[error("error from AWS (expected 200, got {status}) on {region} endpoint. Body: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The host's region label.
        region: String,
        /// The body, lossily decoded.
        body: String,
    },
    /// A 200 whose body is not a `GetCallerIdentity` answer (Go `encoding/json`'s words).
    #[error("{0}")]
    Body200(String),
}

impl CallError {
    /// Whether STS gave no verdict on the token: it could not be reached or asked, timed
    /// out, failed (5xx) or its answer broke off. The webhook answers these so that
    /// kube-apiserver retries; the others (a 4xx, a 200 without a caller) are STS's verdict.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Request(_) | Self::Transport { .. } | Self::Timeout { .. } | Self::Body(_) => {
                true
            }
            Self::Status { status, .. } => *status >= 500,
            Self::Throttled(_) | Self::Body200(_) => false,
        }
    }
}

/// Interprets STS's answer (upstream's order): a non-200 is throttling when its body
/// says `Throttling`, else an error naming the status and `region`; a 200 carries the
/// caller as JSON.
pub fn interpret(status: u16, body: &[u8], region: &str) -> Result<CallerIdentity, CallError> {
    if status != 200 {
        let text = String::from_utf8_lossy(body);
        if text.contains("Throttling") {
            return Err(CallError::Throttled(text.into_owned()));
        }
        return Err(CallError::Status {
            status,
            region: region.to_owned(),
            body: text.into_owned(),
        });
    }
    caller_from_json(body)
}

/// Reads the caller from STS's JSON answer with Go `encoding/json` rules: keys match
/// case-insensitively, unknown keys are ignored, missing or null strings are empty.
pub fn caller_from_json(body: &[u8]) -> Result<CallerIdentity, CallError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| CallError::Body200(json_error(body, &e)))?;
    let result = field(&value, "GetCallerIdentityResponse")
        .and_then(|v| field(v, "GetCallerIdentityResult"));
    let text = |name: &str| -> Result<String, CallError> {
        match result.and_then(|r| field(r, name)) {
            None | Some(serde_json::Value::Null) => Ok(String::new()),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(CallError::Body200(format!(
                "json: cannot unmarshal {} into Go struct field of type string",
                json_kind(other)
            ))),
        }
    };
    Ok(CallerIdentity {
        arn: text("Arn")?,
        account: text("Account")?,
        user_id: text("UserId")?,
    })
}

/// A JSON object's member `name`: exact match first, else case-insensitive (Go's rule).
fn field<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    let obj = v.as_object()?;
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Null => "null",
    }
}

/// A JSON syntax error, worded like Go's where that is easy (`invalid character 'x' …`,
/// `unexpected end of JSON input`), with serde's position details.
fn json_error(body: &[u8], e: &serde_json::Error) -> String {
    if e.is_eof() {
        return format!("unexpected end of JSON input ({e})");
    }
    let offending = String::from_utf8_lossy(body)
        .lines()
        .nth(e.line().saturating_sub(1))
        .and_then(|l| l.chars().nth(e.column().saturating_sub(1)));
    match offending {
        Some(c) => format!("invalid character {c:?}: {e}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_errors_are_no_verdict() {
        let region = || "us-west-2".to_owned();
        let status = |status| CallError::Status {
            status,
            region: region(),
            body: String::new(),
        };
        let cases = [
            (CallError::Request("bad header".into()), true),
            (
                CallError::Transport {
                    error: "refused".into(),
                    region: region(),
                },
                true,
            ),
            (
                CallError::Timeout {
                    error: "timeout".into(),
                    region: region(),
                },
                true,
            ),
            (CallError::Body("reset".into()), true),
            (status(500), true),
            (status(503), true),
            (status(403), false),
            (status(400), false),
            (status(302), false),
            (CallError::Throttled("Throttling".into()), false),
            (CallError::Body200("invalid character".into()), false),
        ];
        for (e, want) in cases {
            assert_eq!(e.is_unavailable(), want, "{e:?}");
        }
    }

    #[test]
    fn answers() {
        let ok = br#"{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Arn":"arn:aws:iam::123456789012:user/Alice","account":"123456789012","UserId":"AIDA"}}}"#;
        assert_eq!(
            interpret(200, ok, "us-west-2").unwrap(),
            CallerIdentity {
                arn: "arn:aws:iam::123456789012:user/Alice".into(),
                account: "123456789012".into(),
                user_id: "AIDA".into(),
            }
        );
        assert_eq!(
            interpret(200, b"{}", "us-west-2").unwrap(),
            CallerIdentity::default()
        );
        let cases: [(u16, &[u8], &str); 6] = [
            (
                403,
                b"<Error>SignatureDoesNotMatch</Error>",
                "error from AWS (expected 200, got 403) on us-west-2 endpoint. Body: <Error>SignatureDoesNotMatch</Error>",
            ),
            (400, b"<Code>Throttling</Code>", "<Code>Throttling</Code>"),
            (200, b"xxxx", "invalid character 'x'"),
            (200, b"", "unexpected end of JSON input"),
            (
                200,
                br#"{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Arn":1}}}"#,
                "json: cannot unmarshal number into Go struct field of type string",
            ),
            // A 200 is an answer even when its body says Throttling.
            (200, b"\"Throttling\"", ""),
        ];
        for (status, body, want) in cases {
            let got = interpret(status, body, "us-west-2");
            match got {
                Err(e) => assert!(e.to_string().starts_with(want), "{status}: {e}"),
                Ok(c) => assert_eq!(want, "", "{status}: {c:?}"),
            }
        }
        assert!(matches!(
            interpret(400, b"Throttling", "global"),
            Err(CallError::Throttled(_))
        ));
        assert!(matches!(
            interpret(500, b"oops", "global"),
            Err(CallError::Status { status: 500, .. })
        ));
    }
}
