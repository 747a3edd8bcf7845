//! One log entry's fields and how they are printed: logrus's text and JSON shapes.
//!
//! The lines are written straight into one buffer: field names are the `&'static str`s
//! of `tracing`'s metadata, values are written as they are recorded into one text buffer
//! per entry (no string per value), and the JSON escaping is done here (it is
//! serde_json's, plus Go's `<`, `>`, `&`, U+2028 and U+2029), so a line costs no
//! intermediate map or JSON value, and an event printed with reused [`Fields`] allocates
//! nothing.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::ops::Range;

use time::OffsetDateTime;
use tracing::Level;
use tracing::field::{Field, Visit};

use crate::go::json::{self, Escape};

/// How a value is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Text: a JSON string, quoted in text lines when it needs to be.
    Str,
    /// A number or a boolean, already in its JSON form: printed as it is in both shapes.
    Raw,
}

/// One field: its name, how it prints, and where its value is in [`Fields`]' text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: &'static str,
    /// logrus's `prefixFieldClashes`: a field named like one of the fixed keys is printed
    /// as `fields.<name>` (decided once, when the field is recorded).
    clashes: bool,
    /// The printed key's first eight bytes as a big-endian number (zero-padded): keys
    /// compare as these do, unless these are equal.
    order: u64,
    /// The name has nothing to escape in a JSON line (the usual case: an identifier).
    plain: bool,
    kind: Kind,
    value: Range<usize>,
}

/// The fixed keys of every line.
const FIXED_KEYS: [&str; 4] = ["time", "level", "msg", "logrus_error"];

/// The prefix of a field that clashes with a fixed key.
const CLASH_PREFIX: &str = "fields.";

impl Entry {
    fn new(name: &'static str, kind: Kind, value: Range<usize>) -> Self {
        let clashes = FIXED_KEYS.contains(&name);
        let mut head = [0; 8];
        if clashes {
            // "fields." and the name's first byte.
            head[..7].copy_from_slice(CLASH_PREFIX.as_bytes());
            head[7] = name.as_bytes()[0];
        } else {
            for (slot, &b) in head.iter_mut().zip(name.as_bytes()) {
                *slot = b;
            }
        }
        Self {
            name,
            clashes,
            order: u64::from_be_bytes(head),
            // Names are identifiers but for the odd string literal: the quick test first.
            plain: name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                || json::is_plain(name, Escape::Html),
            kind,
            value,
        }
    }

    /// The key it is printed under, as a prefix and the name.
    fn key(&self) -> (&'static str, &'static str) {
        (if self.clashes { CLASH_PREFIX } else { "" }, self.name)
    }

    /// Orders entries as their printed keys: a line's keys are compared while it is
    /// sorted, mostly by their first eight bytes alone.
    fn cmp_key(&self, other: &Self) -> std::cmp::Ordering {
        self.order
            .cmp(&other.order)
            .then_with(|| key_order(self.key(), other.key()))
    }
}

/// Orders printed keys (`prefix` + `name`) as the strings they make.
fn key_order(a: (&str, &str), b: (&str, &str)) -> std::cmp::Ordering {
    a.0.bytes()
        .chain(a.1.bytes())
        .cmp(b.0.bytes().chain(b.1.bytes()))
}

/// An event's message and other fields, or a span's fields (its message among them).
#[derive(Debug, Default, Clone)]
pub(super) struct Fields {
    /// Every value's text, one after another (a value recorded again leaves its old
    /// text behind, unused).
    text: String,
    msg: Range<usize>,
    /// In the order first recorded (until [`Fields::sort`]); a field recorded again
    /// replaces its value.
    entries: Vec<Entry>,
}

impl Fields {
    /// Empties it, keeping its buffers' capacity.
    pub fn clear(&mut self) {
        self.text.clear();
        self.msg = 0..0;
        self.entries.clear();
    }

    /// The capacity its buffers hold, in bytes.
    pub fn capacity(&self) -> usize {
        self.text.capacity() + self.entries.capacity() * std::mem::size_of::<Entry>()
    }

    /// The message.
    pub fn msg(&self) -> &str {
        &self.text[self.msg.clone()]
    }

