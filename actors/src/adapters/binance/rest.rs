//! Binance's signed REST endpoints for private trading, the pure part: building signed
//! requests, checking signatures (for a local stand-in server), and reading responses and
//! error bodies into ccxt structures and error kinds.
//!
//! Binance's scheme ("SIGNED endpoint security", spot REST API docs): the request's parameters
//! carry `timestamp` (ms) and optionally `recvWindow`; `signature` is the hex HMAC-SHA256 of
//! the *total params* (query string, then request body) keyed by the secret key, appended as
//! the last parameter; the API key travels in the `X-MBX-APIKEY` header. Parameters here are
//! percent-encoded before signing (RFC 3986 unreserved characters stay), as Binance requires
//! for non-ASCII values; the signature covers exactly the text sent.
//!
//! | call | request | response |
//! |---|---|---|
//! | balance | `GET /api/v3/account` ([`account_request`]) | [`parse_balance`] |
//! | create order | `POST /api/v3/order` ([`new_order_request`]) | [`parse_order`] |
//! | cancel order | `DELETE /api/v3/order` ([`cancel_order_request`]) | [`parse_order`] |
//! | open orders | `GET /api/v3/openOrders` ([`open_orders_request`]) | [`parse_orders`] |
//! | any failure | | [`parse_error`] → ccxt [`ErrorKind`] |
//!
//! Responses follow ccxt's `binance.parseBalance` (spot), `parseOrder` and `safeOrder`
//! (checked against ccxt 4.5.90 in the tests). Secrets never reach `Debug` output.

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use rpc_crypto_proto::ccxt::{
    Account, Balance, BalanceError, ErrorKind, Fee, Info, Order, OrderStatus, OrderType, Side,
    TimeInForce, Timestamp, Trade,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::Sha256;

use super::markets::{currency_code, Markets};
use super::stream::Id;
use crate::adapters::decimal::{omit_zero, Decimal, DIV_PRECISION};

type HmacSha256 = Hmac<Sha256>;

/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "X-MBX-APIKEY";

/// Binance's default `recvWindow` (ms), which ccxt also leaves to the exchange.
pub const DEFAULT_RECV_WINDOW: u64 = 5000;

/// A user's Binance API key and secret key. `Debug` shows neither: only the key's first four
/// characters, to tell keys apart in a log.
#[derive(Clone)]
pub struct Credentials {
    api_key: String,
    secret: String,
}

impl Credentials {
    /// Credentials from an API key and its secret key.
    pub fn new(api_key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            secret: secret.into(),
        }
    }

    /// The API key (for the `X-MBX-APIKEY` header).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The signature of `total_params` with this secret.
    pub fn sign(&self, total_params: &str) -> String {
        signature(&self.secret, total_params)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &Redacted(&self.api_key))
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The first four characters and `…`, never the whole key.
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix: String = self.0.chars().take(4).collect();
        write!(f, "\"{prefix}…\"")
    }
}

fn mac(secret: &str) -> HmacSha256 {
    // HMAC accepts keys of any length (longer ones are hashed), so this cannot fail.
    HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length")
}

/// Binance's signature: the lowercase hex HMAC-SHA256 of `total_params` keyed by `secret`.
pub fn signature(secret: &str, total_params: &str) -> String {
    let mut mac = mac(secret);
    mac.update(total_params.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(64);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Whether `signature_hex` (either case, as Binance accepts) signs `total_params` with
/// `secret`. The comparison takes the same time wherever the bytes differ.
pub fn verify_signature(secret: &str, total_params: &str, signature_hex: &str) -> bool {
    let hex = signature_hex.as_bytes();
    if hex.len() != 64 {
        return false;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(high), Some(low)) => *byte = high << 4 | low,
            _ => return false,
        }
    }
    let mut mac = mac(secret);
    mac.update(total_params.as_bytes());
    // `verify_slice` compares in constant time (the `subtle` crate).
    mac.verify_slice(&bytes).is_ok()
}

/// Whether a request's total params (query string then body), ending with its `signature`
/// parameter as Binance's clients send it, are signed with `secret`: what a server checks.
pub fn verify(secret: &str, signed_params: &str) -> bool {
    let (payload, signature) = match signed_params.rsplit_once("&signature=") {
        Some(split) => split,
        None => match signed_params.strip_prefix("signature=") {
            Some(signature) => ("", signature),
            None => return false,
        },
    };
    verify_signature(secret, payload, signature)
}

