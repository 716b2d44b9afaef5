//! The ccxt unified model: market data and trading structures exactly as ccxt writes them.
//!
//! Exchange adapters normalize every feed into these types, and clients receive them as JSON, so
//! a program written against ccxt (or its WebSocket methods: watchTicker, watchOrderBook,
//! watchTrades, watchOHLCV, watchBalance, watchOrders) reads our pushes unchanged. The field
//! names, their JSON types and the enum strings follow the ccxt Manual and ccxt's
//! `ts/src/base/types.ts` (see `shared/reference/market-data.md`):
//!
//! - every field is always present; an unknown value is JSON `null`, never a missing key;
//! - numbers are JSON numbers, `timestamp` is integer UTC milliseconds, `datetime` is ISO 8601
//!   with milliseconds and `Z` (`2017-07-05T18:47:14.692Z`);
//! - `info` carries the exchange's raw message, embedded as JSON ([`Info`]).
//!
//! `datetime` is never stored: it is written from `timestamp` when serializing ([`Timestamp`],
//! [`Expiry`]), so the two cannot disagree, and no string is allocated for it on the hot path.
//!
//! # Structures
//! | ccxt | here |
//! |---|---|
//! | Market | [`Market`], [`Precision`], [`Limits`], [`MinMax`] |
//! | Ticker | [`Ticker`] |
//! | OrderBook | [`OrderBook`] |
//! | Trade | [`Trade`], [`Fee`] |
//! | OHLCV | [`Ohlcv`] (the array `[timestamp, open, high, low, close, volume]`) |
//! | Order | [`Order`] |
//! | Balance | [`Balance`], [`Account`] |
//! | symbols | [`Symbol`], [`common_currency`] |
//! | errors | [`ErrorKind`] |
//!
//! # Error codes
//! ccxt's error classes map to RPC-Crypto error codes 1201–1213 ([`ErrorKind::code`],
//! [`ErrorKind::from_code`]), so a client can rebuild the ccxt exception from a reply's code;
//! [`ErrorKind::name`] gives the class name for the reply's message. *Temporary* errors
//! ([`ErrorKind::temporary`], the reply's `temporary` flag) may succeed when retried; in ccxt
//! they are the subclasses of `NetworkError`.
//!
//! | code | ccxt class | temporary | meaning |
//! |---|---|---|---|
//! | 1201 | AuthenticationError | no | the exchange rejected the credentials or signature |
//! | 1202 | PermissionDenied | no | the credentials lack the permission for this call |
//! | 1203 | InsufficientFunds | no | not enough balance for the order |
//! | 1204 | InvalidOrder | no | the order breaks the market's rules (size, price, type) |
//! | 1205 | OrderNotFound | no | no such order (unknown id, or already gone) |
//! | 1206 | BadSymbol | no | no such market or malformed symbol |
//! | 1207 | BadRequest | no | malformed or incomplete arguments |
//! | 1208 | NotSupported | no | the exchange (or this broker) does not offer this |
//! | 1209 | NetworkError | yes | the exchange could not be reached |
//! | 1210 | RateLimitExceeded | yes | the exchange's rate limit was hit |
//! | 1211 | ExchangeNotAvailable | yes | the exchange is down or in maintenance |
//! | 1212 | RequestTimeout | yes | the exchange did not answer in time |
//! | 1213 | InvalidNonce | yes | the request's nonce was stale or reused |

/// Defines a fieldless enum that is written as one fixed string (serde, `Display`, `FromStr`),
/// because ccxt's enums are plain JSON strings and both directions must agree on the spelling.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$( Self::$variant, )+];

            /// The exact string ccxt uses.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::ccxt::UnknownValue;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err($crate::ccxt::UnknownValue {
                        kind: stringify!($name),
                        value: text.chars().take(64).collect(),
                    }),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                // Borrowing would fail on escaped strings; ccxt's enum strings are short anyway.
                let text = <::std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    };
}

mod balance;
mod error;
pub mod fields;
mod info;
mod market;
mod ohlcv;
mod order;
mod order_book;
mod symbol;
mod ticker;
mod time;
mod trade;

#[cfg(test)]
mod tests;

pub use balance::{Account, Balance, BalanceError};
pub use error::ErrorKind;
pub use info::Info;
pub use market::{FeeSide, Limits, Market, MarketType, MinMax, OptionType, Precision};
pub use ohlcv::Ohlcv;
pub use order::{Order, OrderStatus, TimeInForce};
pub use order_book::OrderBook;
pub use symbol::{common_currency, ExpiryDate, Symbol, SymbolError, SymbolKind};
pub use ticker::Ticker;
pub(crate) use time::days_from_civil;
pub use time::{iso8601, Expiry, Iso8601, Timestamp};
pub use trade::{Fee, OrderType, Side, TakerOrMaker, Trade};

/// A string that is not one of an enum's ccxt values (e.g. `"sideways"` for a [`Side`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    /// The enum's Rust name.
    pub kind: &'static str,
    /// The rejected text (at most 64 characters, so an error never carries a huge input).
    pub value: String,
}
