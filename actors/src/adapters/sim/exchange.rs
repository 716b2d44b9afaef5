//! The `sim` exchange actor: the built-in paper-trading exchange, so that everything works
//! offline out of the box.
//!
//! Each tick, per market, a market maker walks its mid price at random and quotes a ladder of
//! levels around it, and a noise trader takes from the book: that makes the book,
//! the trades, the tickers (24-hour statistics of those trades) and the candles (1m, 5m, 1h of
//! those trades). Users log in with an account name and trade against the book and each other
//! through the real matching engine ([`super::engine`]); their orders, fills and balances are
//! pushed on `orders:sim#<user>`, `mytrades:sim#<user>` and `balance:sim#<user>`.
//!
//! Public channels are published only while the Router says someone wants them
//! ([`Demand`]): `ticker:sim:<symbol>`, `book:sim:<symbol>`, `trades:sim:<symbol>`,
//! `ohlcv:sim:<symbol>:<timeframe>`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rpc_crypto_proto::ccxt::{self, ErrorKind};
use rpc_crypto_proto::json::JsonText;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::accounts::AccountId;
use super::convert;
use super::engine::{
    Events, Exchange, FeeSchedule, Level, Market, NewOrder, Num, OrderType, Side, TimeInForce,
};
use super::stats::{timeframe_ms, Candles, DayStats, Tick, TIMEFRAMES};
use crate::adapters::contract::{ExchangeCall, ExchangeError, ExchangeMethod};
use crate::channel::NOTIFICATIONS;
use crate::router::{Demand, Publish};
use crate::settings::duration;

/// The exchange's name in channels and `exchange.*` calls.
pub const NAME: &str = "sim";
/// Price levels the market maker quotes on each side.
const MAKER_LEVELS: u32 = 10;
/// The distance between two of its levels, as a fraction of the mid price.
const LEVEL_STEP: f64 = 0.0005;
/// The largest move of the mid price in one tick, as a fraction.
const WALK_STEP: f64 = 0.0008;
/// How far the mid may wander from its starting price.
const WALK_BAND: f64 = 0.2;
/// Candles kept per market and timeframe.
const CANDLES: usize = 1_000;
/// Levels in a `book:sim:<symbol>` publication.
const BOOK_DEPTH: usize = 20;
/// The largest `limit` of a fetch.
const MAX_FETCH: usize = 1_000;

/// One market of the sim exchange.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimMarket {
    /// ccxt symbol, `BASE/QUOTE`.
    pub symbol: String,
    /// The market maker's starting mid price.
    pub price: f64,
    /// Decimals of a price (the tick is 10^-price_decimals).
    pub price_decimals: u32,
    /// Decimals of an amount (the lot is 10^-amount_decimals).
    pub amount_decimals: u32,
    /// A typical order of the market maker, in base.
    pub lot: f64,
}

/// The `[sim]` config table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimSettings {
    /// Run the sim exchange.
    pub enabled: bool,
    /// Fee rates, as fractions (0.001 = 0.1 %).
    pub maker_fee: f64,
    pub taker_fee: f64,
    /// How often the market maker requotes and the noise trader may trade.
    #[serde(with = "duration")]
    pub tick: Duration,
    /// Paper accounts at most (one per user and account name).
    pub max_accounts: usize,
    /// Paper accounts one user may open (more: 1202 PermissionDenied).
    pub max_accounts_per_user: usize,
    /// Seeds the random walk; the same seed gives the same market.
    pub seed: u64,
    /// What a new paper account starts with, by currency.
    pub balances: BTreeMap<String, f64>,
    pub markets: Vec<SimMarket>,
}

