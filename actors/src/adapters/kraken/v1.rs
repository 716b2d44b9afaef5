//! Kraken WebSocket v1 (`wss://ws.kraken.com`) messages, classified and normalized: events as
//! typed values, book messages as [`BookDelta`]s for a [`KrakenBook`](super::KrakenBook), trades
//! and tickers as ccxt [`Trade`]s and [`Ticker`]s.
//!
//! Events are JSON objects (`{"event":"heartbeat"}`); channel data are arrays
//! `[channelID, payload..., channelName, pair]`, where a book update may carry two payloads (one
//! with `a`, one with `b`). Every malformed or unexpected message is a [`MessageError`], never a
//! panic, and nothing of it reaches a book: a book message is parsed completely before the
//! adapter applies it.
//!
//! The ccxt mapping is ccxt's kraken parser's (checked with ccxt 4.5.90): trades through
//! `parseTrade`'s array form (no trade id in v1, so `id` is `null`; `cost` is the exact product);
//! tickers as `parseTicker` and `safeTicker` build them over the rolling 24 hours (index 1 of
//! `v`, `p`, `h`, `l`, `o`), the window ccxt's current (v2) `watchTicker` reports, with
//! `change`, `percentage` and `average` derived in exact decimals and `average` truncated to the
//! pair's price decimals, as ccxt does. (ccxt's last v1 handler, 4.3.x, read index 0, "today
//! since midnight UTC".)

use std::borrow::Cow;
use std::fmt;

use rpc_crypto_proto::ccxt::{Info, OrderType, Side, Ticker, Timestamp, Trade};
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::book::{parse_number, BadNumber, BookDelta, LevelUpdate};
use super::markets::{KrakenMarkets, KrakenPair, UnknownPair};
use crate::adapters::decimal::{omit_zero, Decimal};

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not JSON, or JSON of the wrong types.
    #[error("Kraken message: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not the shape of any Kraken message.
    #[error("Kraken message: unexpected shape: {0}")]
    Shape(&'static str),
    /// An event this parser does not know.
    #[error("Kraken message: unknown event {0:?}")]
    UnknownEvent(String),
    /// Data of a channel this parser does not handle (`spread`, `ohlc-1`, ...).
    #[error("Kraken message: unsupported channel {0:?}")]
    UnknownChannel(String),
    /// A pair that is not in the market list.
    #[error(transparent)]
    UnknownPair(#[from] UnknownPair),
    /// A price or quantity that is not a plain decimal.
    #[error("Kraken message: {0}")]
    BadNumber(#[from] BadNumber),
    /// A field with a value outside its domain.
    #[error("Kraken message: bad {field}: {value:?}")]
    BadField {
        /// Which field.
        field: &'static str,
        /// Its value (at most 64 characters).
        value: String,
    },
}

/// A [`MessageError::BadField`], keeping at most 64 characters of the value.
pub(super) fn bad(field: &'static str, value: &str) -> MessageError {
    MessageError::BadField {
        field,
        value: value.chars().take(64).collect(),
    }
}

/// `systemStatus`: sent on connect and when the exchange's state changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemStatus {
    /// `online`, `maintenance`, `cancel_only`, `limit_only`, `post_only`.
    pub status: String,
    /// The API version.
    pub version: Option<String>,
}

/// The outcome a `subscriptionStatus` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// The channel now sends data.
    Subscribed,
    /// The channel stopped.
    Unsubscribed,
    /// The request was refused (`errorMessage` says why).
    Error,
}

/// `subscriptionStatus`: the answer to a subscribe or unsubscribe, one per pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStatus {
    /// Subscribed, unsubscribed or refused.
    pub state: SubscriptionState,
    /// The channel id data messages will carry.
    pub channel_id: Option<u64>,
    /// `book-1000`, `trade`, `ticker`.
    pub channel_name: Option<String>,
    /// The WebSocket pair name.
    pub pair: Option<String>,
    /// The subscription's `name` (`book`, `trade`, `ticker`).
    pub subscription: Option<String>,
    /// Why a request was refused.
    pub error_message: Option<String>,
    /// The request id the client sent, echoed.
    pub reqid: Option<u64>,
}

