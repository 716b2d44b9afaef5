//! Fiat exchange rates ("financial messages") from the ECB daily euro foreign exchange reference
//! rates, and a deterministic simulated source for offline configurations.
//!
//! The ECB publishes, around 16:00 CET on working days, one file
//! (`https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml`) shaped as
//! `gesmes:Envelope` → `Cube` → `Cube time='YYYY-MM-DD'` → `Cube currency='USD' rate='1.0556'`,
//! each rate being units of the currency per 1 EUR. [`parse_ecb_daily`] reads it into
//! [`EcbRates`]; crypto markets quote against USD or USDT, so the broker needs fiat crosses to show
//! prices in a user's currency, and the ECB file is the free, authoritative, daily source.
//!
//! The parser is a small hand-written XML scanner rather than a dependency: the file is tiny and
//! fixed in shape, and the scanner only has to check well-formedness (balanced, properly nested
//! tags, quoted attributes) and hand over `Cube` attributes. It rejects DTDs (so no entity
//! expansion) and does not decode entity references, which no valid currency code or rate contains.
//! It never panics, whatever the input.
//!
//! Each rate keeps the decimal text exactly as published next to its `f64`, so a message can show
//! what the ECB wrote (`310.70`, not `310.7`).
//!
//! # Rate convention
//! [`EcbRates::rate`]`(base, quote)` is how many `quote` buy 1 `base`, the way ccxt symbols read:
//! `EUR/USD` = 1.0556 means 1 EUR = 1.0556 USD. Crosses go through EUR:
//! `rate(B, Q) = ecb(Q) / ecb(B)` with `ecb(EUR) = 1`, so `USD/JPY` = `ecb(JPY) / ecb(USD)`.
//!
//! # Messages
//! [`EcbRates::rate_message`] builds the JSON the broker publishes on channel
//! `rates:ecb:<BASE>/<QUOTE>` (see [`channel`], [`parse_channel`]), ticker-like in ccxt's style:
//!
//! | field | meaning |
//! |---|---|
//! | `symbol` | `"BASE/QUOTE"` |
//! | `base`, `quote` | the currency codes |
//! | `rate` | number: `quote` per 1 `base` |
//! | `date` | the ECB reference date, `"YYYY-MM-DD"` |
//! | `timestamp` | integer UTC milliseconds of that date at 16:00 CET (15:00 UTC) |
//! | `datetime` | the same instant in ISO 8601: `"2017-03-08T15:00:00.000Z"` |
//! | `source` | `"ecb"` |
//! | `cross` | `false` when `base` or `quote` is EUR (a published rate), `true` when computed through EUR |
//! | `info` | the published texts used, by currency: `{"USD":"1.0556","JPY":"120.65"}` (EUR, the implicit 1, is left out) |
//!
//! The timestamp is nominal: the ECB speaks of 16:00 CET all year round, and the reference date
//! matters more to a reader than the minute the file appeared, so summer time is not applied.
//!
//! # Simulation
//! [`SimulatedRates`] walks seed rates (for instance the fixture) by at most ±[`SIM_STEP`]
//! (relative) per step, kept within ±[`SIM_BAND`] of the seed, from a seeded PRNG: the default
//! offline configuration gets moving yet reproducible rates without network or `rand`.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// The currency every ECB rate is quoted against; implicitly present with rate 1.
pub const EUR: &str = "EUR";

/// Channels carrying ECB rates are named `rates:ecb:<BASE>/<QUOTE>`.
pub const CHANNEL_PREFIX: &str = "rates:ecb:";

/// Largest relative move of one simulated rate in one [`SimulatedRates::step`] (0.05 %).
pub const SIM_STEP: f64 = 0.0005;

/// How far (relative) a simulated rate may drift from its seed (10 %); the walk reflects off these
/// bounds so that a long-running offline broker never shows absurd rates.
pub const SIM_BAND: f64 = 0.10;

/// The ECB's publication time in UTC (16:00 CET), in milliseconds after midnight.
const PUBLICATION_MS: i64 = 15 * 3_600_000;