/// An HTTP method of the signed endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET: parameters in the query string.
    Get,
    /// POST: parameters in a form-encoded body (as ccxt sends them).
    Post,
    /// DELETE: parameters in the query string.
    Delete,
}

impl Method {
    /// `GET`, `POST`, `DELETE`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Delete => "DELETE",
        }
    }
}

/// A signed request, ready for an HTTP client. `Debug` hides the API key.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The method.
    pub method: Method,
    /// The endpoint (`/api/v3/order`).
    pub path: &'static str,
    /// The total params, ending with `&signature=<hex>`.
    pub params: String,
    api_key: String,
}

impl SignedRequest {
    /// The request target: path and query for GET and DELETE, the path alone for POST.
    pub fn target(&self) -> String {
        match self.method {
            Method::Post => self.path.to_owned(),
            Method::Get | Method::Delete => format!("{}?{}", self.path, self.params),
        }
    }

    /// The body, for POST (`application/x-www-form-urlencoded`).
    pub fn body(&self) -> Option<&str> {
        (self.method == Method::Post).then_some(self.params.as_str())
    }

    /// The headers to send: the API key, and the body's type for POST.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![(API_KEY_HEADER, self.api_key.as_str())];
        if self.method == Method::Post {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        headers
    }
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("params", &self.params)
            .field("api_key", &Redacted(&self.api_key))
            .finish()
    }
}

/// Appends `key=value`, the value percent-encoded (RFC 3986 unreserved characters stay).
fn push_param(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    out.push_str(key);
    out.push('=');
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// Signs `params` for `method path`: the parameters in the given order, then `recvWindow`
/// (when given) and `timestamp`, then `signature`, the order of Binance's documented example.
pub fn signed_request(
    credentials: &Credentials,
    method: Method,
    path: &'static str,
    params: &[(&str, &str)],
    timestamp_ms: i64,
    recv_window_ms: Option<u64>,
) -> SignedRequest {
    let mut total = String::with_capacity(160);
    for (key, value) in params {
        push_param(&mut total, key, value);
    }
    if let Some(window) = recv_window_ms {
        push_param(&mut total, "recvWindow", &window.to_string());
    }
    push_param(&mut total, "timestamp", &timestamp_ms.to_string());
    let signature = credentials.sign(&total);
    push_param(&mut total, "signature", &signature);
    SignedRequest {
        method,
        path,
        params: total,
        api_key: credentials.api_key.clone(),
    }
}

/// `GET /api/v3/account`: balances.
pub fn account_request(
    credentials: &Credentials,
    timestamp_ms: i64,
    recv_window_ms: Option<u64>,
) -> SignedRequest {
    signed_request(
        credentials,
        Method::Get,
        "/api/v3/account",
        &[],
        timestamp_ms,
        recv_window_ms,
    )
}

/// A new order, in Binance's terms (`symbol` is Binance's id, amounts are decimal text so
/// they go out exactly as the caller rounded them to the market's precision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder<'a> {
    /// Binance's market id (`NKNUSDT`).
    pub symbol: &'a str,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// For limit orders: GTC (the default), IOC, FOK, or PO (sent as `LIMIT_MAKER`, Binance's
    /// post-only type, as ccxt does).
    pub time_in_force: Option<TimeInForce>,
    /// Amount in the base currency.
    pub quantity: &'a str,
    /// Limit price; ignored for market orders.
    pub price: Option<&'a str>,
    /// The user's own id (`newClientOrderId`).
    pub client_order_id: Option<&'a str>,
}

/// `POST /api/v3/order`, asking for the `FULL` response (with the fills).
pub fn new_order_request(
    credentials: &Credentials,
    order: &NewOrder<'_>,
    timestamp_ms: i64,
    recv_window_ms: Option<u64>,
) -> SignedRequest {
    let side = match order.side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    };
    let mut params: Vec<(&str, &str)> = vec![("symbol", order.symbol), ("side", side)];
    match order.order_type {
        OrderType::Market => {
            params.push(("type", "MARKET"));
            params.push(("quantity", order.quantity));
        }
        OrderType::Limit => {
            let time_in_force = match order.time_in_force.unwrap_or(TimeInForce::Gtc) {
                TimeInForce::Po => None,
                TimeInForce::Gtc => Some("GTC"),
                TimeInForce::Ioc => Some("IOC"),
                TimeInForce::Fok => Some("FOK"),
            };
            match time_in_force {
                Some(tif) => params.extend([("type", "LIMIT"), ("timeInForce", tif)]),
                None => params.push(("type", "LIMIT_MAKER")),
            }
            params.push(("quantity", order.quantity));
            params.push(("price", order.price.unwrap_or_default()));
        }
    }
    if let Some(id) = order.client_order_id {
        params.push(("newClientOrderId", id));
    }
    params.push(("newOrderRespType", "FULL"));
    signed_request(
        credentials,
        Method::Post,
        "/api/v3/order",
        &params,
        timestamp_ms,
        recv_window_ms,
    )
}

