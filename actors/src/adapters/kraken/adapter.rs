//! The Kraken adapter actor: Kraken's public market data (WebSocket v2 by default, v1 on request)
//! on the broker's channels, normalized to ccxt, and the public `exchange.*` calls.
//!
//! - At start it reads the market list (`GET {rest_url}/0/public/AssetPairs`), retrying with a
//!   doubling backoff (1 s to 60 s) and announcing `down` on `notifications` at the first failure
//!   of a streak; then `up`.
//! - The Router's [`Demand`] for `book:kraken:<symbol>`, `ticker:kraken:<symbol>`,
//!   `trades:kraken:<symbol>` and (v2) `ohlcv:kraken:<symbol>:<timeframe>` (ccxt symbols,
//!   `BTC/USD`) makes the wanted set, which the [`Upstream`] connection turns into Kraken
//!   `subscribe`/`unsubscribe` requests through [`KrakenFeed`]: v2 `{"method":"subscribe",...}`
//!   with v2 symbols (`BTC/USD`), or v1 `{"event":"subscribe",...}` with wsnames (`XBT/USD`). A
//!   channel of another kind, of a timeframe Kraken has not, or of a symbol the market list does
//!   not know is warned about once, announced (`channel_error`) and never published.
//! - Books: a [`KrakenBook`] per wanted pair, rebuilt from Kraken's snapshot after every connect,
//!   checked against Kraken's CRC32 checksum (v1: every update; v2: the snapshot and every
//!   update, numbers written with the pair's decimals), the top `publish_depth` levels published
//!   as a ccxt `OrderBook` after each. A mismatch (or an update before the snapshot) stops that
//!   pair's publications, is announced (`resyncing`), and the pair's book is unsubscribed and,
//!   once Kraken confirms, subscribed again, which brings a fresh snapshot (then `up` again). If
//!   no snapshot comes within `heartbeat_timeout`, the connection is made again.
//! - Tickers and trades are published as ccxt `Ticker`s and `Trade`s (one publication a trade);
//!   v2 candles as ccxt OHLCV (the current candle of a snapshot, then each update).
//! - A refused subscription (v1 `subscriptionStatus` `error`, v2 `"success":false`) is logged and
//!   announced once; it is asked again only on the next connection. Malformed or unknown messages
//!   are counted and logged at most once a minute per kind.
//!
//! Notifications, all `{"type":"adapter","exchange":"kraken",...}` on `notifications`:
//! `"status":"up"`; `"status":"down","reason":..` (once per streak: market list failures, a lost
//! connection); `"status":"resyncing","symbol":..,"reason":..`; `"status":"channel_error",
//! "channel":..,"reason":..` (unknown symbol, kind or timeframe, refused subscription).
//!
//! `exchange.*`: `load_markets`; `fetch_order_book` from the live book when the pair's book is
//! subscribed and in sync, else `GET /0/public/Depth`; `fetch_ticker` from the last ticker when
//! subscribed, else `GET /0/public/Ticker`. Everything else is `NotSupported`: this adapter is
//! market data only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, error, info, warn};
use rpc_crypto_proto::ccxt::{ErrorKind, OrderBook, Ticker, Timestamp};
use rpc_crypto_proto::json::JsonText;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::book::{BookDelta, BookError, KrakenBook};
use super::markets::{KrakenMarkets, KrakenPair};
use super::v1::{
    parse_message, KrakenMessage, MessageError, SubscriptionState, SubscriptionStatus,
};
use super::v2::{parse_v2_message, V2Ack, V2Candle, V2Message};
use crate::adapters::contract::{ExchangeCall, ExchangeError, ExchangeMethod};
use crate::adapters::http::{self, HttpError};
use crate::adapters::truncated;
use crate::adapters::upstream::{Feed, Upstream, UpstreamEvent, UpstreamSettings};
use crate::channel::NOTIFICATIONS;
use crate::metrics::{metrics, ExchangeMetrics};
use crate::router::{Demand, Publish};
use crate::settings::duration;

/// The exchange's name in channels and `exchange.*` calls.
pub const NAME: &str = "kraken";
/// The book depths Kraken's `book` subscription takes (v1 and v2).
pub const BOOK_DEPTHS: [usize; 5] = [10, 25, 100, 500, 1000];
/// How often the adapter pings Kraken (v1 `{"event":"ping"}`, v2 `{"method":"ping"}`).
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
/// Kraken's WebSocket v2 endpoint (the default `ws_url`).
pub const V2_URL: &str = "wss://ws.kraken.com/v2";
/// Kraken's WebSocket v1 endpoint.
pub const V1_URL: &str = "wss://ws.kraken.com";
/// ccxt's kraken timeframes and the v2 `ohlc` intervals they name, in minutes (ccxt calls the
/// 21600-minute interval, 15 days, `2w`).
pub const TIMEFRAMES: [(&str, u32); 9] = [
    ("1m", 1),
    ("5m", 5),
    ("15m", 15),
    ("30m", 30),
    ("1h", 60),
    ("4h", 240),
    ("1d", 1440),
    ("1w", 10080),
    ("2w", 21600),
];
/// The market list may take this long and this much.
const MARKETS_TIMEOUT: Duration = Duration::from_secs(20);
const MARKETS_MAX_BODY: usize = 16 << 20;
/// A REST call of `exchange.*` may take this long and this much.
const REST_TIMEOUT: Duration = Duration::from_secs(10);
const REST_MAX_BODY: usize = 4 << 20;
/// The first wait before fetching the market list again; it doubles up to the maximum.
const RETRY_START: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// The longest `reason` in a notification, in bytes.
const MAX_REASON: usize = 256;
/// A rate-limited log line is written at most this often per kind.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// The largest `limit` of `fetch_order_book` (the live book), and of Kraken's REST `Depth`.
const MAX_LIMIT: u64 = 1000;
const REST_MAX_COUNT: usize = 500;

/// What a request is for: v1's `reqid` as is, which Kraken echoes in `subscriptionStatus`; in
/// v2's `req_id` with the channel (see [`v2_req_id`]).
const REQ_SUBSCRIBE: u64 = 1;
const REQ_UNSUBSCRIBE: u64 = 2;
const REQ_RESYNC_UNSUBSCRIBE: u64 = 3;
const REQ_RESYNC_SUBSCRIBE: u64 = 4;

/// Which of Kraken's WebSocket APIs the adapter speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedVersion {
    /// WebSocket v1 (`wss://ws.kraken.com`): books, tickers, trades.
    V1,
    /// WebSocket v2 (`wss://ws.kraken.com/v2`): books, tickers, trades and candles.
    #[default]
    V2,
}

impl FeedVersion {
    fn name(self) -> &'static str {
        match self {
            FeedVersion::V1 => "v1",
            FeedVersion::V2 => "v2",
        }
    }
}

/// The `[kraken]` config table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KrakenSettings {
    /// Run the Kraken adapter.
    pub enabled: bool,
    /// The WebSocket API spoken at `ws_url`: `"v2"` or `"v1"`.
    pub feed: FeedVersion,
    /// Kraken's WebSocket endpoint, of the `feed`'s version.
    pub ws_url: String,
    /// Kraken's REST API (market list, `fetch_order_book` and `fetch_ticker` fallbacks).
    pub rest_url: String,
    /// The depth of the book subscription: 10, 25, 100, 500 or 1000 levels per side.
    pub book_depth: usize,
    /// Levels per side in a `book:kraken:<symbol>` publication.
    pub publish_depth: usize,
    /// No message for this long: the connection is dead (Kraken sends a heartbeat every second
    /// when idle). Also how long a resync may wait for its snapshot before reconnecting.
    #[serde(with = "duration")]
    pub heartbeat_timeout: Duration,
}