/// Why an ECB rates file (or a set of rates) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatesError {
    /// Not well-formed XML, or XML this reader refuses (a DTD, text outside the root element).
    #[error("not XML at byte {offset}: {reason}")]
    Xml { offset: usize, reason: &'static str },
    /// The document ends inside a tag, a comment, or an element that is still open.
    #[error("truncated XML: {reason}")]
    Truncated { reason: &'static str },
    /// No `Cube` carries a `time` attribute.
    #[error("no Cube with a `time` attribute")]
    NoDate,
    /// The `time` attribute is not a valid `YYYY-MM-DD` date.
    #[error("invalid reference date {0:?} (want YYYY-MM-DD)")]
    BadDate(String),
    /// The Cubes are not arranged as the ECB arranges them (a rate outside a dated Cube, a Cube
    /// with a currency but no rate, ...).
    #[error("unexpected ECB structure: {0}")]
    Structure(&'static str),
    /// A currency code that is not 3 ASCII uppercase letters.
    #[error("invalid currency code {0:?} (want 3 ASCII uppercase letters)")]
    BadCurrency(String),
    /// A rate that is not a positive finite plain decimal (`1.0556`; no sign, exponent or spaces).
    #[error("invalid rate {rate:?} for {currency} (want a positive finite decimal)")]
    BadRate { currency: String, rate: String },
    /// A currency listed twice; EUR counts as listed already, being the base of every rate.
    #[error("currency {0} listed twice")]
    DuplicateCurrency(String),
    /// The dated Cube lists no rates.
    #[error("the dated Cube lists no rates")]
    Empty,
}

/// One published rate: units of `currency` per 1 EUR.
#[derive(Debug, Clone, PartialEq)]
pub struct EcbRate {
    /// ISO 4217 code, 3 ASCII uppercase letters, never `EUR`.
    pub currency: String,
    /// The decimal exactly as published (`"310.70"`).
    pub text: String,
    /// `text` as the nearest `f64`; positive and finite.
    pub value: f64,
}

/// One day of ECB reference rates, in published order, validated: unique currencies, positive
/// finite rates, a real calendar date.
#[derive(Debug, Clone, PartialEq)]
pub struct EcbRates {
    date: String,
    timestamp: i64,
    rates: Vec<EcbRate>,
}

impl EcbRates {
    /// Rates built from `(currency, decimal text)` pairs, validated as [`parse_ecb_daily`] does.
    pub fn new<'a, I>(date: &str, rates: I) -> Result<Self, RatesError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let days = parse_date(date.as_bytes())?;
        let mut builder = Builder::default();
        for (currency, rate) in rates {
            builder.push(currency.as_bytes(), rate.as_bytes())?;
        }
        builder.finish(date.to_owned(), days)
    }

    /// The same rates under another reference date (`YYYY-MM-DD`); for a simulated source, whose
    /// caller knows the clock.
    pub fn with_date(mut self, date: &str) -> Result<Self, RatesError> {
        let days = parse_date(date.as_bytes())?;
        self.date = date.to_owned();
        self.timestamp = timestamp_of(days);
        Ok(self)
    }

    /// The reference date, `YYYY-MM-DD`.
    pub fn date(&self) -> &str {
        &self.date
    }

    /// UTC milliseconds of the reference date at 16:00 CET (15:00 UTC).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// [`Self::timestamp`] in ISO 8601 with milliseconds, as ccxt writes `datetime`.
    pub fn datetime(&self) -> String {
        format!("{}T15:00:00.000Z", self.date)
    }

    /// The published rates, in published order (EUR is not among them).
    pub fn rates(&self) -> &[EcbRate] {
        &self.rates
    }

    /// How many rates were published (EUR not counted).
    pub fn len(&self) -> usize {
        self.rates.len()
    }

    /// Always false once validated; here because `len` is.
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }

    /// The published rate of `currency` (case-sensitive; `None` for EUR and unknown codes).
    pub fn get(&self, currency: &str) -> Option<&EcbRate> {
        self.rates.iter().find(|r| r.currency == currency)
    }

    /// Units of `currency` per 1 EUR: 1 for EUR, `None` for unknown codes.
    pub fn per_eur(&self, currency: &str) -> Option<f64> {
        if currency == EUR {
            Some(1.0)
        } else {
            self.get(currency).map(|r| r.value)
        }
    }

    /// How many `quote` buy 1 `base` (`EUR/USD` = 1.0556 means 1 EUR = 1.0556 USD), crossing
    /// through EUR: `per_eur(quote) / per_eur(base)`. Exactly 1 for `X/X`; `None` when either code
    /// is neither EUR nor published, or when the cross of extreme rates overflows.
    pub fn rate(&self, base: &str, quote: &str) -> Option<f64> {
        let b = self.per_eur(base)?;
        let q = self.per_eur(quote)?;
        if base == quote {
            return Some(1.0);
        }
        let r = q / b;
        (r.is_finite() && r > 0.0).then_some(r)
    }

    /// The message for channel `rates:ecb:<BASE>/<QUOTE>`; fields as listed in the module doc.
    /// `None` when [`Self::rate`] is.
    pub fn rate_message(&self, base: &str, quote: &str) -> Option<Value> {
        let rate = self.rate(base, quote)?;
        let mut info = Map::new();
        for currency in [base, quote] {
            if let Some(published) = self.get(currency) {
                info.insert(currency.to_owned(), Value::from(published.text.as_str()));
            }
        }
        Some(json!({
            "symbol": format!("{base}/{quote}"),
            "base": base,
            "quote": quote,
            "rate": rate,
            "date": self.date,
            "timestamp": self.timestamp,
            "datetime": self.datetime(),
            "source": "ecb",
            "cross": base != EUR && quote != EUR,
            "info": info,
        }))
    }
}

/// The channel carrying `base/quote`: `rates:ecb:USD/JPY`.
pub fn channel(base: &str, quote: &str) -> String {
    format!("{CHANNEL_PREFIX}{base}/{quote}")
}

/// `(base, quote)` of a `rates:ecb:<BASE>/<QUOTE>` channel, unvalidated (ask [`EcbRates::rate`]);
/// `None` for other channels or an empty side.
pub fn parse_channel(channel: &str) -> Option<(&str, &str)> {
    let (base, quote) = channel.strip_prefix(CHANNEL_PREFIX)?.split_once('/')?;
    (!base.is_empty() && !quote.is_empty()).then_some((base, quote))
}