/// Which order to cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderRef<'a> {
    /// Binance's order id.
    Id(u64),
    /// The user's own id.
    ClientId(&'a str),
}

/// `DELETE /api/v3/order`.
pub fn cancel_order_request(
    credentials: &Credentials,
    symbol: &str,
    order: OrderRef<'_>,
    timestamp_ms: i64,
    recv_window_ms: Option<u64>,
) -> SignedRequest {
    let id;
    let param = match order {
        OrderRef::Id(n) => {
            id = n.to_string();
            ("orderId", id.as_str())
        }
        OrderRef::ClientId(client) => ("origClientOrderId", client),
    };
    signed_request(
        credentials,
        Method::Delete,
        "/api/v3/order",
        &[("symbol", symbol), param],
        timestamp_ms,
        recv_window_ms,
    )
}

/// `GET /api/v3/openOrders`, of one market or (`None`) all.
pub fn open_orders_request(
    credentials: &Credentials,
    symbol: Option<&str>,
    timestamp_ms: i64,
    recv_window_ms: Option<u64>,
) -> SignedRequest {
    let params: Vec<(&str, &str)> = symbol.map(|s| ("symbol", s)).into_iter().collect();
    signed_request(
        credentials,
        Method::Get,
        "/api/v3/openOrders",
        &params,
        timestamp_ms,
        recv_window_ms,
    )
}

/// A failed call, as a ccxt error kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("binance {kind} (HTTP {status}, code {code:?}): {message}")]
pub struct ApiError {
    /// The ccxt error class.
    pub kind: ErrorKind,
    /// The HTTP status.
    pub status: u16,
    /// Binance's error code (`-2010`), when the body had one.
    pub code: Option<i64>,
    /// Binance's `msg` (at most 200 characters), or the start of the body.
    pub message: String,
}

#[derive(Deserialize)]
struct WireError<'a> {
    code: i64,
    #[serde(borrow, default)]
    msg: Option<Cow<'a, str>>,
}

/// Reads a failed response (`{"code":-2010,"msg":"..."}`, or any body with an HTTP error
/// status) into a ccxt error kind.
///
/// By message first, as ccxt does (`exceptions.exact` and `broad`), then by code:
///
/// | code | kind |
/// |---|---|
/// | -2010 (NEW_ORDER_REJECTED: insufficient balance) | InsufficientFunds |
/// | -2011 (unknown order), -2013 (no such order) | OrderNotFound |
/// | -1002, -1022 (invalid signature), -2014, -2015 (API key) | AuthenticationError |
/// | -1121 (invalid symbol) | BadSymbol |
/// | -1013 (filter failure), -1111 (precision) | InvalidOrder |
/// | -1003 (request weight), -1015 (too many orders) | RateLimitExceeded |
/// | -1021 (timestamp outside recvWindow) | InvalidNonce |
/// | -1007 (timeout) | RequestTimeout |
/// | -1000, -1001, -1006 (Binance's internal errors) | ExchangeNotAvailable |
/// | others | ExchangeNotAvailable on HTTP 5xx, BadRequest otherwise |
///
/// Where ccxt differs: it calls -2010 InvalidOrder unless the message is the insufficient
/// balance one, and -1013/-1111 BadRequest unless the message names a filter. -2010's other
/// documented messages are mapped as ccxt maps them, so the table above holds for the rest.
pub fn parse_error(status: u16, body: &str) -> ApiError {
    let wire = serde_json::from_str::<WireError<'_>>(body).ok();
    let code = wire.as_ref().map(|w| w.code);
    let message: String = match wire.as_ref().and_then(|w| w.msg.as_deref()) {
        Some(msg) => msg.chars().take(200).collect(),
        None => body.chars().take(200).collect(),
    };
    let kind = wire
        .as_ref()
        .and_then(|w| w.msg.as_deref())
        .and_then(kind_of_message)
        .or_else(|| code.and_then(kind_of_code))
        .unwrap_or_else(|| kind_of_status(status));
    ApiError {
        kind,
        status,
        code,
        message,
    }
}

