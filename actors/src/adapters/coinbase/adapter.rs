//! The Coinbase Exchange adapter actor: its market list from `GET /products`, its public feed
//! over one [`Upstream`] WebSocket, published in ccxt form on the broker's channels.
//!
//! # Channels
//! The Router's [`Demand`] for `book:coinbase:<symbol>`, `ticker:coinbase:<symbol>` and
//! `trades:coinbase:<symbol>` becomes Coinbase's `level2`, `ticker` and `matches` channels for
//! the symbol's product (`BTC/USD` → `BTC-USD`), each subscribed with `heartbeat` so that an
//! idle product still proves the connection alive. A change of demand subscribes and
//! unsubscribes only the difference; a burst of demand is sent as one change. A symbol missing
//! from the market list, or another kind of channel, is warned about once, announced on
//! `notifications`, and never published.
//!
//! # Books
//! A level2 `snapshot` starts a product's book and each `l2update` changes it; after each the
//! top `publish_depth` levels go out as a ccxt OrderBook. Level2 has no sequence and no
//! checksum: a book found crossed, an update before its snapshot or an update that cannot be
//! read means the book is wrong, and the only recovery Coinbase offers is a new snapshot. The
//! adapter then announces `resyncing` (with the reason), unsubscribes and subscribes level2 for
//! that product alone, publishes nothing for it until the new snapshot, and announces `up` when
//! no book is left resyncing. A product that resyncs again and again waits longer each time
//! (the reconnect backoff); a snapshot that does not come within the heartbeat timeout makes
//! the connection again.
//!
//! # Health (`notifications`, `{"type":"adapter","exchange":"coinbase","status":...}`)
//! `up` once the market list is loaded and again after each recovery; `down` (with `reason`) at
//! the first failure of a streak (the market list, the connection), not repeated while it
//! lasts; `resyncing` (with `symbol` and `reason`) when a book is rebuilt. A refused channel
//! (unknown symbol, unsupported kind, Coinbase's own `error` message) is announced once with
//! the current status, `channel` or `reason`, and the ccxt `error` kind.
//!
//! # Calls ([`ExchangeCall`])
//! `load_markets` answers the market list; `fetch_order_book` the live book of a subscribed
//! symbol; `fetch_ticker` the last ticker of a subscribed symbol. Anything else, and every
//! private method, is `NotSupported`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, error, info, warn};
use rpc_crypto_proto::ccxt::ErrorKind;
use rpc_crypto_proto::json::JsonText;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{parse_message, FeedError, L2Update, Level2Books, Markets, Message, Snapshot};
use crate::adapters::contract::{ExchangeCall, ExchangeError, ExchangeMethod};
use crate::adapters::http;
use crate::adapters::truncated;
use crate::adapters::upstream::{Feed, Upstream, UpstreamEvent, UpstreamSettings};
use crate::channel::NOTIFICATIONS;
use crate::metrics::{metrics, ExchangeMetrics};
use crate::router::{Demand, Publish};
use crate::settings::duration;

/// The exchange's name in channels, calls and notifications.
pub const NAME: &str = "coinbase";
/// How long `GET /products` may take, all in all.
const REST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest `/products` body taken (about 400 bytes a product).
const MAX_PRODUCTS_BODY: usize = 16 << 20;
/// The longest reason put in a notification.
const MAX_REASON: usize = 256;
/// `fetch_order_book`'s default and largest `limit`.
const DEFAULT_FETCH_DEPTH: usize = 100;
const MAX_FETCH_DEPTH: usize = 1000;
/// Distinct kinds of unreadable message counted by name; the rest count as `other`.
const MAX_ERROR_KINDS: usize = 64;

/// Coinbase's feed channels.
const LEVEL2: &str = "level2";
const TICKER: &str = "ticker";
const MATCHES: &str = "matches";
const HEARTBEAT: &str = "heartbeat";

/// The `[coinbase]` config table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoinbaseSettings {
    /// Run the Coinbase adapter.
    pub enabled: bool,
    /// The public WebSocket feed.
    pub ws_url: String,
    /// The REST API (`{rest_url}/products`).
    pub rest_url: String,
    /// Levels per side in a `book:coinbase:<symbol>` publication.
    pub publish_depth: usize,
    /// No message for this long (data or heartbeat): the connection is dead, make it again.
    #[serde(with = "duration")]
    pub heartbeat_timeout: Duration,
}

impl Default for CoinbaseSettings {
    fn default() -> Self {
        CoinbaseSettings {
            enabled: false,
            ws_url: "wss://ws-feed.exchange.coinbase.com".into(),
            rest_url: "https://api.exchange.coinbase.com".into(),
            publish_depth: 20,
            heartbeat_timeout: Duration::from_secs(30),
        }
    }
}

