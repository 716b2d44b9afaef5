//! The Binance adapter's pure half against the real captures (`fixtures/exchanges/BINANCE.*`,
//! recorded by cryptofeed on 2021-10-12) and against ccxt itself.
//!
//! Expected values come from `testdata/ccxt_oracle.json`, written by `testdata/ccxt_oracle.py`
//! with the PyPI package ccxt 4.5.90 (`ccxt.pro.binance`: `parse_market`, `parse_ws_ticker`,
//! `parse_ws_trade`, `handle_ohlcv`'s candle, `handle_order_book_message`, `parse_balance`,
//! `parse_order`) over the same captures and over Binance's documented examples. The order book
//! counts come from the script's own run of Binance's procedure, cross-checking this one.

use std::sync::OnceLock;

use serde_json::Value;

use super::depth::{Applied, DepthSnapshot, DepthSync, DepthUpdate, SyncError};
use super::markets::Markets;
use super::rest;
use super::stream::{parse_message, StreamEvent};
use crate::adapters::capture::{records, Record};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/{name}",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/exchanges")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn oracle() -> &'static Value {
    static ORACLE: OnceLock<Value> = OnceLock::new();
    ORACLE.get_or_init(|| serde_json::from_str(include_str!("testdata/ccxt_oracle.json")).unwrap())
}

/// BINANCE.0: one HTTP record, `GET /api/v3/exchangeInfo`.
fn markets() -> &'static Markets {
    static MARKETS: OnceLock<Markets> = OnceLock::new();
    MARKETS.get_or_init(|| {
        let text = fixture("BINANCE.0");
        let body = records(&text)
            .find_map(|r| match r {
                Ok(Record::Http { url, body, .. }) if url.ends_with("/exchangeInfo") => {
                    Some(body.to_owned())
                }
                _ => None,
            })
            .expect("exchangeInfo record");
        Markets::from_exchange_info(&body).unwrap()
    })
}

/// Compares our JSON with ccxt's. Keys, values and numbers must be the same (numbers exactly,
/// as `f64`), except at the dotted paths in `allow` (no array indices: `trades.side`), where
/// ccxt may lack the key, we may lack it, or ccxt may have `null` where we have a value.
fn assert_ccxt(ours: &Value, ccxt: &Value, allow: &[&str], path: &str) {
    let allowed = |p: &str| allow.contains(&p);
    let child = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (ours, ccxt) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let p = child(key);
                match b.get(key) {
                    Some(theirs) => assert_ccxt(value, theirs, allow, &p),
                    None => assert!(allowed(&p), "{p}: ours only ({value})"),
                }
            }
            for key in b.keys().filter(|k| !a.contains_key(*k)) {
                let p = child(key);
                assert!(allowed(&p), "{p}: ccxt only ({})", b[key]);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: lengths");
            for (x, y) in a.iter().zip(b) {
                assert_ccxt(x, y, allow, path);
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            assert_eq!(a.as_f64(), b.as_f64(), "{path}");
        }
        (_, Value::Null) if allowed(path) => {}
        (a, b) => assert_eq!(a, b, "{path}"),
    }
}

/// `value` without its `info` keys (top level and in `trades`), which the oracle leaves out.
fn without_info(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.remove("info");
        if let Some(Value::Array(trades)) = object.get_mut("trades") {
            for trade in trades {
                if let Some(t) = trade.as_object_mut() {
                    t.remove("info");
                }
            }
        }
    }
    value
}

fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

/// What the Python ccxt adds beyond the unified model (ts/src/base/types.ts), or leaves out.
const TICKER_EXTRAS: &[&str] = &["indexPrice", "markPrice"];
/// ccxt's public trade fee is `{cost: null, currency: null}`; ccxt's Fee type also has `rate`.
const TRADE_EXTRAS: &[&str] = &["fee.rate"];

