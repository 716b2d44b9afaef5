//! A Kraken order book kept in sync with the feed and proven so by Kraken's CRC32 checksums.
//!
//! Kraken (WebSocket v1 and v2) sends a snapshot, then updates: each level carries its absolute
//! quantity, quantity 0 removes the level, and the client truncates each side to the subscribed
//! depth after every update. With the updates (v1) or with the snapshot and every update (v2)
//! comes a checksum of the book as it must now be: CRC32 over the top 10 asks (price ascending),
//! then the top 10 bids (price descending), each level written as its price then its quantity
//! *as the exchange wrote them*, with the `.` removed and leading zeros stripped
//! (<https://docs.kraken.com/websockets/#book-checksum>,
//! <https://docs.kraken.com/api/docs/websocket-v2/book>).
//!
//! That is why every level keeps its raw text (a [`DecimalText`], which also keys the book by
//! exact value): `0.10000000` read as a float and written back is `0.1`, and the checksum no
//! longer matches. A mismatch means the book has drifted (a lost or misapplied update): the book
//! refuses further updates until a new snapshot, and the adapter resubscribes.
//!
//! v1 writes its numbers as strings with the digits its checksum takes (`"56218.30000"`). v2
//! writes JSON numbers; Kraken's v2 guide has them "pushed onto the wire containing full
//! precision" (`0.10000000`), but a JSON number's text is not bound to that, so a v2 book
//! ([`KrakenBook::with_precision`]) writes each number with the pair's decimals, as Kraken's FIX
//! checksum guide spells out (`price_precision`, `qty_precision` of the `instrument` channel,
//! which are `pair_decimals` and `lot_decimals` of `AssetPairs`): `0.1` at 8 decimals is
//! `0.10000000`, and a text that already has them is unchanged. The two versions therefore do
//! not checksum the same digits for one book: v1's texts often have other decimals than the
//! pair's (`56218.30000` for a pair of 1 price decimal), so a v1 checksum is no v2 checksum.

use std::collections::BTreeMap;

use rpc_crypto_proto::ccxt::{OrderBook, Timestamp};

use crate::adapters::decimal::DecimalText;

/// Levels per side that the checksum covers.
const CHECKSUM_LEVELS: usize = 10;

/// Text that is not a plain non-negative decimal (digits, optionally a `.` and more digits, at
/// most [`MAX_LEN`](crate::adapters::decimal::MAX_LEN) characters). Exponents (`1e-8`) are
/// refused: the checksum's rule has no meaning for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a plain decimal number: {0:?}")]
pub struct BadNumber(pub String);

impl BadNumber {
    fn new(text: &str) -> Self {
        Self(text.chars().take(64).collect())
    }
}

/// A price or quantity exactly as Kraken wrote it (`0.000022900`, `45283.5`), kept for the
/// checksum; [`BadNumber`] when it is not a plain non-negative decimal.
pub fn parse_number(text: &str) -> Result<DecimalText, BadNumber> {
    DecimalText::parse(text).ok_or_else(|| BadNumber::new(text))
}

/// What the checksum takes of a number: its text's digits without the `.` and without leading
/// zeros (`0.10000000` → `10000000`). With `decimals` (v2), the number is first written with
/// that many decimals: trailing zeros added or cut down to them (`0.1` at 8 → `10000000`); a
/// digit beyond them that is not zero is kept, since no rounding can be the exchange's.
fn checksum_digits(number: &DecimalText, decimals: Option<u32>) -> impl Iterator<Item = u8> + '_ {
    let text = number.as_str();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let (frac, pad) = match decimals {
        None => (frac, 0),
        Some(decimals) => {
            let decimals = decimals as usize;
            // The significant digits always stay; zeros beyond `decimals` go.
            let significant = frac.trim_end_matches('0').len();
            let kept = significant.max(decimals).min(frac.len());
            (&frac[..kept], decimals.saturating_sub(kept))
        }
    };
    int.bytes()
        .chain(frac.bytes())
        .chain(std::iter::repeat(b'0').take(pad))
        .skip_while(|&b| b == b'0')
}