impl CoinbaseSettings {
    /// A problem with the settings, for config validation.
    pub fn check(&self) -> Result<(), String> {
        if !(self.ws_url.starts_with("wss://") || self.ws_url.starts_with("ws://")) {
            return Err(format!(
                "coinbase: ws_url {:?} is no ws(s):// URL",
                self.ws_url
            ));
        }
        if !(self.rest_url.starts_with("https://") || self.rest_url.starts_with("http://")) {
            return Err(format!(
                "coinbase: rest_url {:?} is no http(s):// URL",
                self.rest_url
            ));
        }
        if self.publish_depth == 0 {
            return Err("coinbase: publish_depth must be above zero".into());
        }
        if self.heartbeat_timeout.is_zero() {
            return Err("coinbase: heartbeat_timeout must be above zero".into());
        }
        Ok(())
    }
}

/// A subscribe or unsubscribe request for one feed channel.
fn request(kind: &str, channel: &str, products: &[&str], heartbeat: bool) -> String {
    let channels: &[&str] = if heartbeat {
        &[channel, HEARTBEAT]
    } else {
        &[channel]
    };
    json!({"type": kind, "product_ids": products, "channels": channels}).to_string()
}

/// Upstream channel keys (`level2:BTC-USD`) grouped by feed channel, products sorted.
fn by_channel<'a>(keys: impl IntoIterator<Item = &'a String>) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for key in keys {
        if let Some((channel, product)) = key.split_once(':') {
            groups.entry(channel).or_default().push(product);
        }
    }
    groups
}

/// The subscribe requests for upstream channel keys: one per feed channel, each with
/// `heartbeat` for its products (the `heartbeat:<product>` keys themselves only mark which
/// products have some channel, for unsubscribing).
pub fn subscribe_requests(keys: &BTreeSet<String>) -> Vec<String> {
    by_channel(keys)
        .into_iter()
        .filter(|(channel, _)| *channel != HEARTBEAT)
        .map(|(channel, products)| request("subscribe", channel, &products, true))
        .collect()
}

/// The requests for a change of upstream channel keys: unsubscribes first (`heartbeat` only for
/// products left with no channel), then subscribes.
pub fn change_requests(added: &BTreeSet<String>, removed: &BTreeSet<String>) -> Vec<String> {
    let mut requests: Vec<String> = by_channel(removed)
        .into_iter()
        .map(|(channel, products)| request("unsubscribe", channel, &products, false))
        .collect();
    requests.extend(subscribe_requests(added));
    requests
}

/// What the [`Upstream`] connection needs to know about Coinbase. Its channels are keys
/// `<feed channel>:<product id>`: `level2:BTC-USD`, `ticker:BTC-USD`, `matches:BTC-USD`, and
/// `heartbeat:BTC-USD` while the product has any of them.
struct CoinbaseFeed {
    url: String,
}

impl Feed for CoinbaseFeed {
    fn url(&self, _: &BTreeSet<String>) -> String {
        self.url.clone()
    }

    fn subscribe(&self, channels: &BTreeSet<String>) -> Vec<String> {
        subscribe_requests(channels)
    }

    fn change(&self, added: &BTreeSet<String>, removed: &BTreeSet<String>) -> Option<Vec<String>> {
        Some(change_requests(added, removed))
    }
}

/// The broker channel kinds this adapter publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Book,
    Ticker,
    Trades,
}

/// What is wanted of one product.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Wanted {
    symbol: String,
    book: bool,
    ticker: bool,
    trades: bool,
}

/// The adapter's health, as last announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Starting,
    Up,
    Down,
    Resyncing,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Up => "up",
            Health::Down => "down",
            Health::Resyncing => "resyncing",
        }
    }
}

/// What the adapter has done, for tests and monitoring.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CoinbaseCounts {
    /// Feed messages received.
    pub messages: u64,
    pub heartbeats: u64,
    /// `subscriptions` answers.
    pub subscriptions: u64,
    /// Level2 snapshots applied, by product.
    pub snapshots: BTreeMap<String, u64>,
    /// Level2 updates applied, by product.
    pub updates: BTreeMap<String, u64>,
    /// Level2 updates dropped while their book waited for a new snapshot.
    pub dropped: u64,
    /// Books found crossed.
    pub crossed: u64,
    /// Resubscriptions for a new snapshot, by product.
    pub resyncs: BTreeMap<String, u64>,
    /// Tickers and trades published.
    pub tickers: u64,
    pub trades: u64,
    /// Messages for products or channels not wanted (in flight after an unsubscribe).
    pub ignored: u64,
    /// Unreadable or refused messages, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Connections made and lost.
    pub connects: u64,
    pub disconnects: u64,
}

/// Asks the adapter for its [`CoinbaseCounts`].
#[derive(Message)]
#[rtype(result = "CoinbaseCounts")]
pub struct GetCoinbaseCounts;

