//! One log entry's fields and how they are printed: logrus's text and JSON shapes.
//!
//! The lines are written straight into one buffer: field names are the `&'static str`s
//! of `tracing`'s metadata, values are kept as they were recorded, and the JSON escaping
//! is done here (it is serde_json's, plus Go's `<`, `>`, `&`, U+2028 and U+2029), so a
//! line costs no intermediate map or JSON value.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use time::OffsetDateTime;
use tracing::Level;
use tracing::field::{Field, Visit};

/// A field's value: JSON keeps numbers and booleans as they are, text prints them.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Str(String),
    /// A number or a boolean.
    Json(serde_json::Value),
}

impl Value {
    fn text(&self) -> Cow<'_, str> {
        match self {
            Value::Str(s) => Cow::Borrowed(s),
            Value::Json(v) => Cow::Owned(v.to_string()),
        }
    }
}

/// An event's message and other fields, or a span's fields (its message among them).
#[derive(Debug, Default, Clone)]
pub(super) struct Fields {
    pub msg: String,
    /// In the order first recorded; a field recorded again replaces its value.
    pub rest: Vec<(&'static str, Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.msg = match value {
                Value::Str(s) => s,
                Value::Json(v) => v.to_string(),
            };
        } else {
            self.insert(field.name(), value);
        }
    }

    fn insert(&mut self, name: &'static str, value: Value) {
        match self.rest.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.rest.push((name, value)),
        }
    }

    /// Takes an enclosing span's fields as extra keys (its message, if any, as `message`).
    pub fn inherit(&mut self, span: &Fields) {
        for (k, v) in &span.rest {
            self.insert(k, v.clone());
        }
        if !span.msg.is_empty() {
            self.insert("message", Value::Str(span.msg.clone()));
        }
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
pub(super) struct Record<'a> {
    pub time: OffsetDateTime,
    pub level: &'static str,
    pub msg: &'a str,
    pub fields: &'a [(&'static str, Value)],
}

impl Record<'_> {
    /// The fields with logrus's `prefixFieldClashes` applied (a field named like one of
    /// the fixed keys becomes `fields.<name>`), sorted by key.
    fn data(&self) -> Vec<(Cow<'static, str>, &Value)> {
        let mut data: Vec<_> = self
            .fields
            .iter()
            .map(|(k, v)| match *k {
                "time" | "level" | "msg" | "logrus_error" => (Cow::Owned(format!("fields.{k}")), v),
                _ => (Cow::Borrowed(*k), v),
            })
            .collect();
        data.sort_by(|a, b| a.0.cmp(&b.0));
        data
    }

    /// logrus `TextFormatter` without a terminal, appended to `out`: `time`, `level`,
    /// `msg`, then the fields sorted by key; each value bare when it is made only of
    /// `[A-Za-z0-9-._/@^+]`, else as Go's `%q`.
    pub fn text(&self, out: &mut String) {
        let pair = |out: &mut String, k: &str, v: &str| {
            out.push_str(k);
            out.push('=');
            if needs_quoting(v) {
                out.push_str(&crate::go::strconv::quote(v));
            } else {
                out.push_str(v);
            }
        };
        out.push_str("time=\"");
        push_time(out, self.time);
        out.push('"');
        out.push_str(" level=");
        out.push_str(self.level);
        out.push(' ');
        pair(out, "msg", self.msg);
        for (k, v) in self.data() {
            out.push(' ');
            pair(out, &k, &v.text());
        }
    }

    /// logrus `JSONFormatter`, appended to `out`: one object, keys sorted (Go marshals a
    /// map so), strings escaped as Go's `json.Encoder` does by default.
    pub fn json(&self, out: &mut String) {
        enum Json<'v> {
            Str(&'v str),
            Time,
            Other(&'v serde_json::Value),
        }
        let mut entries: Vec<(Cow<'static, str>, Json<'_>)> = self
            .data()
            .into_iter()
            .map(|(k, v)| match v {
                Value::Str(s) => (k, Json::Str(s)),
                Value::Json(v) => (k, Json::Other(v)),
            })
            .collect();
        entries.push((Cow::Borrowed("time"), Json::Time));
        entries.push((Cow::Borrowed("level"), Json::Str(self.level)));
        entries.push((Cow::Borrowed("msg"), Json::Str(self.msg)));
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        out.push('{');
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, k);
            out.push(':');
            match v {
                Json::Str(s) => push_json_str(out, s),
                Json::Time => {
                    out.push('"');
                    push_time(out, self.time);
                    out.push('"');
                }
                // Numbers and booleans: nothing to escape.
                Json::Other(v) => {
                    let _ = write!(out, "{v}");
                }
            }
        }
        out.push('}');
    }
}

/// `s` as a JSON string: serde_json's escapes (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`,
/// other control characters as `\u00xx`), and `<`, `>`, `&`, U+2028 and U+2029 as
/// `\u003c`… as Go's `json.Encoder` writes them by default (logrus's JSON lines).
pub(super) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut plain = 0;
    let mut i = 0;
    // Byte by byte: every character escaped is ASCII except U+2028 and U+2029 (E2 80 A8
    // and E2 80 A9), and 0xE2 only ever starts a character, so every slice taken below
    // ends on a character boundary.
    while i < bytes.len() {
        let b = bytes[i];
        let (escaped, len): (&str, usize) = match b {
            b'"' => ("\\\"", 1),
            b'\\' => ("\\\\", 1),
            0x08 => ("\\b", 1),
            0x0c => ("\\f", 1),
            b'\n' => ("\\n", 1),
            b'\r' => ("\\r", 1),
            b'\t' => ("\\t", 1),
            b'<' => ("\\u003c", 1),
            b'>' => ("\\u003e", 1),
            b'&' => ("\\u0026", 1),
            0xe2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xa8) => {
                ("\\u2028", 3)
            }
            0xe2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xa9) => {
                ("\\u2029", 3)
            }
            b if b < 0x20 => ("", 1),
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[plain..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escaped);
        }
        i += len;
        plain = i;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// logrus `TextFormatter.needsQuoting` with its defaults (an empty value stays bare).
fn needs_quoting(s: &str) -> bool {
    !s.bytes().all(|c| {
        c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'/' | b'@' | b'^' | b'+')
    })
}

/// logrus's `Level.String()`: `warning`, not `warn`.
pub(super) fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Go's `time.RFC3339` (`2006-01-02T15:04:05Z07:00`), in UTC, appended to `out`.
///
/// upstream: logrus formats the entry's time in the process's local zone; we always use
/// UTC (`Z`), which is what a container or a Talos node runs in anyway, because reading
/// the local offset is not sound in a multi-threaded process.
pub(super) fn push_time(out: &mut String, t: OffsetDateTime) {
    let t = t.to_offset(time::UtcOffset::UTC);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
}

#[cfg(test)]
mod tests;
