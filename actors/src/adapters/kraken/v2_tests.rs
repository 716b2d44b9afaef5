//! The Kraken adapter on WebSocket v2, end to end against local servers, and the v2 parsers
//! against ccxt.
//!
//! There is no real v2 capture, so the replays derive one from the v1 capture `KRAKEN.ws.50.0`:
//! the same books, snapshot by snapshot and update by update, written as v2 writes them
//! (`{"channel":"book","type":"update","data":[{"symbol":"BTC/CHF","bids":[{"price":56119,
//! "qty":0.14375128}],...}]}`): v2 symbols, JSON numbers without the trailing zeros v1 pads its
//! strings with, so that the adapter has to write them with the pair's decimals for the checksum.
//!
//! The checksums are not v1's carried over. v1 and v2 take the same top 10 levels in the same
//! order, digits without the `.` and leading zeros, but of different texts: v1's strings have
//! their own decimals (`"56218.30000"` for XBT/CHF), v2 writes the pair's (`pair_decimals` 1:
//! `56218.3`). So every v2 checksum here is computed by the test itself, independently of the
//! adapter's code: from the book the v1 capture proves (every v1 checksum of the capture matches
//! it), each price and quantity formatted from its float with the pair's decimals
//! (`format!("{:.8}")`), and a bit-by-bit CRC-32 (the adapter's is table-driven).
//! [`every_v2_checksum_of_the_derived_replay_matches`] counts how many v1 checksums would have
//! been right: none.
//!
//! Tickers, trades and candles (the capture has none) are Kraken's documented v1 samples written
//! in v2's shape; the expected values are ccxt 4.5.90's v2 handlers' output on them
//! (`ccxt_oracle_v2.py` beside this file), written out here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use futures_util::{SinkExt, StreamExt};
use rpc_crypto_proto::ccxt::fields::{TICKER_FIELDS, TRADE_FIELDS};
use rpc_crypto_proto::ccxt::{iso8601, ErrorKind};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use super::adapter::*;
use super::adapter_tests::{
    book_channels, check_book_publications, http_server, markets, replay_server, Clean, Dialect,
    Entry, FakeRouter, Harness, Script, Truth, CAPTURED_CHECKSUMS, FAULTY,
};
use super::*;
use crate::adapters::contract::ExchangeMethod;
use crate::adapters::decimal::DecimalText;
use crate::adapters::upstream::Feed;
use crate::channel::NOTIFICATIONS;
use crate::router::Demand;

const V2_SNAPSHOT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/exchanges/kraken_v2_book_snapshot_checksum_3310070434.json"
));

/// Book snapshots in `KRAKEN.ws.50.0`, one per pair.
const CAPTURED_SNAPSHOTS: u64 = 10;

/// Kraken's v1 documentation's ticker sample in v2's shape (v2 sends the rolling 24 hours only,
/// with `change` and `change_pct` in place of `o`).
const TICKER_V2: &str = r#"{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/CHF","bid":5525.1,"bid_qty":1.00000000,"ask":5525.4,"ask_qty":1.00000000,"last":5525.1,"volume":3591.17907851,"vwap":5653.78939,"low":5505.0,"high":5783.0,"change":-238.3,"change_pct":-4.13}]}"#;
/// Kraken's v1 documentation's trade sample in v2's shape (the second trade a market order).
const TRADES_V2: &str = r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/CHF","side":"sell","price":5541.2,"qty":0.15850568,"ord_type":"limit","trade_id":4665846,"timestamp":"2018-08-18T17:40:57.321597Z"},{"symbol":"BTC/CHF","side":"buy","price":6060.0,"qty":0.02455,"ord_type":"market","trade_id":4665847,"timestamp":"2018-08-18T17:40:57.324998Z"}]}"#;
/// The minute candle those two trades make.
const OHLC_V2: &str = r#"{"channel":"ohlc","type":"update","timestamp":"2018-08-18T17:40:57.400000000Z","data":[{"symbol":"BTC/CHF","open":5541.2,"high":6060.0,"low":5541.2,"close":6060.0,"trades":2,"volume":0.18305568,"vwap":5612.6,"interval_begin":"2018-08-18T17:40:00.000000000Z","interval":1,"timestamp":"2018-08-18T17:41:00.000000Z"}]}"#;
/// An `ohlc` snapshot: the previous minute's candle, then the current one.
const OHLC_SNAPSHOT_V2: &str = r#"{"channel":"ohlc","type":"snapshot","timestamp":"2018-08-18T17:40:30.000000000Z","data":[{"symbol":"BTC/CHF","open":5500.0,"high":5510.0,"low":5490.0,"close":5505.0,"trades":3,"volume":1.5,"vwap":5501.0,"interval_begin":"2018-08-18T17:39:00.000000000Z","interval":1,"timestamp":"2018-08-18T17:40:00.000000Z"},{"symbol":"BTC/CHF","open":5541.2,"high":5541.2,"low":5541.2,"close":5541.2,"trades":1,"volume":0.15850568,"vwap":5541.2,"interval_begin":"2018-08-18T17:40:00.000000000Z","interval":1,"timestamp":"2018-08-18T17:41:00.000000Z"}]}"#;
const UNWANTED_TRADE_V2: &str = r#"{"channel":"trade","type":"update","data":[{"symbol":"XMR/USD","side":"sell","price":250.1,"qty":0.5,"ord_type":"limit","trade_id":1,"timestamp":"2018-08-18T17:40:57.321597Z"}]}"#;

/// ccxt 4.5.90 `kraken.handle_ticker` (ccxt/pro/kraken.py) on [`TICKER_V2`], printed by
/// `ccxt_oracle_v2.py`, less `indexPrice` and `markPrice`, which ccxt's `safe_ticker` adds and
/// the Ticker of the ccxt Manual (and ours) has not. Note `average`: `(open + last) / 2` to 18
/// decimals, since ccxt's v2 handler passes no market (its REST and v1 tickers cut it to the
/// price's decimals: 5644.2); and `percentage`: Kraken's `change_pct` as sent.
fn ccxt_ticker() -> Value {
    json!({"symbol": "BTC/CHF", "timestamp": null, "datetime": null, "high": 5783.0,
        "low": 5505.0, "bid": 5525.1, "bidVolume": 1.0, "ask": 5525.4, "askVolume": 1.0,
        "vwap": 5653.78939, "open": 5763.4, "close": 5525.1, "last": 5525.1,
        "previousClose": null, "change": -238.3, "percentage": -4.13, "average": 5644.25,
        "baseVolume": 3591.17907851, "quoteVolume": 20303770.171669815,
        "info": {"symbol": "BTC/CHF", "bid": 5525.1, "bid_qty": 1.0, "ask": 5525.4,
            "ask_qty": 1.0, "last": 5525.1, "volume": 3591.17907851, "vwap": 5653.78939,
            "low": 5505.0, "high": 5783.0, "change": -238.3, "change_pct": -4.13}})
}

