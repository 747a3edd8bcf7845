//! Logs: `tracing` to **stderr**, always (stdout belongs to `token`'s ExecCredential and
//! to the other subcommands' machine-readable output), in upstream's logrus shapes so that
//! existing log queries and alerts keep working:
//!
//! - text: `time="2006-01-02T15:04:05Z" level=info msg="…" key=value`, logrus's
//!   `TextFormatter` as it prints without a terminal;
//! - JSON: `{"level":"info","msg":"…","time":"…",…}`, logrus's `JSONFormatter`.
//!
//! Our structured fields follow as extra keys in both.
//!
//! The server writes its lines off the request path ([`Output::Background`]): a request
//! formats its line and hands it to a bounded queue that one thread drains to stderr, in
//! batches. When that thread falls behind (stderr blocked: a stalled log collector), the
//! queue fills and the next line waits for room: requests slow down, but no line (an
//! audit record of who was let in) is ever dropped. [`flush`] empties the queue before
//! the process exits or execs.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::sync::Mutex;

use time::OffsetDateTime;
use time::macros::format_description;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of the last error a command reports before it exits 1; logged at level
/// `fatal`, as upstream's `logrus.Fatalf` does.
pub const FATAL_TARGET: &str = "aws_iam_authenticator::fatal";

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `key=value` text lines (upstream's logrus text formatter shape).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Parses `text`/`json`; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Upstream's first line of `init` and `server`: `Authenticator Version: "0.7.18", "<commit>"`.
pub fn version_line() -> String {
    format!(
        "Authenticator Version: {:?}, {:?}",
        crate::VERSION,
        crate::COMMIT
    )
}

/// Announces the version as `init` and `server` do first thing.
///
/// upstream: cmd/aws-iam-authenticator/{init,server}.go print this line with `fmt.Printf` on
/// stdout whatever the log format; in text mode we print it the same way, byte for byte
/// (scripts grep for it). With `--log-format=json` we log it instead, as one JSON record
/// on stderr with `version` and `commit` fields, because then every line the process
/// prints must be JSON: a log pipeline (the Talos extension's `LOG_FORMAT=json`) parses
/// each line, and a plain one breaks it. Nothing else of `init` or `server` goes to stdout.
pub fn announce_version(format: &str) {
    if LogFormat::parse(format) == Some(LogFormat::Json) {
        tracing::info!(
            version = crate::VERSION,
            commit = crate::COMMIT,
            "{}",
            version_line()
        );
    } else {
        println!("{}", version_line());
    }
}

/// Maps upstream's logrus level names onto tracing's. `panic`/`fatal` have no tracing
/// equivalent and become `error`.
pub fn parse_level(s: &str) -> Option<tracing::Level> {
    Some(match s.to_ascii_lowercase().as_str() {
        "panic" | "fatal" | "error" => tracing::Level::ERROR,
        "warn" | "warning" => tracing::Level::WARN,
        "info" => tracing::Level::INFO,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => return None,
    })
}

/// The message upstream prints for an invalid `--log-verbosity`.
pub fn invalid_level_message(level: &str) -> String {
    format!(
        "Invalid log level \"{level}\". Valid values are: panic, fatal, error, warning, info, debug, trace"
    )
}

/// Lines the background writer may hold before a logging request waits for room: about
/// a second of a busy server's reviews, well under a MiB.
pub const BACKLOG_LINES: usize = 4096;

/// The background writer's buffer: lines that arrive together leave in one write.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Where log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// On the calling thread, line by line: for the short commands, whose few lines must
    /// keep their order with what the command prints itself.
    Direct,
    /// Through the bounded queue of the background writer: for the server.
    Background,
}

