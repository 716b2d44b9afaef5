//! Kraken WebSocket v2 (`wss://ws.kraken.com/v2`) messages, classified and normalized: the
//! answers to our requests, heartbeats and status, book snapshots and updates as [`BookDelta`]s,
//! trades, tickers and candles as ccxt structures.
//!
//! - Requests and answers: `{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],
//!   "depth":10},"req_id":1}`, answered once per symbol by `{"method":"subscribe","success":true,
//!   "result":{"channel":"book","symbol":"BTC/USD",...},"req_id":1,...}` or, refused,
//!   `{"method":"subscribe","success":false,"error":"Currency pair not supported XBT/USD",
//!   "symbol":"XBT/USD",...}` (the symbol outside `result`); `{"method":"pong"}` answers
//!   `{"method":"ping"}`.
//! - `{"channel":"heartbeat"}` about once a second when nothing else is sent;
//!   `{"channel":"status","type":"update","data":[{"system":"online",...}]}` on connect.
//! - Data: `{"channel":"book"|"trade"|"ticker"|"ohlc","type":"snapshot"|"update","data":[...]}`.
//!
//! Book levels are `{"price":45283.5,"qty":0.10000000}`: JSON numbers, each read as a
//! [`RawValue`] so that its text is kept (a float would lose the digits the checksum takes; the
//! book writes them with the pair's decimals, see [`super::book`]). Both snapshots and updates
//! carry a checksum. Symbols are v2's (`BTC/USD`, `DOGE/USD`), looked up in the market list
//! ([`KrakenMarkets::by_v2_name`]) for the ccxt symbol.
//!
//! The ccxt mapping is ccxt's `kraken` WebSocket v2 handlers' (ccxt 4.5.90, `ccxt/pro/kraken.py`:
//! `handle_ticker`, `handle_trades` → `parse_trade`, `handle_ohlcv`), checked by running them
//! (`ccxt_oracle_v2.py` beside this file):
//! - a ticker has no timestamp; `close` and `last` are `last`; `open` is `last - change`;
//!   `percentage` is Kraken's `change_pct` as sent (rounded to 2 decimals by Kraken); `average`
//!   is `(open + last) / 2` cut to 18 decimals (ccxt passes no market here, so unlike its v1 and
//!   REST tickers it is not cut to the price's decimals); `quoteVolume` is `volume × vwap`,
//!   exact; `info` is the symbol's object of `data`;
//! - a trade's `id` is `trade_id`, `type` `ord_type`, `side` the taker's, `cost` exact;
//! - a candle is `[interval_begin, open, high, low, close, volume]`, its timeframe ccxt's name of
//!   the interval in minutes.

use std::borrow::Cow;

use rpc_crypto_proto::ccxt::{iso8601, Info, Ohlcv, OrderType, Side, Ticker, Timestamp, Trade};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::book::{parse_number, BookDelta, LevelUpdate};
use super::markets::{KrakenMarkets, KrakenPair};
use super::v1::{bad, scalar, MessageError};
use crate::adapters::decimal::{omit_zero, Decimal, DecimalText, DIV_PRECISION};

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
    let snapshot = snapshot_or_update(&message.kind)?;
    message
        .data
        .into_iter()
        .map(|data| book_data(data, snapshot))
        .collect()
}

fn snapshot_or_update(kind: &str) -> Result<bool, MessageError> {
    match kind {
        "snapshot" => Ok(true),
        "update" => Ok(false),
        other => Err(bad("type", other)),
    }
}

fn book_data(data: Data<'_>, snapshot: bool) -> Result<V2Book, MessageError> {
    let timestamp_ms = match data.timestamp.as_deref() {
        Some(text) => Some(timestamp("timestamp", text)?),
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
}

fn timestamp(field: &'static str, text: &str) -> Result<i64, MessageError> {
    rfc3339_ms(text).ok_or_else(|| bad(field, text))
}

// ---------------------------------------------------------------- every message

/// A book snapshot or update of one pair of the market list.
#[derive(Debug, Clone, PartialEq)]
pub struct V2PairBook<'m> {
    /// The pair (its ccxt market, v2 name and decimals).
    pub pair: &'m KrakenPair,
    /// A snapshot rather than an update.
    pub snapshot: bool,
    /// The levels, checksum and timestamp.
    pub delta: BookDelta,
}