/// Reads the ECB daily reference rates file (`eurofxref-daily.xml`).
///
/// The first `Cube time='…'` gives the date and its child `Cube currency='…' rate='…'` elements
/// the rates. Later dated Cubes (the ECB's 90-day and history files list the newest day first)
/// are skipped, unvalidated beyond XML well-formedness. Element names match by local name, so
/// any namespace prefix is accepted.
pub fn parse_ecb_daily(xml: &[u8]) -> Result<EcbRates, RatesError> {
    let mut scanner = Scanner::new(xml);
    let mut depth = 0usize;
    // Depth of the dated Cube being read, and of a later one being skipped.
    let mut reading: Option<usize> = None;
    let mut skipping: Option<usize> = None;
    let mut date: Option<(String, i64)> = None;
    let mut builder = Builder::default();

    while let Some(event) = scanner.next_event()? {
        match event {
            Event::Start { name, attrs } => {
                depth += 1;
                if local_name(name) != b"Cube" || skipping.is_some() {
                    continue;
                }
                let attr = |key: &[u8]| attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
                let (time, currency, rate) = (attr(b"time"), attr(b"currency"), attr(b"rate"));
                match (time, currency, rate) {
                    (None, None, None) => {} // the wrapper Cube
                    (Some(time), None, None) => {
                        if reading.is_some() {
                            return Err(RatesError::Structure("a dated Cube inside a dated Cube"));
                        }
                        if date.is_some() {
                            skipping = Some(depth);
                            continue;
                        }
                        let days = parse_date(time)?;
                        date = Some((ascii(time), days));
                        reading = Some(depth);
                    }
                    (Some(_), _, _) => {
                        return Err(RatesError::Structure("a Cube with both a date and a rate"))
                    }
                    (None, Some(currency), Some(rate)) => {
                        if reading.is_none() {
                            return Err(RatesError::Structure("a rate Cube outside a dated Cube"));
                        }
                        builder.push(currency, rate)?;
                    }
                    (None, Some(_), None) => {
                        return Err(RatesError::Structure("a Cube with a currency but no rate"))
                    }
                    (None, None, Some(_)) => {
                        return Err(RatesError::Structure("a Cube with a rate but no currency"))
                    }
                }
            }
            Event::End => {
                if reading == Some(depth) {
                    reading = None;
                }
                if skipping == Some(depth) {
                    skipping = None;
                }
                depth = depth.saturating_sub(1);
            }
        }
    }
    let (date, days) = date.ok_or(RatesError::NoDate)?;
    builder.finish(date, days)
}

/// Accumulates validated rates; shared by the parser and [`EcbRates::new`].
#[derive(Default)]
struct Builder {
    rates: Vec<EcbRate>,
    // A set, not a scan of `rates`, so hostile input with thousands of Cubes stays linear-ish.
    seen: BTreeSet<[u8; 3]>,
}

impl Builder {
    fn push(&mut self, currency: &[u8], rate: &[u8]) -> Result<(), RatesError> {
        let code = match <[u8; 3]>::try_from(currency) {
            Ok(code) if code.iter().all(u8::is_ascii_uppercase) => code,
            _ => return Err(RatesError::BadCurrency(shown(currency))),
        };
        let name = ascii(&code);
        if name == EUR || !self.seen.insert(code) {
            return Err(RatesError::DuplicateCurrency(name));
        }
        let (value, text) = parse_rate(rate).ok_or_else(|| RatesError::BadRate {
            currency: name.clone(),
            rate: shown(rate),
        })?;
        self.rates.push(EcbRate {
            currency: name,
            text: text.to_owned(),
            value,
        });
        Ok(())
    }

    fn finish(self, date: String, days: i64) -> Result<EcbRates, RatesError> {
        if self.rates.is_empty() {
            return Err(RatesError::Empty);
        }
        Ok(EcbRates {
            date,
            timestamp: timestamp_of(days),
            rates: self.rates,
        })
    }
}

/// A plain decimal (`digits[.digits]`), positive and finite as an `f64`. Exponents, signs and
/// `inf`/`NaN`, which `f64::from_str` would take, are refused: the ECB never writes them.
fn parse_rate(raw: &[u8]) -> Option<(f64, &str)> {
    let (int, frac) = match raw.iter().position(|&b| b == b'.') {
        Some(dot) => (&raw[..dot], Some(&raw[dot + 1..])),
        None => (raw, None),
    };
    let digits = |part: &[u8]| !part.is_empty() && part.iter().all(u8::is_ascii_digit);
    if !digits(int) || !frac.map_or(true, digits) {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?;
    let value: f64 = text.parse().ok()?;
    // Enough digits overflow to infinity, enough zeros underflow to 0.
    (value.is_finite() && value > 0.0).then_some((value, text))
}

/// Days since 1970-01-01 of a strict `YYYY-MM-DD` calendar date.
fn parse_date(raw: &[u8]) -> Result<i64, RatesError> {
    let bad = || RatesError::BadDate(shown(raw));
    let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = raw else {
        return Err(bad());
    };
    let number = |ds: &[u8]| -> Result<i64, RatesError> {
        ds.iter().try_fold(0i64, |n, &d| {
            if d.is_ascii_digit() {
                Ok(n * 10 + i64::from(d - b'0'))
            } else {
                Err(bad())
            }
        })
    };
    let (y, m, d) = (
        number(&[y0, y1, y2, y3])?,
        number(&[m0, m1])?,
        number(&[d0, d1])?,
    );
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if !(1..=month_days).contains(&d) {
        return Err(bad());
    }
    // Checked above: 1..=12 and 1..=31.
    Ok(crate::ccxt::days_from_civil(y, m as u32, d as u32))
}

fn timestamp_of(days: i64) -> i64 {
    days * 86_400_000 + PUBLICATION_MS
}

/// Bytes already checked to be ASCII, as a `String`.
fn ascii(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Offending input for an error message, cut short: hostile input may be megabytes long.
fn shown(bytes: &[u8]) -> String {
    const MAX: usize = 40;
    let mut s = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]).into_owned();
    if bytes.len() > MAX {
        s.push('…');
    }
    s
}

