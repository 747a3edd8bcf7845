//! The parts of Go's `net/url` that token validation depends on (`url.Parse`,
//! `url.ParseQuery`), with its error texts.

use super::strconv::quote;

/// A parsed URL: only what the checks look at.
#[derive(Debug)]
pub struct Url {
    pub scheme: String,
    pub has_userinfo: bool,
    pub host: String,
    /// The raw (still escaped) path.
    pub path: String,
    pub raw_query: String,
}

fn err(url: &str, msg: impl std::fmt::Display) -> String {
    format!("parse {}: {msg}", quote(url))
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
                return Err(format!("invalid URL escape {}", quote(&frag)));
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
            return Err(format!("invalid port {} after host", quote(port)));
        }
    } else if let Some(i) = host.rfind(':') {
        let port = &host[i..];
        if !valid_optional_port(port) {
            return Err(format!("invalid port {} after host", quote(port)));
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
                return Err(format!("invalid URL escape {}", quote(&frag)));
            }
            // Go allows only escapes of non-ASCII bytes (and `%25`) in a host.
            if hex_value(b[i + 1]) < 8 && &b[i..i + 3] != b"%25" {
                let frag = String::from_utf8_lossy(&b[i..i + 3]);
                return Err(format!("invalid URL escape {}", quote(&frag)));
            }
            out.push(hex_value(b[i + 1]) << 4 | hex_value(b[i + 2]));
            i += 3;
            continue;
        }
        if c < 0x80 && !host_char_ok(c) {
            let s = (c as char).to_string();
            return Err(format!("invalid character {} in host name", quote(&s)));
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
pub fn parse(raw: &str) -> Result<Url, String> {
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

/// A query `url.ParseQuery` refuses (upstream reports only that it is malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed query")]
pub struct MalformedQuery;

/// `url.ParseQuery`: keys in order of first appearance, each with its values. Any
/// error (a `;` separator, a bad escape) fails the whole query, as upstream treats it.
pub fn parse_query(q: &str) -> Result<Vec<(String, Vec<String>)>, MalformedQuery> {
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
    if failed { Err(MalformedQuery) } else { Ok(out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_texts() {
        let u = parse("https://sts.us-west-2.amazonaws.com/?a=b#frag").unwrap();
        assert_eq!(
            (
                u.scheme.as_str(),
                u.host.as_str(),
                u.path.as_str(),
                u.raw_query.as_str()
            ),
            ("https", "sts.us-west-2.amazonaws.com", "/", "a=b")
        );
        assert!(parse("https://user:pw@h.example/").unwrap().has_userinfo);
        let cases = [
            (
                ":ab:cd.af:/asda",
                r#"parse ":ab:cd.af:/asda": missing protocol scheme"#,
            ),
            (
                "https://h\u{1}/",
                r#"parse "https://h\x01/": net/url: invalid control character in URL"#,
            ),
            (
                "https://h:x/",
                r#"parse "https://h:x/": invalid port ":x" after host"#,
            ),
            (
                "https://[::1/",
                r#"parse "https://[::1/": missing ']' in host"#,
            ),
            (
                "https://h/%zz",
                r#"parse "https://h/%zz": invalid URL escape "%zz""#,
            ),
            (
                "https://h%20x/",
                r#"parse "https://h%20x/": invalid URL escape "%20""#,
            ),
            (
                "https://h x/",
                r#"parse "https://h x/": invalid character " " in host name"#,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).unwrap_err(), want, "{input}");
        }
    }

    #[test]
    fn queries() {
        assert_eq!(
            parse_query("a=1&b=2&a=3&c").unwrap(),
            vec![
                ("a".to_owned(), vec!["1".to_owned(), "3".to_owned()]),
                ("b".to_owned(), vec!["2".to_owned()]),
                ("c".to_owned(), vec![String::new()]),
            ]
        );
        assert_eq!(
            parse_query("x=a%2Fb+c").unwrap(),
            vec![("x".to_owned(), vec!["a/b c".to_owned()])]
        );
        assert!(parse_query("a=1;b=2").is_err());
        assert!(parse_query("a=%gh").is_err());
    }

    proptest::proptest! {
        #[test]
        fn host_and_query_survive(host in "[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){0,3}", q in "[A-Za-z0-9=&._-]{0,60}") {
            let u = parse(&format!("https://{host}/?{q}")).unwrap();
            proptest::prop_assert_eq!(u.host, host);
            proptest::prop_assert_eq!(u.raw_query, q);
        }

        #[test]
        fn never_panics(s in ".{0,80}") {
            let _ = parse(&s);
            let _ = parse_query(&s);
        }
    }
}