/// The answer to one symbol of a `subscribe` or `unsubscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Ack {
    /// `subscribe` or `unsubscribe`.
    pub method: String,
    /// Done, or refused (`error` says why).
    pub success: bool,
    /// The `req_id` of our request, echoed.
    pub req_id: Option<u64>,
    /// The channel (`book`, `ticker`, `trade`, `ohlc`), when Kraken names it (`result`).
    pub channel: Option<String>,
    /// The v2 symbol, from `result` or, in a refusal, beside it.
    pub symbol: Option<String>,
    /// The `ohlc` interval, when `result` names it.
    pub interval: Option<u32>,
    /// Why it was refused.
    pub error: Option<String>,
}

/// One candle of an `ohlc` message.
#[derive(Debug, Clone, PartialEq)]
pub struct V2Candle {
    /// The ccxt symbol.
    pub symbol: String,
    /// The interval, in minutes.
    pub interval: u32,
    /// `[interval_begin, open, high, low, close, volume]`.
    pub candle: Ohlcv,
}

/// One v2 message, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum V2Message<'m> {
    /// `{"channel":"heartbeat"}`.
    Heartbeat,
    /// `{"method":"pong"}`: the answer to our ping.
    Pong {
        /// The `req_id` of the ping.
        req_id: Option<u64>,
    },
    /// `{"channel":"status"}`: the exchange's state (`online`, `maintenance`, ...).
    Status {
        /// `system`.
        system: String,
    },
    /// The answer to a subscribe or unsubscribe.
    Ack(V2Ack),
    /// Book data, one entry per symbol.
    Book(Vec<V2PairBook<'m>>),
    /// Trades, oldest first.
    Trades(Vec<Trade>),
    /// Tickers, one per symbol.
    Tickers(Vec<Ticker>),
    /// Candles; a snapshot holds the recent ones, oldest first.
    Ohlc {
        /// The candles sent when subscribing, rather than a live update.
        snapshot: bool,
        /// The candles.
        candles: Vec<V2Candle>,
    },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    channel: Option<Cow<'a, str>>,
    #[serde(rename = "type")]
    kind: Option<Cow<'a, str>>,
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<Vec<&'a RawValue>>,
    success: Option<bool>,
    req_id: Option<u64>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    error: Option<String>,
    symbol: Option<String>,
}

#[derive(Deserialize)]
struct AckResult {
    channel: Option<String>,
    symbol: Option<String>,
    interval: Option<u32>,
}

/// Reads one v2 message; symbols are looked up in `markets`.
pub fn parse_v2_message<'m>(
    text: &str,
    markets: &'m KrakenMarkets,
) -> Result<V2Message<'m>, MessageError> {
    let envelope: Envelope<'_> = serde_json::from_str(text)?;
    if let Some(channel) = envelope.channel.as_deref() {
        let data = envelope.data.unwrap_or_default();
        let snapshot = || snapshot_or_update(envelope.kind.as_deref().unwrap_or(""));
        return match channel {
            "heartbeat" => Ok(V2Message::Heartbeat),
            "status" => {
                #[derive(Deserialize)]
                struct Status {
                    system: String,
                }
                let first = data
                    .first()
                    .ok_or(MessageError::Shape("status without data"))?;
                let status: Status = serde_json::from_str(first.get())?;
                Ok(V2Message::Status {
                    system: status.system,
                })
            }
            "book" => {
                let snapshot = snapshot()?;
                let books = data
                    .iter()
                    .map(|raw| {
                        let data: Data<'_> = serde_json::from_str(raw.get())?;
                        let book = book_data(data, snapshot)?;
                        let pair = markets.by_v2_name(&book.symbol)?;
                        Ok(V2PairBook {
                            pair,
                            snapshot,
                            delta: book.delta,
                        })
                    })
                    .collect::<Result<_, MessageError>>()?;
                Ok(V2Message::Book(books))
            }
            "trade" => {
                snapshot()?;
                let trades = data
                    .iter()
                    .map(|raw| parse_trade(raw, markets))
                    .collect::<Result<_, _>>()?;
                Ok(V2Message::Trades(trades))
            }
            "ticker" => {
                snapshot()?;
                let tickers = data
                    .iter()
                    .map(|raw| parse_ticker(raw, markets))
                    .collect::<Result<_, _>>()?;
                Ok(V2Message::Tickers(tickers))
            }
            "ohlc" => {
                let snapshot = snapshot()?;
                let candles = data
                    .iter()
                    .map(|raw| parse_candle(raw, markets))
                    .collect::<Result<_, _>>()?;
                Ok(V2Message::Ohlc { snapshot, candles })
            }
            other => Err(MessageError::UnknownChannel(
                other.chars().take(64).collect(),
            )),
        };
    }
    match envelope.method.as_deref() {
        Some("pong") => Ok(V2Message::Pong {
            req_id: envelope.req_id,
        }),
        Some(method @ ("subscribe" | "unsubscribe")) => {
            let result: Option<AckResult> = envelope
                .result
                .map(|raw| serde_json::from_str(raw.get()))
                .transpose()?;
            let (channel, symbol, interval) = match result {
                Some(r) => (r.channel, r.symbol, r.interval),
                None => (None, None, None),
            };
            Ok(V2Message::Ack(V2Ack {
                method: method.to_owned(),
                success: envelope
                    .success
                    .ok_or(MessageError::Shape("an answer without success"))?,
                req_id: envelope.req_id,
                channel,
                symbol: symbol.or(envelope.symbol),
                interval,
                error: envelope.error,
            }))
        }
        Some(other) => Err(MessageError::UnknownEvent(other.chars().take(64).collect())),
        None => Err(MessageError::Shape(
            "neither a channel message nor a method answer",
        )),
    }
}