/// ccxt 4.5.90 `kraken.handle_trades` → `parse_trade` (ccxt/kraken.py, the `watchTrades` dict
/// form) on [`TRADES_V2`], printed by `ccxt_oracle_v2.py`, with our two documented differences
/// applied by [`as_published`].
fn ccxt_trades() -> Value {
    json!([
        {"id": "4665846", "order": null,
         "info": {"symbol": "BTC/CHF", "side": "sell", "price": 5541.2, "qty": 0.15850568,
                  "ord_type": "limit", "trade_id": 4665846,
                  "timestamp": "2018-08-18T17:40:57.321597Z"},
         "timestamp": 1534614057321_i64, "datetime": "2018-08-18T17:40:57.321597Z",
         "symbol": "BTC/CHF", "type": "limit", "side": "sell", "takerOrMaker": null,
         "price": 5541.2, "amount": 0.15850568, "cost": 878.311674016,
         "fee": {"cost": null, "currency": null}, "fees": []},
        {"id": "4665847", "order": null,
         "info": {"symbol": "BTC/CHF", "side": "buy", "price": 6060.0, "qty": 0.02455,
                  "ord_type": "market", "trade_id": 4665847,
                  "timestamp": "2018-08-18T17:40:57.324998Z"},
         "timestamp": 1534614057324_i64, "datetime": "2018-08-18T17:40:57.324998Z",
         "symbol": "BTC/CHF", "type": "market", "side": "buy", "takerOrMaker": null,
         "price": 6060.0, "amount": 0.02455, "cost": 148.773,
         "fee": {"cost": null, "currency": null}, "fees": []}
    ])
}

/// A ccxt trade as the adapter publishes it: `datetime` in the ccxt Manual's form, milliseconds
/// (ccxt's v2 `parse_trade` passes Kraken's microsecond text through), and `fee` `null` where
/// ccxt writes `{"cost": null, "currency": null}` (as for v1 trades).
fn as_published(mut trade: Value) -> Value {
    let ms = trade["timestamp"].as_i64().unwrap();
    trade["datetime"] = iso8601(ms).into();
    trade["fee"] = Value::Null;
    trade
}

/// ccxt 4.5.90 `kraken.handle_ohlcv` on [`OHLC_V2`]: the candle at `interval_begin`, timeframe
/// `1m` (`find_timeframe(1)`).
fn ccxt_candle() -> Value {
    json!([
        1534614000000_i64,
        5541.2,
        6060.0,
        5541.2,
        6060.0,
        0.18305568
    ])
}

// ---------------------------------------------------------------- the derived v2 replay

/// A decimal as the derived v2 messages write it: the JSON number without the trailing zeros
/// v1 pads its strings with (`"56218.30000"` → `56218.3`, `"1.00000000"` → `1`).
fn shortest(number: &DecimalText) -> String {
    let text = number.as_str();
    match text.split_once('.') {
        Some((int, frac)) => match frac.trim_end_matches('0') {
            "" => int.to_owned(),
            frac => format!("{int}.{frac}"),
        },
        None => text.to_owned(),
    }
}

