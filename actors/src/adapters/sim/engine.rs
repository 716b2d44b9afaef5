//! The matching engine of the built-in `sim` (paper-trading) exchange: markets, order books
//! with price-time priority, and the paper accounts' funds moving with every fill.
//!
//! It is a pure data structure: no actor, no I/O, no clock (every operation takes `now_ms`).
//! An actor wraps an [`Exchange`], turns its types into ccxt JSON and publishes the [`Events`]
//! each operation returns.
//!
//! # Why integers
//! Money must add up exactly: a float ledger leaks or invents dust with every fill, and a
//! balance that is 1e-17 short makes an order fail for no visible reason. So every quantity is an
//! integer count of a fixed unit, floats and decimal text are converted only at the edge
//! ([`Num`]), and a value that does not convert exactly (more decimals than the market allows,
//! negative, NaN, too large) is an error, never rounded.
//!
//! # Units
//! - a price is a count of ticks of `10^-price_decimals` quote per base (`u64`);
//! - an amount is a count of lots of `10^-amount_decimals` base (`u64`);
//! - a cost (price × amount) is in `10^-(price_decimals + amount_decimals)` quote (`u128`:
//!   a `u64 × u64` product always fits);
//! - a balance or a fee is in the currency's unit, `10^-decimals` (`u128`), where `decimals` is
//!   [`FEE_DECIMALS`] plus the finest scale any market uses the currency at (a base at
//!   `amount_decimals`, a quote at `price_decimals + amount_decimals`). Every cost therefore
//!   converts to a balance exactly, and a fee (a rate in parts per million of what is
//!   received) is exact too: nothing is ever rounded.
//!
//! # Matching
//! Per market, orders match by price-time priority: the best price first, and at one price the
//! earliest order (order ids increase with time) first. A trade executes at the resting
//! (maker) order's price. Limit orders are good-till-cancelled (GTC: the rest rests),
//! immediate-or-cancel (IOC: the rest expires) or fill-or-kill (FOK: all or nothing, else
//! [`ExchangeError::OrderNotFillable`] and nothing changes); a post-only order that would take
//! liquidity is rejected with [`ExchangeError::OrderImmediatelyFillable`]. Market orders are
//! IOC (or FOK) with no limit; their amount is in base, as in ccxt.
//!
//! # Self-trade prevention: expire the taker
//! An incoming order never trades with its own account's resting orders: matching stops at the
//! first such order, and the incoming order's remainder expires (it cannot rest, since it would
//! cross its own order). That is Binance's `EXPIRE_TAKER`. It keeps wash trades and their fees
//! out of users' histories, and lets a market maker's account quote both sides safely.
//!
//! # Funds and fees
//! Placing an order reserves (free → used) what it may pay: a limit buy `price × amount` in
//! quote, a market buy the cost of what it takes walking the book, a sell `amount` in base. Fees
//! are charged in the currency received (a buyer pays in base, a seller in quote) and deducted
//! from what is received, so they never need a reservation and can never exceed the proceeds.
//! Rates are the exchange's [`FeeSchedule`] (maker / taker, in ppm), overridable per account.
//! A limit buy that fills below its limit gets the difference back into free at once.
//!
//! # All or nothing
//! [`Exchange::place`] first plans the whole match against the unchanged state and checks
//! everything that can fail (input, funds, FOK, post-only, limits); only then does it apply the
//! plan, which cannot fail. So an error leaves the exchange exactly as it was, order and trade
//! ids included (the property tests compare snapshots).
//!
//! # Bounded memory
//! Public trades per market, trades per account and closed orders per account are kept up to
//! [`Limits`] (oldest dropped), as are open orders per account (more is an error).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use thiserror::Error;

use super::accounts::{Account, AccountId, Balance, Holding};

/// An order's id: unique within an exchange, increasing with time (ccxt's `id` is its decimal
/// text).
pub type OrderId = u64;

/// A trade's id: unique within an exchange, shared by the maker's and the taker's side.
pub type TradeId = u64;

/// Decimals every currency unit has beyond what its markets need, so that fees in ppm of any
/// amount received are exact.
pub const FEE_DECIMALS: u32 = 6;

/// The largest `price_decimals + amount_decimals` of a market. With [`FEE_DECIMALS`] a currency
/// unit is at most `10^-24`, which leaves balances up to ~3.4e14 whole units in a `u128`.
pub const MAX_MARKET_DECIMALS: u32 = 18;

/// Trade ids an order keeps (the most recent ones); its full list is in the account's trades.
pub const MAX_TRADES_PER_ORDER: usize = 64;

/// The longest accepted client order id, in bytes.
pub const MAX_CLIENT_ORDER_ID_LEN: usize = 64;

const PPM: u32 = 1_000_000;

/// Why an operation was refused. Every error leaves the exchange unchanged. The names follow
/// ccxt's exception classes so the actor can map them one to one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExchangeError {
    /// The symbol names no market of this exchange.
    #[error("bad symbol: {0}")]
    BadSymbol(String),
    /// The order is malformed: bad amount or price, missing price, contradictory options...
    #[error("invalid order: {0}")]
    InvalidOrder(String),
    /// The account's free funds do not cover the reservation.
    #[error("insufficient funds: {0}")]
    InsufficientFunds(String),
    /// No open (for cancel) or kept (for queries) order with this id belongs to the account.
    /// An id of another account's order gives the very same error.
    #[error("order not found: {0}")]
    OrderNotFound(OrderId),
    /// A post-only order would have taken liquidity.
    #[error("post-only order would take liquidity")]
    OrderImmediatelyFillable,
    /// A fill-or-kill order cannot be filled completely.
    #[error("fill-or-kill order cannot be filled completely")]
    OrderNotFillable,
    /// The account id names no account.
    #[error("account not found")]
    AccountNotFound,
    /// Bad markets, fees, limits or account setup.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// Why a [`Num`] did not convert to units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NumError {
    #[error("not a decimal number")]
    Malformed,
    #[error("not a number (NaN)")]
    NotANumber,
    #[error("infinite")]
    Infinite,
    #[error("negative")]
    Negative,
    #[error("zero")]
    Zero,
    #[error("too large")]
    TooLarge,
    /// More decimals than the unit allows; the payload is the decimals allowed.
    #[error("more than {0} decimals")]
    TooPrecise(u32),
}

/// A quantity as it comes from the edge: a JSON float, decimal text, or already in units.
#[derive(Debug, Clone, PartialEq)]
pub enum Num {
    /// A float, converted through its shortest round-trip decimal text (so `0.1` is exactly
    /// one tenth); `0.1 + 0.2` has 17 decimals and is refused where fewer are allowed.
    Float(f64),
    /// Decimal text: `123`, `0.5`, `.5`, `1.50`, `2e-3`; an optional leading `+`.
    Text(String),
    /// Already in the field's unit: price ticks, amount lots, or a currency's smallest unit.
    /// For internal callers such as the market maker, which compute on the integer grid.
    Units(u64),
}

impl From<f64> for Num {
    fn from(v: f64) -> Self {
        Num::Float(v)
    }
}

impl From<&str> for Num {
    fn from(v: &str) -> Self {
        Num::Text(v.to_string())
    }
}

impl Num {
    /// The value in units of `10^-decimals`; zero is allowed here.
    pub fn to_units(&self, decimals: u32) -> Result<u128, NumError> {
        match self {
            Num::Float(v) => {
                if v.is_nan() {
                    Err(NumError::NotANumber)
                } else if v.is_infinite() {
                    Err(NumError::Infinite)
                } else {
                    // Rust prints floats without exponent, as the shortest text that reads back
                    // to the same float.
                    parse_units(&v.to_string(), decimals)
                }
            }
            Num::Text(s) => parse_units(s, decimals),
            Num::Units(u) => Ok(u128::from(*u)),
        }
    }

    /// The value as a positive `u64` count of `10^-decimals`.
    fn to_positive_u64(&self, decimals: u32) -> Result<u64, NumError> {
        match self.to_units(decimals)? {
            0 => Err(NumError::Zero),
            u => u64::try_from(u).map_err(|_| NumError::TooLarge),
        }
    }
}

/// Parses decimal text into an exact count of `10^-decimals`. Refuses, rather than rounds, a
/// value with a non-zero digit beyond `decimals`.
pub fn parse_units(text: &str, decimals: u32) -> Result<u128, NumError> {
    let s = text.trim();
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => {
            let e = &s[i + 1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(NumError::Malformed);
            }
            // Exponents beyond i32 are absurd either way; calling them malformed is fine.
            let exp: i32 = e.parse().map_err(|_| NumError::Malformed)?;
            (&s[..i], i64::from(exp))
        }
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err(NumError::Malformed);
    }
    let digits = || int.bytes().chain(frac.bytes()).map(|b| b - b'0');
    if negative && digits().any(|d| d != 0) {
        return Err(NumError::Negative);
    }
    // The i-th digit from the left is worth 10^(top - i) units.
    let top = int.len() as i64 + exp + i64::from(decimals) - 1;
    let mut units: u128 = 0;
    for (i, d) in digits().enumerate() {
        if d == 0 {
            continue;
        }
        let weight = top - i as i64;
        if weight < 0 {
            return Err(NumError::TooPrecise(decimals));
        }
        let weight = u32::try_from(weight).map_err(|_| NumError::TooLarge)?;
        let value = 10u128
            .checked_pow(weight)
            .and_then(|p| p.checked_mul(u128::from(d)))
            .ok_or(NumError::TooLarge)?;
        units = units.checked_add(value).ok_or(NumError::TooLarge)?;
    }
    Ok(units)
}

/// `units × 10^-decimals` as exact decimal text, without trailing zeros (`150`, `1.5`, `0.001`).
pub fn units_to_string(units: u128, decimals: u32) -> String {
    let s = units.to_string();
    let d = decimals as usize;
    if d == 0 {
        return s;
    }
    let padded = if s.len() <= d {
        format!("{}{s}", "0".repeat(d + 1 - s.len()))
    } else {
        s
    };
    let (int, frac) = padded.split_at(padded.len() - d);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

/// `units × 10^-decimals` as the nearest float (for ccxt JSON).
pub fn units_to_f64(units: u128, decimals: u32) -> f64 {
    // Through the exact text, so the float is correctly rounded.
    units_to_string(units, decimals).parse().unwrap_or(f64::NAN)
}

/// A market's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Market {
    /// Base currency code, e.g. `BTC`.
    pub base: String,
    /// Quote currency code, e.g. `USDT`.
    pub quote: String,
    /// A price tick is `10^-price_decimals` quote.
    pub price_decimals: u32,
    /// An amount lot is `10^-amount_decimals` base.
    pub amount_decimals: u32,
    /// The smallest order amount, in lots.
    pub min_amount: u64,
}

impl Market {
    /// A market with a one-lot minimum amount.
    pub fn new(base: &str, quote: &str, price_decimals: u32, amount_decimals: u32) -> Self {
        Market {
            base: base.to_string(),
            quote: quote.to_string(),
            price_decimals,
            amount_decimals,
            min_amount: 1,
        }
    }

    /// The ccxt symbol, `BASE/QUOTE`.
    pub fn symbol(&self) -> String {
        format!("{}/{}", self.base, self.quote)
    }

