//! `as_of_time`: RFC 3339 UTC to the second, `YYYY-MM-DDTHH:MM:SSZ`.

/// The contract's default `as_of_time`.
pub const AS_OF_TIME_DEFAULT: &str = "1970-01-01T00:00:00Z";

/// The latest instant a request may name in Unix milliseconds: the end of
/// year 9999, the last one RFC 3339 can write.
pub const MAX_UNIX_MS: u64 = 253_402_300_799_999;

/// Why an `as_of_time` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AsOfTimeError {
    #[error("as_of_time must be RFC3339 UTC (YYYY-MM-DDTHH:MM:SSZ)")]
    Shape,
    #[error("as_of_time is not a valid calendar date and time")]
    Calendar,
}

/// Checks the 20-character shape and that the date and time exist (month
/// 13, Feb 29 of a non-leap year and hour 24 are refused), so a bad value is
/// the caller's 400 and never reaches a database cast (decision 3).
pub fn validate_as_of_time(text: &str) -> Result<(), AsOfTimeError> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 20
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            19 => *b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(AsOfTimeError::Shape);
    }
    let number = |range: std::ops::Range<usize>| -> u32 { text[range].parse().unwrap_or(u32::MAX) };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let (hour, minute, second) = (number(11..13), number(14..16), number(17..19));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(AsOfTimeError::Calendar),
    };
    if year == 0 || day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return Err(AsOfTimeError::Calendar);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_times() {
        for ok in [
            AS_OF_TIME_DEFAULT,
            "2026-02-28T23:59:59Z",
            "2024-02-29T00:00:00Z",
        ] {
            assert_eq!(validate_as_of_time(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_shapes_and_dates() {
        for bad in [
            "2026-01-01T00:00:00",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00.5Z",
            "2026-1-01T00:00:00Z",
        ] {
            assert_eq!(validate_as_of_time(bad), Err(AsOfTimeError::Shape), "{bad}");
        }
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-00T00:00:00Z",
        ] {
            assert_eq!(
                validate_as_of_time(bad),
                Err(AsOfTimeError::Calendar),
                "{bad}"
            );
        }
    }
}