fn local_name(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b':') {
        Some(colon) => &name[colon + 1..],
        None => name,
    }
}

/// What [`Scanner`] reports: an element's start (with its raw attributes) or its end.
enum Event<'a> {
    Start {
        name: &'a [u8],
        attrs: Vec<(&'a [u8], &'a [u8])>,
    },
    End,
}

/// A pull scanner for the XML subset the ECB writes: it checks well-formedness (one root, tags
/// balanced and nested, attributes quoted and unique) and skips the prolog, comments, processing
/// instructions, CDATA and text. Iterative, so deep nesting cannot overflow the stack.
struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    open: Vec<&'a [u8]>,
    seen_root: bool,
    // A self-closing tag is reported as a start then an end.
    pending_end: bool,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_name_byte(c: u8) -> bool {
    !is_space(c)
        && !matches!(
            c,
            b'<' | b'>' | b'/' | b'=' | b'\'' | b'"' | b'?' | b'!' | b'&'
        )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8]) -> Self {
        let b = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
        Scanner {
            b,
            pos: 0,
            open: Vec::new(),
            seen_root: false,
            pending_end: false,
        }
    }

    fn xml(&self, reason: &'static str) -> RatesError {
        RatesError::Xml {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn name(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(is_name_byte) {
            self.pos += 1;
        }
        &self.b[start..self.pos]
    }

    /// Moves past the next `end`, which closes a construct opened `open_len` bytes back.
    fn skip_construct(
        &mut self,
        open_len: usize,
        end: &[u8],
        reason: &'static str,
    ) -> Result<(), RatesError> {
        let from = self.pos + open_len;
        match find(&self.b[from..], end) {
            Some(at) => {
                self.pos = from + at + end.len();
                Ok(())
            }
            None => Err(RatesError::Truncated { reason }),
        }
    }

    fn next_event(&mut self) -> Result<Option<Event<'a>>, RatesError> {
        if std::mem::take(&mut self.pending_end) {
            return Ok(Some(Event::End));
        }
        loop {
            let text_start = self.pos;
            while self.peek().is_some_and(|c| c != b'<') {
                self.pos += 1;
            }
            if self.open.is_empty() && !self.b[text_start..self.pos].iter().all(|&c| is_space(c)) {
                self.pos = text_start;
                return Err(self.xml("text outside the root element"));
            }
            let rest = &self.b[self.pos..];
            if rest.is_empty() {
                return if !self.open.is_empty() {
                    Err(RatesError::Truncated {
                        reason: "an element is still open",
                    })
                } else if !self.seen_root {
                    Err(RatesError::Truncated {
                        reason: "no root element",
                    })
                } else {
                    Ok(None)
                };
            }
            // A cut inside `<!--` or `<![CDATA[` is truncation, not a bad declaration.
            let cut = |pat: &[u8]| rest.len() < pat.len() && pat.starts_with(rest);
            if rest.starts_with(b"<?") {
                self.skip_construct(2, b"?>", "unterminated processing instruction")?;
            } else if rest.starts_with(b"<!--") {
                self.skip_construct(4, b"-->", "unterminated comment")?;
            } else if rest.starts_with(b"<![CDATA[") {
                if self.open.is_empty() {
                    return Err(self.xml("CDATA outside the root element"));
                }
                self.skip_construct(9, b"]]>", "unterminated CDATA section")?;
            } else if cut(b"<!--") || cut(b"<![CDATA[") || rest == b"<" {
                return Err(RatesError::Truncated {
                    reason: "a cut markup declaration",
                });
            } else if rest.starts_with(b"<!") {
                return Err(self.xml("DTDs and declarations are not accepted"));
            } else if rest.starts_with(b"</") {
                self.pos += 2;
                return self.end_tag().map(Some);
            } else {
                self.pos += 1;
                return self.start_tag().map(Some);
            }
        }
    }

    fn end_tag(&mut self) -> Result<Event<'a>, RatesError> {
        let name = self.name();
        self.skip_spaces();
        match self.peek() {
            None => {
                return Err(RatesError::Truncated {
                    reason: "unterminated end tag",
                })
            }
            Some(b'>') if !name.is_empty() => self.pos += 1,
            Some(_) => return Err(self.xml("malformed end tag")),
        }
        match self.open.pop() {
            Some(open) if open == name => Ok(Event::End),
            Some(_) => Err(self.xml("end tag does not match the open element")),
            None => Err(self.xml("end tag without an open element")),
        }
    }

    fn start_tag(&mut self) -> Result<Event<'a>, RatesError> {
        let truncated = Err(RatesError::Truncated {
            reason: "unterminated start tag",
        });
        if self.open.is_empty() && self.seen_root {
            return Err(self.xml("a second root element"));
        }
        let name = self.name();
        if name.is_empty() {
            return if self.peek().is_none() {
                truncated
            } else {
                Err(self.xml("malformed tag name"))
            };
        }
        let mut attrs: Vec<(&'a [u8], &'a [u8])> = Vec::new();
        loop {
            let spaced = self.skip_spaces();
            match self.peek() {
                None => return truncated,
                Some(b'>') => {
                    self.pos += 1;
                    self.open.push(name);
                    break;
                }
                Some(b'/') => {
                    self.pos += 1;
                    match self.peek() {
                        None => return truncated,
                        Some(b'>') => self.pos += 1,
                        Some(_) => return Err(self.xml("expected '>' after '/'")),
                    }
                    self.pending_end = true;
                    break;
                }
                Some(_) if !spaced => return Err(self.xml("expected whitespace before attribute")),
                Some(_) => {}
            }
            let key = self.name();
            if key.is_empty() {
                return Err(self.xml("malformed attribute name"));
            }
            self.skip_spaces();
            match self.peek() {
                None => return truncated,
                Some(b'=') => self.pos += 1,
                Some(_) => return Err(self.xml("expected '=' after attribute name")),
            }
            self.skip_spaces();
            let quote = match self.peek() {
                None => return truncated,
                Some(q @ (b'\'' | b'"')) => q,
                Some(_) => return Err(self.xml("unquoted attribute value")),
            };
            self.pos += 1;
            let Some(len) = self.b[self.pos..].iter().position(|&c| c == quote) else {
                return truncated;
            };
            let value = &self.b[self.pos..self.pos + len];
            if value.contains(&b'<') {
                return Err(self.xml("'<' in an attribute value"));
            }
            if attrs.iter().any(|(k, _)| *k == key) {
                return Err(self.xml("duplicate attribute"));
            }
            attrs.push((key, value));
            self.pos += len + 1;
        }
        self.seen_root = true;
        Ok(Event::Start { name, attrs })
    }
}