    /// Decimals of a cost (price × amount) in quote.
    pub fn cost_decimals(&self) -> u32 {
        self.price_decimals + self.amount_decimals
    }

    /// A price in ticks as a float.
    pub fn price_to_f64(&self, ticks: u64) -> f64 {
        units_to_f64(u128::from(ticks), self.price_decimals)
    }

    /// An amount in lots as a float.
    pub fn amount_to_f64(&self, lots: u64) -> f64 {
        units_to_f64(u128::from(lots), self.amount_decimals)
    }

    /// An aggregated amount in lots (book levels) as a float.
    pub fn amount_u128_to_f64(&self, lots: u128) -> f64 {
        units_to_f64(lots, self.amount_decimals)
    }

    /// A cost as a float.
    pub fn cost_to_f64(&self, cost: u128) -> f64 {
        units_to_f64(cost, self.cost_decimals())
    }
}

/// Fee rates in parts per million of what is received (1000 = 0.1%).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeSchedule {
    /// Rate for fills of resting orders.
    pub maker_ppm: u32,
    /// Rate for fills of incoming orders.
    pub taker_ppm: u32,
}

impl Default for FeeSchedule {
    /// Maker 0.1%, taker 0.2%.
    fn default() -> Self {
        FeeSchedule {
            maker_ppm: 1_000,
            taker_ppm: 2_000,
        }
    }
}

impl FeeSchedule {
    /// From fractional rates (`0.001` = 0.1%); each must be in `[0, 1]` with at most six
    /// decimals.
    pub fn from_rates(maker: f64, taker: f64) -> Result<Self, ExchangeError> {
        let ppm = |what: &str, v: f64| {
            Num::Float(v)
                .to_units(6)
                .ok()
                .and_then(|u| u32::try_from(u).ok())
                .filter(|&u| u <= PPM)
                .ok_or_else(|| ExchangeError::InvalidConfig(format!("{what} fee rate {v}")))
        };
        Ok(FeeSchedule {
            maker_ppm: ppm("maker", maker)?,
            taker_ppm: ppm("taker", taker)?,
        })
    }

    fn check(&self) -> Result<(), ExchangeError> {
        if self.maker_ppm > PPM || self.taker_ppm > PPM {
            return Err(ExchangeError::InvalidConfig("fee rate above 100%".into()));
        }
        Ok(())
    }
}

/// Memory bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Closed orders kept per account (oldest dropped; then unknown to queries).
    pub closed_orders_per_account: usize,
    /// Own trades kept per account.
    pub trades_per_account: usize,
    /// Public trades kept per market.
    pub trades_per_market: usize,
    /// Open orders per account; placing more is an `InvalidOrder`.
    pub open_orders_per_account: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            closed_orders_per_account: 1_000,
            trades_per_account: 1_000,
            trades_per_market: 1_000,
            open_orders_per_account: 1_000,
        }
    }
}

/// An order's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// ccxt's name: `buy` or `sell`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    /// From ccxt's name.
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            _ => None,
        }
    }
}

/// An order's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderType {
    Limit,
    Market,
}

impl OrderType {
    /// ccxt's name: `limit` or `market`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Limit => "limit",
            OrderType::Market => "market",
        }
    }

    /// From ccxt's name.
    pub fn parse(s: &str) -> Option<OrderType> {
        match s {
            "limit" => Some(OrderType::Limit),
            "market" => Some(OrderType::Market),
            _ => None,
        }
    }
}

/// How long an order's unfilled rest lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimeInForce {
    /// Good till cancelled: the rest rests in the book.
    #[default]
    Gtc,
    /// Immediate or cancel: the rest expires.
    Ioc,
    /// Fill or kill: all at once, or the order is refused.
    Fok,
}

impl TimeInForce {
    /// ccxt's name: `GTC`, `IOC` or `FOK`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Gtc => "GTC",
            TimeInForce::Ioc => "IOC",
            TimeInForce::Fok => "FOK",
        }
    }

    /// From ccxt's name (`PO` is post-only, a flag of a GTC order here, so not parsed).
    pub fn parse(s: &str) -> Option<TimeInForce> {
        match s {
            "GTC" => Some(TimeInForce::Gtc),
            "IOC" => Some(TimeInForce::Ioc),
            "FOK" => Some(TimeInForce::Fok),
            _ => None,
        }
    }
}

/// An order's status, as ccxt names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Resting in the book.
    Open,
    /// Completely filled.
    Closed,
    /// Cancelled by its owner.
    Canceled,
    /// Its rest was dropped by the engine: IOC or market remainder, self-trade prevention.
    Expired,
    /// Never produced: refused orders are errors and leave no trace. Here for ccxt parity.
    Rejected,
}

impl OrderStatus {
    /// ccxt's name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Closed => "closed",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Expired => "expired",
            OrderStatus::Rejected => "rejected",
        }
    }
}

/// Which side of a trade an order was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TakerOrMaker {
    Taker,
    Maker,
}

impl TakerOrMaker {
    /// ccxt's name: `taker` or `maker`.
    pub fn as_str(self) -> &'static str {
        match self {
            TakerOrMaker::Taker => "taker",
            TakerOrMaker::Maker => "maker",
        }
    }
}

/// A fee: exact units of the currency it was charged in (the currency received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fee {
    /// In the currency's unit, `10^-decimals`.
    pub cost: u128,
    pub currency: String,
    pub decimals: u32,
    /// The rate in ppm; `None` for an order not filled yet or filled at mixed rates (taker,
    /// then maker).
    pub rate_ppm: Option<u32>,
}

impl Fee {
    /// `cost` as a float.
    pub fn cost_f64(&self) -> f64 {
        units_to_f64(self.cost, self.decimals)
    }

    /// The rate as a fraction (`0.001`).
    pub fn rate(&self) -> Option<f64> {
        self.rate_ppm.map(|r| f64::from(r) / f64::from(PPM))
    }
}

/// An order, with all a ccxt `Order` needs. Prices, amounts and costs are in the units of its
/// market (see [`Market`]'s conversions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub client_order_id: Option<String>,
    pub account: AccountId,
    /// When it was placed, ms.
    pub timestamp: u64,
    /// Its last fill, ms.
    pub last_trade_timestamp: Option<u64>,
    /// Its last change (placement, fill, cancel), ms.
    pub last_update_timestamp: u64,
    pub symbol: String,
    pub order_type: OrderType,
    pub side: Side,
    /// The limit price in ticks; `None` for a market order (see [`Order::average_f64`]).
    pub price: Option<u64>,
    /// In lots.
    pub amount: u64,
    /// In lots; `amount - filled` is [`Order::remaining`].
    pub filled: u64,
    /// Sum of price × amount of its fills, at the market's cost scale.
    pub cost: u128,
    pub status: OrderStatus,
    /// Market orders are reported as IOC (or FOK).
    pub time_in_force: TimeInForce,
    pub post_only: bool,
    pub fee: Fee,
    /// Ids of its most recent trades (at most [`MAX_TRADES_PER_ORDER`]).
    pub trades: Vec<TradeId>,
}

impl Order {
    /// Lots not filled (for a closed order: the part that was cancelled or expired).
    pub fn remaining(&self) -> u64 {
        self.amount.saturating_sub(self.filled)
    }

    /// Resting in the book.
    pub fn is_open(&self) -> bool {
        self.status == OrderStatus::Open
    }

    /// The average fill price as a float, `None` before any fill.
    pub fn average_f64(&self, market: &Market) -> Option<f64> {
        (self.filled > 0).then(|| {
            // cost / filled is in ticks (the amount decimals cancel out).
            self.cost as f64 / self.filled as f64 / 10f64.powi(market.price_decimals as i32)
        })
    }
}

/// One side of a trade, as its account sees it: a ccxt `Trade` from `fetchMyTrades`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    /// The trade's id (the same for both sides).
    pub id: TradeId,
    /// This side's order.
    pub order_id: OrderId,
    pub account: AccountId,
    pub timestamp: u64,
    pub symbol: String,
    /// This side's side.
    pub side: Side,
    pub taker_or_maker: TakerOrMaker,
    /// Ticks (the maker's price).
    pub price: u64,
    /// Lots.
    pub amount: u64,
    /// At the market's cost scale.
    pub cost: u128,
    pub fee: Fee,
}

/// A trade as the public sees it (`trades:sim:<symbol>`, `fetchTrades`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicTrade {
    pub id: TradeId,
    pub timestamp: u64,
    pub symbol: String,
    /// The taker's side.
    pub side: Side,
    /// Ticks.
    pub price: u64,
    /// Lots.
    pub amount: u64,
    /// At the market's cost scale.
    pub cost: u128,
}

/// One aggregated price level of a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Ticks.
    pub price: u64,
    /// Lots resting at this price (`u128`: a sum of `u64`s).
    pub amount: u128,
}

/// A book snapshot: bids best (highest) first, asks best (lowest) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookSnapshot {
    pub symbol: String,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

/// What an operation changed, for the broker to publish.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Events {
    /// New public trades, in order (`trades:sim:<symbol>`).
    pub public_trades: Vec<PublicTrade>,
    /// Orders that changed, each in its final state after the operation
    /// (`orders:sim#<user>`, the user being `order.account`'s).
    pub orders: Vec<Order>,
    /// New fills, both sides of each trade (`mytrades:sim#<user>`).
    pub my_trades: Vec<Fill>,
    /// Balances of the accounts whose funds changed (`balance:sim#<user>`).
    pub balances: Vec<(AccountId, Balance)>,
}

/// The result of a placement or a cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The order placed or cancelled, in its state after the operation.
    pub order: Order,
    /// Its fills in this operation (empty for a cancel).
    pub fills: Vec<Fill>,
    /// Everything to publish.
    pub events: Events,
}

/// An order request, with quantities as they come from the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    /// Required for a limit order; ignored for a market order (ccxt clients often pass one).
    pub price: Option<Num>,
    /// In base.
    pub amount: Num,
    /// For a market order `Gtc` means `Ioc`.
    pub time_in_force: TimeInForce,
    /// Only with a GTC limit order.
    pub post_only: bool,
    /// Echoed back; not required to be unique. At most [`MAX_CLIENT_ORDER_ID_LEN`] bytes.
    pub client_order_id: Option<String>,
}

impl NewOrder {
    /// A GTC limit order.
    pub fn limit(symbol: &str, side: Side, price: impl Into<Num>, amount: impl Into<Num>) -> Self {
        NewOrder {
            symbol: symbol.to_string(),
            side,
            order_type: OrderType::Limit,
            price: Some(price.into()),
            amount: amount.into(),
            time_in_force: TimeInForce::Gtc,
            post_only: false,
            client_order_id: None,
        }
    }

    /// A market order.
    pub fn market(symbol: &str, side: Side, amount: impl Into<Num>) -> Self {
        NewOrder {
            symbol: symbol.to_string(),
            side,
            order_type: OrderType::Market,
            price: None,
            amount: amount.into(),
            time_in_force: TimeInForce::Ioc,
            post_only: false,
            client_order_id: None,
        }
    }

    /// With this time in force.
    pub fn tif(mut self, tif: TimeInForce) -> Self {
        self.time_in_force = tif;
        self
    }

    /// Post-only.
    pub fn post_only(mut self) -> Self {
        self.post_only = true;
        self
    }
}