impl Default for KrakenSettings {
    fn default() -> Self {
        KrakenSettings {
            enabled: false,
            feed: FeedVersion::V2,
            ws_url: V2_URL.to_owned(),
            rest_url: "https://api.kraken.com".to_owned(),
            book_depth: 100,
            publish_depth: 20,
            heartbeat_timeout: Duration::from_secs(10),
        }
    }
}

impl KrakenSettings {
    /// A problem with the settings, for config validation.
    pub fn check(&self) -> Result<(), String> {
        if !BOOK_DEPTHS.contains(&self.book_depth) {
            return Err(format!(
                "kraken: book_depth {} is not one of {BOOK_DEPTHS:?}",
                self.book_depth
            ));
        }
        if self.publish_depth == 0 {
            return Err("kraken: publish_depth must be at least 1".into());
        }
        if self.heartbeat_timeout.is_zero() {
            return Err("kraken: heartbeat_timeout must be above zero".into());
        }
        for (name, url) in [("ws_url", &self.ws_url), ("rest_url", &self.rest_url)] {
            let schemes: &[&str] = if name == "ws_url" {
                &["ws://", "wss://"]
            } else {
                &["http://", "https://"]
            };
            if !schemes.iter().any(|s| url.starts_with(s)) {
                return Err(format!(
                    "kraken: {name} must start with {}",
                    schemes.join(" or ")
                ));
            }
        }
        // Kraken's own hosts serve v1 at `/` and v2 at `/v2`: a mismatch would never subscribe.
        let rest = self.ws_url.split_once("://").map_or("", |(_, rest)| rest);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = host.split(':').next().unwrap_or(host);
        if matches!(host, "ws.kraken.com" | "beta-ws.kraken.com") {
            let path = path.trim_end_matches('/');
            let expected = match self.feed {
                FeedVersion::V2 if path != "v2" => Some(format!("wss://{host}/v2")),
                FeedVersion::V1 if !path.is_empty() => Some(format!("wss://{host}")),
                _ => None,
            };
            if let Some(expected) = expected {
                return Err(format!(
                    "kraken: ws_url {} is not Kraken's WebSocket {} endpoint (feed = {:?}): \
                     use {expected}",
                    self.ws_url,
                    self.feed.name(),
                    self.feed.name()
                ));
            }
        }
        Ok(())
    }

    /// The book depth to subscribe: the setting when Kraken takes it, else the next larger
    /// depth Kraken has (or 1000).
    fn subscription_depth(&self) -> usize {
        BOOK_DEPTHS
            .into_iter()
            .find(|&d| d >= self.book_depth)
            .unwrap_or(1000)
    }
}

/// What a channel streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `book:kraken:<symbol>`: Kraken's `book`.
    Book,
    /// `ticker:kraken:<symbol>`: Kraken's `ticker`.
    Ticker,
    /// `trades:kraken:<symbol>`: Kraken's `trade`.
    Trades,
    /// `ohlcv:kraken:<symbol>:<timeframe>`: Kraken's v2 `ohlc` of this interval (minutes).
    Ohlcv(u32),
}

/// ccxt's name of an `ohlc` interval (minutes).
pub fn timeframe(interval: u32) -> Option<&'static str> {
    TIMEFRAMES
        .iter()
        .find(|(_, minutes)| *minutes == interval)
        .map(|(name, _)| *name)
}

impl Kind {
    fn parse(text: &str) -> Option<Kind> {
        match text {
            "book" => Some(Kind::Book),
            "ticker" => Some(Kind::Ticker),
            "trades" => Some(Kind::Trades),
            _ => None,
        }
    }

    /// The first part of the broker's channel name.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Book => "book",
            Kind::Ticker => "ticker",
            Kind::Trades => "trades",
            Kind::Ohlcv(_) => "ohlcv",
        }
    }

    /// The subscription's `name` (v1) or `channel` (v2) at Kraken.
    fn kraken_name(self) -> &'static str {
        match self {
            Kind::Book => "book",
            Kind::Ticker => "ticker",
            Kind::Trades => "trade",
            Kind::Ohlcv(_) => "ohlc",
        }
    }

    fn from_kraken_name(name: &str) -> Option<Kind> {
        match name {
            "book" => Some(Kind::Book),
            "ticker" => Some(Kind::Ticker),
            "trade" => Some(Kind::Trades),
            _ => None,
        }
    }

    /// The kind's part of a v2 `req_id` (see [`v2_req_id`]).
    fn code(self) -> u64 {
        match self {
            Kind::Book => 1,
            Kind::Ticker => 2,
            Kind::Trades => 3,
            Kind::Ohlcv(interval) => 4 * 100_000 + u64::from(interval % 100_000),
        }
    }

    fn from_code(code: u64) -> Option<Kind> {
        match code {
            1 => Some(Kind::Book),
            2 => Some(Kind::Ticker),
            3 => Some(Kind::Trades),
            code if code / 100_000 == 4 => {
                let interval = u32::try_from(code % 100_000).ok()?;
                timeframe(interval).map(|_| Kind::Ohlcv(interval))
            }
            _ => None,
        }
    }

    /// The broker's channel of `symbol`.
    pub fn channel(self, symbol: &str) -> String {
        match self {
            Kind::Ohlcv(interval) => format!(
                "{}:{NAME}:{symbol}:{}",
                self.prefix(),
                timeframe(interval).unwrap_or("?")
            ),
            _ => format!("{}:{NAME}:{symbol}", self.prefix()),
        }
    }
}

/// The `req_id` of a v2 request: what it is for (`REQ_*`) and for which channel, so that each
/// answer, refusals included, names its channel: `purpose × 1 000 000 + kind`, the kind being 1
/// (book), 2 (ticker), 3 (trade) or 400 000 + the `ohlc` interval. At most 4 421 600: Kraken
/// wants an int32.
pub fn v2_req_id(purpose: u64, kind: Kind) -> u64 {
    purpose * 1_000_000 + kind.code()
}

/// What [`v2_req_id`] encoded: the purpose and the kind.
fn decode_v2_req_id(req_id: u64) -> (u64, Option<Kind>) {
    (req_id / 1_000_000, Kind::from_code(req_id % 1_000_000))
}

/// The kind and the ccxt symbol of a broker channel `<kind>:kraken:<symbol>`, as the v1 feed
/// serves them (no `ohlcv:`); not checked against the market list.
pub fn parse_channel(channel: &str) -> Result<(Kind, &str), String> {
    parse_channel_for(FeedVersion::V1, channel)
}

