//! Kraken WebSocket v2 (`wss://ws.kraken.com/v2`) book messages:
//! `{"channel":"book","type":"snapshot"|"update","data":[{"symbol","bids":[{"price","qty"}],
//! "asks":[...],"checksum","timestamp"}]}`.
//!
//! In v2 prices and quantities are JSON numbers, and the checksum is over their text as sent
//! (`0.10000000`, not `0.1`), so each is read as a [`RawValue`] and its slice of the message is
//! kept; a float would lose the trailing zeros. Both snapshots and updates carry a checksum.
//! v2 symbols are already ccxt's (`BTC/USD`), so no market lookup is needed.

use rpc_crypto_proto::ccxt::iso8601;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::book::{parse_number, BookDelta, LevelUpdate};
use super::v1::{bad, MessageError};
use crate::adapters::decimal::DecimalText;

/// One symbol's part of a v2 book message.
#[derive(Debug, Clone, PartialEq)]
pub struct V2Book {
    /// The symbol (`BTC/USD`).
    pub symbol: String,
    /// A snapshot rather than an update.
    pub snapshot: bool,
    /// The levels, checksum and timestamp.
    pub delta: BookDelta,
}

#[derive(Deserialize)]
struct Message<'a> {
    channel: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow)]
    data: Vec<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    symbol: String,
    #[serde(borrow, default)]
    bids: Vec<Level<'a>>,
    #[serde(borrow, default)]
    asks: Vec<Level<'a>>,
    checksum: Option<u32>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct Level<'a> {
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(borrow)]
    qty: &'a RawValue,
}

/// The number's text; a quoted number is accepted too.
fn raw_number(raw: &RawValue) -> Result<DecimalText, MessageError> {
    let text = raw.get();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    Ok(parse_number(text)?)
}

fn levels(raw: &[Level<'_>]) -> Result<Vec<LevelUpdate>, MessageError> {
    raw.iter()
        .map(|level| {
            Ok(LevelUpdate {
                price: raw_number(level.price)?,
                qty: raw_number(level.qty)?,
                timestamp_ms: None,
                republish: false,
            })
        })
        .collect()
}

/// Reads a v2 `book` message: one [`V2Book`] per symbol it carries.
pub fn parse_v2_book(text: &str) -> Result<Vec<V2Book>, MessageError> {
    let message: Message<'_> = serde_json::from_str(text)?;
    if message.channel != "book" {
        return Err(MessageError::UnknownChannel(
            message.channel.chars().take(64).collect(),
        ));
    }
    let snapshot = match message.kind.as_str() {
        "snapshot" => true,
        "update" => false,
        other => return Err(bad("type", other)),
    };
    message
        .data
        .into_iter()
        .map(|data| {
            let timestamp_ms = match data.timestamp.as_deref() {
                Some(text) => Some(rfc3339_ms(text).ok_or_else(|| bad("timestamp", text))?),
                None => None,
            };
            Ok(V2Book {
                symbol: data.symbol,
                snapshot,
                delta: BookDelta {
                    asks: levels(&data.asks)?,
                    bids: levels(&data.bids)?,
                    checksum: data.checksum,
                    timestamp_ms,
                },
            })
        })
        .collect()
}

/// UTC milliseconds of `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (v2's timestamps, microseconds
/// truncated to milliseconds as ccxt's `parse8601` does).
pub(crate) fn rfc3339_ms(text: &str) -> Option<i64> {
    let body = text.strip_suffix('Z')?;
    let (date, time) = body.split_once('T')?;
    let (time, fraction) = time.split_once('.').unwrap_or((time, ""));
    let number = |part: &str, len: usize| -> Option<i64> {
        (part.len() == len && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    let mut date_parts = date.split('-');
    let year = number(date_parts.next()?, 4)?;
    let month = number(date_parts.next()?, 2)?;
    let day = number(date_parts.next()?, 2)?;
    let mut time_parts = time.split(':');
    let hour = number(time_parts.next()?, 2)?;
    let minute = number(time_parts.next()?, 2)?;
    let second = number(time_parts.next()?, 2)?;
    if date_parts.next().is_some()
        || time_parts.next().is_some()
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let millis = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |ms, b| ms * 10 + i64::from(b - b'0'));
    let ms = days_from_civil(year, month, day) * 86_400_000
        + (hour * 3600 + minute * 60 + second) * 1000
        + millis;
    // A day that does not exist (February 30th) comes back as another date.
    iso8601(ms).starts_with(date).then_some(ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(
            rfc3339_ms("2023-10-06T17:35:55.440295Z"),
            Some(1_696_613_755_440)
        );
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        for bad in [
            "2023-02-30T00:00:00Z",
            "2023-10-06 17:35:55Z",
            "2023-10-06T17:35:55",
            "2023-13-01T00:00:00Z",
            "",
        ] {
            assert_eq!(rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_v2_messages_are_errors() {
        assert!(parse_v2_book("{").is_err());
        assert!(parse_v2_book(r#"{"channel":"ticker","type":"update","data":[]}"#).is_err());
        assert!(parse_v2_book(r#"{"channel":"book","type":"delta","data":[]}"#).is_err());
        let exponent = r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD",
            "bids":[{"price":1e5,"qty":1}],"asks":[],"checksum":1}]}"#;
        assert!(matches!(
            parse_v2_book(exponent),
            Err(MessageError::BadNumber(_))
        ));
    }
}
