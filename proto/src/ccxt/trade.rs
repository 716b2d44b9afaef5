//! ccxt's Trade (public trades and the user's own fills) and Fee.

use serde::{Deserialize, Serialize};

use super::{Info, Timestamp};

string_enum! {
    /// ccxt's order and trade `side`.
    pub enum Side {
        /// Buying the base currency.
        Buy = "buy",
        /// Selling the base currency.
        Sell = "sell",
    }
}

impl Side {
    /// The other side (e.g. a maker's side from a taker's).
    pub const fn opposite(self) -> Self {
        match self {
            Self::Buy => Self::Sell,
            Self::Sell => Self::Buy,
        }
    }
}

string_enum! {
    /// ccxt's order `type`.
    pub enum OrderType {
        /// At a price or better.
        Limit = "limit",
        /// At whatever the book offers.
        Market = "market",
    }
}

string_enum! {
    /// ccxt's `takerOrMaker`: whether the user's side of a trade took or made liquidity.
    pub enum TakerOrMaker {
        /// Matched a resting order.
        Taker = "taker",
        /// Was the resting order.
        Maker = "maker",
    }
}

/// ccxt's Fee: `{cost, currency, rate}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fee {
    /// Amount charged, in `currency`.
    pub cost: Option<f64>,
    /// Unified code of the currency charged.
    pub currency: Option<String>,
    /// Rate applied (0.001 = 0.1%).
    pub rate: Option<f64>,
}

/// ccxt's Trade structure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trade {
    /// The exchange's trade id.
    pub id: Option<String>,
    /// `timestamp` and `datetime` of the execution.
    #[serde(flatten)]
    pub timestamp: Timestamp,
    /// The ccxt symbol.
    pub symbol: String,
    /// The exchange's id of the user's order (own trades only).
    pub order: Option<String>,
    /// Type of the user's order (own trades only).
    #[serde(rename = "type")]
    pub order_type: Option<OrderType>,
    /// The taker's side (for own trades: the user's side).
    pub side: Side,
    /// Whether the user took or made liquidity (own trades only).
    pub taker_or_maker: Option<TakerOrMaker>,
    /// Execution price in the quote currency.
    pub price: f64,
    /// Amount in the base currency (contracts for derivatives).
    pub amount: f64,
    /// Total in the quote currency.
    pub cost: Option<f64>,
    /// The fee (own trades only).
    pub fee: Option<Fee>,
    /// Every fee, when several currencies were charged; `[]` when none is known.
    pub fees: Vec<Fee>,
    /// The exchange's message.
    pub info: Info,
}

impl Trade {
    /// A public trade: `side` is the taker's, `cost` is `price × amount` (ccxt's rule for spot
    /// and linear markets; for contracts the adapter sets it from the contract size).
    pub fn new(
        symbol: impl Into<String>,
        timestamp: impl Into<Timestamp>,
        side: Side,
        price: f64,
        amount: f64,
    ) -> Self {
        Self {
            id: None,
            timestamp: timestamp.into(),
            symbol: symbol.into(),
            order: None,
            order_type: None,
            side,
            taker_or_maker: None,
            price,
            amount,
            cost: Some(price * amount),
            fee: None,
            fees: Vec::new(),
            info: Info::NONE,
        }
    }
}
