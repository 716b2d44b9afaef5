//! The Binance spot adapter actor: the I/O half around the pure normalizer of this module.
//!
//! # Market data
//! At start it loads the market list (`GET /api/v3/exchangeInfo`, retried with backoff,
//! refreshed hourly) and announces itself on `notifications`
//! (`{"type":"adapter","exchange":"binance","status":"up"|"down",...}`). While the Router wants
//! channels ([`Demand`]) it keeps one combined-stream connection ([`Upstream`]) and publishes ccxt
//! JSON:
//!
//! | channel | stream | published |
//! |---|---|---|
//! | `book:binance:NKN/USDT` | `nknusdt@depth@100ms` + REST snapshots | OrderBook, top [`BinanceSettings::publish_depth`] levels |
//! | `ticker:binance:NKN/USDT` | `nknusdt@ticker` (24 h statistics, as ccxt's watchTicker) | Ticker |
//! | `trades:binance:NKN/USDT` | `nknusdt@aggTrade` | Trade |
//! | `ohlcv:binance:NKN/USDT:1m` | `nknusdt@kline_1m` | `[t, o, h, l, c, v]` |
//!
//! **Subscriptions.** A connection names its streams in its URL
//! (`/stream?streams=a/b/c`, the first [`URL_STREAMS`]; any more in one `SUBSCRIBE` right
//! after connecting). While it lives, demand changes go as `SUBSCRIBE`/`UNSUBSCRIBE` messages
//! on it ([`Feed::change`] never asks for a new connection), so a new subscriber does not cost
//! every other book a resync. Changes are coalesced and sent at most every
//! [`STREAM_CHANGE_INTERVAL`]: Binance drops a connection that sends more than 5 messages a
//! second. At most [`MAX_STREAMS`] streams (Binance's limit per connection).
//!
//! **Books** follow Binance's procedure ([`DepthSync`]): events are buffered from the first
//! one received, which triggers the snapshot request (`GET /api/v3/depth?limit=1000`); the
//! snapshot is applied with the buffer, and the book is published after every change, its
//! `nonce` (the last applied update id) strictly increasing. A gap or reordering makes the
//! book invalid: logged (warn once per symbol, then debug), announced (`resyncing`), nothing
//! published for it while a fresh snapshot is fetched (events buffered meanwhile; snapshots
//! older than the buffer are fetched again, with backoff), then announced `up`. Duplicates are
//! ignored. A new connection rebuilds every book; a lost one stops them all and is announced
//! `down` once per streak of failures. Binance's pings are answered by tungstenite itself.
//!
//! Messages that are no JSON, control replies, unknown streams or markets and malformed data
//! are counted ([`GetStats`]) and logged once per kind, never fatal. A channel of an unknown
//! symbol or timeframe is warned about once, announced (`warning`), and never published.
//!
//! # Calls
//! [`ExchangeCall`]s: `load_markets`, `fetch_order_book` (REST depth), `fetch_ticker`
//! (`/api/v3/ticker/24hr`), and with the session's credentials (API key in
//! [`Credentials::account`], secret key in [`Credentials::secret`]) the signed calls `login`
//! (`GET /api/v3/account`), `fetch_balance`, `create_order` (`POST /api/v3/order`),
//! `cancel_order` (`DELETE /api/v3/order`), `fetch_order` (`GET /api/v3/order`) and
//! `fetch_open_orders` (`GET /api/v3/openOrders`). Binance's refusals become ccxt error kinds
//! ([`rest::parse_error`]). Neither the key nor the secret is ever logged or put in an error.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, error, info, warn};
use rpc_crypto_proto::ccxt::{ErrorKind, Info, OrderType, Side, TimeInForce};
use rpc_crypto_proto::json::JsonText;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::depth::{Applied, DepthSnapshot, DepthSync, DepthUpdate, SyncError, SyncStats};
use super::markets::Markets;
use super::rest::{self, NewOrder, OrderRef, SignedRequest};
use super::stream::{parse_message, StreamError, StreamEvent};
use crate::adapters::contract::{Credentials, ExchangeCall, ExchangeError, ExchangeMethod};
use crate::adapters::decimal::Decimal;
use crate::adapters::http::{self, HttpError};
use crate::adapters::truncated;
use crate::adapters::upstream::{Feed, Upstream, UpstreamEvent, UpstreamSettings};
use crate::channel::NOTIFICATIONS;
use crate::metrics::{metrics, ExchangeMetrics};
use crate::router::{Demand, Publish};
use crate::settings::duration;

/// The exchange's name in channels and `exchange.*` calls.
pub const NAME: &str = "binance";
/// Binance's limit of streams on one connection.
pub const MAX_STREAMS: usize = 1024;
/// Streams named in the connection's URL; the rest are subscribed right after connecting, so
/// that the URL stays short.
pub const URL_STREAMS: usize = 200;
/// The least time between two subscription changes on a connection (Binance takes at most 5
/// messages a second; a change is at most an `UNSUBSCRIBE` and a `SUBSCRIBE`).
pub const STREAM_CHANGE_INTERVAL: Duration = Duration::from_millis(500);
/// Demand changes arriving together are sent as one change after this wait.
const COALESCE: Duration = Duration::from_millis(50);
/// Levels of the REST snapshot that seeds a book (Binance's recommended size).
pub const SNAPSHOT_LIMIT: u32 = 1000;
/// The deadline of each REST request.
const REST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest `exchangeInfo` body taken (the whole spot list is megabytes).
const MAX_MARKETS_BODY: usize = 64 << 20;
/// The largest body of any other REST answer.
const MAX_BODY: usize = 8 << 20;
/// How often the market list is loaded again (new listings, status changes).
const MARKETS_REFRESH: Duration = Duration::from_secs(3600);
/// The first retry of a failed market list, doubling up to [`MAX_RETRY`].
const MARKETS_RETRY: Duration = Duration::from_secs(1);
/// The retry of a snapshot that failed or was older than the buffered events, doubling.
const SNAPSHOT_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// Binance's kline intervals.
pub const TIMEFRAMES: &[&str] = &[
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
    "1M",
];
/// The longest reason put in a notification.
const MAX_REASON: usize = 200;
/// Most levels a `fetch_order_book` may ask for (Binance's limit).
const MAX_FETCH_DEPTH: u64 = 5000;

/// The `[binance]` config table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BinanceSettings {
    /// Run the Binance adapter.
    pub enabled: bool,
    /// The WebSocket base; the combined stream is `<ws_url>/stream?streams=...`.
    pub ws_url: String,
    /// The REST base (`<rest_url>/api/v3/...`).
    pub rest_url: String,
    /// Levels per side in a `book:binance:*` publication.
    pub publish_depth: usize,
    /// No message (data or Binance's pings, every 20 s) for this long: the connection is dead.
    #[serde(with = "duration")]
    pub heartbeat_timeout: Duration,
    /// The `recvWindow` of signed requests: how late Binance may receive them.
    #[serde(with = "duration")]
    pub recv_window: Duration,
}