/// A deterministic stand-in for the ECB feed when the broker runs offline: each
/// [`step`](Self::step) moves every seed rate by a uniform random factor in
/// `1 ± `[`SIM_STEP`], reflecting off `seed × (1 ± `[`SIM_BAND`]`)`, so rates stay positive and
/// near their seed. The same seed rates and `seed` give the same sequence on every platform.
#[derive(Debug, Clone)]
pub struct SimulatedRates {
    seed_rates: EcbRates,
    // The walk runs unrounded; rounding only shapes what is published.
    state: Vec<f64>,
    decimals: Vec<usize>,
    rng: u64,
}

impl SimulatedRates {
    /// A walk starting at `seed_rates`, driven by a PRNG seeded with `seed`.
    pub fn new(seed_rates: EcbRates, seed: u64) -> Self {
        let state = seed_rates.rates.iter().map(|r| r.value).collect();
        let decimals = seed_rates
            .rates
            .iter()
            .map(|r| r.text.split_once('.').map_or(0, |(_, frac)| frac.len()))
            .collect();
        SimulatedRates {
            seed_rates,
            state,
            decimals,
            rng: seed,
        }
    }

    /// The rates the walk started from.
    pub fn seed_rates(&self) -> &EcbRates {
        &self.seed_rates
    }

    /// Advances every rate one step and returns them, under the seed's date (see
    /// [`EcbRates::with_date`]). Texts keep the seed's decimals, with more where needed for 5
    /// significant digits, as the ECB publishes; `value` is that text's `f64`.
    pub fn step(&mut self) -> EcbRates {
        let mut rates = Vec::with_capacity(self.state.len());
        for i in 0..self.state.len() {
            let seed = self.seed_rates.rates[i].value;
            let (lo, hi) = (seed * (1.0 - SIM_BAND), seed * (1.0 + SIM_BAND));
            let mut x = self.state[i] * (1.0 + SIM_STEP * self.next_symmetric());
            // Reflection keeps the move within one step of the previous value.
            if x > hi {
                x = 2.0 * hi - x;
            } else if x < lo {
                x = 2.0 * lo - x;
            }
            x = x.clamp(lo, hi);
            self.state[i] = x;
            let magnitude = x.log10().floor();
            let needed = if magnitude < 4.0 {
                (4.0 - magnitude) as usize
            } else {
                0
            };
            let text = format!("{:.*}", self.decimals[i].max(needed), x);
            let value = text.parse().unwrap_or(x);
            rates.push(EcbRate {
                currency: self.seed_rates.rates[i].currency.clone(),
                text,
                value,
            });
        }
        EcbRates {
            date: self.seed_rates.date.clone(),
            timestamp: self.seed_rates.timestamp,
            rates,
        }
    }

