//! Coinbase Exchange WebSocket messages: reading them, and turning tickers and matches into
//! ccxt Tickers and Trades exactly as ccxt's `ccxt.pro.coinbaseexchange` does.
//!
//! Messages borrow from the frame's text, so reading one allocates only what it keeps. A
//! message's `type` picks its shape; an `error` message becomes [`FeedError::Refused`] (a
//! refused subscription, a failed authentication), an unknown type [`FeedError::UnknownType`],
//! and text that is not JSON [`FeedError::Json`]. Nothing panics on any input.
//!
//! The ccxt rules followed (ccxt 4.5.90, `ccxt/pro/coinbaseexchange.py`):
//! - ticker (`parseTicker` on a WebSocket ticker, then `safeTicker`): `last`/`close` = `price`,
//!   `bid`/`ask` = `best_bid`/`best_ask`, their volumes from `best_bid_size`/`best_ask_size`,
//!   `high`/`low`/`open` = the `_24h` fields, `baseVolume` = `volume_24h`; zero prices count as
//!   absent (`omitZero`); `change`, `percentage` and `average` are computed in exact decimal
//!   arithmetic, division truncated to 18 decimals, as ccxt's `Precise` does.
//! - match (`parseWsTrade` over `parseTrade`): `id` = `trade_id` as text; the message's `side`
//!   is the maker's, so a public trade's `side` is the opposite one (the taker's) and
//!   `takerOrMaker` is `"taker"`, `order` the taker's order id; `cost` = price × size exactly;
//!   `fee` = `{cost: null, currency: quote, rate: null}`, `fees` = `[]`. On the authenticated
//!   feed a message with `maker_fee_rate` is the user's maker fill: side as sent, `"maker"`,
//!   the maker's order id, and the fee from that rate.
//! - `last_match` (the last trade before subscribing) reads as a match; ccxt's `handleMessage`
//!   drops it, its `parseWsTrade` reads it as here.

use std::borrow::Cow;

use rpc_crypto_proto::ccxt::{Fee, Info, Side, TakerOrMaker, Ticker, Trade};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::markets::Markets;
use super::time::parse_iso8601_ms;
use super::FeedError;
use crate::adapters::decimal::{omit_zero, Decimal, DIV_PRECISION};

/// One message of the Coinbase Exchange feed, borrowing from its text.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<'a> {
    /// The channels and products now subscribed (the answer to a subscribe or unsubscribe).
    Subscriptions(Subscriptions),
    /// `heartbeat` channel: proof of life per product, with the last trade id.
    Heartbeat(Heartbeat<'a>),
    /// `level2`: the full book of a product, first after subscribing.
    Snapshot(Snapshot<'a>),
    /// `level2`: changed levels of a product.
    L2Update(L2Update<'a>),
    /// `ticker`: the last trade with 24-hour statistics and the best prices.
    Ticker(TickerMessage<'a>),
    /// `matches`: one trade (`match`, or `last_match` right after subscribing).
    Match(MatchMessage<'a>),
}

/// The `subscriptions` message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Subscriptions {
    /// Each channel with its products.
    pub channels: Vec<SubscribedChannel>,
}

/// One channel of a `subscriptions` message.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribedChannel {
    /// `level2`, `ticker`, `matches`, `heartbeat`...
    pub name: String,
    /// The products subscribed on it.
    pub product_ids: Vec<String>,
}

impl<'de> Deserialize<'de> for SubscribedChannel {
    /// Coinbase lists channels as `{name, product_ids}`; a bare name (the subscribe request's
    /// short form) is read too, with no products.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Name(String),
            Full {
                name: String,
                #[serde(default)]
                product_ids: Vec<String>,
            },
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Name(name) => Self {
                name,
                product_ids: Vec::new(),
            },
            Form::Full { name, product_ids } => Self { name, product_ids },
        })
    }
}

/// The `heartbeat` message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Heartbeat<'a> {
    /// The product.
    pub product_id: &'a str,
    /// The product's feed sequence.
    pub sequence: Option<u64>,
    /// The id of the product's last trade.
    pub last_trade_id: Option<u64>,
    /// When it was sent (ISO 8601).
    pub time: Option<&'a str>,
}