/// The kind and the ccxt symbol of a broker channel as the `feed` serves them: v2 also
/// `ohlcv:kraken:<symbol>:<timeframe>` of ccxt's kraken timeframes; not checked against the
/// market list.
pub fn parse_channel_for(feed: FeedVersion, channel: &str) -> Result<(Kind, &str), String> {
    let mut parts = channel.splitn(3, ':');
    let (Some(kind), Some(exchange), Some(symbol)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("not a <kind>:kraken:<symbol> channel".into());
    };
    if exchange != NAME {
        return Err(format!("not a channel of {NAME}"));
    }
    if kind == "ohlcv" && feed == FeedVersion::V2 {
        let (symbol, name) = symbol
            .rsplit_once(':')
            .ok_or("not an ohlcv:kraken:<symbol>:<timeframe> channel")?;
        let interval = TIMEFRAMES
            .iter()
            .find(|(tf, _)| *tf == name)
            .map(|(_, minutes)| *minutes)
            .ok_or_else(|| {
                let name: String = name.chars().take(32).collect();
                let known: Vec<&str> = TIMEFRAMES.iter().map(|(tf, _)| *tf).collect();
                format!(
                    "kraken has no timeframe {name:?} (it has {})",
                    known.join(", ")
                )
            })?;
        return Ok((Kind::Ohlcv(interval), symbol));
    }
    let kind = Kind::parse(kind).ok_or_else(|| {
        let kind: String = kind.chars().take(32).collect();
        match feed {
            FeedVersion::V1 => {
                format!("kraken publishes book, ticker and trades channels, not {kind:?}")
            }
            FeedVersion::V2 => {
                format!("kraken publishes book, ticker, trades and ohlcv channels, not {kind:?}")
            }
        }
    })?;
    Ok((kind, symbol))
}

/// One Kraken v1 request for `pairs` (wsnames) of one kind.
fn request(event: &str, reqid: u64, kind: Kind, pairs: &[&str], depth: usize) -> String {
    let subscription = match kind {
        Kind::Book => json!({"name": kind.kraken_name(), "depth": depth}),
        _ => json!({"name": kind.kraken_name()}),
    };
    json!({"event": event, "reqid": reqid, "pair": pairs, "subscription": subscription}).to_string()
}

/// One Kraken v2 request for `symbols` (v2 names) of one kind:
/// `{"method":"subscribe","params":{"channel":"book","depth":10,"symbol":["BTC/USD"]},
/// "req_id":1000001}`.
fn v2_request(method: &str, purpose: u64, kind: Kind, symbols: &[&str], depth: usize) -> String {
    let mut params = json!({"channel": kind.kraken_name(), "symbol": symbols});
    match kind {
        Kind::Book => params["depth"] = depth.into(),
        Kind::Ohlcv(interval) => params["interval"] = interval.into(),
        Kind::Ticker | Kind::Trades => {}
    }
    json!({"method": method, "params": params, "req_id": v2_req_id(purpose, kind)}).to_string()
}

/// Kraken's WebSocket as an [`Upstream`] feed: one connection, subscriptions by message, one
/// request per kind (and `ohlc` interval) naming every pair of that kind.
pub struct KrakenFeed {
    url: String,
    markets: Arc<KrakenMarkets>,
    depth: usize,
    version: FeedVersion,
}

impl KrakenFeed {
    /// A v1 feed of `url` whose channels' symbols are looked up in `markets`, books subscribed
    /// at `depth`.
    pub fn new(url: impl Into<String>, markets: Arc<KrakenMarkets>, depth: usize) -> Self {
        Self::with_version(FeedVersion::V1, url, markets, depth)
    }

    /// A v2 feed, otherwise as [`KrakenFeed::new`].
    pub fn v2(url: impl Into<String>, markets: Arc<KrakenMarkets>, depth: usize) -> Self {
        Self::with_version(FeedVersion::V2, url, markets, depth)
    }

    /// A feed of `version`.
    pub fn with_version(
        version: FeedVersion,
        url: impl Into<String>,
        markets: Arc<KrakenMarkets>,
        depth: usize,
    ) -> Self {
        KrakenFeed {
            url: url.into(),
            markets,
            depth,
            version,
        }
    }

    fn requests(&self, event: &str, purpose: u64, channels: &BTreeSet<String>) -> Vec<String> {
        let mut by_kind: BTreeMap<Kind, Vec<&str>> = BTreeMap::new();
        for channel in channels {
            let Ok((kind, symbol)) = parse_channel_for(self.version, channel) else {
                continue;
            };
            if let Some(pair) = self.markets.by_symbol(symbol) {
                let name = match self.version {
                    FeedVersion::V1 => &pair.ws_name,
                    FeedVersion::V2 => &pair.v2_name,
                };
                by_kind.entry(kind).or_default().push(name);
            }
        }
        by_kind
            .into_iter()
            .map(|(kind, names)| match self.version {
                FeedVersion::V1 => request(event, purpose, kind, &names, self.depth),
                FeedVersion::V2 => v2_request(event, purpose, kind, &names, self.depth),
            })
            .collect()
    }
}

impl Feed for KrakenFeed {
    fn url(&self, _: &BTreeSet<String>) -> String {
        self.url.clone()
    }

    fn subscribe(&self, channels: &BTreeSet<String>) -> Vec<String> {
        self.requests("subscribe", REQ_SUBSCRIBE, channels)
    }

    fn change(&self, added: &BTreeSet<String>, removed: &BTreeSet<String>) -> Option<Vec<String>> {
        let mut messages = self.requests("unsubscribe", REQ_UNSUBSCRIBE, removed);
        messages.extend(self.requests("subscribe", REQ_SUBSCRIBE, added));
        Some(messages)
    }

    fn ping(&self) -> Option<(Duration, String)> {
        let ping = match self.version {
            FeedVersion::V1 => r#"{"event":"ping"}"#,
            FeedVersion::V2 => r#"{"method":"ping"}"#,
        };
        Some((PING_INTERVAL, ping.to_owned()))
    }
}

/// What the adapter has counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KrakenStats {
    /// Text messages received.
    pub messages: u64,
    /// Book snapshots applied.
    pub snapshots: u64,
    /// Book updates applied (in sync).
    pub updates: u64,
    /// Kraken checksums that matched the book.
    pub checksums_verified: u64,
    /// Kraken checksums that did not.
    pub checksum_mismatches: u64,
    /// Resyncs started (mismatch, or an update without its snapshot).
    pub resyncs: u64,
    /// Resyncs that ended with a new snapshot.
    pub resyncs_done: u64,
    /// Publications on `book:`, `ticker:`, `trades:` and `ohlcv:` channels.
    pub book_publications: u64,
    pub ticker_publications: u64,
    pub trade_publications: u64,
    pub ohlcv_publications: u64,
    /// Data of channels nobody wants, or of books waiting for a snapshot.
    pub ignored: u64,
    /// Messages that could not be read, by kind.
    pub bad_messages: BTreeMap<&'static str, u64>,
    /// Subscriptions Kraken refused.
    pub refused: u64,
    /// Connections made and lost.
    pub connects: u64,
    pub disconnects: u64,
}

/// Asks the adapter for its [`KrakenStats`].
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "KrakenStats")]
pub struct GetKrakenStats;

/// The adapter's own health, as last announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Starting,
    Up,
    Down,
}

/// A demanded channel.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    /// Known once the market list is.
    Pending,
    /// Streamed; `refused` once Kraken refused it (not asked again until the next connection).
    Stream {
        kind: Kind,
        symbol: String,
        refused: bool,
    },
    /// Not a channel Kraken has (warned about once).
    Invalid,
}

/// A resync in progress.
#[derive(Debug, Clone, Copy)]
struct Resync {
    generation: u64,
    /// The unsubscribe was confirmed and the subscribe sent.
    subscribing: bool,
}

/// One wanted book.
struct PairBook {
    /// The pair's name in requests: its wsname (v1) or v2 name.
    name: String,
    /// The pair's price and amount decimals (the v2 checksum writes numbers with them).
    precision: (u32, u32),
    book: KrakenBook,
    resync: Option<Resync>,
    /// Kraken refused the subscription: updates are ignored until the next connection.
    refused: bool,
}