/// Why a market list fetch failed.
#[derive(Debug, thiserror::Error)]
enum ProductsError {
    #[error("{0}")]
    Http(#[from] http::HttpError),
    #[error("the body is not UTF-8")]
    Utf8,
    #[error("{0}")]
    Feed(#[from] FeedError),
    #[error("no product listed")]
    Empty,
}

/// The Coinbase adapter actor.
pub struct CoinbaseAdapter {
    settings: CoinbaseSettings,
    publish: Recipient<Publish>,
    /// Reconnects and repeated resyncs back off from `min` to `max`, market list retries from
    /// twice `min` (1 s by default) to `max`.
    min_backoff: Duration,
    max_backoff: Duration,
    markets: Option<Arc<Markets>>,
    upstream: Option<Upstream>,
    /// Broker channels the Router demands.
    demanded: BTreeSet<String>,
    /// Demanded channels refused (warned and announced once per demand).
    refused_channels: HashSet<String>,
    /// Products Coinbase refused to subscribe (left out while demanded).
    refused_products: HashMap<String, String>,
    /// Refusals logged and announced, by Coinbase's message and reason.
    refusals_seen: HashSet<String>,
    /// Products subscribed, by product id.
    wanted: HashMap<String, Wanted>,
    /// The upstream channel keys last set.
    upstream_channels: BTreeSet<String>,
    sync_scheduled: bool,
    /// A connection is up: a `Connected` is then a change, not a new connection.
    live: bool,
    books: Level2Books,
    /// Products waiting for a new snapshot, with the resync's number.
    resyncing: HashMap<String, u64>,
    resync_number: u64,
    /// Resyncs in a row per product (no snapshot kept in between).
    resync_streak: HashMap<String, u32>,
    /// Products whose resync was logged at warn level already.
    resync_logged: HashSet<String>,
    /// The last ticker of each subscribed product, as published.
    tickers: HashMap<String, Bytes>,
    health: Health,
    products_failures: u32,
    counts: CoinbaseCounts,
    /// Its series in `/metrics`.
    metrics: ExchangeMetrics,
}

/// The backoff before attempt `n` (1-based): `min` doubled `n - 1` times, at most `max`.
fn backoff(n: u32, min: Duration, max: Duration) -> Duration {
    min.saturating_mul(1 << n.saturating_sub(1).min(16))
        .min(max)
}

/// A counted kind of unreadable message.
fn error_kind(error: &FeedError) -> String {
    match error {
        FeedError::Json(_) => "malformed JSON".into(),
        FeedError::UnknownType(t) => format!("unknown type {t:?}"),
        FeedError::Missing(field) => format!("missing {field}"),
        FeedError::BadField { field, .. } => format!("malformed {field}"),
        FeedError::UnknownProduct(_) => "unknown product".into(),
        FeedError::NotSynced(_) => "update before snapshot".into(),
        FeedError::Crossed { .. } => "crossed book".into(),
        FeedError::Refused { .. } => "refused".into(),
    }
}

/// Just enough of a frame that did not parse to tell whose book it was for.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "type")]
    kind: Option<String>,
    product_id: Option<String>,
}

impl CoinbaseAdapter {
    /// An adapter publishing through `publish` (the Router).
    pub fn new(settings: CoinbaseSettings, publish: Recipient<Publish>) -> Self {
        let defaults = UpstreamSettings::default();
        CoinbaseAdapter {
            settings,
            publish,
            min_backoff: defaults.min_backoff,
            max_backoff: defaults.max_backoff,
            markets: None,
            upstream: None,
            demanded: BTreeSet::new(),
            refused_channels: HashSet::new(),
            refused_products: HashMap::new(),
            refusals_seen: HashSet::new(),
            wanted: HashMap::new(),
            upstream_channels: BTreeSet::new(),
            sync_scheduled: false,
            live: false,
            books: Level2Books::new(),
            resyncing: HashMap::new(),
            resync_number: 0,
            resync_streak: HashMap::new(),
            resync_logged: HashSet::new(),
            tickers: HashMap::new(),
            health: Health::Starting,
            products_failures: 0,
            counts: CoinbaseCounts::default(),
            metrics: metrics().exchange(NAME),
        }
    }

    /// Backs off from `min` to `max` (reconnects, market list retries, repeated resyncs)
    /// instead of 500 ms to 60 s.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    fn send_json(&self, channel: String, value: &impl Serialize) -> Option<JsonText> {
        match JsonText::serialize(value) {
            Ok(data) => {
                self.publish.do_send(Publish::new(channel, data.clone()));
                Some(data)
            }
            Err(error) => {
                error!("coinbase: {channel} not published: {error}");
                None
            }
        }
    }