/// A book snapshot or update of one pair.
#[derive(Debug, Clone, PartialEq)]
pub struct BookMessage<'m> {
    /// The pair (its ccxt market and wsname).
    pub pair: &'m KrakenPair,
    /// The channel id.
    pub channel_id: u64,
    /// The subscribed depth, from the channel name (`book-1000` → 1000).
    pub depth: usize,
    /// A snapshot (`as`/`bs`) rather than an update (`a`/`b`).
    pub snapshot: bool,
    /// The levels and the checksum.
    pub delta: BookDelta,
}

/// One v1 message, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum KrakenMessage<'m> {
    /// `{"event":"systemStatus",...}`.
    SystemStatus(SystemStatus),
    /// `{"event":"subscriptionStatus",...}`, including refusals.
    SubscriptionStatus(SubscriptionStatus),
    /// `{"event":"heartbeat"}`: sent when nothing else was for a second.
    Heartbeat,
    /// `{"event":"pong"}`: the answer to our `ping`.
    Pong {
        /// The request id of the ping.
        reqid: Option<u64>,
    },
    /// Book data.
    Book(BookMessage<'m>),
    /// Trades, oldest first.
    Trades(Vec<Trade>),
    /// A ticker.
    Ticker(Box<Ticker>),
}

/// Reads one v1 message; pairs are looked up in `markets`.
pub fn parse_message<'m>(
    text: &str,
    markets: &'m KrakenMarkets,
) -> Result<KrakenMessage<'m>, MessageError> {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => parse_event(text),
        Some(b'[') => parse_channel(text, markets),
        // Let serde name what is wrong with it; valid JSON of another type is a shape error.
        _ => {
            serde_json::from_str::<IgnoredAny>(text)?;
            Err(MessageError::Shape(
                "neither an event object nor a data array",
            ))
        }
    }
}

#[derive(Deserialize)]
struct Event {
    event: String,
    status: Option<String>,
    version: Option<String>,
    #[serde(rename = "channelID")]
    channel_id: Option<u64>,
    #[serde(rename = "channelName")]
    channel_name: Option<String>,
    pair: Option<String>,
    #[serde(rename = "errorMessage")]
    error_message: Option<String>,
    subscription: Option<SubscriptionName>,
    reqid: Option<u64>,
}

#[derive(Deserialize)]
struct SubscriptionName {
    name: Option<String>,
}

fn parse_event<'m>(text: &str) -> Result<KrakenMessage<'m>, MessageError> {
    let event: Event = serde_json::from_str(text)?;
    match event.event.as_str() {
        "heartbeat" => Ok(KrakenMessage::Heartbeat),
        "pong" => Ok(KrakenMessage::Pong { reqid: event.reqid }),
        "systemStatus" => Ok(KrakenMessage::SystemStatus(SystemStatus {
            status: event
                .status
                .ok_or(MessageError::Shape("systemStatus without status"))?,
            version: event.version,
        })),
        "subscriptionStatus" => {
            let state = match event.status.as_deref() {
                Some("subscribed") => SubscriptionState::Subscribed,
                Some("unsubscribed") => SubscriptionState::Unsubscribed,
                Some("error") => SubscriptionState::Error,
                other => return Err(bad("subscriptionStatus status", other.unwrap_or("none"))),
            };
            Ok(KrakenMessage::SubscriptionStatus(SubscriptionStatus {
                state,
                channel_id: event.channel_id,
                channel_name: event.channel_name,
                pair: event.pair,
                subscription: event.subscription.and_then(|s| s.name),
                error_message: event.error_message,
                reqid: event.reqid,
            }))
        }
        other => Err(MessageError::UnknownEvent(other.chars().take(64).collect())),
    }
}

/// A JSON string's content, borrowed when it has no escapes.
fn string(raw: &RawValue) -> Result<Cow<'_, str>, serde_json::Error> {
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(text) => Ok(Cow::Borrowed(text)),
        Err(_) => serde_json::from_str::<String>(raw.get()).map(Cow::Owned),
    }
}