    /// splitmix64: tiny, fast, and good enough for a price walk.
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn next_symmetric(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `shared/fixtures/rates/ecb_eurofxref-daily_2017-03-08.xml`, byte for byte, embedded so the
    /// crate's tests need nothing outside it.
    const FIXTURE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
	<gesmes:subject>Reference rates</gesmes:subject>
	<gesmes:Sender>
		<gesmes:name>European Central Bank</gesmes:name>
	</gesmes:Sender>
	<Cube>
		<Cube time='2017-03-08'>
			<Cube currency='USD' rate='1.0556'/>
			<Cube currency='JPY' rate='120.65'/>
			<Cube currency='BGN' rate='1.9558'/>
			<Cube currency='CZK' rate='27.021'/>
			<Cube currency='DKK' rate='7.4335'/>
			<Cube currency='GBP' rate='0.86753'/>
			<Cube currency='HUF' rate='310.70'/>
			<Cube currency='PLN' rate='4.3130'/>
			<Cube currency='RON' rate='4.5503'/>
			<Cube currency='SEK' rate='9.5223'/>
			<Cube currency='CHF' rate='1.0702'/>
			<Cube currency='NOK' rate='8.9513'/>
			<Cube currency='HRK' rate='7.4213'/>
			<Cube currency='RUB' rate='61.7573'/>
			<Cube currency='TRY' rate='3.9434'/>
			<Cube currency='AUD' rate='1.3968'/>
			<Cube currency='BRL' rate='3.3151'/>
			<Cube currency='CAD' rate='1.4193'/>
			<Cube currency='CNY' rate='7.2953'/>
			<Cube currency='HKD' rate='8.1982'/>
			<Cube currency='IDR' rate='14144.80'/>
			<Cube currency='ILS' rate='3.8879'/>
			<Cube currency='INR' rate='70.4960'/>
			<Cube currency='KRW' rate='1216.36'/>
			<Cube currency='MXN' rate='20.7130'/>
			<Cube currency='MYR' rate='4.7082'/>
			<Cube currency='NZD' rate='1.5219'/>
			<Cube currency='PHP' rate='53.198'/>
			<Cube currency='SGD' rate='1.4947'/>
			<Cube currency='THB' rate='37.236'/>
			<Cube currency='ZAR' rate='13.7908'/>
		</Cube>
	</Cube>
</gesmes:Envelope>"#;

    fn fixture() -> EcbRates {
        parse_ecb_daily(FIXTURE.as_bytes()).expect("fixture parses")
    }

    /// A minimal ECB file around the given Cubes.
    fn doc(cubes: &str) -> String {
        format!("<?xml version='1.0'?><gesmes:Envelope xmlns:gesmes='g'><Cube>{cubes}</Cube></gesmes:Envelope>")
    }

    fn parse(s: &str) -> Result<EcbRates, RatesError> {
        parse_ecb_daily(s.as_bytes())
    }

    #[test]
    fn rates_fixture_parses_31_in_order() {
        let r = fixture();
        assert_eq!(r.len(), 31);
        assert_eq!(r.date(), "2017-03-08");
        // 17 233 days after 1970-01-01, at 15:00 UTC.
        assert_eq!(r.timestamp(), 1_488_985_200_000);
        assert_eq!(r.datetime(), "2017-03-08T15:00:00.000Z");
        assert_eq!(r.rates()[0].currency, "USD");
        assert_eq!(r.rates()[30].currency, "ZAR");
        assert!(r.get("EUR").is_none());
    }

    #[test]
    fn rates_fixture_exact_values() {
        let r = fixture();
        for (code, text, value) in [
            ("USD", "1.0556", 1.0556),
            ("JPY", "120.65", 120.65),
            ("GBP", "0.86753", 0.86753),
            ("HUF", "310.70", 310.7),
            ("IDR", "14144.80", 14144.8),
            ("RUB", "61.7573", 61.7573),
        ] {
            let rate = r.get(code).unwrap();
            assert_eq!(rate.text, text, "{code}");
            assert_eq!(rate.value, value, "{code}");
        }
    }

    #[test]
    fn rates_cross_through_eur() {
        let r = fixture();
        assert_eq!(r.rate("EUR", "USD"), Some(1.0556));
        assert_eq!(r.rate("USD", "EUR"), Some(1.0 / 1.0556));
        assert_eq!(r.rate("USD", "JPY"), Some(120.65 / 1.0556));
        assert_eq!(r.rate("GBP", "USD"), Some(1.0556 / 0.86753));
        assert_eq!(r.rate("EUR", "EUR"), Some(1.0));
        // By hand (decimal arithmetic): 1 USD = 120.65 / 1.0556 JPY = 114.2951875710496...
        assert!((r.rate("USD", "JPY").unwrap() - 114.295_187_571_049_64).abs() < 1e-9);
        assert!((r.rate("GBP", "USD").unwrap() - 1.216_787_892_061_369_6).abs() < 1e-12);

        let mut codes: Vec<&str> = r.rates().iter().map(|x| x.currency.as_str()).collect();
        codes.push(EUR);
        for &a in &codes {
            assert_eq!(r.rate(a, a), Some(1.0), "{a}/{a}");
            for &b in &codes {
                let product = r.rate(a, b).unwrap() * r.rate(b, a).unwrap();
                assert!(
                    (product - 1.0).abs() < 1e-12,
                    "{a}/{b} × {b}/{a} = {product}"
                );
                let via_usd = r.rate(a, "USD").unwrap() * r.rate("USD", b).unwrap();
                assert!((via_usd / r.rate(a, b).unwrap() - 1.0).abs() < 1e-12);
            }
        }
        for (b, q) in [
            ("XXX", "USD"),
            ("USD", "XXX"),
            ("usd", "JPY"),
            ("", "EUR"),
            ("XXX", "XXX"),
        ] {
            assert_eq!(r.rate(b, q), None, "{b}/{q}");
        }
    }

    #[test]
    fn rates_message_fields() {
        let r = fixture();
        let m = r.rate_message("USD", "JPY").unwrap();
        assert_eq!(
            m,
            json!({
                "symbol": "USD/JPY", "base": "USD", "quote": "JPY", "rate": 120.65 / 1.0556,
                "date": "2017-03-08", "timestamp": 1_488_985_200_000i64,
                "datetime": "2017-03-08T15:00:00.000Z", "source": "ecb", "cross": true,
                "info": {"USD": "1.0556", "JPY": "120.65"},
            })
        );
        let m = r.rate_message("EUR", "HUF").unwrap();
        assert_eq!(m["cross"], false);
        assert_eq!(m["rate"], 310.7);
        assert_eq!(m["info"], json!({"HUF": "310.70"}));
        assert_eq!(r.rate_message("HUF", "EUR").unwrap()["cross"], false);
        assert_eq!(r.rate_message("EUR", "EUR").unwrap()["info"], json!({}));
        assert_eq!(r.rate_message("USD", "XXX"), None);
    }

    #[test]
    fn rates_channel_names() {
        assert_eq!(channel("USD", "JPY"), "rates:ecb:USD/JPY");
        assert_eq!(parse_channel("rates:ecb:USD/JPY"), Some(("USD", "JPY")));
        assert_eq!(parse_channel("rates:ecb:USD"), None);
        assert_eq!(parse_channel("rates:ecb:/JPY"), None);
        assert_eq!(parse_channel("trades:USD/JPY"), None);
    }

    #[test]
    fn rates_not_xml_or_truncated() {
        for bad in [
            "hello",
            "{\"USD\": 1.0556}",
            "<a><b></a></b>",
            "<a></a><b></b>",
            "<a x=1/>",
            "<a x='1' x='2'/>",
            "<a x='1'y='2'/>",
            "</a>",
            "<a>< b/></a>",
            "<!DOCTYPE a [<!ENTITY x 'y'>]><a/>",
            "<a/>trailing",
        ] {
            assert!(
                matches!(parse(bad), Err(RatesError::Xml { .. })),
                "{bad:?}: {:?}",
                parse(bad)
            );
        }
        for cut in [
            "",
            "   ",
            "<?xml version='1.0'?>",
            "<a",
            "<a x='1",
            "<a><b/>",
            "<a></a",
            "<a><!-- never closed",
            "<a><!-",
            "<a/",
        ] {
            assert!(
                matches!(parse(cut), Err(RatesError::Truncated { .. })),
                "{cut:?}: {:?}",
                parse(cut)
            );
        }
        let end = FIXTURE.len();
        for len in [end - 1, end - 20, end / 2, 300] {
            assert!(
                matches!(parse(&FIXTURE[..len]), Err(RatesError::Truncated { .. })),
                "prefix {len}"
            );
        }
    }

    #[test]
    fn rates_date_errors() {
        assert_eq!(parse(&doc("")), Err(RatesError::NoDate));
        assert_eq!(parse("<Cube/>"), Err(RatesError::NoDate));
        for date in [
            "2017-02-30",
            "2017-3-8",
            "2017-13-01",
            "2017-00-10",
            "17-03-08",
            "",
            "2017-03-08Z",
        ] {
            let d = doc(&format!(
                "<Cube time='{date}'><Cube currency='USD' rate='1'/></Cube>"
            ));
            assert_eq!(parse(&d), Err(RatesError::BadDate(date.into())), "{date}");
        }
        // Leap days.
        let leap = |date: &str| {
            parse(&doc(&format!(
                "<Cube time='{date}'><Cube currency='USD' rate='1'/></Cube>"
            )))
        };
        assert!(leap("2016-02-29").is_ok());
        assert!(leap("2000-02-29").is_ok());
        assert_eq!(
            leap("1900-02-29"),
            Err(RatesError::BadDate("1900-02-29".into()))
        );
    }

    #[test]
    fn rates_value_errors() {
        let one = |currency: &str, rate: &str| {
            parse(&doc(&format!(
                "<Cube time='2017-03-08'><Cube currency='{currency}' rate='{rate}'/></Cube>"
            )))
        };
        let huge = "9".repeat(400);
        let tiny = format!("0.{}1", "0".repeat(400));
        for rate in [
            "0", "0.0", "-1", "+1", "abc", "1e5", "inf", "NaN", "", " 1.0", "1.", ".5", "1,5",
            "1.2.3", &huge, &tiny,
        ] {
            assert_eq!(
                one("USD", rate),
                Err(RatesError::BadRate {
                    currency: "USD".into(),
                    rate: shown(rate.as_bytes())
                }),
                "{rate:?}"
            );
        }
        for code in ["usd", "US", "USDX", "U$D", "ÜSD", "", "US "] {
            assert_eq!(
                one(code, "1.0"),
                Err(RatesError::BadCurrency(code.into())),
                "{code:?}"
            );
        }
        assert_eq!(
            one("EUR", "1"),
            Err(RatesError::DuplicateCurrency("EUR".into()))
        );
        let twice = doc("<Cube time='2017-03-08'><Cube currency='USD' rate='1.05'/><Cube currency='USD' rate='1.06'/></Cube>");
        assert_eq!(
            parse(&twice),
            Err(RatesError::DuplicateCurrency("USD".into()))
        );
        assert_eq!(
            parse(&doc("<Cube time='2017-03-08'></Cube>")),
            Err(RatesError::Empty)
        );
        assert_eq!(
            parse(&doc("<Cube time='2017-03-08'/>")),
            Err(RatesError::Empty)
        );
        assert!(one("USD", "0.0001").is_ok());
    }

    #[test]
    fn rates_structure_errors() {
        for cubes in [
            "<Cube currency='USD' rate='1'/>",
            "<Cube time='2017-03-08'><Cube currency='USD'/></Cube>",
            "<Cube time='2017-03-08'><Cube rate='1'/></Cube>",
            "<Cube time='2017-03-08' currency='USD' rate='1'/>",
            "<Cube time='2017-03-08'><Cube time='2017-03-07'/></Cube>",
            "<Cube time='2017-03-08'><Cube currency='USD' rate='1'/></Cube><Cube currency='JPY' rate='1'/>",
        ] {
            assert!(matches!(parse(&doc(cubes)), Err(RatesError::Structure(_))), "{cubes}");
        }
    }

    #[test]
    fn rates_first_day_of_a_history_file() {
        let history = doc(
            "<Cube time='2017-03-08'><Cube currency='USD' rate='1.0556'/></Cube>\
             <Cube time='2017-03-07'><Cube currency='USD' rate='bad'/><Cube currency='JPY' rate='120'/></Cube>",
        );
        let r = parse(&history).unwrap();
        assert_eq!(r.date(), "2017-03-08");
        assert_eq!(r.len(), 1);
        assert_eq!(r.rate("EUR", "USD"), Some(1.0556));
    }

    #[test]
    fn rates_xml_variants_accepted() {
        let r = parse(
            "\u{feff}<?xml version=\"1.0\"?>\n<!-- c --><e:Envelope xmlns:e=\"x\">\r\n\
             <e:Cube><![CDATA[<ignored>]]><Cube  time = \"2017-03-08\" >text<Cube currency=\"USD\" rate=\"1.0556\" ></Cube>\
             </Cube></e:Cube></e:Envelope >\n",
        )
        .unwrap();
        assert_eq!(r.rate("EUR", "USD"), Some(1.0556));
    }

    #[test]
    fn rates_new_validates_like_the_parser() {
        let r = EcbRates::new("2017-03-08", [("USD", "1.0556"), ("JPY", "120.65")]).unwrap();
        assert_eq!(r.rate("USD", "JPY"), fixture().rate("USD", "JPY"));
        assert_eq!(
            EcbRates::new("2017-03-08", [("USD", "1"), ("USD", "2")]),
            Err(RatesError::DuplicateCurrency("USD".into()))
        );
        assert_eq!(EcbRates::new("2017-03-08", []), Err(RatesError::Empty));
        assert_eq!(
            EcbRates::new("8 March", [("USD", "1")]),
            Err(RatesError::BadDate("8 March".into()))
        );
        let moved = r.with_date("2024-02-29").unwrap();
        assert_eq!(moved.datetime(), "2024-02-29T15:00:00.000Z");
        assert_eq!(moved.timestamp(), 1_709_218_800_000);
    }

    #[test]
    fn rates_never_panic() {
        let bytes = FIXTURE.as_bytes();
        let closed = FIXTURE.rfind("</gesmes:Envelope>").unwrap() + "</gesmes:Envelope>".len();
        for len in 0..=bytes.len() {
            let result = parse_ecb_daily(&bytes[..len]);
            assert_eq!(
                result.is_ok(),
                len >= closed,
                "prefix of {len} bytes: {result:?}"
            );
        }
        for i in 0..bytes.len() {
            for b in [
                0u8, b'<', b'>', b'/', b'\'', b'"', b'=', b' ', b'A', b'0', b'.', 0xFF,
            ] {
                let mut m = bytes.to_vec();
                m[i] = b;
                let _ = parse_ecb_daily(&m);
                m.remove(i);
                let _ = parse_ecb_daily(&m);
            }
        }
        // Random multi-byte mutations and random bytes, from a fixed seed.
        let mut rng = SimulatedRates::new(fixture(), 7);
        for _ in 0..2_000 {
            let mut m = bytes.to_vec();
            for _ in 0..1 + rng.next_u64() % 8 {
                let at = (rng.next_u64() % m.len() as u64) as usize;
                m[at] = rng.next_u64() as u8;
            }
            let _ = parse_ecb_daily(&m);
            let noise: Vec<u8> = (0..rng.next_u64() % 64)
                .map(|_| b"<>/='\"Cube ?!-x"[(rng.next_u64() % 15) as usize])
                .collect();
            let _ = parse_ecb_daily(&noise);
        }
        // Deep nesting is scanned without recursion.
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        assert_eq!(parse(&deep), Err(RatesError::NoDate));
    }

    #[test]
    fn rates_simulation_bounded_and_deterministic() {
        let seed = fixture();
        let mut sim = SimulatedRates::new(seed.clone(), 42);
        let mut previous = seed.clone();
        // Published texts are rounded to 5 significant digits: up to 5e-5 relative each way.
        let rounding = 1e-4;
        for _ in 0..10_000 {
            let next = sim.step();
            assert_eq!(next.len(), 31);
            assert_eq!(next.date(), "2017-03-08");
            for ((now, before), origin) in
                next.rates().iter().zip(previous.rates()).zip(seed.rates())
            {
                assert_eq!(now.currency, origin.currency);
                assert!(now.value > 0.0 && now.value.is_finite());
                assert_eq!(now.text.parse::<f64>().unwrap(), now.value);
                assert!(
                    (now.value / before.value - 1.0).abs() <= SIM_STEP + rounding,
                    "{} step",
                    now.currency
                );
                assert!(
                    (now.value / origin.value - 1.0).abs() <= SIM_BAND + rounding,
                    "{} band",
                    now.currency
                );
            }
            previous = next;
        }
        // It moved.
        assert_ne!(previous.rates(), seed.rates());

        let run = |s: u64| {
            let mut sim = SimulatedRates::new(seed.clone(), s);
            (0..100).map(|_| sim.step()).last().unwrap()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
