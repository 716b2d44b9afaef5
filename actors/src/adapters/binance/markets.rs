//! Binance's market list (`GET /api/v3/exchangeInfo`) as ccxt [`Market`]s, and the lookups
//! between Binance's ids (`NKNUSDT`, lowercase `nknusdt` in stream names) and ccxt symbols
//! (`NKN/USDT`).
//!
//! Every field follows ccxt's `binance.parseMarket` for spot markets (checked against ccxt
//! 4.5.90 in the tests): precision from the `PRICE_FILTER` tick size and `LOT_SIZE` step size,
//! limits from `LOT_SIZE`, `PRICE_FILTER` and `MIN_NOTIONAL`/`NOTIONAL`, `active` when the
//! status is `TRADING` (and the market is not in the `TRD_GRP_003` group), ccxt's Binance fee
//! defaults, and Binance's own currency renames ([`currency_code`]).

use std::collections::HashMap;

use rpc_crypto_proto::ccxt::{common_currency, FeeSide, Info, Market, MinMax, Precision, Symbol};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::adapters::decimal::DecimalText;

/// ccxt's default Binance spot fee rate (0.1%, taker and maker; `binance.describe().fees`).
const DEFAULT_FEE: f64 = 0.001;

/// ccxt's code for a Binance asset: Binance's `commonCurrencies` over ccxt's common ones.
/// On Binance `BCC` was BitConnect, not Bitcoin Cash, so it stays `BCC`; `YOYO` is YOYOW.
pub fn currency_code(asset: &str) -> &str {
    match asset {
        "BCC" => "BCC",
        "YOYO" => "YOYOW",
        // ccxt maps XDG to DOGE for Kraken only; Binance's dictionary has no XDG.
        "XDG" => "XDG",
        other => common_currency(other),
    }
}

/// The market list could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum MarketsError {
    /// Not JSON, or no `symbols` array.
    #[error("exchangeInfo: {0}")]
    Json(#[from] serde_json::Error),
}

/// One `symbols` entry that could not be made a market (kept, so nothing is dropped silently).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedMarket {
    /// Position in `symbols`.
    pub index: usize,
    /// Why.
    pub reason: String,
}

#[derive(Deserialize)]
struct ExchangeInfo<'a> {
    #[serde(borrow)]
    symbols: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SymbolEntry {
    symbol: String,
    #[serde(default)]
    status: Option<String>,
    base_asset: String,
    quote_asset: String,
    #[serde(default)]
    is_margin_trading_allowed: bool,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    filters: Vec<Filter>,
}

/// The filter fields ccxt reads; each filter type has some of them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    filter_type: String,
    min_price: Option<String>,
    max_price: Option<String>,
    tick_size: Option<String>,
    min_qty: Option<String>,
    max_qty: Option<String>,
    step_size: Option<String>,
    min_notional: Option<String>,
    notional: Option<String>,
    max_notional: Option<String>,
}

/// ccxt's `safeNumber` of a filter field.
fn number(text: &Option<String>) -> Option<f64> {
    text.as_deref()
        .and_then(DecimalText::parse)
        .map(|d| d.to_f64())
}

/// Binance's markets, indexed both ways.
#[derive(Debug, Clone, Default)]
pub struct Markets {
    markets: Vec<Market>,
    /// Lowercase ids, as stream names spell them, by market index.
    lower_ids: Vec<String>,
    /// Decimals of the tick size (ccxt's `precisionFromString`), for the ticker's average.
    price_decimals: Vec<Option<u32>>,
    by_id: HashMap<String, usize>,
    by_lower_id: HashMap<String, usize>,
    by_symbol: HashMap<String, usize>,
    skipped: Vec<SkippedMarket>,
}

impl Markets {
    /// Reads the body of `GET /api/v3/exchangeInfo`. Entries that cannot be made markets are
    /// listed in [`Self::skipped`]; only a body that is no market list at all is an error.
    pub fn from_exchange_info(body: &str) -> Result<Self, MarketsError> {
        let info: ExchangeInfo<'_> = serde_json::from_str(body)?;
        let mut markets = Self::default();
        for (index, raw) in info.symbols.into_iter().enumerate() {
            match parse_market(raw) {
                Ok((market, decimals)) => markets.insert(market, decimals),
                Err(reason) => markets.skipped.push(SkippedMarket { index, reason }),
            }
        }
        Ok(markets)
    }

    fn insert(&mut self, market: Market, price_decimals: Option<u32>) {
        let index = self.markets.len();
        let lower = market.id.to_ascii_lowercase();
        self.by_id.insert(market.id.clone(), index);
        self.by_lower_id.insert(lower.clone(), index);
        self.by_symbol.insert(market.symbol.clone(), index);
        self.lower_ids.push(lower);
        self.price_decimals.push(price_decimals);
        self.markets.push(market);
    }

    /// Number of markets.
    pub fn len(&self) -> usize {
        self.markets.len()
    }

    /// No market at all.
    pub fn is_empty(&self) -> bool {
        self.markets.is_empty()
    }

    /// Every market, in the exchange's order.
    pub fn iter(&self) -> impl Iterator<Item = &Market> {
        self.markets.iter()
    }

    /// Entries of the list that are no market.
    pub fn skipped(&self) -> &[SkippedMarket] {
        &self.skipped
    }

    fn index_of_id(&self, id: &str) -> Option<usize> {
        self.by_id
            .get(id)
            .or_else(|| self.by_lower_id.get(id))
            .copied()
    }

    /// The market of a Binance id, `NKNUSDT` or the stream names' `nknusdt`.
    pub fn by_id(&self, id: &str) -> Option<&Market> {
        self.index_of_id(id).map(|i| &self.markets[i])
    }