impl Default for BinanceSettings {
    fn default() -> Self {
        BinanceSettings {
            enabled: false,
            ws_url: "wss://stream.binance.com:9443".into(),
            rest_url: "https://api.binance.com".into(),
            publish_depth: 20,
            heartbeat_timeout: Duration::from_secs(30),
            recv_window: Duration::from_millis(rest::DEFAULT_RECV_WINDOW),
        }
    }
}

impl BinanceSettings {
    /// A problem with the settings, for config validation.
    pub fn check(&self) -> Result<(), String> {
        let scheme = |url: &str, schemes: &[&str]| schemes.iter().any(|s| url.starts_with(s));
        if !scheme(&self.ws_url, &["wss://", "ws://"]) {
            return Err("binance: ws_url must be a ws:// or wss:// URL".into());
        }
        if !scheme(&self.rest_url, &["https://", "http://"]) {
            return Err("binance: rest_url must be an http:// or https:// URL".into());
        }
        if self.publish_depth == 0 {
            return Err("binance: publish_depth must be at least 1".into());
        }
        if self.heartbeat_timeout.is_zero() {
            return Err("binance: heartbeat_timeout must be above zero".into());
        }
        // Binance refuses a recvWindow above 60 s.
        if self.recv_window.is_zero() || self.recv_window > Duration::from_secs(60) {
            return Err("binance: recv_window must be from 1ms to 60s".into());
        }
        Ok(())
    }

    fn rest(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.rest_url.trim_end_matches('/'))
    }
}

/// The connection's exchange-specific part: the streams are the "channels" it is given.
struct BinanceFeed {
    base: String,
}

impl BinanceFeed {
    fn method(method: &str, streams: &BTreeSet<String>) -> String {
        // Binance echoes the id in its reply; nothing depends on it, so one id will do.
        json!({"method": method, "params": streams, "id": 1}).to_string()
    }
}

impl Feed for BinanceFeed {
    fn url(&self, streams: &BTreeSet<String>) -> String {
        let named: Vec<&str> = streams
            .iter()
            .take(URL_STREAMS)
            .map(String::as_str)
            .collect();
        format!("{}/stream?streams={}", self.base, named.join("/"))
    }

    fn subscribe(&self, streams: &BTreeSet<String>) -> Vec<String> {
        let rest: BTreeSet<String> = streams.iter().skip(URL_STREAMS).cloned().collect();
        if rest.is_empty() {
            Vec::new()
        } else {
            vec![Self::method("SUBSCRIBE", &rest)]
        }
    }

    fn change(&self, added: &BTreeSet<String>, removed: &BTreeSet<String>) -> Option<Vec<String>> {
        let mut messages = Vec::new();
        if !removed.is_empty() {
            messages.push(Self::method("UNSUBSCRIBE", removed));
        }
        if !added.is_empty() {
            messages.push(Self::method("SUBSCRIBE", added));
        }
        Some(messages)
    }
}

/// What a channel carries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Topic {
    Book,
    Ticker,
    Trades,
    Ohlcv(String),
}

/// A channel of this exchange: what and of which ccxt symbol.
fn parse_channel(channel: &str) -> Option<(Topic, &str)> {
    let (kind, rest) = channel.split_once(':')?;
    let rest = rest.strip_prefix(NAME)?.strip_prefix(':')?;
    let (topic, symbol) = match kind {
        "book" => (Topic::Book, rest),
        "ticker" => (Topic::Ticker, rest),
        "trades" => (Topic::Trades, rest),
        "ohlcv" => {
            let (symbol, timeframe) = rest.rsplit_once(':')?;
            (Topic::Ohlcv(timeframe.to_owned()), symbol)
        }
        _ => return None,
    };
    (!symbol.is_empty()).then_some((topic, symbol))
}

/// A wanted channel's stream.
struct Resolved {
    topic: Topic,
    /// The ccxt symbol.
    symbol: String,
    /// Binance's market id.
    id: String,
    stream: String,
}

/// The stream of a topic for a market's lowercase id.
fn stream_name(topic: &Topic, stream_id: &str) -> String {
    match topic {
        Topic::Book => format!("{stream_id}@depth@100ms"),
        Topic::Ticker => format!("{stream_id}@ticker"),
        Topic::Trades => format!("{stream_id}@aggTrade"),
        Topic::Ohlcv(timeframe) => format!("{stream_id}@kline_{timeframe}"),
    }
}

fn book_channel(symbol: &str) -> String {
    format!("book:{NAME}:{symbol}")
}

/// The adapter's own counters, since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages received on the stream connection.
    pub messages: u64,
    /// Publications sent (market data and notifications).
    pub published: u64,
    /// Messages that are not JSON.
    pub invalid_json: u64,
    /// Binance's replies to `SUBSCRIBE`/`UNSUBSCRIBE` (`{"result":null,"id":1}`).
    pub replies: u64,
    /// Binance's error replies, and JSON that is neither data nor a reply.
    pub refusals: u64,
    /// Data of a stream this adapter does not parse.
    pub unknown_streams: u64,
    /// Data of a market missing from the market list.
    pub unknown_markets: u64,
    /// Data with a missing or malformed field.
    pub malformed: u64,
    /// Data of a stream no longer wanted (arriving before its `UNSUBSCRIBE` took effect).
    pub unwanted: u64,
    /// Connections made.
    pub connects: u64,
    /// Connections lost, and connects that failed.
    pub disconnects: u64,
    /// Depth snapshots requested, and those that failed (HTTP or unreadable).
    pub snapshot_requests: u64,
    pub snapshot_failures: u64,
    /// Books that went out of sync and were rebuilt from a fresh snapshot.
    pub resyncs: u64,
}

/// One book's state, for [`GetStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookStatus {
    /// Binance's market id.
    pub id: String,
    /// Whether it is valid (published).
    pub synced: bool,
    /// The update id it stands at.
    pub nonce: Option<u64>,
    /// Its counters since its last rebuild from scratch (a new connection).
    pub sync: SyncStats,
    /// Its counters over all of its rebuilds.
    pub total: SyncStats,
    /// Snapshots requested for it.
    pub snapshot_requests: u64,
}

/// The adapter's state, for monitoring and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinanceStats {
    /// Markets known (0 until the list is loaded).
    pub markets: usize,
    /// The streams the connection is asked for.
    pub streams: Vec<String>,
    pub counters: Counters,
    /// Books by ccxt symbol.
    pub books: BTreeMap<String, BookStatus>,
}

/// Asks the adapter for [`BinanceStats`].
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "BinanceStats")]
pub struct GetStats;

/// A whole book in the REST snapshot's form, for tests to compare books exactly.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "Option<DepthSnapshot>")]
pub(super) struct FullBook(pub String);

fn add_stats(into: &mut SyncStats, from: SyncStats) {
    into.snapshots += from.snapshots;
    into.applied += from.applied;
    into.dropped += from.dropped;
    into.duplicates += from.duplicates;
    into.gaps += from.gaps;
    into.reorders += from.reorders;
    into.overflowed += from.overflowed;
    if from.first_applied.is_some() {
        into.first_applied = from.first_applied;
    }
}