/// `text` with every JSON number value written without trailing zeros
/// (`"qty":0.10000000` → `"qty":0.1`, `"price":45281.0` → `"price":45281`).
fn trim_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(colon) = rest.find(':') {
        out.push_str(&rest[..=colon]);
        rest = &rest[colon + 1..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..end];
        // A JSON number ends the value (not the seconds of a timestamp string).
        let value = matches!(rest[end..].chars().next(), Some(',' | '}' | ']'));
        match DecimalText::parse(number) {
            Some(parsed) if value && number.contains('.') => out.push_str(&shortest(&parsed)),
            _ => out.push_str(number),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// CRC-32 (IEEE), bit by bit: independent of the adapter's table-driven one.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Kraken's v2 checksum of `book`, computed from its floats: each price and quantity formatted
/// with the pair's decimals, `.` and leading zeros dropped, top 10 asks then top 10 bids.
fn v2_checksum(book: &KrakenBook, pair: &KrakenPair) -> u32 {
    let digits = |value: f64, decimals: u32| {
        let text = format!("{value:.*}", decimals as usize).replace('.', "");
        text.trim_start_matches('0').to_owned()
    };
    let mut text = String::new();
    for level in book.asks().take(10).chain(book.bids().take(10)) {
        let [price, qty] = level.as_ccxt();
        text.push_str(&digits(price, pair.price_decimals));
        text.push_str(&digits(qty, pair.amount_decimals));
    }
    crc32(text.as_bytes())
}

fn v2_levels<'a>(levels: impl Iterator<Item = (&'a DecimalText, &'a DecimalText)>) -> String {
    let levels: Vec<String> = levels
        .map(|(price, qty)| format!(r#"{{"price":{},"qty":{}}}"#, shortest(price), shortest(qty)))
        .collect();
    format!("[{}]", levels.join(","))
}

/// RFC 3339 with microseconds, as v2 writes its timestamps.
fn rfc3339(ms: i64) -> String {
    let text = iso8601(ms);
    format!("{}000Z", text.trim_end_matches('Z'))
}

/// A v2 book message of `pair`.
fn v2_book_message(
    pair: &KrakenPair,
    snapshot: bool,
    asks: &str,
    bids: &str,
    checksum: u32,
    timestamp_ms: i64,
) -> String {
    format!(
        r#"{{"channel":"book","type":"{}","data":[{{"symbol":"{}","bids":{bids},"asks":{asks},"checksum":{checksum},"timestamp":"{}"}}]}}"#,
        if snapshot { "snapshot" } else { "update" },
        pair.v2_name,
        rfc3339(timestamp_ms)
    )
}

/// The v2 snapshot of a whole book as it is (a resubscription's answer).
fn v2_snapshot(book: &KrakenBook, pair: &KrakenPair) -> String {
    let asks = v2_levels(book.asks().map(|l| (&l.price, &l.qty)));
    let bids = v2_levels(book.bids().map(|l| (&l.price, &l.qty)));
    let timestamp = book.timestamp_ms().unwrap_or(1_618_678_200_000);
    v2_book_message(pair, true, &asks, &bids, v2_checksum(book, pair), timestamp)
}

/// The capture's book messages in v2's shape, each with the v2 checksum of the book it makes.
struct Derived {
    entries: Vec<Entry>,
    clean: Clean,
    /// By wsname: v2 checksums that equal the v1 checksum of the same update.
    carried_over: BTreeMap<String, usize>,
}

fn derive(markets: &KrakenMarkets) -> Derived {
    let (clean, v1_entries) = Clean::new(markets);
    let mut books: HashMap<String, KrakenBook> = HashMap::new();
    let mut entries = Vec::new();
    let mut carried_over = BTreeMap::new();
    for entry in v1_entries {
        let Some((ws_name, step)) = entry.step.clone() else {
            continue;
        };
        let pair = markets.by_ws_name(&ws_name).unwrap();
        let delta = match step {
            0 => &clean.snapshots[&ws_name],
            k => &clean.updates[&ws_name][k - 1],
        };
        let book = books
            .entry(ws_name.clone())
            .or_insert_with(|| KrakenBook::new(clean.symbol(&ws_name), 1000));
        if step == 0 {
            book.apply_snapshot(delta).unwrap();
        } else {
            book.apply_update(delta).unwrap();
        }
        let checksum = v2_checksum(book, pair);
        *carried_over.entry(ws_name.clone()).or_default() +=
            usize::from(delta.checksum == Some(checksum));
        let timestamp = delta
            .asks
            .iter()
            .chain(&delta.bids)
            .filter_map(|l| l.timestamp_ms)
            .max()
            .unwrap_or(1_618_678_200_000);
        let asks = v2_levels(delta.asks.iter().map(|l| (&l.price, &l.qty)));
        let bids = v2_levels(delta.bids.iter().map(|l| (&l.price, &l.qty)));
        entries.push(Entry {
            text: v2_book_message(pair, step == 0, &asks, &bids, checksum, timestamp),
            step: Some((ws_name, step)),
        });
    }
    Derived {
        entries,
        clean,
        carried_over,
    }
}

// ---------------------------------------------------------------- a v2 server

/// What a v2 replay server does.
const TIME: &str = "2021-04-17T16:48:53.000000Z";

/// Answers one client request; returns the messages to send.
fn answer(
    text: &str,
    script: &Script,
    truth: &Truth,
    subscribed: &mut BTreeSet<String>,
    replaying: bool,
) -> Vec<String> {
    let Ok(request) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let req_id = request["req_id"].clone();
    let method = request["method"].as_str().unwrap_or("");
    if method == "ping" {
        return vec![json!({"method": "pong", "req_id": req_id}).to_string()];
    }
    if method != "subscribe" && method != "unsubscribe" {
        return Vec::new();
    }
    let params = &request["params"];
    let channel = params["channel"].as_str().unwrap_or("");
    let symbols: Vec<String> = params["symbol"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for symbol in symbols {
        if method == "subscribe" && script.refuse.contains(&symbol) {
            out.push(
                json!({"error": format!("Currency pair not supported {symbol}"),
                    "method": method, "req_id": req_id, "success": false, "symbol": symbol,
                    "time_in": TIME, "time_out": TIME})
                .to_string(),
            );
            continue;
        }
        let mut result = json!({"channel": channel, "symbol": symbol});
        for key in ["depth", "interval"] {
            if !params[key].is_null() {
                result[key] = params[key].clone();
            }
        }
        out.push(
            json!({"method": method, "req_id": req_id, "result": result, "success": true,
                "time_in": TIME, "time_out": TIME})
            .to_string(),
        );
        if channel != "book" {
            continue;
        }
        let Ok(pair) = v2_markets(script).by_v2_name(&symbol) else {
            continue;
        };
        if method == "subscribe" {
            subscribed.insert(pair.ws_name.clone());
            if replaying {
                if let Some((book, _)) = truth.books.get(&pair.ws_name) {
                    out.push(v2_snapshot(book, pair));
                }
            }
        } else {
            subscribed.remove(&pair.ws_name);
        }
    }
    out
}

/// Kraken's v2 feed, spoken by the replay server the v1 tests share.
const V2: Dialect = Dialect {
    greeting: Some(
        r#"{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":1,"system":"online","version":"2.0.0"}]}"#,
    ),
    heartbeat: r#"{"channel":"heartbeat"}"#,
    answer,
    resubscribes_faulty: |script, text| {
        let faulty = &v2_markets(script).by_ws_name(FAULTY).unwrap().v2_name;
        let request: Value = serde_json::from_str(text).unwrap_or_default();
        request["method"] == "subscribe" && request["params"]["symbol"] == json!([faulty])
    },
};

/// The market list a v2 script carries.
fn v2_markets(script: &Script) -> &KrakenMarkets {
    script
        .markets
        .as_deref()
        .expect("a v2 script names its markets")
}

fn v2_settings(ws_url: String, rest_url: String) -> KrakenSettings {
    KrakenSettings {
        enabled: true,
        feed: FeedVersion::V2,
        ws_url,
        rest_url,
        book_depth: 1000,
        ..KrakenSettings::default()
    }
}

async fn start(script: Script, channels: &[String]) -> Harness {
    let (rest_url, _) = http_server(0).await;
    let (ws_url, server) = replay_server(script, &V2).await;
    let published = Arc::new(Mutex::new(Vec::new()));
    let router = FakeRouter(published.clone()).start();
    let adapter = KrakenAdapter::new(v2_settings(ws_url, rest_url), router.recipient()).start();
    for channel in channels {
        adapter.do_send(Demand::Start {
            channel: channel.clone(),
        });
    }
    Harness {
        adapter,
        published,
        server,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------- pure tests

#[test]
fn every_v2_checksum_of_the_derived_replay_matches() {
    let markets = markets();
    let derived = derive(&markets);
    let mut books: HashMap<String, KrakenBook> = HashMap::new();
    let mut verified = 0u64;
    for entry in &derived.entries {
        let V2Message::Book(messages) = parse_v2_message(&entry.text, &markets).unwrap() else {
            panic!("a book message: {}", entry.text);
        };
        for message in messages {
            let pair = message.pair;
            let book = books.entry(pair.market.symbol.clone()).or_insert_with(|| {
                KrakenBook::new(pair.market.symbol.as_str(), 1000)
                    .with_precision(pair.price_decimals, pair.amount_decimals)
            });
            let result = if message.snapshot {
                book.apply_snapshot(&message.delta)
            } else {
                book.apply_update(&message.delta)
            };
            assert_eq!(result, Ok(()), "{}", entry.text);
            verified += u64::from(message.delta.checksum.is_some());
        }
    }
    println!(
        "kraken v2 derived replay: {verified} v2 checksums verified ({} messages); v1 checksums \
         that are also right in v2, by pair: {:?}",
        derived.entries.len(),
        derived.carried_over
    );
    assert_eq!(verified, CAPTURED_SNAPSHOTS + CAPTURED_CHECKSUMS);
    // v1's texts mostly have other decimals than the pairs' (XBT/CHF prices `56218.30000`, 1
    // decimal in v2): their v1 checksums are never v2's. Only OMG/USD's v1 texts have its
    // decimals (6 and 8), so only its v1 checksums would carry over, all of them.
    for (ws_name, carried) in &derived.carried_over {
        let expected = if ws_name == "OMG/USD" {
            derived.clean.updates[ws_name].len()
        } else {
            0
        };
        assert_eq!(*carried, expected, "{ws_name}");
    }
    // The numbers really came without v1's trailing zeros (`56218.3`, not `56218.30000`).
    assert!(derived
        .entries
        .iter()
        .all(|e| trim_numbers(&e.text) == e.text));
    assert!(derived.entries[0].text.contains(r#""qty":13355.8745075"#));
    // And the books are the capture's.
    for (symbol, expected) in derived.clean.finals() {
        let book = &books[&symbol];
        assert_eq!(book.to_ccxt(1000), expected.to_ccxt(1000), "{symbol}");
    }
}

#[test]
fn the_v2_checksum_writes_numbers_with_the_pairs_decimals() {
    // Kraken's documented snapshot writes `0.10000000`; the same numbers as a JSON encoder may
    // write them (`0.1`) give the same checksum once written with BTC/USD's decimals (1, 8).
    let trimmed = trim_numbers(V2_SNAPSHOT);
    assert!(
        trimmed.contains(r#"{"price":45283.5,"qty":0.1}"#)
            && trimmed.contains(r#"{"price":45281,"qty":0.1}"#),
        "{trimmed}"
    );
    let markets = markets();
    let pair = markets.by_v2_name("BTC/USD").unwrap();
    assert_eq!(
        (
            pair.price_decimals,
            pair.amount_decimals,
            pair.ws_name.as_str()
        ),
        (1, 8, "XBT/USD")
    );
    for text in [V2_SNAPSHOT, trimmed.as_str()] {
        let V2Message::Book(books) = parse_v2_message(text, &markets).unwrap() else {
            panic!("a book");
        };
        let [message] = books.as_slice() else {
            panic!("one symbol");
        };
        assert_eq!(message.pair.market.symbol, "BTC/USD");
        let mut v2 = KrakenBook::new("BTC/USD", 10).with_precision(1, 8);
        assert_eq!(v2.apply_snapshot(&message.delta), Ok(()));
        assert_eq!(v2.checksum(), 3_310_070_434);
    }
    // With v1's rule (the text as sent), the trimmed numbers miss.
    let V2Message::Book(books) = parse_v2_message(&trimmed, &markets).unwrap() else {
        panic!("a book");
    };
    let mut v1_rule = KrakenBook::new("BTC/USD", 10);
    assert!(matches!(
        v1_rule.apply_snapshot(&books[0].delta),
        Err(BookError::ChecksumMismatch { .. })
    ));
}

#[test]
fn v2_tickers_trades_and_candles_are_what_ccxt_yields() {
    let markets = markets();
    let V2Message::Tickers(tickers) = parse_v2_message(TICKER_V2, &markets).unwrap() else {
        panic!("tickers");
    };
    let [ticker] = tickers.as_slice() else {
        panic!("one ticker");
    };
    let json = serde_json::to_value(ticker).unwrap();
    let keys: BTreeSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, TICKER_FIELDS.iter().copied().collect());
    assert_eq!(json, ccxt_ticker());

    let V2Message::Trades(trades) = parse_v2_message(TRADES_V2, &markets).unwrap() else {
        panic!("trades");
    };
    let json = serde_json::to_value(&trades).unwrap();
    for trade in json.as_array().unwrap() {
        let keys: BTreeSet<&str> = trade
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, TRADE_FIELDS.iter().copied().collect());
    }
    let expected: Vec<Value> = ccxt_trades()
        .as_array()
        .unwrap()
        .iter()
        .cloned()
        .map(as_published)
        .collect();
    assert_eq!(json, Value::Array(expected));

    let V2Message::Ohlc { snapshot, candles } = parse_v2_message(OHLC_V2, &markets).unwrap() else {
        panic!("candles");
    };
    assert!(!snapshot);
    let [candle] = candles.as_slice() else {
        panic!("one candle");
    };
    assert_eq!((candle.symbol.as_str(), candle.interval), ("BTC/CHF", 1));
    assert_eq!(timeframe(candle.interval), Some("1m"));
    assert_eq!(serde_json::to_value(candle.candle).unwrap(), ccxt_candle());
}

#[test]
fn v2_answers_heartbeats_and_bad_messages_are_classified() {
    let markets = markets();
    let parse = |text: &str| parse_v2_message(text, &markets);
    assert_eq!(
        parse(r#"{"channel":"heartbeat"}"#).unwrap(),
        V2Message::Heartbeat
    );
    assert_eq!(
        parse(r#"{"method":"pong","req_id":7,"time_in":"x","time_out":"y"}"#).unwrap(),
        V2Message::Pong { req_id: Some(7) }
    );
    assert_eq!(
        parse(r#"{"channel":"status","type":"update","data":[{"system":"maintenance"}]}"#).unwrap(),
        V2Message::Status {
            system: "maintenance".into()
        }
    );
    let ok = r#"{"method":"subscribe","req_id":1000001,"result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"t","time_out":"t"}"#;
    assert_eq!(
        parse(ok).unwrap(),
        V2Message::Ack(V2Ack {
            method: "subscribe".into(),
            success: true,
            req_id: Some(1_000_001),
            channel: Some("book".into()),
            symbol: Some("BTC/USD".into()),
            interval: None,
            error: None,
        })
    );
    // A refusal names its symbol beside `result`.
    let refused = r#"{"error":"Currency pair not supported XBT/USD","method":"subscribe","success":false,"symbol":"XBT/USD","time_in":"t","time_out":"t"}"#;
    let V2Message::Ack(ack) = parse(refused).unwrap() else {
        panic!("an answer");
    };
    assert_eq!(
        (ack.success, ack.symbol.as_deref(), ack.error.as_deref()),
        (
            false,
            Some("XBT/USD"),
            Some("Currency pair not supported XBT/USD")
        )
    );
    for (text, kind) in [
        ("{", "invalid JSON"),
        (r#"{"method":"mystery"}"#, "unknown event"),
        (
            r#"{"channel":"spread","type":"update","data":[]}"#,
            "unsupported channel",
        ),
        (r#"{"something":"else"}"#, "unexpected shape"),
        (
            r#"{"channel":"book","type":"snapshot","data":[{"symbol":"NOPE/USD","bids":[],"asks":[]}]}"#,
            "unknown pair",
        ),
        (
            r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":-1,"qty":1}],"asks":[]}]}"#,
            "bad number",
        ),
        (
            r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"up","price":1,"qty":1,"timestamp":"2023-01-01T00:00:00Z"}]}"#,
            "bad field",
        ),
        (
            r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":1e5}]}"#,
            "bad field",
        ),
    ] {
        let error = parse(text).unwrap_err();
        let named = match error {
            MessageError::Json(_) => "invalid JSON",
            MessageError::UnknownEvent(_) => "unknown event",
            MessageError::UnknownChannel(_) => "unsupported channel",
            MessageError::Shape(_) => "unexpected shape",
            MessageError::UnknownPair(_) => "unknown pair",
            MessageError::BadNumber(_) => "bad number",
            MessageError::BadField { .. } => "bad field",
        };
        assert_eq!(named, kind, "{text}");
    }
}

#[test]
fn v2_names_are_the_ccxt_symbols() {
    let markets = markets();
    // Kraken's v2 writes `BTC` for `XBT` and `DOGE` for `XDG`; for every pair of KRAKEN.0 that
    // is the ccxt symbol (whose other renames, BCC and BCHSV, no wsname of the list has).
    assert_eq!(markets.len(), 293);
    for pair in markets.pairs() {
        assert_eq!(pair.v2_name, pair.market.symbol, "{}", pair.ws_name);
        assert_eq!(
            markets.by_v2_name(&pair.v2_name).unwrap().ws_name,
            pair.ws_name
        );
    }
    assert_eq!(markets.by_v2_name("DOGE/USD").unwrap().ws_name, "XDG/USD");
    assert_eq!(markets.by_v2_name("ETH/BTC").unwrap().ws_name, "ETH/XBT");
    assert!(markets.by_v2_name("XDG/USD").is_err());
    assert!(markets.by_v2_name("XBT/USD").is_err());
}

#[test]
fn the_feed_speaks_kraken_v2() {
    let feed = KrakenFeed::v2("wss://ws.kraken.com/v2", markets(), 10);
    let channels: BTreeSet<String> = strings(&[
        "book:kraken:BTC/USD",
        "book:kraken:ETH/USD",
        "ticker:kraken:BTC/USD",
        "trades:kraken:DOGE/USD",
        "ohlcv:kraken:BTC/USD:1h",
        "ohlcv:kraken:ETH/USD:1h",
        "ohlcv:kraken:BTC/USD:1m",
        "ohlcv:kraken:BTC/USD:2m",
        "book:kraken:NOPE/USD",
    ])
    .into_iter()
    .collect();
    assert_eq!(feed.url(&channels), "wss://ws.kraken.com/v2");
    let messages: Vec<Value> = feed
        .subscribe(&channels)
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    // v2 symbols (XDG/USD is DOGE/USD, XBT/USD BTC/USD); one request per kind and interval; the
    // req_id says what for and which channel.
    assert_eq!(
        messages,
        [
            json!({"method":"subscribe","params":{"channel":"book","depth":10,"symbol":["BTC/USD","ETH/USD"]},"req_id":1_000_001}),
            json!({"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD"]},"req_id":1_000_002}),
            json!({"method":"subscribe","params":{"channel":"trade","symbol":["DOGE/USD"]},"req_id":1_000_003}),
            json!({"method":"subscribe","params":{"channel":"ohlc","interval":1,"symbol":["BTC/USD"]},"req_id":1_400_001}),
            json!({"method":"subscribe","params":{"channel":"ohlc","interval":60,"symbol":["BTC/USD","ETH/USD"]},"req_id":1_400_060}),
        ]
    );
    let added: BTreeSet<String> = strings(&["trades:kraken:BTC/USD"]).into_iter().collect();
    let removed: BTreeSet<String> = strings(&["book:kraken:ETH/USD", "ohlcv:kraken:ETH/USD:1h"])
        .into_iter()
        .collect();
    let change: Vec<Value> = feed
        .change(&added, &removed)
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert_eq!(
        change,
        [
            json!({"method":"unsubscribe","params":{"channel":"book","depth":10,"symbol":["ETH/USD"]},"req_id":2_000_001}),
            json!({"method":"unsubscribe","params":{"channel":"ohlc","interval":60,"symbol":["ETH/USD"]},"req_id":2_400_060}),
            json!({"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"]},"req_id":1_000_003}),
        ]
    );
    assert_eq!(
        feed.ping(),
        Some((Duration::from_secs(10), r#"{"method":"ping"}"#.to_owned()))
    );
    assert_eq!(v2_req_id(4, Kind::Ohlcv(21600)), 4_421_600);
    assert_eq!(
        parse_channel_for(FeedVersion::V2, "ohlcv:kraken:BTC/USD:1w"),
        Ok((Kind::Ohlcv(10080), "BTC/USD"))
    );
    assert_eq!(
        Kind::Ohlcv(10080).channel("BTC/USD"),
        "ohlcv:kraken:BTC/USD:1w"
    );
    let error = parse_channel_for(FeedVersion::V2, "ohlcv:kraken:BTC/USD:2m").unwrap_err();
    assert!(error.contains(r#"no timeframe "2m""#), "{error}");
    assert!(parse_channel_for(FeedVersion::V2, "candles:kraken:BTC/USD").is_err());
    // The v1 feed has no candles.
    assert!(parse_channel("ohlcv:kraken:BTC/USD:1m").is_err());
}

#[test]
fn the_feed_setting_and_its_endpoint() {
    let defaults = KrakenSettings::default();
    assert_eq!(
        (defaults.feed, defaults.ws_url.as_str()),
        (FeedVersion::V2, "wss://ws.kraken.com/v2")
    );
    assert_eq!(defaults.check(), Ok(()));
    let v1: KrakenSettings =
        serde_json::from_value(json!({"feed": "v1", "ws_url": "wss://ws.kraken.com"})).unwrap();
    assert_eq!((v1.feed, v1.check()), (FeedVersion::V1, Ok(())));
    assert!(serde_json::from_value::<KrakenSettings>(json!({"feed": "v3"})).is_err());
    // Kraken's own hosts: the path must be the feed's.
    for (feed, url) in [
        (FeedVersion::V1, "wss://ws.kraken.com/v2"),
        (FeedVersion::V2, "wss://ws.kraken.com"),
        (FeedVersion::V2, "wss://beta-ws.kraken.com/"),
    ] {
        let settings = KrakenSettings {
            feed,
            ws_url: url.to_owned(),
            ..KrakenSettings::default()
        };
        let error = settings.check().unwrap_err();
        assert!(error.contains("is not Kraken's WebSocket"), "{error}");
    }
    for (feed, url) in [
        (FeedVersion::V2, "wss://beta-ws.kraken.com/v2"),
        (FeedVersion::V1, "wss://beta-ws.kraken.com/"),
        (FeedVersion::V1, "ws://127.0.0.1:9000"),
        (FeedVersion::V2, "ws://127.0.0.1:9000"),
    ] {
        let settings = KrakenSettings {
            feed,
            ws_url: url.to_owned(),
            ..KrakenSettings::default()
        };
        assert_eq!(settings.check(), Ok(()), "{url}");
    }
}

// ---------------------------------------------------------------- the adapter on v2

#[actix::test]
async fn a_clean_v2_replay_verifies_every_checksum_and_publishes_sound_books() {
    let markets = markets();
    let Derived { entries, clean, .. } = derive(&markets);
    let expected = clean.finals();
    let channels = book_channels(&clean);
    let script = Script {
        markets: Some(markets.clone()),
        entries,
        expect: clean.snapshots.keys().cloned().collect(),
        clean,
        refuse: BTreeSet::new(),
        prelude: Vec::new(),
        pause_after: None,
        send_all: false,
    };
    let harness = start(script, &channels).await;
    let stats = harness.settle(&expected).await;
    let publications = harness.publications();
    let (count, last) = check_book_publications(&publications, 20);
    println!(
        "kraken v2 clean replay: {} messages, {} snapshots, {} updates, {} v2 checksums \
         verified, {} mismatches, {} resyncs, {count} book publications (none crossed)",
        stats.messages,
        stats.snapshots,
        stats.updates,
        stats.checksums_verified,
        stats.checksum_mismatches,
        stats.resyncs
    );
    // Every snapshot and every update carried a checksum, and each matched.
    assert_eq!(
        stats.checksums_verified,
        CAPTURED_SNAPSHOTS + CAPTURED_CHECKSUMS
    );
    assert_eq!(
        (stats.snapshots, stats.updates),
        (CAPTURED_SNAPSHOTS, CAPTURED_CHECKSUMS)
    );
    assert_eq!((stats.checksum_mismatches, stats.resyncs), (0, 0));
    assert!(stats.bad_messages.is_empty(), "{:?}", stats.bad_messages);
    assert_eq!(count as u64, CAPTURED_SNAPSHOTS + CAPTURED_CHECKSUMS);
    assert_eq!(last.len(), 10);
    for (symbol, book) in &expected {
        let top = serde_json::to_value(book.to_ccxt(20)).unwrap();
        assert_eq!(last[symbol]["bids"], top["bids"], "{symbol}");
        assert_eq!(last[symbol]["asks"], top["asks"], "{symbol}");
    }
    // One subscribe for all ten books, by v2 symbol, at the configured depth.
    let subscribes: Vec<Value> = harness
        .client_messages()
        .into_iter()
        .filter(|m| m["method"] == "subscribe")
        .collect();
    assert_eq!(subscribes.len(), 1, "{subscribes:?}");
    let symbols: BTreeSet<&str> = subscribes[0]["params"]["symbol"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        symbols,
        [
            "ADA/BTC",
            "BTC/CHF",
            "ETH/CHF",
            "GRT/ETH",
            "KSM/BTC",
            "OCEAN/BTC",
            "OMG/USD",
            "SC/EUR",
            "WAVES/EUR",
            "XMR/USD"
        ]
        .into()
    );
    assert_eq!(
        (&subscribes[0]["params"]["depth"], &subscribes[0]["req_id"]),
        (&json!(1000), &json!(1_000_001))
    );
    assert_eq!(
        harness.notifications(),
        [json!({"type":"adapter","exchange":"kraken","status":"up"})]
    );
}

#[actix::test]
async fn a_corrupted_v2_checksum_resyncs_the_book_and_is_announced() {
    let markets = markets();
    let Derived {
        mut entries, clean, ..
    } = derive(&markets);
    let expected = clean.finals();
    // An update of BTC/CHF from the middle of the capture, its checksum off by one.
    let k = clean.updates[FAULTY].len() / 2;
    let at = entries
        .iter()
        .position(|e| e.step == Some((FAULTY.to_owned(), k)))
        .unwrap();
    let message: Value = serde_json::from_str(&entries[at].text).unwrap();
    let checksum = message["data"][0]["checksum"].as_u64().unwrap();
    entries[at].text = entries[at].text.replace(
        &format!(r#""checksum":{checksum},"#),
        &format!(r#""checksum":{},"#, checksum ^ 1),
    );
    let channels = book_channels(&clean);
    let script = Script {
        markets: Some(markets.clone()),
        entries,
        expect: clean.snapshots.keys().cloned().collect(),
        clean,
        refuse: BTreeSet::new(),
        prelude: Vec::new(),
        pause_after: Some(at),
        send_all: false,
    };
    let harness = start(script, &channels).await;
    let stats = harness.settle(&expected).await;
    let publications = harness.publications();
    let (count, _) = check_book_publications(&publications, 20);
    let resubscriptions: Vec<Value> = harness
        .client_messages()
        .into_iter()
        .filter(|m| m["params"]["symbol"] == json!(["BTC/CHF"]))
        .collect();
    println!(
        "kraken v2 corrupted checksum at BTC/CHF update {k}: {} checksums verified, {} \
         mismatches, {} resyncs ({} done), {count} book publications, client sent \
         {resubscriptions:?}",
        stats.checksums_verified, stats.checksum_mismatches, stats.resyncs, stats.resyncs_done
    );
    assert_eq!((stats.checksum_mismatches, stats.resyncs), (1, 1));
    assert_eq!(stats.resyncs_done, 1);
    // The corrupted update was not verified; the new snapshot was; nothing else was lost.
    assert_eq!(
        stats.checksums_verified + stats.checksum_mismatches + stats.ignored,
        CAPTURED_SNAPSHOTS + 1 + CAPTURED_CHECKSUMS
    );
    assert_eq!(stats.snapshots, CAPTURED_SNAPSHOTS + 1);
    assert_eq!(
        resubscriptions,
        [
            json!({"method":"unsubscribe","params":{"channel":"book","depth":1000,"symbol":["BTC/CHF"]},"req_id":3_000_001}),
            json!({"method":"subscribe","params":{"channel":"book","depth":1000,"symbol":["BTC/CHF"]},"req_id":4_000_001}),
        ]
    );
    let notices = harness.notifications();
    let resyncing: Vec<&Value> = notices
        .iter()
        .filter(|n| n["status"] == "resyncing")
        .collect();
    assert_eq!(resyncing.len(), 1, "{notices:?}");
    assert_eq!(resyncing[0]["symbol"], "BTC/CHF");
    let reason = resyncing[0]["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        format!(
            "book checksum mismatch: exchange sent {}, book gives {checksum}",
            checksum ^ 1
        )
    );
    assert_eq!(
        notices.last().unwrap(),
        &json!({"type":"adapter","exchange":"kraken","status":"up"})
    );
}

#[actix::test]
async fn v2_channels_follow_demand_and_unknown_or_refused_ones_are_announced() {
    let markets = markets();
    let Derived { entries, clean, .. } = derive(&markets);
    let expected: BTreeMap<String, KrakenBook> = clean
        .finals()
        .into_iter()
        .filter(|(symbol, _)| symbol == "BTC/CHF" || symbol == "XMR/USD")
        .collect();
    let channels = strings(&[
        "book:kraken:BTC/CHF",
        "book:kraken:XMR/USD",
        "ticker:kraken:BTC/CHF",
        "trades:kraken:BTC/CHF",
        "ohlcv:kraken:BTC/CHF:1m",
        "book:kraken:NOPE/USD",
        "ohlcv:kraken:BTC/CHF:2m",
        "book:kraken:ETH/USD",
    ]);
    let script = Script {
        markets: Some(markets.clone()),
        entries,
        expect: strings(&["XBT/CHF", "XMR/USD"]).into_iter().collect(),
        clean,
        refuse: strings(&["ETH/USD"]).into_iter().collect(),
        prelude: strings(&[
            "not json at all",
            r#"{"method":"mystery"}"#,
            r#"{"channel":"spread","type":"update","data":[]}"#,
            TICKER_V2,
            OHLC_SNAPSHOT_V2,
            TRADES_V2,
            OHLC_V2,
            UNWANTED_TRADE_V2,
        ]),
        pause_after: None,
        // Every pair's books, as if subscribed: the adapter picks.
        send_all: true,
    };
    let harness = start(script, &channels).await;
    let stats = harness.settle(&expected).await;
    let publications = harness.publications();
    let (count, _) = check_book_publications(&publications, 20);
    let by_channel: BTreeMap<&str, usize> =
        publications.iter().fold(BTreeMap::new(), |mut m, (c, _)| {
            *m.entry(c.as_str()).or_default() += 1;
            m
        });
    println!("kraken v2 subset: {by_channel:?}, stats {stats:?}");
    let published: BTreeSet<&str> = by_channel.keys().copied().collect();
    assert_eq!(
        published,
        [
            "book:kraken:BTC/CHF",
            "book:kraken:XMR/USD",
            "ticker:kraken:BTC/CHF",
            "trades:kraken:BTC/CHF",
            "ohlcv:kraken:BTC/CHF:1m",
            NOTIFICATIONS
        ]
        .into()
    );
    let updates = |ws_name: &str| harness_updates(ws_name);
    assert_eq!(count, 2 + updates("XBT/CHF") + updates("XMR/USD"));
    assert_eq!(stats.checksums_verified as usize, count);
    // The ticker and the trades are ccxt's.
    let of = |channel: &str| -> Vec<Value> {
        publications
            .iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, d)| d.clone())
            .collect()
    };
    assert_eq!(of("ticker:kraken:BTC/CHF"), [ccxt_ticker()]);
    let trades: Vec<Value> = ccxt_trades()
        .as_array()
        .unwrap()
        .iter()
        .cloned()
        .map(as_published)
        .collect();
    assert_eq!(of("trades:kraken:BTC/CHF"), trades);
    // Candles: the current one of the snapshot (not the one before), then the update.
    assert_eq!(
        of("ohlcv:kraken:BTC/CHF:1m"),
        [
            json!([
                1534614000000_i64,
                5541.2,
                5541.2,
                5541.2,
                5541.2,
                0.15850568
            ]),
            ccxt_candle()
        ]
    );
    assert_eq!(
        (
            stats.ticker_publications,
            stats.trade_publications,
            stats.ohlcv_publications
        ),
        (1, 2, 2)
    );
    assert_eq!(
        stats.bad_messages,
        [
            ("invalid JSON", 1),
            ("unknown event", 1),
            ("unsupported channel", 1)
        ]
        .into()
    );
    assert_eq!((stats.resyncs, stats.refused), (0, 1));
    // The other eight books, the unwanted trade and the snapshot's older candle: read, not
    // published.
    let others = [
        "WAVES/EUR",
        "KSM/XBT",
        "GRT/ETH",
        "SC/EUR",
        "ETH/CHF",
        "OCEAN/XBT",
        "OMG/USD",
        "ADA/XBT",
    ];
    let other_updates: usize = others.iter().map(|p| updates(p)).sum();
    assert_eq!(stats.ignored as usize, others.len() + other_updates + 1 + 1);
    // The unknown symbol, the unknown timeframe and the refused pair: announced once each.
    let errors: Vec<(String, String)> = harness
        .notifications()
        .iter()
        .filter(|n| n["status"] == "channel_error")
        .map(|n| {
            (
                n["channel"].as_str().unwrap().to_owned(),
                n["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    println!("kraken v2 channel errors: {errors:?}");
    let named: BTreeSet<(&str, &str)> = errors
        .iter()
        .map(|(c, r)| (c.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            (
                "book:kraken:ETH/USD",
                "Kraken refused: Currency pair not supported ETH/USD"
            ),
            (
                "book:kraken:NOPE/USD",
                r#"unknown symbol "NOPE/USD": not in Kraken's market list"#
            ),
            (
                "ohlcv:kraken:BTC/CHF:2m",
                r#"kraken has no timeframe "2m" (it has 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w, 2w)"#
            ),
        ]
        .into()
    );
    assert_eq!(errors.len(), 3);
    // Subscribed once per kind; the refused pair was asked once, not in a loop.
    let client = harness.client_messages();
    let asked_eth = client
        .iter()
        .filter(|m| m["method"] == "subscribe")
        .filter(|m| {
            m["params"]["symbol"]
                .as_array()
                .unwrap()
                .contains(&json!("ETH/USD"))
        })
        .count();
    assert_eq!(asked_eth, 1);
    let ohlc: Vec<&Value> = client
        .iter()
        .filter(|m| m["params"]["channel"] == "ohlc")
        .collect();
    assert_eq!(
        ohlc,
        [
            &json!({"method":"subscribe","params":{"channel":"ohlc","interval":1,"symbol":["BTC/CHF"]},"req_id":1_400_001})
        ]
    );

    // The live ticker answers fetch_ticker; the live book fetch_order_book.
    let ticker = harness
        .call(ExchangeMethod::FetchTicker, json!({"symbol": "BTC/CHF"}))
        .await
        .unwrap();
    assert_eq!(ticker, ccxt_ticker());
    let live = harness
        .call(
            ExchangeMethod::FetchOrderBook,
            json!({"symbol": "BTC/CHF", "limit": 5}),
        )
        .await
        .unwrap();
    let top5 = serde_json::to_value(expected["BTC/CHF"].to_ccxt(5)).unwrap();
    assert_eq!(
        (&live["bids"], &live["asks"]),
        (&top5["bids"], &top5["asks"])
    );
    let error = harness
        .call(ExchangeMethod::FetchOhlcv, json!({"symbol": "BTC/CHF"}))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotSupported);

    // Demand for XMR/USD's book and for the candles ends: unsubscribed.
    for channel in ["book:kraken:XMR/USD", "ohlcv:kraken:BTC/CHF:1m"] {
        harness.adapter.do_send(Demand::Stop {
            channel: channel.into(),
        });
    }
    let unsubscribes = || -> Vec<Value> {
        harness
            .client_messages()
            .into_iter()
            .filter(|m| m["method"] == "unsubscribe")
            .collect()
    };
    for _ in 0..100 {
        actix::clock::sleep(Duration::from_millis(20)).await;
        if unsubscribes().len() >= 2 {
            break;
        }
    }
    assert_eq!(
        unsubscribes(),
        [
            json!({"method":"unsubscribe","params":{"channel":"book","depth":1000,"symbol":["XMR/USD"]},"req_id":2_000_001}),
            json!({"method":"unsubscribe","params":{"channel":"ohlc","interval":1,"symbol":["BTC/CHF"]},"req_id":2_400_001}),
        ]
    );
}

/// Updates of a pair in the capture.
fn harness_updates(ws_name: &str) -> usize {
    let markets = markets();
    let (clean, _) = Clean::new(&markets);
    clean.updates[ws_name].len()
}

/// A v2 server whose first connection stays silent after the subscription, and whose later
/// ones send BTC/CHF's snapshot and heartbeats. Returns its URL, its connection count and the
/// first message of each connection.
async fn stalling_server() -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let firsts = Arc::new(Mutex::new(Vec::new()));
    let (count, log) = (connections.clone(), firsts.clone());
    let markets = markets();
    let snapshot = derive(&markets)
        .entries
        .into_iter()
        .find(|e| e.step == Some((FAULTY.to_owned(), 0)))
        .unwrap()
        .text;
    actix::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let (snapshot, log) = (snapshot.clone(), log.clone());
            actix::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                if let Some(Ok(Message::Text(first))) = ws.next().await {
                    log.lock().unwrap().push(first.to_string());
                }
                if n == 1 {
                    while let Some(Ok(_)) = ws.next().await {}
                    return;
                }
                if ws.send(Message::text(snapshot)).await.is_err() {
                    return;
                }
                loop {
                    tokio::select! {
                        message = ws.next() => if !matches!(message, Some(Ok(_))) { return },
                        () = tokio::time::sleep(Duration::from_millis(100)) => {
                            if ws.send(Message::text(r#"{"channel":"heartbeat"}"#)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (url, connections, firsts)
}

#[actix::test]
async fn a_stalled_v2_connection_is_made_again_and_resubscribed() {
    let (rest_url, _) = http_server(0).await;
    let (ws_url, connections, firsts) = stalling_server().await;
    let published = Arc::new(Mutex::new(Vec::new()));
    let router = FakeRouter(published.clone()).start();
    let settings = KrakenSettings {
        heartbeat_timeout: Duration::from_millis(300),
        ..v2_settings(ws_url, rest_url)
    };
    let adapter = KrakenAdapter::new(settings, router.recipient()).start();
    adapter.do_send(Demand::Start {
        channel: "book:kraken:BTC/CHF".into(),
    });
    let notices = || -> Vec<Value> {
        published
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == NOTIFICATIONS)
            .map(|(_, d)| serde_json::from_slice(d).unwrap())
            .collect()
    };
    for _ in 0..200 {
        actix::clock::sleep(Duration::from_millis(25)).await;
        if notices().len() >= 3 {
            break;
        }
    }
    let seen = notices();
    println!(
        "kraken v2 stall: {} connections, notices {seen:?}",
        connections.load(Ordering::SeqCst)
    );
    let statuses: Vec<&str> = seen.iter().map(|n| n["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["up", "down", "up"], "{seen:?}");
    assert_eq!(seen[1]["reason"], "connection: no message for 300ms");
    let stats = adapter.send(GetKrakenStats).await.unwrap();
    assert_eq!((stats.connects, stats.disconnects), (2, 1));
    assert_eq!((stats.snapshots, stats.checksums_verified), (1, 1));
    // Each connection subscribed the book again.
    let subscribe = json!({"method":"subscribe","params":{"channel":"book","depth":1000,"symbol":["BTC/CHF"]},"req_id":1_000_001});
    let firsts: Vec<Value> = firsts
        .lock()
        .unwrap()
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    assert!(firsts.len() >= 2);
    assert_eq!(firsts[..2], [subscribe.clone(), subscribe]);
    let books = published
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| c == "book:kraken:BTC/CHF")
        .count();
    assert_eq!(books, 1);
}