/// CRC-32 (IEEE 802.3, the zlib/PNG one Kraken uses), table-driven: the checksum covers only
/// 20 levels, so a byte-wise table is plenty and needs no dependency.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// A running CRC-32.
#[derive(Debug, Clone, Copy)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// The CRC of nothing yet.
    pub const fn new() -> Self {
        Self(0xFFFF_FFFF)
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: impl IntoIterator<Item = u8>) {
        for b in bytes {
            self.0 = CRC_TABLE[((self.0 ^ u32::from(b)) & 0xFF) as usize] ^ (self.0 >> 8);
        }
    }

    /// The CRC of everything added.
    pub const fn finish(self) -> u32 {
        !self.0
    }
}

/// A level as a message sets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelUpdate {
    /// The price as written.
    pub price: DecimalText,
    /// The new absolute quantity as written; zero removes the level.
    pub qty: DecimalText,
    /// When the level last changed (v1: the level's own timestamp), in UTC milliseconds.
    pub timestamp_ms: Option<i64>,
    /// v1's `"r"` flag: the level is sent again because it came back within the subscribed
    /// depth, not because it changed. It is applied like any other level.
    pub republish: bool,
}

/// A snapshot or an update of one book, parsed from either protocol version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookDelta {
    /// Ask levels, in message order.
    pub asks: Vec<LevelUpdate>,
    /// Bid levels, in message order.
    pub bids: Vec<LevelUpdate>,
    /// The exchange's checksum of the book after this message, if it sent one.
    pub checksum: Option<u32>,
    /// The message's own timestamp (v2), in UTC milliseconds.
    pub timestamp_ms: Option<i64>,
}

impl BookDelta {
    /// The latest timestamp the message carries: its own, else its levels' (ccxt's kraken v1
    /// handler takes the largest level timestamp of the message).
    fn latest_timestamp(&self) -> Option<i64> {
        self.timestamp_ms.or_else(|| {
            self.asks
                .iter()
                .chain(&self.bids)
                .filter_map(|level| level.timestamp_ms)
                .max()
        })
    }
}

/// Why the book is not in sync.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// The book after the message differs from the exchange's: resubscribe.
    #[error("book checksum mismatch: exchange sent {expected}, book gives {computed}")]
    ChecksumMismatch {
        /// The exchange's checksum.
        expected: u32,
        /// Ours.
        computed: u32,
    },
    /// An update arrived before a snapshot, or after the book went out of sync.
    #[error("book update without a snapshot in sync")]
    NotSynced,
}

/// A price level in the book: the latest raw text for the checksum, and the floats ccxt
/// publishes (read once, when the level is set).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// The price as written.
    pub price: DecimalText,
    /// The quantity as written.
    pub qty: DecimalText,
    price_value: f64,
    qty_value: f64,
}

impl Level {
    /// `[price, amount]` as ccxt publishes it.
    pub fn as_ccxt(&self) -> [f64; 2] {
        [self.price_value, self.qty_value]
    }
}

/// One side, keyed by the price's exact value (`45281.0` and `45281` are one level), prices
/// ascending in the map (asks read it forwards, bids backwards).
type Side = BTreeMap<DecimalText, Level>;

/// One market's book.
#[derive(Debug, Clone)]
pub struct KrakenBook {
    symbol: String,
    depth: usize,
    bids: Side,
    asks: Side,
    timestamp_ms: Option<i64>,
    synced: bool,
    /// v2: the pair's price and quantity decimals, with which the checksum writes each number.
    precision: Option<(u32, u32)>,
}

impl KrakenBook {
    /// An empty book of `symbol` (ccxt form) subscribed at `depth` levels per side (v1:
    /// the number in the channel name `book-1000`). It takes updates once a snapshot is applied.
    pub fn new(symbol: impl Into<String>, depth: usize) -> Self {
        Self {
            symbol: symbol.into(),
            depth: depth.max(1),
            bids: Side::new(),
            asks: Side::new(),
            timestamp_ms: None,
            synced: false,
            precision: None,
        }
    }

    /// The book checksummed as WebSocket v2 does: each price written with `price_decimals`,
    /// each quantity with `qty_decimals` (the pair's `pair_decimals` and `lot_decimals`).
    pub fn with_precision(mut self, price_decimals: u32, qty_decimals: u32) -> Self {
        self.precision = Some((price_decimals, qty_decimals));
        self
    }