    fn announce(&self, status: &str, extra: Value) {
        let mut notice = Map::new();
        notice.insert("type".into(), "adapter".into());
        notice.insert("exchange".into(), NAME.into());
        notice.insert("status".into(), status.into());
        if let Value::Object(extra) = extra {
            notice.extend(extra);
        }
        self.send_json(NOTIFICATIONS.to_owned(), &Value::Object(notice));
    }

    /// Announces a new health (with `extra` members), if it is new.
    fn set_health(&mut self, health: Health, extra: Value) {
        if self.health != health {
            self.health = health;
            self.announce(health.as_str(), extra);
        }
    }

    // ---- the market list ----

    fn fetch_markets(&mut self, ctx: &mut Context<Self>) {
        let url = format!("{}/products", self.settings.rest_url.trim_end_matches('/'));
        let fetch = async move {
            let body = http::get(&url, REST_TIMEOUT, MAX_PRODUCTS_BODY).await?;
            let body = String::from_utf8(body).map_err(|_| ProductsError::Utf8)?;
            let markets = Markets::from_products(&body)?;
            if markets.is_empty() {
                return Err(ProductsError::Empty);
            }
            Ok(markets)
        };
        ctx.spawn(
            fetch
                .into_actor(self)
                .map(|result, act, ctx| act.markets_fetched(result, ctx)),
        );
    }

    fn markets_fetched(&mut self, result: Result<Markets, ProductsError>, ctx: &mut Context<Self>) {
        match result {
            Ok(markets) => {
                info!(
                    "coinbase: {} markets{}",
                    markets.len(),
                    if self.products_failures > 0 {
                        format!(" after {} failed fetches", self.products_failures)
                    } else {
                        String::new()
                    }
                );
                if !markets.skipped().is_empty() {
                    debug!("coinbase: products left out: {:?}", markets.skipped());
                }
                self.markets = Some(Arc::new(markets));
                self.products_failures = 0;
                self.set_health(Health::Up, json!({}));
                self.sync_channels();
            }
            Err(error) => {
                self.products_failures = self.products_failures.saturating_add(1);
                let retry = backoff(
                    self.products_failures,
                    self.min_backoff * 2,
                    self.max_backoff,
                );
                let reason = truncated(format!("GET /products: {error}"), MAX_REASON);
                if self.health == Health::Down {
                    debug!("coinbase: {reason} (still failing)");
                } else {
                    warn!("coinbase: {reason} (retrying with backoff; logged once until it works)");
                    self.set_health(Health::Down, json!({ "reason": reason }));
                }
                ctx.run_later(retry, |act, ctx| act.fetch_markets(ctx));
            }
        }
    }

    // ---- demand ----

    fn schedule_sync(&mut self, ctx: &mut Context<Self>) {
        if !self.sync_scheduled {
            self.sync_scheduled = true;
            // After the messages already queued: a burst of demand is one change upstream.
            ctx.run_later(Duration::ZERO, |act, _| {
                act.sync_scheduled = false;
                act.sync_channels();
            });
        }
    }

    /// A demanded channel's kind and product, or why it is refused.
    fn resolve(&self, markets: &Markets, channel: &str) -> Result<(Kind, String), ExchangeError> {
        let mut parts = channel.splitn(3, ':');
        let (kind, exchange, symbol) = match (parts.next(), parts.next(), parts.next()) {
            (Some(k), Some(e), Some(s)) => (k, e, s),
            _ => {
                return Err(ExchangeError::new(
                    ErrorKind::BadRequest,
                    format!("{channel}: not a <kind>:coinbase:<symbol> channel"),
                ))
            }
        };
        let kind = match (kind, exchange) {
            ("book", NAME) => Kind::Book,
            ("ticker", NAME) => Kind::Ticker,
            ("trades", NAME) => Kind::Trades,
            _ => {
                return Err(ExchangeError::new(
                    ErrorKind::NotSupported,
                    format!("{channel}: coinbase publishes book:, ticker: and trades: channels"),
                ))
            }
        };
        let product = markets.id_of(symbol).ok_or_else(|| {
            ExchangeError::new(
                ErrorKind::BadSymbol,
                format!("{channel}: no Coinbase market {symbol}"),
            )
        })?;
        if let Some(reason) = self.refused_products.get(product) {
            return Err(ExchangeError::new(
                ErrorKind::BadSymbol,
                format!("{channel}: {reason}"),
            ));
        }
        Ok((kind, product.to_owned()))
    }

