//! ccxt's Order: one of the user's orders and its state.

use serde::{Deserialize, Serialize};

use super::{Fee, Info, OrderType, Side, Timestamp, Trade};

string_enum! {
    /// ccxt's order `status`.
    pub enum OrderStatus {
        /// On the book, possibly partly filled.
        Open = "open",
        /// Completely filled.
        Closed = "closed",
        /// Canceled by the user (possibly partly filled).
        Canceled = "canceled",
        /// Ended by its time in force or expiry.
        Expired = "expired",
        /// Refused by the exchange.
        Rejected = "rejected",
    }
}

string_enum! {
    /// ccxt's `timeInForce`.
    pub enum TimeInForce {
        /// Good till canceled.
        Gtc = "GTC",
        /// Immediate or cancel: fill what can be filled now, cancel the rest.
        Ioc = "IOC",
        /// Fill or kill: fill all now or nothing.
        Fok = "FOK",
        /// Post only: rest on the book as maker or be rejected.
        Po = "PO",
    }
}

/// ccxt's Order structure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// The exchange's order id.
    pub id: String,
    /// The user's own id for the order.
    pub client_order_id: Option<String>,
    /// `timestamp` and `datetime` of placement.
    #[serde(flatten)]
    pub timestamp: Timestamp,
    /// UTC milliseconds of the latest fill.
    pub last_trade_timestamp: Option<i64>,
    /// Open, closed, canceled, expired or rejected.
    pub status: Option<OrderStatus>,
    /// The ccxt symbol.
    pub symbol: String,
    /// Limit or market.
    #[serde(rename = "type")]
    pub order_type: OrderType,
    /// How long the order stays on the book.
    pub time_in_force: Option<TimeInForce>,
    /// Buy or sell.
    pub side: Side,
    /// Limit price; `null` for market orders.
    pub price: Option<f64>,
    /// Average fill price.
    pub average: Option<f64>,
    /// Ordered amount in the base currency (contracts for derivatives).
    pub amount: f64,
    /// Amount filled so far.
    pub filled: Option<f64>,
    /// Amount still open, `amount - filled`.
    pub remaining: Option<f64>,
    /// Quote currency spent or received so far.
    pub cost: Option<f64>,
    /// The fills, when known; `[]` otherwise.
    pub trades: Vec<Trade>,
    /// Fee charged so far.
    pub fee: Option<Fee>,
    /// Price at which a stop order activates.
    pub trigger_price: Option<f64>,
    /// May only reduce a position.
    pub reduce_only: Option<bool>,
    /// Must rest on the book as maker.
    pub post_only: Option<bool>,
    /// The exchange's message.
    pub info: Info,
}

impl Order {
    /// A freshly placed order, open and unfilled: `filled` 0, `remaining` = `amount`, `cost` 0.
    /// `price` is `None` for a market order.
    pub fn new(
        id: impl Into<String>,
        symbol: impl Into<String>,
        order_type: OrderType,
        side: Side,
        amount: f64,
        price: Option<f64>,
        timestamp: impl Into<Timestamp>,
    ) -> Self {
        Self {
            id: id.into(),
            client_order_id: None,
            timestamp: timestamp.into(),
            last_trade_timestamp: None,
            status: Some(OrderStatus::Open),
            symbol: symbol.into(),
            order_type,
            time_in_force: None,
            side,
            price,
            average: None,
            amount,
            filled: Some(0.0),
            remaining: Some(amount),
            cost: Some(0.0),
            trades: Vec::new(),
            fee: None,
            trigger_price: None,
            reduce_only: None,
            post_only: None,
            info: Info::NONE,
        }
    }
}
