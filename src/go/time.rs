//! Go's `time.Parse("20060102T150405Z", …)` with its error texts, Go's `Time.String`,
//! and the durations `time.ParseDuration` reads that our settings use.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::strconv::quote;

/// The Go layout upstream parses `X-Amz-Date` with (quoted in its messages).
pub const AMZ_DATE_LAYOUT: &str = "20060102T150405Z";

/// A parsed `X-Amz-Date` (UTC).
#[derive(Debug, Clone, Copy)]
pub struct AmzDate {
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    unix: i64,
}

impl AmzDate {
    /// Go's `Time.String()`: `1990-04-22 01:02:03 +0000 UTC`.
    pub fn display(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// (signed at, signed at + `lifetime_secs`) as `SystemTime`s.
    pub fn system_times(&self, lifetime_secs: i64) -> (SystemTime, SystemTime) {
        let at = |secs: i64| {
            let d = Duration::from_secs(secs.unsigned_abs());
            let t = if secs >= 0 {
                UNIX_EPOCH.checked_add(d)
            } else {
                UNIX_EPOCH.checked_sub(d)
            };
            t.unwrap_or(UNIX_EPOCH)
        };
        (at(self.unix), at(self.unix.saturating_add(lifetime_secs)))
    }
}

fn cannot_parse(value: &str, value_elem: &str, layout_elem: &str) -> String {
    format!(
        "parsing time {} as {}: cannot parse {} as {}",
        quote(value),
        quote(AMZ_DATE_LAYOUT),
        quote(value_elem),
        quote(layout_elem)
    )
}

fn digit(s: &[u8], i: usize) -> Option<u8> {
    s.get(i).filter(|c| c.is_ascii_digit()).map(|c| c - b'0')
}

/// Go's `getnum`: one or two digits (exactly two when `fixed`).
fn getnum(s: &str, fixed: bool) -> Option<(u8, &str)> {
    let b = s.as_bytes();
    let d0 = digit(b, 0)?;
    match digit(b, 1) {
        Some(d1) => Some((d0 * 10 + d1, &s[2..])),
        None if fixed => None,
        None => Some((d0, &s[1..])),
    }
}

/// The `2006` field at the start of `value`: four characters, an optional sign then
/// digits (Go's `atoi`). Returns the year and what follows.
fn year(value: &str) -> Result<(i32, &str), String> {
    let p = value
        .as_bytes()
        .get(..4)
        .ok_or_else(|| cannot_parse(value, value, "2006"))?;
    let (neg, digits) = match p[0] {
        b'-' => (true, &p[1..]),
        b'+' => (false, &p[1..]),
        _ => (false, p),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(cannot_parse(value, value, "2006"));
    }
    let v = digits
        .iter()
        .fold(0i32, |a, d| a * 10 + i32::from(d - b'0'));
    Ok((if neg { -v } else { v }, &value[4..]))
}

/// `rest` without a leading fractional second (`.123` or `,123`): Go accepts one after a
/// seconds field even when the layout has none.
fn skip_fraction(rest: &str) -> &str {
    let b = rest.as_bytes();
    if b.len() >= 2 && (b[0] == b'.' || b[0] == b',') && b[1].is_ascii_digit() {
        let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        return &rest[n..];
    }
    rest
}

/// Parses `value` with layout `20060102T150405Z`.
pub fn parse_amz_date(value: &str) -> Result<AmzDate, String> {
    let range = |what: &str| format!("parsing time {}: {what} out of range", quote(value));
    let (year, mut rest) = year(value)?;
    let (month, r) = getnum(rest, true).ok_or_else(|| cannot_parse(value, rest, "01"))?;
    if !(1..=12).contains(&month) {
        return Err(range("month"));
    }
    rest = r;
    let (day, r) = getnum(rest, true).ok_or_else(|| cannot_parse(value, rest, "02"))?;
    rest = r;
    rest = rest
        .strip_prefix('T')
        .ok_or_else(|| cannot_parse(value, rest, "T"))?;
    let (hour, r) = getnum(rest, false).ok_or_else(|| cannot_parse(value, rest, "15"))?;
    if hour >= 24 {
        return Err(range("hour"));
    }
    rest = r;
    let (minute, r) = getnum(rest, true).ok_or_else(|| cannot_parse(value, rest, "04"))?;
    if minute >= 60 {
        return Err(range("minute"));
    }
    rest = r;
    let (second, r) = getnum(rest, true).ok_or_else(|| cannot_parse(value, rest, "05"))?;
    if second >= 60 {
        return Err(range("second"));
    }
    rest = r;
    rest = skip_fraction(rest)
        .strip_prefix('Z')
        .ok_or_else(|| cannot_parse(value, rest, "Z"))?;
    if !rest.is_empty() {
        return Err(format!(
            "parsing time {}: extra text: {}",
            quote(value),
            quote(rest)
        ));
    }
    let m = time::Month::try_from(month).map_err(|_| range("month"))?;
    let date = time::Date::from_calendar_date(year, m, day).map_err(|_| range("day"))?;
    let t = time::Time::from_hms(hour, minute, second).map_err(|_| range("hour"))?;
    let unix = time::PrimitiveDateTime::new(date, t)
        .assume_utc()
        .unix_timestamp();
    Ok(AmzDate {
        year,
        month,
        day,
        hour,
        minute,
        second,
        unix,
    })
}

/// Parses a duration as Go's `time.ParseDuration` writes the common ones (`20s`, `1m30s`,
/// `500ms`, `2h`), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let err = || format!("invalid duration {s:?} (examples: 20s, 1m30s, 500ms)");
    if s.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * scale).map_err(|_| err())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        for bad in ["", "s", "10x", "-1s", "1m30", "ms5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_texts() {
        let ok = parse_amz_date("19900422T010203Z").unwrap();
        assert_eq!(ok.display(), "1990-04-22 01:02:03 +0000 UTC");
        assert_eq!(
            ok.system_times(60).0,
            UNIX_EPOCH + Duration::from_secs(640_746_123)
        );
        let cases = [
            (
                "xxxxxxx",
                r#"parsing time "xxxxxxx" as "20060102T150405Z": cannot parse "xxxxxxx" as "2006""#,
            ),
            (
                "19901322T010203Z",
                r#"parsing time "19901322T010203Z": month out of range"#,
            ),
            (
                "19900431T010203Z",
                r#"parsing time "19900431T010203Z": day out of range"#,
            ),
            (
                "19900422T250203Z",
                r#"parsing time "19900422T250203Z": hour out of range"#,
            ),
            (
                "19900422 010203Z",
                r#"parsing time "19900422 010203Z" as "20060102T150405Z": cannot parse " 010203Z" as "T""#,
            ),
            (
                "19900422T010203Zz",
                r#"parsing time "19900422T010203Zz": extra text: "z""#,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_amz_date(input).unwrap_err(), want, "{input}");
        }
        // Go accepts fractional seconds the layout does not mention.
        assert!(parse_amz_date("19900422T010203.5Z").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn parses_every_valid_date(secs in 0i64..4_102_444_800) {
            let dt = ::time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
            let text = format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                dt.year(), u8::from(dt.month()), dt.day(), dt.hour(), dt.minute(), dt.second()
            );
            let parsed = parse_amz_date(&text).unwrap();
            proptest::prop_assert_eq!(parsed.system_times(0).0, UNIX_EPOCH + Duration::from_secs(secs as u64));
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_amz_date(&s);
        }
    }
}
