//! ccxt's Ticker: the 24-hour statistics and best prices of one market.

use serde::{Deserialize, Serialize};

use super::{Info, Timestamp};

/// ccxt's Ticker structure. Prices are in the quote currency; unknown values are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticker {
    /// The ccxt symbol.
    pub symbol: String,
    /// `timestamp` and `datetime` of the statistics.
    #[serde(flatten)]
    pub timestamp: Timestamp,
    /// Highest price over the window.
    pub high: Option<f64>,
    /// Lowest price over the window.
    pub low: Option<f64>,
    /// Best bid price.
    pub bid: Option<f64>,
    /// Amount at the best bid.
    pub bid_volume: Option<f64>,
    /// Best ask price.
    pub ask: Option<f64>,
    /// Amount at the best ask.
    pub ask_volume: Option<f64>,
    /// Volume-weighted average price over the window.
    pub vwap: Option<f64>,
    /// Opening price of the window.
    pub open: Option<f64>,
    /// Closing price (ccxt: the same as `last`).
    pub close: Option<f64>,
    /// Price of the last trade.
    pub last: Option<f64>,
    /// Closing price of the previous window.
    pub previous_close: Option<f64>,
    /// Absolute change, `last - open`.
    pub change: Option<f64>,
    /// Relative change in percent, `change / open * 100`.
    pub percentage: Option<f64>,
    /// Average price, `(last + open) / 2`.
    pub average: Option<f64>,
    /// Volume in the base currency.
    pub base_volume: Option<f64>,
    /// Volume in the quote currency.
    pub quote_volume: Option<f64>,
    /// The exchange's message.
    pub info: Info,
}

impl Ticker {
    /// A ticker of `symbol` at `timestamp` with every value unknown.
    pub fn new(symbol: impl Into<String>, timestamp: impl Into<Timestamp>) -> Self {
        Self {
            symbol: symbol.into(),
            timestamp: timestamp.into(),
            high: None,
            low: None,
            bid: None,
            bid_volume: None,
            ask: None,
            ask_volume: None,
            vwap: None,
            open: None,
            close: None,
            last: None,
            previous_close: None,
            change: None,
            percentage: None,
            average: None,
            base_volume: None,
            quote_volume: None,
            info: Info::NONE,
        }
    }

    /// Fills what ccxt's `safeTicker` derives and the exchange left out: `close` and `last`
    /// from each other, then `change`, `percentage` and `average` from `open` and `last`.
    pub fn complete(&mut self) {
        self.close = self.close.or(self.last);
        self.last = self.last.or(self.close);
        if let (Some(open), Some(last)) = (self.open, self.last) {
            let change = self.change.get_or_insert(last - open);
            if self.percentage.is_none() && open != 0.0 {
                self.percentage = Some(*change / open * 100.0);
            }
            self.average.get_or_insert((last + open) / 2.0);
        }
    }
}