/// One wanted order book.
struct Book {
    /// Binance's market id (`NKNUSDT`).
    id: String,
    channel: String,
    sync: DepthSync,
    /// Changes whenever the book is rebuilt, so that a snapshot asked for before is dropped.
    generation: u64,
    /// A snapshot request is under way (or waiting for its retry).
    fetching: bool,
    /// Failed or stale snapshots in a row.
    failures: u32,
    /// The nonce last published: publications only move forward.
    published: Option<u64>,
    /// Lost sync and announced `resyncing`; `up` is announced when synced again.
    resyncing: bool,
    /// Counters of the syncs before the current one.
    earlier: SyncStats,
    snapshot_requests: u64,
    /// Its first gap was logged at warn level.
    gap_logged: bool,
}

impl Book {
    fn new(id: &str, symbol: &str, generation: u64) -> Self {
        Book {
            id: id.to_owned(),
            channel: book_channel(symbol),
            sync: DepthSync::new(symbol),
            generation,
            fetching: false,
            failures: 0,
            published: None,
            resyncing: false,
            earlier: SyncStats::default(),
            snapshot_requests: 0,
            gap_logged: false,
        }
    }

    /// Back to buffering from scratch (a new or lost connection).
    fn rebuild(&mut self, generation: u64) {
        add_stats(&mut self.earlier, self.sync.stats());
        self.sync = DepthSync::new(self.sync.symbol());
        self.generation = generation;
        self.fetching = false;
        self.failures = 0;
        self.resyncing = false;
    }

    fn status(&self) -> BookStatus {
        let mut total = self.earlier;
        add_stats(&mut total, self.sync.stats());
        BookStatus {
            id: self.id.clone(),
            synced: self.sync.is_synced(),
            nonce: self.sync.nonce(),
            sync: self.sync.stats(),
            total,
            snapshot_requests: self.snapshot_requests,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Starting,
    Up,
    Down,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Starting | Health::Down => "down",
        }
    }
}