/// A `level2` `snapshot`: every level of one side as `[price, size]`, decimal text.
///
/// Levels borrow the frame's text; a level written with JSON escapes is refused (Coinbase
/// writes plain decimals), which spares a copy of every level on the hot path.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Snapshot<'a> {
    /// The product.
    pub product_id: &'a str,
    /// Buy levels.
    #[serde(borrow)]
    pub bids: Vec<[&'a str; 2]>,
    /// Sell levels.
    #[serde(borrow)]
    pub asks: Vec<[&'a str; 2]>,
}

/// A `level2` `l2update`: `[side, price, size]` changes, the size absolute, `"0"` removing the
/// level. No sequence and no checksum: a book is only checked for being crossed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct L2Update<'a> {
    /// The product.
    pub product_id: &'a str,
    /// `buy` (bids) or `sell` (asks), price, new size.
    #[serde(borrow)]
    pub changes: Vec<[&'a str; 3]>,
    /// When it happened (ISO 8601); the book's timestamp.
    pub time: Option<&'a str>,
}

/// A field as Coinbase may write it: decimal text, or a bare JSON number (`trade_id`); read
/// lazily (only the converters look inside), `None` when absent or `null`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(transparent)]
pub struct Field<'a>(#[serde(borrow)] pub Option<&'a RawValue>);

impl PartialEq for Field<'_> {
    /// The same JSON text.
    fn eq(&self, other: &Self) -> bool {
        self.0.map(RawValue::get) == other.0.map(RawValue::get)
    }
}

/// The text of a [`Field`]: a string's content or a number's digits; `None` for absent or
/// `null`. Anything else (an object, a boolean, an escaped string) is malformed.
fn text<'a>(name: &'static str, field: Field<'a>) -> Result<Option<&'a str>, FeedError> {
    let Some(raw) = field.0.map(RawValue::get) else {
        return Ok(None);
    };
    if raw == "null" {
        return Ok(None);
    }
    if let Some(inner) = raw.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        if inner.contains('\\') {
            return Err(FeedError::bad_field(name, raw));
        }
        return Ok(Some(inner));
    }
    if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Ok(Some(raw));
    }
    Err(FeedError::bad_field(name, raw))
}

/// A decimal field; malformed text is an error.
fn decimal(name: &'static str, field: Field<'_>) -> Result<Option<Decimal>, FeedError> {
    match text(name, field)? {
        None | Some("") => Ok(None),
        Some(value) => Decimal::parse(value)
            .map(Some)
            .ok_or_else(|| FeedError::bad_field(name, value)),
    }
}

/// A decimal field as ccxt's `omitZero` leaves it: zero is absent.
fn nonzero(name: &'static str, field: Field<'_>) -> Result<Option<Decimal>, FeedError> {
    Ok(omit_zero(decimal(name, field)?))
}

/// A timestamp field: `None` when absent, an error when present and not ISO 8601.
fn timestamp(name: &'static str, field: Option<&str>) -> Result<Option<i64>, FeedError> {
    field
        .map(|t| parse_iso8601_ms(t).ok_or_else(|| FeedError::bad_field(name, t)))
        .transpose()
}

/// The `ticker` message; the fields ccxt reads, and the whole text for `info`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TickerMessage<'a> {
    /// The product.
    pub product_id: &'a str,
    /// Last trade price.
    #[serde(borrow, default)]
    pub price: Field<'a>,
    /// 24-hour open.
    #[serde(borrow, default)]
    pub open_24h: Field<'a>,
    /// 24-hour base volume.
    #[serde(borrow, default)]
    pub volume_24h: Field<'a>,
    /// 24-hour low.
    #[serde(borrow, default)]
    pub low_24h: Field<'a>,
    /// 24-hour high.
    #[serde(borrow, default)]
    pub high_24h: Field<'a>,
    /// Best bid price.
    #[serde(borrow, default)]
    pub best_bid: Field<'a>,
    /// Amount at the best bid (sent since 2022).
    #[serde(borrow, default)]
    pub best_bid_size: Field<'a>,
    /// Best ask price.
    #[serde(borrow, default)]
    pub best_ask: Field<'a>,
    /// Amount at the best ask (sent since 2022).
    #[serde(borrow, default)]
    pub best_ask_size: Field<'a>,
    /// When (ISO 8601).
    pub time: Option<&'a str>,
    /// The message's text.
    #[serde(skip)]
    pub raw: &'a str,
}

