//! Coinbase Exchange (formerly Coinbase Pro): its market list and WebSocket feed, normalized
//! to ccxt structures. Pure code — no actor, no network — so the real captures under
//! `fixtures/exchanges/` drive it in tests exactly as the live feed would.
//!
//! - [`Markets`]: `GET /products` → ccxt [`Market`](rpc_crypto_proto::ccxt::Market)s and the
//!   product id ↔ symbol lookup (`BTC-USD` ↔ `BTC/USD`).
//! - [`parse_message`]: one feed frame → [`Message`] (`subscriptions`, `heartbeat`, level2
//!   `snapshot`/`l2update`, `ticker`, `match`/`last_match`), or a typed [`FeedError`].
//! - [`Level2Book`], [`Level2Books`]: level2 books kept by exact price text, checked for
//!   being crossed after every update (level2 has no sequence or checksum), published as ccxt
//!   OrderBooks (top N).
//! - [`TickerMessage::to_ccxt`], [`MatchMessage::to_ccxt`]: ccxt Ticker and Trade, value for
//!   value as ccxt's `ccxt.pro.coinbaseexchange` makes them (checked against ccxt itself in
//!   the tests, `ccxt_expected.json`).
//! - [`parse_iso8601_ms`]: Coinbase's `time` fields, read as ccxt's `parse8601` reads them.

pub mod adapter;
mod book;
mod markets;
mod messages;
mod time;

#[cfg(test)]
mod tests;

pub use book::{Level, Level2Book, Level2Books};
pub use markets::Markets;
pub use messages::{
    parse_message, Field, Heartbeat, L2Update, MatchMessage, Message, Snapshot, SubscribedChannel,
    Subscriptions, TickerMessage,
};
pub use time::parse_iso8601_ms;

use rpc_crypto_proto::ccxt::ErrorKind;

/// What can go wrong reading Coinbase's market list or feed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The text is not JSON, or not the JSON shape its `type` promises.
    #[error("malformed Coinbase message: {0}")]
    Json(#[from] serde_json::Error),
    /// A message `type` this adapter does not read (or none at all).
    #[error("unknown Coinbase message type {0:?}")]
    UnknownType(String),
    /// A required field is absent.
    #[error("Coinbase message lacks {0:?}")]
    Missing(&'static str),
    /// A field holds something that is not what it must be (a price that is not a positive
    /// decimal, a side that is neither buy nor sell, a time that is not ISO 8601).
    #[error("malformed Coinbase field {field:?}: {value:?}")]
    BadField {
        /// The field's name.
        field: &'static str,
        /// Its text, at most 64 characters.
        value: String,
    },
    /// A product missing from the market list.
    #[error("unknown Coinbase product {0:?}")]
    UnknownProduct(String),
    /// An update for a book that has no current snapshot (never had one, or was dropped when
    /// found crossed): resubscribe to level2 for the product.
    #[error("Coinbase level2 book of {0:?} is not in sync: resubscribe for a snapshot")]
    NotSynced(String),
    /// The book is crossed after an update: an update was lost. The book has been emptied;
    /// resubscribe to level2 for the product.
    #[error("Coinbase level2 book of {product:?} crossed: best bid {bid} >= best ask {ask}")]
    Crossed {
        /// The product.
        product: String,
        /// The best bid's price text.
        bid: String,
        /// The best ask's price text.
        ask: String,
    },
    /// Coinbase answered with an `error` message: a refused subscription (unknown product or
    /// channel), failed authentication...
    #[error("Coinbase refused: {message}{}", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Refused {
        /// Coinbase's `message` (`Failed to subscribe`), at most 64 characters.
        message: String,
        /// Coinbase's `reason` (`FOO-BAR is not a valid product`), at most 64 characters.
        reason: Option<String>,
    },
}

impl FeedError {
    /// A [`FeedError::BadField`], keeping at most 64 characters of the value.
    pub fn bad_field(field: &'static str, value: &str) -> Self {
        Self::BadField {
            field,
            value: value.chars().take(64).collect(),
        }
    }

    /// A [`FeedError::UnknownProduct`], keeping at most 64 characters of the id.
    pub fn unknown_product(product_id: &str) -> Self {
        Self::UnknownProduct(product_id.chars().take(64).collect())
    }

    /// The ccxt error class a client sees for it.
    ///
    /// A feed we cannot read is `ExchangeNotAvailable` (temporary: a reconnect may help); a
    /// book out of sync is `InvalidNonce`, the class ccxt raises for lost book updates
    /// (its `ChecksumError` is one); an unknown product, or Coinbase refusing one, is
    /// `BadSymbol`; failed authentication `AuthenticationError`; any other refusal
    /// `BadRequest`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Json(_) | Self::UnknownType(_) | Self::Missing(_) | Self::BadField { .. } => {
                ErrorKind::ExchangeNotAvailable
            }
            Self::NotSynced(_) | Self::Crossed { .. } => ErrorKind::InvalidNonce,
            Self::UnknownProduct(_) => ErrorKind::BadSymbol,
            Self::Refused { message, reason } => {
                let reason = reason.as_deref().unwrap_or_default();
                if message.contains("Authentication") {
                    ErrorKind::AuthenticationError
                } else if reason.contains("not a valid product") {
                    ErrorKind::BadSymbol
                } else {
                    ErrorKind::BadRequest
                }
            }
        }
    }
}