    /// The ccxt symbol.
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    /// Levels kept per side.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Whether a snapshot was applied and every checksum since matched.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Replaces the book with a snapshot, then checks its checksum if it has one (v2).
    pub fn apply_snapshot(&mut self, snapshot: &BookDelta) -> Result<(), BookError> {
        self.bids.clear();
        self.asks.clear();
        self.timestamp_ms = None;
        self.synced = true;
        self.apply(snapshot)
    }

    /// Applies an update, truncates to the depth, then checks its checksum if it has one.
    pub fn apply_update(&mut self, update: &BookDelta) -> Result<(), BookError> {
        if !self.synced {
            return Err(BookError::NotSynced);
        }
        self.apply(update)
    }

    fn apply(&mut self, delta: &BookDelta) -> Result<(), BookError> {
        for level in &delta.asks {
            set(&mut self.asks, level);
        }
        for level in &delta.bids {
            set(&mut self.bids, level);
        }
        // Keep the best `depth`: the lowest asks and the highest bids.
        while self.asks.len() > self.depth {
            self.asks.pop_last();
        }
        while self.bids.len() > self.depth {
            self.bids.pop_first();
        }
        if let Some(ms) = delta.latest_timestamp() {
            self.timestamp_ms = Some(ms);
        }
        if let Some(expected) = delta.checksum {
            self.verify(expected)?;
        }
        Ok(())
    }

    /// Compares the book with the exchange's checksum; on a mismatch the book stops taking
    /// updates until the next snapshot.
    pub fn verify(&mut self, expected: u32) -> Result<(), BookError> {
        let computed = self.checksum();
        if computed == expected {
            Ok(())
        } else {
            self.synced = false;
            Err(BookError::ChecksumMismatch { expected, computed })
        }
    }

    /// Kraken's checksum of the book as it is.
    pub fn checksum(&self) -> u32 {
        let mut crc = Crc32::new();
        let asks = self.asks.values().take(CHECKSUM_LEVELS);
        let bids = self.bids.values().rev().take(CHECKSUM_LEVELS);
        let (price_decimals, qty_decimals) = match self.precision {
            Some((price, qty)) => (Some(price), Some(qty)),
            None => (None, None),
        };
        for level in asks.chain(bids) {
            crc.update(checksum_digits(&level.price, price_decimals));
            crc.update(checksum_digits(&level.qty, qty_decimals));
        }
        crc.finish()
    }

    /// Bids, best (highest) first.
    pub fn bids(&self) -> impl Iterator<Item = &Level> {
        self.bids.values().rev()
    }

    /// Asks, best (lowest) first.
    pub fn asks(&self) -> impl Iterator<Item = &Level> {
        self.asks.values()
    }

    /// The latest level timestamp, in UTC milliseconds.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.timestamp_ms
    }

    /// The top `limit` levels per side as a ccxt order book (`nonce` is `null`: Kraken's book
    /// has no sequence number, the checksum does that job).
    pub fn to_ccxt(&self, limit: usize) -> OrderBook {
        let bids = self.bids.values().rev().take(limit);
        let asks = self.asks.values().take(limit);
        OrderBook {
            symbol: self.symbol.clone(),
            bids: bids.map(Level::as_ccxt).collect(),
            asks: asks.map(Level::as_ccxt).collect(),
            timestamp: Timestamp(self.timestamp_ms),
            nonce: None,
        }
    }
}

