//! Go's `strconv.Quote` (and fmt's `%q` of a `[]string`) and `strconv.Atoi`, as
//! upstream's messages print them.

use std::fmt::Write as _;

/// Go's `strconv.Quote` (fmt's `%q` of a string): double quotes; `\"`, `\\`; `\a \b \f
/// \n \r \t \v`; other non-printable runes as `\xHH` (below U+0080), `\uHHHH` or
/// `\UHHHHHHHH`; printable runes as they are.
pub fn quote(s: &str) -> String {
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
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// fmt's `%q` of a `[]string`: `["a" "b"]`, each element as [`quote`].
pub fn quote_slice<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s.as_ref())).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII
/// space. Outside Latin-1 this is the complement of the control, format, private-use,
/// non-character and space code points (Go's tables also treat unassigned code points
/// as unprintable; those are printed as they are here).
fn is_print(c: char) -> bool {
    let u = c as u32;
    if u <= 0xff {
        return (0x20..0x7f).contains(&u) || ((0xa1..=0xff).contains(&u) && u != 0xad);
    }
    !(c.is_whitespace()
        || c.is_control()
        || is_format(u)
        || is_private_use(u)
        || is_noncharacter(u))
}

/// General category Cf (Unicode 15) above Latin-1.
fn is_format(u: u32) -> bool {
    matches!(
        u,
        0x0600..=0x0605
            | 0x061c
            | 0x06dd
            | 0x070f
            | 0x0890..=0x0891
            | 0x08e2
            | 0x180e
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
    )
}

fn is_private_use(u: u32) -> bool {
    matches!(u, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd)
}

fn is_noncharacter(u: u32) -> bool {
    (0xfdd0..=0xfdef).contains(&u) || (u & 0xfffe) == 0xfffe
}

/// `strconv.Atoi`: `Err(0)` on a syntax error, `Err(i64::MAX/MIN)` on overflow (the value
/// Go prints in the message).
pub fn atoi(s: &str) -> Result<i64, i64> {
    match s.parse::<i64>() {
        Ok(v) => Ok(v),
        Err(e) => match e.kind() {
            std::num::IntErrorKind::PosOverflow => Err(i64::MAX),
            std::num::IntErrorKind::NegOverflow => Err(i64::MIN),
            _ => Err(0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's outputs (`strconv.Quote`, Go 1.22).
    #[test]
    fn quote_matches_go() {
        let cases = [
            ("", r#""""#),
            ("abc", r#""abc""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("\u{7}\u{8}\u{c}\n\r\t\u{b}", r#""\a\b\f\n\r\t\v""#),
            ("\u{0}\u{1b}\u{7f}", r#""\x00\x1b\x7f""#),
            ("é ü ß 日本", r#""é ü ß 日本""#),
            ("\u{80}\u{85}\u{9f}", r#""\u0080\u0085\u009f""#),
            ("\u{a0}\u{ad}", r#""\u00a0\u00ad""#),
            ("¡ÿ", r#""¡ÿ""#),
            (
                "\u{200b}\u{200e}\u{2028}\u{2029}\u{3000}",
                r#""\u200b\u200e\u2028\u2029\u3000""#,
            ),
            ("\u{feff}\u{e000}\u{fffe}", r#""\ufeff\ue000\ufffe""#),
            ("\u{1f600}", "\"\u{1f600}\""),
            ("\u{e0001}\u{10fffd}", r#""\U000e0001\U0010fffd""#),
            ("%gh", r#""%gh""#),
            ("'", r#""'""#),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), want, "{input:?}");
        }
    }

    /// fmt's `%q` of a `[]string`.
    #[test]
    fn quote_slice_matches_go() {
        let empty: [&str; 0] = [];
        assert_eq!(quote_slice(&empty), "[]");
        assert_eq!(quote_slice(&["a"]), r#"["a"]"#);
        assert_eq!(
            quote_slice(&["system:masters".to_owned(), "tab\there".to_owned()]),
            r#"["system:masters" "tab\there"]"#
        );
        assert_eq!(quote_slice(&["", "\u{1b}"]), r#"["" "\x1b"]"#);
    }

    #[test]
    fn atoi_matches_go() {
        assert_eq!(atoi("60"), Ok(60));
        assert_eq!(atoi("+60"), Ok(60));
        assert_eq!(atoi("-1"), Ok(-1));
        assert_eq!(atoi(""), Err(0));
        assert_eq!(atoi("60%gh"), Err(0));
        assert_eq!(atoi(" 60"), Err(0));
        assert_eq!(atoi("99999999999999999999"), Err(i64::MAX));
        assert_eq!(atoi("-99999999999999999999"), Err(i64::MIN));
    }

    proptest::proptest! {
        /// The quoted form is one line of printable ASCII or printable runes, starts and
        /// ends with `"`, and Rust's own unescaping of Go's escapes gives the input back.
        #[test]
        fn quote_round_trips(s in "\\PC*|[\\x00-\\x7f]*|.*") {
            let q = quote(&s);
            proptest::prop_assert!(q.starts_with('"') && q.ends_with('"') && q.len() >= 2);
            proptest::prop_assert!(!q.contains('\n'));
            proptest::prop_assert_eq!(unquote(&q), s);
        }
    }

    /// Go's `strconv.Unquote` for what [`quote`] produces.
    fn unquote(q: &str) -> String {
        let inner = &q[1..q.len() - 1];
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = chars.next().unwrap();
            let hex = |n: usize, chars: &mut std::str::Chars<'_>| {
                let h: String = chars.take(n).collect();
                char::from_u32(u32::from_str_radix(&h, 16).unwrap()).unwrap()
            };
            out.push(match e {
                'a' => '\u{7}',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\u{b}',
                'x' => hex(2, &mut chars),
                'u' => hex(4, &mut chars),
                'U' => hex(8, &mut chars),
                other => other,
            });
        }
        out
    }
}
