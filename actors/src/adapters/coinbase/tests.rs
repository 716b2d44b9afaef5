//! The Coinbase adapter's pure code against the real captures (`fixtures/exchanges/COINBASE.0`,
//! `COINBASE.ws.28.0`) with ccxt as the oracle.
//!
//! `ccxt_expected.json` is what ccxt 4.5.90 itself makes of the same captures (written by
//! `ccxt_oracle.py` beside this file: `ccxt.coinbaseexchange.fetch_markets` on the recorded
//! `/products`, then `ccxt.pro.coinbaseexchange.parse_ticker`, `parse_ws_trade` and
//! `handle_order_book` on every feed message). Every ticker and trade of the capture, a
//! sample of markets, and the final top 10 of every book are compared value for value.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::adapters::capture::{self, Record};
use rpc_crypto_proto::ccxt::fields::{
    MARKET_FIELDS, ORDER_BOOK_FIELDS, TICKER_FIELDS, TRADE_FIELDS,
};
use rpc_crypto_proto::ccxt::{Side, TakerOrMaker};

const PRODUCTS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/exchanges/COINBASE.0"
));
const FEED: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/exchanges/COINBASE.ws.28.0"
));
const EXPECTED: &str = include_str!("ccxt_expected.json");

fn markets() -> Markets {
    // COINBASE.0 is the /products response, then a cryptofeed `configuration:` line that is
    // no capture record.
    let first = PRODUCTS.lines().next().expect("a first line");
    let Ok(Record::Http { url, body, .. }) = capture::parse_line(first) else {
        panic!("COINBASE.0 starts with an HTTP record");
    };
    assert!(url.ends_with("/products"), "{url}");
    Markets::from_products(body).expect("the recorded /products parses")
}

/// Every message received on the feed, in order.
fn feed() -> impl Iterator<Item = &'static str> {
    capture::records(FEED).filter_map(|record| match record.expect("a capture record") {
        Record::Received { message, .. } => Some(message),
        _ => None,
    })
}