/// Sets one level of a side: replaced (with the latest text), inserted, or removed at zero.
fn set(side: &mut Side, level: &LevelUpdate) {
    if level.qty.is_zero() {
        side.remove(&level.price);
    } else {
        side.insert(
            level.price,
            Level {
                price: level.price,
                qty: level.qty,
                price_value: level.price.to_f64(),
                qty_value: level.qty.to_f64(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::decimal::MAX_LEN;

    fn level(price: &str, qty: &str) -> LevelUpdate {
        LevelUpdate {
            price: parse_number(price).unwrap(),
            qty: parse_number(qty).unwrap(),
            timestamp_ms: None,
            republish: false,
        }
    }

    #[test]
    fn crc32_check_value() {
        let mut crc = Crc32::new();
        crc.update(*b"123456789");
        assert_eq!(crc.finish(), 0xCBF4_3926);
    }

    #[test]
    fn raw_numbers_keep_their_text() {
        // The text itself is the shared `DecimalText`'s (tested there); what Kraken adds is the
        // checksum's digits of that text, and its error for what is no plain decimal.
        let n = parse_number("0.10000000").unwrap();
        assert_eq!(n.as_str(), "0.10000000");
        assert_eq!(checksum_digits(&n, None).collect::<Vec<_>>(), b"10000000");
        assert_eq!(
            checksum_digits(&parse_number("0.000022900").unwrap(), None).collect::<Vec<_>>(),
            b"22900"
        );
        assert!(parse_number("0.00000000").unwrap().is_zero());
        for bad in ["", "-1", "1e-8", "1 ", &"1".repeat(MAX_LEN + 1)] {
            assert_eq!(parse_number(bad), Err(BadNumber::new(bad)), "{bad:?}");
        }
    }

    #[test]
    fn v2_numbers_are_written_with_the_pairs_decimals() {
        let digits = |text: &str, decimals: u32| -> String {
            let number = parse_number(text).unwrap();
            String::from_utf8(checksum_digits(&number, Some(decimals)).collect()).unwrap()
        };
        // Padded to the decimals, as Kraken's `0.10000000`.
        assert_eq!(digits("0.1", 8), "10000000");
        assert_eq!(digits("45283.5", 1), "452835");
        assert_eq!(digits("45281", 1), "452810");
        assert_eq!(digits("1", 8), "100000000");
        // Already at them: unchanged; extra zeros cut; significant digits never dropped.
        assert_eq!(digits("0.00100000", 8), "100000");
        assert_eq!(digits("56218.30000", 1), "562183");
        assert_eq!(digits("0.000022900", 8), "2290");
        assert_eq!(digits("0.123", 2), "123");
    }

    #[test]
    fn updates_remove_replace_and_truncate() {
        let mut book = KrakenBook::new("BTC/USD", 2);
        assert_eq!(
            book.apply_update(&BookDelta::default()),
            Err(BookError::NotSynced)
        );
        let snapshot = BookDelta {
            asks: vec![level("10.0", "1"), level("11.0", "2"), level("12.0", "3")],
            bids: vec![level("9.0", "1"), level("8.0", "2")],
            ..BookDelta::default()
        };
        book.apply_snapshot(&snapshot).unwrap();
        // Truncated to depth 2: the worst ask is gone.
        assert_eq!(book.to_ccxt(10).asks, [[10.0, 1.0], [11.0, 2.0]]);
        let update = BookDelta {
            asks: vec![level("10.0", "0.000"), level("10.5", "5")],
            bids: vec![level("9.5", "4"), level("9.0", "1.5")],
            ..BookDelta::default()
        };
        book.apply_update(&update).unwrap();
        let published = book.to_ccxt(10);
        assert_eq!(published.asks, [[10.5, 5.0], [11.0, 2.0]]);
        assert_eq!(published.bids, [[9.5, 4.0], [9.0, 1.5]]);
        assert_eq!(book.to_ccxt(1).bids, [[9.5, 4.0]]);
    }

    #[test]
    fn checksum_uses_the_text_as_written() {
        let mut book = KrakenBook::new("BTC/USD", 10);
        let snapshot = BookDelta {
            asks: vec![level("0.05005", "0.00000500")],
            bids: vec![level("0.05000", "0.00001000")],
            ..BookDelta::default()
        };
        book.apply_snapshot(&snapshot).unwrap();
        let mut crc = Crc32::new();
        crc.update(*b"5005500");
        crc.update(*b"50001000");
        assert_eq!(book.checksum(), crc.finish());
        let expected = book.checksum();
        assert_eq!(book.verify(expected), Ok(()));
        assert_eq!(
            book.verify(expected ^ 1),
            Err(BookError::ChecksumMismatch {
                expected: expected ^ 1,
                computed: expected
            })
        );
        assert!(!book.is_synced());
    }
}