/// The answer to a subscribe or unsubscribe, of either version.
struct Ack<'m> {
    state: SubscriptionState,
    kind: Option<Kind>,
    pair: Option<&'m KrakenPair>,
    /// What our request was for (`REQ_*`), from the id Kraken echoed.
    purpose: Option<u64>,
    error: Option<String>,
}

impl<'m> Ack<'m> {
    fn from_v1(status: SubscriptionStatus, markets: &'m KrakenMarkets) -> Self {
        Ack {
            state: status.state,
            kind: status
                .subscription
                .as_deref()
                .and_then(Kind::from_kraken_name),
            pair: status
                .pair
                .as_deref()
                .and_then(|name| markets.by_ws_name(name).ok()),
            purpose: status.reqid,
            error: status.error_message,
        }
    }

    fn from_v2(ack: V2Ack, markets: &'m KrakenMarkets) -> Self {
        let (purpose, kind) = match ack.req_id.map(decode_v2_req_id) {
            Some((purpose, kind)) => (Some(purpose), kind),
            None => (None, None),
        };
        // Our own id names the channel; else what Kraken's `result` says.
        let kind = kind.or_else(|| match (ack.channel.as_deref(), ack.interval) {
            (Some("ohlc"), Some(interval)) => timeframe(interval).map(|_| Kind::Ohlcv(interval)),
            (Some(name), _) => Kind::from_kraken_name(name),
            (None, _) => None,
        });
        let state = match (ack.success, ack.method.as_str()) {
            (false, _) => SubscriptionState::Error,
            (true, "unsubscribe") => SubscriptionState::Unsubscribed,
            (true, _) => SubscriptionState::Subscribed,
        };
        Ack {
            state,
            kind,
            pair: ack
                .symbol
                .as_deref()
                .and_then(|name| markets.by_v2_name(name).ok()),
            purpose,
            error: ack.error,
        }
    }
}

/// A log line written at most once per [`LOG_EVERY`].
#[derive(Default)]
struct LogLimit {
    last: Option<Instant>,
    suppressed: u64,
}

/// The Kraken adapter actor.
pub struct KrakenAdapter {
    settings: KrakenSettings,
    publish: Recipient<Publish>,
    markets: Option<Arc<KrakenMarkets>>,
    upstream: Option<Upstream>,
    /// Channels demanded.
    wanted: BTreeMap<String, Want>,
    /// The channels last given to the upstream.
    streaming: BTreeSet<String>,
    /// The books of wanted `book:` channels, by ccxt symbol.
    books: HashMap<String, PairBook>,
    /// The last ticker of wanted `ticker:` channels, by ccxt symbol.
    tickers: HashMap<String, Ticker>,
    health: Health,
    /// Between a `Connected` and the next `Disconnected`.
    connected: bool,
    /// `up` is due at the first snapshot (or message) of the connection.
    up_pending: bool,
    market_failures: u32,
    flush_scheduled: bool,
    generation: u64,
    logs: HashMap<&'static str, LogLimit>,
    stats: KrakenStats,
    /// Its series in `/metrics`.
    metrics: ExchangeMetrics,
}

fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_START.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// The log kind of a message that could not be read.
fn error_kind(error: &MessageError) -> &'static str {
    match error {
        MessageError::Json(_) => "invalid JSON",
        MessageError::Shape(_) => "unexpected shape",
        MessageError::UnknownEvent(_) => "unknown event",
        MessageError::UnknownChannel(_) => "unsupported channel",
        MessageError::UnknownPair(_) => "unknown pair",
        MessageError::BadNumber(_) => "bad number",
        MessageError::BadField { .. } => "bad field",
    }
}

impl KrakenAdapter {
    /// An adapter publishing through `publish` (the Router). It starts reading the market list
    /// when started; register it with the Router for its [`Demand`]s.
    pub fn new(settings: KrakenSettings, publish: Recipient<Publish>) -> Self {
        if let Err(problem) = settings.check() {
            warn!(
                "{problem} (running with book depth {})",
                settings.subscription_depth()
            );
        }
        KrakenAdapter {
            settings,
            publish,
            markets: None,
            upstream: None,
            wanted: BTreeMap::new(),
            streaming: BTreeSet::new(),
            books: HashMap::new(),
            tickers: HashMap::new(),
            health: Health::Starting,
            connected: false,
            up_pending: false,
            market_failures: 0,
            flush_scheduled: false,
            generation: 0,
            logs: HashMap::new(),
            stats: KrakenStats::default(),
            metrics: metrics().exchange(NAME),
        }
    }

