//! Binance combined-stream messages (`{"stream":"nknusdt@bookTicker","data":{...}}`) turned
//! into ccxt structures, exactly as ccxt's `binance` (pro) parsers make them:
//!
//! | stream | ccxt | ccxt's parser |
//! |---|---|---|
//! | `<s>@depth`, `@depth@100ms`, `@depth@1000ms` | [`DepthUpdate`] for [`DepthSync`](super::DepthSync) | `handleOrderBook` |
//! | `<s>@bookTicker` | Ticker with bid, ask and their volumes | `handleBidsAsks` → `parseWsTicker` |
//! | `<s>@aggTrade`, `<s>@trade` | Trade | `handleTrade` → `parseWsTrade` → `parseTrade` |
//! | `<s>@kline_<interval>` | OHLCV `[t, o, h, l, c, v]` of `k` | `handleOHLCV` |
//! | `<s>@ticker` (`24hrTicker`) | Ticker | `handleTickers` → `parseWsTicker` |
//!
//! The figures ccxt derives with its exact string arithmetic (a trade's cost, a ticker's
//! average) are derived the same way here ([`Decimal`]), so the numbers are ccxt's to the last
//! bit. Anything else (bad JSON, a stream we do not parse, an unknown market, a malformed
//! field) is a [`StreamError`], never a panic and never a half-filled structure.

use std::borrow::Cow;

use rpc_crypto_proto::ccxt::{Fee, Info, Ohlcv, Side, Ticker, Trade};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::depth::{DepthError, DepthUpdate};
use super::markets::Markets;
use crate::adapters::decimal::{omit_zero, Decimal, DIV_PRECISION};

/// Why a stream message gave no ccxt structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The text is not JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// JSON, but no `{"stream", "data"}` envelope (e.g. a subscription's `{"result":null}`).
    #[error("not a combined stream message")]
    NotStream,
    /// A stream this adapter does not parse.
    #[error("unknown stream {0:?}")]
    UnknownStream(String),
    /// A market id missing from the market list.
    #[error("unknown market {0:?}")]
    UnknownMarket(String),
    /// A field missing or not of its form.
    #[error("malformed {kind} message: {reason}")]
    Malformed {
        /// The stream kind (`bookTicker`, `aggTrade`, ...).
        kind: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A malformed depth update.
    #[error(transparent)]
    Depth(#[from] DepthError),
}

/// A candle of a kline stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Kline {
    /// The ccxt symbol.
    pub symbol: String,
    /// ccxt's timeframe (Binance's interval, `1m`, `1h`, `1M` ...: ccxt uses the same names).
    pub timeframe: String,
    /// Whether the candle is final (`x`); an open candle is sent again as it grows.
    pub closed: bool,
    /// `[t, o, h, l, c, v]`.
    pub candle: Ohlcv,
}

/// The ccxt content of one stream message.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A diff-depth event, for the symbol's [`DepthSync`](super::DepthSync).
    Depth(DepthUpdate),
    /// Best bid and ask (`bookTicker`).
    BookTicker(Ticker),
    /// A public trade (`aggTrade` or `trade`).
    Trade(Trade),
    /// A candle (`kline_<interval>`).
    Kline(Kline),
    /// The 24-hour statistics (`24hrTicker`).
    Ticker(Ticker),
}

/// One parsed combined-stream message.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMessage {
    /// The stream name as Binance sent it (`nknusdt@depth@100ms`).
    pub stream: String,
    /// The ccxt symbol of the market.
    pub symbol: String,
    /// What it says.
    pub event: StreamEvent,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Parses one message of a combined stream (`/stream?streams=...`).
