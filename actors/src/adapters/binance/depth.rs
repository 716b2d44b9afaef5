//! Binance's diff-depth stream kept in sync with a REST snapshot ("How to manage a local order
//! book correctly", Binance spot WebSocket streams docs), as a pure state machine per symbol.
//!
//! The procedure, exactly:
//! 1. buffer the `depthUpdate` events of the stream (`U` first update id, `u` last);
//! 2. get a REST snapshot (`GET /api/v3/depth`: `lastUpdateId`, bids, asks);
//! 3. drop the buffered events with `u` ≤ `lastUpdateId`;
//! 4. the first event applied must have `U` ≤ `lastUpdateId`+1 ≤ `u`;
//! 5. afterwards each event's `U` must be the previous event's `u`+1;
//! 6. quantities are absolute; quantity 0 removes the level.
//!
//! When 4 or 5 fails the book is out of sync: [`DepthSync`] says so
//! ([`SyncError::OutOfSync`]), stops publishing, and buffers again until the adapter brings a
//! new snapshot. Events already applied are not applied twice: an event whose `u` is at or
//! below the last applied `u` is a duplicate, counted and ignored. An event that arrives after
//! a later one is counted as a reordering. While buffering, events are kept in update-id order:
//! nothing is applied yet, so a reordering in transit costs nothing there.
//!
//! Levels keep the exchange's decimal text and are keyed by [`DecimalText`], which orders by
//! exact value, so the published book is exactly the exchange's, whatever the digits.

use std::collections::{BTreeMap, VecDeque};

use rpc_crypto_proto::ccxt::{OrderBook, Timestamp};
use serde::Deserialize;

use crate::adapters::decimal::DecimalText;

/// Events buffered at most while waiting for a snapshot (about 100 s of a busy `@100ms`
/// stream). Past it the oldest are dropped: they are older than any snapshot still to come.
pub const DEFAULT_BUFFER_LIMIT: usize = 1000;

/// A price level: price and quantity as Binance wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// Price.
    pub price: DecimalText,
    /// Absolute quantity at the price; zero removes the level.
    pub amount: DecimalText,
}

/// Why a depth message or snapshot was refused (nothing of it was applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepthError {
    /// Not JSON of the expected shape.
    #[error("malformed depth message: {0}")]
    Json(String),
    /// A price or quantity that is not a plain non-negative decimal.
    #[error("malformed decimal {0:?} in depth message")]
    Decimal(String),
    /// `U` after `u`.
    #[error("depth update range {first}..{last} is reversed")]
    Range {
        /// `U`.
        first: u64,
        /// `u`.
        last: u64,
    },
}

/// The wire form of a level: `["0.35130000", "6195.00000000"]`.
type WireLevel<'a> = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>);

fn levels(wire: Vec<WireLevel<'_>>) -> Result<Vec<Level>, DepthError> {
    wire.into_iter()
        .map(|(price, amount)| {
            let parse = |text: &str| {
                DecimalText::parse(text)
                    .ok_or_else(|| DepthError::Decimal(text.chars().take(64).collect()))
            };
            Ok(Level {
                price: parse(&price)?,
                amount: parse(&amount)?,
            })
        })
        .collect()
}

/// One `depthUpdate` event of the `<symbol>@depth` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepthUpdate {
    /// Binance's market id (`s`, `NKNUSDT`).
    pub symbol_id: String,
    /// Event time (`E`), UTC ms.
    pub event_time: Option<i64>,
    /// First update id in the event (`U`).
    pub first_id: u64,
    /// Last update id in the event (`u`).
    pub last_id: u64,
    /// Bid levels to set (`b`).
    pub bids: Vec<Level>,
    /// Ask levels to set (`a`).
    pub asks: Vec<Level>,
}

#[derive(Deserialize)]
struct WireUpdate<'a> {
    #[serde(rename = "s", borrow)]
    symbol: std::borrow::Cow<'a, str>,
    #[serde(rename = "E")]
    event_time: Option<i64>,
    #[serde(rename = "U")]
    first: u64,
    #[serde(rename = "u")]
    last: u64,
    #[serde(rename = "b", borrow)]
    bids: Vec<WireLevel<'a>>,
    #[serde(rename = "a", borrow)]
    asks: Vec<WireLevel<'a>>,
}