    fn rest_url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.rest_url.trim_end_matches('/'))
    }

    fn publish_depth(&self) -> usize {
        self.settings.publish_depth.max(1)
    }

    // ------------------------------------------------------------ publishing

    fn send_json(&self, channel: String, value: &impl Serialize) {
        match JsonText::serialize(value) {
            Ok(data) => self.publish.do_send(Publish::new(channel, data)),
            Err(error) => error!("kraken: {channel} not published: {error}"),
        }
    }

    fn announce(&self, mut notice: Value) {
        if let Value::Object(fields) = &mut notice {
            fields.insert("type".into(), "adapter".into());
            fields.insert("exchange".into(), NAME.into());
        }
        self.send_json(NOTIFICATIONS.to_owned(), &notice);
    }

    fn announce_up(&mut self) {
        self.health = Health::Up;
        self.up_pending = false;
        self.announce(json!({"status": "up"}));
    }

    fn announce_down(&mut self, reason: String) {
        if self.health == Health::Down {
            debug!("kraken: still down: {reason}");
            return;
        }
        warn!("kraken: down: {reason} (logged once until it is up again)");
        self.health = Health::Down;
        self.announce(json!({"status": "down", "reason": truncated(reason, MAX_REASON)}));
    }

    fn channel_error(&self, channel: &str, reason: &str) {
        self.announce(json!({
            "status": "channel_error",
            "channel": truncated(channel.to_owned(), MAX_REASON),
            "reason": truncated(reason.to_owned(), MAX_REASON),
        }));
    }

    /// Logs `message` at most once per [`LOG_EVERY`] for `kind`, saying how many were not.
    fn log_limited(&mut self, kind: &'static str, message: impl FnOnce() -> String) {
        let limit = self.logs.entry(kind).or_default();
        let now = Instant::now();
        if limit
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_EVERY)
        {
            limit.suppressed += 1;
            return;
        }
        let suppressed = std::mem::take(&mut limit.suppressed);
        limit.last = Some(now);
        if suppressed > 0 {
            warn!(
                "kraken: {} ({suppressed} more of this kind since the last)",
                message()
            );
        } else {
            warn!("kraken: {} (logged at most once a minute)", message());
        }
    }

    fn is_streamed(&self, kind: Kind, symbol: &str) -> bool {
        matches!(
            self.wanted.get(&kind.channel(symbol)),
            Some(Want::Stream { .. })
        )
    }

    // ------------------------------------------------------------ markets

    fn fetch_markets(&mut self, ctx: &mut Context<Self>) {
        let url = self.rest_url("/0/public/AssetPairs");
        let fetch = async move {
            let body = http::get(&url, MARKETS_TIMEOUT, MARKETS_MAX_BODY)
                .await
                .map_err(|e| format!("market list: {e}"))?;
            let text = std::str::from_utf8(&body).map_err(|_| "market list: not UTF-8")?;
            let markets = KrakenMarkets::from_asset_pairs(text).map_err(|e| e.to_string())?;
            if markets.is_empty() {
                return Err("market list: no markets".to_owned());
            }
            Ok(markets)
        };
        ctx.spawn(
            fetch
                .into_actor(self)
                .map(|result, act, ctx| act.markets_fetched(result, ctx)),
        );
    }

    fn markets_fetched(&mut self, result: Result<KrakenMarkets, String>, ctx: &mut Context<Self>) {
        let markets = match result {
            Ok(markets) => markets,
            Err(reason) => {
                self.market_failures = self.market_failures.saturating_add(1);
                let retry = retry_after(self.market_failures);
                self.announce_down(format!("{reason} (retrying in {retry:?})"));
                ctx.run_later(retry, |act, ctx| act.fetch_markets(ctx));
                return;
            }
        };
        info!(
            "kraken: {} markets ({} pairs skipped)",
            markets.len(),
            markets.skipped().len()
        );
        self.market_failures = 0;
        let markets = Arc::new(markets);
        let feed = KrakenFeed::with_version(
            self.settings.feed,
            self.settings.ws_url.clone(),
            markets.clone(),
            self.settings.subscription_depth(),
        );
        let settings = UpstreamSettings {
            heartbeat_timeout: self.settings.heartbeat_timeout,
            ..UpstreamSettings::default()
        };
        self.upstream = Some(Upstream::spawn(
            Arc::new(feed),
            settings,
            ctx.address().recipient(),
        ));
        self.markets = Some(markets);
        let pending: Vec<String> = self
            .wanted
            .iter()
            .filter(|(_, want)| **want == Want::Pending)
            .map(|(channel, _)| channel.clone())
            .collect();
        for channel in pending {
            self.start_channel(channel);
        }
        self.announce_up();
        self.schedule_flush(ctx);
    }

    // ------------------------------------------------------------ demand

    /// Takes a demanded channel once the market list is known.
    fn start_channel(&mut self, channel: String) {
        let Some(markets) = &self.markets else {
            self.wanted.insert(channel, Want::Pending);
            return;
        };
        let feed = self.settings.feed;
        let resolved = parse_channel_for(feed, &channel).and_then(|(kind, symbol)| {
            let pair = markets.by_symbol(symbol).ok_or_else(|| {
                let symbol: String = symbol.chars().take(64).collect();
                format!("unknown symbol {symbol:?}: not in Kraken's market list")
            })?;
            let name = match feed {
                FeedVersion::V1 => pair.ws_name.clone(),
                FeedVersion::V2 => pair.v2_name.clone(),
            };
            let precision = (pair.price_decimals, pair.amount_decimals);
            Ok((kind, pair.market.symbol.clone(), name, precision))
        });
        match resolved {
            Ok((kind, symbol, name, precision)) => {
                debug!("kraken: streaming {channel}");
                match kind {
                    Kind::Book => {
                        let book = self.new_book(&symbol, precision);
                        self.books.insert(
                            symbol.clone(),
                            PairBook {
                                name,
                                precision,
                                book,
                                resync: None,
                                refused: false,
                            },
                        );
                    }
                    Kind::Ticker | Kind::Trades | Kind::Ohlcv(_) => {}
                }
                self.wanted.insert(
                    channel,
                    Want::Stream {
                        kind,
                        symbol,
                        refused: false,
                    },
                );
            }
            Err(reason) => {
                warn!("kraken: {channel:?} is published by nobody: {reason}");
                self.channel_error(&channel, &reason);
                self.wanted.insert(channel, Want::Invalid);
            }
        }
    }

    fn stop_channel(&mut self, channel: &str) {
        if let Some(Want::Stream { kind, symbol, .. }) = self.wanted.remove(channel) {
            debug!("kraken: no longer streaming {channel}");
            match kind {
                Kind::Book => {
                    self.books.remove(&symbol);
                }
                Kind::Ticker => {
                    self.tickers.remove(&symbol);
                }
                Kind::Trades | Kind::Ohlcv(_) => {}
            }
        }
    }

    /// Gives the upstream the wanted set soon, once for all the demands that arrive together.
    fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(Duration::ZERO, |act, _| {
                act.flush_scheduled = false;
                act.flush();
            });
        }
    }

    fn flush(&mut self) {
        let Some(upstream) = &self.upstream else {
            return;
        };
        let channels: BTreeSet<String> = self
            .wanted
            .iter()
            .filter(|(_, want)| matches!(want, Want::Stream { .. }))
            .map(|(channel, _)| channel.clone())
            .collect();
        if channels == self.streaming {
            return;
        }
        if channels.is_empty() {
            // The upstream closes the connection without a `Disconnected`.
            self.connected = false;
        }
        upstream.set_channels(channels.clone());
        self.streaming = channels;
    }

    // ------------------------------------------------------------ upstream

    /// An empty book of `symbol` at the subscribed depth; a v2 book checksums its numbers with
    /// the pair's `precision` (price and amount decimals).
    fn new_book(&self, symbol: &str, precision: (u32, u32)) -> KrakenBook {
        let book = KrakenBook::new(symbol, self.settings.subscription_depth());
        match self.settings.feed {
            FeedVersion::V1 => book,
            FeedVersion::V2 => book.with_precision(precision.0, precision.1),
        }
    }

    /// A request about one pair's book, in the feed's version.
    fn book_request(&self, event: &str, purpose: u64, name: &str) -> String {
        let depth = self.settings.subscription_depth();
        match self.settings.feed {
            FeedVersion::V1 => request(event, purpose, Kind::Book, &[name], depth),
            FeedVersion::V2 => v2_request(event, purpose, Kind::Book, &[name], depth),
        }
    }

    fn reset_books(&mut self) {
        let fresh: Vec<(String, KrakenBook)> = self
            .books
            .iter()
            .map(|(symbol, pair)| (symbol.clone(), self.new_book(symbol, pair.precision)))
            .collect();
        for (symbol, book) in fresh {
            if let Some(pair) = self.books.get_mut(&symbol) {
                pair.book = book;
                pair.resync = None;
                pair.refused = false;
            }
        }
    }

    fn on_connected(&mut self, channels: &BTreeSet<String>) {
        if self.connected {
            // The channels changed on the live connection: the new books are empty already.
            debug!("kraken: now streaming {} channels", channels.len());
            return;
        }
        self.connected = true;
        self.stats.connects += 1;
        info!("kraken: connected, {} channels", channels.len());
        self.reset_books();
        // Channels refused on the last connection are asked once more on this one.
        for want in self.wanted.values_mut() {
            if let Want::Stream { refused, .. } = want {
                *refused = false;
            }
        }
        if self.health != Health::Up {
            self.up_pending = true;
        }
    }

    fn on_disconnected(&mut self, reason: String) {
        self.connected = false;
        self.up_pending = false;
        self.stats.disconnects += 1;
        self.metrics.reconnect();
        self.reset_books();
        self.announce_down(format!("connection: {reason}"));
    }

    fn on_message(&mut self, text: &str, ctx: &mut Context<Self>) {
        self.stats.messages += 1;
        let Some(markets) = self.markets.clone() else {
            return;
        };
        let snapshot = match self.settings.feed {
            FeedVersion::V1 => self.on_v1_message(text, &markets, ctx),
            FeedVersion::V2 => self.on_v2_message(text, &markets, ctx),
        };
        if self.up_pending && (snapshot || self.books.is_empty()) {
            info!("kraken: up again");
            self.announce_up();
        }
    }

    /// Counts and logs a message that could not be read.
    fn bad_message(&mut self, error: &MessageError) {
        let kind = error_kind(error);
        *self.stats.bad_messages.entry(kind).or_default() += 1;
        self.log_limited(kind, || format!("message ignored: {error}"));
    }

    /// Handles a v1 message; whether it was a snapshot that put a book in sync.
    fn on_v1_message(
        &mut self,
        text: &str,
        markets: &KrakenMarkets,
        ctx: &mut Context<Self>,
    ) -> bool {
        let message = match parse_message(text, markets) {
            Ok(message) => message,
            Err(error) => {
                self.bad_message(&error);
                return false;
            }
        };
        match message {
            KrakenMessage::Book(book) => {
                let symbol = book.pair.market.symbol.as_str();
                return self.on_book(symbol, book.snapshot, Some(book.depth), &book.delta, ctx);
            }
            KrakenMessage::Trades(trades) => self.publish_trades(trades),
            KrakenMessage::Ticker(ticker) => self.publish_ticker(*ticker),
            KrakenMessage::SubscriptionStatus(status) => {
                self.on_subscription(Ack::from_v1(status, markets));
            }
            KrakenMessage::SystemStatus(status) => self.system_status(&status.status),
            KrakenMessage::Heartbeat | KrakenMessage::Pong { .. } => {}
        }
        false
    }

    /// Handles a v2 message; whether it held a snapshot that put a book in sync.
    fn on_v2_message(
        &mut self,
        text: &str,
        markets: &KrakenMarkets,
        ctx: &mut Context<Self>,
    ) -> bool {
        let message = match parse_v2_message(text, markets) {
            Ok(message) => message,
            Err(error) => {
                self.bad_message(&error);
                return false;
            }
        };
        let mut snapshot = false;
        match message {
            V2Message::Book(books) => {
                for book in books {
                    let symbol = book.pair.market.symbol.as_str();
                    snapshot |= self.on_book(symbol, book.snapshot, None, &book.delta, ctx);
                }
            }
            V2Message::Trades(trades) => self.publish_trades(trades),
            V2Message::Tickers(tickers) => {
                for ticker in tickers {
                    self.publish_ticker(ticker);
                }
            }
            V2Message::Ohlc { snapshot, candles } => self.publish_candles(snapshot, candles),
            V2Message::Ack(ack) => self.on_subscription(Ack::from_v2(ack, markets)),
            V2Message::Status { system } => self.system_status(&system),
            V2Message::Heartbeat | V2Message::Pong { .. } => {}
        }
        snapshot
    }

    fn system_status(&mut self, status: &str) {
        if status == "online" {
            debug!("kraken: system status online");
        } else {
            let status = status.to_owned();
            self.log_limited("system status", || format!("system status {status:?}"));
        }
    }

    fn publish_trades(&mut self, trades: Vec<rpc_crypto_proto::ccxt::Trade>) {
        for trade in trades {
            if self.is_streamed(Kind::Trades, &trade.symbol) {
                self.stats.trade_publications += 1;
                self.send_json(Kind::Trades.channel(&trade.symbol), &trade);
                self.metrics.published(trade.timestamp.0);
            } else {
                self.stats.ignored += 1;
            }
        }
    }

    fn publish_ticker(&mut self, ticker: Ticker) {
        let symbol = ticker.symbol.clone();
        if self.is_streamed(Kind::Ticker, &symbol) {
            self.stats.ticker_publications += 1;
            self.send_json(Kind::Ticker.channel(&symbol), &ticker);
            self.metrics.published(ticker.timestamp.0);
            self.tickers.insert(symbol, ticker);
        } else {
            self.stats.ignored += 1;
        }
    }

    /// Publishes candles on their `ohlcv:` channels: each candle of an update; of a snapshot
    /// (Kraken's recent candles, oldest first) only the newest of each channel, the current one.
    fn publish_candles(&mut self, snapshot: bool, candles: Vec<V2Candle>) {
        let mut newest: BTreeMap<String, usize> = BTreeMap::new();
        let channels: Vec<String> = candles
            .iter()
            .map(|c| Kind::Ohlcv(c.interval).channel(&c.symbol))
            .collect();
        if snapshot {
            for (index, channel) in channels.iter().enumerate() {
                newest.insert(channel.clone(), index);
            }
        }
        for (index, (candle, channel)) in candles.iter().zip(channels).enumerate() {
            let streamed = timeframe(candle.interval).is_some()
                && self.is_streamed(Kind::Ohlcv(candle.interval), &candle.symbol);
            if !streamed || (snapshot && newest.get(&channel) != Some(&index)) {
                self.stats.ignored += 1;
                continue;
            }
            self.stats.ohlcv_publications += 1;
            self.send_json(channel, &candle.candle);
        }
    }

    /// Applies a book message of `symbol` (`depth`: v1's, from the channel name; v2's is the
    /// subscription's); whether it was a snapshot that put a book in sync.
    fn on_book(
        &mut self,
        symbol: &str,
        snapshot: bool,
        depth: Option<usize>,
        delta: &BookDelta,
        ctx: &mut Context<Self>,
    ) -> bool {
        enum Outcome {
            Published { book: OrderBook, resynced: bool },
            Ignored,
            Resync { reason: String, mismatch: bool },
        }
        let publish_depth = self.publish_depth();
        let checked = delta.checksum.is_some();
        // The book a snapshot makes.
        let fresh = match self.books.get(symbol) {
            Some(pair) if snapshot => Some(match depth {
                // Kraken's largest depth bounds the book whatever the message says.
                Some(depth) => KrakenBook::new(symbol, depth.min(1000)),
                None => self.new_book(symbol, pair.precision),
            }),
            _ => None,
        };
        let outcome = match (self.books.get_mut(symbol), fresh) {
            (None, _) => Outcome::Ignored,
            (Some(pair), Some(mut book)) => {
                let result = book.apply_snapshot(delta);
                pair.book = book;
                pair.refused = false;
                match result {
                    Ok(()) => Outcome::Published {
                        book: pair.book.to_ccxt(publish_depth),
                        resynced: pair.resync.take().is_some(),
                    },
                    Err(error) => Outcome::Resync {
                        reason: format!("snapshot: {error}"),
                        mismatch: true,
                    },
                }
            }
            // Waiting for the new snapshot, or refused.
            (Some(pair), None) if pair.resync.is_some() || pair.refused => Outcome::Ignored,
            (Some(pair), None) => match pair.book.apply_update(delta) {
                Ok(()) => Outcome::Published {
                    book: pair.book.to_ccxt(publish_depth),
                    resynced: false,
                },
                Err(error @ BookError::ChecksumMismatch { .. }) => Outcome::Resync {
                    reason: error.to_string(),
                    mismatch: true,
                },
                Err(BookError::NotSynced) => Outcome::Resync {
                    reason: "book update before its snapshot".to_owned(),
                    mismatch: false,
                },
            },
        };
        match outcome {
            Outcome::Ignored => {
                self.stats.ignored += 1;
                false
            }
            Outcome::Resync { reason, mismatch } => {
                self.stats.checksum_mismatches += u64::from(mismatch);
                if mismatch {
                    self.metrics.checksum_failure(symbol);
                }
                self.resync(symbol.to_owned(), reason, ctx);
                false
            }
            Outcome::Published { book, resynced } => {
                if snapshot {
                    self.stats.snapshots += 1;
                } else {
                    self.stats.updates += 1;
                }
                self.stats.checksums_verified += u64::from(checked);
                self.stats.book_publications += 1;
                self.send_json(Kind::Book.channel(symbol), &book);
                self.metrics.published(book.timestamp.0);
                if resynced {
                    self.stats.resyncs_done += 1;
                    info!("kraken: {symbol} book in sync again");
                    let resyncing = self.books.values().any(|p| p.resync.is_some());
                    if !resyncing && self.health == Health::Up && !self.up_pending {
                        self.announce_up();
                    }
                }
                snapshot
            }
        }
    }

    /// Takes `symbol`'s book out of publication and asks Kraken for it again: unsubscribe now,
    /// subscribe once Kraken confirms; a connection made again if no snapshot comes in time.
    fn resync(&mut self, symbol: String, reason: String, ctx: &mut Context<Self>) {
        self.generation += 1;
        let generation = self.generation;
        let Some((name, precision)) = self
            .books
            .get(&symbol)
            .map(|pair| (pair.name.clone(), pair.precision))
        else {
            return;
        };
        let empty = self.new_book(&symbol, precision);
        let unsubscribe = self.book_request("unsubscribe", REQ_RESYNC_UNSUBSCRIBE, &name);
        let Some(pair) = self.books.get_mut(&symbol) else {
            return;
        };
        pair.book = empty;
        pair.resync = Some(Resync {
            generation,
            subscribing: false,
        });
        self.stats.resyncs += 1;
        self.metrics.resync(&symbol);
        warn!("kraken: {symbol} book out of sync ({reason}): resubscribing");
        self.announce(json!({
            "status": "resyncing",
            "symbol": symbol,
            "reason": truncated(reason, MAX_REASON),
        }));
        if let Some(upstream) = &self.upstream {
            upstream.send(unsubscribe);
        }
        let wait = self.settings.heartbeat_timeout;
        ctx.run_later(wait, move |act, _| {
            let overdue = act
                .books
                .get(&symbol)
                .and_then(|pair| pair.resync)
                .is_some_and(|resync| resync.generation == generation);
            if overdue {
                warn!("kraken: no {symbol} book snapshot within {wait:?}: connecting again");
                if let Some(upstream) = &act.upstream {
                    upstream.reconnect();
                }
            }
        });
    }

    fn on_subscription(&mut self, ack: Ack<'_>) {
        let (Some(kind), Some(pair)) = (ack.kind, ack.pair) else {
            if ack.state == SubscriptionState::Error {
                let message = ack.error.clone().unwrap_or_default();
                self.log_limited("subscription error", || {
                    format!("request refused: {message:?}")
                });
            }
            return;
        };
        let symbol = pair.market.symbol.clone();
        let channel = kind.channel(&symbol);
        let resync = match kind {
            Kind::Book => self.books.get(&symbol).and_then(|p| p.resync),
            _ => None,
        };
        match ack.state {
            SubscriptionState::Subscribed => debug!("kraken: subscribed to {channel}"),
            SubscriptionState::Unsubscribed | SubscriptionState::Error
                if resync.is_some_and(|r| !r.subscribing)
                    && (ack.state == SubscriptionState::Unsubscribed
                        || ack.purpose == Some(REQ_RESYNC_UNSUBSCRIBE)) =>
            {
                // The resync's unsubscribe is done (or there was nothing to unsubscribe).
                let subscribe = self
                    .books
                    .get(&symbol)
                    .map(|pair| self.book_request("subscribe", REQ_RESYNC_SUBSCRIBE, &pair.name));
                if let Some(pair) = self.books.get_mut(&symbol) {
                    if let Some(resync) = &mut pair.resync {
                        resync.subscribing = true;
                    }
                }
                if let (Some(subscribe), Some(upstream)) = (subscribe, &self.upstream) {
                    upstream.send(subscribe);
                }
            }
            SubscriptionState::Unsubscribed => debug!("kraken: unsubscribed from {channel}"),
            SubscriptionState::Error if ack.purpose == Some(REQ_UNSUBSCRIBE) => {
                debug!(
                    "kraken: unsubscribe from {channel} refused: {:?}",
                    ack.error
                );
            }
            SubscriptionState::Error => {
                self.stats.refused += 1;
                let reason = ack.error.unwrap_or_else(|| "refused".to_owned());
                if let Some(pair) = self.books.get_mut(&symbol) {
                    // No resync loop: the book waits for the next connection.
                    pair.resync = None;
                    pair.refused = true;
                }
                match self.wanted.get_mut(&channel) {
                    Some(Want::Stream { refused, .. }) if !*refused => {
                        *refused = true;
                        warn!("kraken: subscription to {channel} refused: {reason}");
                        self.channel_error(&channel, &format!("Kraken refused: {reason}"));
                    }
                    Some(_) => debug!("kraken: {channel} refused again: {reason}"),
                    None => debug!("kraken: refused {channel}, which nobody wants: {reason}"),
                }
            }
        }
    }

    // ------------------------------------------------------------ exchange.*

    fn call(&self, call: &ExchangeCall) -> Result<Answer, ExchangeError> {
        let method = call.method;
        let not_supported = |what: &str| {
            Err(ExchangeError::new(
                ErrorKind::NotSupported,
                format!("{NAME}: {} {what}", method.name()),
            ))
        };
        match method {
            ExchangeMethod::LoadMarkets => {
                let markets = self.markets()?;
                let map: Map<String, Value> = markets
                    .markets()
                    .map(|m| (m.symbol.clone(), json_value(m)))
                    .collect();
                Ok(Answer::Now(Value::Object(map)))
            }
            ExchangeMethod::FetchOrderBook => {
                let pair = self.pair(&call.params)?;
                let limit = limit(&call.params)?;
                if let Some(book) = self.books.get(&pair.market.symbol) {
                    if book.book.is_synced() {
                        let depth = limit.unwrap_or(book.book.depth());
                        return Ok(Answer::Now(json_value(&book.book.to_ccxt(depth))));
                    }
                }
                let count = limit.unwrap_or(100).min(REST_MAX_COUNT);
                let url = self.rest_url(&format!(
                    "/0/public/Depth?pair={}&count={count}",
                    pair.market.id
                ));
                let symbol = pair.market.symbol.clone();
                Ok(Answer::Later(Box::pin(async move {
                    let result = rest_get(&url).await?;
                    let book = parse_rest_depth(result.get(), &symbol)?;
                    Ok(json_value(&book))
                })))
            }
            ExchangeMethod::FetchTicker => {
                let pair = self.pair(&call.params)?;
                if let Some(ticker) = self.tickers.get(&pair.market.symbol) {
                    return Ok(Answer::Now(json_value(ticker)));
                }
                let url = self.rest_url(&format!("/0/public/Ticker?pair={}", pair.market.id));
                let markets = self.markets()?.clone();
                let ws_name = pair.ws_name.clone();
                Ok(Answer::Later(Box::pin(async move {
                    let result = rest_get(&url).await?;
                    let ticker = parse_rest_ticker(result.get(), &ws_name, &markets)?;
                    Ok(json_value(&ticker))
                })))
            }
            ExchangeMethod::FetchTickers
            | ExchangeMethod::FetchTrades
            | ExchangeMethod::FetchOhlcv => not_supported(
                "is not supported by this adapter yet: subscribe to ticker:kraken:<symbol> or \
                 trades:kraken:<symbol>, or use fetch_ticker",
            ),
            ExchangeMethod::Login
            | ExchangeMethod::FetchBalance
            | ExchangeMethod::CreateOrder
            | ExchangeMethod::CancelOrder
            | ExchangeMethod::FetchOrder
            | ExchangeMethod::FetchOpenOrders
            | ExchangeMethod::FetchMyTrades => {
                not_supported("is not supported: the kraken adapter serves public market data only")
            }
        }
    }

    fn markets(&self) -> Result<&Arc<KrakenMarkets>, ExchangeError> {
        self.markets.as_ref().ok_or_else(|| {
            ExchangeError::new(
                ErrorKind::ExchangeNotAvailable,
                "kraken: the market list is not loaded yet",
            )
        })
    }

    fn pair(&self, params: &Map<String, Value>) -> Result<&KrakenPair, ExchangeError> {
        let symbol = match params.get("symbol") {
            Some(Value::String(symbol)) => symbol,
            None | Some(Value::Null) => return Err(bad("symbol required")),
            Some(_) => return Err(bad("symbol must be a string")),
        };
        self.markets()?.by_symbol(symbol).ok_or_else(|| {
            let symbol: String = symbol.chars().take(64).collect();
            ExchangeError::new(
                ErrorKind::BadSymbol,
                format!("kraken has no market {symbol}"),
            )
        })
    }
}

