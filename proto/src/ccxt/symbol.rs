//! ccxt symbols (`BTC/USDT`, `BTC/USDT:USDT`, `BTC/USD:BTC-211231`) and common currency codes.
//!
//! Channel names carry ccxt symbols (`ticker:binance:BTC/USDT`), so every symbol a client sends
//! is parsed here before anything looks it up; a malformed one is an error, never a guess.
//!
//! | market | form | example |
//! |---|---|---|
//! | spot | `BASE/QUOTE` | `BTC/USDT` |
//! | swap (perpetual) | `BASE/QUOTE:SETTLE` | `BTC/USDT:USDT` |
//! | future | `BASE/QUOTE:SETTLE-YYMMDD` | `BTC/USD:BTC-211231` |
//! | option | `BASE/QUOTE:SETTLE-YYMMDD-STRIKE-C` or `-P` | `BTC/USD:BTC-211231-60000-C` |
//!
//! Currency codes are kept as written (ccxt has mixed-case codes such as `stETH`); they may not
//! be empty or contain whitespace, `/` or `:`, and a settle currency may not contain `-`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::time::{days_from_civil, is_leap_year};
use super::{MarketType, OptionType};

/// Longest symbol accepted, so that hostile input is refused before any work (real ones are
/// well under 40 characters).
const MAX_LEN: usize = 100;

/// ccxt's code for an exchange's currency name: ccxt's common substitutions, and the input
/// unchanged otherwise.
///
/// | exchange's | ccxt's | where ccxt maps it |
/// |---|---|---|
/// | `XBT` | `BTC` | every exchange (base `commonCurrencies`); Kraken, BitMEX write XBT |
/// | `BCC` | `BCH` | every exchange (base `commonCurrencies`) |
/// | `BCHSV` | `BSV` | every exchange (base `commonCurrencies`) |
/// | `XDG` | `DOGE` | Kraken's `commonCurrencies` (no other listed coin is called XDG) |
///
/// Exchange-specific spellings beyond these (Kraken's `XXBT`/`ZUSD` asset ids, for example)
/// belong to that exchange's adapter, which maps them through its market list.
pub fn common_currency(code: &str) -> &str {
    match code {
        "XBT" => "BTC",
        "BCC" => "BCH",
        "BCHSV" => "BSV",
        "XDG" => "DOGE",
        other => other,
    }
}

/// Why a string is not a ccxt symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// The empty string.
    #[error("empty symbol")]
    Empty,
    /// Longer than any real symbol.
    #[error("symbol longer than {MAX_LEN} bytes")]
    TooLong,
    /// No `/` between base and quote.
    #[error("symbol has no '/' between base and quote")]
    MissingSlash,
    /// A currency code is empty or holds whitespace, a control character, `/` or `:`.
    #[error("malformed {0} currency in symbol")]
    BadCurrency(&'static str),
    /// After `:`, neither `SETTLE`, `SETTLE-YYMMDD` nor `SETTLE-YYMMDD-STRIKE-C|P`.
    #[error("malformed contract suffix in symbol (expected SETTLE, SETTLE-YYMMDD or SETTLE-YYMMDD-STRIKE-C|P)")]
    BadSuffix,
    /// The expiry is not six digits of a real date.
    #[error("malformed expiry in symbol (expected YYMMDD)")]
    BadExpiry,
    /// The strike is not a positive decimal number.
    #[error("malformed strike in symbol")]
    BadStrike,
    /// The option type is not `C` or `P`.
    #[error("malformed option type in symbol (expected C or P)")]
    BadOptionType,
}

/// The expiry date of a future or option symbol, `YYMMDD` (years 2000–2099, as ccxt writes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExpiryDate {
    year: u16,
    month: u8,
    day: u8,
}