/// A number field's exact value: a JSON number as written (or a quoted one), `None` when absent
/// or `null`.
fn decimal(field: &'static str, raw: Option<&RawValue>) -> Result<Option<Decimal>, MessageError> {
    let Some(text) = raw.map(scalar).transpose()?.flatten() else {
        return Ok(None);
    };
    Decimal::parse(&text)
        .map(Some)
        .ok_or_else(|| bad(field, &text))
}

/// A field that must be there.
fn required(field: &'static str, raw: Option<&RawValue>) -> Result<Decimal, MessageError> {
    decimal(field, raw)?.ok_or_else(|| bad(field, "missing"))
}

fn float(value: Option<Decimal>) -> Option<f64> {
    value.map(Decimal::to_f64)
}

#[derive(Deserialize)]
struct RawTrade<'a> {
    symbol: String,
    side: String,
    #[serde(borrow)]
    price: Option<&'a RawValue>,
    #[serde(borrow)]
    qty: Option<&'a RawValue>,
    ord_type: Option<String>,
    #[serde(borrow)]
    trade_id: Option<&'a RawValue>,
    timestamp: String,
}

/// One trade as ccxt's `parse_trade` makes a v2 trade.
fn parse_trade(raw: &RawValue, markets: &KrakenMarkets) -> Result<Trade, MessageError> {
    let trade: RawTrade<'_> = serde_json::from_str(raw.get())?;
    let pair = markets.by_v2_name(&trade.symbol)?;
    let price = required("trade price", trade.price)?;
    let amount = required("trade qty", trade.qty)?;
    let side = match trade.side.as_str() {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        other => return Err(bad("trade side", other)),
    };
    let time = timestamp("trade timestamp", &trade.timestamp)?;
    let mut parsed = Trade::new(
        &pair.market.symbol,
        time,
        side,
        price.to_f64(),
        amount.to_f64(),
    );
    // ccxt's exact `Precise` product rather than the float one.
    parsed.cost = price
        .checked_mul(amount)
        .map(Decimal::to_f64)
        .or(parsed.cost);
    parsed.order_type = match trade.ord_type.as_deref() {
        Some("limit") => Some(OrderType::Limit),
        Some("market") => Some(OrderType::Market),
        _ => None,
    };
    parsed.id = trade
        .trade_id
        .map(scalar)
        .transpose()?
        .flatten()
        .map(Cow::into_owned);
    parsed.info = Info::from(raw);
    Ok(parsed)
}

