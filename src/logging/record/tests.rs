use super::*;

fn at() -> OffsetDateTime {
    // 2026-12-02T00:19:41Z
    OffsetDateTime::from_unix_timestamp(1_796_170_781).unwrap()
}

/// A value of a test's fields.
#[derive(Debug, Clone, Copy)]
enum Value {
    Str(&'static str),
    /// A number or a boolean, as JSON.
    Raw(&'static str),
}

/// `fields` with the message `msg`, as the layer records them.
fn fields(msg: &str, pairs: &[(&'static str, Value)]) -> Fields {
    let mut f = Fields::default();
    f.put("message", Kind::Str, |t| t.push_str(msg));
    for (name, v) in pairs {
        match v {
            Value::Str(v) => f.insert(name, Kind::Str, v),
            Value::Raw(v) => f.insert(name, Kind::Raw, v),
        }
    }
    f.sort();
    f
}

/// The line `print` (`Record::text` or `Record::json`) writes for these.
fn line(
    print: fn(&Record<'_>, &mut String),
    level: &'static str,
    msg: &str,
    pairs: &[(&'static str, Value)],
) -> String {
    let mut out = String::new();
    let fields = fields(msg, pairs);
    let record = Record {
        time: at(),
        level,
        fields: &fields,
    };
    print(&record, &mut out);
    out
}

fn text(level: &'static str, msg: &str, fields: &[(&'static str, Value)]) -> String {
    line(|r, out| r.text(out), level, msg, fields)
}

fn json(level: &'static str, msg: &str, fields: &[(&'static str, Value)]) -> String {
    line(|r, out| r.json(out), level, msg, fields)
}

fn s(v: &'static str) -> Value {
    Value::Str(v)
}

/// `f`'s fields but the message, in their order.
fn listed(f: &Fields) -> Vec<(&'static str, &str)> {
    f.iter().map(|(k, _, v)| (k, v)).collect()
}

#[test]
fn text_lines_are_logrus_lines() {
    let cases = [
        (
            text(
                "info",
                "STS response",
                &[("arn", s("arn:aws:iam::1:role/x"))],
            ),
            r#"time="2026-12-02T00:19:41Z" level=info msg="STS response" arn="arn:aws:iam::1:role/x""#,
        ),
        (
            text(
                "warning",
                "ok",
                &[("b", s("plain-1.2_x/y@z^+")), ("a", s(""))],
            ),
            r#"time="2026-12-02T00:19:41Z" level=warning msg=ok a= b=plain-1.2_x/y@z^+"#,
        ),
        (
            text(
                "error",
                "say \"hi\"\n",
                &[("n", Value::Raw("7")), ("t", Value::Raw("true"))],
            ),
            r#"time="2026-12-02T00:19:41Z" level=error msg="say \"hi\"\n" n=7 t=true"#,
        ),
        (
            text("info", "m", &[("msg", s("x")), ("time", s("y"))]),
            r#"time="2026-12-02T00:19:41Z" level=info msg=m fields.msg=x fields.time=y"#,
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
}

#[test]
fn json_lines_are_logrus_lines() {
    let line = json(
        "warning",
        "a <b> & c",
        &[
            ("accountid", s("123")),
            ("count", Value::Raw("3")),
            ("level", s("x")),
        ],
    );
    assert_eq!(
        line,
        r#"{"accountid":"123","count":3,"fields.level":"x","level":"warning","msg":"a \u003cb\u003e \u0026 c","time":"2026-12-02T00:19:41Z"}"#
    );
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["msg"], "a <b> & c");
}

#[test]
fn a_field_recorded_twice_keeps_the_last_value() {
    let mut f = Fields::default();
    f.insert("a", Kind::Str, "1");
    f.insert("b", Kind::Str, "2");
    f.insert("a", Kind::Raw, "3");
    assert_eq!(listed(&f), [("a", "3"), ("b", "2")]);
    assert_eq!(f.iter().next().map(|(_, k, _)| k), Some(Kind::Raw));
    let mut event = Fields::default();
    event.insert("b", Kind::Str, "mine");
    let mut span = Fields::default();
    span.put("message", Kind::Str, |t| t.push_str("span message"));
    span.insert("c", Kind::Str, "4");
    event.inherit(&span);
    assert_eq!(
        listed(&event),
        [("b", "mine"), ("c", "4"), ("message", "span message")]
    );
    assert_eq!(event.msg(), "");
    // Cleared, it keeps nothing but its capacity.
    event.clear();
    assert_eq!((listed(&event), event.msg()), (vec![], ""));
}

#[test]
fn cleared_fields_are_filled_again_in_the_same_buffers() {
    let fill = |f: &mut Fields| {
        f.put("message", Kind::Str, |t| t.push_str("access granted"));
        f.insert("username", Kind::Str, "alice");
        f.insert("groups", Kind::Str, "[\"system:masters\"]");
        f.insert("n", Kind::Raw, "1");
        f.sort();
    };
    let mut f = Fields::default();
    fill(&mut f);
    let capacity = f.capacity();
    for _ in 0..3 {
        f.clear();
        fill(&mut f);
        assert_eq!(f.capacity(), capacity, "no buffer grew");
    }
    assert_eq!(f.msg(), "access granted");
    assert_eq!(
        listed(&f),
        [
            ("groups", "[\"system:masters\"]"),
            ("n", "1"),
            ("username", "alice")
        ]
    );
}

#[test]
fn fields_sort_by_printed_key() {
    // `fields.level` sorts among the f's, not among the l's.
    let got = json(
        "info",
        "m",
        &[
            ("zz", s("z")),
            ("level", s("x")),
            ("f", s("y")),
            ("lb", s("w")),
            ("a", s("v")),
        ],
    );
    assert_eq!(
        got,
        r#"{"a":"v","f":"y","fields.level":"x","lb":"w","level":"info","msg":"m","time":"2026-12-02T00:19:41Z","zz":"z"}"#
    );
    assert_eq!(
        json("info", "m", &[]),
        r#"{"level":"info","msg":"m","time":"2026-12-02T00:19:41Z"}"#
    );
}

#[test]
fn level_names_and_time() {
    assert_eq!(level_name(Level::WARN), "warning");
    assert_eq!(level_name(Level::ERROR), "error");
    // The same second twice, then the next ones (the thread's last second is reused).
    for (unix, want) in [
        (1_136_214_245, "2006-01-02T15:04:05Z"),
        (1_136_214_245, "2006-01-02T15:04:05Z"),
        (1_136_214_246, "2006-01-02T15:04:06Z"),
        (1_796_170_781, "2026-12-02T00:19:41Z"),
        (1_136_214_245, "2006-01-02T15:04:05Z"),
    ] {
        let mut out = String::from("time=");
        push_time(&mut out, OffsetDateTime::from_unix_timestamp(unix).unwrap());
        assert_eq!(out, format!("time={want}"));
    }
}

proptest::proptest! {
    /// The entries sort as their printed keys do as strings, shared first eight bytes and
    /// clashing names included.
    #[test]
    fn entries_sort_as_their_printed_keys(
        names in proptest::collection::hash_set("(time|level|msg|logrus_error|fields\\.|accountid|f)?[a-z._]{0,10}", 0..12)
    ) {
        let mut f = Fields::default();
        for name in &names {
            f.insert(Box::leak(name.clone().into_boxed_str()), Kind::Str, "v");
        }
        f.sort();
        let got: Vec<String> = f.entries.iter().map(|e| format!("{}{}", e.key().0, e.key().1)).collect();
        let mut want = got.clone();
        want.sort();
        proptest::prop_assert_eq!(got, want);
    }
}

#[test]
fn json_keys_are_escaped_when_they_need_it() {
    assert_eq!(
        json(
            "info",
            "m",
            &[("a<b\"", s("v")), ("plain_key", Value::Raw("1"))]
        ),
        r#"{"a\u003cb\"":"v","level":"info","msg":"m","plain_key":1,"time":"2026-12-02T00:19:41Z"}"#
    );
}