/// Joins the background writer once it has written every queued line.
static BACKGROUND: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Installs the global subscriber. Our own crate logs at `level`; dependencies only at
/// `warn` and above, so hyper or the AWS SDK don't flood the webhook's log.
/// `AWS_IAM_AUTHENTICATOR_LOG_FILTER` (an `EnvFilter` directive) overrides that, for debugging.
pub fn init(format: LogFormat, level: tracing::Level, output: Output) {
    let filter = std::env::var("AWS_IAM_AUTHENTICATOR_LOG_FILTER")
        .ok()
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(format!(
                "warn,aws_iam_authenticator={}",
                level.as_str().to_ascii_lowercase()
            ))
        });
    match output {
        Output::Direct => {
            install(filter, format, std::io::stderr);
        }
        Output::Background => {
            let (writer, guard) = NonBlockingBuilder::default()
                .lossy(false)
                .buffered_lines_limit(BACKLOG_LINES)
                .thread_name("log-writer")
                .finish(std::io::BufWriter::with_capacity(
                    WRITE_BUFFER_BYTES,
                    std::io::stderr(),
                ));
            if install(filter, format, writer) {
                *BACKGROUND
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(guard);
            }
        }
    }
}

/// Installs the subscriber writing to `writer`; whether it was installed. A second init
/// (tests that call the CLI entry point twice) is harmless: the first stays.
fn install<W>(filter: EnvFilter, format: LogFormat, writer: W) -> bool
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .fmt_fields(SpanFields)
        .event_format(Logrus(format))
        .try_init()
        .is_ok()
}

/// Writes out every queued line and stops the background writer (a no-op for
/// [`Output::Direct`]). Call it before the process exits or execs: lines logged after it
/// are lost.
pub fn flush() {
    let guard = BACKGROUND
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    // Dropping the guard waits for the writer to drain the queue and flush.
    drop(guard);
    let _ = std::io::stderr().flush();
}

/// Logs the error a command ends with, at logrus's `fatal` level.
pub fn fatal(message: &str) {
    tracing::error!(target: FATAL_TARGET, "{message}");
}

/// The event formatter: one logrus line per event.
#[derive(Debug, Clone, Copy)]
struct Logrus(LogFormat);

impl<S, N> FormatEvent<S, N> for Logrus
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        // The enclosing spans' fields (outermost first), then the event's own.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                let Some(stored) = ext.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(map) = serde_json::from_str::<BTreeMap<String, serde_json::Value>>(stored)
                {
                    for (k, v) in map {
                        let v = match v {
                            serde_json::Value::String(s) => Value::Str(s),
                            v => Value::Json(v),
                        };
                        fields.rest.insert(k, v);
                    }
                }
            }
        }
        event.record(&mut fields);
        let meta = event.metadata();
        let level = if meta.target() == FATAL_TARGET {
            "fatal"
        } else {
            level_name(*meta.level())
        };
        let record = Record {
            time: timestamp(OffsetDateTime::now_utc()),
            level,
            msg: fields.msg,
            fields: fields.rest,
        };
        let line = match self.0 {
            LogFormat::Text => record.text(),
            LogFormat::Json => record.json(),
        };
        writer.write_str(&line)?;
        writer.write_char('\n')
    }
}

/// Stores a span's fields as one JSON object, for [`Logrus`] to add to each event inside it.
#[derive(Debug, Clone, Copy)]
struct SpanFields;

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut f = Fields::default();
        fields.record(&mut f);
        writer.write_str(&f.to_json())
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut f = Fields::default();
        if let Ok(map) = serde_json::from_str::<BTreeMap<String, serde_json::Value>>(current) {
            f.rest = map.into_iter().map(|(k, v)| (k, Value::Json(v))).collect();
        }
        fields.record(&mut f);
        current.fields = f.to_json();
        Ok(())
    }
}

/// logrus's `Level.String()`: `warning`, not `warn`.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Go's `time.RFC3339` (`2006-01-02T15:04:05Z07:00`), in UTC.
///
/// upstream: logrus formats the entry's time in the process's local zone; we always use
/// UTC (`Z`), which is what a container or a Talos node runs in anyway, because reading
/// the local offset is not sound in a multi-threaded process.
fn timestamp(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

/// A field's value: JSON keeps numbers and booleans as they are, text prints them.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Json(serde_json::Value),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Json(v) => v.to_string(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Json(v) => v.clone(),
        }
    }
}

