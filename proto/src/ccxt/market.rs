//! ccxt's Market: one tradable instrument of an exchange, as `loadMarkets` lists it.
//!
//! Adapters build the market list from the exchange's own (Binance `exchangeInfo`, Coinbase
//! `products`, Kraken `AssetPairs`) and use it to map exchange ids (`BTCUSDT`) to ccxt symbols
//! (`BTC/USDT`) and back.

use serde::{Deserialize, Serialize};

use super::{Expiry, Info, Symbol, SymbolKind};

string_enum! {
    /// ccxt's market `type`.
    pub enum MarketType {
        /// Spot: the base currency itself changes hands.
        Spot = "spot",
        /// Perpetual contract (no expiry).
        Swap = "swap",
        /// Dated futures contract.
        Future = "future",
        /// Options contract.
        Option = "option",
    }
}

string_enum! {
    /// ccxt's `optionType`.
    pub enum OptionType {
        /// The right to buy.
        Call = "call",
        /// The right to sell.
        Put = "put",
    }
}

string_enum! {
    /// ccxt's `feeSide`: which currency the trading fee is charged in.
    pub enum FeeSide {
        /// The currency the trader receives.
        Get = "get",
        /// The currency the trader gives.
        Give = "give",
        /// Always the base currency.
        Base = "base",
        /// Always the quote currency.
        Quote = "quote",
        /// Some other currency (e.g. the exchange's token).
        Other = "other",
    }
}

/// ccxt's `{min, max}`; `null` where the exchange sets no bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MinMax {
    /// Lower bound.
    pub min: Option<f64>,
    /// Upper bound.
    pub max: Option<f64>,
}

impl MinMax {
    /// Both bounds unknown.
    pub const NONE: Self = Self {
        min: None,
        max: None,
    };
}

/// ccxt's `precision`, as tick sizes (ccxt's `TICK_SIZE` precision mode, which ccxt uses for
/// the exchanges we adapt): `price: 0.01` means prices are multiples of 0.01.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Precision {
    /// Price step.
    pub price: Option<f64>,
    /// Amount (base quantity) step.
    pub amount: Option<f64>,
    /// Cost (quote quantity) step.
    pub cost: Option<f64>,
}

/// ccxt's `limits`: bounds an order must respect. Every key is present, bounds may be `null`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Order amount in base currency.
    pub amount: MinMax,
    /// Order price.
    pub price: MinMax,
    /// Order cost (price × amount) in quote currency.
    pub cost: MinMax,
    /// Leverage.
    pub leverage: MinMax,
}

/// ccxt's Market structure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Market {
    /// The exchange's id of the market (`BTCUSDT`, `XXBTZUSD`, `BTC-USD`).
    pub id: String,
    /// The ccxt symbol (`BTC/USDT`, `BTC/USDT:USDT`, `BTC/USD:BTC-211231`).
    pub symbol: String,
    /// Unified base currency code.
    pub base: String,
    /// Unified quote currency code.
    pub quote: String,
    /// The exchange's id of the base currency.
    pub base_id: String,
    /// The exchange's id of the quote currency.
    pub quote_id: String,
    /// Whether the market trades now; `null` when the exchange does not say.
    pub active: Option<bool>,
    /// Spot, swap, future or option.
    #[serde(rename = "type")]
    pub market_type: MarketType,
    /// `type` is spot.
    pub spot: bool,
    /// Margin trading is offered on this spot market.
    pub margin: bool,
    /// `type` is swap.
    pub swap: bool,
    /// `type` is future.
    pub future: bool,
    /// `type` is option.
    pub option: bool,
    /// A derivative (swap, future or option).
    pub contract: bool,
    /// Unified settlement currency of a contract; `null` on spot.
    pub settle: Option<String>,
    /// The exchange's id of the settlement currency.
    pub settle_id: Option<String>,
    /// Units of the underlying per contract.
    pub contract_size: Option<f64>,
    /// Contract settled in the quote currency.
    pub linear: Option<bool>,
    /// Contract settled in the base currency.
    pub inverse: Option<bool>,
    /// `expiry` and `expiryDatetime` of a future or option.
    #[serde(flatten)]
    pub expiry: Expiry,
    /// Strike price of an option.
    pub strike: Option<f64>,
    /// Call or put.
    pub option_type: Option<OptionType>,
    /// Taker fee rate (0.001 = 0.1%).
    pub taker: Option<f64>,
    /// Maker fee rate.
    pub maker: Option<f64>,
    /// Fees are rates of the cost (true) or fixed amounts (false).
    pub percentage: Option<bool>,
    /// Fees depend on the trader's volume tier.
    pub tier_based: Option<bool>,
    /// Which currency fees are charged in.
    pub fee_side: Option<FeeSide>,
    /// Tick sizes.
    pub precision: Precision,
    /// Order bounds.
    pub limits: Limits,
    /// The exchange's market description.
    pub info: Info,
}

impl Market {
    /// A market for `symbol` whose exchange ids are `id`, `base_id` and `quote_id`.
    ///
    /// The type and its flags, `base`, `quote`, `settle`, `linear`/`inverse` (ccxt's rule: linear
    /// when settled in the quote currency, inverse when settled in the base currency), `strike`
    /// and `optionType` follow from the symbol. Everything else starts unknown: the adapter sets
    /// `settleId`, `contractSize`, `expiry` (its time of day is the exchange's), fees,
    /// precision, limits and `info` from the exchange's description.
    pub fn new(
        id: impl Into<String>,
        symbol: &Symbol,
        base_id: impl Into<String>,
        quote_id: impl Into<String>,
    ) -> Self {
        let market_type = symbol.market_type();
        let settle = symbol.settle().map(str::to_owned);
        let (linear, inverse) = match symbol.settle() {
            Some(settle) => (
                Some(settle == symbol.quote()),
                Some(settle == symbol.base()),
            ),
            None => (None, None),
        };
        let (strike, option_type) = match symbol.kind() {
            SymbolKind::Option {
                strike,
                option_type,
                ..
            } => (strike.parse::<f64>().ok(), Some(*option_type)),
            _ => (None, None),
        };
        Self {
            id: id.into(),
            symbol: symbol.to_string(),
            base: symbol.base().to_owned(),
            quote: symbol.quote().to_owned(),
            base_id: base_id.into(),
            quote_id: quote_id.into(),
            active: None,
            market_type,
            spot: market_type == MarketType::Spot,
            margin: false,
            swap: market_type == MarketType::Swap,
            future: market_type == MarketType::Future,
            option: market_type == MarketType::Option,
            contract: market_type != MarketType::Spot,
            settle,
            settle_id: None,
            contract_size: None,
            linear,
            inverse,
            expiry: Expiry::NONE,
            strike,
            option_type,
            taker: None,
            maker: None,
            percentage: None,
            tier_based: None,
            fee_side: None,
            precision: Precision::default(),
            limits: Limits::default(),
            info: Info::NONE,
        }
    }
}