impl Default for SimSettings {
    fn default() -> Self {
        let market = |symbol: &str, price, price_decimals, amount_decimals, lot| SimMarket {
            symbol: symbol.to_owned(),
            price,
            price_decimals,
            amount_decimals,
            lot,
        };
        SimSettings {
            enabled: true,
            maker_fee: 0.001,
            taker_fee: 0.002,
            tick: Duration::from_millis(250),
            max_accounts: 10_000,
            max_accounts_per_user: 10,
            seed: 1,
            balances: [("USDT", 10_000.0), ("BTC", 0.5), ("ETH", 5.0)]
                .into_iter()
                .map(|(c, v)| (c.to_owned(), v))
                .collect(),
            markets: vec![
                market("BTC/USDT", 60_000.0, 2, 6, 0.05),
                market("ETH/USDT", 3_000.0, 2, 5, 1.0),
                market("ETH/BTC", 0.05, 6, 4, 1.0),
            ],
        }
    }
}

impl SimSettings {
    /// A problem with the settings, for config validation.
    pub fn check(&self) -> Result<(), String> {
        Engine::build(self).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// Why the settings cannot make an exchange.
#[derive(Debug, thiserror::Error)]
#[error("sim: {0}")]
pub struct SimConfigError(String);

/// The engine with its markets and its two internal accounts, as the settings make them.
struct Engine {
    engine: Exchange,
    markets: Vec<Market>,
    fees: FeeSchedule,
    maker: AccountId,
    trader: AccountId,
}

impl Engine {
    fn build(settings: &SimSettings) -> Result<Engine, SimConfigError> {
        let bad = SimConfigError;
        let mut markets = Vec::new();
        for m in &settings.markets {
            let symbol =
                ccxt::Symbol::parse(&m.symbol).map_err(|e| bad(format!("{}: {e}", m.symbol)))?;
            if !(m.price.is_finite() && m.price > 0.0 && m.lot.is_finite() && m.lot > 0.0) {
                return Err(bad(format!("{}: price and lot must be positive", m.symbol)));
            }
            markets.push(Market::new(
                symbol.base(),
                symbol.quote(),
                m.price_decimals,
                m.amount_decimals,
            ));
        }
        if settings.tick.is_zero() {
            return Err(bad("tick must be above zero".into()));
        }
        let fees = FeeSchedule::from_rates(settings.maker_fee, settings.taker_fee)
            .map_err(|e| bad(e.to_string()))?;
        let mut engine = Exchange::new(markets.clone(), fees).map_err(|e| bad(e.to_string()))?;
        // The market maker and the noise trader trade fee-free with deep pockets, so that they
        // never run dry however users trade against them.
        let currencies: Vec<String> = engine.currencies().keys().cloned().collect();
        let deep: Vec<(&str, Num)> = currencies
            .iter()
            .map(|c| (c.as_str(), Num::Float(1e9)))
            .collect();
        let free = Some(FeeSchedule {
            maker_ppm: 0,
            taker_ppm: 0,
        });
        let maker = engine
            .open_account("$maker", &deep)
            .map_err(|e| bad(e.to_string()))?;
        let trader = engine
            .open_account("$trader", &deep)
            .map_err(|e| bad(e.to_string()))?;
        engine
            .set_account_fees(maker, free)
            .map_err(|e| bad(e.to_string()))?;
        engine
            .set_account_fees(trader, free)
            .map_err(|e| bad(e.to_string()))?;
        for (currency, amount) in &settings.balances {
            if !engine.currencies().contains_key(currency) {
                return Err(bad(format!("balances: no market trades {currency}")));
            }
            if !(amount.is_finite() && *amount >= 0.0) {
                return Err(bad(format!("balances: {currency} must be zero or more")));
            }
        }
        Ok(Engine {
            engine,
            markets,
            fees,
            maker,
            trader,
        })
    }
}

/// What the exchange keeps per market beyond the engine's book.
struct MarketState {
    market: Market,
    symbol: String,
    start: f64,
    mid: f64,
    lot: f64,
    day: DayStats,
    candles: Vec<(&'static str, Candles)>,
}

/// The sim exchange actor.
pub struct SimExchange {
    engine: Exchange,
    markets: Vec<MarketState>,
    fees: FeeSchedule,
    settings: SimSettings,
    publish: Recipient<Publish>,
    maker: AccountId,
    trader: AccountId,
    /// Paper accounts by (user, account name), and each account's user.
    accounts: HashMap<(String, String), AccountId>,
    /// How many accounts each user has opened.
    accounts_of_user: HashMap<String, usize>,
    owners: HashMap<AccountId, String>,
    /// Public channels someone wants.
    wanted: HashSet<String>,
    rng: StdRng,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl SimExchange {
    pub fn new(settings: SimSettings, publish: Recipient<Publish>) -> Result<Self, SimConfigError> {
        let Engine {
            engine,
            markets,
            fees,
            maker,
            trader,
        } = Engine::build(&settings)?;
        let states = markets
            .into_iter()
            .zip(&settings.markets)
            .map(|(market, m)| MarketState {
                symbol: market.symbol(),
                market,
                start: m.price,
                mid: m.price,
                lot: m.lot,
                day: DayStats::new(),
                candles: TIMEFRAMES
                    .iter()
                    .map(|(name, ms)| (*name, Candles::new(*ms, CANDLES)))
                    .collect(),
            })
            .collect();
        Ok(SimExchange {
            engine,
            markets: states,
            fees,
            rng: StdRng::seed_from_u64(settings.seed),
            settings,
            publish,
            maker,
            trader,
            accounts: HashMap::new(),
            accounts_of_user: HashMap::new(),
            owners: HashMap::new(),
            wanted: HashSet::new(),
        })
    }

    fn send_json(&self, channel: String, value: &impl Serialize) {
        match JsonText::serialize(value) {
            Ok(data) => self.publish.do_send(Publish::new(channel, data)),
            Err(error) => log::error!("sim: {channel} not published: {error}"),
        }
    }

    /// One tick: the maker requotes and the noise trader may take, in every market; then the
    /// wanted tickers and books go out.
    fn tick(&mut self) {
        let now = now_ms();
        for index in 0..self.markets.len() {
            let events = self.make_market(index, now);
            self.publish_events(&events, now);
        }
        for index in 0..self.markets.len() {
            let symbol = self.markets[index].symbol.clone();
            let ticker = format!("ticker:{NAME}:{symbol}");
            if self.wanted.contains(&ticker) {
                let value = self.ticker(index, now);
                self.send_json(ticker, &value);
            }
            let book = format!("book:{NAME}:{symbol}");
            if self.wanted.contains(&book) {
                if let Ok(value) = self.order_book(index, BOOK_DEPTH, now) {
                    self.send_json(book, &value);
                }
            }
        }
    }

    fn make_market(&mut self, index: usize, now: u64) -> Events {
        let mut all = Events::default();
        let state = &mut self.markets[index];
        // A random walk, pulled back towards the start when it wanders off.
        let pull = (state.start / state.mid).ln() * 0.01;
        let step = self.rng.gen_range(-WALK_STEP..WALK_STEP) + pull;
        state.mid = (state.mid * step.exp()).clamp(
            state.start * (1.0 - WALK_BAND),
            state.start * (1.0 + WALK_BAND),
        );
        let (symbol, mid, lot) = (state.symbol.clone(), state.mid, state.lot);
        let tick = 10f64.powi(state.market.price_decimals as i32);
        let unit = 10f64.powi(state.market.amount_decimals as i32);
        if let Ok(events) = self.engine.cancel_all(self.maker, Some(&symbol), now) {
            merge(&mut all, events);
        }
        for level in 1..=MAKER_LEVELS {
            for side in [Side::Buy, Side::Sell] {
                let offset = LEVEL_STEP * f64::from(level);
                let price = match side {
                    Side::Buy => mid * (1.0 - offset),
                    Side::Sell => mid * (1.0 + offset),
                };
                let ticks = (price * tick).round().max(1.0) as u64;
                let lots = (lot * self.rng.gen_range(0.2..2.0) * unit).round().max(1.0) as u64;
                let order = NewOrder::limit(&symbol, side, Num::Units(ticks), Num::Units(lots));
                if let Ok(outcome) = self.engine.place(self.maker, &order, now) {
                    merge(&mut all, outcome.events);
                }
            }
        }
        // A trade every tick: subscribers of trades and candles hear something each tick.
        let side = if self.rng.gen_bool(0.5) {
            Side::Buy
        } else {
            Side::Sell
        };
        let lots = (lot * self.rng.gen_range(0.05..0.5) * unit)
            .round()
            .max(1.0) as u64;
        let order = NewOrder::market(&symbol, side, Num::Units(lots));
        if let Ok(outcome) = self.engine.place(self.trader, &order, now) {
            merge(&mut all, outcome.events);
        }
        all
    }

    /// Records trades into the statistics and pushes everything an operation changed.
    fn publish_events(&mut self, events: &Events, now: u64) {
        for trade in &events.public_trades {
            let Some(index) = self.markets.iter().position(|m| m.symbol == trade.symbol) else {
                continue;
            };
            let market = self.markets[index].market.clone();
            let tick = Tick {
                timestamp: trade.timestamp as i64,
                price: market.price_to_f64(trade.price),
                amount: market.amount_to_f64(trade.amount),
            };
            let state = &mut self.markets[index];
            state.day.record(tick);
            let mut changed = Vec::new();
            for (timeframe, candles) in &mut state.candles {
                if let Some(candle) = candles.record(tick) {
                    changed.push((*timeframe, candle));
                }
            }
            let channel = format!("trades:{NAME}:{}", trade.symbol);
            if self.wanted.contains(&channel) {
                self.send_json(channel, &convert::public_trade(&market, trade));
            }
            for (timeframe, candle) in changed {
                let channel = format!("ohlcv:{NAME}:{}:{timeframe}", trade.symbol);
                if self.wanted.contains(&channel) {
                    self.send_json(channel, &ohlcv(&candle));
                }
            }
        }
        for order in &events.orders {
            let Some(user) = self.owners.get(&order.account) else {
                continue;
            };
            let Some(market) = self.market(&order.symbol) else {
                continue;
            };
            let value = convert::order(market, order);
            self.send_json(format!("orders:{NAME}#{user}"), &value);
        }
        for fill in &events.my_trades {
            let Some(user) = self.owners.get(&fill.account) else {
                continue;
            };
            let Some(market) = self.market(&fill.symbol) else {
                continue;
            };
            let kind = self
                .engine
                .order(fill.account, fill.order_id)
                .ok()
                .map(|o| o.order_type);
            let value = convert::fill(market, fill, kind);
            self.send_json(format!("mytrades:{NAME}#{user}"), &value);
        }
        for (account, balance) in &events.balances {
            let Some(user) = self.owners.get(account) else {
                continue;
            };
            let value = convert::balance(balance, now as i64);
            self.send_json(format!("balance:{NAME}#{user}"), &value);
        }
    }

    fn market(&self, symbol: &str) -> Option<&Market> {
        self.markets
            .iter()
            .find(|m| m.symbol == symbol)
            .map(|m| &m.market)
    }

    fn index(&self, symbol: &str) -> Result<usize, ExchangeError> {
        self.markets
            .iter()
            .position(|m| m.symbol == symbol)
            .ok_or_else(|| convert::error(super::engine::ExchangeError::BadSymbol(symbol.into())))
    }

    fn ticker(&mut self, index: usize, now: u64) -> ccxt::Ticker {
        let state = &mut self.markets[index];
        let mut ticker = ccxt::Ticker::new(state.symbol.clone(), now as i64);
        if let Some(day) = state.day.summary(now as i64) {
            ticker.open = Some(day.open);
            ticker.high = Some(day.high);
            ticker.low = Some(day.low);
            ticker.close = Some(day.close);
            ticker.last = Some(day.close);
            ticker.vwap = Some(day.vwap);
            ticker.change = Some(day.change);
            ticker.percentage = Some(day.percentage);
            ticker.average = Some(day.average);
            ticker.base_volume = Some(day.base_volume);
            ticker.quote_volume = Some(day.quote_volume);
        }
        let market = state.market.clone();
        if let Ok(book) = self.engine.book(&market.symbol(), 1) {
            if let Some(bid) = book.bids.first() {
                ticker.bid = Some(market.price_to_f64(bid.price));
                ticker.bid_volume = Some(market.amount_u128_to_f64(bid.amount));
            }
            if let Some(ask) = book.asks.first() {
                ticker.ask = Some(market.price_to_f64(ask.price));
                ticker.ask_volume = Some(market.amount_u128_to_f64(ask.amount));
            }
        }
        ticker
    }

    fn order_book(
        &self,
        index: usize,
        depth: usize,
        now: u64,
    ) -> Result<ccxt::OrderBook, ExchangeError> {
        let market = &self.markets[index].market;
        let book = self
            .engine
            .book(&market.symbol(), depth)
            .map_err(convert::error)?;
        let levels = |levels: &[Level]| {
            levels
                .iter()
                .map(|l| {
                    [
                        market.price_to_f64(l.price),
                        market.amount_u128_to_f64(l.amount),
                    ]
                })
                .collect()
        };
        Ok(ccxt::OrderBook::new(
            book.symbol.clone(),
            levels(&book.bids),
            levels(&book.asks),
            now as i64,
            None,
        ))
    }

    /// The paper account of a login, opened with the starting balances on first use.
    fn login(&mut self, user: &str, account: &str) -> Result<AccountId, ExchangeError> {
        let key = (user.to_owned(), account.to_owned());
        if let Some(id) = self.accounts.get(&key) {
            return Ok(*id);
        }
        if self.accounts.len() >= self.settings.max_accounts {
            return Err(ExchangeError::new(
                ErrorKind::ExchangeNotAvailable,
                "no more paper accounts can be opened",
            ));
        }
        let opened = self.accounts_of_user.get(user).copied().unwrap_or(0);
        if opened >= self.settings.max_accounts_per_user {
            return Err(ExchangeError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "a user opens at most {} paper accounts",
                    self.settings.max_accounts_per_user
                ),
            ));
        }
        let balances: Vec<(&str, Num)> = self
            .settings
            .balances
            .iter()
            .map(|(c, v)| (c.as_str(), Num::Float(*v)))
            .collect();
        // User names may hold anything; the engine's account name only has to be unique.
        let name = format!("{}:{user}/{account}", self.accounts.len());
        let id = self
            .engine
            .open_account(&name, &balances)
            .map_err(convert::error)?;
        self.accounts.insert(key, id);
        self.owners.insert(id, user.to_owned());
        *self.accounts_of_user.entry(user.to_owned()).or_default() += 1;
        Ok(id)
    }

    /// The account a private call acts on, or the login a `login` makes.
    fn account_of(&mut self, call: &ExchangeCall) -> Result<Option<AccountId>, ExchangeError> {
        let not_logged_in = || ExchangeError::new(ErrorKind::AuthenticationError, "not logged in");
        match (&call.credentials, call.method) {
            (Some(c), ExchangeMethod::Login) => self.login(&c.user, &c.account).map(Some),
            (Some(c), method) if method.is_private() => self
                .accounts
                .get(&(c.user.clone(), c.account.clone()))
                .copied()
                .map(Some)
                .ok_or_else(not_logged_in),
            (None, method) if method.is_private() || method == ExchangeMethod::Login => {
                Err(not_logged_in())
            }
            _ => Ok(None),
        }
    }

    fn call(&mut self, call: ExchangeCall) -> Result<Value, ExchangeError> {
        let now = now_ms();
        let account = self.account_of(&call)?;
        let params = &call.params;
        match (call.method, account) {
            (ExchangeMethod::LoadMarkets, _) => {
                let markets: Map<String, Value> = self
                    .markets
                    .iter()
                    .map(|m| {
                        let market = convert::market(&m.market, self.fees);
                        (m.symbol.clone(), json(&market))
                    })
                    .collect();
                Ok(Value::Object(markets))
            }
            (ExchangeMethod::FetchTicker, _) => {
                let index = self.index(&symbol(params)?)?;
                Ok(json(&self.ticker(index, now)))
            }
            (ExchangeMethod::FetchTickers, _) => {
                let indexes: Vec<usize> = match params.get("symbols") {
                    None | Some(Value::Null) => (0..self.markets.len()).collect(),
                    Some(Value::Array(list)) => list
                        .iter()
                        .map(|s| {
                            let s = s.as_str().ok_or_else(|| bad("symbols must be strings"))?;
                            self.index(s)
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err(bad("symbols must be a list")),
                };
                let tickers: Map<String, Value> = indexes
                    .into_iter()
                    .map(|i| (self.markets[i].symbol.clone(), json(&self.ticker(i, now))))
                    .collect();
                Ok(Value::Object(tickers))
            }
            (ExchangeMethod::FetchOrderBook, _) => {
                let index = self.index(&symbol(params)?)?;
                let depth = limit(params, 100)?;
                Ok(json(&self.order_book(index, depth, now)?))
            }
            (ExchangeMethod::FetchTrades, _) => {
                let index = self.index(&symbol(params)?)?;
                let market = &self.markets[index].market;
                let since = since(params)?;
                let trades = self
                    .engine
                    .trades(&market.symbol(), None)
                    .map_err(convert::error)?;
                let list: Vec<Value> = trades
                    .into_iter()
                    .filter(|t| since.map_or(true, |s| t.timestamp >= s))
                    .map(|t| json(&convert::public_trade(market, t)))
                    .collect();
                // As ccxt: with `since`, the first `limit` from then; without, the last `limit`.
                let limit = limit(params, MAX_FETCH)?;
                Ok(Value::Array(match since {
                    Some(_) => list.into_iter().take(limit).collect(),
                    None => last(list, limit),
                }))
            }
            (ExchangeMethod::FetchOhlcv, _) => {
                let index = self.index(&symbol(params)?)?;
                let timeframe = match params.get("timeframe") {
                    None | Some(Value::Null) => "1m",
                    Some(Value::String(t)) => t.as_str(),
                    Some(_) => return Err(bad("timeframe must be a string")),
                };
                if timeframe_ms(timeframe).is_none() {
                    let names: Vec<&str> = TIMEFRAMES.iter().map(|(n, _)| *n).collect();
                    return Err(ExchangeError::new(
                        ErrorKind::NotSupported,
                        format!("timeframe {timeframe:?}: sim builds {}", names.join(", ")),
                    ));
                }
                let since = since(params)?.map(|s| s as i64);
                let limit = limit(params, MAX_FETCH)?;
                let rows: Vec<Value> = self.markets[index]
                    .candles
                    .iter()
                    .find(|(name, _)| *name == timeframe)
                    .map(|(_, c)| c.query(since, usize::MAX))
                    .unwrap_or_default()
                    .iter()
                    .map(|c| json(&ohlcv(c)))
                    .collect();
                // With `since`, the first `limit` from then; without, the last `limit`.
                Ok(Value::Array(match since {
                    Some(_) => rows.into_iter().take(limit).collect(),
                    None => last(rows, limit),
                }))
            }
            (ExchangeMethod::Login, Some(account)) => {
                let user = self.owners.get(&account).cloned().unwrap_or_default();
                Ok(serde_json::json!({"exchange": NAME, "user": user, "logged_in": true}))
            }
            (ExchangeMethod::FetchBalance, Some(account)) => {
                let balance = self.engine.balance(account).map_err(convert::error)?;
                Ok(json(&convert::balance(&balance, now as i64)))
            }
            (ExchangeMethod::CreateOrder, Some(account)) => {
                let order = new_order(params)?;
                let outcome = self
                    .engine
                    .place(account, &order, now)
                    .map_err(convert::error)?;
                self.publish_events(&outcome.events, now);
                self.order_json(&outcome.order)
            }
            (ExchangeMethod::CancelOrder, Some(account)) => {
                let outcome = self
                    .engine
                    .cancel(account, order_id(params)?, now)
                    .map_err(convert::error)?;
                self.publish_events(&outcome.events, now);
                self.order_json(&outcome.order)
            }
            (ExchangeMethod::FetchOrder, Some(account)) => {
                let order = self
                    .engine
                    .order(account, order_id(params)?)
                    .map_err(convert::error)?
                    .clone();
                self.order_json(&order)
            }
            (ExchangeMethod::FetchOpenOrders, Some(account)) => {
                let symbol = optional_symbol(params)?;
                let orders = self
                    .engine
                    .open_orders(account, symbol.as_deref())
                    .map_err(convert::error)?;
                let list = orders
                    .into_iter()
                    .filter_map(|o| self.market(&o.symbol).map(|m| json(&convert::order(m, o))))
                    .collect();
                Ok(Value::Array(list))
            }
            (ExchangeMethod::FetchMyTrades, Some(account)) => {
                let symbol = optional_symbol(params)?;
                let limit = Some(limit(params, MAX_FETCH)?);
                let fills = self
                    .engine
                    .my_trades(account, symbol.as_deref(), since(params)?, limit)
                    .map_err(convert::error)?;
                let list = fills
                    .into_iter()
                    .filter_map(|f| {
                        let kind = self
                            .engine
                            .order(account, f.order_id)
                            .ok()
                            .map(|o| o.order_type);
                        self.market(&f.symbol)
                            .map(|m| json(&convert::fill(m, f, kind)))
                    })
                    .collect();
                Ok(Value::Array(list))
            }
            // `account_of` gives every private call and login its account.
            (_, None) => Err(ExchangeError::new(
                ErrorKind::AuthenticationError,
                "not logged in",
            )),
        }
    }

    fn order_json(&self, order: &super::engine::Order) -> Result<Value, ExchangeError> {
        let market = self.market(&order.symbol).ok_or_else(|| {
            ExchangeError::new(ErrorKind::BadSymbol, format!("no market {}", order.symbol))
        })?;
        Ok(json(&convert::order(market, order)))
    }
}

/// A candle as ccxt's `[timestamp, open, high, low, close, volume]`, the timestamp an integer.
fn ohlcv(c: &super::stats::Candle) -> ccxt::Ohlcv {
    ccxt::Ohlcv::new(c.timestamp, c.open, c.high, c.low, c.close, c.volume)
}

/// A ccxt structure as a JSON value.
fn json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("ccxt structures serialize")
}

fn merge(into: &mut Events, events: Events) {
    into.public_trades.extend(events.public_trades);
    into.orders.extend(events.orders);
    into.my_trades.extend(events.my_trades);
    into.balances.extend(events.balances);
}

fn bad(message: &str) -> ExchangeError {
    ExchangeError::new(ErrorKind::BadRequest, message)
}

fn symbol(params: &Map<String, Value>) -> Result<String, ExchangeError> {
    optional_symbol(params)?.ok_or_else(|| bad("symbol required"))
}

fn optional_symbol(params: &Map<String, Value>) -> Result<Option<String>, ExchangeError> {
    match params.get("symbol") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad("symbol must be a string")),
    }
}

fn limit(params: &Map<String, Value>, default: usize) -> Result<usize, ExchangeError> {
    match params.get("limit") {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=MAX_FETCH as u64).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| bad("limit must be an integer from 1 to 1000")),
    }
}

