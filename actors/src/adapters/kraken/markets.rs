//! Kraken's market list (`GET /0/public/AssetPairs`) as ccxt [`Market`]s, and the lookup from
//! the pair names Kraken's WebSocket uses (v1 `XBT/USD`, v2 `BTC/USD`) to ccxt symbols
//! (`BTC/USD`).
//!
//! The fields follow ccxt's `kraken.fetchMarkets` (checked against ccxt 4.5.90 on `KRAKEN.0`:
//! all 293 markets agree on symbol, base, quote, fees, precision and limits, but for `REPV2`):
//! precision as tick sizes from `pair_decimals`/`lot_decimals`, `limits.amount.min` from
//! `ordermin`, `limits.cost.min` from `costmin`, leverage from `leverage_buy`, maker and taker
//! from the first tier of `fees_maker`/`fees` (percent → rate), `margin` when leverage is
//! offered. Where we differ, on purpose:
//! - the symbol comes from `wsname` through [`common_currency`], since the WebSocket speaks in
//!   wsnames. ccxt derives it from the asset ids, which gives the same symbol for every pair of
//!   this list except `REPV2/*`, which ccxt folds into `REP` (then colliding with the old `REP`
//!   pairs the 2021 list still has);
//! - pairs without `wsname` (the `.d` dark-pool pairs) are left out, with a reason in
//!   [`KrakenMarkets::skipped`]: they are not on the WebSocket, and ccxt gives them the same
//!   symbol as the real pair (`XXBTZUSD.d` → `BTC/USD`), so `market("BTC/USD")` can pick the
//!   dark pool;
//! - `active` is `null` when the pair has no `status` (ccxt says `false`), and `baseId`/`quoteId`
//!   are Kraken's asset ids (`XXBT`, `ZUSD`) as the ccxt Manual defines them.

use std::collections::{BTreeMap, HashMap};

use rpc_crypto_proto::ccxt::{common_currency, Info, Market, MinMax, Symbol};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::adapters::decimal::{Decimal, DIV_PRECISION, MAX_LEN};

/// Why the market list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MarketsError {
    /// Not JSON, or not the AssetPairs shape.
    #[error("Kraken AssetPairs: {0}")]
    Json(#[from] serde_json::Error),
    /// Kraken answered with errors (`{"error": ["EGeneral:..."]}`).
    #[error("Kraken AssetPairs error: {0}")]
    Exchange(String),
}

/// A WebSocket pair name that is not in the market list. The adapter logs it once per name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Kraken pair {0:?}")]
pub struct UnknownPair(pub String);

impl UnknownPair {
    /// The error for `name`, keeping at most 64 characters of it (input is untrusted).
    pub fn new(name: &str) -> Self {
        Self(name.chars().take(64).collect())
    }
}

/// One Kraken pair: its ccxt market and what the WebSocket side needs.
#[derive(Debug, Clone, PartialEq)]
pub struct KrakenPair {
    /// The ccxt market (id `XXBTZUSD`, symbol `BTC/USD`).
    pub market: Market,
    /// The WebSocket name (`XBT/USD`), used to subscribe and found in every message.
    pub ws_name: String,
    /// Decimals of a price (`pair_decimals`): ccxt rounds a ticker's `average` to them. The
    /// WebSocket v2 book checksum writes prices with them (v2's `price_precision`).
    pub price_decimals: u32,
    /// Decimals of an amount (`lot_decimals`): the v2 book checksum writes quantities with them
    /// (v2's `qty_precision`).
    pub amount_decimals: u32,
    /// The name WebSocket v2 uses (`BTC/USD`): the wsname with Kraken's v2 renames.
    pub v2_name: String,
}

/// A pair that is not in the list, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedPair {
    /// Kraken's pair id.
    pub id: String,
    /// Why it was left out.
    pub reason: &'static str,
}

