//! Go's `encoding/base64` decoding of tokens, with its error text.

/// Go's `base64.RawURLEncoding.DecodeString`: URL alphabet, no padding, `\r`/`\n`
/// skipped, non-zero trailing bits tolerated; the error names the offending offset.
pub fn decode_raw_url(input: &[u8]) -> Result<Vec<u8>, String> {
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

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn go_texts() {
        let cases: [(&str, Result<&[u8], &str>); 6] = [
            ("", Ok(b"")),
            ("aGk", Ok(b"hi")),
            ("aG\r\nk", Ok(b"hi")),
            ("decodingerror", Err("illegal base64 data at input byte 12")),
            ("aGk=", Err("illegal base64 data at input byte 3")),
            ("a+b", Err("illegal base64 data at input byte 1")),
        ];
        for (input, want) in cases {
            let got = decode_raw_url(input.as_bytes());
            match want {
                Ok(bytes) => assert_eq!(got.as_deref(), Ok(bytes), "{input:?}"),
                Err(text) => assert_eq!(got.unwrap_err(), text, "{input:?}"),
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn decodes_what_base64url_encodes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let encoded = URL_SAFE_NO_PAD.encode(&bytes);
            proptest::prop_assert_eq!(decode_raw_url(encoded.as_bytes()), Ok(bytes));
        }

        #[test]
        fn never_panics(input in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = decode_raw_url(&input);
        }
    }
}