/// The Binance adapter actor.
pub struct BinanceAdapter {
    settings: BinanceSettings,
    publish: Recipient<Publish>,
    markets: Option<Arc<Markets>>,
    markets_failures: u32,
    upstream: Option<Upstream>,
    /// Channels the Router wants.
    wanted: BTreeSet<String>,
    /// Wanted books, by ccxt symbol.
    books: HashMap<String, Book>,
    next_generation: u64,
    /// The streams last given to the connection, when, and whether a change is scheduled.
    streams: BTreeSet<String>,
    streams_changed: Option<Instant>,
    change_scheduled: bool,
    /// A connection is up (reset when it is lost or closed for want of channels).
    connected: bool,
    health: Health,
    counters: Counters,
    /// Its series in `/metrics`.
    metrics: ExchangeMetrics,
    /// Kinds of refused messages logged already.
    logged: HashSet<&'static str>,
    /// Channels warned about (unknown symbol or timeframe).
    warned: HashSet<String>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn backoff(failures: u32, start: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = (failures - 1).min(16);
    start.saturating_mul(1 << doublings).min(MAX_RETRY)
}

impl BinanceAdapter {
    /// An adapter publishing through `publish` (the Router).
    pub fn new(settings: BinanceSettings, publish: Recipient<Publish>) -> Self {
        BinanceAdapter {
            settings,
            publish,
            markets: None,
            markets_failures: 0,
            upstream: None,
            wanted: BTreeSet::new(),
            books: HashMap::new(),
            next_generation: 0,
            streams: BTreeSet::new(),
            streams_changed: None,
            change_scheduled: false,
            connected: false,
            health: Health::Starting,
            counters: Counters::default(),
            metrics: metrics().exchange(NAME),
            logged: HashSet::new(),
            warned: HashSet::new(),
        }
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    fn send_json(&mut self, channel: String, value: &impl Serialize) {
        match JsonText::serialize(value) {
            Ok(data) => {
                self.counters.published += 1;
                self.publish.do_send(Publish::new(channel, data));
            }
            Err(error) => error!("binance: {channel} not published: {error}"),
        }
    }

    fn notify(&mut self, mut notice: Map<String, Value>) {
        notice.insert("type".into(), "adapter".into());
        notice.insert("exchange".into(), NAME.into());
        self.send_json(NOTIFICATIONS.to_owned(), &Value::Object(notice));
    }

    fn notice(status: &str) -> Map<String, Value> {
        let mut notice = Map::new();
        notice.insert("status".into(), status.into());
        notice
    }

    fn set_health(&mut self, health: Health, reason: Option<String>) {
        if self.health == health {
            return;
        }
        self.health = health;
        let mut notice = Self::notice(health.as_str());
        if let Some(reason) = reason {
            notice.insert("reason".into(), truncated(reason, MAX_REASON).into());
        }
        if let Some(markets) = &self.markets {
            notice.insert("markets".into(), markets.len().into());
        }
        self.notify(notice);
    }

    /// Logs a refused message: the first of its kind at warn level, the rest at debug.
    fn log_once(&mut self, kind: &'static str, what: &dyn std::fmt::Display) {
        if self.logged.insert(kind) {
            warn!("binance: {what} (counted; further {kind} messages are logged at debug level)");
        } else {
            debug!("binance: {what}");
        }
    }

    // ---- market list ----

    fn load_markets(&mut self, ctx: &mut Context<Self>) {
        let url = self.settings.rest("/api/v3/exchangeInfo");
        let load = async move {
            let body = http::get(&url, REST_TIMEOUT, MAX_MARKETS_BODY)
                .await
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8(body).map_err(|_| "exchangeInfo is not UTF-8")?;
            let markets = Markets::from_exchange_info(&text).map_err(|e| e.to_string())?;
            if markets.is_empty() {
                return Err("exchangeInfo lists no market".to_owned());
            }
            Ok(markets)
        };
        ctx.spawn(
            load.into_actor(self)
                .map(|result, act, ctx| act.markets_loaded(result, ctx)),
        );
    }

    fn markets_loaded(&mut self, result: Result<Markets, String>, ctx: &mut Context<Self>) {
        let next = match result {
            Ok(markets) => {
                info!(
                    "binance: {} markets loaded ({} entries skipped)",
                    markets.len(),
                    markets.skipped().len()
                );
                self.markets_failures = 0;
                self.markets = Some(Arc::new(markets));
                if self.streams.is_empty() || self.connected {
                    self.set_health(Health::Up, None);
                }
                self.refresh(ctx);
                MARKETS_REFRESH
            }
            Err(error) => {
                self.markets_failures = self.markets_failures.saturating_add(1);
                let retry = backoff(self.markets_failures, MARKETS_RETRY);
                if self.markets.is_some() {
                    // The old list still serves; the adapter is not down for this.
                    warn!(
                        "binance: reloading the market list failed: {error} (retry in {retry:?})"
                    );
                } else {
                    if self.health != Health::Down {
                        warn!("binance: loading the market list failed: {error} (retrying with backoff, logged once until it works)");
                    } else {
                        debug!("binance: market list still failing: {error}");
                    }
                    self.set_health(Health::Down, Some(format!("exchangeInfo: {error}")));
                }
                retry
            }
        };
        ctx.run_later(next, |act, ctx| act.load_markets(ctx));
    }

    // ---- demand and streams ----

    /// The stream of a wanted channel with its topic, ccxt symbol and Binance id, or why there
    /// is none (warned and announced once per channel).
    fn resolve(&mut self, channel: &str) -> Option<Resolved> {
        let markets = self.markets.clone()?;
        let refused = match parse_channel(channel) {
            None => "not a Binance channel (book, ticker, trades, ohlcv:<timeframe>)",
            Some((Topic::Ohlcv(timeframe), _)) if !TIMEFRAMES.contains(&timeframe.as_str()) => {
                "unknown timeframe"
            }
            Some((topic, symbol)) => match markets.by_symbol(symbol) {
                Some(market) => {
                    return Some(Resolved {
                        stream: stream_name(&topic, &market.id.to_ascii_lowercase()),
                        topic,
                        symbol: market.symbol.clone(),
                        id: market.id.clone(),
                    });
                }
                None => "unknown symbol",
            },
        };
        if self.warned.insert(channel.to_owned()) {
            warn!("binance: {channel}: {refused}; nothing is published on it");
            let mut notice = Self::notice(self.health.as_str());
            notice.insert("warning".into(), refused.into());
            notice.insert("channel".into(), channel.into());
            self.notify(notice);
        }
        None
    }

    /// The streams of the wanted channels (at most [`MAX_STREAMS`]), and the wanted books
    /// (ccxt symbol → Binance id).
    fn wanted_streams(&mut self) -> (BTreeSet<String>, HashMap<String, String>) {
        let mut streams = BTreeSet::new();
        let mut books = HashMap::new();
        for channel in self.wanted.clone() {
            let Some(resolved) = self.resolve(&channel) else {
                continue;
            };
            if resolved.topic == Topic::Book {
                books.insert(resolved.symbol, resolved.id);
            }
            streams.insert(resolved.stream);
        }
        if streams.len() > MAX_STREAMS {
            if self.logged.insert("too many streams") {
                warn!(
                    "binance: {} streams wanted, {MAX_STREAMS} taken (Binance's limit per connection)",
                    streams.len()
                );
            }
            streams = streams.into_iter().take(MAX_STREAMS).collect();
        }
        (streams, books)
    }

    /// Brings the books in line with the wanted channels at once, and the connection's
    /// streams after the coalescing wait.
    fn refresh(&mut self, ctx: &mut Context<Self>) {
        if self.markets.is_none() {
            return;
        }
        let (streams, books) = self.wanted_streams();
        self.books.retain(|symbol, _| books.contains_key(symbol));
        for (symbol, id) in books {
            if !self.books.contains_key(&symbol) {
                let generation = self.generation();
                self.books
                    .insert(symbol.clone(), Book::new(&id, &symbol, generation));
            }
        }
        if streams != self.streams && !self.change_scheduled {
            self.change_scheduled = true;
            let earliest = self
                .streams_changed
                .map_or(COALESCE, |at| {
                    (at + STREAM_CHANGE_INTERVAL).saturating_duration_since(Instant::now())
                })
                .max(COALESCE);
            ctx.run_later(earliest, |act, ctx| {
                act.change_scheduled = false;
                act.apply_streams();
                // Demand that came meanwhile is taken at the next change.
                act.refresh(ctx);
            });
        }
    }

    fn apply_streams(&mut self) {
        let (streams, _) = self.wanted_streams();
        if streams == self.streams {
            return;
        }
        debug!("binance: {} streams wanted", streams.len());
        if streams.is_empty() {
            // The connection closes without a word: the next one is new.
            self.connected = false;
        }
        self.streams = streams.clone();
        self.streams_changed = Some(Instant::now());
        if let Some(upstream) = &self.upstream {
            upstream.set_channels(streams);
        }
    }

    // ---- the stream ----

    fn on_upstream(&mut self, event: UpstreamEvent, ctx: &mut Context<Self>) {
        match event {
            UpstreamEvent::Connected { channels } => {
                if self.connected {
                    debug!("binance: subscriptions now {} streams", channels.len());
                    return;
                }
                self.connected = true;
                self.counters.connects += 1;
                info!("binance: connected, {} streams", channels.len());
                self.rebuild_books();
                self.set_health(Health::Up, None);
            }
            UpstreamEvent::Disconnected { reason } => {
                self.connected = false;
                self.counters.disconnects += 1;
                self.metrics.reconnect();
                self.rebuild_books();
                if self.health == Health::Down {
                    debug!("binance: still disconnected: {reason}");
                } else {
                    warn!("binance: disconnected: {reason} (reconnecting with backoff; logged once until connected)");
                    self.set_health(Health::Down, Some(reason));
                }
            }
            UpstreamEvent::Message(text) => self.on_message(&text, ctx),
        }
    }

    /// Every book back to buffering: events of the new connection, then a fresh snapshot.
    fn rebuild_books(&mut self) {
        let symbols: Vec<String> = self.books.keys().cloned().collect();
        for symbol in symbols {
            let generation = self.generation();
            if let Some(book) = self.books.get_mut(&symbol) {
                book.rebuild(generation);
            }
        }
    }

    fn on_message(&mut self, text: &str, ctx: &mut Context<Self>) {
        self.counters.messages += 1;
        let Some(markets) = self.markets.clone() else {
            self.counters.unwanted += 1;
            return;
        };
        let message = match parse_message(text, &markets) {
            Ok(message) => message,
            Err(error) => return self.refused(text, error),
        };
        let symbol = message.symbol;
        // With the exchange's time of the event, for the lag (a candle's is when it opened).
        let (channel, value, stamped) = match message.event {
            StreamEvent::Depth(update) => return self.on_depth(&symbol, update, ctx),
            StreamEvent::Ticker(ticker) => (
                format!("ticker:{NAME}:{symbol}"),
                json_of(&ticker),
                ticker.timestamp.0,
            ),
            StreamEvent::Trade(trade) => (
                format!("trades:{NAME}:{symbol}"),
                json_of(&trade),
                trade.timestamp.0,
            ),
            StreamEvent::Kline(kline) => (
                format!("ohlcv:{NAME}:{symbol}:{}", kline.timeframe),
                json_of(&kline.candle),
                None,
            ),
            // Not subscribed by this adapter (its tickers are the 24-hour ones).
            StreamEvent::BookTicker(_) => {
                self.counters.unwanted += 1;
                return;
            }
        };
        if self.wanted.contains(&channel) {
            self.send_json(channel, &value);
            self.metrics.published(stamped);
        } else {
            self.counters.unwanted += 1;
        }
    }

    fn refused(&mut self, text: &str, error: StreamError) {
        let kind = match &error {
            StreamError::Json(_) => {
                self.counters.invalid_json += 1;
                "invalid JSON"
            }
            StreamError::NotStream => {
                // `{"result":null,"id":1}` answers a (un)subscription; anything else is a refusal.
                let reply = serde_json::from_str::<Map<String, Value>>(text)
                    .is_ok_and(|m| m.contains_key("result") && !m.contains_key("error"));
                if reply {
                    self.counters.replies += 1;
                    return;
                }
                self.counters.refusals += 1;
                let start: String = text.chars().take(MAX_REASON).collect();
                return self.log_once("refusal", &format_args!("not stream data: {start}"));
            }
            StreamError::UnknownStream(_) => {
                self.counters.unknown_streams += 1;
                "unknown stream"
            }
            StreamError::UnknownMarket(_) => {
                self.counters.unknown_markets += 1;
                "unknown market"
            }
            StreamError::Malformed { .. } | StreamError::Depth(_) => {
                self.counters.malformed += 1;
                "malformed"
            }
        };
        self.log_once(kind, &error);
    }

    fn on_depth(&mut self, symbol: &str, update: DepthUpdate, ctx: &mut Context<Self>) {
        let Some(book) = self.books.get_mut(symbol) else {
            self.counters.unwanted += 1;
            return;
        };
        let fetching = book.fetching;
        match book.sync.on_update(update) {
            Ok(Applied::Applied) => self.publish_book(symbol),
            // The procedure: the first event buffered, then the snapshot.
            Ok(Applied::Buffered) if !fetching => self.request_snapshot(symbol, ctx),
            Ok(_) => {}
            Err(error @ SyncError::OutOfSync { .. }) => {
                book.resyncing = true;
                if std::mem::replace(&mut book.gap_logged, true) {
                    debug!("binance: {symbol}: {error}; resyncing");
                } else {
                    warn!("binance: {symbol}: {error}; resyncing from a fresh snapshot (later gaps of {symbol} logged at debug level)");
                }
                self.counters.resyncs += 1;
                self.metrics.resync(symbol);
                if self.health == Health::Up {
                    let mut notice = Self::notice("resyncing");
                    notice.insert("symbol".into(), symbol.into());
                    notice.insert("reason".into(), error.to_string().into());
                    self.notify(notice);
                }
                self.request_snapshot(symbol, ctx);
            }
        }
    }

    fn request_snapshot(&mut self, symbol: &str, ctx: &mut Context<Self>) {
        let Some(book) = self.books.get_mut(symbol) else {
            return;
        };
        book.fetching = true;
        book.snapshot_requests += 1;
        self.counters.snapshot_requests += 1;
        let generation = book.generation;
        let wait = backoff(book.failures, SNAPSHOT_RETRY);
        let url = self.settings.rest(&format!(
            "/api/v3/depth?symbol={}&limit={SNAPSHOT_LIMIT}",
            book.id
        ));
        let symbol = symbol.to_owned();
        let fetch = async move {
            if !wait.is_zero() {
                actix::clock::sleep(wait).await;
            }
            let body = http::get(&url, REST_TIMEOUT, MAX_BODY)
                .await
                .map_err(|e| e.to_string())?;
            let text = std::str::from_utf8(&body).map_err(|_| "not UTF-8".to_owned())?;
            DepthSnapshot::parse(text).map_err(|e| e.to_string())
        };
        ctx.spawn(
            fetch.into_actor(self).map(move |result, act, ctx| {
                act.snapshot_arrived(&symbol, generation, result, ctx)
            }),
        );
    }

    fn snapshot_arrived(
        &mut self,
        symbol: &str,
        generation: u64,
        result: Result<DepthSnapshot, String>,
        ctx: &mut Context<Self>,
    ) {
        let Some(book) = self.books.get_mut(symbol) else {
            return;
        };
        if book.generation != generation {
            // Asked for a book since rebuilt, or removed and wanted again.
            return;
        }
        book.fetching = false;
        let snapshot = match result {
            Ok(snapshot) => snapshot,
            Err(error) => {
                book.failures = book.failures.saturating_add(1);
                if book.failures == 1 {
                    warn!(
                        "binance: {symbol}: depth snapshot failed: {error} (retrying with backoff)"
                    );
                } else {
                    debug!("binance: {symbol}: depth snapshot failed again: {error}");
                }
                self.counters.snapshot_failures += 1;
                return self.request_snapshot(symbol, ctx);
            }
        };
        if let Err(error) = book.sync.apply_snapshot(snapshot) {
            // Older than the buffered events (or they have a gap): another one, a bit later.
            book.failures = book.failures.saturating_add(1);
            debug!("binance: {symbol}: snapshot refused: {error}; asking again");
            return self.request_snapshot(symbol, ctx);
        }
        book.failures = 0;
        if std::mem::take(&mut book.resyncing) && self.health == Health::Up {
            info!("binance: {symbol} in sync again");
            let mut notice = Self::notice("up");
            notice.insert("symbol".into(), symbol.into());
            self.notify(notice);
        }
        self.publish_book(symbol);
    }

    /// Publishes a book that is in sync and newer than its last publication.
    fn publish_book(&mut self, symbol: &str) {
        let depth = self.settings.publish_depth.max(1);
        let Some(book) = self.books.get_mut(symbol) else {
            return;
        };
        let Some(order_book) = book.sync.order_book(depth) else {
            return;
        };
        let nonce = order_book.nonce;
        if book
            .published
            .is_some_and(|published| nonce <= Some(published))
        {
            return;
        }
        book.published = nonce;
        let channel = book.channel.clone();
        self.send_json(channel, &order_book);
        self.metrics.published(order_book.timestamp.0);
    }

    fn stats(&self) -> BinanceStats {
        BinanceStats {
            markets: self.markets.as_ref().map_or(0, |m| m.len()),
            streams: self.streams.iter().cloned().collect(),
            counters: self.counters,
            books: self
                .books
                .iter()
                .map(|(symbol, book)| (symbol.clone(), book.status()))
                .collect(),
        }
    }

    // ---- calls ----

    fn prepare(&self, call: &ExchangeCall) -> Result<Prepared, ExchangeError> {
        let markets = self.markets.clone().ok_or_else(|| {
            ExchangeError::new(
                ErrorKind::ExchangeNotAvailable,
                "binance: the market list is not loaded yet",
            )
        })?;
        let params = &call.params;
        let recv_window = u64::try_from(self.settings.recv_window.as_millis()).ok();
        let now = now_ms();
        let signing = || signing_credentials(call.credentials.as_ref());
        let rest = |path: String| self.settings.rest(&path);
        let plan = match call.method {
            ExchangeMethod::LoadMarkets => {
                let all: Map<String, Value> = markets
                    .iter()
                    .map(|m| (m.symbol.clone(), json_of(m)))
                    .collect();
                Plan::Ready(Value::Object(all))
            }
            ExchangeMethod::FetchOrderBook => {
                let (symbol, id) = market_of(&markets, params)?;
                let limit = match params.get("limit") {
                    None | Some(Value::Null) => 100,
                    Some(v) => v
                        .as_u64()
                        .filter(|n| (1..=MAX_FETCH_DEPTH).contains(n))
                        .ok_or_else(|| bad("limit must be an integer from 1 to 5000"))?,
                };
                Plan::Public {
                    url: rest(format!("/api/v3/depth?symbol={id}&limit={limit}")),
                    then: Then::OrderBook { symbol, limit },
                }
            }
            ExchangeMethod::FetchTicker => {
                let (_, id) = market_of(&markets, params)?;
                Plan::Public {
                    url: rest(format!("/api/v3/ticker/24hr?symbol={id}")),
                    then: Then::Ticker,
                }
            }
            ExchangeMethod::Login => {
                let user = call.credentials.as_ref().map(|c| c.user.clone());
                Plan::Signed {
                    request: rest::account_request(&signing()?, now, recv_window),
                    then: Then::Login(user.unwrap_or_default()),
                }
            }
            ExchangeMethod::FetchBalance => Plan::Signed {
                request: rest::account_request(&signing()?, now, recv_window),
                then: Then::Balance,
            },
            ExchangeMethod::CreateOrder => {
                let credentials = signing()?;
                let order = order_params(&markets, params)?;
                let new = NewOrder {
                    symbol: &order.id,
                    side: order.side,
                    order_type: order.order_type,
                    time_in_force: order.time_in_force,
                    quantity: &order.quantity,
                    price: order.price.as_deref(),
                    client_order_id: order.client_order_id.as_deref(),
                };
                Plan::Signed {
                    request: rest::new_order_request(&credentials, &new, now, recv_window),
                    then: Then::Order,
                }
            }
            ExchangeMethod::CancelOrder | ExchangeMethod::FetchOrder => {
                let credentials = signing()?;
                let (_, id) = market_of(&markets, params)?;
                let order = order_ref(params)?;
                let request = if call.method == ExchangeMethod::CancelOrder {
                    rest::cancel_order_request(&credentials, &id, order.as_ref(), now, recv_window)
                } else {
                    let number;
                    let param = match &order {
                        OwnedRef::Id(n) => {
                            number = n.to_string();
                            ("orderId", number.as_str())
                        }
                        OwnedRef::Client(client) => ("origClientOrderId", client.as_str()),
                    };
                    rest::signed_request(
                        &credentials,
                        rest::Method::Get,
                        "/api/v3/order",
                        &[("symbol", id.as_str()), param],
                        now,
                        recv_window,
                    )
                };
                Plan::Signed {
                    request,
                    then: Then::Order,
                }
            }
            ExchangeMethod::FetchOpenOrders => {
                let credentials = signing()?;
                let id = match params.get("symbol") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(market_of(&markets, params)?.1),
                };
                Plan::Signed {
                    request: rest::open_orders_request(
                        &credentials,
                        id.as_deref(),
                        now,
                        recv_window,
                    ),
                    then: Then::Orders,
                }
            }
            ExchangeMethod::FetchTickers
            | ExchangeMethod::FetchTrades
            | ExchangeMethod::FetchOhlcv
            | ExchangeMethod::FetchMyTrades => {
                return Err(ExchangeError::new(
                    ErrorKind::NotSupported,
                    format!(
                        "binance: {} is not offered (subscribe to the channels instead)",
                        call.method.name()
                    ),
                ))
            }
        };
        Ok(Prepared {
            plan,
            rest_base: self.settings.rest_url.trim_end_matches('/').to_owned(),
            markets,
        })
    }
}

/// What a call does.
enum Plan {
    /// Answered from memory.
    Ready(Value),
    /// A public GET, then reading its answer.
    Public { url: String, then: Then },
    /// A signed request, then reading its answer.
    Signed { request: SignedRequest, then: Then },
}

/// A call with what it needs to run away from the actor.
struct Prepared {
    plan: Plan,
    rest_base: String,
    markets: Arc<Markets>,
}

/// How an answer is read.
enum Then {
    Login(String),
    Balance,
    Order,
    Orders,
    OrderBook { symbol: String, limit: u64 },
    Ticker,
}

impl Prepared {
    async fn run(self) -> Result<Value, ExchangeError> {
        let Prepared {
            plan,
            rest_base,
            markets,
        } = self;
        let (body, then) = match plan {
            Plan::Ready(value) => return Ok(value),
            Plan::Public { url, then } => {
                let answer = http::send(&http::Request::get(&url), REST_TIMEOUT, MAX_BODY).await;
                (answered(answer)?, then)
            }
            Plan::Signed { request, then } => {
                let url = format!("{rest_base}{}", request.target());
                // The body's type is written by the client from `body`.
                let headers: Vec<(&str, &str)> = request
                    .headers()
                    .into_iter()
                    .filter(|(name, _)| !name.eq_ignore_ascii_case("content-type"))
                    .collect();
                let method = match request.method {
                    rest::Method::Get => http::Method::Get,
                    rest::Method::Post => http::Method::Post,
                    rest::Method::Delete => http::Method::Delete,
                };
                let body = request
                    .body()
                    .map(|b| ("application/x-www-form-urlencoded", b.as_bytes()));
                let http_request = http::Request {
                    method,
                    url: &url,
                    headers: &headers,
                    body,
                };
                let answer = http::send(&http_request, REST_TIMEOUT, MAX_BODY).await;
                (answered(answer)?, then)
            }
        };
        read_answer(&body, then, &markets)
    }
}

/// The body of a successful answer; Binance's refusals as ccxt errors.
fn answered(answer: Result<http::Response, HttpError>) -> Result<String, ExchangeError> {
    let response = answer.map_err(|error| {
        let kind = match error {
            HttpError::Timeout(_) => ErrorKind::RequestTimeout,
            HttpError::Url(_) | HttpError::Header { .. } => ErrorKind::BadRequest,
            _ => ErrorKind::NetworkError,
        };
        // HttpError names no header value and no query: nothing secret in it.
        ExchangeError::new(kind, format!("binance: {error}"))
    })?;
    let body = String::from_utf8_lossy(&response.body).into_owned();
    if response.status == 200 {
        return Ok(body);
    }
    let error = rest::parse_error(response.status, &body);
    let code = error
        .code
        .map_or_else(String::new, |c| format!(", code {c}"));
    Err(ExchangeError::new(
        error.kind,
        format!(
            "binance: {} (HTTP {}{code})",
            error.message, response.status
        ),
    ))
}

fn unreadable(error: impl std::fmt::Display) -> ExchangeError {
    ExchangeError::new(
        ErrorKind::ExchangeNotAvailable,
        format!("binance: unreadable answer: {error}"),
    )
}

fn read_answer(body: &str, then: Then, markets: &Markets) -> Result<Value, ExchangeError> {
    Ok(match then {
        Then::Login(user) => {
            rest::parse_balance(body).map_err(unreadable)?;
            json!({"exchange": NAME, "user": user, "logged_in": true})
        }
        Then::Balance => json_of(&rest::parse_balance(body).map_err(unreadable)?),
        Then::Order => json_of(&rest::parse_order(body, markets).map_err(unreadable)?),
        Then::Orders => json_of(&rest::parse_orders(body, markets).map_err(unreadable)?),
        Then::OrderBook { symbol, limit } => {
            let snapshot = DepthSnapshot::parse(body).map_err(unreadable)?;
            let mut sync = DepthSync::new(symbol);
            sync.apply_snapshot(snapshot).map_err(unreadable)?;
            let depth = usize::try_from(limit).unwrap_or(usize::MAX);
            json_of(
                &sync
                    .order_book(depth)
                    .ok_or_else(|| unreadable("no book"))?,
            )
        }
        Then::Ticker => ticker_of_rest(body, markets)?,
    })
}

/// `GET /api/v3/ticker/24hr` → ccxt Ticker. ccxt's `parseTicker` reads the REST names as its
/// `parseWsTicker` reads the stream's, so the answer is renamed to the `24hrTicker` event's
/// fields and read by the same parser; `info` is the REST answer.
pub fn ticker_of_rest(body: &str, markets: &Markets) -> Result<Value, ExchangeError> {
    const NAMES: &[(&str, &str)] = &[
        ("symbol", "s"),
        ("priceChange", "p"),
        ("priceChangePercent", "P"),
        ("weightedAvgPrice", "w"),
        ("prevClosePrice", "x"),
        ("lastPrice", "c"),
        ("lastQty", "Q"),
        ("bidPrice", "b"),
        ("bidQty", "B"),
        ("askPrice", "a"),
        ("askQty", "A"),
        ("openPrice", "o"),
        ("highPrice", "h"),
        ("lowPrice", "l"),
        ("volume", "v"),
        ("quoteVolume", "q"),
        ("openTime", "O"),
        ("closeTime", "C"),
    ];
    let rest: Map<String, Value> = serde_json::from_str(body).map_err(unreadable)?;
    let mut data = Map::new();
    data.insert("e".into(), "24hrTicker".into());
    for (long, short) in NAMES {
        if let Some(value) = rest.get(*long) {
            data.insert((*short).into(), value.clone());
        }
    }
    let id = rest
        .get("symbol")
        .and_then(Value::as_str)
        .ok_or_else(|| unreadable("no symbol"))?;
    let text = json!({"stream": format!("{}@ticker", id.to_ascii_lowercase()), "data": data});
    match parse_message(&text.to_string(), markets) {
        Ok(message) => match message.event {
            StreamEvent::Ticker(mut ticker) => {
                ticker.info = Info::from_json(body).map_err(unreadable)?;
                Ok(json_of(&ticker))
            }
            _ => Err(unreadable("not a ticker")),
        },
        Err(error) => Err(unreadable(error)),
    }
}

fn json_of(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("ccxt structures serialize")
}

fn bad(message: &str) -> ExchangeError {
    ExchangeError::new(ErrorKind::BadRequest, message)
}

/// The signing credentials of a call: the API key and the secret key. Neither is ever put in
/// an error.
fn signing_credentials(
    credentials: Option<&Credentials>,
) -> Result<rest::Credentials, ExchangeError> {
    let credentials = credentials
        .ok_or_else(|| ExchangeError::new(ErrorKind::AuthenticationError, "not logged in"))?;
    let secret = credentials.secret.as_deref().unwrap_or_default();
    if credentials.account.is_empty() || secret.is_empty() {
        return Err(ExchangeError::new(
            ErrorKind::AuthenticationError,
            "binance needs an API key and its secret key",
        ));
    }
    Ok(rest::Credentials::new(credentials.account.as_str(), secret))
}

/// The ccxt symbol of a call and its Binance id.
fn market_of(
    markets: &Markets,
    params: &Map<String, Value>,
) -> Result<(String, String), ExchangeError> {
    let symbol = match params.get("symbol") {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => return Err(bad("symbol required")),
        Some(_) => return Err(bad("symbol must be a string")),
    };
    let market = markets.by_symbol(symbol).ok_or_else(|| {
        let shown: String = symbol.chars().take(32).collect();
        ExchangeError::new(
            ErrorKind::BadSymbol,
            format!("binance has no market {shown:?}"),
        )
    })?;
    Ok((market.symbol.clone(), market.id.clone()))
}

/// An order id of a call: Binance's number, or the client's id (`params.clientOrderId`).
enum OwnedRef {
    Id(u64),
    Client(String),
}

impl OwnedRef {
    fn as_ref(&self) -> OrderRef<'_> {
        match self {
            OwnedRef::Id(n) => OrderRef::Id(*n),
            OwnedRef::Client(c) => OrderRef::ClientId(c),
        }
    }
}