    /// Brings the upstream subscriptions in line with the demand.
    fn sync_channels(&mut self) {
        let Some(markets) = self.markets.clone() else {
            return; // the demand waits for the market list
        };
        // A refused product is tried again when it is demanded anew.
        let demanded_products: HashSet<&str> = self
            .demanded
            .iter()
            .filter_map(|c| c.splitn(3, ':').nth(2))
            .filter_map(|symbol| markets.id_of(symbol))
            .collect();
        self.refused_products
            .retain(|product, _| demanded_products.contains(product.as_str()));

        let mut wanted: HashMap<String, Wanted> = HashMap::new();
        let mut refused = Vec::new();
        for channel in &self.demanded {
            match self.resolve(&markets, channel) {
                Ok((kind, product)) => {
                    let entry = wanted.entry(product.clone()).or_insert_with(|| Wanted {
                        symbol: markets.symbol(&product).unwrap_or_default().to_owned(),
                        ..Wanted::default()
                    });
                    match kind {
                        Kind::Book => entry.book = true,
                        Kind::Ticker => entry.ticker = true,
                        Kind::Trades => entry.trades = true,
                    }
                }
                Err(error) => refused.push((channel.clone(), error)),
            }
        }
        for (channel, error) in refused {
            if self.refused_channels.insert(channel.clone()) {
                warn!("coinbase: {} (nothing is published on it)", error.message);
                self.announce(
                    self.health.as_str(),
                    json!({
                        "channel": channel,
                        "error": error.kind.name(),
                        "reason": truncated(error.message, MAX_REASON),
                    }),
                );
            }
        }

        // What is no longer wanted is forgotten.
        for (product, old) in &self.wanted {
            let new = wanted.get(product);
            if old.book && !new.is_some_and(|w| w.book) {
                self.books.remove(product);
                self.resyncing.remove(product);
                self.resync_streak.remove(product);
            }
            if old.ticker && !new.is_some_and(|w| w.ticker) {
                self.tickers.remove(product);
            }
        }
        let mut keys = BTreeSet::new();
        for (product, w) in &wanted {
            for (on, channel) in [(w.book, LEVEL2), (w.ticker, TICKER), (w.trades, MATCHES)] {
                if on {
                    keys.insert(format!("{channel}:{product}"));
                }
            }
            keys.insert(format!("{HEARTBEAT}:{product}"));
        }
        self.wanted = wanted;
        if keys != self.upstream_channels {
            debug!("coinbase: {} upstream channels", keys.len());
            if keys.is_empty() {
                // The connection closes, quietly: the next one is a new one.
                self.live = false;
                self.books = Level2Books::new();
                self.resyncing.clear();
                if matches!(self.health, Health::Down | Health::Resyncing) {
                    self.set_health(Health::Up, json!({}));
                }
            }
            if let Some(upstream) = &self.upstream {
                upstream.set_channels(keys.clone());
            }
            self.upstream_channels = keys;
        }
    }

    // ---- the feed ----

    fn on_connected(&mut self, channels: usize) {
        if self.live {
            return; // a change of subscriptions on the live connection
        }
        if self.upstream_channels.is_empty() {
            return; // a leftover of a connection closed since for want of channels
        }
        self.live = true;
        self.counts.connects += 1;
        info!("coinbase: connected, {channels} upstream channels");
        // Books are rebuilt from this connection's snapshots.
        self.books = Level2Books::new();
        self.resyncing.clear();
        self.resync_streak.clear();
        self.set_health(Health::Up, json!({}));
    }

    fn on_disconnected(&mut self, reason: String) {
        self.live = false;
        self.counts.disconnects += 1;
        self.metrics.reconnect();
        // Nothing stale is served while there is no feed.
        self.books = Level2Books::new();
        self.resyncing.clear();
        let reason = truncated(reason, MAX_REASON);
        if self.health == Health::Down {
            debug!("coinbase: feed still down: {reason}");
        } else {
            warn!("coinbase: feed down: {reason} (reconnecting; logged once until it is back)");
            self.set_health(Health::Down, json!({ "reason": reason }));
        }
    }

