//! Coinbase `level2` order books: a snapshot, then `l2update` changes, published as ccxt
//! OrderBooks (top N).
//!
//! Level2 has no sequence numbers and no checksum, so the one integrity check available is
//! that the book is not crossed (best bid ≥ best ask): a crossed book means an update was
//! lost or misapplied, and the only recovery Coinbase offers is to resubscribe for a new
//! snapshot. After [`FeedError::Crossed`] the book is emptied and refuses updates
//! ([`FeedError::NotSynced`]) until [`Level2Book::reset`] gives it a snapshot, so nothing stale
//! is ever published.
//!
//! Levels are keyed by the exact value of their price text ([`Decimal`]), never by `f64`: the
//! update for `"14.80"` must find the level written `"14.8"`, and no two prices may merge. The
//! exchange's text of each price and size is kept beside its number. A message is validated
//! completely before any change is applied, so a malformed update leaves the book untouched.

use std::collections::{BTreeMap, HashMap};

use rpc_crypto_proto::ccxt::{OrderBook, Timestamp};

use super::markets::Markets;
use super::messages::{L2Update, Snapshot};
use super::time::parse_iso8601_ms;
use super::FeedError;
use crate::adapters::decimal::Decimal;

/// One price level, as the exchange wrote it and as a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    price_text: String,
    amount_text: String,
    price: f64,
    amount: f64,
}

impl Level {
    /// The price, as ccxt publishes it.
    pub fn price(&self) -> f64 {
        self.price
    }

    /// The size, as ccxt publishes it.
    pub fn amount(&self) -> f64 {
        self.amount
    }

    /// The price exactly as the exchange wrote it.
    pub fn price_text(&self) -> &str {
        &self.price_text
    }

    /// The size exactly as the exchange wrote it.
    pub fn amount_text(&self) -> &str {
        &self.amount_text
    }
}

/// Which side a change is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BookSide {
    Bids,
    Asks,
}

/// A checked `[price, size]`: the price positive, the size not negative (zero removes).
fn level(price: &str, size: &str) -> Result<(Decimal, Decimal), FeedError> {
    let p = Decimal::parse(price)
        .filter(|p| !p.is_negative() && !p.is_zero())
        .ok_or_else(|| FeedError::bad_field("price", price))?;
    let s = Decimal::parse(size)
        .filter(|s| !s.is_negative())
        .ok_or_else(|| FeedError::bad_field("size", size))?;
    Ok((p, s))
}

/// A checked change `[side, price, size]`.
fn change(change: &[&str; 3]) -> Result<(BookSide, Decimal, Decimal), FeedError> {
    let side = match change[0] {
        "buy" => BookSide::Bids,
        "sell" => BookSide::Asks,
        other => return Err(FeedError::bad_field("side", other)),
    };
    let (price, size) = level(change[1], change[2])?;
    Ok((side, price, size))
}

/// One product's level2 book.
#[derive(Debug, Clone)]
pub struct Level2Book {
    product_id: String,
    symbol: String,
    bids: BTreeMap<Decimal, Level>,
    asks: BTreeMap<Decimal, Level>,
    timestamp: Option<i64>,
    synced: bool,
    updates: u64,
}

impl Level2Book {
    /// An empty book of `product_id`, published as `symbol`, waiting for its snapshot.
    pub fn new(product_id: impl Into<String>, symbol: impl Into<String>) -> Self {
        Self {
            product_id: product_id.into(),
            symbol: symbol.into(),
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            timestamp: None,
            synced: false,
            updates: 0,
        }
    }

    /// The product id.
    pub fn product_id(&self) -> &str {
        &self.product_id
    }

    /// The ccxt symbol.
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    /// Whether the book holds a snapshot and every update since, uncrossed.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// How many `l2update` messages were applied since the last snapshot.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Number of bid and ask levels.
    pub fn depth(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    /// The highest bid.
    pub fn best_bid(&self) -> Option<&Level> {
        self.bids.values().next_back()
    }

    /// The lowest ask.
    pub fn best_ask(&self) -> Option<&Level> {
        self.asks.values().next()
    }

    /// Whether the best bid is at or above the best ask.
    pub fn is_crossed(&self) -> bool {
        match (self.bids.keys().next_back(), self.asks.keys().next()) {
            (Some(bid), Some(ask)) => bid >= ask,
            _ => false,
        }
    }

    /// The error for a crossed book; empties it and marks it out of sync.
    fn crossed(&mut self) -> FeedError {
        let text = |level: Option<&Level>| level.map(|l| l.price_text.clone()).unwrap_or_default();
        let error = FeedError::Crossed {
            product: self.product_id.clone(),
            bid: text(self.best_bid()),
            ask: text(self.best_ask()),
        };
        self.clear();
        error
    }

    fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.synced = false;
    }

    fn wrong_product(&self, product_id: &str) -> Result<(), FeedError> {
        if product_id == self.product_id {
            Ok(())
        } else {
            Err(FeedError::bad_field("product_id", product_id))
        }
    }