fn since(params: &Map<String, Value>) -> Result<Option<u64>, ExchangeError> {
    match params.get("since") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad("since must be a timestamp in milliseconds")),
    }
}

/// The last `limit` of a list, oldest first.
fn last(mut list: Vec<Value>, limit: usize) -> Vec<Value> {
    let skip = list.len().saturating_sub(limit);
    list.drain(..skip);
    list
}

fn order_id(params: &Map<String, Value>) -> Result<u64, ExchangeError> {
    let id = match params.get("id") {
        Some(Value::String(s)) => s.parse().ok(),
        Some(Value::Number(n)) => n.as_u64(),
        _ => return Err(bad("id required")),
    };
    // Not a number this exchange gives out: no such order.
    id.ok_or_else(|| ExchangeError::new(ErrorKind::OrderNotFound, "no such order"))
}

fn quantity(value: &Value, what: &str) -> Result<Num, ExchangeError> {
    let invalid = |m: String| ExchangeError::new(ErrorKind::InvalidOrder, m);
    match value {
        Value::Number(n) => n
            .as_f64()
            .map(Num::Float)
            .ok_or_else(|| invalid(format!("{what}: not a number"))),
        Value::String(s) => Ok(Num::Text(s.clone())),
        _ => Err(invalid(format!("{what} must be a number"))),
    }
}