/// An event's message and other fields.
#[derive(Debug, Default)]
struct Fields {
    msg: String,
    rest: BTreeMap<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.msg = value.text();
        } else {
            self.rest.insert(field.name().to_owned(), value);
        }
    }
}

impl Fields {
    /// All fields (a span's message too) as one JSON object.
    fn to_json(&self) -> String {
        let mut map: BTreeMap<&str, serde_json::Value> = self
            .rest
            .iter()
            .map(|(k, v)| (k.as_str(), v.json()))
            .collect();
        if !self.msg.is_empty() {
            map.insert("message", self.msg.clone().into());
        }
        serde_json::to_string(&map).unwrap_or_default()
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::Str(value.to_owned()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Json(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::Json(value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::Json(value.into()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON number: logrus would fail to marshal them; a
        // string keeps the line.
        let v = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::Str(value.to_string()), |n| Value::Json(n.into()));
        self.put(field, v);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // logrus's `WithError` and its JSON formatter print an error as `err.Error()`.
        self.put(field, Value::Str(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::Str(format!("{value:?}")));
    }
}

/// One log entry, ready to print.
#[derive(Debug)]
struct Record {
    time: String,
    level: &'static str,
    msg: String,
    fields: BTreeMap<String, Value>,
}

impl Record {
    /// The fields with logrus's `prefixFieldClashes` applied: a field named like one of
    /// the fixed keys becomes `fields.<name>`.
    fn data(&self) -> BTreeMap<String, &Value> {
        self.fields
            .iter()
            .map(|(k, v)| match k.as_str() {
                "time" | "level" | "msg" | "logrus_error" => (format!("fields.{k}"), v),
                _ => (k.clone(), v),
            })
            .collect()
    }

    /// logrus `TextFormatter` without a terminal: `time`, `level`, `msg`, then the fields
    /// sorted by key; each value bare when it is made only of `[A-Za-z0-9-._/@^+]`, else
    /// as Go's `%q`.
    fn text(&self) -> String {
        let mut out = String::new();
        let mut pair = |k: &str, v: &str| {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(k);
            out.push('=');
            if needs_quoting(v) {
                out.push_str(&crate::go::strconv::quote(v));
            } else {
                out.push_str(v);
            }
        };
        pair("time", &self.time);
        pair("level", self.level);
        pair("msg", &self.msg);
        for (k, v) in self.data() {
            pair(&k, &v.text());
        }
        out
    }

    /// logrus `JSONFormatter`: one object, keys sorted (Go marshals a map so), with
    /// `<`, `>`, `&`, U+2028 and U+2029 escaped as Go's `json.Encoder` does by default.
    fn json(&self) -> String {
        let mut obj: BTreeMap<String, serde_json::Value> = self
            .data()
            .into_iter()
            .map(|(k, v)| (k, v.json()))
            .collect();
        obj.insert("time".into(), self.time.clone().into());
        obj.insert("level".into(), self.level.into());
        obj.insert("msg".into(), self.msg.clone().into());
        let raw = serde_json::to_string(&obj).unwrap_or_default();
        // These characters appear only inside JSON strings, where the escapes mean the same.
        let mut out = String::with_capacity(raw.len());
        for c in raw.chars() {
            match c {
                '<' => out.push_str("\\u003c"),
                '>' => out.push_str("\\u003e"),
                '&' => out.push_str("\\u0026"),
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                c => out.push(c),
            }
        }
        out
    }
}

/// logrus `TextFormatter.needsQuoting` with its defaults (an empty value stays bare).
fn needs_quoting(s: &str) -> bool {
    !s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '@' | '^' | '+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(parse_level("WARNING"), Some(tracing::Level::WARN));
        assert_eq!(parse_level("fatal"), Some(tracing::Level::ERROR));
        assert_eq!(parse_level("loud"), None);
        assert!(invalid_level_message("loud").starts_with("Invalid log level \"loud\""));
    }

    fn record(level: &'static str, msg: &str, fields: &[(&str, Value)]) -> Record {
        Record {
            time: "2026-12-02T00:19:41Z".into(),
            level,
            msg: msg.into(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn text_lines_are_logrus_lines() {
        let s = |v: &str| Value::Str(v.to_owned());
        let cases = [
            (
                record(
                    "info",
                    "STS response",
                    &[("arn", s("arn:aws:iam::1:role/x"))],
                ),
                r#"time="2026-12-02T00:19:41Z" level=info msg="STS response" arn="arn:aws:iam::1:role/x""#,
            ),
            (
                record(
                    "warning",
                    "ok",
                    &[("b", s("plain-1.2_x/y@z^+")), ("a", s(""))],
                ),
                r#"time="2026-12-02T00:19:41Z" level=warning msg=ok a= b=plain-1.2_x/y@z^+"#,
            ),
            (
                record(
                    "error",
                    "say \"hi\"\n",
                    &[
                        ("n", Value::Json(7.into())),
                        ("t", Value::Json(true.into())),
                    ],
                ),
                r#"time="2026-12-02T00:19:41Z" level=error msg="say \"hi\"\n" n=7 t=true"#,
            ),
            (
                record("info", "m", &[("msg", s("x")), ("time", s("y"))]),
                r#"time="2026-12-02T00:19:41Z" level=info msg=m fields.msg=x fields.time=y"#,
            ),
        ];
        for (rec, want) in cases {
            assert_eq!(rec.text(), want);
        }
    }

    #[test]
    fn json_lines_are_logrus_lines() {
        let rec = record(
            "warning",
            "a <b> & c",
            &[
                ("accountid", Value::Str("123".into())),
                ("count", Value::Json(3.into())),
                ("level", Value::Str("x".into())),
            ],
        );
        assert_eq!(
            rec.json(),
            r#"{"accountid":"123","count":3,"fields.level":"x","level":"warning","msg":"a \u003cb\u003e \u0026 c","time":"2026-12-02T00:19:41Z"}"#
        );
        let v: serde_json::Value = serde_json::from_str(&rec.json()).unwrap();
        assert_eq!(v["msg"], "a <b> & c");
    }

    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn span_fields_are_extra_keys_of_the_events_inside() {
        for (format, want) in [
            (
                LogFormat::Json,
                r#""client":"127.0.0.1:9","level":"warning","method":"POST","msg":"denied","n":2,"path":"/authenticate","#,
            ),
            (
                LogFormat::Text,
                r#" level=warning msg=denied client="127.0.0.1:9" method=POST n=2 path=/authenticate"#,
            ),
        ] {
            let buf = Buf::default();
            let writer = buf.clone();
            let sub = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .fmt_fields(SpanFields)
                .event_format(Logrus(format))
                .finish();
            tracing::subscriber::with_default(sub, || {
                let span = tracing::info_span!("authenticate", path = "/authenticate", client = %"127.0.0.1:9", method = tracing::field::Empty);
                span.record("method", "POST");
                let _g = span.enter();
                tracing::warn!(n = 2, "denied");
            });
            let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            assert!(out.contains(want), "{out}\nwant {want}");
        }
    }

    #[test]
    fn level_names_and_time() {
        assert_eq!(level_name(Level::WARN), "warning");
        assert_eq!(level_name(Level::ERROR), "error");
        let t = OffsetDateTime::from_unix_timestamp(1_136_214_245).unwrap();
        assert_eq!(timestamp(t), "2006-01-02T15:04:05Z");
    }

    #[test]
    fn formats() {
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("yaml"), None);
    }
}