impl ExpiryDate {
    /// The date, if it exists and its year is within 2000–2099.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        if !(2000..=2099).contains(&year) || !(1..=12).contains(&month) || day == 0 {
            return None;
        }
        let days_in_month = match month {
            2 if is_leap_year(i64::from(year)) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        (day <= days_in_month).then_some(Self { year, month, day })
    }

    /// Parses `YYMMDD`.
    pub fn parse_yymmdd(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let two = |i: usize| (bytes[i] - b'0') * 10 + (bytes[i + 1] - b'0');
        Self::new(2000 + u16::from(two(0)), two(2), two(4))
    }

    /// Full year (2000–2099).
    pub const fn year(self) -> u16 {
        self.year
    }

    /// Month, 1–12.
    pub const fn month(self) -> u8 {
        self.month
    }

    /// Day of the month, 1–31.
    pub const fn day(self) -> u8 {
        self.day
    }

    /// UTC milliseconds of the date's midnight. Exchanges settle at their own time of day
    /// (often 08:00 UTC), which the adapter adds to fill a market's `expiry`.
    pub fn midnight_ms(self) -> i64 {
        days_from_civil(
            i64::from(self.year),
            u32::from(self.month),
            u32::from(self.day),
        ) * 86_400_000
    }
}

impl fmt::Display for ExpiryDate {
    /// `YYMMDD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}{:02}{:02}", self.year % 100, self.month, self.day)
    }
}

/// What follows the quote currency in a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SymbolKind {
    /// `BASE/QUOTE`.
    Spot,
    /// `BASE/QUOTE:SETTLE`.
    Swap {
        /// Settlement currency.
        settle: String,
    },
    /// `BASE/QUOTE:SETTLE-YYMMDD`.
    Future {
        /// Settlement currency.
        settle: String,
        /// Expiry date.
        expiry: ExpiryDate,
    },
    /// `BASE/QUOTE:SETTLE-YYMMDD-STRIKE-C|P`.
    Option {
        /// Settlement currency.
        settle: String,
        /// Expiry date.
        expiry: ExpiryDate,
        /// Strike price as written (kept as text so that it formats back unchanged).
        strike: String,
        /// `C` (call) or `P` (put).
        option_type: OptionType,
    },
}

/// A parsed ccxt symbol. `Display` writes it back exactly as ccxt does; serde uses that string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Symbol {
    base: String,
    quote: String,
    kind: SymbolKind,
}

impl Symbol {
    /// Parses a ccxt symbol.
    pub fn parse(text: &str) -> Result<Self, SymbolError> {
        if text.is_empty() {
            return Err(SymbolError::Empty);
        }
        if text.len() > MAX_LEN {
            return Err(SymbolError::TooLong);
        }
        let (base, rest) = text.split_once('/').ok_or(SymbolError::MissingSlash)?;
        let (quote, suffix) = match rest.split_once(':') {
            Some((quote, suffix)) => (quote, Some(suffix)),
            None => (rest, None),
        };
        let base = currency(base, "base")?;
        let quote = currency(quote, "quote")?;
        let kind = match suffix {
            None => SymbolKind::Spot,
            Some(suffix) => parse_suffix(suffix)?,
        };
        Ok(Self { base, quote, kind })
    }

    /// `BASE/QUOTE`.
    pub fn spot(base: &str, quote: &str) -> Result<Self, SymbolError> {
        Ok(Self {
            base: currency(base, "base")?,
            quote: currency(quote, "quote")?,
            kind: SymbolKind::Spot,
        })
    }

    /// `BASE/QUOTE:SETTLE`.
    pub fn swap(base: &str, quote: &str, settle: &str) -> Result<Self, SymbolError> {
        Ok(Self {
            base: currency(base, "base")?,
            quote: currency(quote, "quote")?,
            kind: SymbolKind::Swap {
                settle: settle_currency(settle)?,
            },
        })
    }

    /// `BASE/QUOTE:SETTLE-YYMMDD`.
    pub fn future(
        base: &str,
        quote: &str,
        settle: &str,
        expiry: ExpiryDate,
    ) -> Result<Self, SymbolError> {
        Ok(Self {
            base: currency(base, "base")?,
            quote: currency(quote, "quote")?,
            kind: SymbolKind::Future {
                settle: settle_currency(settle)?,
                expiry,
            },
        })
    }

    /// `BASE/QUOTE:SETTLE-YYMMDD-STRIKE-C|P`.
    pub fn option(
        base: &str,
        quote: &str,
        settle: &str,
        expiry: ExpiryDate,
        strike: &str,
        option_type: OptionType,
    ) -> Result<Self, SymbolError> {
        Ok(Self {
            base: currency(base, "base")?,
            quote: currency(quote, "quote")?,
            kind: SymbolKind::Option {
                settle: settle_currency(settle)?,
                expiry,
                strike: parse_strike(strike)?,
                option_type,
            },
        })
    }