impl DepthUpdate {
    /// Reads the `data` object of a depth stream message.
    pub fn parse(data: &str) -> Result<Self, DepthError> {
        let wire: WireUpdate<'_> =
            serde_json::from_str(data).map_err(|e| DepthError::Json(e.to_string()))?;
        if wire.first > wire.last {
            return Err(DepthError::Range {
                first: wire.first,
                last: wire.last,
            });
        }
        Ok(Self {
            symbol_id: wire.symbol.into_owned(),
            event_time: wire.event_time,
            first_id: wire.first,
            last_id: wire.last,
            bids: levels(wire.bids)?,
            asks: levels(wire.asks)?,
        })
    }
}

/// A REST depth snapshot (`GET /api/v3/depth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepthSnapshot {
    /// The last update id the snapshot includes.
    pub last_update_id: u64,
    /// Bid levels (any order).
    pub bids: Vec<Level>,
    /// Ask levels (any order).
    pub asks: Vec<Level>,
}

#[derive(Deserialize)]
struct WireSnapshot<'a> {
    #[serde(rename = "lastUpdateId")]
    last_update_id: u64,
    #[serde(borrow)]
    bids: Vec<WireLevel<'a>>,
    #[serde(borrow)]
    asks: Vec<WireLevel<'a>>,
}

impl DepthSnapshot {
    /// Reads the response body of `GET /api/v3/depth`.
    pub fn parse(body: &str) -> Result<Self, DepthError> {
        let wire: WireSnapshot<'_> =
            serde_json::from_str(body).map_err(|e| DepthError::Json(e.to_string()))?;
        Ok(Self {
            last_update_id: wire.last_update_id,
            bids: levels(wire.bids)?,
            asks: levels(wire.asks)?,
        })
    }
}

/// The book lost events: it must be rebuilt from a new snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// An event's `U` is not the update id that had to come next (`expected`): events were
    /// lost, reordered, or the snapshot is older than the buffered events.
    #[error("order book out of sync: expected update {expected}, got {got}")]
    OutOfSync {
        /// The update id the next event had to cover (previous `u`+1, or `lastUpdateId`+1).
        expected: u64,
        /// The `U` of the event that came instead.
        got: u64,
    },
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// No snapshot yet: kept for when it comes.
    Buffered,
    /// Older than the snapshot (`u` ≤ `lastUpdateId`), before the first applied event: dropped,
    /// as the procedure says.
    Dropped,
    /// Already applied (`u` ≤ the last applied `u`): ignored.
    Duplicate,
    /// Applied to the book.
    Applied,
}

/// What happened to a symbol's book so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Snapshots applied.
    pub snapshots: u64,
    /// Events applied to the book.
    pub applied: u64,
    /// Events older than their snapshot, dropped.
    pub dropped: u64,
    /// Events already applied, ignored.
    pub duplicates: u64,
    /// Times the book went out of sync ([`SyncError::OutOfSync`]).
    pub gaps: u64,
    /// Events that arrived after an event with a later `u`.
    pub reorders: u64,
    /// Buffered events discarded because the buffer was full.
    pub overflowed: u64,
    /// `(U, u)` of the first event applied after the latest snapshot.
    pub first_applied: Option<(u64, u64)>,
}

/// Where the book stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No valid book: buffering until a snapshot.
    Buffering,
    /// The snapshot is applied; the next event must bridge it (`U` ≤ id+1 ≤ `u`).
    AwaitingFirst,
    /// In sync: the next event must start at the last `u`+1.
    Live,
}

/// One symbol's order book, kept in sync by Binance's procedure (see the module doc).
#[derive(Debug, Clone)]
pub struct DepthSync {
    symbol: String,
    state: State,
    /// Price → quantity; bids are read from the highest price.
    bids: BTreeMap<DecimalText, DecimalText>,
    asks: BTreeMap<DecimalText, DecimalText>,
    /// `lastUpdateId` of the snapshot, then `u` of the last applied event.
    last_id: u64,
    /// `E` of the last applied event (ccxt's book timestamp).
    timestamp: Option<i64>,
    buffer: VecDeque<DepthUpdate>,
    buffer_limit: usize,
    /// Highest `u` received, to notice events that come after later ones.
    highest_seen: Option<u64>,
    stats: SyncStats,
}