/// A market and its book.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MarketState {
    market: Market,
    symbol: String,
    /// Currency units per lot of base.
    base_scale: u128,
    /// Currency units of quote per unit of cost.
    quote_scale: u128,
    /// Priority order: highest price, then earliest id.
    bids: BTreeSet<(Reverse<u64>, OrderId)>,
    /// Priority order: lowest price, then earliest id.
    asks: BTreeSet<(u64, OrderId)>,
    trades: VecDeque<PublicTrade>,
}

impl MarketState {
    /// The resting orders of `side`, best first: `(price, id)`.
    fn queue(&self, side: Side) -> Box<dyn Iterator<Item = (u64, OrderId)> + '_> {
        match side {
            Side::Buy => Box::new(self.bids.iter().map(|&(Reverse(p), id)| (p, id))),
            Side::Sell => Box::new(self.asks.iter().copied()),
        }
    }

    fn best(&self, side: Side) -> Option<u64> {
        self.queue(side).next().map(|(p, _)| p)
    }

    fn insert(&mut self, side: Side, price: u64, id: OrderId) {
        match side {
            Side::Buy => self.bids.insert((Reverse(price), id)),
            Side::Sell => self.asks.insert((price, id)),
        };
    }

    fn remove(&mut self, side: Side, price: u64, id: OrderId) {
        match side {
            Side::Buy => self.bids.remove(&(Reverse(price), id)),
            Side::Sell => self.asks.remove(&(price, id)),
        };
    }

    /// The currency an order of `side` pays with, and the one it receives.
    fn pays_receives(&self, side: Side) -> (&str, &str) {
        match side {
            Side::Buy => (&self.market.quote, &self.market.base),
            Side::Sell => (&self.market.base, &self.market.quote),
        }
    }

    /// Quote units of `price × lots`.
    fn quote_units(&self, price: u64, lots: u64) -> Option<u128> {
        (u128::from(price) * u128::from(lots)).checked_mul(self.quote_scale)
    }

    /// Base units of `lots`.
    fn base_units(&self, lots: u64) -> Option<u128> {
        u128::from(lots).checked_mul(self.base_scale)
    }
}

/// An order request after validation: integers only.
struct Validated {
    side: Side,
    order_type: OrderType,
    /// Limit orders only.
    price: Option<u64>,
    amount: u64,
    time_in_force: TimeInForce,
    post_only: bool,
    client_order_id: Option<String>,
}

/// One fill of a planned match.
struct PlannedFill {
    maker: OrderId,
    maker_account: AccountId,
    price: u64,
    lots: u64,
    base_units: u128,
    quote_units: u128,
    /// What the fill takes out of the taker's reservation (for a limit buy: at its limit).
    taker_consumed: u128,
}

/// A planned match against the unchanged book.
struct Plan {
    fills: Vec<PlannedFill>,
    filled: u64,
    /// Matching stopped at an order of the taker's own account.
    self_trade: bool,
    /// Sum of the fills' quote units.
    quote_total: u128,
}

/// The `sim` exchange: markets, books and paper accounts. See the module docs for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    markets: Vec<MarketState>,
    symbols: BTreeMap<String, usize>,
    /// Each currency's decimals.
    currencies: BTreeMap<String, u32>,
    fees: FeeSchedule,
    limits: Limits,
    accounts: Vec<Account>,
    names: BTreeMap<String, AccountId>,
    /// Open orders and the closed ones still kept.
    orders: BTreeMap<OrderId, Order>,
    /// Each currency's total over all accounts plus fees collected; never changes after
    /// accounts are opened.
    supply: BTreeMap<String, u128>,
    fees_collected: BTreeMap<String, u128>,
    next_order_id: OrderId,
    next_trade_id: TradeId,
}

/// `units × rate`, exact: currency units of anything received are multiples of `10^FEE_DECIMALS`
/// (= 1e6 = one ppm's denominator), and dividing first cannot overflow.
fn fee_of(units: u128, rate_ppm: u32) -> u128 {
    units / u128::from(PPM) * u128::from(rate_ppm)
}

fn invalid(what: &str, e: NumError) -> ExchangeError {
    ExchangeError::InvalidOrder(format!("{what}: {e}"))
}

fn too_large() -> ExchangeError {
    ExchangeError::InvalidOrder("order too large".into())
}

impl Exchange {
    /// An exchange with these markets and default fees and [`Limits`].
    pub fn new(markets: Vec<Market>, fees: FeeSchedule) -> Result<Self, ExchangeError> {
        Self::with_limits(markets, fees, Limits::default())
    }

    /// An exchange with these markets, fees and limits.
    pub fn with_limits(
        markets: Vec<Market>,
        fees: FeeSchedule,
        limits: Limits,
    ) -> Result<Self, ExchangeError> {
        let bad = |m: &str| ExchangeError::InvalidConfig(m.to_string());
        fees.check()?;
        if limits.closed_orders_per_account == 0 {
            // An order just closed must be findable at least once.
            return Err(bad("closed_orders_per_account must be at least 1"));
        }
        let mut currencies = BTreeMap::<String, u32>::new();
        let mut symbols = BTreeMap::new();
        for m in &markets {
            let code_ok =
                |c: &str| !c.is_empty() && !c.contains('/') && !c.contains(char::is_whitespace);
            if !code_ok(&m.base) || !code_ok(&m.quote) || m.base == m.quote {
                return Err(bad(&format!("market {}: bad currency codes", m.symbol())));
            }
            if m.price_decimals.saturating_add(m.amount_decimals) > MAX_MARKET_DECIMALS {
                return Err(bad(&format!("market {}: too many decimals", m.symbol())));
            }
            if symbols.insert(m.symbol(), symbols.len()).is_some() {
                return Err(bad(&format!("market {} listed twice", m.symbol())));
            }
            let base = currencies.entry(m.base.clone()).or_default();
            *base = (*base).max(m.amount_decimals + FEE_DECIMALS);
            let quote = currencies.entry(m.quote.clone()).or_default();
            *quote = (*quote).max(m.cost_decimals() + FEE_DECIMALS);
        }
        let markets = markets
            .into_iter()
            .map(|market| {
                // Both exponents are non-negative by construction of `currencies`.
                let base_scale = 10u128.pow(currencies[&market.base] - market.amount_decimals);
                let quote_scale = 10u128.pow(currencies[&market.quote] - market.cost_decimals());
                MarketState {
                    symbol: market.symbol(),
                    market,
                    base_scale,
                    quote_scale,
                    bids: BTreeSet::new(),
                    asks: BTreeSet::new(),
                    trades: VecDeque::new(),
                }
            })
            .collect();
        Ok(Exchange {
            markets,
            symbols,
            supply: currencies.keys().map(|c| (c.clone(), 0)).collect(),
            fees_collected: currencies.keys().map(|c| (c.clone(), 0)).collect(),
            currencies,
            fees,
            limits,
            accounts: Vec::new(),
            names: BTreeMap::new(),
            orders: BTreeMap::new(),
            next_order_id: 1,
            next_trade_id: 1,
        })
    }

    /// Opens a paper account with starting balances (currency code, amount in whole units;
    /// zero allowed, currencies not listed start at zero). The name must be new.
    pub fn open_account(
        &mut self,
        name: &str,
        balances: &[(&str, Num)],
    ) -> Result<AccountId, ExchangeError> {
        let bad = |m: String| ExchangeError::InvalidConfig(m);
        if name.is_empty() || self.names.contains_key(name) {
            return Err(bad(format!("account name {name:?} empty or taken")));
        }
        let id = u32::try_from(self.accounts.len())
            .map(AccountId)
            .map_err(|_| bad("too many accounts".into()))?;
        let mut holdings: BTreeMap<String, Holding> = self
            .currencies
            .keys()
            .map(|c| (c.clone(), Holding::default()))
            .collect();
        let mut supply = self.supply.clone();
        for (code, amount) in balances {
            let (Some(&decimals), Some(holding), Some(total)) = (
                self.currencies.get(*code),
                holdings.get_mut(*code),
                supply.get_mut(*code),
            ) else {
                return Err(bad(format!("unknown currency {code}")));
            };
            let units = amount
                .to_units(decimals)
                .map_err(|e| bad(format!("balance of {code}: {e}")))?;
            holding.free = holding
                .free
                .checked_add(units)
                .ok_or_else(|| bad(format!("balance of {code}: too large")))?;
            // Keeping the supply within u128 is what keeps every later sum within it.
            *total = total
                .checked_add(units)
                .ok_or_else(|| bad(format!("supply of {code}: too large")))?;
        }
        self.supply = supply;
        self.accounts.push(Account::new(name.to_string(), holdings));
        self.names.insert(name.to_string(), id);
        Ok(id)
    }

    /// Gives an account its own fee schedule (`None`: the exchange's), e.g. a fee-free market
    /// maker.
    pub fn set_account_fees(
        &mut self,
        account: AccountId,
        fees: Option<FeeSchedule>,
    ) -> Result<(), ExchangeError> {
        if let Some(f) = fees {
            f.check()?;
        }
        self.account_mut(account)?.fees = fees;
        Ok(())
    }

    /// The account opened with this name.
    pub fn account_id(&self, name: &str) -> Option<AccountId> {
        self.names.get(name).copied()
    }

    /// An account.
    pub fn account(&self, account: AccountId) -> Result<&Account, ExchangeError> {
        self.accounts
            .get(account.0 as usize)
            .ok_or(ExchangeError::AccountNotFound)
    }

    fn account_mut(&mut self, account: AccountId) -> Result<&mut Account, ExchangeError> {
        self.accounts
            .get_mut(account.0 as usize)
            .ok_or(ExchangeError::AccountNotFound)
    }