    fn on_message(&mut self, text: &str, ctx: &mut Context<Self>) {
        self.counts.messages += 1;
        let Some(markets) = self.markets.clone() else {
            self.counts.ignored += 1;
            return;
        };
        match parse_message(text) {
            Ok(Message::Snapshot(snapshot)) => self.on_snapshot(&markets, &snapshot, ctx),
            Ok(Message::L2Update(update)) => self.on_update(&markets, &update, ctx),
            Ok(Message::Ticker(ticker)) => {
                if !self.wants(ticker.product_id, Kind::Ticker) {
                    self.counts.ignored += 1;
                    return;
                }
                match ticker.to_ccxt(&markets) {
                    Ok(value) => {
                        self.counts.tickers += 1;
                        let channel = format!("ticker:{NAME}:{}", value.symbol);
                        self.metrics.published(value.timestamp.0);
                        if let Some(data) = self.send_json(channel, &value) {
                            self.tickers
                                .insert(ticker.product_id.to_owned(), data.into_bytes());
                        }
                    }
                    Err(error) => self.count_error(&error, "ticker"),
                }
            }
            Ok(Message::Match(trade)) => {
                if !self.wants(trade.product_id, Kind::Trades) {
                    self.counts.ignored += 1;
                    return;
                }
                match trade.to_ccxt(&markets) {
                    Ok(value) => {
                        self.counts.trades += 1;
                        self.send_json(format!("trades:{NAME}:{}", value.symbol), &value);
                        self.metrics.published(value.timestamp.0);
                    }
                    Err(error) => self.count_error(&error, "match"),
                }
            }
            Ok(Message::Heartbeat(_)) => self.counts.heartbeats += 1,
            Ok(Message::Subscriptions(subscriptions)) => {
                self.counts.subscriptions += 1;
                debug!("coinbase: subscribed {:?}", subscriptions.channels);
            }
            Err(FeedError::Refused { message, reason }) => self.on_refused(message, reason),
            Err(error @ FeedError::Json(_)) => {
                // A level2 message that does not read is a lost update of its book.
                let lost = serde_json::from_str::<Probe>(text).ok().and_then(|probe| {
                    matches!(probe.kind.as_deref(), Some("l2update" | "snapshot"))
                        .then_some(probe.product_id)
                        .flatten()
                });
                self.count_error(&error, "message");
                if let Some(product) = lost.filter(|p| self.wants(p, Kind::Book)) {
                    if !self.resyncing.contains_key(&product) {
                        self.resync(&product, &error, ctx);
                    }
                }
            }
            Err(error) => self.count_error(&error, "message"),
        }
    }

    fn wants(&self, product: &str, kind: Kind) -> bool {
        self.wanted.get(product).is_some_and(|w| match kind {
            Kind::Book => w.book,
            Kind::Ticker => w.ticker,
            Kind::Trades => w.trades,
        })
    }

    fn count_error(&mut self, error: &FeedError, what: &str) {
        let mut kind = error_kind(error);
        if !self.counts.errors.contains_key(&kind) && self.counts.errors.len() >= MAX_ERROR_KINDS {
            kind = "other".into();
        }
        let count = self.counts.errors.entry(kind).or_default();
        *count += 1;
        if *count == 1 {
            warn!("coinbase: {what} skipped: {error} (counted; logged once per kind)");
        } else {
            debug!("coinbase: {what} skipped: {error}");
        }
    }

    fn publish_book(&self, product: &str) {
        if let Some(book) = self
            .books
            .get(product)
            .and_then(|b| b.order_book(self.settings.publish_depth))
        {
            self.send_json(format!("book:{NAME}:{}", book.symbol), &book);
            self.metrics.published(book.timestamp.0);
        }
    }

    fn on_snapshot(&mut self, markets: &Markets, snapshot: &Snapshot<'_>, ctx: &mut Context<Self>) {
        let product = snapshot.product_id;
        if !self.wants(product, Kind::Book) {
            self.counts.ignored += 1;
            return;
        }
        if let Err(error) = self.books.snapshot(markets, snapshot) {
            if matches!(error, FeedError::Crossed { .. }) {
                self.counts.crossed += 1;
            }
            // Waiting for a snapshot already: this one does not count, ask again.
            self.resyncing.remove(product);
            self.resync(product, &error, ctx);
            return;
        }
        *self.counts.snapshots.entry(product.to_owned()).or_default() += 1;
        self.resync_streak.remove(product);
        if self.resyncing.remove(product).is_some() {
            let symbol = markets.symbol(product).unwrap_or(product);
            info!("coinbase: {symbol} book resynced");
            if self.resyncing.is_empty() && self.health == Health::Resyncing {
                self.set_health(Health::Up, json!({}));
            }
        }
        self.publish_book(product);
    }

    fn on_update(&mut self, markets: &Markets, update: &L2Update<'_>, ctx: &mut Context<Self>) {
        let product = update.product_id;
        if !self.wants(product, Kind::Book) {
            self.counts.ignored += 1;
            return;
        }
        if self.resyncing.contains_key(product) {
            self.counts.dropped += 1;
            return;
        }
        match self.books.update(markets, update) {
            Ok(_) => {
                *self.counts.updates.entry(product.to_owned()).or_default() += 1;
                self.publish_book(product);
            }
            Err(error) => {
                if matches!(error, FeedError::Crossed { .. }) {
                    self.counts.crossed += 1;
                }
                self.resync(product, &error, ctx);
            }
        }
    }