impl DepthSync {
    /// An empty book for `symbol` (the ccxt symbol it publishes under), buffering.
    pub fn new(symbol: impl Into<String>) -> Self {
        Self::with_buffer_limit(symbol, DEFAULT_BUFFER_LIMIT)
    }

    /// As [`Self::new`], buffering at most `limit` events (at least one).
    pub fn with_buffer_limit(symbol: impl Into<String>, limit: usize) -> Self {
        Self {
            symbol: symbol.into(),
            state: State::Buffering,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            last_id: 0,
            timestamp: None,
            buffer: VecDeque::new(),
            buffer_limit: limit.max(1),
            highest_seen: None,
            stats: SyncStats::default(),
        }
    }

    /// The ccxt symbol.
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    /// Whether the book is valid (a snapshot is applied and no event was lost since).
    pub fn is_synced(&self) -> bool {
        self.state != State::Buffering
    }

    /// The update id the book stands at: the last applied `u`, or the snapshot's id.
    pub fn nonce(&self) -> Option<u64> {
        self.is_synced().then_some(self.last_id)
    }

    /// Counters so far.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// Events waiting for a snapshot.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Feeds one stream event. On [`SyncError::OutOfSync`] the book is invalid until
    /// [`Self::apply_snapshot`]; the event that revealed the gap is kept for that snapshot.
    pub fn on_update(&mut self, update: DepthUpdate) -> Result<Applied, SyncError> {
        // While live, and while buffering after sync was lost, the book has held everything up
        // to `last_id`: such an event brings nothing new. (Right after a snapshot the
        // procedure calls it "dropped" instead: see `step`.)
        if self.state != State::AwaitingFirst
            && self.stats.snapshots > 0
            && update.last_id <= self.last_id
        {
            self.stats.duplicates += 1;
            return Ok(Applied::Duplicate);
        }
        if self.highest_seen.is_some_and(|seen| update.last_id < seen) {
            self.stats.reorders += 1;
        }
        self.highest_seen = Some(self.highest_seen.unwrap_or(0).max(update.last_id));
        if self.state == State::Buffering {
            self.buffer_update(update);
            return Ok(Applied::Buffered);
        }
        self.step(update)
    }

    /// Buffers in update-id order: nothing is applied yet, so events reordered in transit
    /// while waiting for a snapshot are still usable once it comes.
    fn buffer_update(&mut self, update: DepthUpdate) {
        if self.buffer.len() >= self.buffer_limit {
            self.buffer.pop_front();
            self.stats.overflowed += 1;
        }
        let at = self
            .buffer
            .iter()
            .rposition(|b| b.first_id <= update.first_id)
            .map_or(0, |i| i + 1);
        self.buffer.insert(at, update);
    }

    /// One event against a valid book (states `AwaitingFirst` and `Live`).
    fn step(&mut self, update: DepthUpdate) -> Result<Applied, SyncError> {
        // Saturating: a hostile `u` of 2^64-1 must not overflow (nothing can follow it).
        let next = self.last_id.saturating_add(1);
        match self.state {
            State::AwaitingFirst if update.last_id <= self.last_id => {
                self.stats.dropped += 1;
                return Ok(Applied::Dropped);
            }
            State::AwaitingFirst if update.first_id <= next => {}
            State::Live if update.last_id <= self.last_id => {
                self.stats.duplicates += 1;
                return Ok(Applied::Duplicate);
            }
            State::Live if update.first_id == next => {}
            _ => {
                let got = update.first_id;
                self.lose_sync(update);
                return Err(SyncError::OutOfSync {
                    expected: next,
                    got,
                });
            }
        }
        if self.state == State::AwaitingFirst {
            self.stats.first_applied = Some((update.first_id, update.last_id));
        }
        Self::set_levels(&mut self.bids, update.bids);
        Self::set_levels(&mut self.asks, update.asks);
        self.last_id = update.last_id;
        self.timestamp = update.event_time.or(self.timestamp);
        self.state = State::Live;
        self.stats.applied += 1;
        Ok(Applied::Applied)
    }