fn expected() -> Value {
    serde_json::from_str(EXPECTED).expect("ccxt_expected.json is JSON")
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn sorted(list: &[&'static str]) -> Vec<&'static str> {
    let mut list = list.to_vec();
    list.sort_unstable();
    list
}

/// `ours` equals ccxt's `theirs` on every key but `info` (the oracle leaves it out; the tests
/// compare it with the raw message), a key ccxt leaves out of a nested object (its
/// `precision` has no `cost`) counting as `null`.
fn assert_matches_ccxt(ours: &Value, theirs: &Value, what: &str) {
    match (ours, theirs) {
        (Value::Object(ours), Value::Object(theirs)) => {
            for (key, value) in ours.iter().filter(|(key, _)| *key != "info") {
                let theirs = theirs.get(key).unwrap_or(&Value::Null);
                assert_matches_ccxt(value, theirs, &format!("{what}.{key}"));
            }
        }
        (Value::Array(ours), Value::Array(theirs)) => {
            assert_eq!(ours.len(), theirs.len(), "{what}: length");
            for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
                assert_matches_ccxt(a, b, &format!("{what}[{i}]"));
            }
        }
        (Value::Number(a), Value::String(b)) => {
            // ccxt's floats are stored as their repr text (see ccxt_oracle.py), read here with
            // the correctly rounded std parser: the comparison is bit for bit.
            let b: f64 = b
                .parse()
                .unwrap_or_else(|_| panic!("{what}: {b:?} is no float"));
            assert_eq!(a.as_f64(), Some(b), "{what}");
        }
        _ => assert_eq!(ours, theirs, "{what}"),
    }
}

#[test]
fn markets_parse_as_ccxt_lists_them() {
    let markets = markets();
    let expected = expected();
    println!("coinbase markets: {}", markets.len());
    assert_eq!(markets.len(), 162);
    assert_eq!(
        Some(markets.len() as u64),
        expected["market_count"].as_u64()
    );
    assert!(markets.skipped().is_empty(), "{:?}", markets.skipped());
    assert_eq!(markets.symbol("BTC-USD"), Some("BTC/USD"));
    assert_eq!(markets.id_of("BTC/USD"), Some("BTC-USD"));
    assert_eq!(markets.symbol("CGLD-USD"), Some("CELO/USD"));
    assert_eq!(markets.symbol("NOPE-USD"), None);

    for theirs in expected["markets"].as_array().expect("markets") {
        let id = theirs["id"].as_str().expect("an id");
        let market = markets.get(id).expect("a sampled market");
        let ours = serde_json::to_value(market).expect("serializes");
        assert_eq!(keys(&ours), sorted(MARKET_FIELDS), "{id}");
        // The documented difference: ccxt 4.5.90 no longer reads the size limits Coinbase sent
        // in 2021; ours come from the product.
        let product: Value = serde_json::from_str(market.info.as_str().expect("info")).unwrap();
        let num = |key: &str| product[key].as_str().and_then(|t| t.parse::<f64>().ok());
        assert_eq!(
            ours["limits"]["amount"]["min"].as_f64(),
            num("base_min_size")
        );
        assert_eq!(
            ours["limits"]["amount"]["max"].as_f64(),
            num("base_max_size")
        );
        assert_eq!(
            ours["limits"]["cost"]["max"].as_f64(),
            num("max_market_funds")
        );
        let mut theirs = theirs.clone();
        theirs["limits"]["amount"] = ours["limits"]["amount"].clone();
        theirs["limits"]["cost"]["max"] = ours["limits"]["cost"]["max"].clone();
        let mut ours_without_info = ours.clone();
        ours_without_info["info"] = Value::Null;
        assert_matches_ccxt(&ours_without_info, &theirs, id);
        assert_eq!(ours["info"], product, "{id}: info is the product");
    }
    // Every market: active spot, ticks and a minimum cost.
    for market in markets.all() {
        assert_eq!(market.active, Some(true), "{}", market.id);
        assert!(market.spot && !market.contract, "{}", market.id);
        assert!(
            market.precision.price.is_some_and(|p| p > 0.0),
            "{}",
            market.id
        );
        assert!(
            market.precision.amount.is_some_and(|p| p > 0.0),
            "{}",
            market.id
        );
        assert!(market.limits.cost.min.is_some(), "{}", market.id);
    }
}

#[test]
fn every_level2_message_keeps_every_book_uncrossed() {
    let markets = markets();
    let mut books = Level2Books::new();
    let mut snapshots: BTreeMap<&str, u32> = BTreeMap::new();
    let mut updates: BTreeMap<&str, u32> = BTreeMap::new();
    let mut changes = 0usize;
    for text in feed() {
        let message = parse_message(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let book = match &message {
            Message::Snapshot(snapshot) => {
                *snapshots.entry(snapshot.product_id).or_default() += 1;
                books.snapshot(&markets, snapshot)
            }
            Message::L2Update(update) => {
                *updates.entry(update.product_id).or_default() += 1;
                changes += update.changes.len();
                books.update(&markets, update)
            }
            _ => continue,
        };
        let book = book.unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(!book.is_crossed(), "crossed after {text}");
        assert!(book.is_synced());
    }
    println!("coinbase level2 snapshots per product: {snapshots:?}");
    println!("coinbase level2 updates per product: {updates:?} ({changes} changes)");
    assert_eq!(snapshots.len(), 10);
    assert!(snapshots.values().all(|&n| n == 1));
    assert_eq!(updates.values().sum::<u32>(), 9719);
    for (product, &n) in &updates {
        let book = books.get(product).expect("a book per updated product");
        assert_eq!(book.updates(), u64::from(n), "{product}");
    }

    // The final books, top 10, against ccxt's own books after the same messages.
    let expected = expected();
    let theirs = expected["books"].as_array().expect("books");
    assert_eq!(theirs.len(), 10);
    for theirs in theirs {
        let symbol = theirs["symbol"].as_str().expect("a symbol");
        let id = markets.id_of(symbol).expect("a market");
        let book = books
            .get(id)
            .expect("a book")
            .order_book(10)
            .expect("synced");
        let ours = serde_json::to_value(&book).expect("serializes");
        assert_eq!(keys(&ours), sorted(ORDER_BOOK_FIELDS), "{symbol}");
        assert_matches_ccxt(&ours, theirs, symbol);
        assert!(book.bids.windows(2).all(|w| w[0][0] > w[1][0]), "{symbol}");
        assert!(book.asks.windows(2).all(|w| w[0][0] < w[1][0]), "{symbol}");
    }
}

#[test]
fn every_ticker_and_trade_of_the_capture_is_what_ccxt_makes_of_it() {
    let markets = markets();
    let expected = expected();
    let mut tickers = expected["tickers"].as_array().expect("tickers").iter();
    let mut trades = expected["trades"].as_array().expect("trades").iter();
    let (mut ticker_count, mut trade_count) = (0, 0);
    for text in feed() {
        let raw: Value = serde_json::from_str(text).expect("JSON");
        let ours = match parse_message(text).expect("parses") {
            Message::Ticker(ticker) => {
                ticker_count += 1;
                let ours = serde_json::to_value(ticker.to_ccxt(&markets).expect("a ticker"));
                let ours = ours.expect("serializes");
                assert_eq!(keys(&ours), sorted(TICKER_FIELDS), "{text}");
                assert_matches_ccxt(&ours, tickers.next().expect("ccxt's ticker"), text);
                ours
            }
            Message::Match(trade) => {
                trade_count += 1;
                let ours = serde_json::to_value(trade.to_ccxt(&markets).expect("a trade"));
                let ours = ours.expect("serializes");
                assert_eq!(keys(&ours), sorted(TRADE_FIELDS), "{text}");
                assert_matches_ccxt(&ours, trades.next().expect("ccxt's trade"), text);
                // The taker's side: the opposite of the maker's side Coinbase sends.
                assert_ne!(ours["side"], raw["side"], "{text}");
                ours
            }
            _ => continue,
        };
        assert_eq!(ours["info"], raw, "info is the message");
    }
    println!("coinbase tickers: {ticker_count}, trades: {trade_count}");
    assert_eq!(ticker_count, 107);
    assert_eq!(trade_count, 107); // 97 match + 10 last_match
    assert!(tickers.next().is_none() && trades.next().is_none());
}

/// A documented sample, the values copied from ccxt 4.5.90's output for these messages.
#[test]
fn sample_ticker_and_trades_with_their_ccxt_values() {
    let markets = markets();
    let ticker = r#"{"type":"ticker","sequence":333938798,"product_id":"BAND-GBP","price":"14.7775","open_24h":"14.6647","volume_24h":"94381.28000000","low_24h":"14.3691","high_24h":"16.55","volume_30d":"2295579.57000000","best_bid":"14.7550","best_ask":"14.8060","side":"buy","time":"2021-04-17T16:43:30.244075Z","trade_id":881613,"last_size":"0.04"}"#;
    let Message::Ticker(message) = parse_message(ticker).unwrap() else {
        panic!("a ticker")
    };
    let mut ours = serde_json::to_value(message.to_ccxt(&markets).unwrap()).unwrap();
    ours["info"] = Value::Null;
    assert_eq!(
        ours,
        json!({
            "symbol": "BAND/GBP", "timestamp": 1618677810244_i64,
            "datetime": "2021-04-17T16:43:30.244Z", "high": 16.55, "low": 14.3691,
            "bid": 14.755, "bidVolume": null, "ask": 14.806, "askVolume": null, "vwap": null,
            "open": 14.6647, "close": 14.7775, "last": 14.7775, "previousClose": null,
            "change": 0.1128, "percentage": 0.7691940510204777, "average": 14.7211,
            "baseVolume": 94381.28, "quoteVolume": null, "info": null
        })
    );

    // Coinbase sends the maker's side ("sell": a resting sell was hit), ccxt the taker's.
    let matched = r#"{"type":"match","trade_id":280232,"maker_order_id":"2a0da34e-61f7-4c36-88e5-c9dd15927b16","taker_order_id":"3c82abaa-c01e-4608-be59-6a1e69742891","side":"sell","size":"985","price":"0.00001305","product_id":"SKL-BTC","sequence":177100030,"time":"2021-04-17T16:43:37.089723Z"}"#;
    let Message::Match(message) = parse_message(matched).unwrap() else {
        panic!("a match")
    };
    let trade = message.to_ccxt(&markets).unwrap();
    assert_eq!(trade.side, Side::Buy);
    assert_eq!(trade.taker_or_maker, Some(TakerOrMaker::Taker));
    let mut ours = serde_json::to_value(trade).unwrap();
    ours["info"] = Value::Null;
    assert_eq!(
        ours,
        json!({
            "id": "280232", "order": "3c82abaa-c01e-4608-be59-6a1e69742891",
            "timestamp": 1618677817089_i64, "datetime": "2021-04-17T16:43:37.089Z",
            "symbol": "SKL/BTC", "type": null, "takerOrMaker": "taker", "side": "buy",
            "price": 0.00001305, "amount": 985.0, "cost": 0.01285425,
            "fee": {"rate": null, "cost": null, "currency": "BTC"}, "fees": [], "info": null
        })
    );

    let last = r#"{"type":"last_match","trade_id":82007,"maker_order_id":"9d2861bd-1703-47f2-a7f4-7723565a7f5c","taker_order_id":"dd068ce5-f175-4396-bae1-a1db56d209f5","side":"buy","size":"1008.2","price":"0.5752","product_id":"SKL-GBP","sequence":27883326,"time":"2021-04-17T16:43:29.571587Z"}"#;
    let Message::Match(message) = parse_message(last).unwrap() else {
        panic!("a last_match")
    };
    assert_eq!(message.kind, "last_match");
    let trade = message.to_ccxt(&markets).unwrap();
    assert_eq!(
        (trade.side, trade.price, trade.amount),
        (Side::Sell, 0.5752, 1008.2)
    );
    assert_eq!(trade.cost, Some(579.91664));
    assert_eq!(trade.id.as_deref(), Some("82007"));
}

#[test]
fn user_fills_on_the_authenticated_feed_follow_ccxt() {
    let markets = markets();
    // ccxt's parseWsTrade: a maker fill keeps the sent side and takes the maker's order id
    // and fee rate; the fee is cost × rate (0.01285425 × 0.001).
    let maker = r#"{"type":"match","trade_id":10,"maker_order_id":"m","taker_order_id":"t","side":"sell","size":"985","price":"0.00001305","product_id":"SKL-BTC","time":"2021-04-17T16:43:37.089723Z","maker_fee_rate":"0.001"}"#;
    let Message::Match(message) = parse_message(maker).unwrap() else {
        panic!("a match")
    };
    let trade = message.to_ccxt(&markets).unwrap();
    assert_eq!(trade.side, Side::Sell);
    assert_eq!(trade.taker_or_maker, Some(TakerOrMaker::Maker));
    assert_eq!(trade.order.as_deref(), Some("m"));
    let fee = trade.fee.unwrap();
    assert_eq!((fee.rate, fee.cost), (Some(0.001), Some(0.00001285425)));
    assert_eq!(fee.currency.as_deref(), Some("BTC"));
}

#[test]
fn the_subscriptions_of_the_capture_are_read() {
    let subscriptions: Vec<Subscriptions> = feed()
        .filter_map(|text| match parse_message(text) {
            Ok(Message::Subscriptions(s)) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(subscriptions.len(), 3);
    let last = subscriptions.last().unwrap();
    let names: Vec<&str> = last.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["ticker", "matches", "level2"]);
    assert!(last.channels.iter().all(|c| c.product_ids.len() == 10));
}

// ---------------------------------------------------------------- faults

fn snapshot_text(product: &str) -> String {
    format!(
        r#"{{"type":"snapshot","product_id":"{product}","bids":[["10.00","1"],["9.5","2"]],"asks":[["11","1.5"],["12.25","3"]]}}"#
    )
}

fn update_text(product: &str, changes: &str) -> String {
    format!(
        r#"{{"type":"l2update","product_id":"{product}","changes":{changes},"time":"2021-04-17T16:43:37.075687Z"}}"#
    )
}

fn apply(books: &mut Level2Books, markets: &Markets, text: &str) -> Result<(), FeedError> {
    match parse_message(text)? {
        Message::Snapshot(s) => books.snapshot(markets, &s).map(drop),
        Message::L2Update(u) => books.update(markets, &u).map(drop),
        other => panic!("not level2: {other:?}"),
    }
}

#[test]
fn a_crossed_update_is_detected_and_the_book_waits_for_a_snapshot() {
    let markets = markets();
    let mut books = Level2Books::new();
    apply(&mut books, &markets, &snapshot_text("BTC-USD")).unwrap();
    // A bid at the best ask: crossed.
    let crossing = update_text("BTC-USD", r#"[["buy","11.0","0.5"]]"#);
    let error = apply(&mut books, &markets, &crossing).unwrap_err();
    assert!(
        matches!(&error, FeedError::Crossed { product, bid, ask }
            if product == "BTC-USD" && bid == "11.0" && ask == "11"),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::InvalidNonce);
    let book = books.get("BTC-USD").unwrap();
    assert!(!book.is_synced() && book.order_book(10).is_none());
    assert_eq!(book.depth(), (0, 0));
    // Further updates are refused until a snapshot.
    let next = update_text("BTC-USD", r#"[["buy","9","1"]]"#);
    assert!(matches!(
        apply(&mut books, &markets, &next),
        Err(FeedError::NotSynced(p)) if p == "BTC-USD"
    ));
    apply(&mut books, &markets, &snapshot_text("BTC-USD")).unwrap();
    apply(&mut books, &markets, &next).unwrap();
    assert!(books.get("BTC-USD").unwrap().is_synced());

    // An ask below the best bid crosses too, and so does a crossed snapshot.
    let under = update_text("BTC-USD", r#"[["sell","9.99","1"]]"#);
    assert!(matches!(
        apply(&mut books, &markets, &under),
        Err(FeedError::Crossed { .. })
    ));
    let crossed_snapshot =
        r#"{"type":"snapshot","product_id":"BTC-USD","bids":[["12","1"]],"asks":[["11","1"]]}"#;
    assert!(matches!(
        apply(&mut books, &markets, crossed_snapshot),
        Err(FeedError::Crossed { .. })
    ));
}

#[test]
fn updates_for_unknown_or_unsubscribed_products_are_errors() {
    let markets = markets();
    let mut books = Level2Books::new();
    let unknown = update_text("FOO-BAR", r#"[["buy","1","1"]]"#);
    let error = apply(&mut books, &markets, &unknown).unwrap_err();
    assert!(
        matches!(&error, FeedError::UnknownProduct(p) if p == "FOO-BAR"),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::BadSymbol);
    assert!(matches!(
        apply(&mut books, &markets, &snapshot_text("FOO-BAR")),
        Err(FeedError::UnknownProduct(_))
    ));
    // Known product, no snapshot yet.
    let early = update_text("ETH-USD", r#"[["buy","1","1"]]"#);
    assert!(matches!(
        apply(&mut books, &markets, &early),
        Err(FeedError::NotSynced(_))
    ));
    // Tickers and trades of unknown products too.
    let ticker =
        r#"{"type":"ticker","product_id":"FOO-BAR","price":"1","time":"2021-04-17T16:43:30Z"}"#;
    let Ok(Message::Ticker(t)) = parse_message(ticker) else {
        panic!("a ticker")
    };
    assert!(matches!(
        t.to_ccxt(&markets),
        Err(FeedError::UnknownProduct(_))
    ));
}

#[test]
fn prices_are_keyed_by_exact_value_and_zero_removes() {
    let markets = markets();
    let mut books = Level2Books::new();
    apply(&mut books, &markets, &snapshot_text("BTC-USD")).unwrap();
    // "10.00" in the snapshot is the level "10" and "10.0000" of updates.
    apply(
        &mut books,
        &markets,
        &update_text("BTC-USD", r#"[["buy","10","4"]]"#),
    )
    .unwrap();
    let book = books.get("BTC-USD").unwrap();
    assert_eq!(book.depth(), (2, 2));
    assert_eq!(book.best_bid().unwrap().amount_text(), "4");
    assert_eq!(book.best_bid().unwrap().price_text(), "10");
    apply(
        &mut books,
        &markets,
        &update_text("BTC-USD", r#"[["buy","10.0000","0"]]"#),
    )
    .unwrap();
    // Prices too close for some float formatting still stay apart.
    let close =
        r#"[["sell","11.000000001","1"],["sell","11.000000002","2"],["sell","12.25","0.000"]]"#;
    apply(&mut books, &markets, &update_text("BTC-USD", close)).unwrap();
    let book = books.get("BTC-USD").unwrap().order_book(5).unwrap();
    assert_eq!(book.bids, [[9.5, 2.0]]);
    assert_eq!(
        book.asks,
        [[11.0, 1.5], [11.000000001, 1.0], [11.000000002, 2.0]]
    );
    assert_eq!(book.timestamp.get(), Some(1_618_677_817_075));
    assert_eq!(
        books
            .get("BTC-USD")
            .unwrap()
            .order_book(1)
            .unwrap()
            .asks
            .len(),
        1
    );
}

#[test]
fn a_malformed_update_changes_nothing() {
    let markets = markets();
    let mut books = Level2Books::new();
    apply(&mut books, &markets, &snapshot_text("BTC-USD")).unwrap();
    let before = books.get("BTC-USD").unwrap().order_book(10);
    for changes in [
        r#"[["buy","9","5"],["hold","9","1"]]"#,
        r#"[["buy","9","5"],["sell","abc","1"]]"#,
        r#"[["buy","9","5"],["sell","13","-1"]]"#,
        r#"[["buy","9","5"],["sell","0","1"]]"#,
        r#"[["buy","9","5"],["sell","1e3","1"]]"#,
    ] {
        let error = apply(&mut books, &markets, &update_text("BTC-USD", changes)).unwrap_err();
        assert!(
            matches!(error, FeedError::BadField { .. }),
            "{changes}: {error}"
        );
        assert_eq!(
            books.get("BTC-USD").unwrap().order_book(10),
            before,
            "{changes}"
        );
    }
    let bad_time = r#"{"type":"l2update","product_id":"BTC-USD","changes":[["buy","9","5"]],"time":"yesterday"}"#;
    assert!(matches!(
        apply(&mut books, &markets, bad_time),
        Err(FeedError::BadField { field: "time", .. })
    ));
    // A change that is not three strings is malformed JSON for its type.
    let short = update_text("BTC-USD", r#"[["buy","9"]]"#);
    assert!(matches!(
        apply(&mut books, &markets, &short),
        Err(FeedError::Json(_))
    ));
    assert_eq!(books.get("BTC-USD").unwrap().order_book(10), before);
    assert!(books.get("BTC-USD").unwrap().is_synced());
}

#[test]
fn bad_frames_are_typed_errors() {
    assert!(matches!(parse_message("not json"), Err(FeedError::Json(_))));
    assert!(matches!(parse_message(""), Err(FeedError::Json(_))));
    assert!(matches!(parse_message("[1,2]"), Err(FeedError::Json(_))));
    assert!(matches!(
        parse_message(r#"{"type":"snapshot"}"#),
        Err(FeedError::Json(_))
    ));
    assert!(matches!(
        parse_message(r#"{"type":"status","products":[]}"#),
        Err(FeedError::UnknownType(t)) if t == "status"
    ));
    assert!(matches!(
        parse_message(r#"{"a":1}"#),
        Err(FeedError::UnknownType(_))
    ));

    let refused = r#"{"type":"error","message":"Failed to subscribe","reason":"FOO-BAR is not a valid product"}"#;
    let error = parse_message(refused).unwrap_err();
    assert!(
        matches!(&error, FeedError::Refused { message, reason: Some(reason) }
            if message == "Failed to subscribe" && reason == "FOO-BAR is not a valid product"),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::BadSymbol);
    assert_eq!(
        error.to_string(),
        "Coinbase refused: Failed to subscribe (FOO-BAR is not a valid product)"
    );
    let auth = r#"{"type":"error","message":"Authentication Failed","reason":"{\"message\":\"Invalid API Key\"}"}"#;
    assert_eq!(
        parse_message(auth).unwrap_err().kind(),
        ErrorKind::AuthenticationError
    );

    let heartbeat = r#"{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD","time":"2014-11-07T08:19:28.464459Z"}"#;
    assert_eq!(
        parse_message(heartbeat).unwrap(),
        Message::Heartbeat(Heartbeat {
            product_id: "BTC-USD",
            sequence: Some(90),
            last_trade_id: Some(20),
            time: Some("2014-11-07T08:19:28.464459Z"),
        })
    );

    // Fields of the wrong kind are errors when converted, not panics.
    let markets = markets();
    for text in [
        r#"{"type":"ticker","product_id":"BTC-USD","price":"abc"}"#,
        r#"{"type":"ticker","product_id":"BTC-USD","price":true}"#,
        r#"{"type":"ticker","product_id":"BTC-USD","price":"1","time":"soon"}"#,
    ] {
        let Ok(Message::Ticker(t)) = parse_message(text) else {
            panic!("{text}")
        };
        assert!(
            matches!(t.to_ccxt(&markets), Err(FeedError::BadField { .. })),
            "{text}"
        );
    }
    for text in [
        r#"{"type":"match","product_id":"BTC-USD","price":"1","size":"1"}"#,
        r#"{"type":"match","product_id":"BTC-USD","price":"1","size":"1","side":"up"}"#,
        r#"{"type":"match","product_id":"BTC-USD","size":"1","side":"buy"}"#,
    ] {
        let Ok(Message::Match(m)) = parse_message(text) else {
            panic!("{text}")
        };
        assert!(
            matches!(
                m.to_ccxt(&markets),
                Err(FeedError::BadField { .. } | FeedError::Missing(_))
            ),
            "{text}"
        );
    }
    // A ticker with zero prices: ccxt's omitZero makes them null, and nothing is derived.
    let zero = r#"{"type":"ticker","product_id":"BTC-USD","price":"0","open_24h":"0.00","best_bid":"0","best_bid_size":"0"}"#;
    let Ok(Message::Ticker(t)) = parse_message(zero) else {
        panic!("a ticker")
    };
    let ticker = t.to_ccxt(&markets).unwrap();
    assert_eq!((ticker.last, ticker.open, ticker.bid), (None, None, None));
    assert_eq!((ticker.change, ticker.bid_volume), (None, Some(0.0)));
    assert_eq!(ticker.timestamp.get(), None);
}

#[test]
fn the_products_body_must_be_a_product_list() {
    assert!(matches!(
        Markets::from_products("{}"),
        Err(FeedError::Json(_))
    ));
    assert!(matches!(
        Markets::from_products("[{}]"),
        Err(FeedError::Json(_))
    ));
    let odd = r#"[{"id":"BTCUSD"},{"id":"A-B-C"},{"id":"ETH-USD","quote_increment":"0.01","status":"online"}]"#;
    let markets = Markets::from_products(odd).unwrap();
    assert_eq!(markets.len(), 1);
    assert_eq!(markets.skipped(), ["BTCUSD", "A-B-C"]);
    let bad = r#"[{"id":"ETH-USD","quote_increment":"a penny"}]"#;
    assert!(matches!(
        Markets::from_products(bad),
        Err(FeedError::BadField {
            field: "quote_increment",
            ..
        })
    ));
    let disabled = r#"[{"id":"ETH-USD","status":"online","trading_disabled":true}]"#;
    assert_eq!(
        Markets::from_products(disabled).unwrap().all()[0].active,
        Some(false)
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No frame makes the reader, the converters or the books panic.
        #[test]
        fn any_frame_is_read_without_panicking(text in ".{0,200}") {
            let _ = parse_message(&text);
        }

        /// Tickers and matches with any values in their fields convert or fail, never panic.
        #[test]
        fn any_ticker_or_match_converts_or_is_refused(
            kind in prop::sample::select(vec!["ticker", "match", "last_match"]),
            product in prop::sample::select(vec!["BTC-USD", "SKL-BTC", "FOO-BAR", ""]),
            values in prop::collection::vec(
                prop_oneof![
                    Just(json!(null)),
                    Just(json!(true)),
                    (-1e20f64..1e20).prop_map(|x| json!(x)),
                    "-?[0-9]{0,25}(\\.[0-9]{0,25})?".prop_map(|x| json!(x)),
                    "[a-z:. 0-9-]{0,30}".prop_map(|x| json!(x)),
                    Just(json!("2021-04-17T16:43:30.244075Z")),
                    Just(json!("buy")),
                    Just(json!({"nested": [1]})),
                ],
                14),
        ) {
            let fields = [
                "price", "open_24h", "volume_24h", "low_24h", "high_24h", "best_bid",
                "best_bid_size", "best_ask", "best_ask_size", "time", "trade_id", "side", "size",
                "maker_fee_rate",
            ];
            let mut message = json!({"type": kind, "product_id": product});
            for (field, value) in fields.iter().zip(values) {
                message[*field] = value;
            }
            let text = message.to_string();
            let markets = markets_once();
            match parse_message(&text) {
                Ok(Message::Ticker(t)) => {
                    let _ = t.to_ccxt(markets);
                }
                Ok(Message::Match(m)) => {
                    let _ = m.to_ccxt(markets);
                }
                Ok(other) => prop_assert!(false, "read as {:?}", other),
                Err(_) => {}
            }
        }

        #[test]
        fn any_level2_update_is_applied_or_refused_whole(
            changes in prop::collection::vec(
                (prop::sample::select(vec!["buy", "sell", "hold"]),
                 "[0-9]{1,3}(\\.[0-9]{0,3})?|-1|x",
                 "[0-9]{1,2}(\\.[0-9]{0,2})?|-1"),
                0..6),
        ) {
            let markets = markets_once();
            let mut books = Level2Books::new();
            apply(&mut books, markets, &snapshot_text("BTC-USD")).unwrap();
            let changes: Vec<[&str; 3]> = changes
                .iter()
                .map(|(s, p, q)| [*s, p.as_str(), q.as_str()])
                .collect();
            let text = update_text("BTC-USD", &serde_json::to_string(&changes).unwrap());
            let before = books.get("BTC-USD").unwrap().order_book(100);
            match apply(&mut books, markets, &text) {
                Ok(()) => {
                    let book = books.get("BTC-USD").unwrap();
                    prop_assert!(!book.is_crossed());
                    let ob = book.order_book(100).unwrap();
                    prop_assert!(ob.bids.windows(2).all(|w| w[0][0] > w[1][0]));
                    prop_assert!(ob.asks.windows(2).all(|w| w[0][0] < w[1][0]));
                }
                Err(FeedError::Crossed { .. }) => {
                    prop_assert!(books.get("BTC-USD").unwrap().order_book(1).is_none());
                }
                Err(FeedError::BadField { .. }) => {
                    prop_assert_eq!(books.get("BTC-USD").unwrap().order_book(100), before);
                }
                Err(other) => prop_assert!(false, "unexpected {}", other),
            }
        }
    }

    fn markets_once() -> &'static Markets {
        static MARKETS: std::sync::OnceLock<Markets> = std::sync::OnceLock::new();
        MARKETS.get_or_init(super::markets)
    }
}