    /// The book of `product` is wrong: drop it and subscribe level2 again for a new snapshot.
    fn resync(&mut self, product: &str, error: &FeedError, ctx: &mut Context<Self>) {
        if self.resyncing.contains_key(product) {
            return;
        }
        self.books.remove(product);
        self.resync_number += 1;
        let number = self.resync_number;
        self.resyncing.insert(product.to_owned(), number);
        *self.counts.resyncs.entry(product.to_owned()).or_default() += 1;
        let markets = self.markets.as_deref();
        let symbol = markets.and_then(|m| m.symbol(product)).unwrap_or(product);
        self.metrics.resync(symbol);
        let streak = self.resync_streak.entry(product.to_owned()).or_default();
        *streak += 1;
        let streak = *streak;
        let symbol = self
            .wanted
            .get(product)
            .map_or(product, |w| w.symbol.as_str())
            .to_owned();
        let reason = truncated(error.to_string(), MAX_REASON);
        if self.resync_logged.insert(product.to_owned()) {
            warn!("coinbase: {symbol} book resubscribed: {reason} (logged once per product)");
        } else {
            debug!("coinbase: {symbol} book resubscribed: {reason}");
        }
        // Announced each time (each waits for a round trip): clients see why a book paused.
        self.health = Health::Resyncing;
        self.announce(
            Health::Resyncing.as_str(),
            json!({"symbol": symbol, "error": error.kind().name(), "reason": reason}),
        );
        // The first resync at once; one that follows another without a good snapshot waits.
        let wait = if streak > 1 {
            backoff(streak - 1, self.min_backoff, self.max_backoff)
        } else {
            Duration::ZERO
        };
        let product = product.to_owned();
        ctx.run_later(wait, move |act, ctx| {
            if act.resyncing.get(&product) != Some(&number) {
                return;
            }
            if let Some(upstream) = &act.upstream {
                upstream.send(request("unsubscribe", LEVEL2, &[&product], false));
                upstream.send(request("subscribe", LEVEL2, &[&product], false));
            }
            // No snapshot in time: the connection is made again (every book from scratch).
            let timeout = act.settings.heartbeat_timeout;
            ctx.run_later(timeout, move |act, _| {
                if act.resyncing.get(&product) == Some(&number) {
                    warn!("coinbase: no level2 snapshot of {product} within {timeout:?}; reconnecting");
                    if let Some(upstream) = &act.upstream {
                        upstream.reconnect();
                    }
                }
            });
        });
    }

    /// Coinbase's `error` message, logged once per message and reason. A product it names is
    /// left out while demanded (its channels are announced as refused) and the rest subscribed
    /// again, since the refused request took them too; any other refusal is announced once.
    fn on_refused(&mut self, message: String, reason: Option<String>) {
        let error = FeedError::Refused {
            message: message.clone(),
            reason: reason.clone(),
        };
        *self.counts.errors.entry("refused".into()).or_default() += 1;
        let key = format!("{message}\u{0}{}", reason.as_deref().unwrap_or_default());
        let first = self.refusals_seen.len() < MAX_ERROR_KINDS && self.refusals_seen.insert(key);
        if first {
            warn!("coinbase: {error} (not retried; logged once)");
        } else {
            debug!("coinbase: {error}");
        }
        let product = reason
            .as_deref()
            .and_then(|r| r.strip_suffix(" is not a valid product"))
            .filter(|p| self.wanted.contains_key(*p))
            .map(str::to_owned);
        let Some(product) = product else {
            if first {
                self.announce(
                    self.health.as_str(),
                    json!({"error": error.kind().name(), "reason": truncated(error.to_string(), MAX_REASON)}),
                );
            }
            return;
        };
        self.refused_products
            .insert(product, truncated(error.to_string(), MAX_REASON));
        self.sync_channels();
        if let Some(upstream) = &self.upstream {
            for request in subscribe_requests(&self.upstream_channels) {
                upstream.send(request);
            }
        }
    }

    // ---- calls ----