    fn lose_sync(&mut self, update: DepthUpdate) {
        self.stats.gaps += 1;
        self.state = State::Buffering;
        self.buffer.clear();
        self.buffer.push_back(update);
    }

    fn set_levels(side: &mut BTreeMap<DecimalText, DecimalText>, levels: Vec<Level>) {
        for Level { price, amount } in levels {
            if amount.is_zero() {
                // Removing a level the book does not hold happens and is normal (Binance docs).
                side.remove(&price);
            } else {
                side.insert(price, amount);
            }
        }
    }

    /// Sets the book to a REST snapshot and applies the buffered events by the procedure:
    /// those with `u` ≤ `lastUpdateId` are dropped, the first applied must bridge
    /// `lastUpdateId`+1, the rest must follow on.
    ///
    /// On [`SyncError::OutOfSync`] (the snapshot is older than the buffered events, or they
    /// have a gap) the book stays invalid and the events from the failing one on stay
    /// buffered for the next snapshot.
    pub fn apply_snapshot(&mut self, snapshot: DepthSnapshot) -> Result<(), SyncError> {
        self.stats.snapshots += 1;
        self.stats.first_applied = None;
        self.bids.clear();
        self.asks.clear();
        Self::set_levels(&mut self.bids, snapshot.bids);
        Self::set_levels(&mut self.asks, snapshot.asks);
        self.last_id = snapshot.last_update_id;
        self.timestamp = None;
        self.state = State::AwaitingFirst;
        let buffered = std::mem::take(&mut self.buffer);
        let mut pending = buffered.into_iter();
        while let Some(update) = pending.next() {
            if let Err(error) = self.step(update) {
                // `lose_sync` kept the failing event; the ones after it wait with it.
                self.buffer.extend(pending);
                return Err(error);
            }
        }
        Ok(())
    }

    /// The book as ccxt publishes it: the best `depth` levels per side, `nonce` the last
    /// applied `u`, `timestamp` the last applied event's time. `None` while not in sync.
    pub fn order_book(&self, depth: usize) -> Option<OrderBook> {
        if !self.is_synced() {
            return None;
        }
        let level =
            |(price, amount): (&DecimalText, &DecimalText)| [price.to_f64(), amount.to_f64()];
        Some(OrderBook {
            symbol: self.symbol.clone(),
            bids: self.bids.iter().rev().take(depth).map(level).collect(),
            asks: self.asks.iter().take(depth).map(level).collect(),
            timestamp: Timestamp(self.timestamp),
            nonce: Some(self.last_id),
        })
    }