#[test]
fn markets_parse_like_ccxt() {
    let markets = markets();
    let expected = &oracle()["markets"];
    assert_eq!(markets.len(), 1695);
    assert_eq!(Some(markets.len() as u64), expected["count"].as_u64());
    assert!(markets.skipped().is_empty(), "{:?}", markets.skipped());
    let active = markets.iter().filter(|m| m.active == Some(true)).count();
    assert_eq!(
        (active, 1262),
        (expected["active"].as_u64().unwrap() as usize, 1262)
    );
    let margin = markets.iter().filter(|m| m.margin).count();
    assert_eq!(Some(margin as u64), expected["margin"].as_u64());

    assert_eq!(markets.symbol_of("NKNUSDT"), Some("NKN/USDT"));
    assert_eq!(markets.symbol_of("nknusdt"), Some("NKN/USDT"));
    assert_eq!(markets.id_of("NKN/USDT"), Some("NKNUSDT"));
    assert_eq!(markets.stream_id_of("NKN/USDT"), Some("nknusdt"));
    assert_eq!(markets.symbol_of("NKN/USDT"), None);
    // Every id whose ccxt symbol is not its assets joined (Binance's renames), and a few more.
    for (id, symbol) in expected["symbols"].as_object().unwrap() {
        assert_eq!(markets.symbol_of(id), symbol.as_str(), "{id}");
        assert_eq!(markets.id_of(symbol.as_str().unwrap()), Some(id.as_str()));
    }

    let extras = &[
        "lowercaseId",
        "marginModes",
        "subType",
        "created",
        "index",
        "stock",
        "precision.base",
        "precision.quote",
        "precision.cost",
        "limits.market",
    ];
    for id in ["NKNUSDT", "ETHBTC"] {
        let market = markets.by_id(id).unwrap();
        assert_ccxt(&without_info(json(market)), &expected[id], extras, "");
        let info: Value = serde_json::from_str(market.info.as_str().unwrap()).unwrap();
        assert_eq!(info["symbol"], id);
    }
    let nkn = markets.by_id("NKNUSDT").unwrap();
    assert_eq!(
        (nkn.precision.price, nkn.precision.amount),
        (Some(0.0001), Some(1.0))
    );
    assert_eq!(
        (
            nkn.limits.amount.min,
            nkn.limits.price.min,
            nkn.limits.cost.min
        ),
        (Some(1.0), Some(0.0001), Some(10.0))
    );
    assert_eq!(nkn.active, Some(true));
}

/// One thing that happened, in capture time order.
enum Happening {
    Snapshot(String, DepthSnapshot),
    Update(DepthUpdate),
}

/// BINANCE.http.0.0 (snapshots) and the depth events of BINANCE.ws.1.0, merged by time, as
/// the adapter saw them: events before a symbol's snapshot arrived first and were buffered.
fn depth_timeline() -> Vec<Happening> {
    let http = fixture("BINANCE.http.0.0");
    let ws = fixture("BINANCE.ws.1.0");
    let mut timeline: Vec<(f64, Happening)> = Vec::new();
    for record in records(&http) {
        if let Record::Http { url, at, body } = record.unwrap() {
            let id = url
                .split("symbol=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap();
            let snapshot = DepthSnapshot::parse(body).unwrap();
            timeline.push((at, Happening::Snapshot(id.to_owned(), snapshot)));
        }
    }
    for record in records(&ws) {
        if let Record::Received { at, message } = record.unwrap() {
            if let StreamEvent::Depth(update) = parse_message(message, markets()).unwrap().event {
                timeline.push((at, Happening::Update(update)));
            }
        }
    }
    timeline.sort_by(|a, b| a.0.total_cmp(&b.0));
    timeline.into_iter().map(|(_, h)| h).collect()
}

#[test]
fn the_capture_syncs_with_zero_gaps_and_ccxts_books() {
    let mut books: std::collections::BTreeMap<String, DepthSync> = Default::default();
    fn sync_of<'a>(
        books: &'a mut std::collections::BTreeMap<String, DepthSync>,
        id: &str,
    ) -> &'a mut DepthSync {
        books
            .entry(id.to_owned())
            .or_insert_with(|| DepthSync::new(markets().symbol_of(id).unwrap()))
    }
    let mut nkn_buffered = Vec::new();
    for happening in depth_timeline() {
        match happening {
            Happening::Snapshot(id, snapshot) => {
                sync_of(&mut books, &id).apply_snapshot(snapshot).unwrap()
            }
            Happening::Update(update) => {
                let id = update.symbol_id.clone();
                let range = (update.first_id, update.last_id);
                let applied = sync_of(&mut books, &id).on_update(update).unwrap();
                if id == "NKNUSDT" && applied == Applied::Buffered {
                    nkn_buffered.push(range);
                }
            }
        }
    }
    // NKNUSDT: the snapshot is at 499869752; the one event before it ends there and is
    // dropped; the first applied starts at 753; all 149 others follow on without a gap.
    let nkn = &books["NKNUSDT"];
    assert_eq!(nkn_buffered, [(499869750, 499869752)]);
    let stats = nkn.stats();
    assert_eq!(stats.first_applied, Some((499869753, 499869754)));
    assert_eq!((stats.dropped, stats.applied), (1, 149));
    assert_eq!(
        (
            stats.gaps,
            stats.duplicates,
            stats.reorders,
            stats.snapshots
        ),
        (0, 0, 0, 1)
    );
    assert_eq!(nkn.nonce(), Some(499870179));

    for (id, expected) in oracle()["books"].as_object().unwrap() {
        let sync = &books[id];
        let stats = sync.stats();
        assert_eq!(Some(stats.applied), expected["applied"].as_u64(), "{id}");
        assert_eq!(Some(stats.dropped), expected["dropped"].as_u64(), "{id}");
        assert_eq!(
            (stats.gaps, expected["gaps"].as_u64()),
            (0, Some(0)),
            "{id}"
        );
        let book = sync.order_book(20).unwrap();
        let ours = json(&book);
        for key in ["symbol", "nonce", "timestamp", "bids", "asks"] {
            assert_ccxt(&ours[key], &expected[key], &[], key);
        }
        let whole = sync.snapshot().unwrap();
        assert_eq!(
            Some(whole.bids.len() as u64),
            expected["bid_levels"].as_u64()
        );
        assert_eq!(
            Some(whole.asks.len() as u64),
            expected["ask_levels"].as_u64()
        );
        // Best first, strictly, on both sides.
        assert!(whole.bids.windows(2).all(|w| w[0].price > w[1].price));
        assert!(whole.asks.windows(2).all(|w| w[0].price < w[1].price));
        assert!(book.best_bid().unwrap()[0] < book.best_ask().unwrap()[0]);
    }
    assert_eq!(books.len(), 4);
}

