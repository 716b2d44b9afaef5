//! Binance: what the adapter does with each message of its combined stream, and with each REST
//! answer, against the recorded market list (`fixtures/exchanges/BINANCE.0`).
//!
//! The first byte picks the input. Even: the rest is the stream, its messages separated by RS
//! (`support::SEPARATOR`), through `parse_message` and, for depth events, each symbol's `DepthSync`
//! (a message that is no stream message is tried as a REST depth snapshot for the symbol of the
//! last depth event, as the adapter fetches one when a book buffers or loses sync). Odd: the rest
//! is one REST answer, read as each kind of answer the adapter reads (error body, balance,
//! order(s), depth snapshot, 24 h ticker) and as a market list. Nothing may panic; every
//! publication must serialize into data the Router takes; published books are ordered; a book's
//! snapshot seeds an equal book.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use rpc_crypto_actors::adapters::binance::adapter::ticker_of_rest;
use rpc_crypto_actors::adapters::binance::{
    parse_message, rest, Applied, DepthSnapshot, DepthSync, Markets, StreamError, StreamEvent,
};

use super::support::{self, as_value, check_book, published};

/// The adapter's default `publish_depth`.
const DEPTH: usize = 20;

fn markets() -> &'static Markets {
    static MARKETS: OnceLock<Markets> = OnceLock::new();
    MARKETS.get_or_init(|| {
        let body = support::recorded_body(support::BINANCE_MARKETS, "/exchangeInfo");
        Markets::from_exchange_info(body).expect("the recorded exchangeInfo parses")
    })
}

pub fn run(data: &[u8]) {
    let Some((mode, rest)) = support::mode(data) else {
        return;
    };
    if mode % 2 == 0 {
        stream(rest);
    } else {
        answer(mode / 2, &String::from_utf8_lossy(rest));
    }
}

fn stream(data: &[u8]) {
    let markets = markets();
    let mut books: BTreeMap<String, DepthSync> = BTreeMap::new();
    let mut last_depth: Option<String> = None;
    for text in support::messages(data) {
        let message = match parse_message(&text, markets) {
            Ok(message) => message,
            Err(StreamError::NotStream | StreamError::Json(_)) => {
                if let (Some(symbol), Ok(snapshot)) = (&last_depth, DepthSnapshot::parse(&text)) {
                    let book = books.get_mut(symbol).expect("made by its depth event");
                    if book.apply_snapshot(snapshot).is_ok() {
                        check_synced(book);
                    }
                }
                continue;
            }
            Err(_) => continue,
        };
        assert!(markets.by_symbol(&message.symbol).is_some());
        match message.event {
            StreamEvent::Depth(update) => {
                let book = books
                    .entry(message.symbol.clone())
                    .or_insert_with(|| DepthSync::new(message.symbol.clone()));
                if let Ok(Applied::Applied) = book.on_update(update) {
                    check_synced(book);
                }
                last_depth = Some(message.symbol);
            }
            // The adapter publishes these through `json_of`.
            StreamEvent::Ticker(ticker) | StreamEvent::BookTicker(ticker) => as_value(&ticker),
            StreamEvent::Trade(trade) => as_value(&trade),
            StreamEvent::Kline(kline) => as_value(&kline.candle),
        }
    }
}

/// A book in sync publishes an ordered book, and its snapshot rebuilds the same book.
fn check_synced(book: &DepthSync) {
    let order_book = book
        .order_book(DEPTH)
        .expect("a book in sync has levels to publish");
    check_book(&order_book, DEPTH);
    assert_eq!(order_book.nonce, book.nonce());
    let snapshot = book.snapshot().expect("in sync");
    let mut again = DepthSync::new(book.symbol());
    again
        .apply_snapshot(snapshot.clone())
        .expect("no events buffered");
    assert_eq!(again.snapshot(), Some(snapshot));
}

fn answer(status: u8, body: &str) {
    let markets = markets();
    let error = rest::parse_error(400 + u16::from(status), body);
    assert!(
        error.message.chars().count() <= 200,
        "error messages are cut short"
    );
    // Each answers a call through `json_of`.
    if let Ok(balance) = rest::parse_balance(body) {
        as_value(&balance);
    }
    if let Ok(order) = rest::parse_order(body, markets) {
        as_value(&order);
    }
    if let Ok(orders) = rest::parse_orders(body, markets) {
        as_value(&orders);
    }
    if let Ok(snapshot) = DepthSnapshot::parse(body) {
        let mut book = DepthSync::new("BTC/USDT");
        book.apply_snapshot(snapshot).expect("no events buffered");
        check_synced(&book);
    }
    if let Ok(ticker) = ticker_of_rest(body, markets) {
        published(&ticker);
    }
    if let Ok(list) = Markets::from_exchange_info(body) {
        for market in list.iter() {
            // Of markets listed twice the last is kept: an id always finds one.
            assert!(list.by_id(&market.id).is_some() && list.by_symbol(&market.symbol).is_some());
            as_value(market);
        }
    }
}