pub fn parse_message(text: &str, markets: &Markets) -> Result<StreamMessage, StreamError> {
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            StreamError::NotStream
        } else {
            StreamError::Json(e.to_string())
        }
    })?;
    let stream = envelope.stream.as_ref();
    let kind = stream.split_once('@').map_or("", |(_, kind)| kind);
    let data = envelope.data;
    let (symbol, event) = match kind {
        "depth" | "depth@100ms" | "depth@1000ms" => {
            let update = DepthUpdate::parse(data.get())?;
            (
                symbol_of(markets, &update.symbol_id)?,
                StreamEvent::Depth(update),
            )
        }
        "bookTicker" => {
            let ticker = book_ticker(data, markets)?;
            (ticker.symbol.clone(), StreamEvent::BookTicker(ticker))
        }
        "aggTrade" | "trade" => {
            let trade = trade(data, markets)?;
            (trade.symbol.clone(), StreamEvent::Trade(trade))
        }
        "ticker" => {
            let ticker = ticker_24h(data, markets)?;
            (ticker.symbol.clone(), StreamEvent::Ticker(ticker))
        }
        kline if kline.starts_with("kline_") => {
            let kline = parse_kline(data, markets)?;
            (kline.symbol.clone(), StreamEvent::Kline(kline))
        }
        _ => {
            return Err(StreamError::UnknownStream(
                stream.chars().take(64).collect(),
            ))
        }
    };
    Ok(StreamMessage {
        stream: stream.to_owned(),
        symbol,
        event,
    })
}

/// Reads a `data` object, naming the stream kind in the error.
fn read<'a, T: Deserialize<'a>>(data: &'a RawValue, kind: &'static str) -> Result<T, StreamError> {
    serde_json::from_str(data.get()).map_err(|e| StreamError::Malformed {
        kind,
        reason: e.to_string(),
    })
}

/// A decimal field, exactly.
fn dec(
    text: Option<&str>,
    kind: &'static str,
    field: &str,
) -> Result<Option<Decimal>, StreamError> {
    text.map(|t| {
        Decimal::parse(t).ok_or_else(|| StreamError::Malformed {
            kind,
            reason: format!(
                "{field} is not a decimal: {:?}",
                t.chars().take(64).collect::<String>()
            ),
        })
    })
    .transpose()
}

fn f64_of(value: Option<Decimal>) -> Option<f64> {
    value.map(Decimal::to_f64)
}

fn symbol_of(markets: &Markets, id: &str) -> Result<String, StreamError> {
    markets
        .symbol_of(id)
        .map(str::to_owned)
        .ok_or_else(|| StreamError::UnknownMarket(id.chars().take(32).collect()))
}

/// The fields of `bookTicker` and `24hrTicker` that ccxt's `parseWsTicker` reads.
#[derive(Deserialize)]
struct WireTicker<'a> {
    #[serde(rename = "s", borrow)]
    symbol: Cow<'a, str>,
    #[serde(rename = "E")]
    event_time: Option<i64>,
    #[serde(rename = "C")]
    close_time: Option<i64>,
    #[serde(rename = "h", borrow)]
    high: Option<Cow<'a, str>>,
    #[serde(rename = "l", borrow)]
    low: Option<Cow<'a, str>>,
    #[serde(rename = "b", borrow)]
    bid: Option<Cow<'a, str>>,
    #[serde(rename = "B", borrow)]
    bid_volume: Option<Cow<'a, str>>,
    #[serde(rename = "a", borrow)]
    ask: Option<Cow<'a, str>>,
    #[serde(rename = "A", borrow)]
    ask_volume: Option<Cow<'a, str>>,
    #[serde(rename = "w", borrow)]
    vwap: Option<Cow<'a, str>>,
    #[serde(rename = "o", borrow)]
    open: Option<Cow<'a, str>>,
    #[serde(rename = "c", borrow)]
    last: Option<Cow<'a, str>>,
    #[serde(rename = "x", borrow)]
    previous_close: Option<Cow<'a, str>>,
    #[serde(rename = "p", borrow)]
    change: Option<Cow<'a, str>>,
    #[serde(rename = "P", borrow)]
    percentage: Option<Cow<'a, str>>,
    #[serde(rename = "v", borrow)]
    base_volume: Option<Cow<'a, str>>,
    #[serde(rename = "q", borrow)]
    quote_volume: Option<Cow<'a, str>>,
}