/// ccxt's `exceptions.exact` and `broad` messages (spot) that name a kind on their own.
fn kind_of_message(msg: &str) -> Option<ErrorKind> {
    let kind = match msg {
        "Account has insufficient balance for requested action." => ErrorKind::InsufficientFunds,
        "Order would trigger immediately."
        | "Stop price would trigger immediately."
        | "Order would immediately match and take." => ErrorKind::InvalidOrder,
        "Rest API trading is not enabled."
        | "This account may not place or cancel orders."
        | "You are not authorized to execute this request."
        | "This symbol is restricted for this account."
        | "This symbol is not permitted for this account." => ErrorKind::PermissionDenied,
        "API key does not exist" => ErrorKind::AuthenticationError,
        "System is under maintenance." => ErrorKind::ExchangeNotAvailable,
        "Too many requests. Please try again later." => ErrorKind::RateLimitExceeded,
        _ if msg.contains("has no operation privilege") => ErrorKind::PermissionDenied,
        _ => return None,
    };
    Some(kind)
}

fn kind_of_code(code: i64) -> Option<ErrorKind> {
    let kind = match code {
        -2010 => ErrorKind::InsufficientFunds,
        -2011 | -2013 => ErrorKind::OrderNotFound,
        -1002 | -1022 | -2014 | -2015 => ErrorKind::AuthenticationError,
        -1121 => ErrorKind::BadSymbol,
        -1013 | -1111 => ErrorKind::InvalidOrder,
        -1003 | -1015 => ErrorKind::RateLimitExceeded,
        -1021 => ErrorKind::InvalidNonce,
        -1007 => ErrorKind::RequestTimeout,
        -1000 | -1001 | -1006 => ErrorKind::ExchangeNotAvailable,
        _ => return None,
    };
    Some(kind)
}

/// By HTTP status alone, as ccxt's `httpExceptions` (and Binance: 429 and 418 are rate limits,
/// 403 its firewall, 5xx its own failures, whose outcome is unknown).
fn kind_of_status(status: u16) -> ErrorKind {
    match status {
        429 | 418 => ErrorKind::RateLimitExceeded,
        401 => ErrorKind::AuthenticationError,
        408 | 504 => ErrorKind::RequestTimeout,
        403 | 500..=599 => ErrorKind::ExchangeNotAvailable,
        _ => ErrorKind::BadRequest,
    }
}

/// A successful response that is not what the endpoint returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Not JSON of the expected shape.
    #[error("malformed response: {0}")]
    Json(String),
    /// A field that is not of its form.
    #[error("malformed {field} in response: {value:?}")]
    Field {
        /// The field.
        field: &'static str,
        /// Its start.
        value: String,
    },
    /// An order of a market missing from the market list.
    #[error("unknown market {0:?}")]
    UnknownMarket(String),
    /// A currency that cannot be a balance key.
    #[error(transparent)]
    Balance(#[from] BalanceError),
}

fn json<'a, T: Deserialize<'a>>(body: &'a str) -> Result<T, ResponseError> {
    serde_json::from_str(body).map_err(|e| ResponseError::Json(e.to_string()))
}

fn dec(text: &str, field: &'static str) -> Result<Decimal, ResponseError> {
    Decimal::parse(text).ok_or_else(|| ResponseError::Field {
        field,
        value: text.chars().take(64).collect(),
    })
}

fn opt_dec(text: Option<&str>, field: &'static str) -> Result<Option<Decimal>, ResponseError> {
    text.map(|t| dec(t, field)).transpose()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAccount<'a> {
    update_time: Option<i64>,
    #[serde(borrow)]
    balances: Vec<WireAsset<'a>>,
}

#[derive(Deserialize)]
struct WireAsset<'a> {
    #[serde(borrow)]
    asset: Cow<'a, str>,
    #[serde(borrow)]
    free: Cow<'a, str>,
    #[serde(borrow)]
    locked: Cow<'a, str>,
}

