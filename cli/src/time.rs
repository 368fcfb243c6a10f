//! Times given on the command line, as Unix milliseconds: either the number
//! itself or an RFC 3339 timestamp, read without a date crate.

/// `1700000000000`, `2023-11-14T22:13:20Z`, `2023-11-14T22:13:20.5+01:00`.
pub fn unix_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map_err(|_| "Unix milliseconds out of range".to_owned());
    }
    rfc3339(text).ok_or_else(|| {
        "expected an RFC 3339 time (2026-01-31T12:00:00Z) or Unix milliseconds".to_owned()
    })
}

/// An RFC 3339 timestamp alone (no surrounding space), as Unix milliseconds.
pub(crate) fn rfc3339(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|(at, byte)| bytes[*at] != *byte) {
        return None;
    }
    let year = digits(text, 0, 4)?;
    let month = digits(text, 5, 7)?;
    let day = digits(text, 8, 10)?;
    let hour = digits(text, 11, 13)?;
    let minute = digits(text, 14, 16)?;
    let second = digits(text, 17, 19)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        // 60 is a leap second; it reads as the next second.
        || second > 60
    {
        return None;
    }
    let (millis, zone) = fraction(&text[19..])?;
    let offset_secs = offset(zone)?;
    let local =
        days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3_600 + minute * 60 + second);
    let utc_ms = (local - offset_secs) * 1_000 + millis;
    u64::try_from(utc_ms).ok()
}

/// The value of `text[from..to]`, all ASCII digits.
fn digits(text: &str, from: usize, to: usize) -> Option<u32> {
    let part = text.get(from..to)?;
    if part.bytes().all(|b| b.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

/// Milliseconds of an optional `.fff…` (further digits dropped) and the rest.
fn fraction(rest: &str) -> Option<(i64, &str)> {
    let Some(after_dot) = rest.strip_prefix('.') else {
        return Some((0, rest));
    };
    let count = after_dot.bytes().take_while(u8::is_ascii_digit).count();
    if count == 0 {
        return None;
    }
    let millis = after_dot[..count]
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0_i64, |ms, b| ms * 10 + i64::from(b - b'0'));
    Some((millis, &after_dot[count..]))
}

/// Seconds east of UTC: `Z`, or `+HH:MM` / `-HH:MM`.
fn offset(zone: &str) -> Option<i64> {
    if zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if zone.len() != 6 || zone.as_bytes()[3] != b':' {
        return None;
    }
    let hours = digits(zone, 1, 3)?;
    let minutes = digits(zone, 4, 6)?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * i64::from(hours * 3_600 + minutes * 60))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01: the days-from-civil algorithm (H. Hinnant).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_read_as_unix_milliseconds() {
        for (text, expected) in [
            ("1700000000000", 1_700_000_000_000),
            ("0", 0),
            ("1970-01-01T00:00:00Z", 0),
            ("2023-11-14T22:13:20Z", 1_700_000_000_000),
            ("2023-11-14t22:13:20z", 1_700_000_000_000),
            ("2023-11-14 22:13:20Z", 1_700_000_000_000),
            ("2023-11-14T22:13:20.25Z", 1_700_000_000_250),
            ("2023-11-14T22:13:20.123456Z", 1_700_000_000_123),
            ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
            ("2023-11-14T21:43:20-00:30", 1_700_000_000_000),
            ("2000-02-29T00:00:00Z", 951_782_400_000),
            ("2024-02-29T23:59:59Z", 1_709_251_199_000),
        ] {
            assert_eq!(unix_ms(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "",
            "yesterday",
            "-5",
            "1.5",
            "99999999999999999999999",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0100",
            "1969-12-31T23:59:59Z",
            "2023-11-14T22:13:20ZZ",
        ] {
            assert!(unix_ms(text).is_err(), "{text}");
        }
    }
}