/// ccxt's `parseWsTicker` then `safeTicker`, for both ticker streams.
fn parse_ticker(
    data: &RawValue,
    markets: &Markets,
    kind: &'static str,
    timestamp: fn(&WireTicker<'_>) -> Option<i64>,
) -> Result<Ticker, StreamError> {
    let wire: WireTicker<'_> = read(data, kind)?;
    let d = |text: &Option<Cow<'_, str>>, field| dec(text.as_deref(), kind, field);
    let open = omit_zero(d(&wire.open, "o")?);
    let close = omit_zero(d(&wire.last, "c")?);
    let change = d(&wire.change, "p")?;
    let percentage = omit_zero(d(&wire.percentage, "P")?);
    let base_volume = d(&wire.base_volume, "v")?;
    let quote_volume = d(&wire.quote_volume, "q")?;
    let vwap = match d(&wire.vwap, "w")? {
        Some(vwap) => Some(vwap),
        // safeTicker: quoteVolume / baseVolume when the exchange gives no vwap.
        None => omit_zero(quote_volume)
            .zip(base_volume)
            .and_then(|(q, b)| q.checked_div(b, DIV_PRECISION)),
    };
    // safeTicker's derivations, for what the exchange left out (Binance's 24hrTicker gives
    // change and percentage; the average is always derived, at the market's tick precision).
    let change = change.or_else(|| close.zip(open).and_then(|(c, o)| c.checked_sub(o)));
    let percentage = percentage.or_else(|| {
        change
            .zip(open)
            .and_then(|(change, open)| change.percent_of(open))
    });
    // Truncated to the market's tick decimals (ccxt's `Precise` default without a tick size).
    let precision = markets
        .price_decimals(&wire.symbol)
        .unwrap_or(DIV_PRECISION);
    let average = open.zip(close).and_then(|(o, c)| o.average(c, precision));
    let mut ticker = Ticker::new(symbol_of(markets, &wire.symbol)?, timestamp(&wire));
    ticker.high = f64_of(omit_zero(d(&wire.high, "h")?));
    ticker.low = f64_of(omit_zero(d(&wire.low, "l")?));
    ticker.bid = f64_of(omit_zero(d(&wire.bid, "b")?));
    ticker.bid_volume = f64_of(d(&wire.bid_volume, "B")?);
    ticker.ask = f64_of(omit_zero(d(&wire.ask, "a")?));
    ticker.ask_volume = f64_of(d(&wire.ask_volume, "A")?);
    ticker.vwap = f64_of(vwap);
    ticker.open = f64_of(open);
    ticker.close = f64_of(close);
    ticker.last = f64_of(close);
    ticker.previous_close = f64_of(d(&wire.previous_close, "x")?);
    ticker.change = f64_of(change);
    ticker.percentage = f64_of(percentage);
    ticker.average = f64_of(average);
    ticker.base_volume = f64_of(base_volume);
    ticker.quote_volume = f64_of(quote_volume);
    ticker.info = Info::from(data);
    Ok(ticker)
}

/// `bookTicker`: bid, ask and their volumes only (a spot `bookTicker` has no time either).
fn book_ticker(data: &RawValue, markets: &Markets) -> Result<Ticker, StreamError> {
    // ccxt: "take the event timestamp, if available, for spot tickers it is not".
    parse_ticker(data, markets, "bookTicker", |w| w.event_time)
}

/// `24hrTicker`: ccxt takes the statistics' close time `C` as the ticker's time.
fn ticker_24h(data: &RawValue, markets: &Markets) -> Result<Ticker, StreamError> {
    parse_ticker(data, markets, "24hrTicker", |w| {
        w.close_time.or(w.event_time)
    })
}

/// A trade or order id: a number on Binance's streams and spot API, a string elsewhere; ccxt
/// reads it as text either way (`safeString`).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Id<'a> {
    Unsigned(u64),
    Signed(i64),
    Text(#[serde(borrow)] Cow<'a, str>),
}

impl Id<'_> {
    /// The id's text.
    pub(super) fn into_string(self) -> String {
        match self {
            Id::Unsigned(n) => n.to_string(),
            Id::Signed(n) => n.to_string(),
            Id::Text(t) => t.into_owned(),
        }
    }
}