impl TickerMessage<'_> {
    /// The ccxt Ticker, for the product's market in `markets`.
    pub fn to_ccxt(&self, markets: &Markets) -> Result<Ticker, FeedError> {
        let symbol = &markets.require(self.product_id)?.symbol;
        let mut ticker = Ticker::new(symbol.as_str(), timestamp("time", self.time)?);
        let f = |d: Option<Decimal>| d.map(Decimal::to_f64);
        let open = nonzero("open_24h", self.open_24h)?;
        let last = nonzero("price", self.price)?;
        ticker.high = f(nonzero("high_24h", self.high_24h)?);
        ticker.low = f(nonzero("low_24h", self.low_24h)?);
        ticker.bid = f(nonzero("best_bid", self.best_bid)?);
        ticker.bid_volume = f(decimal("best_bid_size", self.best_bid_size)?);
        ticker.ask = f(nonzero("best_ask", self.best_ask)?);
        ticker.ask_volume = f(decimal("best_ask_size", self.best_ask_size)?);
        ticker.open = f(open);
        ticker.last = f(last);
        ticker.close = f(last);
        ticker.base_volume = f(decimal("volume_24h", self.volume_24h)?);
        if let (Some(open), Some(last)) = (open, last) {
            // safeTicker: change = close - open, percentage = change / open * 100,
            // average = (open + close) / 2, each exact before the one conversion to a number.
            let change = last.checked_sub(open);
            ticker.change = f(change);
            ticker.percentage = f(change.and_then(|c| c.percent_of(open)));
            ticker.average = f(open.average(last, DIV_PRECISION));
        }
        // Whatever exact arithmetic could not hold (only absurd magnitudes) ccxt's rule still
        // fills, in floating point.
        ticker.complete();
        ticker.info = Info::from_json(self.raw)?;
        Ok(ticker)
    }
}

/// A `match` or `last_match` message; the fields ccxt reads, and the whole text for `info`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MatchMessage<'a> {
    /// `match` or `last_match`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// The product.
    pub product_id: &'a str,
    /// The trade id (a number on this feed).
    #[serde(borrow, default)]
    pub trade_id: Field<'a>,
    /// The resting order.
    pub maker_order_id: Option<&'a str>,
    /// The incoming order.
    pub taker_order_id: Option<&'a str>,
    /// The user's order (REST fills).
    pub order_id: Option<&'a str>,
    /// The MAKER's side.
    pub side: Option<&'a str>,
    /// Amount in the base currency.
    #[serde(borrow, default)]
    pub size: Field<'a>,
    /// Price.
    #[serde(borrow, default)]
    pub price: Field<'a>,
    /// When (ISO 8601).
    pub time: Option<&'a str>,
    /// When, in REST fills (read if `time` is absent, as ccxt does).
    pub created_at: Option<&'a str>,
    /// The user's maker fee rate (authenticated feed, the user was the maker).
    #[serde(borrow, default)]
    pub maker_fee_rate: Field<'a>,
    /// The user's taker fee rate (authenticated feed, the user was the taker).
    #[serde(borrow, default)]
    pub taker_fee_rate: Field<'a>,
    /// The message's text.
    #[serde(skip)]
    pub raw: &'a str,
}

fn side(text: &str) -> Result<Side, FeedError> {
    text.parse().map_err(|_| FeedError::bad_field("side", text))
}

