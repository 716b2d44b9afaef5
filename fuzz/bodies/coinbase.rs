//! Coinbase: what the adapter does with each message of its feed, against the recorded product list
//! (`fixtures/exchanges/COINBASE.0`), and with a `/products` answer.
//!
//! The first byte picks the input. Even: the rest is the feed, its messages separated by RS
//! (`support::SEPARATOR`), through `parse_message`, the level2 books (`Level2Books`, as the adapter
//! keeps them), and the ticker and match normalizers. Odd: the rest is a `/products` answer.
//! Nothing may panic; every publication must serialize into data the Router takes; a book that took
//! a message is not crossed and publishes ordered levels; a market list finds each of its markets
//! by id.

use std::sync::OnceLock;

use rpc_crypto_actors::adapters::coinbase::{parse_message, Level2Books, Markets, Message};

use super::support::{self, as_value, check_book, published};

/// The adapter's default `publish_depth`.
const DEPTH: usize = 20;

fn markets() -> &'static Markets {
    static MARKETS: OnceLock<Markets> = OnceLock::new();
    MARKETS.get_or_init(|| {
        let body = support::recorded_body(support::COINBASE_MARKETS, "/products");
        Markets::from_products(body).expect("the recorded /products parses")
    })
}

pub fn run(data: &[u8]) {
    let Some((mode, rest)) = support::mode(data) else {
        return;
    };
    if mode % 2 == 0 {
        feed(rest);
    } else {
        products(&String::from_utf8_lossy(rest));
    }
}

fn feed(data: &[u8]) {
    let markets = markets();
    let mut books = Level2Books::new();
    for text in support::messages(data) {
        let book = match parse_message(&text) {
            Ok(Message::Snapshot(snapshot)) => books.snapshot(markets, &snapshot),
            Ok(Message::L2Update(update)) => books.update(markets, &update),
            Ok(Message::Ticker(ticker)) => {
                if let Ok(ticker) = ticker.to_ccxt(markets) {
                    published(&ticker);
                }
                continue;
            }
            Ok(Message::Match(trade)) => {
                if let Ok(trade) = trade.to_ccxt(markets) {
                    published(&trade);
                }
                continue;
            }
            Ok(Message::Heartbeat(_) | Message::Subscriptions(_)) | Err(_) => continue,
        };
        let Ok(book) = book else { continue };
        assert!(
            !book.is_crossed(),
            "a book that took a message is not crossed"
        );
        let order_book = book.order_book(DEPTH).expect("in sync");
        check_book(&order_book, DEPTH);
        if let (Some(bid), Some(ask)) = (order_book.bids.first(), order_book.asks.first()) {
            assert!(bid[0] <= ask[0], "not crossed as published either");
        }
    }
}

fn products(body: &str) {
    let Ok(list) = Markets::from_products(body) else {
        return;
    };
    for market in list.all() {
        assert_eq!(
            list.get(&market.id).map(|m| &m.symbol),
            Some(&market.symbol)
        );
        // `load_markets` answers with each market as a `Value`.
        as_value(market);
    }
}