fn order_ref(params: &Map<String, Value>) -> Result<OwnedRef, ExchangeError> {
    let id = match params.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.parse::<u64>().ok()),
        Some(Value::Number(n)) => Some(n.as_u64()),
        None | Some(Value::Null) => None,
        Some(_) => return Err(bad("id must be a string")),
    };
    let client = extra(params)?
        .get("clientOrderId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match (id, client) {
        (Some(Some(n)), _) => Ok(OwnedRef::Id(n)),
        (_, Some(client)) => Ok(OwnedRef::Client(client)),
        // Not a number Binance gives out: no such order.
        (Some(None), None) => Err(ExchangeError::new(
            ErrorKind::OrderNotFound,
            "no such order",
        )),
        (None, None) => Err(bad("id required")),
    }
}

/// ccxt's `params` member.
fn extra(params: &Map<String, Value>) -> Result<Map<String, Value>, ExchangeError> {
    match params.get("params") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(bad("params must be an object")),
    }
}

/// A `create_order` in Binance's terms.
struct OrderParams {
    id: String,
    side: Side,
    order_type: OrderType,
    time_in_force: Option<TimeInForce>,
    quantity: String,
    price: Option<String>,
    client_order_id: Option<String>,
}

/// Decimals of a precision step (`0.001` → 3).
fn step_decimals(step: Option<f64>) -> Option<usize> {
    let step = step.filter(|s| s.is_finite() && *s > 0.0)?;
    let text = format!("{step}");
    Some(
        text.split_once('.')
            .map_or(0, |(_, fraction)| fraction.len()),
    )
}