    fn call(&self, call: &ExchangeCall) -> Result<Bytes, ExchangeError> {
        let method = call.method;
        if method.is_private() || method == ExchangeMethod::Login {
            return Err(ExchangeError::new(
                ErrorKind::NotSupported,
                format!(
                    "coinbase: {} is not supported (public market data only)",
                    method.name()
                ),
            ));
        }
        let markets = self.markets.as_ref().ok_or_else(|| {
            ExchangeError::new(
                ErrorKind::ExchangeNotAvailable,
                "coinbase: the market list is not loaded yet",
            )
        })?;
        match method {
            ExchangeMethod::LoadMarkets => {
                let all: Map<String, Value> = markets
                    .all()
                    .iter()
                    .map(|m| {
                        let value = serde_json::to_value(m).expect("markets serialize");
                        (m.symbol.clone(), value)
                    })
                    .collect();
                Ok(json(&Value::Object(all)))
            }
            ExchangeMethod::FetchOrderBook => {
                let (symbol, product) = symbol(markets, &call.params)?;
                let depth = limit(&call.params)?;
                if !self.wants(product, Kind::Book) {
                    return Err(ExchangeError::new(
                        ErrorKind::ExchangeNotAvailable,
                        format!("coinbase: fetch_order_book answers from the live level2 feed; subscribe to book:coinbase:{symbol} first"),
                    ));
                }
                let book = self
                    .books
                    .get(product)
                    .and_then(|b| b.order_book(depth))
                    .ok_or_else(|| {
                        ExchangeError::new(
                            ErrorKind::ExchangeNotAvailable,
                            format!("coinbase: the {symbol} book is waiting for its snapshot"),
                        )
                    })?;
                Ok(json(&book))
            }
            ExchangeMethod::FetchTicker => {
                let (symbol, product) = symbol(markets, &call.params)?;
                if !self.wants(product, Kind::Ticker) {
                    return Err(ExchangeError::new(
                        ErrorKind::ExchangeNotAvailable,
                        format!("coinbase: fetch_ticker answers from the live ticker feed; subscribe to ticker:coinbase:{symbol} first"),
                    ));
                }
                self.tickers.get(product).cloned().ok_or_else(|| {
                    ExchangeError::new(
                        ErrorKind::ExchangeNotAvailable,
                        format!("coinbase: no {symbol} ticker yet"),
                    )
                })
            }
            _ => Err(ExchangeError::new(
                ErrorKind::NotSupported,
                format!(
                    "coinbase: {} is not supported (live channels only)",
                    method.name()
                ),
            )),
        }
    }
}

/// A call's answer.
fn json(value: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("ccxt structures serialize"))
}

fn bad(message: impl Into<String>) -> ExchangeError {
    ExchangeError::new(ErrorKind::BadRequest, message)
}

/// The call's `symbol` and its product id.
fn symbol<'a>(
    markets: &'a Markets,
    params: &Map<String, Value>,
) -> Result<(String, &'a str), ExchangeError> {
    let symbol = match params.get("symbol") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => return Err(bad("symbol required")),
        Some(_) => return Err(bad("symbol must be a string")),
    };
    let product = markets.id_of(&symbol).ok_or_else(|| {
        ExchangeError::new(
            ErrorKind::BadSymbol,
            format!("coinbase: no market {symbol}"),
        )
    })?;
    Ok((symbol, product))
}

fn limit(params: &Map<String, Value>) -> Result<usize, ExchangeError> {
    match params.get("limit") {
        None | Some(Value::Null) => Ok(DEFAULT_FETCH_DEPTH),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=MAX_FETCH_DEPTH as u64).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| bad("limit must be an integer from 1 to 1000")),
    }
}

impl Actor for CoinbaseAdapter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let feed = CoinbaseFeed {
            url: self.settings.ws_url.clone(),
        };
        let settings = UpstreamSettings {
            heartbeat_timeout: self.settings.heartbeat_timeout,
            min_backoff: self.min_backoff,
            max_backoff: self.max_backoff,
            ..UpstreamSettings::default()
        };
        self.upstream = Some(Upstream::spawn(
            Arc::new(feed),
            settings,
            ctx.address().recipient(),
        ));
        self.fetch_markets(ctx);
    }
}

impl Handler<Demand> for CoinbaseAdapter {
    type Result = ();

    fn handle(&mut self, msg: Demand, ctx: &mut Context<Self>) {
        match msg {
            Demand::Start { channel } => {
                debug!("coinbase: {channel} demanded");
                if self.demanded.insert(channel) {
                    self.schedule_sync(ctx);
                }
            }
            Demand::Stop { channel } => {
                debug!("coinbase: {channel} no longer demanded");
                self.refused_channels.remove(&channel);
                if self.demanded.remove(&channel) {
                    self.schedule_sync(ctx);
                }
            }
        }
    }
}

impl Handler<UpstreamEvent> for CoinbaseAdapter {
    type Result = ();

    fn handle(&mut self, event: UpstreamEvent, ctx: &mut Context<Self>) {
        match event {
            UpstreamEvent::Connected { channels } => self.on_connected(channels.len()),
            UpstreamEvent::Message(text) => self.on_message(&text, ctx),
            UpstreamEvent::Disconnected { reason } => self.on_disconnected(reason),
        }
    }
}

impl Handler<ExchangeCall> for CoinbaseAdapter {
    type Result = Result<Bytes, ExchangeError>;

    fn handle(&mut self, msg: ExchangeCall, _: &mut Context<Self>) -> Self::Result {
        self.call(&msg)
    }
}

impl Handler<GetCoinbaseCounts> for CoinbaseAdapter {
    type Result = MessageResult<GetCoinbaseCounts>;

    fn handle(&mut self, _: GetCoinbaseCounts, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.counts.clone())
    }
}

#[cfg(test)]
#[path = "adapter_tests.rs"]
mod tests;