    /// Every account id, in opening order.
    pub fn account_ids(&self) -> impl Iterator<Item = AccountId> + '_ {
        (0..self.accounts.len() as u32).map(AccountId)
    }

    /// The markets, in configuration order.
    pub fn markets(&self) -> impl Iterator<Item = &Market> + '_ {
        self.markets.iter().map(|m| &m.market)
    }

    /// The market of a symbol.
    pub fn market(&self, symbol: &str) -> Result<&Market, ExchangeError> {
        Ok(&self.markets[self.market_index(symbol)?].market)
    }

    fn market_index(&self, symbol: &str) -> Result<usize, ExchangeError> {
        self.symbols
            .get(symbol)
            .copied()
            .ok_or_else(|| ExchangeError::BadSymbol(symbol.to_string()))
    }

    /// Every currency with its decimals (its unit is `10^-decimals`).
    pub fn currencies(&self) -> &BTreeMap<String, u32> {
        &self.currencies
    }

    /// The exchange's fee schedule.
    pub fn fees(&self) -> FeeSchedule {
        self.fees
    }

    /// The fees collected so far per currency, in currency units.
    pub fn fees_collected(&self) -> &BTreeMap<String, u128> {
        &self.fees_collected
    }

    /// Per currency: the sum of all starting balances. Always equals the sum of all accounts'
    /// totals plus the fees collected.
    pub fn supply(&self) -> &BTreeMap<String, u128> {
        &self.supply
    }

    fn fee_schedule(&self, account: AccountId) -> FeeSchedule {
        self.accounts
            .get(account.0 as usize)
            .and_then(|a| a.fees)
            .unwrap_or(self.fees)
    }

    /// An account's balances.
    pub fn balance(&self, account: AccountId) -> Result<Balance, ExchangeError> {
        Ok(self.account(account)?.balance(&self.currencies))
    }

    /// One of the account's orders (open, or closed and still kept).
    pub fn order(&self, account: AccountId, id: OrderId) -> Result<&Order, ExchangeError> {
        self.account(account)?;
        self.orders
            .get(&id)
            .filter(|o| o.account == account)
            .ok_or(ExchangeError::OrderNotFound(id))
    }

    /// The account's open orders, oldest first, of one market or all.
    pub fn open_orders(
        &self,
        account: AccountId,
        symbol: Option<&str>,
    ) -> Result<Vec<&Order>, ExchangeError> {
        let a = self.account(account)?;
        self.filter_symbol(a.open.iter(), symbol)
    }

    /// The account's closed orders still kept, oldest first, of one market or all.
    pub fn closed_orders(
        &self,
        account: AccountId,
        symbol: Option<&str>,
    ) -> Result<Vec<&Order>, ExchangeError> {
        let a = self.account(account)?;
        self.filter_symbol(a.closed.iter(), symbol)
    }

    fn filter_symbol<'a>(
        &'a self,
        ids: impl Iterator<Item = &'a OrderId>,
        symbol: Option<&str>,
    ) -> Result<Vec<&'a Order>, ExchangeError> {
        if let Some(s) = symbol {
            self.market_index(s)?;
        }
        Ok(ids
            .filter_map(|id| self.orders.get(id))
            .filter(|o| symbol.map_or(true, |s| o.symbol == s))
            .collect())
    }

    /// The account's trades kept, oldest first, ccxt-style: of one market or all; with `since`
    /// (ms, inclusive) the first `limit` from then on, without it the last `limit`.
    pub fn my_trades(
        &self,
        account: AccountId,
        symbol: Option<&str>,
        since: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Vec<&Fill>, ExchangeError> {
        let a = self.account(account)?;
        if let Some(s) = symbol {
            self.market_index(s)?;
        }
        let mut trades: Vec<&Fill> = a
            .trades
            .iter()
            .filter(|t| symbol.map_or(true, |s| t.symbol == s))
            .filter(|t| since.map_or(true, |s| t.timestamp >= s))
            .collect();
        if let Some(limit) = limit {
            if since.is_some() {
                trades.truncate(limit);
            } else {
                trades.drain(..trades.len().saturating_sub(limit));
            }
        }
        Ok(trades)
    }

    /// A market's recent public trades, oldest first: the last `limit` (all kept if `None`).
    pub fn trades(
        &self,
        symbol: &str,
        limit: Option<usize>,
    ) -> Result<Vec<&PublicTrade>, ExchangeError> {
        let ms = &self.markets[self.market_index(symbol)?];
        let skip = limit.map_or(0, |l| ms.trades.len().saturating_sub(l));
        Ok(ms.trades.iter().skip(skip).collect())
    }

    /// A market's book aggregated by price, at most `depth` levels a side.
    pub fn book(&self, symbol: &str, depth: usize) -> Result<BookSnapshot, ExchangeError> {
        let ms = &self.markets[self.market_index(symbol)?];
        let side = |side: Side| {
            let mut levels: Vec<Level> = Vec::new();
            for (price, id) in ms.queue(side) {
                let lots = self
                    .orders
                    .get(&id)
                    .map_or(0, |o| u128::from(o.remaining()));
                if let Some(l) = levels.last_mut().filter(|l| l.price == price) {
                    l.amount = l.amount.saturating_add(lots);
                } else if levels.len() == depth {
                    break;
                } else {
                    levels.push(Level {
                        price,
                        amount: lots,
                    });
                }
            }
            levels
        };
        Ok(BookSnapshot {
            symbol: ms.symbol.clone(),
            bids: side(Side::Buy),
            asks: side(Side::Sell),
        })
    }

    /// The resting orders of one side of a market in priority order (best price, then oldest).
    pub fn resting(&self, symbol: &str, side: Side) -> Result<Vec<&Order>, ExchangeError> {
        let ms = &self.markets[self.market_index(symbol)?];
        Ok(ms
            .queue(side)
            .filter_map(|(_, id)| self.orders.get(&id))
            .collect())
    }

    /// What an open order keeps reserved: its currency and units.
    fn reservation<'a>(&self, ms: &'a MarketState, order: &Order) -> Option<(&'a str, u128)> {
        let left = order.remaining();
        match order.side {
            Side::Buy => Some((&ms.market.quote, ms.quote_units(order.price?, left)?)),
            Side::Sell => Some((&ms.market.base, ms.base_units(left)?)),
        }
    }

    fn validate(market: &Market, req: &NewOrder) -> Result<Validated, ExchangeError> {
        let amount = req
            .amount
            .to_positive_u64(market.amount_decimals)
            .map_err(|e| invalid("amount", e))?;
        if amount < market.min_amount {
            return Err(ExchangeError::InvalidOrder(format!(
                "amount below the minimum {}",
                units_to_string(u128::from(market.min_amount), market.amount_decimals)
            )));
        }
        if let Some(c) = &req.client_order_id {
            if c.is_empty() || c.len() > MAX_CLIENT_ORDER_ID_LEN {
                return Err(ExchangeError::InvalidOrder(format!(
                    "clientOrderId must have 1 to {MAX_CLIENT_ORDER_ID_LEN} bytes"
                )));
            }
        }
        let (price, time_in_force) = match req.order_type {
            OrderType::Limit => {
                let price = req
                    .price
                    .as_ref()
                    .ok_or_else(|| {
                        ExchangeError::InvalidOrder("a limit order needs a price".into())
                    })?
                    .to_positive_u64(market.price_decimals)
                    .map_err(|e| invalid("price", e))?;
                (Some(price), req.time_in_force)
            }
            OrderType::Market => {
                if req.post_only {
                    return Err(ExchangeError::InvalidOrder(
                        "a market order cannot be post-only".into(),
                    ));
                }
                let tif = match req.time_in_force {
                    TimeInForce::Fok => TimeInForce::Fok,
                    TimeInForce::Gtc | TimeInForce::Ioc => TimeInForce::Ioc,
                };
                (None, tif)
            }
        };
        if req.post_only && time_in_force != TimeInForce::Gtc {
            return Err(ExchangeError::InvalidOrder(
                "post-only needs time in force GTC".into(),
            ));
        }
        Ok(Validated {
            side: req.side,
            order_type: req.order_type,
            price,
            amount,
            time_in_force,
            post_only: req.post_only,
            client_order_id: req.client_order_id.clone(),
        })
    }

    /// Plans the match of an incoming order against the unchanged book.
    fn plan(
        &self,
        ms: &MarketState,
        account: AccountId,
        v: &Validated,
    ) -> Result<Plan, ExchangeError> {
        let mut plan = Plan {
            fills: Vec::new(),
            filled: 0,
            self_trade: false,
            quote_total: 0,
        };
        let mut left = v.amount;
        for (price, id) in ms.queue(v.side.opposite()) {
            if left == 0 {
                break;
            }
            if let Some(limit) = v.price {
                let acceptable = match v.side {
                    Side::Buy => price <= limit,
                    Side::Sell => price >= limit,
                };
                if !acceptable {
                    break;
                }
            }
            // Book entries always name open orders; skipping is the harmless answer otherwise.
            let Some(maker) = self.orders.get(&id) else {
                continue;
            };
            if maker.account == account {
                plan.self_trade = true;
                break;
            }
            let lots = left.min(maker.remaining());
            let base_units = ms.base_units(lots).ok_or_else(too_large)?;
            let quote_units = ms.quote_units(price, lots).ok_or_else(too_large)?;
            let taker_consumed = match (v.side, v.price) {
                (Side::Buy, Some(limit)) => ms.quote_units(limit, lots).ok_or_else(too_large)?,
                (Side::Buy, None) => quote_units,
                (Side::Sell, _) => base_units,
            };
            plan.quote_total = plan
                .quote_total
                .checked_add(quote_units)
                .ok_or_else(too_large)?;
            plan.fills.push(PlannedFill {
                maker: id,
                maker_account: maker.account,
                price,
                lots,
                base_units,
                quote_units,
                taker_consumed,
            });
            left -= lots;
            plan.filled += lots;
        }
        Ok(plan)
    }

    /// Places an order for `account`: validates it, matches it, rests or expires its rest.
    /// On error nothing changes.
    pub fn place(
        &mut self,
        account: AccountId,
        req: &NewOrder,
        now_ms: u64,
    ) -> Result<Outcome, ExchangeError> {
        let acct = self.account(account)?;
        let m = self.market_index(&req.symbol)?;
        let ms = &self.markets[m];
        let v = Self::validate(&ms.market, req)?;
        if v.post_only {
            if let (Some(limit), Some(best)) = (v.price, ms.best(v.side.opposite())) {
                let would_take = match v.side {
                    Side::Buy => best <= limit,
                    Side::Sell => best >= limit,
                };
                if would_take {
                    return Err(ExchangeError::OrderImmediatelyFillable);
                }
            }
        }
        let plan = self.plan(ms, account, &v)?;
        if v.time_in_force == TimeInForce::Fok && plan.filled < v.amount {
            return Err(ExchangeError::OrderNotFillable);
        }
        let rests = v.order_type == OrderType::Limit
            && v.time_in_force == TimeInForce::Gtc
            && !plan.self_trade
            && plan.filled < v.amount;
        if rests && acct.open.len() >= self.limits.open_orders_per_account {
            return Err(ExchangeError::InvalidOrder(format!(
                "more than {} open orders",
                self.limits.open_orders_per_account
            )));
        }
        let (pays, _) = ms.pays_receives(v.side);
        let required = match (v.side, v.price) {
            (Side::Buy, Some(limit)) => ms.quote_units(limit, v.amount).ok_or_else(too_large)?,
            (Side::Buy, None) => plan.quote_total,
            (Side::Sell, _) => ms.base_units(v.amount).ok_or_else(too_large)?,
        };
        let free = acct.free(pays);
        if free < required {
            let decimals = self.currencies.get(pays).copied().unwrap_or(0);
            return Err(ExchangeError::InsufficientFunds(format!(
                "{} {pays} needed, {} free",
                units_to_string(required, decimals),
                units_to_string(free, decimals)
            )));
        }
        // Everything that can fail has been checked: from here on the plan is applied in full.
        Ok(self.execute(m, account, v, plan, required, rests, now_ms))
    }

    /// Applies a checked plan. Cannot fail: every amount was computed (with overflow checks)
    /// while planning, funds were checked, and every balance stays within the supply.
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &mut self,
        m: usize,
        account: AccountId,
        v: Validated,
        plan: Plan,
        required: u128,
        rests: bool,
        now_ms: u64,
    ) -> Outcome {
        let (pays, receives) = {
            let (p, r) = self.markets[m].pays_receives(v.side);
            (p.to_string(), r.to_string())
        };
        let symbol = self.markets[m].symbol.clone();
        let taker_fees = self.fee_schedule(account);
        let id = self.next_order_id;
        self.next_order_id += 1;
        let mut order = Order {
            id,
            client_order_id: v.client_order_id,
            account,
            timestamp: now_ms,
            last_trade_timestamp: None,
            last_update_timestamp: now_ms,
            symbol: symbol.clone(),
            order_type: v.order_type,
            side: v.side,
            price: v.price,
            amount: v.amount,
            filled: 0,
            cost: 0,
            status: OrderStatus::Open,
            time_in_force: v.time_in_force,
            post_only: v.post_only,
            fee: self.empty_fee(&receives),
            trades: Vec::new(),
        };
        let mut events = Events::default();
        let mut fills = Vec::new();
        let mut touched = BTreeSet::from([account]);
        let mut reserved = required;
        self.accounts[account.0 as usize].reserve(&pays, required);

        for pf in plan.fills {
            let trade_id = self.next_trade_id;
            self.next_trade_id += 1;
            let maker_fees = self.fee_schedule(pf.maker_account);
            // The taker receives `receives`, the maker what the taker pays.
            let (taker_gets, maker_gets) = match v.side {
                Side::Buy => (pf.base_units, pf.quote_units),
                Side::Sell => (pf.quote_units, pf.base_units),
            };
            let taker_fee = fee_of(taker_gets, taker_fees.taker_ppm);
            let maker_fee = fee_of(maker_gets, maker_fees.maker_ppm);

            let taker = &mut self.accounts[account.0 as usize];
            taker.spend(&pays, pf.taker_consumed);
            reserved -= pf.taker_consumed;
            // A limit buy reserved at its limit and paid the maker's (lower or equal) price.
            let paid = match v.side {
                Side::Buy => pf.quote_units,
                Side::Sell => pf.base_units,
            };
            taker.credit(&pays, pf.taker_consumed - paid);
            taker.credit(&receives, taker_gets - taker_fee);

            // The maker reserved exactly this at its own price, which is the trade's.
            let maker = &mut self.accounts[pf.maker_account.0 as usize];
            maker.spend(&receives, taker_gets);
            maker.credit(&pays, maker_gets - maker_fee);
            touched.insert(pf.maker_account);
            *self.fees_collected.entry(receives.clone()).or_default() += taker_fee;
            *self.fees_collected.entry(pays.clone()).or_default() += maker_fee;

            let cost = u128::from(pf.price) * u128::from(pf.lots);
            let trade = PublicTrade {
                id: trade_id,
                timestamp: now_ms,
                symbol: symbol.clone(),
                side: v.side,
                price: pf.price,
                amount: pf.lots,
                cost,
            };
            let taker_fill = Fill {
                id: trade_id,
                order_id: id,
                account,
                timestamp: now_ms,
                symbol: symbol.clone(),
                side: v.side,
                taker_or_maker: TakerOrMaker::Taker,
                price: pf.price,
                amount: pf.lots,
                cost,
                fee: Fee {
                    cost: taker_fee,
                    rate_ppm: Some(taker_fees.taker_ppm),
                    ..self.empty_fee(&receives)
                },
            };
            let maker_fill = Fill {
                order_id: pf.maker,
                account: pf.maker_account,
                side: v.side.opposite(),
                taker_or_maker: TakerOrMaker::Maker,
                fee: Fee {
                    cost: maker_fee,
                    rate_ppm: Some(maker_fees.maker_ppm),
                    ..self.empty_fee(&pays)
                },
                ..taker_fill.clone()
            };
            record_fill(&mut order, &taker_fill);

            // The maker's order, and its end if it is filled.
            if let Some(mo) = self.orders.get_mut(&pf.maker) {
                record_fill(mo, &maker_fill);
                if mo.remaining() == 0 {
                    mo.status = OrderStatus::Closed;
                }
                let done = !mo.is_open();
                events.orders.push(mo.clone());
                if done {
                    self.markets[m].remove(v.side.opposite(), pf.price, pf.maker);
                    self.archive(pf.maker_account, pf.maker);
                }
            }

            let bound = self.limits.trades_per_account;
            self.accounts[account.0 as usize].record_trade(taker_fill.clone(), bound);
            self.accounts[pf.maker_account.0 as usize].record_trade(maker_fill.clone(), bound);
            let ms = &mut self.markets[m];
            ms.trades.push_back(trade.clone());
            while ms.trades.len() > self.limits.trades_per_market {
                ms.trades.pop_front();
            }
            events.public_trades.push(trade);
            events.my_trades.push(taker_fill.clone());
            events.my_trades.push(maker_fill);
            fills.push(taker_fill);
        }

        order.status = if order.remaining() == 0 {
            OrderStatus::Closed
        } else if rests {
            OrderStatus::Open
        } else {
            OrderStatus::Expired
        };
        if order.is_open() {
            // `reserved` is now exactly the reservation of the rest (limit × remaining).
            if let Some(price) = order.price {
                self.markets[m].insert(v.side, price, id);
            }
            self.accounts[account.0 as usize].open.insert(id);
            self.orders.insert(id, order.clone());
        } else {
            self.accounts[account.0 as usize].release(&pays, reserved);
            self.orders.insert(id, order.clone());
            self.archive(account, id);
        }
        events.orders.insert(0, order.clone());
        events.balances = touched
            .into_iter()
            .map(|a| (a, self.accounts[a.0 as usize].balance(&self.currencies)))
            .collect();
        Outcome {
            order,
            fills,
            events,
        }
    }

    /// A zero fee in `currency`.
    fn empty_fee(&self, currency: &str) -> Fee {
        Fee {
            cost: 0,
            currency: currency.to_string(),
            decimals: self.currencies.get(currency).copied().unwrap_or(0),
            rate_ppm: None,
        }
    }

    /// Moves a just-closed order to its account's closed list, forgetting the orders dropped.
    fn archive(&mut self, account: AccountId, id: OrderId) {
        let bound = self.limits.closed_orders_per_account;
        for old in self.accounts[account.0 as usize].archive(id, bound) {
            self.orders.remove(&old);
        }
    }

    /// Cancels one of the account's open orders and releases its reservation.
    pub fn cancel(
        &mut self,
        account: AccountId,
        id: OrderId,
        now_ms: u64,
    ) -> Result<Outcome, ExchangeError> {
        self.account(account)?;
        let mut order = self
            .orders
            .get(&id)
            .filter(|o| o.account == account && o.is_open())
            .cloned()
            .ok_or(ExchangeError::OrderNotFound(id))?;
        let m = self.market_index(&order.symbol)?;
        let (currency, units) = self
            .reservation(&self.markets[m], &order)
            .map(|(c, u)| (c.to_string(), u))
            .ok_or(ExchangeError::OrderNotFound(id))?;
        // Checked: from here on nothing fails.
        self.markets[m].remove(order.side, order.price.unwrap_or(0), id);
        let acct = &mut self.accounts[account.0 as usize];
        acct.release(&currency, units);
        let balance = acct.balance(&self.currencies);
        order.status = OrderStatus::Canceled;
        order.last_update_timestamp = now_ms;
        self.orders.insert(id, order.clone());
        self.archive(account, id);
        let events = Events {
            orders: vec![order.clone()],
            balances: vec![(account, balance)],
            ..Events::default()
        };
        Ok(Outcome {
            order,
            fills: Vec::new(),
            events,
        })
    }

    /// Cancels all the account's open orders, of one market or all. Returns the cancelled
    /// orders and the account's balance (no balance when nothing was cancelled).
    pub fn cancel_all(
        &mut self,
        account: AccountId,
        symbol: Option<&str>,
        now_ms: u64,
    ) -> Result<Events, ExchangeError> {
        let ids: Vec<OrderId> = self
            .open_orders(account, symbol)?
            .iter()
            .map(|o| o.id)
            .collect();
        let mut events = Events::default();
        for id in ids {
            let outcome = self.cancel(account, id, now_ms)?;
            events.orders.push(outcome.order);
        }
        if !events.orders.is_empty() {
            events.balances.push((account, self.balance(account)?));
        }
        Ok(events)
    }
}