/// NKNUSDT's snapshot and its 150 events in order (the first predates the snapshot).
fn nkn() -> (DepthSnapshot, Vec<DepthUpdate>) {
    let mut snapshot = None;
    let mut events = Vec::new();
    for happening in depth_timeline() {
        match happening {
            Happening::Snapshot(id, s) if id == "NKNUSDT" => snapshot = Some(s),
            Happening::Update(u) if u.symbol_id == "NKNUSDT" => events.push(u),
            _ => {}
        }
    }
    assert_eq!(events.len(), 150);
    (snapshot.unwrap(), events)
}

/// A book fed the snapshot then `events` (all valid), and its state after each event.
fn clean_run(snapshot: &DepthSnapshot, events: &[DepthUpdate]) -> Vec<DepthSnapshot> {
    let mut sync = DepthSync::new("NKN/USDT");
    sync.apply_snapshot(snapshot.clone()).unwrap();
    events
        .iter()
        .map(|e| {
            sync.on_update(e.clone()).unwrap();
            sync.snapshot().unwrap()
        })
        .collect()
}

#[test]
fn faults_are_detected_and_resync_restores_the_clean_book() {
    let (snapshot, events) = nkn();
    let clean = clean_run(&snapshot, &events);
    let last = clean.last().unwrap().clone();
    assert_eq!(last.last_update_id, 499870179);
    let fresh = || {
        let mut sync = DepthSync::new("NKN/USDT");
        sync.apply_snapshot(snapshot.clone()).unwrap();
        sync
    };

    // Drop event 10: event 11 does not follow event 9.
    let mut sync = fresh();
    for e in &events[..10] {
        sync.on_update(e.clone()).unwrap();
    }
    let lost = sync.on_update(events[11].clone());
    assert_eq!(
        lost,
        Err(SyncError::OutOfSync {
            expected: events[9].last_id + 1,
            got: events[11].first_id
        })
    );
    assert_eq!(sync.stats().gaps, 1);
    assert!(sync.order_book(10).is_none());
    // It buffers until the adapter brings a new snapshot, here the clean book after event 15;
    // events 11–15 are then older than it and dropped, 16–20 applied.
    for e in &events[12..=20] {
        assert_eq!(sync.on_update(e.clone()), Ok(Applied::Buffered));
    }
    // The old REST snapshot (752) is older than what is buffered: refused.
    assert_eq!(
        sync.apply_snapshot(snapshot.clone()),
        Err(SyncError::OutOfSync {
            expected: 499869753,
            got: events[11].first_id
        })
    );
    sync.apply_snapshot(clean[15].clone()).unwrap();
    assert_eq!(sync.snapshot().unwrap(), clean[20]);
    assert_eq!(
        sync.stats().first_applied,
        Some((events[16].first_id, events[16].last_id))
    );
    for e in &events[21..] {
        assert_eq!(sync.on_update(e.clone()), Ok(Applied::Applied));
    }
    assert_eq!(sync.snapshot().unwrap(), last);
    assert_eq!(sync.order_book(25), {
        let mut clean_sync = fresh();
        for e in &events {
            clean_sync.on_update(e.clone()).unwrap();
        }
        clean_sync.order_book(25)
    });

    // Duplicate event 10: counted, ignored, and the book is still right.
    let mut sync = fresh();
    for (i, e) in events.iter().enumerate() {
        sync.on_update(e.clone()).unwrap();
        if i == 10 {
            assert_eq!(sync.on_update(e.clone()), Ok(Applied::Duplicate));
        }
    }
    let stats = sync.stats();
    assert_eq!((stats.duplicates, stats.gaps, stats.applied), (1, 0, 149));
    assert_eq!(sync.snapshot().unwrap(), last);

    // Reorder events 10 and 11: detected (a gap at 11, a reordering at 10).
    let mut sync = fresh();
    for e in &events[..10] {
        sync.on_update(e.clone()).unwrap();
    }
    assert!(matches!(
        sync.on_update(events[11].clone()),
        Err(SyncError::OutOfSync { .. })
    ));
    assert_eq!(sync.on_update(events[10].clone()), Ok(Applied::Buffered));
    assert_eq!((sync.stats().gaps, sync.stats().reorders), (1, 1));
    // Both are buffered in update order, so a snapshot at event 9 recovers them.
    sync.apply_snapshot(clean[9].clone()).unwrap();
    assert_eq!(sync.snapshot().unwrap(), clean[11]);
    for e in &events[12..] {
        sync.on_update(e.clone()).unwrap();
    }
    assert_eq!(sync.snapshot().unwrap(), last);
}