/// The answer of an `exchange.*` call: at once, or after a REST request.
enum Answer {
    Now(Value),
    Later(Pin<Box<dyn Future<Output = Result<Value, ExchangeError>>>>),
}

fn json_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("ccxt structures serialize")
}

fn bad(message: &str) -> ExchangeError {
    ExchangeError::new(ErrorKind::BadRequest, message)
}

fn limit(params: &Map<String, Value>) -> Result<Option<usize>, ExchangeError> {
    match params.get("limit") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .map(|n| Some(n as usize))
            .ok_or_else(|| bad("limit must be an integer from 1 to 1000")),
    }
}

fn http_error(error: HttpError) -> ExchangeError {
    let kind = match &error {
        HttpError::Timeout(_) => ErrorKind::RequestTimeout,
        HttpError::Status(429) => ErrorKind::RateLimitExceeded,
        HttpError::Status(status) if *status >= 500 => ErrorKind::ExchangeNotAvailable,
        _ => ErrorKind::NetworkError,
    };
    ExchangeError::new(kind, format!("kraken: {error}"))
}

/// Kraken's REST envelope.
#[derive(Deserialize)]
struct RestResponse {
    #[serde(default)]
    error: Vec<String>,
    result: Option<BTreeMap<String, Box<RawValue>>>,
}