/// ccxt's `createOrder(symbol, type, side, amount, price, params)` as named members; `params`
/// may carry `timeInForce` (GTC, IOC, FOK, PO), `postOnly` and `clientOrderId`.
fn new_order(params: &Map<String, Value>) -> Result<NewOrder, ExchangeError> {
    let symbol = symbol(params)?;
    let text = |name: &str| params.get(name).and_then(Value::as_str);
    let order_type = text("type")
        .and_then(OrderType::parse)
        .ok_or_else(|| bad("type must be \"limit\" or \"market\""))?;
    let side = text("side")
        .and_then(Side::parse)
        .ok_or_else(|| bad("side must be \"buy\" or \"sell\""))?;
    let amount = params
        .get("amount")
        .ok_or_else(|| bad("amount required"))
        .and_then(|v| quantity(v, "amount"))?;
    let price = match params.get("price") {
        None | Some(Value::Null) => None,
        Some(v) => Some(quantity(v, "price")?),
    };
    let extra = match params.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(bad("params must be an object")),
    };
    let mut post_only = extra
        .get("postOnly")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let time_in_force = match extra.get("timeInForce").and_then(Value::as_str) {
        None => TimeInForce::Gtc,
        Some("PO") => {
            post_only = true;
            TimeInForce::Gtc
        }
        Some(t) => TimeInForce::parse(t).ok_or_else(|| {
            ExchangeError::new(ErrorKind::InvalidOrder, format!("timeInForce {t:?}"))
        })?,
    };
    let client_order_id = match extra.get("clientOrderId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("clientOrderId must be a string")),
    };
    Ok(NewOrder {
        symbol,
        side,
        order_type,
        price,
        amount,
        time_in_force,
        post_only,
        client_order_id,
    })
}

impl Actor for SimExchange {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The book is there before the first subscriber comes.
        self.tick();
        ctx.run_interval(self.settings.tick, |exchange, _| exchange.tick());
        let up = serde_json::json!({"type": "adapter", "exchange": NAME, "status": "up"});
        self.send_json(NOTIFICATIONS.to_owned(), &up);
    }
}

impl Handler<Demand> for SimExchange {
    type Result = ();

    fn handle(&mut self, msg: Demand, _: &mut Context<Self>) {
        match msg {
            Demand::Start { channel } => {
                log::debug!("sim: publishing {channel}");
                self.wanted.insert(channel);
            }
            Demand::Stop { channel } => {
                log::debug!("sim: no longer publishing {channel}");
                self.wanted.remove(&channel);
            }
        }
    }
}

impl Handler<ExchangeCall> for SimExchange {
    type Result = Result<Bytes, ExchangeError>;

    fn handle(&mut self, msg: ExchangeCall, _: &mut Context<Self>) -> Self::Result {
        let value = self.call(msg)?;
        Ok(Bytes::from(
            serde_json::to_vec(&value).expect("JSON values serialize"),
        ))
    }
}