/// A positive decimal text for Binance from a JSON number or string. A number is written in
/// plain notation, cut (amounts, as ccxt's `amountToPrecision`) or rounded (prices, as
/// `priceToPrecision`) to the market's decimals; a string is sent exactly as given.
fn decimal_param(
    value: &Value,
    what: &str,
    decimals: Option<usize>,
    round: bool,
) -> Result<String, ExchangeError> {
    let invalid = |m: String| ExchangeError::new(ErrorKind::InvalidOrder, m);
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            let v = n
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| invalid(format!("{what}: not a number")))?;
            match decimals {
                Some(d) if round => format!("{v:.d$}"),
                Some(d) => {
                    // Rust writes floats in plain notation, shortest first.
                    let plain = format!("{v}");
                    match plain.split_once('.') {
                        Some((int, fraction)) if fraction.len() > d => {
                            if d == 0 {
                                int.to_owned()
                            } else {
                                format!("{int}.{}", &fraction[..d])
                            }
                        }
                        _ => plain,
                    }
                }
                None => format!("{v}"),
            }
        }
        _ => return Err(bad(&format!("{what} must be a number"))),
    };
    match Decimal::parse(&text) {
        Some(d) if d.is_positive() => Ok(text),
        Some(_) => Err(invalid(format!("{what} must be above zero"))),
        None => Err(invalid(format!("{what} is not a plain decimal number"))),
    }
}