/// Adds a fill to its order.
fn record_fill(order: &mut Order, fill: &Fill) {
    let rate = fill.fee.rate_ppm;
    order.fee.rate_ppm = if order.filled == 0 || order.fee.rate_ppm == rate {
        rate
    } else {
        None
    };
    order.filled += fill.amount;
    order.cost += fill.cost;
    order.fee.cost += fill.fee.cost;
    order.last_trade_timestamp = Some(fill.timestamp);
    order.last_update_timestamp = fill.timestamp;
    if order.trades.len() == MAX_TRADES_PER_ORDER {
        order.trades.remove(0);
    }
    order.trades.push(fill.id);
}

#[cfg(test)]
mod tests {
    use super::*;

    const BTC_USDT: &str = "BTC/USDT";
    const ETH_BTC: &str = "ETH/BTC";

    /// BTC/USDT with cents and 1e-4 BTC lots; ETH/BTC with 1e-5 BTC ticks and 1e-3 ETH lots.
    fn exchange() -> Exchange {
        Exchange::new(
            vec![
                Market::new("BTC", "USDT", 2, 4),
                Market::new("ETH", "BTC", 5, 3),
            ],
            FeeSchedule::default(),
        )
        .expect("valid markets")
    }

    fn with_users() -> (Exchange, AccountId, AccountId) {
        let mut ex = exchange();
        let alice = ex
            .open_account("alice", &[("BTC", "2".into()), ("USDT", "1000".into())])
            .expect("alice");
        let bob = ex
            .open_account("bob", &[("BTC", "1".into()), ("USDT", "1000".into())])
            .expect("bob");
        (ex, alice, bob)
    }

    /// (free, used) of a currency as exact decimal text.
    fn funds(ex: &Exchange, account: AccountId, currency: &str) -> (String, String) {
        let b = ex.balance(account).expect("account");
        let c = &b.currencies[currency];
        assert_eq!(c.total, c.free + c.used);
        (
            units_to_string(c.free, c.decimals),
            units_to_string(c.used, c.decimals),
        )
    }