    /// Base currency.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Quote currency.
    pub fn quote(&self) -> &str {
        &self.quote
    }

    /// Spot, swap, future or option, with what each adds.
    pub fn kind(&self) -> &SymbolKind {
        &self.kind
    }

    /// Settlement currency of a contract.
    pub fn settle(&self) -> Option<&str> {
        match &self.kind {
            SymbolKind::Spot => None,
            SymbolKind::Swap { settle }
            | SymbolKind::Future { settle, .. }
            | SymbolKind::Option { settle, .. } => Some(settle),
        }
    }

    /// Expiry date of a future or option.
    pub fn expiry(&self) -> Option<ExpiryDate> {
        match &self.kind {
            SymbolKind::Future { expiry, .. } | SymbolKind::Option { expiry, .. } => Some(*expiry),
            SymbolKind::Spot | SymbolKind::Swap { .. } => None,
        }
    }

    /// The ccxt market type the symbol's form implies.
    pub fn market_type(&self) -> MarketType {
        match self.kind {
            SymbolKind::Spot => MarketType::Spot,
            SymbolKind::Swap { .. } => MarketType::Swap,
            SymbolKind::Future { .. } => MarketType::Future,
            SymbolKind::Option { .. } => MarketType::Option,
        }
    }
}

/// A base or quote code: not empty, no whitespace, control character, `/` or `:`.
fn currency(code: &str, part: &'static str) -> Result<String, SymbolError> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '/' || c == ':';
    if code.is_empty() || code.contains(bad) {
        return Err(SymbolError::BadCurrency(part));
    }
    Ok(code.to_owned())
}

/// A settle code: as [`currency`], and no `-`, which separates the expiry.
fn settle_currency(code: &str) -> Result<String, SymbolError> {
    if code.contains('-') {
        return Err(SymbolError::BadCurrency("settle"));
    }
    currency(code, "settle")
}

/// A strike: digits with at most one inner `.`, not zero.
fn parse_strike(text: &str) -> Result<String, SymbolError> {
    let digits_and_dot = text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let dots = text.bytes().filter(|b| *b == b'.').count();
    let positive = text.bytes().any(|b| (b'1'..=b'9').contains(&b));
    if text.is_empty()
        || !digits_and_dot
        || dots > 1
        || text.starts_with('.')
        || text.ends_with('.')
        || !positive
    {
        return Err(SymbolError::BadStrike);
    }
    Ok(text.to_owned())
}

/// What follows `:`: `SETTLE`, `SETTLE-YYMMDD` or `SETTLE-YYMMDD-STRIKE-C|P`.
fn parse_suffix(suffix: &str) -> Result<SymbolKind, SymbolError> {
    let mut parts = suffix.split('-');
    // `split` yields at least one part, possibly empty; `settle_currency` refuses empty.
    let settle = settle_currency(parts.next().unwrap_or_default())?;
    let Some(expiry) = parts.next() else {
        return Ok(SymbolKind::Swap { settle });
    };
    let expiry = ExpiryDate::parse_yymmdd(expiry).ok_or(SymbolError::BadExpiry)?;
    let Some(strike) = parts.next() else {
        return Ok(SymbolKind::Future { settle, expiry });
    };
    let strike = parse_strike(strike)?;
    let option_type = match parts.next() {
        Some("C") => OptionType::Call,
        Some("P") => OptionType::Put,
        Some(_) => return Err(SymbolError::BadOptionType),
        None => return Err(SymbolError::BadSuffix),
    };
    if parts.next().is_some() {
        return Err(SymbolError::BadSuffix);
    }
    Ok(SymbolKind::Option {
        settle,
        expiry,
        strike,
        option_type,
    })
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.quote)?;
        match &self.kind {
            SymbolKind::Spot => Ok(()),
            SymbolKind::Swap { settle } => write!(f, ":{settle}"),
            SymbolKind::Future { settle, expiry } => write!(f, ":{settle}-{expiry}"),
            SymbolKind::Option {
                settle,
                expiry,
                strike,
                option_type,
            } => {
                let letter = match option_type {
                    OptionType::Call => 'C',
                    OptionType::Put => 'P',
                };
                write!(f, ":{settle}-{expiry}-{strike}-{letter}")
            }
        }
    }
}

impl FromStr for Symbol {
    type Err = SymbolError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for Symbol {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}
