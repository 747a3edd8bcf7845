//! JSON string escaping, eight bytes at a time: Go's `json.Encoder` (logrus's JSON lines)
//! and serde_json's (the webhook's answers).
//!
//! Both escape `"`, `\` and the control characters (`\b`, `\f`, `\n`, `\r`, `\t`, the
//! others as `\u00xx`). Go's encoder by default also escapes `<`, `>`, `&`, U+2028 and
//! U+2029 (`SetEscapeHTML(true)`); serde_json does not.
//!
//! A log line or an answer is mostly characters that need no escape. They are found a
//! word at a time (a SWAR scan: no `unsafe`, no SIMD intrinsics) and copied in runs: the
//! strings of a cached review's log line and answer cost about 5,800 instructions this way
//! against 13,800 with the per-byte loops this replaced, ours and serde_json's (callgrind;
//! BENCHMARKS.md).

/// Which characters are escaped besides `"`, `\` and the control characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Go's `json.Encoder` default: also `<`, `>`, `&`, U+2028 and U+2029 (`\u003c`…).
    Html,
    /// serde_json's: nothing else.
    Minimal,
}

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// The high bit of each byte of `v` equal to `b`; exact up to the first such byte (the
/// borrow can only mark bytes above a true one).
const fn bytes_equal(v: u64, b: u8) -> u64 {
    let x = v ^ (ONES * b as u64);
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The high bit of each byte of `v` below `n` (`n` ≤ 0x80); exact up to the first.
const fn bytes_below(v: u64, n: u8) -> u64 {
    v.wrapping_sub(ONES * n as u64) & !v & HIGHS
}

/// The length of the longest prefix of `bytes` without a byte that may start an escape:
/// `"`, `\`, a control character and, for [`Escape::Html`], `<`, `>`, `&` and any
/// non-ASCII byte (U+2028 and U+2029 start with 0xE2; the other characters are copied as
/// they are).
fn plain_len(bytes: &[u8], escape: Escape) -> usize {
    if bytes.len() < 8 {
        return bytes
            .iter()
            .position(|&b| special(b, escape))
            .unwrap_or(bytes.len());
    }
    let mut words = bytes.chunks_exact(8);
    let mut done = 0;
    for chunk in words.by_ref() {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        if let Some(at) = first_special(word, escape) {
            return done + at;
        }
        done += 8;
    }
    if words.remainder().is_empty() {
        return done;
    }
    // The last bytes: the string's last word, whose first bytes are known to be plain.
    let tail = bytes.len() - 8;
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[tail..]);
    first_special(word, escape).map_or(bytes.len(), |at| tail + at)
}

/// Whether `b` may start an escape (what [`first_special`] finds eight at a time).
const fn special(b: u8, escape: Escape) -> bool {
    match b {
        0..0x20 | b'"' | b'\\' => true,
        b'<' | b'>' | b'&' | 0x80.. => matches!(escape, Escape::Html),
        _ => false,
    }
}

/// Where the first byte of `word` that may start an escape is (see [`plain_len`]).
fn first_special(word: [u8; 8], escape: Escape) -> Option<usize> {
    let v = u64::from_le_bytes(word);
    let mut hits = bytes_below(v, 0x20) | bytes_equal(v, b'"') | bytes_equal(v, b'\\');
    if escape == Escape::Html {
        hits |= bytes_equal(v, b'<') | bytes_equal(v, b'>') | bytes_equal(v, b'&') | (v & HIGHS);
    }
    // Little-endian: the lowest marked byte is the first one.
    (hits != 0).then(|| (hits.trailing_zeros() / 8) as usize)
}

/// Whether `s` is written as it is (nothing in it to escape).
pub fn is_plain(s: &str, escape: Escape) -> bool {
    plain_len(s.as_bytes(), escape) == s.len()
}

/// `s` as a JSON string, quotes included, appended to `out`.
pub fn push_str(out: &mut String, s: &str, escape: Escape) {
    out.push('"');
    push_chars(out, s, escape);
    out.push('"');
}

