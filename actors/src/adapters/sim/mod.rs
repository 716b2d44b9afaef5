//! The built-in `sim` exchange: offline paper trading against a market maker's book and other
//! users' orders.
//!
//! - [`engine`]: markets, books, matching and the exchange's operations (pure, clock-free).
//! - [`accounts`]: the paper accounts' balances and bounded histories.
//! - [`stats`]: the 24-hour ticker statistics and OHLCV candles, from the trades.

pub mod accounts;
pub mod convert;
pub mod engine;
pub mod exchange;
pub mod stats;
