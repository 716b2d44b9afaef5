//! What every exchange adapter answers: the ccxt methods a client calls with rpc
//! `exchange.<method>` ([`ExchangeCall`]), and the errors they end in, with ccxt's kinds.
//!
//! An adapter is an actor. It also hears from the Router when its channels gain and lose their
//! subscribers ([`crate::router::Demand`]) and publishes through the Router like anyone
//! ([`crate::router::Publish`]). Sessions find adapters in [`Exchanges`], built once at start.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use rpc_crypto_proto::ccxt::ErrorKind;
use rpc_crypto_proto::ErrorReply;

/// The ccxt methods of the `exchange.*` rpc family, by their ccxt (snake_case) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeMethod {
    LoadMarkets,
    FetchTicker,
    FetchTickers,
    FetchOrderBook,
    FetchTrades,
    FetchOhlcv,
    /// Checks credentials; the session keeps them for the private methods.
    Login,
    FetchBalance,
    CreateOrder,
    CancelOrder,
    FetchOrder,
    FetchOpenOrders,
    FetchMyTrades,
}

impl ExchangeMethod {
    pub const ALL: [ExchangeMethod; 13] = [
        ExchangeMethod::LoadMarkets,
        ExchangeMethod::FetchTicker,
        ExchangeMethod::FetchTickers,
        ExchangeMethod::FetchOrderBook,
        ExchangeMethod::FetchTrades,
        ExchangeMethod::FetchOhlcv,
        ExchangeMethod::Login,
        ExchangeMethod::FetchBalance,
        ExchangeMethod::CreateOrder,
        ExchangeMethod::CancelOrder,
        ExchangeMethod::FetchOrder,
        ExchangeMethod::FetchOpenOrders,
        ExchangeMethod::FetchMyTrades,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ExchangeMethod::LoadMarkets => "load_markets",
            ExchangeMethod::FetchTicker => "fetch_ticker",
            ExchangeMethod::FetchTickers => "fetch_tickers",
            ExchangeMethod::FetchOrderBook => "fetch_order_book",
            ExchangeMethod::FetchTrades => "fetch_trades",
            ExchangeMethod::FetchOhlcv => "fetch_ohlcv",
            ExchangeMethod::Login => "login",
            ExchangeMethod::FetchBalance => "fetch_balance",
            ExchangeMethod::CreateOrder => "create_order",
            ExchangeMethod::CancelOrder => "cancel_order",
            ExchangeMethod::FetchOrder => "fetch_order",
            ExchangeMethod::FetchOpenOrders => "fetch_open_orders",
            ExchangeMethod::FetchMyTrades => "fetch_my_trades",
        }
    }

    /// The method of an rpc name without its `exchange.` prefix.
    pub fn from_name(name: &str) -> Option<ExchangeMethod> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the method acts on an account, and so needs a login first.
    pub fn is_private(self) -> bool {
        matches!(
            self,
            ExchangeMethod::FetchBalance
                | ExchangeMethod::CreateOrder
                | ExchangeMethod::CancelOrder
                | ExchangeMethod::FetchOrder
                | ExchangeMethod::FetchOpenOrders
                | ExchangeMethod::FetchMyTrades
        )
    }
}

/// A session's credentials for one exchange, from `exchange.login`. For `sim`, an account name;
/// for a real exchange, an API key and secret. Held only by the session; `Debug` shows neither
/// secret nor key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The session's user: private pushes go to its `#<user>` channels.
    pub user: String,
    /// The account name (sim) or API key (real exchanges).
    pub account: String,
    /// The API secret (real exchanges).
    pub secret: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A call of an `exchange.*` method. `params` is the rpc data without `exchange`; the answer is
/// the ccxt structure as JSON, ready for the rpc result.
#[derive(Message, Debug)]
#[rtype(result = "Result<Bytes, ExchangeError>")]
pub struct ExchangeCall {
    pub method: ExchangeMethod,
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Present for the private methods and for `login` (the credentials to check).
    pub credentials: Option<Credentials>,
}

/// A failed exchange call: a ccxt error kind and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.name())]
pub struct ExchangeError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ExchangeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ExchangeError {
            kind,
            message: message.into(),
        }
    }

    /// The error reply a client gets: the kind's code (12xx), `<Kind>: <message>`.
    pub fn to_reply(&self) -> ErrorReply {
        ErrorReply {
            code: self.kind.code(),
            message: self.to_string().into(),
            temporary: self.kind.temporary(),
        }
    }
}

/// The exchanges this server runs, by name, as the sessions reach them.
#[derive(Clone, Default)]
pub struct Exchanges(Arc<BTreeMap<String, Recipient<ExchangeCall>>>);

impl Exchanges {
    pub fn new(exchanges: BTreeMap<String, Recipient<ExchangeCall>>) -> Self {
        Exchanges(Arc::new(exchanges))
    }

    pub fn get(&self, name: &str) -> Option<&Recipient<ExchangeCall>> {
        self.0.get(name)
    }

    /// Their names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The exchanges whose adapter actor is no longer running (it panicked).
    pub fn stopped(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|(_, adapter)| !adapter.connected())
            .map(|(name, _)| name.as_str())
    }
}

impl fmt::Debug for Exchanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_by_name_and_which_need_a_login() {
        for method in ExchangeMethod::ALL {
            assert_eq!(ExchangeMethod::from_name(method.name()), Some(method));
        }
        assert_eq!(ExchangeMethod::from_name("withdraw"), None);
        assert!(ExchangeMethod::CreateOrder.is_private());
        assert!(!ExchangeMethod::FetchTicker.is_private());
        assert!(!ExchangeMethod::Login.is_private());
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let credentials = Credentials {
            user: "alice".into(),
            account: "api-key-123".into(),
            secret: Some("s3cret".into()),
        };
        let shown = format!("{credentials:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("api-key-123") && !shown.contains("s3cret"));
    }

    #[test]
    fn errors_carry_the_ccxt_kind_and_its_code() {
        let error = ExchangeError::new(ErrorKind::InsufficientFunds, "need 10 USDT");
        let reply = error.to_reply();
        assert_eq!(reply.code, 1203);
        assert_eq!(reply.message, "InsufficientFunds: need 10 USDT");
        assert!(!reply.temporary);
    }
}
