//! ccxt's OrderBook: the price levels of one market, best first on each side.
//!
//! This is the published form (a snapshot of the top levels); keeping a book in sync with an
//! exchange's updates is the adapters' work.

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// ccxt's OrderBook structure: `bids` by price descending, `asks` ascending, each level
/// `[price, amount]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderBook {
    /// The ccxt symbol.
    pub symbol: String,
    /// Buy levels, best (highest) price first.
    pub bids: Vec<[f64; 2]>,
    /// Sell levels, best (lowest) price first.
    pub asks: Vec<[f64; 2]>,
    /// `timestamp` and `datetime` of the book's state.
    #[serde(flatten)]
    pub timestamp: Timestamp,
    /// The exchange's sequence number of this state (Binance `lastUpdateId`), if it has one.
    pub nonce: Option<u64>,
}

impl OrderBook {
    /// A book of `symbol` from levels in any order: sorts them as ccxt does (see [`Self::sort`]).
    pub fn new(
        symbol: impl Into<String>,
        bids: Vec<[f64; 2]>,
        asks: Vec<[f64; 2]>,
        timestamp: impl Into<Timestamp>,
        nonce: Option<u64>,
    ) -> Self {
        let mut book = Self {
            symbol: symbol.into(),
            bids,
            asks,
            timestamp: timestamp.into(),
            nonce,
        };
        book.sort();
        book
    }

    /// Sorts bids by price descending and asks ascending. `total_cmp` gives NaN a fixed place
    /// instead of panicking or leaving the order undefined.
    pub fn sort(&mut self) {
        self.bids.sort_by(|a, b| b[0].total_cmp(&a[0]));
        self.asks.sort_by(|a, b| a[0].total_cmp(&b[0]));
    }

    /// Keeps at most `depth` levels per side (the published top N).
    pub fn truncate(&mut self, depth: usize) {
        self.bids.truncate(depth);
        self.asks.truncate(depth);
    }

    /// The best bid `[price, amount]`.
    pub fn best_bid(&self) -> Option<[f64; 2]> {
        self.bids.first().copied()
    }

    /// The best ask `[price, amount]`.
    pub fn best_ask(&self) -> Option<[f64; 2]> {
        self.asks.first().copied()
    }
}
