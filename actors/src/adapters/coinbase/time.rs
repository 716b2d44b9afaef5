//! ISO 8601 text → UTC milliseconds, as ccxt's `parse8601` reads Coinbase's `time` fields.
//!
//! Coinbase stamps messages with microseconds (`2021-04-17T16:43:30.244075Z`); ccxt keeps the
//! first three fraction digits (truncating, not rounding) and honours a `±HH:MM` offset. The
//! proto crate only writes ISO 8601 (`ccxt::iso8601`), so the reading side lives here, with its
//! own small calendar function.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads exactly `n` ASCII digits at the front of `text`.
fn digits(text: &str, n: usize) -> Option<(u32, &str)> {
    let head = text.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, &text[n..]))
}

/// Skips `sep` if it is next (ccxt's pattern makes `-` and `:` separators optional).
fn optional(text: &str, sep: char) -> &str {
    text.strip_prefix(sep).unwrap_or(text)
}

/// Milliseconds since the Unix epoch of an ISO 8601 date-time:
/// `YYYY-MM-DD[T| ]HH:MM:SS[.fraction][Z|±HH:MM|±HHMM]`, the form ccxt's `parse8601` accepts
/// (its `-` and `:` separators optional, `T`/`Z` in either case, no zone meaning UTC). Digits
/// past the milliseconds are truncated, as ccxt does. `None` for anything else, including
/// impossible dates (`2021-02-30`) and text after the zone.
pub fn parse_iso8601_ms(text: &str) -> Option<i64> {
    let (year, rest) = digits(text, 4)?;
    let (month, rest) = digits(optional(rest, '-'), 2)?;
    let (day, rest) = digits(optional(rest, '-'), 2)?;
    let rest = rest.strip_prefix(['T', 't', ' ']).unwrap_or(rest);
    let (hour, rest) = digits(rest, 2)?;
    let (minute, rest) = digits(optional(rest, ':'), 2)?;
    let (second, mut rest) = digits(optional(rest, ':'), 2)?;
    let year = i64::from(year);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        // The first three digits, right-padded: ".1" is 100 ms, ".244075" is 244 ms.
        for i in 0..3 {
            let digit = fraction.as_bytes().get(i).filter(|_| i < len);
            millis = millis * 10 + digit.map_or(0, |b| i64::from(b - b'0'));
        }
        rest = &fraction[len..];
    }
    let offset_minutes = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, tail) = digits(&rest[1..], 2)?;
            let (minutes, tail) = digits(optional(tail, ':'), 2)?;
            if !tail.is_empty() || hours > 23 || minutes > 59 {
                return None;
            }
            sign * i64::from(hours * 60 + minutes)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second)
        // `+02:00` means local time is ahead of UTC: subtract it.
        - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_crypto_proto::ccxt::iso8601;

    #[test]
    fn coinbase_times_as_ccxt_reads_them() {
        // Expected values from ccxt 4.5.90's `Exchange.parse8601`.
        let cases = [
            ("2021-04-17T16:43:30.244075Z", 1_618_677_810_244),
            ("2021-04-17T16:43:30.2449Z", 1_618_677_810_244),
            ("2021-04-17T16:43:30Z", 1_618_677_810_000),
            ("2021-04-17T16:43:30.1Z", 1_618_677_810_100),
            ("2019-08-14T20:42:27.265Z", 1_565_815_347_265),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_iso8601_ms(text), Some(ms), "{text}");
        }
    }

    #[test]
    fn round_trips_with_the_ccxt_writer_and_reads_offsets() {
        for ms in [0, 951_782_400_000, 1_618_677_810_244, 4_102_444_799_999] {
            assert_eq!(parse_iso8601_ms(&iso8601(ms)), Some(ms), "{ms}");
        }
        let utc = parse_iso8601_ms("2021-04-17T16:43:30.244Z");
        assert_eq!(parse_iso8601_ms("2021-04-17T18:43:30.244+02:00"), utc);
        assert_eq!(parse_iso8601_ms("2021-04-17T14:13:30.244-0230"), utc);
        assert_eq!(parse_iso8601_ms("20210417T164330.244Z"), utc);
        assert_eq!(parse_iso8601_ms("2021-04-17 16:43:30.244"), utc);
        assert_eq!(
            parse_iso8601_ms("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
    }

    #[test]
    fn refuses_what_is_not_a_date_time() {
        for bad in [
            "",
            "2021",
            "2021-04-17",
            "2021-04-17T16:43",
            "2021-13-01T00:00:00Z",
            "2021-02-29T00:00:00Z",
            "2021-04-31T00:00:00Z",
            "2021-04-17T24:00:00Z",
            "2021-04-17T16:60:00Z",
            "2021-04-17T16:43:30.Z",
            "2021-04-17T16:43:30ZZ",
            "2021-04-17T16:43:30+2",
            "2021-04-17T16:43:30 UTC",
            "２０２１-04-17T16:43:30Z",
            "x021-04-17T16:43:30Z",
        ] {
            assert_eq!(parse_iso8601_ms(bad), None, "{bad:?}");
        }
    }
}