/// The error of a REST answer's `error` list.
fn kraken_error(errors: &[String]) -> ExchangeError {
    let has = |text: &str| errors.iter().any(|e| e.contains(text));
    let kind = if has("Unknown asset pair") {
        ErrorKind::BadSymbol
    } else if has("Rate limit") || has("Too many requests") {
        ErrorKind::RateLimitExceeded
    } else if has("Invalid arguments") {
        ErrorKind::BadRequest
    } else {
        ErrorKind::ExchangeNotAvailable
    };
    ExchangeError::new(
        kind,
        truncated(format!("kraken: {}", errors.join("; ")), MAX_REASON),
    )
}

fn malformed(what: &str) -> ExchangeError {
    ExchangeError::new(
        ErrorKind::NetworkError,
        format!("kraken: malformed {what} answer"),
    )
}

/// GETs a public REST endpoint and returns the one entry of its `result`.
async fn rest_get(url: &str) -> Result<Box<RawValue>, ExchangeError> {
    let body = http::get(url, REST_TIMEOUT, REST_MAX_BODY)
        .await
        .map_err(http_error)?;
    let response: RestResponse = serde_json::from_slice(&body).map_err(|_| malformed("REST"))?;
    if !response.error.is_empty() {
        return Err(kraken_error(&response.error));
    }
    response
        .result
        .and_then(|result| result.into_values().next())
        .ok_or_else(|| malformed("REST"))
}