/// ccxt's `createOrder(symbol, type, side, amount, price, params)` as named members; `params`
/// may carry `timeInForce` (GTC, IOC, FOK, PO), `postOnly` and `clientOrderId`.
fn order_params(
    markets: &Markets,
    params: &Map<String, Value>,
) -> Result<OrderParams, ExchangeError> {
    let (symbol, id) = market_of(markets, params)?;
    let market = markets
        .by_symbol(&symbol)
        .ok_or_else(|| bad("unknown symbol"))?;
    let text = |name: &str| params.get(name).and_then(Value::as_str);
    let order_type: OrderType = text("type")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad("type must be \"limit\" or \"market\""))?;
    let side: Side = text("side")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("side must be \"buy\" or \"sell\""))?;
    let amount = params.get("amount").ok_or_else(|| bad("amount required"))?;
    let quantity = decimal_param(
        amount,
        "amount",
        step_decimals(market.precision.amount),
        false,
    )?;
    let price = match (order_type, params.get("price")) {
        (OrderType::Market, _) => None,
        (OrderType::Limit, None | Some(Value::Null)) => {
            return Err(bad("a limit order needs a price"))
        }
        (OrderType::Limit, Some(price)) => Some(decimal_param(
            price,
            "price",
            step_decimals(market.precision.price),
            true,
        )?),
    };
    let extra = extra(params)?;
    let post_only = extra
        .get("postOnly")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let time_in_force = match extra.get("timeInForce") {
        None | Some(Value::Null) => post_only.then_some(TimeInForce::Po),
        Some(Value::String(t)) => Some(t.parse().map_err(|_| {
            let shown: String = t.chars().take(16).collect();
            ExchangeError::new(ErrorKind::InvalidOrder, format!("timeInForce {shown:?}"))
        })?),
        Some(_) => return Err(bad("timeInForce must be a string")),
    };
    // `postOnly: true` makes a GTC limit order a maker-only one (LIMIT_MAKER), whichever way the
    // time in force was given; with IOC or FOK it is a contradiction.
    let time_in_force = match (post_only, time_in_force) {
        (false, tif) => tif,
        (true, None | Some(TimeInForce::Gtc | TimeInForce::Po)) => Some(TimeInForce::Po),
        (true, Some(_)) => {
            return Err(ExchangeError::new(
                ErrorKind::InvalidOrder,
                "postOnly needs timeInForce GTC",
            ))
        }
    };
    if order_type == OrderType::Market && time_in_force.is_some_and(|t| t != TimeInForce::Ioc) {
        return Err(ExchangeError::new(
            ErrorKind::InvalidOrder,
            "a market order is immediate-or-cancel on Binance",
        ));
    }
    let client_order_id = match extra.get("clientOrderId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("clientOrderId must be a string")),
    };
    Ok(OrderParams {
        id,
        side,
        order_type,
        time_in_force,
        quantity,
        price,
        client_order_id,
    })
}

