//! Coinbase Exchange's market list (`GET /products`) as ccxt Markets, and the product id →
//! symbol lookup every feed message needs.
//!
//! Follows ccxt's `coinbaseexchange.fetchMarkets`: base and quote ids come from splitting the
//! product id on `-` (ccxt does so because `base_currency` is wrong for products like
//! `BTCAUCTION-USD`), codes go through ccxt's common-currency table, precision is tick sizes,
//! fees are ccxt's flat highest tier. Two deliberate differences, both for fields Coinbase sent
//! in 2021 and no longer sends (so current ccxt leaves them `null`): `limits.amount` comes from
//! `base_min_size`/`base_max_size` and `limits.cost.max` from `max_market_funds`, when present.
//! `active` also requires `trading_disabled` to be false (ccxt looks at `status` only).

use std::collections::HashMap;

use rpc_crypto_proto::ccxt::{common_currency, Info, Market, MinMax, Symbol};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::FeedError;

/// ccxt's `fees.trading` for coinbaseexchange: the highest tier, rates of the cost.
const TAKER_FEE: f64 = 0.006;
const MAKER_FEE: f64 = 0.004;

/// A unified currency code: ccxt's common table, then coinbaseexchange's own
/// `commonCurrencies` (`CGLD` is Celo, listed by Coinbase under its old ticker).
fn currency_code(id: &str) -> &str {
    match id {
        "CGLD" => "CELO",
        other => common_currency(other),
    }
}

/// One product of `/products`, the fields the market needs (numbers are decimal text).
#[derive(Deserialize)]
struct Product {
    id: String,
    quote_increment: Option<String>,
    base_increment: Option<String>,
    base_min_size: Option<String>,
    base_max_size: Option<String>,
    min_market_funds: Option<String>,
    max_market_funds: Option<String>,
    #[serde(default)]
    margin_enabled: bool,
    #[serde(default)]
    trading_disabled: bool,
    status: Option<String>,
}

/// A decimal text field as a number; a field that is present but not a number is an error
/// (ccxt would quietly make it `null`, which would hide a broken market list).
fn number(field: &'static str, text: &Option<String>) -> Result<Option<f64>, FeedError> {
    match text.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(Some(value)),
            _ => Err(FeedError::bad_field(field, text)),
        },
    }
}

/// Coinbase's markets, in `/products` order, with an index by product id.
#[derive(Debug, Clone, Default)]
pub struct Markets {
    markets: Vec<Market>,
    by_id: HashMap<String, usize>,
    skipped: Vec<String>,
}

impl Markets {
    /// Parses the body of `GET /products`.
    ///
    /// A product whose id is not `BASE-QUOTE` is skipped and listed in [`Self::skipped`]
    /// (ccxt would fail on it outright; one odd product should not cost every market). A body
    /// that is not a JSON array of products, or a product with a malformed number, is an error.
    pub fn from_products(body: &str) -> Result<Self, FeedError> {
        let raw: Vec<&RawValue> = serde_json::from_str(body)?;
        let mut this = Self::default();
        for raw in raw {
            let product: Product = serde_json::from_str(raw.get())?;
            let Some((base_id, quote_id)) = product
                .id
                .split_once('-')
                .filter(|(base, quote)| !quote.contains('-') && !base.is_empty())
            else {
                this.skipped.push(product.id);
                continue;
            };
            let (base, quote) = (currency_code(base_id), currency_code(quote_id));
            let Ok(symbol) = Symbol::spot(base, quote) else {
                this.skipped.push(product.id);
                continue;
            };
            let mut market = Market::new(product.id.as_str(), &symbol, base_id, quote_id);
            market.active =
                Some(product.status.as_deref() == Some("online") && !product.trading_disabled);
            market.margin = product.margin_enabled;
            market.taker = Some(TAKER_FEE);
            market.maker = Some(MAKER_FEE);
            market.percentage = Some(true);
            market.tier_based = Some(true);
            market.precision.price = number("quote_increment", &product.quote_increment)?;
            market.precision.amount = number("base_increment", &product.base_increment)?;
            market.limits.amount = MinMax {
                min: number("base_min_size", &product.base_min_size)?,
                max: number("base_max_size", &product.base_max_size)?,
            };
            market.limits.cost = MinMax {
                min: number("min_market_funds", &product.min_market_funds)?,
                max: number("max_market_funds", &product.max_market_funds)?,
            };
            market.info = Info::from(raw);
            // A repeated id keeps its first market, so the index and the list agree.
            if this.by_id.contains_key(&product.id) {
                this.skipped.push(product.id);
                continue;
            }
            this.by_id.insert(product.id, this.markets.len());
            this.markets.push(market);
        }
        Ok(this)
    }

    /// Every market, in the exchange's order.
    pub fn all(&self) -> &[Market] {
        &self.markets
    }

    /// How many markets there are.
    pub fn len(&self) -> usize {
        self.markets.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.markets.is_empty()
    }

    /// The market of a product id (`BTC-USD`).
    pub fn get(&self, product_id: &str) -> Option<&Market> {
        self.by_id.get(product_id).map(|&i| &self.markets[i])
    }

    /// The ccxt symbol of a product id (`BTC-USD` → `BTC/USD`).
    pub fn symbol(&self, product_id: &str) -> Option<&str> {
        self.get(product_id).map(|market| market.symbol.as_str())
    }

    /// The market of a product id, or [`FeedError::UnknownProduct`].
    pub fn require(&self, product_id: &str) -> Result<&Market, FeedError> {
        self.get(product_id)
            .ok_or_else(|| FeedError::unknown_product(product_id))
    }

    /// The product id of a ccxt symbol (`BTC/USD` → `BTC-USD`), for subscribing.
    pub fn id_of(&self, symbol: &str) -> Option<&str> {
        self.markets
            .iter()
            .find(|market| market.symbol == symbol)
            .map(|market| market.id.as_str())
    }

    /// Products left out because their id is not `BASE-QUOTE`, or repeats an earlier one.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
}
