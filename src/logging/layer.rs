//! The `tracing` layer that prints each event as one logrus line, with the fields of the
//! spans around it as extra keys.
//!
//! A span's fields are kept as they were recorded, in the span's extensions, and copied
//! into each event inside it; the line is built in a buffer of the calling thread and
//! handed to the writer in one write (for the server: the background writer's queue).

use std::cell::RefCell;
use std::io::Write as _;

use time::OffsetDateTime;
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::record::{Fields, Record, level_name};
use super::{FATAL_TARGET, LogFormat};

/// Lines longer than this do not keep their buffer's capacity for the next line.
const KEPT_LINE_CAPACITY: usize = 16 * 1024;

thread_local! {
    /// The line being built on this thread, its capacity reused from line to line.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    /// The fields of the event being printed on this thread, reused likewise.
    static EVENT: RefCell<Fields> = RefCell::new(Fields::default());
}

/// Prints events as logrus lines to `writer`.
#[derive(Debug)]
pub(super) struct Logrus<W> {
    format: LogFormat,
    writer: W,
}

impl<W> Logrus<W> {
    pub fn new(format: LogFormat, writer: W) -> Self {
        Self { format, writer }
    }

    /// The line of an event whose fields (sorted) are `fields`, appended to `out`.
    fn line(&self, event: &Event<'_>, fields: &Fields, out: &mut String) {
        let meta = event.metadata();
        let level = if meta.target() == FATAL_TARGET {
            "fatal"
        } else {
            level_name(*meta.level())
        };
        let record = Record {
            time: OffsetDateTime::now_utc(),
            level,
            fields,
        };
        match self.format {
            LogFormat::Text => record.text(out),
            LogFormat::Json => record.json(out),
        }
        out.push('\n');
    }
}

impl<S, W> Layer<S> for Logrus<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &SpanRecord<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // The enclosing spans' fields (outermost first), then the event's own.
        let gather = |fields: &mut Fields| {
            fields.clear();
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope.from_root() {
                    if let Some(f) = span.extensions().get::<Fields>() {
                        fields.inherit(f);
                    }
                }
            }
            event.record(fields);
            fields.sort();
        };
        let print = |fields: &Fields, out: &mut String| {
            self.line(event, fields, out);
            let _ = self
                .writer
                .make_writer_for(event.metadata())
                .write_all(out.as_bytes());
        };
        // The thread's buffers, unless this is an event logged while this thread prints
        // one (by the writer itself): then buffers of its own.
        let reused = EVENT.with(|fields| {
            LINE.with(|line| {
                let (Ok(mut fields), Ok(mut out)) =
                    (fields.try_borrow_mut(), line.try_borrow_mut())
                else {
                    return false;
                };
                gather(&mut fields);
                out.clear();
                print(&fields, &mut out);
                if out.capacity() > KEPT_LINE_CAPACITY {
                    *out = String::new();
                }
                if fields.capacity() > KEPT_LINE_CAPACITY {
                    *fields = Fields::default();
                }
                true
            })
        });
        if !reused {
            let mut fields = Fields::default();
            gather(&mut fields);
            print(&fields, &mut String::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

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

    fn logged(format: LogFormat, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let writer = buf.clone();
        let sub = tracing_subscriber::registry().with(Logrus::new(format, move || writer.clone()));
        tracing::subscriber::with_default(sub, f);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
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
            let out = logged(format, || {
                let span = tracing::info_span!("authenticate", path = "/authenticate", client = %"127.0.0.1:9", method = tracing::field::Empty);
                span.record("method", "POST");
                let _g = span.enter();
                tracing::warn!(n = 2, "denied");
            });
            assert!(out.contains(want), "{out}\nwant {want}");
            assert!(out.ends_with("}\n") || format == LogFormat::Text, "{out}");
        }
    }

    #[test]
    fn inner_spans_and_the_event_override_outer_fields() {
        let out = logged(LogFormat::Json, || {
            let outer = tracing::info_span!("outer", a = 1, b = "outer");
            let _o = outer.enter();
            let inner = tracing::info_span!("inner", b = "inner", c = true);
            let _i = inner.enter();
            tracing::info!(c = false, "x");
        });
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"], "inner");
        assert_eq!(v["c"], false);
        assert_eq!(v["msg"], "x");
    }

    #[test]
    fn the_fatal_target_is_level_fatal() {
        let out = logged(LogFormat::Text, || {
            tracing::error!(target: FATAL_TARGET, "the end");
        });
        assert!(out.contains(" level=fatal msg=\"the end\"\n"), "{out}");
    }
}
