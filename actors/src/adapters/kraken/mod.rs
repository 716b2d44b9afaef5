//! Kraken: its market list, its WebSocket messages and its order books, normalized to ccxt.
//!
//! The normalizers are pure code, no actor and no I/O, so that every rule can be tested on the
//! real captures in `fixtures/exchanges/` (`KRAKEN.0`, `KRAKEN.ws.50.0`); the adapter actor
//! ([`adapter`]) drives them.
//!
//! - [`adapter`]: [`KrakenAdapter`], the actor: market list, upstream WebSocket, books kept in
//!   sync (resubscribing on a checksum mismatch), publications and `exchange.*` calls.
//! - [`markets`]: `AssetPairs` → ccxt [`Market`](rpc_crypto_proto::ccxt::Market)s, and the
//!   lookup from WebSocket pair names (`XBT/USD`) to ccxt symbols (`BTC/USD`).
//! - [`book`]: [`KrakenBook`], a book kept to the subscribed depth and verified against
//!   Kraken's CRC32 checksums, published as a ccxt `OrderBook`.
//! - [`v1`]: WebSocket v1 messages classified ([`KrakenMessage`]): events, book snapshots and
//!   updates, trades and tickers as ccxt structures.
//! - [`v2`]: WebSocket v2 book messages.
//!
//! The adapter's loop, in short:
//! ```text
//! match v1::parse_message(text, &markets)? {
//!     KrakenMessage::Book(m) if m.snapshot => books.entry(symbol)
//!         .or_insert(KrakenBook::new(symbol, m.depth)).apply_snapshot(&m.delta)?,
//!     KrakenMessage::Book(m) => book.apply_update(&m.delta)?,   // Err(ChecksumMismatch): resubscribe
//!     KrakenMessage::Trades(trades) => publish each,
//!     ...
//! }
//! ```

pub mod adapter;
pub mod book;
pub mod markets;
pub mod v1;
pub mod v2;

#[cfg(test)]
mod adapter_tests;
#[cfg(test)]
mod tests;

pub use adapter::{GetKrakenStats, KrakenAdapter, KrakenFeed, KrakenSettings, KrakenStats};
pub use book::{parse_number, BadNumber, BookDelta, BookError, KrakenBook, LevelUpdate};
pub use markets::{KrakenMarkets, KrakenPair, MarketsError, UnknownPair};
pub use v1::{parse_message, BookMessage, KrakenMessage, MessageError};
pub use v2::{parse_v2_book, V2Book};