/// A `Depth` result (`{"asks":[["price","volume",time],...],"bids":[...]}`) as a ccxt book,
/// as ccxt's `fetchOrderBook` makes it (no timestamp, no nonce).
pub fn parse_rest_depth(result: &str, symbol: &str) -> Result<OrderBook, ExchangeError> {
    #[derive(Deserialize)]
    struct Depth {
        asks: Vec<Vec<Value>>,
        bids: Vec<Vec<Value>>,
    }
    let depth: Depth = serde_json::from_str(result).map_err(|_| malformed("Depth"))?;
    let number = |value: Option<&Value>| -> Result<f64, ExchangeError> {
        let parsed = match value {
            Some(Value::String(text)) => text.parse::<f64>().ok(),
            Some(Value::Number(n)) => n.as_f64(),
            _ => None,
        };
        parsed
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| malformed("Depth"))
    };
    let levels = |side: &[Vec<Value>]| -> Result<Vec<[f64; 2]>, ExchangeError> {
        side.iter()
            .map(|level| Ok([number(level.first())?, number(level.get(1))?]))
            .collect()
    };
    Ok(OrderBook::new(
        symbol,
        levels(&depth.bids)?,
        levels(&depth.asks)?,
        Timestamp::NONE,
        None,
    ))
}

/// A `Ticker` result as ccxt's `fetchTicker` makes it, through the v1 ticker parser (the REST
/// ticker has the WebSocket's fields, `o` as one string).
pub fn parse_rest_ticker(
    result: &str,
    ws_name: &str,
    markets: &KrakenMarkets,
) -> Result<Ticker, ExchangeError> {
    let pair = serde_json::to_string(ws_name).map_err(|_| malformed("Ticker"))?;
    let message = format!("[0,{result},\"ticker\",{pair}]");
    match parse_message(&message, markets) {
        Ok(KrakenMessage::Ticker(ticker)) => Ok(*ticker),
        _ => Err(malformed("Ticker")),
    }
}

impl Actor for KrakenAdapter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(
            "kraken: starting ({}, WebSocket {} at {}, book depth {})",
            self.settings.rest_url,
            self.settings.feed.name(),
            self.settings.ws_url,
            self.settings.subscription_depth()
        );
        self.fetch_markets(ctx);
    }
}

impl Handler<Demand> for KrakenAdapter {
    type Result = ();

    fn handle(&mut self, msg: Demand, ctx: &mut Context<Self>) {
        match msg {
            Demand::Start { channel } => {
                if !self.wanted.contains_key(&channel) {
                    self.start_channel(channel);
                }
            }
            Demand::Stop { channel } => self.stop_channel(&channel),
        }
        self.schedule_flush(ctx);
    }
}

impl Handler<UpstreamEvent> for KrakenAdapter {
    type Result = ();

    fn handle(&mut self, msg: UpstreamEvent, ctx: &mut Context<Self>) {
        match msg {
            UpstreamEvent::Connected { channels } => self.on_connected(&channels),
            UpstreamEvent::Message(text) => self.on_message(&text, ctx),
            UpstreamEvent::Disconnected { reason } => self.on_disconnected(reason),
        }
    }
}

impl Handler<ExchangeCall> for KrakenAdapter {
    type Result = ResponseFuture<Result<Bytes, ExchangeError>>;

    fn handle(&mut self, msg: ExchangeCall, _: &mut Context<Self>) -> Self::Result {
        let to_bytes =
            |value: Value| Bytes::from(serde_json::to_vec(&value).expect("JSON values serialize"));
        match self.call(&msg) {
            Ok(Answer::Now(value)) => {
                let bytes = to_bytes(value);
                Box::pin(async move { Ok(bytes) })
            }
            Ok(Answer::Later(future)) => Box::pin(async move { future.await.map(to_bytes) }),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }
}

impl Handler<GetKrakenStats> for KrakenAdapter {
    type Result = MessageResult<GetKrakenStats>;

    fn handle(&mut self, _: GetKrakenStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}