/// `GET /api/v3/account` → ccxt Balance: `free`, `used` = `locked`, `total` = their sum
/// (ccxt's `parseBalance` for spot, then `safeBalance`), at the account's `updateTime`.
pub fn parse_balance(body: &str) -> Result<Balance, ResponseError> {
    let wire: WireAccount<'_> = json(body)?;
    let mut balance = Balance::new(wire.update_time);
    for asset in &wire.balances {
        let free = dec(&asset.free, "free")?;
        let used = dec(&asset.locked, "locked")?;
        let total = free
            .checked_add(used)
            .map_or(free.to_f64() + used.to_f64(), Decimal::to_f64);
        let account = Account::new(Some(free.to_f64()), Some(used.to_f64()), Some(total));
        balance.insert(currency_code(&asset.asset), account)?;
    }
    balance.info = Info::from_json(body).map_err(|e| ResponseError::Json(e.to_string()))?;
    Ok(balance)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireOrder<'a> {
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    #[serde(borrow)]
    order_id: Id<'a>,
    #[serde(borrow, default)]
    client_order_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    price: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    orig_qty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    executed_qty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cummulative_quote_qty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time_in_force: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    order_type: Cow<'a, str>,
    #[serde(borrow)]
    side: Cow<'a, str>,
    #[serde(borrow, default)]
    stop_price: Option<Cow<'a, str>>,
    time: Option<i64>,
    working_time: Option<i64>,
    transact_time: Option<i64>,
    update_time: Option<i64>,
    #[serde(borrow, default)]
    fills: Vec<WireFill<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireFill<'a> {
    #[serde(borrow)]
    price: Cow<'a, str>,
    #[serde(borrow)]
    qty: Cow<'a, str>,
    #[serde(borrow, default)]
    commission: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    commission_asset: Option<Cow<'a, str>>,
    trade_id: Option<i64>,
}

/// ccxt's `parseOrderStatus`; `PENDING_CANCEL` is ccxt's "canceling", which the unified
/// statuses lack, so unknown here.
fn order_status(status: &str) -> Option<OrderStatus> {
    Some(match status {
        "NEW" | "PARTIALLY_FILLED" | "ACCEPTED" | "TRIGGERING" | "PENDING_NEW" => OrderStatus::Open,
        "FILLED" | "TRIGGERED" | "FINISHED" => OrderStatus::Closed,
        "CANCELED" | "CANCELLED" => OrderStatus::Canceled,
        "REJECTED" => OrderStatus::Rejected,
        "EXPIRED" | "EXPIRED_IN_MATCH" => OrderStatus::Expired,
        _ => return None,
    })
}

/// `POST`/`DELETE /api/v3/order` (and one entry of `openOrders`) → ccxt Order.
pub fn parse_order(body: &str, markets: &Markets) -> Result<Order, ResponseError> {
    let raw: &RawValue = json(body)?;
    order_of(raw, markets)
}

/// `GET /api/v3/openOrders` → ccxt Orders.
pub fn parse_orders(body: &str, markets: &Markets) -> Result<Vec<Order>, ResponseError> {
    let raws: Vec<&RawValue> = json(body)?;
    raws.into_iter().map(|raw| order_of(raw, markets)).collect()
}