    fn s(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn sim_parse_units_is_exact_or_refuses() {
        assert_eq!(parse_units("1.5", 2), Ok(150));
        assert_eq!(parse_units("+.5", 1), Ok(5));
        assert_eq!(parse_units("1.500", 1), Ok(15));
        assert_eq!(parse_units("2e-3", 3), Ok(2));
        assert_eq!(parse_units("2E3", 0), Ok(2000));
        assert_eq!(parse_units("0012", 0), Ok(12));
        assert_eq!(parse_units("0", 2), Ok(0));
        assert_eq!(parse_units("-0", 2), Ok(0));
        assert_eq!(parse_units("1.25", 1), Err(NumError::TooPrecise(1)));
        assert_eq!(parse_units("1e-9", 8), Err(NumError::TooPrecise(8)));
        assert_eq!(parse_units("-1", 2), Err(NumError::Negative));
        assert_eq!(parse_units("1e40", 0), Err(NumError::TooLarge));
        for bad in [
            "", ".", "1.2.3", "abc", "1e", "e5", "NaN", "inf", "--1", "1 000", "0x10",
        ] {
            assert_eq!(parse_units(bad, 2), Err(NumError::Malformed), "{bad:?}");
        }
        assert_eq!(Num::Float(0.1).to_units(1), Ok(1));
        assert_eq!(
            Num::Float(0.1 + 0.2).to_units(8),
            Err(NumError::TooPrecise(8))
        );
        assert_eq!(Num::Float(f64::NAN).to_units(2), Err(NumError::NotANumber));
        assert_eq!(
            Num::Float(f64::NEG_INFINITY).to_units(2),
            Err(NumError::Infinite)
        );
        assert_eq!(Num::Float(1e300).to_units(0), Err(NumError::TooLarge));
        assert_eq!(Num::Float(1e-300).to_units(8), Err(NumError::TooPrecise(8)));
        assert_eq!(units_to_string(150, 2), "1.5");
        assert_eq!(units_to_string(5, 3), "0.005");
        assert_eq!(units_to_string(7, 0), "7");
        assert_eq!(units_to_f64(12345, 2), 123.45);
    }

    #[test]
    fn sim_config_is_validated() {
        let bad = |markets: Vec<Market>| Exchange::new(markets, FeeSchedule::default()).is_err();
        assert!(bad(vec![Market::new("BTC", "BTC", 2, 2)]));
        assert!(bad(vec![Market::new("", "USDT", 2, 2)]));
        assert!(bad(vec![Market::new("BTC", "USDT", 10, 9)]));
        assert!(bad(vec![
            Market::new("BTC", "USDT", 2, 2),
            Market::new("BTC", "USDT", 1, 1)
        ]));
        assert!(FeeSchedule::from_rates(0.001, 0.002).is_ok());
        assert!(FeeSchedule::from_rates(-0.001, 0.002).is_err());
        assert!(FeeSchedule::from_rates(0.001, 1.5).is_err());
        assert!(FeeSchedule::from_rates(0.0000001, 0.0).is_err());

        let mut ex = exchange();
        assert!(ex.open_account("x", &[("DOGE", "1".into())]).is_err());
        assert!(ex.open_account("x", &[("BTC", "-1".into())]).is_err());
        assert!(ex
            .open_account("x", &[("BTC", "0.000000000000001".into())])
            .is_err());
        let before = ex.clone();
        assert!(ex
            .open_account("x", &[("USDT", "1".into()), ("BTC", "1e40".into())])
            .is_err());
        assert!(ex == before, "a refused account changes nothing");
        ex.open_account("x", &[]).expect("empty account");
        assert!(ex.open_account("x", &[]).is_err(), "names are unique");
    }

    #[test]
    fn sim_bad_inputs_are_invalid_orders_and_change_nothing() {
        let (mut ex, alice, _) = with_users();
        let limit = |price: Num, amount: Num| NewOrder::limit(BTC_USDT, Side::Buy, price, amount);
        let cases: Vec<(&str, NewOrder)> = vec![
            ("zero amount", limit("100".into(), 0.0.into())),
            ("zero amount text", limit("100".into(), "0.0000".into())),
            ("zero amount units", limit("100".into(), Num::Units(0))),
            ("negative amount", limit("100".into(), (-1.0).into())),
            ("negative amount text", limit("100".into(), "-0.5".into())),
            ("NaN amount", limit("100".into(), f64::NAN.into())),
            ("infinite amount", limit("100".into(), f64::INFINITY.into())),
            ("huge amount", limit("100".into(), "1e30".into())),
            ("huge amount float", limit("100".into(), 1e300.into())),
            (
                "off-precision amount",
                limit("100".into(), "0.00001".into()),
            ),
            ("zero price", limit("0".into(), "1".into())),
            ("negative price", limit((-100.0).into(), "1".into())),
            ("NaN price", limit(f64::NAN.into(), "1".into())),
            ("huge price", limit("1e30".into(), "1".into())),
            ("off-precision price", limit("100.123".into(), "1".into())),
            ("malformed price", limit("cheap".into(), "1".into())),
            (
                "u64 overflow of cost",
                limit(Num::Units(u64::MAX), Num::Units(u64::MAX)),
            ),
            (
                "market post-only",
                NewOrder::market(BTC_USDT, Side::Buy, "1").post_only(),
            ),
            (
                "post-only IOC",
                limit("100".into(), "1".into())
                    .post_only()
                    .tif(TimeInForce::Ioc),
            ),
        ];
        for (what, order) in cases {
            let before = ex.clone();
            let err = ex.place(alice, &order, 1).expect_err(what);
            assert!(
                matches!(err, ExchangeError::InvalidOrder(_)),
                "{what}: {err:?}"
            );
            assert!(ex == before, "{what} changed the state");
        }
        let mut no_price = limit("100".into(), "1".into());
        no_price.price = None;
        assert!(matches!(
            ex.place(alice, &no_price, 1),
            Err(ExchangeError::InvalidOrder(_))
        ));
        let mut long_id = limit("100".into(), "1".into());
        long_id.client_order_id = Some("x".repeat(MAX_CLIENT_ORDER_ID_LEN + 1));
        assert!(matches!(
            ex.place(alice, &long_id, 1),
            Err(ExchangeError::InvalidOrder(_))
        ));

        let before = ex.clone();
        let bad_symbol = NewOrder::limit("DOGE/USDT", Side::Buy, "1", "1");
        assert_eq!(
            ex.place(alice, &bad_symbol, 1),
            Err(ExchangeError::BadSymbol("DOGE/USDT".into()))
        );
        assert_eq!(
            ex.place(AccountId(99), &limit("1".into(), "1".into()), 1),
            Err(ExchangeError::AccountNotFound)
        );
        assert!(ex == before);
    }

    #[test]
    fn sim_insufficient_funds_changes_nothing() {
        let (mut ex, alice, _) = with_users();
        let before = ex.clone();
        // 1000 USDT buys 10 BTC at 100, not 10.0001.
        let buy = NewOrder::limit(BTC_USDT, Side::Buy, "100", "10.0001");
        assert!(matches!(
            ex.place(alice, &buy, 1),
            Err(ExchangeError::InsufficientFunds(_))
        ));
        let sell = NewOrder::limit(BTC_USDT, Side::Sell, "100", "2.0001");
        assert!(matches!(
            ex.place(alice, &sell, 1),
            Err(ExchangeError::InsufficientFunds(_))
        ));
        assert!(ex == before);
        ex.place(alice, &NewOrder::limit(BTC_USDT, Side::Buy, "100", "10"), 1)
            .expect("exactly enough");
        assert_eq!(funds(&ex, alice, "USDT"), s("0", "1000"));
    }

    #[test]
    fn sim_trade_moves_funds_exactly_with_fees() {
        let (mut ex, alice, bob) = with_users();
        let ask = ex
            .place(
                alice,
                &NewOrder::limit(BTC_USDT, Side::Sell, "100", "1"),
                10,
            )
            .expect("ask");
        assert_eq!(ask.order.status, OrderStatus::Open);
        assert_eq!(funds(&ex, alice, "BTC"), s("1", "1"));

        // Bob bids above the ask: he trades at the ask's price and gets the difference back.
        let out = ex
            .place(bob, &NewOrder::limit(BTC_USDT, Side::Buy, "101", "0.4"), 20)
            .expect("bid");
        assert_eq!(out.order.status, OrderStatus::Closed);
        assert_eq!((out.order.filled, out.order.remaining()), (4000, 0));
        assert_eq!(out.order.cost, 40_000_000, "40 USDT at 6 cost decimals");
        assert_eq!(
            out.order.average_f64(ex.market(BTC_USDT).expect("market")),
            Some(100.0)
        );
        assert_eq!(out.fills.len(), 1);
        let fill = &out.fills[0];
        assert_eq!(
            (fill.price, fill.amount, fill.taker_or_maker),
            (10_000, 4000, TakerOrMaker::Taker)
        );
        assert_eq!(fill.fee.currency, "BTC");
        assert_eq!(units_to_string(fill.fee.cost, fill.fee.decimals), "0.0008");
        assert_eq!(fill.fee.rate(), Some(0.002));

        // Bob: paid 40 USDT, received 0.4 BTC less 0.2%.
        assert_eq!(funds(&ex, bob, "USDT"), s("960", "0"));
        assert_eq!(funds(&ex, bob, "BTC"), s("1.3992", "0"));
        // Alice: 0.6 BTC still on offer; received 40 USDT less 0.1%.
        assert_eq!(funds(&ex, alice, "BTC"), s("1", "0.6"));
        assert_eq!(funds(&ex, alice, "USDT"), s("1039.96", "0"));
        let fees = ex.fees_collected();
        assert_eq!(
            units_to_string(fees["BTC"], ex.currencies()["BTC"]),
            "0.0008"
        );
        assert_eq!(
            units_to_string(fees["USDT"], ex.currencies()["USDT"]),
            "0.04"
        );

        // Events: the public trade (taker's side), both orders, both fills, both balances.
        let ev = &out.events;
        assert_eq!(ev.public_trades.len(), 1);
        assert_eq!(ev.public_trades[0].side, Side::Buy);
        assert_eq!(
            ev.orders.iter().map(|o| o.id).collect::<Vec<_>>(),
            vec![out.order.id, ask.order.id]
        );
        assert_eq!(ev.orders[1].filled, 4000);
        assert_eq!(ev.orders[1].status, OrderStatus::Open);
        assert_eq!(ev.my_trades.len(), 2);
        assert_eq!(ev.my_trades[1].account, alice);
        assert_eq!(ev.my_trades[1].side, Side::Sell);
        assert_eq!(
            ev.balances.iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![alice, bob]
        );
        assert_eq!(
            ex.my_trades(alice, Some(BTC_USDT), None, None)
                .expect("trades")
                .len(),
            1
        );
        assert_eq!(ex.trades(BTC_USDT, Some(10)).expect("trades").len(), 1);
    }

    #[test]
    fn sim_cancel_releases_and_hides_other_accounts() {
        let (mut ex, alice, bob) = with_users();
        let bid = ex
            .place(alice, &NewOrder::limit(BTC_USDT, Side::Buy, "99.5", "2"), 1)
            .expect("bid");
        assert_eq!(funds(&ex, alice, "USDT"), s("801", "199"));
        let id = bid.order.id;

        let before = ex.clone();
        assert_eq!(ex.cancel(bob, id, 2), Err(ExchangeError::OrderNotFound(id)));
        assert_eq!(
            ex.cancel(alice, 12345, 2),
            Err(ExchangeError::OrderNotFound(12345))
        );
        assert_eq!(ex.order(bob, id), Err(ExchangeError::OrderNotFound(id)));
        assert!(ex == before);

        let out = ex.cancel(alice, id, 3).expect("cancel");
        assert_eq!(out.order.status, OrderStatus::Canceled);
        assert_eq!(out.order.last_update_timestamp, 3);
        assert_eq!(funds(&ex, alice, "USDT"), s("1000", "0"));
        assert!(ex.book(BTC_USDT, 10).expect("book").bids.is_empty());
        assert_eq!(
            ex.order(alice, id).expect("kept").status,
            OrderStatus::Canceled
        );
        assert_eq!(
            ex.cancel(alice, id, 4),
            Err(ExchangeError::OrderNotFound(id)),
            "twice"
        );
    }

    #[test]
    fn sim_fok_that_cannot_fill_changes_nothing() {
        let (mut ex, alice, bob) = with_users();
        ex.place(
            alice,
            &NewOrder::limit(BTC_USDT, Side::Sell, "100", "0.5"),
            1,
        )
        .expect("ask");
        let before = ex.clone();
        let fok = NewOrder::limit(BTC_USDT, Side::Buy, "100", "0.6").tif(TimeInForce::Fok);
        assert_eq!(ex.place(bob, &fok, 2), Err(ExchangeError::OrderNotFillable));
        let fok_market = NewOrder::market(BTC_USDT, Side::Buy, "0.6").tif(TimeInForce::Fok);
        assert_eq!(
            ex.place(bob, &fok_market, 2),
            Err(ExchangeError::OrderNotFillable)
        );
        assert!(ex == before);
        let fok = NewOrder::limit(BTC_USDT, Side::Buy, "100", "0.5").tif(TimeInForce::Fok);
        assert_eq!(
            ex.place(bob, &fok, 2).expect("fills").order.status,
            OrderStatus::Closed
        );
    }

    #[test]
    fn sim_post_only_that_would_take_changes_nothing() {
        let (mut ex, alice, bob) = with_users();
        ex.place(
            alice,
            &NewOrder::limit(BTC_USDT, Side::Sell, "100", "0.5"),
            1,
        )
        .expect("ask");
        let before = ex.clone();
        let po = NewOrder::limit(BTC_USDT, Side::Buy, "100", "0.1").post_only();
        assert_eq!(
            ex.place(bob, &po, 2),
            Err(ExchangeError::OrderImmediatelyFillable)
        );
        assert!(ex == before);
        let po = NewOrder::limit(BTC_USDT, Side::Buy, "99.99", "0.1").post_only();
        let out = ex.place(bob, &po, 2).expect("rests");
        assert_eq!(out.order.status, OrderStatus::Open);
        assert!(out.order.post_only);
    }

    #[test]
    fn sim_market_buy_walks_the_book_and_needs_the_funds() {
        let (mut ex, alice, bob) = with_users();
        ex.place(alice, &NewOrder::limit(BTC_USDT, Side::Sell, "101", "1"), 1)
            .expect("ask");
        ex.place(alice, &NewOrder::limit(BTC_USDT, Side::Sell, "100", "1"), 2)
            .expect("ask");
        // 1 at 100 + 1 at 101 = 201 USDT; bob has 1000, so 10 BTC asks for too much? No: the
        // book only has 2 BTC, so it costs 201 and the rest expires.
        let before = ex.clone();
        let poor = ex
            .open_account("poor", &[("USDT", "200.99".into())])
            .expect("poor");
        let snapshot = ex.clone();
        assert!(matches!(
            ex.place(poor, &NewOrder::market(BTC_USDT, Side::Buy, "2"), 3),
            Err(ExchangeError::InsufficientFunds(_))
        ));
        assert!(ex == snapshot);
        let mut ex = before;
        let out = ex
            .place(bob, &NewOrder::market(BTC_USDT, Side::Buy, "10"), 3)
            .expect("buy");
        assert_eq!(out.order.status, OrderStatus::Expired);
        assert_eq!(out.order.filled, 20_000);
        assert_eq!(out.order.price, None);
        assert_eq!(out.order.time_in_force, TimeInForce::Ioc);
        assert_eq!(
            out.fills.iter().map(|f| f.price).collect::<Vec<_>>(),
            vec![10_000, 10_100]
        );
        assert_eq!(funds(&ex, bob, "USDT"), s("799", "0"));
        assert_eq!(funds(&ex, bob, "BTC"), s("2.996", "0"));
        assert!(ex.book(BTC_USDT, 5).expect("book").asks.is_empty());
        // A market order on an empty book expires unfilled.
        let out = ex
            .place(bob, &NewOrder::market(BTC_USDT, Side::Buy, "1"), 4)
            .expect("buy");
        assert_eq!(
            (out.order.status, out.order.filled),
            (OrderStatus::Expired, 0)
        );
    }

    #[test]
    fn sim_ioc_fills_what_it_can() {
        let (mut ex, alice, bob) = with_users();
        ex.place(
            alice,
            &NewOrder::limit(BTC_USDT, Side::Buy, "100", "0.3"),
            1,
        )
        .expect("bid");
        let ioc = NewOrder::limit(BTC_USDT, Side::Sell, "100", "0.5").tif(TimeInForce::Ioc);
        let out = ex.place(bob, &ioc, 2).expect("ioc");
        assert_eq!(out.order.status, OrderStatus::Expired);
        assert_eq!((out.order.filled, out.order.remaining()), (3000, 2000));
        assert_eq!(funds(&ex, bob, "BTC"), s("0.7", "0"));
        assert!(ex.book(BTC_USDT, 5).expect("book").asks.is_empty());
    }

    #[test]
    fn sim_self_trade_expires_the_taker() {
        let (mut ex, alice, bob) = with_users();
        ex.place(bob, &NewOrder::limit(BTC_USDT, Side::Sell, "100", "0.1"), 1)
            .expect("bob's ask");
        let own = ex
            .place(
                alice,
                &NewOrder::limit(BTC_USDT, Side::Sell, "101", "0.1"),
                2,
            )
            .expect("alice's ask");
        ex.place(bob, &NewOrder::limit(BTC_USDT, Side::Sell, "102", "0.1"), 3)
            .expect("bob's higher ask");
        let out = ex
            .place(
                alice,
                &NewOrder::limit(BTC_USDT, Side::Buy, "102", "0.3"),
                4,
            )
            .expect("bid");
        // It took bob's 100, stopped at its own 101 and never reached bob's 102.
        assert_eq!(out.order.status, OrderStatus::Expired);
        assert_eq!(out.order.filled, 1000);
        assert_eq!(
            ex.order(alice, own.order.id).expect("own").status,
            OrderStatus::Open
        );
        assert_eq!(funds(&ex, alice, "USDT"), s("990", "0"));
        let book = ex.book(BTC_USDT, 5).expect("book");
        assert_eq!(
            book.asks.iter().map(|l| l.price).collect::<Vec<_>>(),
            vec![10_100, 10_200]
        );
    }

    #[test]
    fn sim_book_is_aggregated_and_ordered() {
        let (mut ex, alice, bob) = with_users();
        for (who, side, price, amount) in [
            (alice, Side::Buy, "99", "0.1"),
            (bob, Side::Buy, "99", "0.2"),
            (alice, Side::Buy, "98", "0.1"),
            (alice, Side::Buy, "97", "0.1"),
            (bob, Side::Sell, "101", "0.1"),
            (alice, Side::Sell, "102", "0.1"),
            (bob, Side::Sell, "101", "0.05"),
        ] {
            ex.place(who, &NewOrder::limit(BTC_USDT, side, price, amount), 1)
                .expect("order");
        }
        let book = ex.book(BTC_USDT, 2).expect("book");
        assert_eq!(
            book.bids,
            vec![
                Level {
                    price: 9900,
                    amount: 3000
                },
                Level {
                    price: 9800,
                    amount: 1000
                }
            ]
        );
        assert_eq!(
            book.asks,
            vec![
                Level {
                    price: 10_100,
                    amount: 1500
                },
                Level {
                    price: 10_200,
                    amount: 1000
                }
            ]
        );
        let queue: Vec<OrderId> = ex
            .resting(BTC_USDT, Side::Buy)
            .expect("bids")
            .iter()
            .map(|o| o.id)
            .collect();
        assert_eq!(queue, vec![1, 2, 3, 4], "price first, then time");
        assert!(matches!(
            ex.book("X/Y", 1),
            Err(ExchangeError::BadSymbol(_))
        ));
    }

    #[test]
    fn sim_histories_are_bounded() {
        let limits = Limits {
            closed_orders_per_account: 2,
            trades_per_account: 3,
            trades_per_market: 4,
            open_orders_per_account: 2,
        };
        let mut ex = Exchange::with_limits(
            vec![Market::new("BTC", "USDT", 2, 4)],
            FeeSchedule::default(),
            limits,
        )
        .expect("exchange");
        let mm = ex
            .open_account("mm", &[("BTC", "100".into()), ("USDT", "100000".into())])
            .expect("mm");
        ex.set_account_fees(
            mm,
            Some(FeeSchedule {
                maker_ppm: 0,
                taker_ppm: 0,
            }),
        )
        .expect("fees");
        let user = ex
            .open_account("user", &[("USDT", "10000".into())])
            .expect("user");
        ex.place(mm, &NewOrder::limit(BTC_USDT, Side::Sell, "100", "10"), 1)
            .expect("ask");
        for t in 0..6 {
            ex.place(user, &NewOrder::market(BTC_USDT, Side::Buy, "0.1"), t)
                .expect("buy");
        }
        assert_eq!(ex.closed_orders(user, None).expect("closed").len(), 2);
        assert_eq!(ex.my_trades(user, None, None, None).expect("mine").len(), 3);
        assert_eq!(
            ex.my_trades(user, None, None, Some(1)).expect("mine")[0].timestamp,
            5
        );
        assert_eq!(
            ex.my_trades(user, None, Some(4), Some(1)).expect("mine")[0].timestamp,
            4
        );
        assert_eq!(ex.trades(BTC_USDT, None).expect("public").len(), 4);
        assert_eq!(
            ex.order(user, 2),
            Err(ExchangeError::OrderNotFound(2)),
            "dropped"
        );
        // The maker was fee-free.
        assert_eq!(funds(&ex, mm, "USDT"), s("100060", "0"));

        ex.place(user, &NewOrder::limit(BTC_USDT, Side::Buy, "1", "1"), 7)
            .expect("1st");
        ex.place(user, &NewOrder::limit(BTC_USDT, Side::Buy, "1", "1"), 7)
            .expect("2nd");
        let before = ex.clone();
        let third = ex.place(user, &NewOrder::limit(BTC_USDT, Side::Buy, "1", "1"), 7);
        assert!(matches!(third, Err(ExchangeError::InvalidOrder(_))));
        assert!(ex == before);
        let events = ex.cancel_all(user, Some(BTC_USDT), 8).expect("cancel all");
        assert_eq!(events.orders.len(), 2);
        assert_eq!(funds(&ex, user, "USDT"), s("9940", "0"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use proptest::test_runner::TestCaseError;

        #[derive(Debug, Clone)]
        enum Op {
            Place {
                account: usize,
                market: usize,
                buy: bool,
                kind: u8,
                tif: u8,
                post_only: bool,
                price: u64,
                amount: u64,
                weird: u8,
            },
            Cancel {
                account: usize,
                pick: u64,
            },
            CancelAll {
                account: usize,
            },
        }

        fn op() -> impl Strategy<Value = Op> {
            let place = (
                (0..4usize, 0..2usize, any::<bool>(), 0..4u8),
                (
                    0..4u8,
                    prop::bool::weighted(0.15),
                    95..=105u64,
                    1..=30u64,
                    0..24u8,
                ),
            )
                .prop_map(
                    |((account, market, buy, kind), (tif, post_only, price, amount, weird))| {
                        Op::Place {
                            account,
                            market,
                            buy,
                            kind,
                            tif,
                            post_only,
                            price,
                            amount,
                            weird,
                        }
                    },
                );
            prop_oneof![
                7 => place,
                2 => (0..4usize, 0..64u64).prop_map(|(account, pick)| Op::Cancel { account, pick }),
                1 => (0..4usize).prop_map(|account| Op::CancelAll { account }),
            ]
        }

        /// Two markets sharing BTC at different scales; three small users and a rich, fee-free
        /// market maker; small bounds so that eviction and the open-order limit happen.
        fn setup() -> (Exchange, Vec<AccountId>) {
            let limits = Limits {
                closed_orders_per_account: 4,
                trades_per_account: 6,
                trades_per_market: 5,
                open_orders_per_account: 6,
            };
            let mut ex = Exchange::with_limits(
                vec![
                    Market::new("BTC", "USDT", 1, 2),
                    Market::new("ETH", "BTC", 2, 1),
                ],
                FeeSchedule::default(),
                limits,
            )
            .expect("exchange");
            let mut ids = Vec::new();
            for name in ["a", "b", "c"] {
                let balances = [
                    ("BTC", "0.5".into()),
                    ("USDT", "20".into()),
                    ("ETH", "2".into()),
                ];
                ids.push(ex.open_account(name, &balances).expect("user"));
            }
            let balances = [
                ("BTC", "1000".into()),
                ("USDT", "1000000".into()),
                ("ETH", "1000".into()),
            ];
            let mm = ex.open_account("mm", &balances).expect("mm");
            ex.set_account_fees(
                mm,
                Some(FeeSchedule {
                    maker_ppm: 0,
                    taker_ppm: 500,
                }),
            )
            .expect("fees");
            ids.push(mm);
            (ex, ids)
        }

        fn request(op: &Op) -> Option<NewOrder> {
            let Op::Place {
                market,
                buy,
                kind,
                tif,
                post_only,
                price,
                amount,
                weird,
                ..
            } = *op
            else {
                return None;
            };
            let symbol = if market == 0 { "BTC/USDT" } else { ETH_BTC };
            let side = if buy { Side::Buy } else { Side::Sell };
            let mut amount = Num::Units(amount);
            let mut price = Some(Num::Units(price));
            match weird {
                0 => amount = Num::Float(f64::NAN),
                1 => amount = Num::Text("-1".into()),
                2 => price = Some(Num::Text("10.123456".into())),
                3 => amount = Num::Float(0.0),
                4 => amount = Num::Text("1e30".into()),
                5 => price = None,
                _ => {}
            }
            let order_type = if kind == 3 {
                OrderType::Market
            } else {
                OrderType::Limit
            };
            let time_in_force = match tif {
                0 | 1 => TimeInForce::Gtc,
                2 => TimeInForce::Ioc,
                _ => TimeInForce::Fok,
            };
            Some(NewOrder {
                symbol: symbol.to_string(),
                side,
                order_type,
                price,
                amount,
                time_in_force,
                post_only,
                client_order_id: None,
            })
        }

        /// Invariants that hold after every operation.
        fn check(
            ex: &Exchange,
            initial_supply: &BTreeMap<String, u128>,
        ) -> Result<(), TestCaseError> {
            prop_assert_eq!(ex.supply(), initial_supply);
            // Conservation: every unit is in an account or among the fees.
            for (currency, supply) in ex.supply() {
                let held: u128 = ex
                    .account_ids()
                    .map(|a| ex.account(a).map_or(0, |acc| acc.holding(currency).total()))
                    .sum();
                prop_assert_eq!(
                    held + ex.fees_collected()[currency],
                    *supply,
                    "{}",
                    currency
                );
            }
            // `used` is exactly what the open orders reserve.
            let mut open_count = 0;
            for a in ex.account_ids() {
                let acc = ex.account(a).expect("account");
                let mut reserved: BTreeMap<&str, u128> = BTreeMap::new();
                for id in acc.open_order_ids() {
                    let o = &ex.orders[&id];
                    prop_assert!(o.is_open() && o.account == a);
                    let ms = &ex.markets[ex.symbols[&o.symbol]];
                    let (c, u) = ex.reservation(ms, o).expect("reservation");
                    *reserved.entry(c).or_default() += u;
                    open_count += 1;
                }
                for (currency, h) in acc.holdings() {
                    prop_assert_eq!(
                        h.used,
                        reserved.get(currency.as_str()).copied().unwrap_or(0)
                    );
                }
                prop_assert!(acc.closed.len() <= ex.limits.closed_orders_per_account);
                prop_assert!(acc.trades.len() <= ex.limits.trades_per_account);
                prop_assert!(acc.open.len() <= ex.limits.open_orders_per_account);
            }
            // Every order is consistent with its status.
            for o in ex.orders.values() {
                prop_assert!(o.filled <= o.amount);
                prop_assert_eq!(o.filled + o.remaining(), o.amount);
                match o.status {
                    OrderStatus::Open => prop_assert!(o.remaining() > 0 && o.price.is_some()),
                    OrderStatus::Closed => prop_assert_eq!(o.remaining(), 0),
                    OrderStatus::Canceled | OrderStatus::Expired => prop_assert!(o.remaining() > 0),
                    OrderStatus::Rejected => prop_assert!(false, "never produced"),
                }
            }
            // The books hold exactly the open orders, at their prices, and are not crossed.
            let mut booked = 0;
            for ms in &ex.markets {
                for side in [Side::Buy, Side::Sell] {
                    for (price, id) in ms.queue(side) {
                        let o = &ex.orders[&id];
                        prop_assert!(o.is_open() && o.side == side && o.price == Some(price));
                        prop_assert_eq!(&o.symbol, &ms.symbol);
                        booked += 1;
                    }
                }
                if let (Some(bid), Some(ask)) = (ms.best(Side::Buy), ms.best(Side::Sell)) {
                    prop_assert!(bid < ask, "crossed book {}: {} >= {}", ms.symbol, bid, ask);
                }
                prop_assert!(ms.trades.len() <= ex.limits.trades_per_market);
            }
            prop_assert_eq!(booked, open_count);
            Ok(())
        }

        /// A placement matched the book as it was in price-time priority, skipping nothing.
        fn check_priority(before: &Exchange, out: &Outcome) -> Result<(), TestCaseError> {
            let order = &out.order;
            let queue = before
                .resting(&order.symbol, order.side.opposite())
                .expect("queue");
            let makers: Vec<&Fill> = out
                .events
                .my_trades
                .iter()
                .filter(|f| f.taker_or_maker == TakerOrMaker::Maker)
                .collect();
            prop_assert!(makers.len() <= queue.len());
            let acceptable = |price: u64| match (order.side, order.price) {
                (_, None) => true,
                (Side::Buy, Some(limit)) => price <= limit,
                (Side::Sell, Some(limit)) => price >= limit,
            };
            for (i, fill) in makers.iter().enumerate() {
                let resting = queue[i];
                prop_assert_eq!(fill.order_id, resting.id, "fill {} skipped the queue", i);
                prop_assert_eq!(Some(fill.price), resting.price);
                prop_assert!(acceptable(fill.price));
                prop_assert!(resting.account != order.account, "self-trade");
                if i + 1 < makers.len() {
                    prop_assert_eq!(
                        fill.amount,
                        resting.remaining(),
                        "an earlier maker left over"
                    );
                } else {
                    prop_assert!(fill.amount <= resting.remaining());
                }
            }
            // It stopped only when filled, at its limit, or at its own order.
            if order.remaining() > 0 {
                if let Some(next) = queue.get(makers.len()) {
                    let price = next.price.expect("limit");
                    prop_assert!(next.account == order.account || !acceptable(price));
                }
            }
            prop_assert_eq!(
                out.fills.iter().map(|f| f.amount).sum::<u64>(),
                order.filled
            );
            prop_assert_eq!(out.fills.iter().map(|f| f.cost).sum::<u128>(), order.cost);
            Ok(())
        }

        /// Guards against a vacuous property test: the generated sequences do reach fills,
        /// resting orders, self-trade prevention and every kind of refusal.
        #[test]
        fn sim_generator_covers_the_cases() {
            use proptest::strategy::ValueTree;
            use proptest::test_runner::TestRunner;
            let mut runner = TestRunner::deterministic();
            let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
            for _ in 0..96 {
                let ops = prop::collection::vec(op(), 1..60)
                    .new_tree(&mut runner)
                    .expect("ops")
                    .current();
                let (mut ex, accounts) = setup();
                for (now, op) in ops.iter().enumerate() {
                    let kind = match op {
                        Op::Place { account, .. } => {
                            let req = request(op).expect("a placement");
                            match ex.place(accounts[*account], &req, now as u64) {
                                Ok(o) if o.order.is_open() => "rested",
                                Ok(o) if !o.fills.is_empty() => "filled",
                                Ok(_) => "expired unfilled",
                                Err(ExchangeError::InvalidOrder(_)) => "invalid",
                                Err(ExchangeError::InsufficientFunds(_)) => "insufficient",
                                Err(ExchangeError::OrderNotFillable) => "fok",
                                Err(ExchangeError::OrderImmediatelyFillable) => "post-only",
                                Err(_) => "other error",
                            }
                        }
                        Op::Cancel { account, pick } => {
                            match ex.cancel(accounts[*account], pick % 40, now as u64) {
                                Ok(_) => "canceled",
                                Err(_) => "not found",
                            }
                        }
                        Op::CancelAll { .. } => "cancel all",
                    };
                    *seen.entry(kind).or_default() += 1;
                }
                let self_trades = ex
                    .orders
                    .values()
                    .filter(|o| {
                        o.status == OrderStatus::Expired && o.time_in_force == TimeInForce::Gtc
                    })
                    .count();
                *seen.entry("self-trade").or_default() += self_trades;
            }
            for kind in [
                "rested",
                "filled",
                "invalid",
                "insufficient",
                "fok",
                "post-only",
                "canceled",
                "not found",
                "self-trade",
            ] {
                assert!(
                    seen.get(kind).copied().unwrap_or(0) > 0,
                    "never {kind}: {seen:?}"
                );
            }
            assert!(!seen.contains_key("other error"), "{seen:?}");
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 96,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn sim_engine_invariants(ops in prop::collection::vec(op(), 1..60)) {
                let (mut ex, accounts) = setup();
                let supply = ex.supply().clone();
                for (now, op) in ops.iter().enumerate() {
                    let now = now as u64;
                    let before = ex.clone();
                    let result = match op {
                        Op::Place { account, .. } => {
                            let req = request(op).expect("a placement");
                            let r = ex.place(accounts[*account], &req, now);
                            if let Ok(out) = &r {
                                check_priority(&before, out)?;
                            }
                            r.map(|o| o.events)
                        }
                        Op::Cancel { account, pick } => {
                            let id = pick % (before.next_order_id + 1);
                            let r = ex.cancel(accounts[*account], id, now);
                            let was_open = before
                                .order(accounts[*account], id)
                                .is_ok_and(|o| o.is_open());
                            prop_assert_eq!(r.is_ok(), was_open);
                            if let Err(e) = &r {
                                prop_assert_eq!(e, &ExchangeError::OrderNotFound(id));
                            }
                            r.map(|o| o.events)
                        }
                        Op::CancelAll { account } => ex.cancel_all(accounts[*account], None, now),
                    };
                    match result {
                        Err(_) => prop_assert!(ex == before, "a refused {:?} changed the state", op),
                        Ok(events) => {
                            for (a, balance) in &events.balances {
                                prop_assert_eq!(balance, &ex.balance(*a).expect("balance"));
                            }
                        }
                    }
                    check(&ex, &supply)?;
                }
            }
        }
    }
}