    /// The whole book in the REST snapshot's form (`lastUpdateId` = the nonce), best levels
    /// first: to seed another book, or to compare two exactly. `None` while not in sync.
    pub fn snapshot(&self) -> Option<DepthSnapshot> {
        if !self.is_synced() {
            return None;
        }
        let level = |(&price, &amount): (&DecimalText, &DecimalText)| Level { price, amount };
        Some(DepthSnapshot {
            last_update_id: self.last_id,
            bids: self.bids.iter().rev().map(level).collect(),
            asks: self.asks.iter().map(level).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(price: &str, amount: &str) -> Level {
        Level {
            price: DecimalText::parse(price).unwrap(),
            amount: DecimalText::parse(amount).unwrap(),
        }
    }

    fn update(first: u64, last: u64, bids: &[(&str, &str)]) -> DepthUpdate {
        DepthUpdate {
            symbol_id: "XY".into(),
            event_time: i64::try_from(last).ok(),
            first_id: first,
            last_id: last,
            bids: bids.iter().map(|(p, a)| level(p, a)).collect(),
            asks: vec![],
        }
    }

    fn snapshot(id: u64) -> DepthSnapshot {
        DepthSnapshot {
            last_update_id: id,
            bids: vec![level("1.0", "5"), level("0.9", "1")],
            asks: vec![level("1.1", "2")],
        }
    }

    #[test]
    fn bridges_and_follows() {
        let mut sync = DepthSync::new("X/Y");
        assert_eq!(sync.on_update(update(8, 10, &[])), Ok(Applied::Buffered));
        assert_eq!(
            sync.on_update(update(11, 12, &[("1.0", "0")])),
            Ok(Applied::Buffered)
        );
        assert!(sync.order_book(10).is_none());
        sync.apply_snapshot(snapshot(11)).unwrap();
        let stats = sync.stats();
        assert_eq!((stats.dropped, stats.applied), (1, 1));
        assert_eq!(stats.first_applied, Some((11, 12)));
        let book = sync.order_book(10).unwrap();
        assert_eq!(book.bids, vec![[0.9, 1.0]]);
        assert_eq!(book.nonce, Some(12));
        assert_eq!(
            sync.on_update(update(13, 13, &[("0.95", "3")])),
            Ok(Applied::Applied)
        );
        assert_eq!(sync.order_book(1).unwrap().bids, vec![[0.95, 3.0]]);
        assert_eq!(sync.on_update(update(13, 13, &[])), Ok(Applied::Duplicate));
        assert_eq!(
            sync.on_update(update(15, 16, &[])),
            Err(SyncError::OutOfSync {
                expected: 14,
                got: 15
            })
        );
        assert!(sync.order_book(10).is_none());
        assert_eq!(sync.buffered(), 1);
    }

    #[test]
    fn stale_snapshot_is_refused() {
        let mut sync = DepthSync::new("X/Y");
        sync.on_update(update(20, 22, &[])).unwrap();
        assert_eq!(
            sync.apply_snapshot(snapshot(15)),
            Err(SyncError::OutOfSync {
                expected: 16,
                got: 20
            })
        );
        assert!(!sync.is_synced());
        assert_eq!(sync.buffered(), 1);
        sync.apply_snapshot(snapshot(21)).unwrap();
        assert_eq!(sync.nonce(), Some(22));
    }

    #[test]
    fn snapshot_before_any_event_waits_for_the_bridge() {
        let mut sync = DepthSync::new("X/Y");
        sync.apply_snapshot(snapshot(100)).unwrap();
        assert_eq!(sync.order_book(5).unwrap().nonce, Some(100));
        assert_eq!(sync.on_update(update(95, 99, &[])), Ok(Applied::Dropped));
        assert_eq!(sync.on_update(update(99, 100, &[])), Ok(Applied::Dropped));
        assert_eq!(sync.on_update(update(100, 103, &[])), Ok(Applied::Applied));
        assert_eq!(sync.stats().first_applied, Some((100, 103)));
    }

    #[test]
    fn extreme_ids_do_not_overflow() {
        let mut sync = DepthSync::new("X/Y");
        sync.apply_snapshot(snapshot(u64::MAX - 1)).unwrap();
        assert_eq!(
            sync.on_update(update(u64::MAX, u64::MAX, &[])),
            Ok(Applied::Applied)
        );
        assert_eq!(
            sync.on_update(update(u64::MAX, u64::MAX, &[])),
            Ok(Applied::Duplicate)
        );
    }

    #[test]
    fn buffer_is_bounded() {
        let mut sync = DepthSync::with_buffer_limit("X/Y", 2);
        for i in 1..=5 {
            sync.on_update(update(i, i, &[])).unwrap();
        }
        assert_eq!(sync.buffered(), 2);
        assert_eq!(sync.stats().overflowed, 3);
    }

    #[test]
    fn malformed_messages_are_refused_whole() {
        assert!(DepthUpdate::parse("{").is_err());
        let bad_price = r#"{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1e3","1"]],"a":[]}"#;
        assert_eq!(
            DepthUpdate::parse(bad_price),
            Err(DepthError::Decimal("1e3".into()))
        );
        let reversed = r#"{"e":"depthUpdate","E":1,"s":"X","U":3,"u":2,"b":[],"a":[]}"#;
        assert!(matches!(
            DepthUpdate::parse(reversed),
            Err(DepthError::Range { .. })
        ));
        let short_level = r#"{"lastUpdateId":1,"bids":[["1"]],"asks":[]}"#;
        assert!(DepthSnapshot::parse(short_level).is_err());
    }
}