/// A scalar's text: a string's content, or a number as written (Kraken writes most numbers as
/// strings, some as numbers). `None` for `null`.
pub(super) fn scalar(raw: &RawValue) -> Result<Option<Cow<'_, str>>, MessageError> {
    match raw.get().as_bytes().first() {
        Some(b'"') => Ok(Some(string(raw)?)),
        Some(b'n') if raw.get() == "null" => Ok(None),
        Some(b'-' | b'0'..=b'9') => Ok(Some(Cow::Borrowed(raw.get()))),
        _ => Err(MessageError::Shape(
            "an array or object where a scalar belongs",
        )),
    }
}

fn parse_channel<'m>(
    text: &str,
    markets: &'m KrakenMarkets,
) -> Result<KrakenMessage<'m>, MessageError> {
    let parts: Vec<&RawValue> = serde_json::from_str(text)?;
    let [id, payloads @ .., channel, pair] = parts.as_slice() else {
        return Err(MessageError::Shape("data array shorter than 4"));
    };
    if payloads.is_empty() {
        return Err(MessageError::Shape("data array shorter than 4"));
    }
    let channel_id: u64 = serde_json::from_str(id.get()).map_err(|_| bad("channelID", id.get()))?;
    let channel = string(channel)?;
    let pair_name = string(pair)?;
    enum Kind {
        Book(usize),
        Trade,
        Ticker,
    }
    let kind = match channel.as_ref() {
        "trade" => Kind::Trade,
        "ticker" => Kind::Ticker,
        name => match name.strip_prefix("book-").map(str::parse::<usize>) {
            Some(Ok(depth)) if depth > 0 => Kind::Book(depth),
            _ => {
                return Err(MessageError::UnknownChannel(
                    name.chars().take(64).collect(),
                ))
            }
        },
    };
    let pair = markets.by_ws_name(&pair_name)?;
    match kind {
        Kind::Book(depth) => parse_book(channel_id, depth, payloads, pair).map(KrakenMessage::Book),
        Kind::Trade => match payloads {
            [trades] => parse_trades(trades, pair).map(KrakenMessage::Trades),
            _ => Err(MessageError::Shape("trade message with several payloads")),
        },
        Kind::Ticker => match payloads {
            [ticker] => parse_ticker(ticker, pair).map(|t| KrakenMessage::Ticker(Box::new(t))),
            _ => Err(MessageError::Shape("ticker message with several payloads")),
        },
    }
}

// ---------------------------------------------------------------- book

/// A book level as v1 writes it: `[price, volume, timestamp]`, with `"r"` appended when
/// republished. Read with a sequence visitor so a level costs no allocation.
struct RawLevel<'a> {
    price: &'a str,
    qty: &'a str,
    time: &'a str,
    flag: Option<&'a str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawLevel<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LevelVisitor;
        impl<'de> Visitor<'de> for LevelVisitor {
            type Value = RawLevel<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a level [price, volume, timestamp, (flag)]")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut next = |i| {
                    seq.next_element::<&'de str>()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))
                };
                let price = next(0)?;
                let qty = next(1)?;
                let time = next(2)?;
                let flag = seq.next_element::<&'de str>()?;
                // Tolerate fields Kraken may add later.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawLevel {
                    price,
                    qty,
                    time,
                    flag,
                })
            }
        }
        deserializer.deserialize_seq(LevelVisitor)
    }
}

#[derive(Deserialize)]
struct BookPayload<'a> {
    #[serde(borrow, rename = "as")]
    snapshot_asks: Option<Vec<RawLevel<'a>>>,
    #[serde(borrow, rename = "bs")]
    snapshot_bids: Option<Vec<RawLevel<'a>>>,
    #[serde(borrow)]
    a: Option<Vec<RawLevel<'a>>>,
    #[serde(borrow)]
    b: Option<Vec<RawLevel<'a>>>,
    #[serde(borrow)]
    c: Option<&'a str>,
}