#[derive(Deserialize)]
struct WireTrade<'a> {
    #[serde(rename = "s", borrow)]
    symbol: Cow<'a, str>,
    /// Trade id (`trade` stream).
    #[serde(rename = "t", borrow)]
    trade_id: Option<Id<'a>>,
    /// Aggregate trade id (`aggTrade`); on the `trade` stream, the seller's order id.
    #[serde(rename = "a", borrow)]
    agg_id: Option<Id<'a>>,
    #[serde(rename = "p", borrow)]
    price: Cow<'a, str>,
    #[serde(rename = "q", borrow)]
    quantity: Cow<'a, str>,
    #[serde(rename = "T")]
    time: Option<i64>,
    #[serde(rename = "m")]
    buyer_is_maker: bool,
}

/// `aggTrade` and `trade`: ccxt's `parseTrade` (its `parseWsTrade` hands public trades on).
fn trade(data: &RawValue, markets: &Markets) -> Result<Trade, StreamError> {
    const KIND: &str = "trade";
    let wire: WireTrade<'_> = read(data, KIND)?;
    let price = dec(Some(&wire.price), KIND, "p")?.unwrap_or(Decimal::ZERO);
    let amount = dec(Some(&wire.quantity), KIND, "q")?.unwrap_or(Decimal::ZERO);
    // The buyer made the market, so the taker sold ("reversed intentionally", ccxt says).
    let side = if wire.buyer_is_maker {
        Side::Sell
    } else {
        Side::Buy
    };
    let mut trade = Trade::new(
        symbol_of(markets, &wire.symbol)?,
        wire.time,
        side,
        price.to_f64(),
        amount.to_f64(),
    );
    // ccxt's `safeString_n(['t', 'a', ...])`: the trade id first.
    trade.id = wire.trade_id.or(wire.agg_id).map(Id::into_string);
    trade.cost = Some(
        price
            .checked_mul(amount)
            .map_or(trade.price * trade.amount, Decimal::to_f64),
    );
    // ccxt writes an empty fee object, not null, when the trade carries none.
    trade.fee = Some(Fee::default());
    trade.info = Info::from(data);
    Ok(trade)
}

#[derive(Deserialize)]
struct WireKlineEvent<'a> {
    #[serde(rename = "k", borrow)]
    kline: WireKline<'a>,
}

#[derive(Deserialize)]
struct WireKline<'a> {
    #[serde(rename = "s", borrow)]
    symbol: Cow<'a, str>,
    #[serde(rename = "t")]
    open_time: i64,
    #[serde(rename = "i", borrow)]
    interval: Cow<'a, str>,
    #[serde(rename = "o", borrow)]
    open: Cow<'a, str>,
    #[serde(rename = "h", borrow)]
    high: Cow<'a, str>,
    #[serde(rename = "l", borrow)]
    low: Cow<'a, str>,
    #[serde(rename = "c", borrow)]
    close: Cow<'a, str>,
    #[serde(rename = "v", borrow)]
    volume: Cow<'a, str>,
    #[serde(rename = "x", default)]
    closed: bool,
}