/// ccxt's `binance.parseOrder` then `safeOrder`, for spot orders.
fn order_of(raw: &RawValue, markets: &Markets) -> Result<Order, ResponseError> {
    let wire: WireOrder<'_> = json(raw.get())?;
    let symbol = markets
        .symbol_of(&wire.symbol)
        .ok_or_else(|| ResponseError::UnknownMarket(wire.symbol.chars().take(32).collect()))?
        .to_owned();
    let status = wire.status.as_deref().and_then(order_status);
    let side = match wire.side.as_ref() {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        other => {
            return Err(ResponseError::Field {
                field: "side",
                value: other.chars().take(64).collect(),
            })
        }
    };
    // ccxt's `parseOrderTypeByMarket` for spot: the stop and maker variants by how they fill.
    let order_type = match wire.order_type.as_ref() {
        "LIMIT" | "LIMIT_MAKER" | "STOP_LOSS_LIMIT" | "TAKE_PROFIT_LIMIT" => OrderType::Limit,
        "MARKET" | "STOP_LOSS" | "TAKE_PROFIT" => OrderType::Market,
        other => {
            return Err(ResponseError::Field {
                field: "type",
                value: other.chars().take(64).collect(),
            })
        }
    };
    let filled = opt_dec(wire.executed_qty.as_deref(), "executedQty")?.unwrap_or(Decimal::ZERO);
    let mut amount = omit_zero(opt_dec(wire.orig_qty.as_deref(), "origQty")?);
    let cost = opt_dec(wire.cummulative_quote_qty.as_deref(), "cummulativeQuoteQty")?;
    let mut price = omit_zero(opt_dec(wire.price.as_deref(), "price")?);
    let trigger = omit_zero(opt_dec(wire.stop_price.as_deref(), "stopPrice")?);
    if amount.is_none() && status == Some(OrderStatus::Closed) {
        amount = Some(filled);
    }
    let remaining = amount.and_then(|a| a.checked_sub(filled));
    let average = cost
        .filter(|_| filled.is_positive())
        .and_then(|c| c.checked_div(filled, DIV_PRECISION));
    if price.is_none() && order_type == OrderType::Market {
        price = average;
    }
    let timestamp = wire
        .time
        .or(wire.working_time)
        .or(wire.transact_time)
        .or(wire.update_time);
    let last_trade_timestamp = match (status, wire.update_time.or(wire.transact_time)) {
        (Some(OrderStatus::Open), Some(at)) if filled.is_positive() => Some(at),
        (Some(OrderStatus::Closed), Some(at)) => Some(at),
        _ => None,
    };
    let mut time_in_force = match wire.time_in_force.as_deref() {
        Some("GTC") => Some(TimeInForce::Gtc),
        Some("IOC") => Some(TimeInForce::Ioc),
        Some("FOK") => Some(TimeInForce::Fok),
        Some("GTX") => Some(TimeInForce::Po),
        _ => None,
    };
    let post_only = wire.order_type == "LIMIT_MAKER" || time_in_force == Some(TimeInForce::Po);
    if time_in_force.is_none() {
        if post_only {
            time_in_force = Some(TimeInForce::Po);
        } else if order_type == OrderType::Market && trigger.is_none() {
            time_in_force = Some(TimeInForce::Ioc);
        }
    }
    let trades = wire
        .fills
        .iter()
        .map(|fill| fill_trade(fill, &symbol, side))
        .collect::<Result<Vec<_>, _>>()?;
    let fee = order_fee(&wire.fills)?;
    let mut order = Order::new(
        wire.order_id.into_string(),
        symbol,
        order_type,
        side,
        amount.map_or(0.0, Decimal::to_f64),
        price.map(Decimal::to_f64),
        Timestamp(timestamp),
    );
    order.client_order_id = wire.client_order_id.map(Cow::into_owned);
    order.last_trade_timestamp = last_trade_timestamp;
    order.status = status;
    order.time_in_force = time_in_force;
    order.average = average.map(Decimal::to_f64);
    order.filled = Some(filled.to_f64());
    order.remaining = remaining.map(Decimal::to_f64);
    order.cost = cost.map(Decimal::to_f64);
    order.trades = trades;
    order.fee = fee;
    order.trigger_price = trigger.map(Decimal::to_f64);
    order.reduce_only = None;
    order.post_only = Some(post_only);
    order.info = Info::from(raw);
    Ok(order)
}

/// One fill of a `FULL` order response, as ccxt's `parseTrade` makes it. ccxt leaves the
/// fill's side null; the unified Trade needs one, and a fill's side is its order's.
fn fill_trade(fill: &WireFill<'_>, symbol: &str, side: Side) -> Result<Trade, ResponseError> {
    let price = dec(&fill.price, "fills.price")?;
    let amount = dec(&fill.qty, "fills.qty")?;
    let mut trade = Trade::new(symbol, None, side, price.to_f64(), amount.to_f64());
    trade.id = fill.trade_id.map(|id| id.to_string());
    trade.cost = Some(
        price
            .checked_mul(amount)
            .map_or(trade.price * trade.amount, Decimal::to_f64),
    );
    let fee = match &fill.commission {
        Some(commission) => Fee {
            cost: Some(dec(commission, "fills.commission")?.to_f64()),
            currency: fill
                .commission_asset
                .as_deref()
                .map(|asset| currency_code(asset).to_owned()),
            rate: None,
        },
        None => Fee::default(),
    };
    trade.fees = if fill.commission.is_some() {
        vec![fee.clone()]
    } else {
        Vec::new()
    };
    trade.fee = Some(fee);
    // ccxt's `info` of a fill is the fill object; its text is not kept apart here.
    Ok(trade)
}

