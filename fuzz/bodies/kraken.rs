//! Kraken, WebSocket v1 and v2: what the adapter does with each message, against the recorded pair
//! list (`fixtures/exchanges/KRAKEN.0`) or against a fuzzed one, and with its REST answers.
//!
//! The first byte picks the input. 0 (mod 3): the rest is the feed, its messages separated by RS
//! (`support::SEPARATOR`), through `parse_message` (v1) or `parse_v2_message` (v2) and the books,
//! kept as the adapter keeps them (a snapshot makes a fresh `KrakenBook`, at the channel's depth in
//! v1, at the subscribed depth with the pair's precision in v2; an update goes to the book in
//! sync). 1: the first message is an `AssetPairs` answer, the feed follows and is read against its
//! pairs. 2: the rest is one REST result, read as a `Depth` and a `Ticker` result (v1 target) or as
//! an `AssetPairs` answer (v2 target). Nothing may panic; every publication must serialize into
//! data the Router takes; a book that took a message keeps at most its depth, publishes ordered
//! levels, and matches the checksum the message carried.

use std::collections::HashMap;
use std::sync::OnceLock;

use rpc_crypto_actors::adapters::kraken::adapter::{parse_rest_depth, parse_rest_ticker};
use rpc_crypto_actors::adapters::kraken::{
    parse_message, parse_v2_message, BookDelta, KrakenBook, KrakenMarkets, KrakenMessage, V2Message,
};

use super::support::{self, as_value, check_book, published};

/// The adapter's default `publish_depth`, and the depth its default `book_depth` subscribes.
const PUBLISH_DEPTH: usize = 20;
const SUBSCRIPTION_DEPTH: usize = 100;

fn recorded_markets() -> &'static KrakenMarkets {
    static MARKETS: OnceLock<KrakenMarkets> = OnceLock::new();
    MARKETS.get_or_init(|| {
        let body = support::recorded_body(support::KRAKEN_MARKETS, "/AssetPairs");
        KrakenMarkets::from_asset_pairs(body).expect("the recorded AssetPairs parses")
    })
}

#[derive(Clone, Copy)]
enum Feed {
    V1,
    V2,
}

pub fn run_v1(data: &[u8]) {
    run(Feed::V1, data);
}

pub fn run_v2(data: &[u8]) {
    run(Feed::V2, data);
}

fn run(feed: Feed, data: &[u8]) {
    let Some((mode, rest)) = support::mode(data) else {
        return;
    };
    match mode % 3 {
        0 => messages(feed, recorded_markets(), rest),
        1 => {
            let text = String::from_utf8_lossy(rest);
            let (first, feed_text) = text.split_once(support::SEPARATOR).unwrap_or((&text, ""));
            if let Some(markets) = asset_pairs(first) {
                messages(feed, &markets, feed_text.as_bytes());
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            match feed {
                Feed::V1 => rest_results(&text),
                Feed::V2 => {
                    asset_pairs(&text);
                }
            }
        }
    }
}

/// The books by symbol, as the adapter keeps them.
#[derive(Default)]
struct Books(HashMap<String, KrakenBook>);

impl Books {
    fn on_book(
        &mut self,
        symbol: &str,
        snapshot: bool,
        fresh: impl FnOnce() -> KrakenBook,
        delta: &BookDelta,
    ) {
        let result = if snapshot {
            self.0.insert(symbol.to_owned(), fresh());
            self.0
                .get_mut(symbol)
                .expect("just made")
                .apply_snapshot(delta)
        } else {
            match self.0.get_mut(symbol) {
                Some(book) if book.is_synced() => book.apply_update(delta),
                _ => return,
            }
        };
        let book = &self.0[symbol];
        if result.is_err() {
            assert!(
                !book.is_synced(),
                "a refused message leaves the book out of sync"
            );
            return;
        }
        assert!(book.is_synced());
        assert!(book.bids().count() <= book.depth() && book.asks().count() <= book.depth());
        if let Some(expected) = delta.checksum {
            assert_eq!(book.checksum(), expected);
        }
        check_book(&book.to_ccxt(PUBLISH_DEPTH), PUBLISH_DEPTH);
    }
}

fn messages(feed: Feed, markets: &KrakenMarkets, data: &[u8]) {
    let mut books = Books::default();
    for text in support::messages(data) {
        match feed {
            Feed::V1 => match parse_message(&text, markets) {
                Ok(KrakenMessage::Book(book)) => {
                    let symbol = book.pair.market.symbol.as_str();
                    // Kraken's largest depth bounds the book whatever the message says.
                    let depth = book.depth.min(1000);
                    let fresh = || KrakenBook::new(symbol, depth);
                    books.on_book(symbol, book.snapshot, fresh, &book.delta);
                }
                Ok(KrakenMessage::Trades(trades)) => {
                    trades.iter().for_each(published);
                }
                // Published, and kept to answer `fetch_ticker` through `json_value`.
                Ok(KrakenMessage::Ticker(ticker)) => {
                    published(&ticker);
                    as_value(&ticker);
                }
                Ok(_) | Err(_) => {}
            },
            Feed::V2 => match parse_v2_message(&text, markets) {
                Ok(V2Message::Book(pair_books)) => {
                    for book in pair_books {
                        let pair = book.pair;
                        let symbol = pair.market.symbol.as_str();
                        let fresh = || {
                            KrakenBook::new(symbol, SUBSCRIPTION_DEPTH)
                                .with_precision(pair.price_decimals, pair.amount_decimals)
                        };
                        books.on_book(symbol, book.snapshot, fresh, &book.delta);
                    }
                }
                Ok(V2Message::Trades(trades)) => {
                    trades.iter().for_each(published);
                }
                Ok(V2Message::Tickers(tickers)) => {
                    tickers.iter().for_each(published);
                    tickers.iter().for_each(as_value);
                }
                Ok(V2Message::Ohlc { candles, .. }) => {
                    candles.iter().for_each(|c| published(&c.candle));
                }
                Ok(_) | Err(_) => {}
            },
        }
    }
}

/// An `AssetPairs` answer's pairs, each found by its three names.
fn asset_pairs(body: &str) -> Option<KrakenMarkets> {
    let markets = KrakenMarkets::from_asset_pairs(body).ok()?;
    for pair in markets.pairs() {
        assert!(markets.by_ws_name(&pair.ws_name).is_ok());
        assert!(markets.by_v2_name(&pair.v2_name).is_ok());
        assert!(markets.by_symbol(&pair.market.symbol).is_some());
        as_value(&pair.market);
    }
    Some(markets)
}

/// A REST `result` entry as the adapter reads it for `fetch_order_book` and `fetch_ticker`
/// (answered through `json_value`).
fn rest_results(result: &str) {
    if let Ok(book) = parse_rest_depth(result, "BTC/USD") {
        check_book(&book, usize::MAX);
        as_value(&book);
    }
    if let Ok(ticker) = parse_rest_ticker(result, "XBT/USD", recorded_markets()) {
        as_value(&ticker);
    }
}
