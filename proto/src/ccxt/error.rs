//! ccxt's error classes as error kinds, and their RPC-Crypto error codes (1201–1213).
//!
//! ccxt users handle failures by exception class (`except ccxt.InsufficientFunds:`), so an error
//! from an exchange adapter names the ccxt class it corresponds to. The code table is in the
//! [module doc](super).

string_enum! {
    /// A ccxt error class. [`ErrorKind::name`] is the class name, [`ErrorKind::code`] the
    /// RPC-Crypto error code.
    pub enum ErrorKind {
        /// The exchange rejected the credentials or the signature.
        AuthenticationError = "AuthenticationError",
        /// The credentials lack the permission for this call.
        PermissionDenied = "PermissionDenied",
        /// Not enough balance for the order.
        InsufficientFunds = "InsufficientFunds",
        /// The order breaks the market's rules (size, price, type).
        InvalidOrder = "InvalidOrder",
        /// No such order.
        OrderNotFound = "OrderNotFound",
        /// No such market, or a malformed symbol.
        BadSymbol = "BadSymbol",
        /// Malformed or incomplete arguments.
        BadRequest = "BadRequest",
        /// The exchange (or this broker) does not offer this.
        NotSupported = "NotSupported",
        /// The exchange could not be reached.
        NetworkError = "NetworkError",
        /// The exchange's rate limit was hit.
        RateLimitExceeded = "RateLimitExceeded",
        /// The exchange is down or in maintenance.
        ExchangeNotAvailable = "ExchangeNotAvailable",
        /// The exchange did not answer in time.
        RequestTimeout = "RequestTimeout",
        /// The request's nonce was stale or reused.
        InvalidNonce = "InvalidNonce",
    }
}

/// The first code of the range; `code = BASE + position in ErrorKind::ALL + 1`.
const BASE: u32 = 1200;

impl ErrorKind {
    /// The exact ccxt class name (`"InsufficientFunds"`).
    pub const fn name(self) -> &'static str {
        self.as_str()
    }

    /// The RPC-Crypto error code: 1201 ([`Self::AuthenticationError`]) to 1213
    /// ([`Self::InvalidNonce`]), in declaration order.
    pub const fn code(self) -> u32 {
        // Fieldless enum without explicit discriminants: `as` gives the declaration index.
        BASE + 1 + self as u32
    }

    /// The kind whose [`code`](Self::code) is `code`.
    pub fn from_code(code: u32) -> Option<Self> {
        let index = code.checked_sub(BASE + 1)?;
        Self::ALL.get(usize::try_from(index).ok()?).copied()
    }

    /// Whether retrying later may succeed: ccxt's `NetworkError` and its subclasses
    /// (`RateLimitExceeded`, `ExchangeNotAvailable`, `RequestTimeout`, `InvalidNonce`).
    pub const fn temporary(self) -> bool {
        matches!(
            self,
            Self::NetworkError
                | Self::RateLimitExceeded
                | Self::ExchangeNotAvailable
                | Self::RequestTimeout
                | Self::InvalidNonce
        )
    }
}