    /// The market of a ccxt symbol (`NKN/USDT`).
    pub fn by_symbol(&self, symbol: &str) -> Option<&Market> {
        self.by_symbol.get(symbol).map(|i| &self.markets[*i])
    }

    /// The ccxt symbol of a Binance id (either case): `NKNUSDT` → `NKN/USDT`.
    pub fn symbol_of(&self, id: &str) -> Option<&str> {
        self.by_id(id).map(|m| m.symbol.as_str())
    }

    /// Binance's id of a ccxt symbol: `NKN/USDT` → `NKNUSDT`.
    pub fn id_of(&self, symbol: &str) -> Option<&str> {
        self.by_symbol(symbol).map(|m| m.id.as_str())
    }

    /// The lowercase id stream names use: `NKN/USDT` → `nknusdt`.
    pub fn stream_id_of(&self, symbol: &str) -> Option<&str> {
        self.by_symbol
            .get(symbol)
            .map(|i| self.lower_ids[*i].as_str())
    }

    /// Decimals of a market's tick size, by Binance id.
    pub(crate) fn price_decimals(&self, id: &str) -> Option<u32> {
        self.index_of_id(id).and_then(|i| self.price_decimals[i])
    }
}

/// One `symbols` entry as ccxt's `parseMarket` makes it (spot: Binance's `/api/v3` lists spot
/// markets only), with the tick size's decimals.
fn parse_market(raw: &RawValue) -> Result<(Market, Option<u32>), String> {
    let entry: SymbolEntry = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
    let base = currency_code(&entry.base_asset);
    let quote = currency_code(&entry.quote_asset);
    let symbol = Symbol::spot(base, quote).map_err(|e| format!("{}: {e}", entry.symbol))?;
    let mut market = Market::new(
        entry.symbol.as_str(),
        &symbol,
        entry.base_asset.as_str(),
        entry.quote_asset.as_str(),
    );
    let trd_grp_003 = entry.permissions.iter().any(|p| p == "TRD_GRP_003");
    market.active = Some(entry.status.as_deref() == Some("TRADING") && !trd_grp_003);
    market.margin = entry.is_margin_trading_allowed;
    market.taker = Some(DEFAULT_FEE);
    market.maker = Some(DEFAULT_FEE);
    market.percentage = Some(true);
    market.tier_based = Some(false);
    market.fee_side = Some(FeeSide::Get);
    market.precision = Precision::default();
    let mut price_decimals = None;
    // ccxt indexes the filters by type, so the last of a type wins; so here.
    let find = |kind: &str| entry.filters.iter().rev().find(|f| f.filter_type == kind);
    if let Some(filter) = find("PRICE_FILTER") {
        market.limits.price = MinMax {
            min: number(&filter.min_price),
            max: number(&filter.max_price),
        };
        market.precision.price = number(&filter.tick_size);
        price_decimals = filter
            .tick_size
            .as_deref()
            .and_then(DecimalText::parse)
            .map(|tick| tick.decimals());
    }
    if let Some(filter) = find("LOT_SIZE") {
        market.precision.amount = number(&filter.step_size);
        market.limits.amount = MinMax {
            min: number(&filter.min_qty),
            max: number(&filter.max_qty),
        };
    }
    if let Some(filter) = find("MIN_NOTIONAL").or_else(|| find("NOTIONAL")) {
        market.limits.cost = MinMax {
            min: number(&filter.min_notional).or_else(|| number(&filter.notional)),
            max: number(&filter.max_notional),
        };
    }
    market.info = Info::from(raw);
    Ok((market, price_decimals))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry() {
        let body = r#"{"symbols":[{"symbol":"YOYOBTC","status":"BREAK","baseAsset":"YOYO",
            "quoteAsset":"BTC","isMarginTradingAllowed":false,"permissions":["SPOT"],
            "filters":[{"filterType":"PRICE_FILTER","minPrice":"0.00000001",
            "maxPrice":"1000.00000000","tickSize":"0.00000001"},
            {"filterType":"NOTIONAL","minNotional":"0.00010000","maxNotional":"9000.00000000"}]},
            {"symbol":"BROKEN"}]}"#;
        let markets = Markets::from_exchange_info(body).unwrap();
        assert_eq!(markets.len(), 1);
        assert_eq!(markets.skipped().len(), 1);
        assert_eq!(markets.skipped()[0].index, 1);
        let m = markets.by_id("yoyobtc").unwrap();
        assert_eq!(m.symbol, "YOYOW/BTC");
        assert_eq!((m.base_id.as_str(), m.base.as_str()), ("YOYO", "YOYOW"));
        assert_eq!(m.active, Some(false));
        assert_eq!(m.precision.price, Some(0.00000001));
        assert_eq!(m.precision.amount, None);
        assert_eq!(m.limits.cost.min, Some(0.0001));
        assert_eq!(m.limits.cost.max, Some(9000.0));
        assert_eq!(markets.price_decimals("YOYOBTC"), Some(8));
        assert_eq!(markets.id_of("YOYOW/BTC"), Some("YOYOBTC"));
        assert_eq!(markets.stream_id_of("YOYOW/BTC"), Some("yoyobtc"));
        assert!(markets.by_id("NOPE").is_none());
    }

    #[test]
    fn not_a_market_list() {
        assert!(Markets::from_exchange_info("{").is_err());
        assert!(Markets::from_exchange_info(r#"{"symbols":{}}"#).is_err());
        assert!(Markets::from_exchange_info("[]").is_err());
    }
}