#[derive(Deserialize)]
struct RawTicker<'a> {
    symbol: String,
    #[serde(borrow)]
    bid: Option<&'a RawValue>,
    #[serde(borrow)]
    bid_qty: Option<&'a RawValue>,
    #[serde(borrow)]
    ask: Option<&'a RawValue>,
    #[serde(borrow)]
    ask_qty: Option<&'a RawValue>,
    #[serde(borrow)]
    last: Option<&'a RawValue>,
    #[serde(borrow)]
    volume: Option<&'a RawValue>,
    #[serde(borrow)]
    vwap: Option<&'a RawValue>,
    #[serde(borrow)]
    low: Option<&'a RawValue>,
    #[serde(borrow)]
    high: Option<&'a RawValue>,
    #[serde(borrow)]
    change: Option<&'a RawValue>,
    #[serde(borrow)]
    change_pct: Option<&'a RawValue>,
}

/// One ticker as ccxt's v2 `handle_ticker` and `safe_ticker` make it.
fn parse_ticker(raw: &RawValue, markets: &KrakenMarkets) -> Result<Ticker, MessageError> {
    let fields: RawTicker<'_> = serde_json::from_str(raw.get())?;
    let pair = markets.by_v2_name(&fields.symbol)?;
    let close = omit_zero(decimal("last", fields.last)?);
    // A change of zero is a flat day, not "none" (ccxt does not omit it).
    let change = decimal("change", fields.change)?;
    let mut percentage = omit_zero(decimal("change_pct", fields.change_pct)?);
    let vwap = decimal("vwap", fields.vwap)?;
    let base_volume = decimal("volume", fields.volume)?;
    let quote_volume = base_volume.zip(vwap).and_then(|(v, p)| v.checked_mul(p));
    let open = close.zip(change).and_then(|(c, ch)| c.checked_sub(ch));
    let mut average = None;
    if let Some(open) = open {
        if percentage.is_none() {
            percentage = change.and_then(|c| c.percent_of(open));
        }
        average = close.and_then(|c| open.average(c, DIV_PRECISION));
    }
    let mut ticker = Ticker::new(&pair.market.symbol, Timestamp::NONE);
    ticker.high = float(omit_zero(decimal("high", fields.high)?));
    ticker.low = float(omit_zero(decimal("low", fields.low)?));
    ticker.bid = float(omit_zero(decimal("bid", fields.bid)?));
    ticker.bid_volume = float(decimal("bid_qty", fields.bid_qty)?);
    ticker.ask = float(omit_zero(decimal("ask", fields.ask)?));
    ticker.ask_volume = float(decimal("ask_qty", fields.ask_qty)?);
    ticker.vwap = float(vwap);
    ticker.open = float(omit_zero(open));
    ticker.close = float(close);
    ticker.last = float(close);
    ticker.change = float(change);
    ticker.percentage = float(percentage);
    ticker.average = float(average);
    ticker.base_volume = float(base_volume);
    ticker.quote_volume = float(quote_volume);
    ticker.info = Info::from(raw);
    Ok(ticker)
}

#[derive(Deserialize)]
struct RawCandle<'a> {
    symbol: String,
    #[serde(borrow)]
    open: Option<&'a RawValue>,
    #[serde(borrow)]
    high: Option<&'a RawValue>,
    #[serde(borrow)]
    low: Option<&'a RawValue>,
    #[serde(borrow)]
    close: Option<&'a RawValue>,
    #[serde(borrow)]
    volume: Option<&'a RawValue>,
    interval: u32,
    interval_begin: String,
}

/// One candle as ccxt's v2 `handle_ohlcv` makes it.
fn parse_candle(raw: &RawValue, markets: &KrakenMarkets) -> Result<V2Candle, MessageError> {
    let fields: RawCandle<'_> = serde_json::from_str(raw.get())?;
    let pair = markets.by_v2_name(&fields.symbol)?;
    let value = |field, raw| required(field, raw).map(Decimal::to_f64);
    Ok(V2Candle {
        symbol: pair.market.symbol.clone(),
        interval: fields.interval,
        candle: Ohlcv::new(
            timestamp("interval_begin", &fields.interval_begin)?,
            value("open", fields.open)?,
            value("high", fields.high)?,
            value("low", fields.low)?,
            value("close", fields.close)?,
            value("volume", fields.volume)?,
        ),
    })
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