impl Actor for BinanceAdapter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let feed = BinanceFeed {
            base: self.settings.ws_url.trim_end_matches('/').to_owned(),
        };
        let settings = UpstreamSettings {
            heartbeat_timeout: self.settings.heartbeat_timeout,
            ..UpstreamSettings::default()
        };
        self.upstream = Some(Upstream::spawn(
            Arc::new(feed),
            settings,
            ctx.address().recipient(),
        ));
        self.load_markets(ctx);
    }
}

impl Handler<Demand> for BinanceAdapter {
    type Result = ();

    fn handle(&mut self, msg: Demand, ctx: &mut Context<Self>) {
        match msg {
            Demand::Start { channel } => {
                debug!("binance: publishing {channel}");
                self.wanted.insert(channel);
            }
            Demand::Stop { channel } => {
                debug!("binance: no longer publishing {channel}");
                self.wanted.remove(&channel);
                self.warned.remove(&channel);
            }
        }
        self.refresh(ctx);
    }
}

impl Handler<UpstreamEvent> for BinanceAdapter {
    type Result = ();

    fn handle(&mut self, event: UpstreamEvent, ctx: &mut Context<Self>) {
        self.on_upstream(event, ctx);
    }
}

impl Handler<ExchangeCall> for BinanceAdapter {
    type Result = ResponseFuture<Result<Bytes, ExchangeError>>;

    fn handle(&mut self, call: ExchangeCall, _: &mut Context<Self>) -> Self::Result {
        let plan = self.prepare(&call);
        Box::pin(async move {
            let value = plan?.run().await?;
            Ok(Bytes::from(
                serde_json::to_vec(&value).expect("JSON values serialize"),
            ))
        })
    }
}

impl Handler<GetStats> for BinanceAdapter {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats())
    }
}

#[cfg(test)]
impl Handler<FullBook> for BinanceAdapter {
    type Result = Option<DepthSnapshot>;

    fn handle(&mut self, msg: FullBook, _: &mut Context<Self>) -> Self::Result {
        self.books.get(&msg.0).and_then(|b| b.sync.snapshot())
    }
}

#[cfg(test)]
mod order_params_tests {
    use serde_json::json;

    use super::*;
    use crate::adapters::capture::{records, Record};

    fn markets() -> Markets {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/exchanges/BINANCE.0"
        ));
        let body = records(text)
            .find_map(|r| match r {
                Ok(Record::Http { body, .. }) => Some(body),
                _ => None,
            })
            .expect("the market list");
        Markets::from_exchange_info(body).expect("it parses")
    }

    fn params(extra: serde_json::Value) -> Map<String, Value> {
        let order = json!({"symbol": "NKN/USDT", "type": "limit", "side": "buy",
                           "amount": "100", "price": "0.35", "params": extra});
        order.as_object().unwrap().clone()
    }

    #[test]
    fn post_only_makes_a_maker_only_order_whichever_way_it_is_asked() {
        let markets = markets();
        for extra in [
            json!({"postOnly": true}),
            json!({"postOnly": true, "timeInForce": "GTC"}),
            json!({"timeInForce": "PO"}),
        ] {
            let order = order_params(&markets, &params(extra.clone())).unwrap();
            assert_eq!(order.time_in_force, Some(TimeInForce::Po), "{extra}");
        }
        let plain = order_params(&markets, &params(json!({"timeInForce": "GTC"}))).unwrap();
        assert_eq!(plain.time_in_force, Some(TimeInForce::Gtc));
        let contradiction = order_params(
            &markets,
            &params(json!({"postOnly": true, "timeInForce": "IOC"})),
        );
        assert!(matches!(contradiction, Err(e) if e.kind == ErrorKind::InvalidOrder));
    }
}