/// `kline_<interval>`: ccxt's `handleOHLCV` reads `[t, o, h, l, c, v]` of `k`.
fn parse_kline(data: &RawValue, markets: &Markets) -> Result<Kline, StreamError> {
    const KIND: &str = "kline";
    let wire: WireKlineEvent<'_> = read(data, KIND)?;
    let k = wire.kline;
    let number = |text: &str, field| -> Result<f64, StreamError> {
        Ok(dec(Some(text), KIND, field)?.map_or(0.0, Decimal::to_f64))
    };
    Ok(Kline {
        symbol: symbol_of(markets, &k.symbol)?,
        timeframe: k.interval.into_owned(),
        closed: k.closed,
        candle: Ohlcv::new(
            k.open_time,
            number(&k.open, "o")?,
            number(&k.high, "h")?,
            number(&k.low, "l")?,
            number(&k.close, "c")?,
            number(&k.volume, "v")?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markets() -> Markets {
        Markets::from_exchange_info(
            r#"{"symbols":[{"symbol":"NKNUSDT","status":"TRADING","baseAsset":"NKN",
            "quoteAsset":"USDT","filters":[{"filterType":"PRICE_FILTER","minPrice":"0.0001",
            "maxPrice":"1000","tickSize":"0.00010000"}]}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn errors_are_typed() {
        let m = markets();
        assert!(matches!(parse_message("{", &m), Err(StreamError::Json(_))));
        assert!(matches!(parse_message("", &m), Err(StreamError::Json(_))));
        assert_eq!(
            parse_message(r#"{"result":null,"id":1}"#, &m),
            Err(StreamError::NotStream)
        );
        assert_eq!(
            parse_message(r#"{"stream":"nknusdt@depth5","data":{}}"#, &m),
            Err(StreamError::UnknownStream("nknusdt@depth5".into()))
        );
        assert_eq!(
            parse_message(r#"{"stream":"nope","data":{}}"#, &m),
            Err(StreamError::UnknownStream("nope".into()))
        );
        let unknown = r#"{"stream":"xyzusdt@bookTicker","data":{"u":1,"s":"XYZUSDT","b":"1","B":"1","a":"2","A":"1"}}"#;
        assert_eq!(
            parse_message(unknown, &m),
            Err(StreamError::UnknownMarket("XYZUSDT".into()))
        );
        let bad_price = r#"{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","s":"NKNUSDT","a":1,"p":"1e5","q":"1","T":1,"m":true}}"#;
        assert!(matches!(
            parse_message(bad_price, &m),
            Err(StreamError::Malformed { kind: "trade", .. })
        ));
        let missing = r#"{"stream":"nknusdt@kline_1m","data":{"e":"kline","s":"NKNUSDT"}}"#;
        assert!(matches!(
            parse_message(missing, &m),
            Err(StreamError::Malformed { kind: "kline", .. })
        ));
        let bad_depth = r#"{"stream":"nknusdt@depth","data":{"s":"NKNUSDT","U":1,"u":2,"b":[["x","1"]],"a":[]}}"#;
        assert!(matches!(
            parse_message(bad_depth, &m),
            Err(StreamError::Depth(_))
        ));
    }

    #[test]
    fn zero_prices_are_null_as_in_ccxt() {
        let m = markets();
        let text = r#"{"stream":"nknusdt@bookTicker","data":{"u":1,"s":"NKNUSDT","b":"0.00000000","B":"0.00000000","a":"0.35","A":"3"}}"#;
        let StreamEvent::BookTicker(t) = parse_message(text, &m).unwrap().event else {
            panic!("not a book ticker");
        };
        assert_eq!((t.bid, t.bid_volume, t.ask), (None, Some(0.0), Some(0.35)));
    }

    proptest::proptest! {
        /// Any text, and any byte of a real message replaced, gives a result or an error.
        #[test]
        fn never_panics(junk in "\\PC{0,200}", at in 0usize..200, with in proptest::char::any()) {
            let m = markets();
            let _ = parse_message(&junk, &m);
            let real = r#"{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,"p":"0.35280000","q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,"m":false,"M":true}}"#;
            let mut chars: Vec<char> = real.chars().collect();
            let i = at % chars.len();
            chars[i] = with;
            let _ = parse_message(&chars.into_iter().collect::<String>(), &m);
        }
    }
}