    /// Replaces the book with a snapshot. A malformed snapshot leaves the book as it was; a
    /// crossed one is [`FeedError::Crossed`] and leaves it empty and out of sync.
    pub fn reset(&mut self, snapshot: &Snapshot<'_>) -> Result<(), FeedError> {
        self.wrong_product(snapshot.product_id)?;
        let mut sides = [BTreeMap::new(), BTreeMap::new()];
        for (side, levels) in sides.iter_mut().zip([&snapshot.bids, &snapshot.asks]) {
            for [price_text, amount_text] in levels {
                let (price, amount) = level(price_text, amount_text)?;
                if amount.is_zero() {
                    continue;
                }
                side.insert(price, new_level(price_text, amount_text, price, amount));
            }
        }
        let [bids, asks] = sides;
        self.bids = bids;
        self.asks = asks;
        self.timestamp = None; // a level2 snapshot carries no time
        self.synced = true;
        self.updates = 0;
        if self.is_crossed() {
            return Err(self.crossed());
        }
        Ok(())
    }

    /// Applies an `l2update`: validated whole first, then applied, then checked for a crossed
    /// book ([`FeedError::Crossed`], after which the book is empty and out of sync).
    pub fn apply(&mut self, update: &L2Update<'_>) -> Result<(), FeedError> {
        self.wrong_product(update.product_id)?;
        if !self.synced {
            return Err(FeedError::NotSynced(self.product_id.clone()));
        }
        let time = update
            .time
            .map(|t| parse_iso8601_ms(t).ok_or_else(|| FeedError::bad_field("time", t)))
            .transpose()?;
        // Validate every change before touching the book (no half-applied update). Parsing
        // twice is cheaper than collecting: most updates hold one change.
        for c in &update.changes {
            change(c)?;
        }
        for c in &update.changes {
            let (side, price, amount) = change(c)?;
            let levels = match side {
                BookSide::Bids => &mut self.bids,
                BookSide::Asks => &mut self.asks,
            };
            if amount.is_zero() {
                levels.remove(&price);
            } else {
                levels.insert(price, new_level(c[1], c[2], price, amount));
            }
        }
        if time.is_some() {
            self.timestamp = time;
        }
        self.updates += 1;
        if self.is_crossed() {
            return Err(self.crossed());
        }
        Ok(())
    }

    /// The ccxt OrderBook of the top `depth` levels per side (bids descending, asks
    /// ascending), timestamped by the last update; `None` while out of sync.
    pub fn order_book(&self, depth: usize) -> Option<OrderBook> {
        if !self.synced {
            return None;
        }
        let pair = |level: &Level| [level.price, level.amount];
        Some(OrderBook {
            symbol: self.symbol.clone(),
            bids: self.bids.values().rev().take(depth).map(pair).collect(),
            asks: self.asks.values().take(depth).map(pair).collect(),
            timestamp: Timestamp(self.timestamp),
            nonce: None,
        })
    }
}

fn new_level(price_text: &str, amount_text: &str, price: Decimal, amount: Decimal) -> Level {
    Level {
        price_text: price_text.to_owned(),
        amount_text: amount_text.to_owned(),
        price: price.to_f64(),
        amount: amount.to_f64(),
    }
}

/// The books of every subscribed product, fed by [`Message::Snapshot`] and
/// [`Message::L2Update`](super::Message::L2Update).
///
/// [`Message::Snapshot`]: super::Message::Snapshot
#[derive(Debug, Clone, Default)]
pub struct Level2Books {
    books: HashMap<String, Level2Book>,
}

impl Level2Books {
    /// No books.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts or restarts a product's book from its snapshot. A product missing from
    /// `markets` is [`FeedError::UnknownProduct`].
    pub fn snapshot(
        &mut self,
        markets: &Markets,
        snapshot: &Snapshot<'_>,
    ) -> Result<&Level2Book, FeedError> {
        let market = markets.require(snapshot.product_id)?;
        let book = self
            .books
            .entry(snapshot.product_id.to_owned())
            .or_insert_with(|| Level2Book::new(market.id.as_str(), market.symbol.as_str()));
        book.reset(snapshot)?;
        Ok(book)
    }

    /// Applies an update to its product's book: [`FeedError::UnknownProduct`] for a product
    /// missing from `markets`, [`FeedError::NotSynced`] for one without a current snapshot.
    pub fn update(
        &mut self,
        markets: &Markets,
        update: &L2Update<'_>,
    ) -> Result<&Level2Book, FeedError> {
        markets.require(update.product_id)?;
        let book = self
            .books
            .get_mut(update.product_id)
            .ok_or_else(|| FeedError::NotSynced(update.product_id.to_owned()))?;
        book.apply(update)?;
        Ok(book)
    }

    /// A product's book.
    pub fn get(&self, product_id: &str) -> Option<&Level2Book> {
        self.books.get(product_id)
    }

    /// Forgets a product's book (unsubscribed).
    pub fn remove(&mut self, product_id: &str) -> Option<Level2Book> {
        self.books.remove(product_id)
    }

    /// Every book.
    pub fn iter(&self) -> impl Iterator<Item = &Level2Book> {
        self.books.values()
    }
}