    /// The fields but the message: name, how it prints, value.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Kind, &str)> + '_ {
        self.entries
            .iter()
            .map(|e| (e.name, e.kind, &self.text[e.value.clone()]))
    }

    /// Records `name` (the message when it is `message`) as what `write` writes.
    fn put(&mut self, name: &'static str, kind: Kind, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        let value = start..self.text.len();
        if name == "message" {
            self.msg = value;
        } else {
            self.set(name, kind, value);
        }
    }

    /// Records the field `name` as `value` (not the message: `message` is a field here).
    pub fn insert(&mut self, name: &'static str, kind: Kind, value: &str) {
        let start = self.text.len();
        self.text.push_str(value);
        self.set(name, kind, start..self.text.len());
    }

    /// Points the field `name` at `value` of the text.
    fn set(&mut self, name: &'static str, kind: Kind, value: Range<usize>) {
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(e) => {
                e.kind = kind;
                e.value = value;
            }
            None => self.entries.push(Entry::new(name, kind, value)),
        }
    }

    /// Takes an enclosing span's fields as extra keys (its message, if any, as `message`).
    pub fn inherit(&mut self, span: &Fields) {
        for (name, kind, value) in span.iter() {
            self.insert(name, kind, value);
        }
        if !span.msg.is_empty() {
            self.insert("message", Kind::Str, span.msg());
        }
    }

    /// Puts the fields in the order they are printed: by printed key (unique: a field
    /// recorded again replaced its entry).
    pub fn sort(&mut self) {
        self.entries.sort_unstable_by(Entry::cmp_key);
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field.name(), Kind::Str, |t| t.push_str(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field.name(), Kind::Raw, |t| {
            t.push_str(if value { "true" } else { "false" })
        });
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field.name(), Kind::Raw, |t| {
            let _ = write!(t, "{value}");
        });
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field.name(), Kind::Raw, |t| {
            let _ = write!(t, "{value}");
        });
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON number: logrus would fail to marshal them; a
        // string keeps the line. Finite ones as serde_json prints them (`1.0`, not `1`).
        match serde_json::Number::from_f64(value) {
            Some(n) => self.put(field.name(), Kind::Raw, |t| {
                let _ = write!(t, "{n}");
            }),
            None => self.put(field.name(), Kind::Str, |t| {
                let _ = write!(t, "{value}");
            }),
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // logrus's `WithError` and its JSON formatter print an error as `err.Error()`.
        self.put(field.name(), Kind::Str, |t| {
            let _ = write!(t, "{value}");
        });
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field.name(), Kind::Str, |t| {
            let _ = write!(t, "{value:?}");
        });
    }
}

/// One log entry, ready to print.
#[derive(Debug)]
pub(super) struct Record<'a> {
    pub time: OffsetDateTime,
    pub level: &'static str,
    /// The message and the fields, sorted ([`Fields::sort`]).
    pub fields: &'a Fields,
}

impl Record<'_> {
    /// logrus `TextFormatter` without a terminal, appended to `out`: `time`, `level`,
    /// `msg`, then the fields sorted by key; each value bare when it is made only of
    /// `[A-Za-z0-9-._/@^+]`, else as Go's `%q`.
    pub fn text(&self, out: &mut String) {
        let value = |out: &mut String, v: &str| {
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
        out.push_str(" msg=");
        value(out, self.fields.msg());
        for (entry, v) in self.entries() {
            let (prefix, name) = entry.key();
            out.push(' ');
            out.push_str(prefix);
            out.push_str(name);
            out.push('=');
            value(out, v);
        }
    }

    /// logrus `JSONFormatter`, appended to `out`: one object, keys sorted (Go marshals a
    /// map so), strings escaped as Go's `json.Encoder` does by default.
    pub fn json(&self, out: &mut String) {
        // The fixed keys, in order, merged into the sorted fields (no field's printed key
        // is one of them: see `Entry::key`).
        let mut fixed = ["level", "msg", "time"].into_iter().peekable();
        let fixed_value = |out: &mut String, key: &str| match key {
            "level" => push_json_str(out, self.level),
            "msg" => push_json_str(out, self.fields.msg()),
            _ => {
                out.push('"');
                push_time(out, self.time);
                out.push('"');
            }
        };
        out.push('{');
        let mut first = true;
        let mut comma = |out: &mut String| {
            if !std::mem::take(&mut first) {
                out.push(',');
            }
        };
        for (entry, v) in self.entries() {
            let key = entry.key();
            while let Some(k) = fixed.next_if(|k| {
                if entry.clashes {
                    key_order(("", k), key).is_lt()
                } else {
                    *k < entry.name
                }
            }) {
                comma(out);
                push_json_str(out, k);
                out.push(':');
                fixed_value(out, k);
            }
            comma(out);
            out.push('"');
            out.push_str(key.0);
            if entry.plain {
                out.push_str(key.1);
            } else {
                json::push_chars(out, key.1, Escape::Html);
            }
            out.push_str("\":");
            match entry.kind {
                Kind::Str => push_json_str(out, v),
                // Numbers and booleans: nothing to escape.
                Kind::Raw => out.push_str(v),
            }
        }
        for k in fixed {
            comma(out);
            push_json_str(out, k);
            out.push(':');
            fixed_value(out, k);
        }
        out.push('}');
    }

    fn entries(&self) -> impl Iterator<Item = (&Entry, &str)> {
        let f = self.fields;
        f.entries.iter().map(|e| (e, &f.text[e.value.clone()]))
    }
}

/// `s` as a JSON string, escaped as Go's `json.Encoder` does by default (logrus's JSON
/// lines): serde_json's escapes, and `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`….
pub(super) fn push_json_str(out: &mut String, s: &str) {
    json::push_str(out, s, Escape::Html);
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
    thread_local! {
        /// The second last printed on this thread, and its text: a busy server's lines
        /// share their second, so it is formatted about once a second per thread.
        static LAST: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let t = t.to_offset(time::UtcOffset::UTC);
    let second = t.unix_timestamp();
    LAST.with(|last| match last.try_borrow_mut() {
        Ok(mut last) => {
            if last.0 != second {
                last.1.clear();
                write_time(&mut last.1, t);
                last.0 = second;
            }
            out.push_str(&last.1);
        }
        Err(_) => write_time(out, t),
    });
}

fn write_time(out: &mut String, t: OffsetDateTime) {
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