/// Unix seconds as text (`1618678123.481570`) to milliseconds, truncated as ccxt's
/// `int(float(x) * 1000)` does.
pub(crate) fn seconds_to_ms(field: &'static str, text: &str) -> Result<i64, MessageError> {
    match text.parse::<f64>() {
        // Up to the year 2286, so that the product stays well inside i64.
        Ok(seconds) if seconds.is_finite() && (0.0..1e10).contains(&seconds) => {
            Ok((seconds * 1000.0) as i64)
        }
        _ => Err(bad(field, text)),
    }
}

fn level(raw: &RawLevel<'_>) -> Result<LevelUpdate, MessageError> {
    Ok(LevelUpdate {
        price: parse_number(raw.price)?,
        qty: parse_number(raw.qty)?,
        timestamp_ms: Some(seconds_to_ms("level timestamp", raw.time)?),
        republish: match raw.flag {
            None => false,
            Some("r") => true,
            Some(other) => return Err(bad("level flag", other)),
        },
    })
}

fn levels(into: &mut Vec<LevelUpdate>, raw: Option<Vec<RawLevel<'_>>>) -> Result<(), MessageError> {
    for raw in raw.iter().flatten() {
        into.push(level(raw)?);
    }
    Ok(())
}

fn parse_book<'m>(
    channel_id: u64,
    depth: usize,
    payloads: &[&RawValue],
    pair: &'m KrakenPair,
) -> Result<BookMessage<'m>, MessageError> {
    let mut delta = BookDelta::default();
    let (mut snapshot, mut update) = (false, false);
    for payload in payloads {
        let payload: BookPayload<'_> = serde_json::from_str(payload.get())?;
        snapshot |= payload.snapshot_asks.is_some() || payload.snapshot_bids.is_some();
        update |= payload.a.is_some() || payload.b.is_some() || payload.c.is_some();
        levels(&mut delta.asks, payload.snapshot_asks)?;
        levels(&mut delta.bids, payload.snapshot_bids)?;
        levels(&mut delta.asks, payload.a)?;
        levels(&mut delta.bids, payload.b)?;
        if let Some(c) = payload.c {
            delta.checksum = Some(c.parse().map_err(|_| bad("checksum", c))?);
        }
    }
    if snapshot == update {
        return Err(MessageError::Shape(
            "book message neither a snapshot (as/bs) nor an update (a/b)",
        ));
    }
    Ok(BookMessage {
        pair,
        channel_id,
        depth,
        snapshot,
        delta,
    })
}

// ---------------------------------------------------------------- trades

/// A decimal field: its float, and its exact value for derived amounts.
fn decimal(field: &'static str, text: &str) -> Result<(f64, Decimal), MessageError> {
    let exact = Decimal::parse(text).ok_or_else(|| bad(field, text))?;
    let value: f64 = text.parse().map_err(|_| bad(field, text))?;
    Ok((value, exact))
}

/// `[[price, volume, time, side b|s, type m|l, misc], ...]` as ccxt trades.
fn parse_trades(payload: &RawValue, pair: &KrakenPair) -> Result<Vec<Trade>, MessageError> {
    let raw_trades: Vec<&RawValue> = serde_json::from_str(payload.get())?;
    let mut trades = Vec::with_capacity(raw_trades.len());
    for raw in raw_trades {
        let fields: Vec<&RawValue> = serde_json::from_str(raw.get())?;
        let fields = fields
            .into_iter()
            .map(|field| Ok(scalar(field)?.unwrap_or_default()))
            .collect::<Result<Vec<Cow<'_, str>>, MessageError>>()?;
        let [price, amount, time, side, order_type, rest @ ..] = fields.as_slice() else {
            return Err(MessageError::Shape("trade with fewer than 5 fields"));
        };
        let (price, exact_price) = decimal("trade price", price)?;
        let (amount, exact_amount) = decimal("trade volume", amount)?;
        let side = match side.as_ref() {
            "b" => Side::Buy,
            "s" => Side::Sell,
            other => return Err(bad("trade side", other)),
        };
        let order_type = match order_type.as_ref() {
            "l" => OrderType::Limit,
            "m" => OrderType::Market,
            other => return Err(bad("trade type", other)),
        };
        let timestamp = seconds_to_ms("trade time", time)?;
        let mut trade = Trade::new(&pair.market.symbol, timestamp, side, price, amount);
        // ccxt's exact `Precise` product rather than the float one.
        trade.cost = exact_price
            .checked_mul(exact_amount)
            .map(Decimal::to_f64)
            .or(trade.cost);
        trade.order_type = Some(order_type);
        // ccxt takes a 7th element as the trade id (REST trades have one; v1 messages do not).
        trade.id = rest.get(1).map(|id| id.to_string());
        trade.info = Info::from(raw);
        trades.push(trade);
    }
    Ok(trades)
}

