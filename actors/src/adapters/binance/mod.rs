//! Binance spot. [`adapter`] is the actor ([`BinanceAdapter`]: connection, REST, publications).
//! The other modules are the pure half of the adapter: they turn Binance's text into ccxt
//! structures or Binance's requests, with no I/O and no actor, so that they can be tested
//! against the real captures (`fixtures/exchanges/BINANCE.*`) and ccxt's own parsers.
//!
//! - [`markets`]: `exchangeInfo` → ccxt Markets; id ↔ symbol lookups ([`Markets`]).
//! - [`depth`]: the diff-depth stream kept in sync with REST snapshots by Binance's documented
//!   procedure ([`DepthSync`]), published as ccxt OrderBooks.
//! - [`stream`]: combined-stream messages (`bookTicker`, `aggTrade`, `kline`, `24hrTicker`,
//!   depth) → ccxt Ticker, Trade, OHLCV ([`parse_message`]).
//! - [`rest`]: signed private requests (account, order, cancel, open orders), signature
//!   checks, and responses and error bodies → ccxt Balance, Order, error kinds.
//!
//! Exact decimals (the book's keys, ccxt's string arithmetic) are the adapters' shared
//! [`decimal`](crate::adapters::decimal) types.
//!
//! The expected values of the tests come from ccxt itself (the PyPI package, 4.5.90), run
//! offline over the same captures by `testdata/ccxt_oracle.py`.

pub mod adapter;
pub mod depth;
pub mod markets;
pub mod rest;
pub mod stream;

#[cfg(test)]
mod adapter_tests;
#[cfg(test)]
mod tests;

pub use adapter::{BinanceAdapter, BinanceSettings, BinanceStats, GetStats};
pub use depth::{
    Applied, DepthError, DepthSnapshot, DepthSync, DepthUpdate, Level, SyncError, SyncStats,
};
pub use markets::{currency_code, Markets, MarketsError};
pub use rest::{ApiError, Credentials, ResponseError, SignedRequest};
pub use stream::{parse_message, Kline, StreamError, StreamEvent, StreamMessage};