#[test]
fn every_stream_message_of_the_capture_is_ccxts() {
    let text = fixture("BINANCE.ws.1.0");
    let expected = oracle()["stream"].as_array().unwrap();
    let mut expected = expected.iter();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for record in records(&text) {
        let Record::Received { message, .. } = record.unwrap() else {
            continue;
        };
        let parsed = parse_message(message, markets()).unwrap();
        let raw: Value = serde_json::from_str(message).unwrap();
        assert_eq!(parsed.stream, raw["stream"]);
        let (kind, ours, info) = match &parsed.event {
            StreamEvent::Depth(update) => {
                assert_eq!(update.symbol_id, raw["data"]["s"]);
                *counts.entry("depth").or_default() += 1;
                continue;
            }
            StreamEvent::BookTicker(t) => ("bookTicker", json(t), Some(t.info.as_str())),
            StreamEvent::Trade(t) => ("aggTrade", json(t), Some(t.info.as_str())),
            StreamEvent::Kline(k) => {
                assert_eq!((k.timeframe.as_str(), k.closed), ("1m", false));
                ("kline", json(&k.candle), None)
            }
            StreamEvent::Ticker(t) => ("ticker", json(t), Some(t.info.as_str())),
        };
        *counts.entry(kind).or_default() += 1;
        let theirs = expected.next().expect("an oracle entry per message");
        assert_eq!(theirs["stream"], raw["stream"]);
        let allow = if kind == "aggTrade" {
            TRADE_EXTRAS
        } else {
            TICKER_EXTRAS
        };
        assert_ccxt(&without_info(ours), &theirs["ccxt"], allow, "");
        if let Some(info) = info {
            let info: Value = serde_json::from_str(info.unwrap()).unwrap();
            assert_eq!(info, raw["data"], "info is the message's data");
        }
        assert_eq!(
            markets().symbol_of(raw["data"]["s"].as_str().unwrap()),
            Some(parsed.symbol.as_str())
        );
    }
    assert!(expected.next().is_none());
    let counts: Vec<_> = counts.into_iter().collect();
    assert_eq!(
        counts,
        [
            ("aggTrade", 2),
            ("bookTicker", 84),
            ("depth", 177),
            ("kline", 2)
        ]
    );
}

