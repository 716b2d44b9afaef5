//! Kraken: its market list, its WebSocket messages and its order books, normalized to ccxt.
//!
//! The normalizers are pure code, no actor and no I/O, so that every rule can be tested on the
//! real captures in `fixtures/exchanges/` (`KRAKEN.0`, `KRAKEN.ws.50.0`); the adapter actor
//! ([`adapter`]) drives them.
//!
//! - [`adapter`]: [`KrakenAdapter`], the actor: market list, upstream WebSocket (v2 by default,
//!   v1 with `feed = "v1"`), books kept in sync (resubscribing on a checksum mismatch),
//!   publications and `exchange.*` calls.
//! - [`markets`]: `AssetPairs` → ccxt [`Market`](rpc_crypto_proto::ccxt::Market)s, and the
//!   lookups from WebSocket pair names (v1 `XBT/USD`, v2 `BTC/USD`) to ccxt symbols (`BTC/USD`).
//! - [`book`]: [`KrakenBook`], a book kept to the subscribed depth and verified against
//!   Kraken's CRC32 checksums, published as a ccxt `OrderBook`.
//! - [`v1`]: WebSocket v1 messages classified ([`KrakenMessage`]): events, book snapshots and
//!   updates, trades and tickers as ccxt structures.
//! - [`v2`]: WebSocket v2 messages classified ([`V2Message`]): answers, heartbeats, books,
//!   trades, tickers and candles.
//!
//! The adapter's loop, in short (v2; v1 alike with [`parse_message`]):
//! ```text
//! match v2::parse_v2_message(text, &markets)? {
//!     V2Message::Book(books) => for each: snapshot → KrakenBook::new(..).with_precision(..)
//!         .apply_snapshot(&delta)?, update → book.apply_update(&delta)?,
//!         // Err(ChecksumMismatch): resubscribe
//!     V2Message::Trades(trades) => publish each,
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
#[cfg(test)]
mod v2_tests;

pub use adapter::{
    FeedVersion, GetKrakenStats, KrakenAdapter, KrakenFeed, KrakenSettings, KrakenStats,
};
pub use book::{parse_number, BadNumber, BookDelta, BookError, KrakenBook, LevelUpdate};
pub use markets::{KrakenMarkets, KrakenPair, MarketsError, UnknownPair};
pub use v1::{parse_message, BookMessage, KrakenMessage, MessageError};
pub use v2::{parse_v2_book, parse_v2_message, V2Ack, V2Book, V2Candle, V2Message, V2PairBook};