impl MatchMessage<'_> {
    /// The ccxt Trade, for the product's market in `markets`.
    pub fn to_ccxt(&self, markets: &Markets) -> Result<Trade, FeedError> {
        let market = markets.require(self.product_id)?;
        let required = |name, field| decimal(name, field)?.ok_or(FeedError::Missing(name));
        let price = required("price", self.price)?;
        let amount = required("size", self.size)?;
        let raw_side = side(self.side.ok_or(FeedError::Missing("side"))?)?;
        let time = timestamp("time", self.time.or(self.created_at))?;

        // parseTrade keeps the sent side when the message names orders (always, on this feed)
        // and flips it otherwise; parseWsTrade then flips it for every non-maker fill, since
        // the sent side is the maker's. Both steps are kept so odd messages read as in ccxt.
        let names_orders = self.order_id.is_some()
            || (self.maker_order_id.is_some() && self.taker_order_id.is_some());
        let parsed_side = if names_orders {
            raw_side
        } else {
            raw_side.opposite()
        };
        let maker = self.maker_fee_rate.0.is_some();
        let (side, taker_or_maker, order, rate) = if maker {
            let rate = decimal("maker_fee_rate", self.maker_fee_rate)?;
            (parsed_side, TakerOrMaker::Maker, self.maker_order_id, rate)
        } else {
            let rate = decimal("taker_fee_rate", self.taker_fee_rate)?;
            (
                parsed_side.opposite(),
                TakerOrMaker::Taker,
                self.taker_order_id,
                rate,
            )
        };

        let mut trade = Trade::new(
            market.symbol.as_str(),
            time,
            side,
            price.to_f64(),
            amount.to_f64(),
        );
        let cost = price.checked_mul(amount);
        if let Some(cost) = cost {
            // Exact, as ccxt's safeTrade (Precise.stringMul); Trade::new's f64 product stays
            // only if this overflowed.
            trade.cost = Some(cost.to_f64());
        }
        trade.id = text("trade_id", self.trade_id)?.map(str::to_owned);
        trade.order = order.map(str::to_owned);
        trade.taker_or_maker = Some(taker_or_maker);
        // ccxt multiplies the rate by the cost *number's* text (Python's `str(float)`); the
        // shortest round-trip text of the f64 is the same value.
        let fee_cost = trade
            .cost
            .and_then(|cost| Decimal::parse(&cost.to_string()))
            .zip(rate)
            .and_then(|(cost, rate)| cost.checked_mul(rate));
        trade.fee = Some(Fee {
            cost: fee_cost.map(Decimal::to_f64),
            currency: Some(market.quote.clone()),
            rate: rate.map(Decimal::to_f64),
        });
        trade.info = Info::from_json(self.raw)?;
        Ok(trade)
    }
}

/// The `error` message.
#[derive(Deserialize)]
struct ErrorMessage<'a> {
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
}

/// Only the `type`, to pick the shape (serde skips the other keys without building them).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
}

/// At most 64 characters of exchange text, so an error never carries a huge input.
fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Reads one frame of the feed.
pub fn parse_message(text: &str) -> Result<Message<'_>, FeedError> {
    let envelope: Envelope<'_> = serde_json::from_str(text)?;
    let kind = envelope.kind.ok_or(FeedError::UnknownType(String::new()))?;
    Ok(match kind.as_ref() {
        "snapshot" => Message::Snapshot(serde_json::from_str(text)?),
        "l2update" => Message::L2Update(serde_json::from_str(text)?),
        "ticker" => {
            let mut ticker: TickerMessage<'_> = serde_json::from_str(text)?;
            ticker.raw = text;
            Message::Ticker(ticker)
        }
        "match" | "last_match" => {
            let mut trade: MatchMessage<'_> = serde_json::from_str(text)?;
            trade.raw = text;
            Message::Match(trade)
        }
        "subscriptions" => Message::Subscriptions(serde_json::from_str(text)?),
        "heartbeat" => Message::Heartbeat(serde_json::from_str(text)?),
        "error" => {
            let error: ErrorMessage<'_> = serde_json::from_str(text)?;
            return Err(FeedError::Refused {
                message: short(error.message.as_deref().unwrap_or_default()),
                reason: error.reason.as_deref().map(short),
            });
        }
        other => return Err(FeedError::UnknownType(short(other))),
    })
}