/// [`push_str`] without the quotes.
pub fn push_chars(out: &mut String, s: &str, escape: Escape) {
    let bytes = s.as_bytes();
    // `copied`: where the run not yet appended starts. Every byte escaped is ASCII but
    // the first of U+2028 and U+2029 (E2 80 A8 and E2 80 A9), and 0xE2 only ever starts
    // a character, so every slice taken below ends on a character boundary.
    let mut copied = 0;
    let mut i = 0;
    loop {
        i += plain_len(&bytes[i..], escape);
        let Some(&b) = bytes.get(i) else { break };
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            b'<' => "\\u003c",
            b'>' => "\\u003e",
            b'&' => "\\u0026",
            0xe2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xa8) => "\\u2028",
            0xe2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xa9) => "\\u2029",
            _ => {
                // Another non-ASCII byte: copied with its run.
                i += 1;
                continue;
            }
        };
        out.push_str(&s[copied..i]);
        if escaped.is_empty() {
            push_control(out, b);
        } else {
            out.push_str(escaped);
        }
        i += if b == 0xe2 { 3 } else { 1 };
        copied = i;
    }
    out.push_str(&s[copied..]);
}

/// A control character without a short escape: `\u00xx`, lower-case hex (serde_json's
/// and Go's spelling).
fn push_control(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u00");
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn go(s: &str) -> String {
        let mut out = String::new();
        push_str(&mut out, s, Escape::Html);
        out
    }

    fn minimal(s: &str) -> String {
        let mut out = String::new();
        push_str(&mut out, s, Escape::Minimal);
        out
    }

    #[test]
    fn table() {
        for (s, html, plain) in [
            ("", r#""""#, r#""""#),
            (
                "plain text, long enough for two words",
                r#""plain text, long enough for two words""#,
                r#""plain text, long enough for two words""#,
            ),
            ("a\"b\\c", r#""a\"b\\c""#, r#""a\"b\\c""#),
            (
                "\n\r\t\u{8}\u{c}\u{1}\u{1f}",
                r#""\n\r\t\b\f\u0001\u001f""#,
                r#""\n\r\t\b\f\u0001\u001f""#,
            ),
            ("<a&b>", r#""\u003ca\u0026b\u003e""#, r#""<a&b>""#),
            (
                "x\u{2028}y\u{2029}z\u{2027}",
                "\"x\\u2028y\\u2029z\u{2027}\"",
                "\"x\u{2028}y\u{2029}z\u{2027}\"",
            ),
            (
                "é😀 0123456789abcdef\"",
                "\"é😀 0123456789abcdef\\\"\"",
                "\"é😀 0123456789abcdef\\\"\"",
            ),
            // A special byte at each position of a word, and in the tail.
            ("01234567\"", r#""01234567\"""#, r#""01234567\"""#),
            ("0123456\"8", r#""0123456\"8""#, r#""0123456\"8""#),
            ("\u{7f}~", "\"\u{7f}~\"", "\"\u{7f}~\""),
        ] {
            assert_eq!(go(s), html, "{s:?}");
            assert_eq!(minimal(s), plain, "{s:?}");
        }
    }

    /// Go's escapes of what serde_json writes: its output with `<`, `>`, `&`, U+2028 and
    /// U+2029 spelled out.
    fn serde_then_go(s: &str) -> String {
        serde_json::to_string(s)
            .unwrap()
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029")
    }

    proptest! {
        #[test]
        fn strings_are_scanned_as_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..40), html: bool) {
            let escape = if html { Escape::Html } else { Escape::Minimal };
            let want = bytes.iter().position(|&b| special(b, escape)).unwrap_or(bytes.len());
            prop_assert_eq!(plain_len(&bytes, escape), want);
        }

        #[test]
        fn words_are_scanned_as_bytes(word: [u8; 8], html: bool) {
            let escape = if html { Escape::Html } else { Escape::Minimal };
            prop_assert_eq!(first_special(word, escape), word.iter().position(|&b| special(b, escape)));
        }

        #[test]
        fn minimal_is_serde_json(s in any::<String>()) {
            prop_assert_eq!(minimal(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn html_is_serde_json_then_go(s in any::<String>()) {
            let out = go(&s);
            prop_assert_eq!(&out, &serde_then_go(&s));
            let back: String = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn special_characters_anywhere(s in "[\\x00-\\x1f\"\\\\<>&\u{2028}\u{2029}\u{2027}a-z\u{e9}]{0,40}") {
            prop_assert_eq!(minimal(&s), serde_json::to_string(&s).unwrap());
            prop_assert_eq!(go(&s), serde_then_go(&s));
        }
    }
}