/// The market list, indexed by WebSocket name and by ccxt symbol.
#[derive(Debug, Clone, Default)]
pub struct KrakenMarkets {
    pairs: Vec<KrakenPair>,
    by_ws_name: HashMap<String, usize>,
    by_symbol: HashMap<String, usize>,
    by_v2_name: HashMap<String, usize>,
    skipped: Vec<SkippedPair>,
}

/// The response envelope.
#[derive(Deserialize)]
struct Response<'a> {
    #[serde(default)]
    error: Vec<String>,
    #[serde(borrow)]
    result: Option<BTreeMap<String, &'a RawValue>>,
}

/// The fields of a pair we read; the rest stays in `info`.
#[derive(Deserialize)]
struct AssetPair<'a> {
    wsname: Option<String>,
    base: String,
    quote: String,
    pair_decimals: u32,
    lot_decimals: u32,
    #[serde(default)]
    leverage_buy: Vec<f64>,
    /// `[[volume, percent], ...]`; the percent as written, for exact division.
    #[serde(default, borrow)]
    fees: Vec<(serde::de::IgnoredAny, &'a RawValue)>,
    #[serde(default, borrow)]
    fees_maker: Vec<(serde::de::IgnoredAny, &'a RawValue)>,
    ordermin: Option<String>,
    costmin: Option<String>,
    status: Option<String>,
}

/// A tick size of `decimals` decimals (`2` → `0.01`), read from text so that it is the nearest
/// `f64`, as ccxt's `parsePrecision` gives it.
fn tick(decimals: u32) -> Option<f64> {
    format!("1e-{decimals}").parse().ok()
}

/// The rate of the first fee tier (`0.26` percent → `0.0026`).
fn first_rate(tiers: &[(serde::de::IgnoredAny, &RawValue)]) -> Option<f64> {
    let (_, percent) = tiers.first()?;
    let percent = Decimal::parse(percent.get())?;
    Some(
        percent
            .checked_div(Decimal::integer(100), DIV_PRECISION)?
            .to_f64(),
    )
}

/// A decimal string as a number; `None` when absent or not a number.
fn number(text: Option<&str>) -> Option<f64> {
    text.and_then(|t| t.parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

/// A pair's WebSocket v2 name from its wsname's currencies: v2 writes `BTC` for `XBT` and
/// `DOGE` for `XDG` (<https://docs.kraken.com/api/docs/guides/spot-ws-intro>: "Pair symbols have
/// been aligned into the more readable BTC/USD format"); other codes are the wsname's.
fn v2_name(base: &str, quote: &str) -> String {
    let code = |c: &str| {
        match c {
            "XBT" => "BTC",
            "XDG" => "DOGE",
            other => other,
        }
        .to_owned()
    };
    format!("{}/{}", code(base), code(quote))
}

/// The ccxt market of one pair, or why it is skipped.
fn market(id: &str, raw: &RawValue) -> Result<KrakenPair, &'static str> {
    let pair: AssetPair<'_> =
        serde_json::from_str(raw.get()).map_err(|_| "not an AssetPairs entry")?;
    let ws_name = pair
        .wsname
        .ok_or("no wsname: not traded on the WebSocket")?;
    let (base, quote) = ws_name.split_once('/').ok_or("wsname is not BASE/QUOTE")?;
    // The v2 book checksum writes each price and quantity with these decimals: more than a
    // number the book keeps can have (`decimal::MAX_LEN` characters) would only cost time,
    // billions of padding digits per level for a hostile answer.
    if [pair.pair_decimals, pair.lot_decimals]
        .iter()
        .any(|&d| usize::try_from(d).map_or(true, |d| d > MAX_LEN))
    {
        return Err("pair_decimals or lot_decimals beyond 64");
    }
    let symbol = Symbol::spot(common_currency(base), common_currency(quote))
        .map_err(|_| "wsname has a malformed currency")?;
    let mut market = Market::new(id, &symbol, pair.base, pair.quote);
    market.active = pair.status.as_deref().map(|s| s == "online");
    market.margin = !pair.leverage_buy.is_empty();
    market.taker = first_rate(&pair.fees);
    market.maker = first_rate(&pair.fees_maker);
    // Kraken's fees are rates of the cost, in volume tiers (ccxt's `fees.trading`).
    market.percentage = Some(true);
    market.tier_based = Some(true);
    market.precision.price = tick(pair.pair_decimals);
    market.precision.amount = tick(pair.lot_decimals);
    market.limits.amount.min = number(pair.ordermin.as_deref());
    market.limits.cost.min = number(pair.costmin.as_deref());
    market.limits.leverage = MinMax {
        min: Some(1.0),
        max: Some(pair.leverage_buy.last().copied().unwrap_or(1.0)),
    };
    market.info = Info::from(raw);
    let v2_name = v2_name(base, quote);
    Ok(KrakenPair {
        market,
        ws_name,
        price_decimals: pair.pair_decimals,
        amount_decimals: pair.lot_decimals,
        v2_name,
    })
}

impl KrakenMarkets {
    /// Reads the body of `GET /0/public/AssetPairs`. A pair that cannot be a market is listed in
    /// [`Self::skipped`] rather than failing the whole list.
    pub fn from_asset_pairs(body: &str) -> Result<Self, MarketsError> {
        let response: Response<'_> = serde_json::from_str(body)?;
        if !response.error.is_empty() {
            return Err(MarketsError::Exchange(response.error.join("; ")));
        }
        let mut markets = Self::default();
        for (id, raw) in response.result.unwrap_or_default() {
            match market(&id, raw) {
                Ok(pair) => markets.insert(pair, id),
                Err(reason) => markets.skipped.push(SkippedPair { id, reason }),
            }
        }
        Ok(markets)
    }

    fn insert(&mut self, pair: KrakenPair, id: String) {
        // Two pairs with one symbol or wsname would make the lookups ambiguous: keep the first.
        if self.by_symbol.contains_key(&pair.market.symbol)
            || self.by_ws_name.contains_key(&pair.ws_name)
            || self.by_v2_name.contains_key(&pair.v2_name)
        {
            self.skipped.push(SkippedPair {
                id,
                reason: "same symbol or wsname as an earlier pair",
            });
            return;
        }
        let index = self.pairs.len();
        self.by_ws_name.insert(pair.ws_name.clone(), index);
        self.by_symbol.insert(pair.market.symbol.clone(), index);
        self.by_v2_name.insert(pair.v2_name.clone(), index);
        self.pairs.push(pair);
    }

    /// Every pair, in Kraken's id order.
    pub fn pairs(&self) -> &[KrakenPair] {
        &self.pairs
    }

    /// Every ccxt market.
    pub fn markets(&self) -> impl Iterator<Item = &Market> {
        self.pairs.iter().map(|pair| &pair.market)
    }

    /// The pair a WebSocket message names (`XBT/USD`).
    pub fn by_ws_name(&self, ws_name: &str) -> Result<&KrakenPair, UnknownPair> {
        self.by_ws_name
            .get(ws_name)
            .map(|&i| &self.pairs[i])
            .ok_or_else(|| UnknownPair::new(ws_name))
    }

    /// The pair a WebSocket v2 message names (`BTC/USD`).
    pub fn by_v2_name(&self, v2_name: &str) -> Result<&KrakenPair, UnknownPair> {
        self.by_v2_name
            .get(v2_name)
            .map(|&i| &self.pairs[i])
            .ok_or_else(|| UnknownPair::new(v2_name))
    }

    /// The pair of a ccxt symbol (`BTC/USD`), e.g. to subscribe with its wsname.
    pub fn by_symbol(&self, symbol: &str) -> Option<&KrakenPair> {
        self.by_symbol.get(symbol).map(|&i| &self.pairs[i])
    }

    /// Pairs of the list that are not markets here, and why.
    pub fn skipped(&self) -> &[SkippedPair] {
        &self.skipped
    }

    /// How many markets.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}