/// ccxt's `safeOrder` fee: the fills' commissions summed by currency (exactly, from the
/// text); the order's fee when there is exactly one currency, none otherwise.
fn order_fee(fills: &[WireFill<'_>]) -> Result<Option<Fee>, ResponseError> {
    let mut sums: Vec<(Option<&str>, Option<Decimal>)> = Vec::new();
    for fill in fills {
        let Some(commission) = &fill.commission else {
            continue;
        };
        let cost = dec(commission, "fills.commission")?;
        let currency = fill.commission_asset.as_deref().map(currency_code);
        match sums.iter_mut().find(|(cur, _)| *cur == currency) {
            Some((_, sum)) => *sum = sum.and_then(|s| s.checked_add(cost)),
            None => sums.push((currency, Some(cost))),
        }
    }
    Ok(match sums.as_slice() {
        [(currency, cost)] => Some(Fee {
            cost: cost.map(Decimal::to_f64),
            currency: currency.map(str::to_owned),
            rate: None,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binance's documented example ("SIGNED endpoint examples for POST /api/v3/order").
    const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    const QUERY: &str = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
    const SIGNATURE: &str = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";

    #[test]
    fn binance_documented_signature() {
        assert_eq!(signature(SECRET, QUERY), SIGNATURE);
        let credentials = Credentials::new(API_KEY, SECRET);
        let request = signed_request(
            &credentials,
            Method::Post,
            "/api/v3/order",
            &[
                ("symbol", "LTCBTC"),
                ("side", "BUY"),
                ("type", "LIMIT"),
                ("timeInForce", "GTC"),
                ("quantity", "1"),
                ("price", "0.1"),
            ],
            1499827319559,
            Some(5000),
        );
        assert_eq!(request.params, format!("{QUERY}&signature={SIGNATURE}"));
        assert_eq!(request.body(), Some(request.params.as_str()));
        assert_eq!(request.target(), "/api/v3/order");
        assert_eq!(request.headers()[0], (API_KEY_HEADER, API_KEY));
        assert!(verify(SECRET, &request.params));
    }

    #[test]
    fn verification_refuses_tampering() {
        let signed = format!("{QUERY}&signature={SIGNATURE}");
        assert!(verify(SECRET, &signed));
        assert!(verify(
            SECRET,
            &format!("{QUERY}&signature={}", SIGNATURE.to_uppercase())
        ));
        assert!(!verify(SECRET, &signed.replace("quantity=1", "quantity=2")));
        assert!(!verify("another secret", &signed));
        assert!(!verify(SECRET, QUERY));
        assert!(!verify(
            SECRET,
            &format!("{QUERY}&signature={}", &SIGNATURE[..63])
        ));
        assert!(!verify(
            SECRET,
            &format!("{QUERY}&signature={}g", &SIGNATURE[..63])
        ));
        assert!(!verify(SECRET, ""));
        assert!(verify(
            SECRET,
            &format!("signature={}", signature(SECRET, ""))
        ));
    }

    #[test]
    fn requests_of_each_endpoint() {
        let c = Credentials::new(API_KEY, SECRET);
        let account = account_request(&c, 1, None);
        assert_eq!(account.method, Method::Get);
        assert!(account
            .target()
            .starts_with("/api/v3/account?timestamp=1&signature="));
        assert_eq!(account.body(), None);
        let order = NewOrder {
            symbol: "NKNUSDT",
            side: Side::Sell,
            order_type: OrderType::Limit,
            time_in_force: Some(TimeInForce::Po),
            quantity: "100",
            price: Some("0.3530"),
            client_order_id: Some("my id/1"),
        };
        let post = new_order_request(&c, &order, 7, Some(DEFAULT_RECV_WINDOW));
        assert!(post.params.starts_with(
            "symbol=NKNUSDT&side=SELL&type=LIMIT_MAKER&quantity=100&price=0.3530&newClientOrderId=my%20id%2F1&newOrderRespType=FULL&recvWindow=5000&timestamp=7&signature="
        ));
        assert!(verify(SECRET, &post.params));
        let market = NewOrder {
            order_type: OrderType::Market,
            time_in_force: None,
            price: None,
            client_order_id: None,
            ..order
        };
        assert!(new_order_request(&c, &market, 7, None).params.starts_with(
            "symbol=NKNUSDT&side=SELL&type=MARKET&quantity=100&newOrderRespType=FULL&timestamp=7&"
        ));
        let cancel = cancel_order_request(&c, "NKNUSDT", OrderRef::Id(42), 9, None);
        assert_eq!(cancel.method, Method::Delete);
        assert!(cancel
            .target()
            .starts_with("/api/v3/order?symbol=NKNUSDT&orderId=42&timestamp=9&signature="));
        let by_client = cancel_order_request(&c, "NKNUSDT", OrderRef::ClientId("a&b"), 9, None);
        assert!(by_client.params.contains("origClientOrderId=a%26b&"));
        let open = open_orders_request(&c, None, 3, None);
        assert!(open
            .target()
            .starts_with("/api/v3/openOrders?timestamp=3&signature="));
        assert!(open_orders_request(&c, Some("NKNUSDT"), 3, None)
            .params
            .starts_with("symbol=NKNUSDT&timestamp=3&"));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = Credentials::new(API_KEY, SECRET);
        let shown = format!("{c:?} {:?}", account_request(&c, 1, None));
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains(API_KEY), "{shown}");
        assert!(shown.contains("vmPU…"), "{shown}");
    }

    #[test]
    fn error_bodies_become_ccxt_kinds() {
        let kind = |status, body: &str| parse_error(status, body).kind;
        let insufficient =
            r#"{"code":-2010,"msg":"Account has insufficient balance for requested action."}"#;
        assert_eq!(kind(400, insufficient), ErrorKind::InsufficientFunds);
        assert_eq!(
            kind(400, r#"{"code":-2010,"msg":"Other rejection."}"#),
            ErrorKind::InsufficientFunds
        );
        assert_eq!(
            kind(
                400,
                r#"{"code":-2010,"msg":"Order would immediately match and take."}"#
            ),
            ErrorKind::InvalidOrder
        );
        assert_eq!(
            kind(400, r#"{"code":-2011,"msg":"Unknown order sent."}"#),
            ErrorKind::OrderNotFound
        );
        assert_eq!(
            kind(400, r#"{"code":-2013,"msg":"Order does not exist."}"#),
            ErrorKind::OrderNotFound
        );
        for code in [-1022, -2014, -2015] {
            let body = format!(r#"{{"code":{code},"msg":"x"}}"#);
            assert_eq!(kind(401, &body), ErrorKind::AuthenticationError, "{code}");
        }
        assert_eq!(
            kind(400, r#"{"code":-1121,"msg":"Invalid symbol."}"#),
            ErrorKind::BadSymbol
        );
        assert_eq!(
            kind(400, r#"{"code":-1013,"msg":"Filter failure: LOT_SIZE"}"#),
            ErrorKind::InvalidOrder
        );
        assert_eq!(
            kind(
                400,
                r#"{"code":-1111,"msg":"Precision is over the maximum defined for this asset."}"#
            ),
            ErrorKind::InvalidOrder
        );
        assert_eq!(
            kind(
                429,
                r#"{"code":-1003,"msg":"Too much request weight used"}"#
            ),
            ErrorKind::RateLimitExceeded
        );
        assert_eq!(
            kind(
                400,
                r#"{"code":-1021,"msg":"Timestamp outside recvWindow"}"#
            ),
            ErrorKind::InvalidNonce
        );
        assert_eq!(
            kind(400, r#"{"code":-1102,"msg":"Mandatory parameter"}"#),
            ErrorKind::BadRequest
        );
        assert_eq!(
            kind(503, r#"{"code":-9999,"msg":"?"}"#),
            ErrorKind::ExchangeNotAvailable
        );
        assert_eq!(
            kind(502, "<html>Bad Gateway</html>"),
            ErrorKind::ExchangeNotAvailable
        );
        assert_eq!(kind(429, ""), ErrorKind::RateLimitExceeded);
        assert_eq!(kind(400, "garbage"), ErrorKind::BadRequest);
        let error = parse_error(400, insufficient);
        assert_eq!(error.code, Some(-2010));
        assert_eq!(error.status, 400);
        assert_eq!(
            error.message,
            "Account has insufficient balance for requested action."
        );
        assert_eq!(parse_error(500, &"x".repeat(1000)).message.len(), 200);
    }

    #[test]
    fn malformed_responses_are_errors() {
        let markets = Markets::default();
        assert!(parse_balance("{").is_err());
        assert!(
            parse_balance(r#"{"balances":[{"asset":"BTC","free":"x","locked":"0"}]}"#).is_err()
        );
        assert!(matches!(
            parse_balance(r#"{"balances":[{"asset":"free","free":"1","locked":"0"}]}"#),
            Err(ResponseError::Balance(_))
        ));
        assert!(matches!(
            parse_order(
                r#"{"symbol":"NOPE","orderId":1,"type":"LIMIT","side":"BUY"}"#,
                &markets
            ),
            Err(ResponseError::UnknownMarket(_))
        ));
        assert!(parse_orders("{}", &markets).is_err());
    }
}