// ---------------------------------------------------------------- ticker

#[derive(Deserialize)]
struct RawTicker<'a> {
    #[serde(borrow, default)]
    a: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    b: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    c: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    v: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    p: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    l: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    h: Vec<&'a RawValue>,
    /// `[today, last 24 hours]` on the WebSocket, a single string in REST.
    #[serde(borrow)]
    o: Option<&'a RawValue>,
}

/// The decimal at `index` of a ticker field (a string, or a number for the lot volumes).
fn at(
    field: &'static str,
    list: &[&RawValue],
    index: usize,
) -> Result<Option<Decimal>, MessageError> {
    let Some(text) = list
        .get(index)
        .map(|raw| scalar(raw))
        .transpose()?
        .flatten()
    else {
        return Ok(None);
    };
    Decimal::parse(&text)
        .map(Some)
        .ok_or_else(|| bad(field, &text))
}

fn float(value: Option<Decimal>) -> Option<f64> {
    value.map(Decimal::to_f64)
}

/// The ticker payload as ccxt's kraken `parseTicker` + `safeTicker` make it.
fn parse_ticker(payload: &RawValue, pair: &KrakenPair) -> Result<Ticker, MessageError> {
    let raw: RawTicker<'_> = serde_json::from_str(payload.get())?;
    let open = match raw.o {
        Some(o) if o.get().starts_with('[') => {
            let list: Vec<&RawValue> = serde_json::from_str(o.get())?;
            at("o", &list, 1)?
        }
        Some(o) => at("o", &[o], 0)?,
        None => None,
    };
    let open = omit_zero(open);
    let close = omit_zero(at("c", &raw.c, 0)?);
    let vwap = at("p", &raw.p, 1)?;
    let base_volume = at("v", &raw.v, 1)?;
    let quote_volume = base_volume.zip(vwap).and_then(|(v, p)| v.checked_mul(p));
    let (change, percentage, average) = match (open, close) {
        (Some(open), Some(close)) => {
            let change = close.checked_sub(open);
            let percentage = change.and_then(|c| c.percent_of(open));
            let average = open.average(close, pair.price_decimals);
            (change, percentage, average)
        }
        _ => (None, None, None),
    };
    let mut ticker = Ticker::new(&pair.market.symbol, Timestamp::NONE);
    ticker.high = float(omit_zero(at("h", &raw.h, 1)?));
    ticker.low = float(omit_zero(at("l", &raw.l, 1)?));
    ticker.bid = float(omit_zero(at("b", &raw.b, 0)?));
    ticker.bid_volume = float(at("b", &raw.b, 2)?);
    ticker.ask = float(omit_zero(at("a", &raw.a, 0)?));
    ticker.ask_volume = float(at("a", &raw.a, 2)?);
    ticker.vwap = float(vwap);
    ticker.open = float(open);
    ticker.close = float(close);
    ticker.last = float(close);
    ticker.change = float(change);
    ticker.percentage = float(percentage);
    ticker.average = float(average);
    ticker.base_volume = float(base_volume);
    ticker.quote_volume = float(quote_volume);
    ticker.info = Info::from(payload);
    Ok(ticker)
}