#[test]
fn documented_samples_have_ccxts_values() {
    let documented = &oracle()["documented"];
    let message = |stream: &str, raw: &Value| {
        let text = serde_json::json!({ "stream": stream, "data": raw }).to_string();
        parse_message(&text, markets()).unwrap().event
    };

    let sample = &documented["aggTrade"];
    let StreamEvent::Trade(trade) = message("bnbbtc@aggTrade", &sample["raw"]) else {
        panic!("not a trade");
    };
    assert_ccxt(
        &without_info(json(&trade)),
        &sample["ccxt"],
        TRADE_EXTRAS,
        "",
    );
    // Binance's example: 100 at 0.001, buyer is maker → the taker sold; cost 0.1 exactly.
    assert_eq!(trade.id.as_deref(), Some("12345"));
    assert_eq!(
        (trade.price, trade.amount, trade.cost),
        (0.001, 100.0, Some(0.1))
    );
    assert_eq!(trade.side, rpc_crypto_proto::ccxt::Side::Sell);
    assert_eq!(trade.timestamp.get(), Some(1672515782136));

    let sample = &documented["bookTicker"];
    let StreamEvent::BookTicker(ticker) = message("bnbusdt@bookTicker", &sample["raw"]) else {
        panic!("not a book ticker");
    };
    assert_ccxt(
        &without_info(json(&ticker)),
        &sample["ccxt"],
        TICKER_EXTRAS,
        "",
    );
    assert_eq!(
        (ticker.bid, ticker.bid_volume, ticker.ask, ticker.ask_volume),
        (Some(25.3519), Some(31.21), Some(25.3652), Some(40.66))
    );
    assert_eq!((ticker.last, ticker.timestamp.get()), (None, None));

    let sample = &documented["kline"];
    let StreamEvent::Kline(kline) = message("bnbbtc@kline_1m", &sample["raw"]) else {
        panic!("not a kline");
    };
    assert_ccxt(&json(&kline.candle), &sample["ccxt"], &[], "");

    for name in ["24hrTicker", "24hrTicker_ccxt"] {
        let sample = &documented[name];
        let stream = format!(
            "{}@ticker",
            sample["raw"]["s"].as_str().unwrap().to_lowercase()
        );
        let StreamEvent::Ticker(ticker) = message(&stream, &sample["raw"]) else {
            panic!("not a ticker");
        };
        assert_ccxt(
            &without_info(json(&ticker)),
            &sample["ccxt"],
            TICKER_EXTRAS,
            "",
        );
    }
    // ccxt's comment example: the average is exact at the market's 6 decimals.
    assert_eq!(documented["24hrTicker_ccxt"]["ccxt"]["average"], 0.019145);
}

#[test]
fn private_responses_are_ccxts() {
    let private = &oracle()["private"];
    let body = |name: &str| private[name]["raw"].to_string();

    let balance = rest::parse_balance(&body("account")).unwrap();
    assert_ccxt(
        &without_info(json(&balance)),
        &private["account"]["ccxt"],
        &[],
        "",
    );
    assert_eq!(balance.get("BTC").unwrap().total, Some(4723846.89208129));

    let order_extras = &[
        "lastUpdateTimestamp",
        "fees",
        "stopPrice",
        "stopLossPrice",
        "takeProfitPrice",
        "fee.rate",
        "trades.fee.rate",
        "trades.fees.rate",
        // ccxt leaves a fill's side null; ours is its order's.
        "trades.side",
    ];
    for name in ["order_full", "order_cancel", "order_partial"] {
        let order = rest::parse_order(&body(name), markets()).unwrap();
        assert_ccxt(
            &without_info(json(&order)),
            &private[name]["ccxt"],
            order_extras,
            "",
        );
    }
    let full = rest::parse_order(&body("order_full"), markets()).unwrap();
    assert_eq!(full.trades.len(), 5);
    assert_eq!(full.fee.as_ref().and_then(|f| f.cost), Some(39.983));
    let open = rest::parse_orders(&body("open_orders"), markets()).unwrap();
    let ours: Vec<Value> = open.iter().map(|o| without_info(json(o))).collect();
    assert_ccxt(
        &Value::Array(ours),
        &private["open_orders"]["ccxt"],
        order_extras,
        "",
    );
}
