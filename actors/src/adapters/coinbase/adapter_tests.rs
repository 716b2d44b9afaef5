//! The Coinbase adapter actor against local servers: an HTTP server answering `/products` with
//! the recorded market list (`fixtures/exchanges/COINBASE.0`), and a WebSocket server replaying
//! the recorded feed (`COINBASE.ws.28.0`) at full speed once the client subscribes, keeping its
//! own books with the pure normalizer so that a level2 resubscription gets the book as it is
//! then. A fake Router records what is published.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use rpc_crypto_proto::ccxt::fields::{ORDER_BOOK_FIELDS, TICKER_FIELDS, TRADE_FIELDS};
use rpc_crypto_proto::ccxt::OrderBook;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::super::Level2Book;
use super::*;
use crate::adapters::capture::{self, Record};

const PRODUCTS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/exchanges/COINBASE.0"
));
const FEED: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/exchanges/COINBASE.ws.28.0"
));

/// The products of the capture, as ccxt symbols.
const SYMBOLS: [&str; 10] = [
    "SKL/USD", "DASH/BTC", "SKL/BTC", "BAND/BTC", "CRV/EUR", "NMR/EUR", "YFI/BTC", "BAND/GBP",
    "SKL/GBP", "NU/GBP",
];

/// The body of the recorded `GET /products`.
fn products_body() -> &'static str {
    capture::records(PRODUCTS)
        .find_map(|record| match record {
            Ok(Record::Http { url, body, .. }) if url.ends_with("/products") => Some(body),
            _ => None,
        })
        .expect("COINBASE.0 holds the /products answer")
}

fn markets() -> Markets {
    Markets::from_products(products_body()).expect("the recorded /products parses")
}

/// Every message received on the recorded feed, in order.
fn feed() -> Vec<String> {
    capture::records(FEED)
        .filter_map(|record| match record.expect("a capture record") {
            Record::Received { message, .. } => Some(message.to_owned()),
            _ => None,
        })
        .collect()
}

/// The books the recorded feed ends with, by product, and the updates per product.
fn final_books() -> (Level2Books, BTreeMap<String, u64>) {
    let markets = markets();
    let mut books = Level2Books::new();
    let mut updates = BTreeMap::new();
    for text in feed() {
        match parse_message(&text) {
            Ok(Message::Snapshot(s)) => {
                books.snapshot(&markets, &s).unwrap();
            }
            Ok(Message::L2Update(u)) => {
                books.update(&markets, &u).unwrap();
                *updates.entry(u.product_id.to_owned()).or_default() += 1;
            }
            _ => {}
        }
    }
    (books, updates)
}

// ---- the fake Router ----

type Published = Arc<Mutex<Vec<(String, Bytes)>>>;

struct FakeRouter(Published);

impl Actor for FakeRouter {
    type Context = Context<Self>;
}

impl Handler<Publish> for FakeRouter {
    type Result = ();
    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        self.0
            .lock()
            .unwrap()
            .push((msg.channel, msg.data.into_bytes()));
    }
}

fn on(published: &Published, channel: &str) -> Vec<Value> {
    published
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| c == channel)
        .map(|(_, data)| serde_json::from_slice(data).expect("JSON"))
        .collect()
}

fn notifications(published: &Published) -> Vec<Value> {
    on(published, NOTIFICATIONS)
}

/// The health notices' statuses (not the notices about one channel or refusal).
fn statuses(published: &Published) -> Vec<String> {
    notifications(published)
        .iter()
        .filter(|n| n.get("error").is_none() || n["status"] == "resyncing")
        .map(|n| n["status"].as_str().unwrap().to_owned())
        .collect()
}

// ---- the HTTP server ----

/// Answers `GET /products` with the recorded body, after `failures` 500s; anything else 404.
async fn http_server(failures: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    actix::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            actix::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => head.extend_from_slice(&buf[..k]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let (status, body) = if !head.starts_with("GET /products ") {
                    ("404 Not Found", "{}")
                } else if n < failures {
                    ("500 Internal Server Error", r#"{"message":"try later"}"#)
                } else {
                    ("200 OK", products_body())
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    (url, requests)
}

// ---- the WebSocket server ----

/// How the feed server behaves.
#[derive(Clone, Default)]
struct Script {
    /// Replay only this many messages, then stay silent (a stalled exchange).
    replay_limit: Option<usize>,
    /// Connections (1-based) dropped before the WebSocket handshake.
    drop_connections: Vec<usize>,
    /// After this many replayed messages, a crossed update for this product.
    inject_crossed: Option<(usize, &'static str)>,
    /// A subscribe naming this product is refused with Coinbase's `error` message.
    refuse_product: Option<&'static str>,
}

struct FeedServer {
    url: String,
    /// What the clients sent, over every connection.
    received: Arc<Mutex<Vec<Value>>>,
    /// Connections accepted (handshake or not).
    connections: Arc<AtomicUsize>,
}

impl FeedServer {
    fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

async fn feed_server(script: Script) -> FeedServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let messages = Arc::new(feed());
    let markets = Arc::new(markets());
    let (log, count) = (received.clone(), connections.clone());
    actix::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            if script.drop_connections.contains(&n) {
                drop(tcp);
                continue;
            }
            let (script, log, messages, markets) = (
                script.clone(),
                log.clone(),
                messages.clone(),
                markets.clone(),
            );
            actix::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    serve(ws, script, log, messages, markets).await;
                }
            });
        }
    });
    FeedServer {
        url,
        received,
        connections,
    }
}

/// A level2 snapshot of a book as it is, prices and sizes written back from their numbers.
fn snapshot_of(book: &Level2Book) -> String {
    let all = book.order_book(usize::MAX).expect("synced");
    let text = |levels: &[[f64; 2]]| -> Vec<[String; 2]> {
        levels
            .iter()
            .map(|[p, a]| [p.to_string(), a.to_string()])
            .collect()
    };
    json!({"type": "snapshot", "product_id": book.product_id(), "bids": text(&all.bids), "asks": text(&all.asks)})
        .to_string()
}

async fn serve(
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    script: Script,
    log: Arc<Mutex<Vec<Value>>>,
    messages: Arc<Vec<String>>,
    markets: Arc<Markets>,
) {
    let (mut sink, mut stream) = ws.split();
    // The server's own books: the truth a resubscription is answered with.
    let mut books = Level2Books::new();
    let limit = script
        .replay_limit
        .unwrap_or(usize::MAX)
        .min(messages.len());
    let mut next: Option<usize> = None;
    loop {
        let replaying = next.is_some_and(|i| i < limit);
        tokio::select! {
            biased;
            incoming = stream.next() => {
                let Some(Ok(message)) = incoming else { return };
                let WsMessage::Text(text) = message else { continue };
                let Ok(request) = serde_json::from_str::<Value>(&text) else { continue };
                log.lock().unwrap().push(request.clone());
                if request["type"] != "subscribe" {
                    continue;
                }
                let products: Vec<&str> = request["product_ids"]
                    .as_array()
                    .map(|p| p.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if let Some(refused) = script.refuse_product.filter(|r| products.contains(r)) {
                    let error = json!({"type": "error", "message": "Failed to subscribe", "reason": format!("{refused} is not a valid product")});
                    if sink.send(WsMessage::text(error.to_string())).await.is_err() {
                        return;
                    }
                    continue;
                }
                if next.is_none() {
                    next = Some(0);
                } else if request["channels"].as_array().is_some_and(|c| c.iter().any(|c| c == "level2")) {
                    for product in products {
                        if let Some(book) = books.get(product).filter(|b| b.is_synced()) {
                            if sink.send(WsMessage::text(snapshot_of(book))).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            () = std::future::ready(()), if replaying => {
                let i = next.expect("replaying");
                let text = &messages[i];
                match parse_message(text) {
                    Ok(Message::Snapshot(s)) => {
                        books.snapshot(&markets, &s).unwrap();
                    }
                    Ok(Message::L2Update(u)) => {
                        books.update(&markets, &u).unwrap();
                    }
                    _ => {}
                }
                if sink.send(WsMessage::text(text.clone())).await.is_err() {
                    return;
                }
                next = Some(i + 1);
                if let Some((after, product)) = script.inject_crossed {
                    if after == i + 1 {
                        let ask = books.get(product).and_then(|b| b.best_ask()).expect("a book with asks");
                        let crossed = json!({"type": "l2update", "product_id": product, "changes": [["buy", (ask.price() * 2.0).to_string(), "1"]], "time": "2021-04-17T16:43:40.000000Z"});
                        if sink.send(WsMessage::text(crossed.to_string())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

// ---- helpers ----

struct Running {
    adapter: Addr<CoinbaseAdapter>,
    published: Published,
}

fn start(http: &str, ws: &str, heartbeat: Duration) -> Running {
    let published: Published = Arc::new(Mutex::new(Vec::new()));
    let router = FakeRouter(published.clone()).start();
    let settings = CoinbaseSettings {
        enabled: true,
        ws_url: ws.to_owned(),
        rest_url: http.to_owned(),
        publish_depth: 20,
        heartbeat_timeout: heartbeat,
    };
    let adapter = CoinbaseAdapter::new(settings, router.recipient())
        .with_backoff(Duration::from_millis(20), Duration::from_millis(50))
        .start();
    Running { adapter, published }
}

fn demand(adapter: &Addr<CoinbaseAdapter>, channel: String) {
    adapter.do_send(Demand::Start { channel });
}

async fn counts(adapter: &Addr<CoinbaseAdapter>) -> CoinbaseCounts {
    adapter.send(GetCoinbaseCounts).await.unwrap()
}

/// Waits up to 60 s for `done`.
async fn until<F: Fn(&CoinbaseCounts, &Published) -> bool>(
    running: &Running,
    what: &str,
    done: F,
) -> CoinbaseCounts {
    for _ in 0..6000 {
        let counts = counts(&running.adapter).await;
        if done(&counts, &running.published) {
            return counts;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "timed out waiting for {what}: {:?}",
        counts(&running.adapter).await
    );
}

async fn call(
    adapter: &Addr<CoinbaseAdapter>,
    method: ExchangeMethod,
    params: Value,
) -> Result<Value, ExchangeError> {
    let Value::Object(params) = params else {
        panic!("params are an object")
    };
    adapter
        .send(ExchangeCall {
            method,
            params,
            credentials: None,
        })
        .await
        .unwrap()
        .map(|bytes| serde_json::from_slice(&bytes).expect("JSON"))
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    list.sort();
    list
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Every book publication has ccxt's keys, at most `depth` levels, sorted sides, and is never
/// crossed. Returns how many there were per symbol.
fn check_books(published: &Published, depth: usize) -> BTreeMap<String, usize> {
    let mut per_symbol = BTreeMap::new();
    for (channel, data) in published.lock().unwrap().iter() {
        let Some(symbol) = channel.strip_prefix("book:coinbase:") else {
            continue;
        };
        let value: Value = serde_json::from_slice(data).unwrap();
        assert_eq!(keys(&value), sorted(ORDER_BOOK_FIELDS), "{channel}");
        let book: OrderBook = serde_json::from_value(value).unwrap();
        assert_eq!(book.symbol, symbol);
        assert!(book.bids.len() <= depth && book.asks.len() <= depth);
        assert!(book.bids.windows(2).all(|w| w[0][0] > w[1][0]), "{channel}");
        assert!(book.asks.windows(2).all(|w| w[0][0] < w[1][0]), "{channel}");
        if let (Some(bid), Some(ask)) = (book.best_bid(), book.best_ask()) {
            assert!(bid[0] < ask[0], "{channel} crossed: {bid:?} >= {ask:?}");
        }
        *per_symbol.entry(symbol.to_owned()).or_default() += 1;
    }
    per_symbol
}

/// The adapter's whole book of `symbol` equals the book the recorded feed ends with.
async fn assert_final_book(adapter: &Addr<CoinbaseAdapter>, books: &Level2Books, symbol: &str) {
    let markets = markets();
    let product = markets.id_of(symbol).unwrap();
    let ours = call(
        adapter,
        ExchangeMethod::FetchOrderBook,
        json!({"symbol": symbol, "limit": 1000}),
    )
    .await
    .unwrap();
    let theirs =
        serde_json::to_value(books.get(product).unwrap().order_book(1000).unwrap()).unwrap();
    assert_eq!(ours, theirs, "{symbol}");
}

fn subscribes_of<'a>(received: &'a [Value], kind: &str, channel: &str) -> Vec<&'a Value> {
    received
        .iter()
        .filter(|r| {
            r["type"] == kind
                && r["channels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c == channel)
        })
        .collect()
}

// ---- the tests ----

#[test]
fn subscriptions_are_made_and_changed_by_difference() {
    let keys = |list: &[&str]| -> BTreeSet<String> { list.iter().map(|s| s.to_string()).collect() };
    let all = keys(&[
        "heartbeat:BTC-USD",
        "heartbeat:ETH-USD",
        "level2:BTC-USD",
        "level2:ETH-USD",
        "ticker:BTC-USD",
    ]);
    assert_eq!(
        subscribe_requests(&all),
        [
            r#"{"channels":["level2","heartbeat"],"product_ids":["BTC-USD","ETH-USD"],"type":"subscribe"}"#,
            r#"{"channels":["ticker","heartbeat"],"product_ids":["BTC-USD"],"type":"subscribe"}"#,
        ]
    );
    // ETH-USD goes (with its heartbeat), matches of BTC-USD come.
    let added = keys(&["matches:BTC-USD"]);
    let removed = keys(&["heartbeat:ETH-USD", "level2:ETH-USD"]);
    assert_eq!(
        change_requests(&added, &removed),
        [
            r#"{"channels":["heartbeat"],"product_ids":["ETH-USD"],"type":"unsubscribe"}"#,
            r#"{"channels":["level2"],"product_ids":["ETH-USD"],"type":"unsubscribe"}"#,
            r#"{"channels":["matches","heartbeat"],"product_ids":["BTC-USD"],"type":"subscribe"}"#,
        ]
    );
}

#[test]
fn settings_default_and_parse() {
    let settings = CoinbaseSettings::default();
    assert!(!settings.enabled);
    assert_eq!(settings.ws_url, "wss://ws-feed.exchange.coinbase.com");
    assert_eq!(settings.rest_url, "https://api.exchange.coinbase.com");
    assert_eq!(settings.publish_depth, 20);
    assert_eq!(settings.heartbeat_timeout, Duration::from_secs(30));
    assert!(settings.check().is_ok());
    let parsed: CoinbaseSettings = serde_json::from_str(
        r#"{"enabled": true, "heartbeat_timeout": "5s", "publish_depth": 10}"#,
    )
    .unwrap();
    assert!(parsed.enabled);
    assert_eq!(parsed.heartbeat_timeout, Duration::from_secs(5));
    assert_eq!(parsed.publish_depth, 10);
    assert!(serde_json::from_str::<CoinbaseSettings>(r#"{"nope": 1}"#).is_err());
    let zero = CoinbaseSettings {
        publish_depth: 0,
        ..CoinbaseSettings::default()
    };
    assert!(zero.check().is_err());
}

#[actix::test]
async fn the_recorded_feed_is_published_in_ccxt_form() {
    let (http, _) = http_server(0).await;
    let server = feed_server(Script::default()).await;
    let running = start(&http, &server.url, Duration::from_secs(30));
    for symbol in SYMBOLS {
        for kind in ["book", "ticker", "trades"] {
            demand(&running.adapter, format!("{kind}:coinbase:{symbol}"));
        }
    }
    let total = feed().len() as u64;
    let counts = until(&running, "the whole feed", |c, _| c.messages >= total).await;
    println!("coinbase adapter counts: {counts:?}");

    // Every update of the capture applied, per product, as the pure normalizer counts them.
    let (books, updates) = final_books();
    assert_eq!(counts.updates, updates);
    assert_eq!(counts.updates.values().sum::<u64>(), 9719);
    assert_eq!(counts.snapshots.len(), 10);
    assert!(counts.snapshots.values().all(|&n| n == 1));
    assert_eq!((counts.dropped, counts.crossed, counts.ignored), (0, 0, 0));
    assert!(counts.resyncs.is_empty() && counts.errors.is_empty());
    assert_eq!((counts.tickers, counts.trades), (107, 107));

    // Books: a publication per snapshot and update, ccxt keys, never crossed.
    let per_symbol = check_books(&running.published, 20);
    println!("coinbase book publications per symbol: {per_symbol:?}");
    assert_eq!(per_symbol.values().sum::<usize>(), 9719 + 10);
    for symbol in SYMBOLS {
        assert_final_book(&running.adapter, &books, symbol).await;
    }

    // Tickers and trades with ccxt's keys, on their symbols' channels.
    let (mut tickers, mut trades) = (0, 0);
    for symbol in SYMBOLS {
        for ticker in on(&running.published, &format!("ticker:coinbase:{symbol}")) {
            assert_eq!(keys(&ticker), sorted(TICKER_FIELDS));
            assert_eq!(ticker["symbol"], symbol);
            tickers += 1;
        }
        for trade in on(&running.published, &format!("trades:coinbase:{symbol}")) {
            assert_eq!(keys(&trade), sorted(TRADE_FIELDS));
            assert_eq!(trade["symbol"], symbol);
            assert!(trade["price"].as_f64().unwrap() > 0.0);
            trades += 1;
        }
    }
    println!("coinbase publications: {tickers} tickers, {trades} trades");
    assert_eq!((tickers, trades), (107, 107));

    // One connection, subscribed once per feed channel with heartbeats.
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    let received = server.received();
    assert_eq!(received.len(), 3, "{received:?}");
    for (request, channel) in received.iter().zip(["level2", "matches", "ticker"]) {
        assert_eq!(request["type"], "subscribe");
        assert_eq!(request["channels"], json!([channel, "heartbeat"]));
        assert_eq!(request["product_ids"].as_array().unwrap().len(), 10);
    }
    assert_eq!(statuses(&running.published), ["up"]);

    // The calls.
    let all = call(&running.adapter, ExchangeMethod::LoadMarkets, json!({}))
        .await
        .unwrap();
    assert_eq!(all.as_object().unwrap().len(), 162);
    assert_eq!(all["SKL/USD"]["id"], "SKL-USD");
    let ticker = call(
        &running.adapter,
        ExchangeMethod::FetchTicker,
        json!({"symbol": "SKL/USD"}),
    )
    .await
    .unwrap();
    let last = on(&running.published, "ticker:coinbase:SKL/USD");
    assert_eq!(Some(&ticker), last.last());
    let top5 = call(
        &running.adapter,
        ExchangeMethod::FetchOrderBook,
        json!({"symbol": "SKL/USD", "limit": 5}),
    )
    .await
    .unwrap();
    assert_eq!(top5["bids"].as_array().unwrap().len(), 5);
    let not_subscribed = call(
        &running.adapter,
        ExchangeMethod::FetchOrderBook,
        json!({"symbol": "BTC/USD"}),
    )
    .await
    .unwrap_err();
    assert_eq!(not_subscribed.kind, ErrorKind::ExchangeNotAvailable);
    assert!(
        not_subscribed.message.contains("book:coinbase:BTC/USD"),
        "{not_subscribed}"
    );
    let unknown = call(
        &running.adapter,
        ExchangeMethod::FetchTicker,
        json!({"symbol": "FOO/BAR"}),
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::BadSymbol);
    for method in [
        ExchangeMethod::CreateOrder,
        ExchangeMethod::FetchBalance,
        ExchangeMethod::FetchTrades,
    ] {
        let error = call(&running.adapter, method, json!({"symbol": "SKL/USD"}))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotSupported, "{method:?}");
    }

    // Demand gone: unsubscribed by difference, then no channel at all.
    running.adapter.do_send(Demand::Stop {
        channel: "book:coinbase:SKL/USD".into(),
    });
    for _ in 0..200 {
        if server.received().len() > 3 {
            break;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    let received = server.received();
    assert_eq!(
        received[3..],
        [json!({"type": "unsubscribe", "product_ids": ["SKL-USD"], "channels": ["level2"]})]
    );
    let gone = call(
        &running.adapter,
        ExchangeMethod::FetchOrderBook,
        json!({"symbol": "SKL/USD"}),
    )
    .await
    .unwrap_err();
    assert_eq!(gone.kind, ErrorKind::ExchangeNotAvailable);
}

#[actix::test]
async fn a_crossed_book_is_resubscribed_and_ends_correct() {
    let (http, _) = http_server(0).await;
    let script = Script {
        inject_crossed: Some((2000, "SKL-USD")),
        ..Script::default()
    };
    let server = feed_server(script).await;
    let running = start(&http, &server.url, Duration::from_secs(30));
    for symbol in SYMBOLS {
        demand(&running.adapter, format!("book:coinbase:{symbol}"));
    }
    // The whole feed, the injected update and the snapshot the resubscription brings.
    let total = feed().len() as u64 + 2;
    let counts = until(&running, "the whole feed and the resync", |c, _| {
        c.messages >= total
    })
    .await;
    println!("coinbase adapter counts with a crossed update: {counts:?}");
    assert_eq!(counts.crossed, 1);
    assert_eq!(counts.resyncs, BTreeMap::from([("SKL-USD".to_owned(), 1)]));
    assert_eq!(counts.snapshots["SKL-USD"], 2);
    let (books, updates) = final_books();
    // Each recorded update was applied, or dropped while the book waited for its snapshot.
    let applied: u64 = counts.updates.values().sum();
    assert_eq!(applied + counts.dropped, 9719);
    for (product, n) in &updates {
        if product != "SKL-USD" {
            assert_eq!(counts.updates[product], *n, "{product}");
        }
    }

    // Announced, with the reason, then up again.
    let resyncing: Vec<Value> = notifications(&running.published)
        .into_iter()
        .filter(|n| n["status"] == "resyncing")
        .collect();
    assert_eq!(resyncing.len(), 1, "{resyncing:?}");
    assert_eq!(resyncing[0]["symbol"], "SKL/USD");
    assert_eq!(resyncing[0]["error"], "InvalidNonce");
    assert!(resyncing[0]["reason"].as_str().unwrap().contains("crossed"));
    assert_eq!(statuses(&running.published), ["up", "resyncing", "up"]);

    // The server saw level2 of SKL-USD unsubscribed and subscribed again, nothing else.
    let received = server.received();
    let again = json!({"type": "subscribe", "product_ids": ["SKL-USD"], "channels": ["level2"]});
    let unsubscribe =
        json!({"type": "unsubscribe", "product_ids": ["SKL-USD"], "channels": ["level2"]});
    assert_eq!(received.len(), 3, "{received:?}");
    assert_eq!(received[1..], [unsubscribe, again]);

    // Never a crossed publication, and every book as the recorded feed leaves it.
    let per_symbol = check_books(&running.published, 20);
    println!("coinbase book publications per symbol: {per_symbol:?}");
    for symbol in SYMBOLS {
        assert_final_book(&running.adapter, &books, symbol).await;
    }
}

#[actix::test]
async fn unknown_symbols_and_kinds_are_announced_once_and_never_published() {
    let (http, _) = http_server(0).await;
    let server = feed_server(Script::default()).await;
    let running = start(&http, &server.url, Duration::from_secs(30));
    demand(&running.adapter, "book:coinbase:FOO/BAR".into());
    demand(&running.adapter, "ohlcv:coinbase:SKL/USD:1m".into());
    until(&running, "the announcements", |_, p| {
        notifications(p).len() >= 3
    })
    .await;
    // A later change of demand does not announce them again.
    demand(&running.adapter, "trades:coinbase:NOPE/USD".into());
    until(&running, "the third announcement", |_, p| {
        notifications(p).len() >= 4
    })
    .await;
    actix::clock::sleep(Duration::from_millis(100)).await;

    let notices = notifications(&running.published);
    println!("coinbase notices: {notices:?}");
    assert_eq!(notices.len(), 4);
    assert_eq!(
        notices[0],
        json!({"type": "adapter", "exchange": "coinbase", "status": "up"})
    );
    let errors: BTreeMap<&str, &str> = notices[1..]
        .iter()
        .map(|n| (n["channel"].as_str().unwrap(), n["error"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        BTreeMap::from([
            ("book:coinbase:FOO/BAR", "BadSymbol"),
            ("ohlcv:coinbase:SKL/USD:1m", "NotSupported"),
            ("trades:coinbase:NOPE/USD", "BadSymbol"),
        ])
    );
    assert!(notices[1..].iter().all(|n| n["status"] == "up"));
    // Nothing else published, and no connection made for nothing.
    assert_eq!(running.published.lock().unwrap().len(), 4);
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

#[actix::test]
async fn a_refused_product_is_announced_once_and_left_out() {
    let (http, _) = http_server(0).await;
    let script = Script {
        refuse_product: Some("BTC-USD"),
        ..Script::default()
    };
    let server = feed_server(script).await;
    let running = start(&http, &server.url, Duration::from_secs(30));
    demand(&running.adapter, "book:coinbase:BTC/USD".into());
    demand(&running.adapter, "book:coinbase:SKL/USD".into());
    let total = feed().len() as u64 + 1;
    let counts = until(&running, "the feed after the refusal", |c, _| {
        c.messages >= total
    })
    .await;
    println!("coinbase adapter counts after a refusal: {counts:?}");
    assert_eq!(counts.errors, BTreeMap::from([("refused".to_owned(), 1)]));

    let refused: Vec<Value> = notifications(&running.published)
        .into_iter()
        .filter(|n| n.get("error").is_some())
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["channel"], "book:coinbase:BTC/USD");
    assert_eq!(refused[0]["error"], "BadSymbol");
    assert!(refused[0]["reason"]
        .as_str()
        .unwrap()
        .contains("BTC-USD is not a valid product"));

    // Asked once: the product left out, the rest subscribed again without it.
    let received = server.received();
    println!("coinbase requests: {received:?}");
    let naming = |r: &&&Value| {
        r["product_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "BTC-USD")
    };
    let subscribes = subscribes_of(&received, "subscribe", "level2");
    assert_eq!(subscribes.iter().filter(naming).count(), 1);
    assert_eq!(
        *subscribes.last().unwrap(),
        &json!({"type": "subscribe", "product_ids": ["SKL-USD"], "channels": ["level2", "heartbeat"]})
    );
    let per_symbol = check_books(&running.published, 20);
    assert_eq!(per_symbol.keys().collect::<Vec<_>>(), ["SKL/USD"]);
    assert!(per_symbol["SKL/USD"] > 1);
}

#[actix::test]
async fn a_stalled_feed_is_down_once_and_made_again() {
    let (http, _) = http_server(0).await;
    // Connection 1 sends the first subscriptions and snapshots (SKL-GBP's is the fourth
    // message), then nothing; 2 and 3 fail; 4 works like 1.
    let script = Script {
        replay_limit: Some(4),
        drop_connections: vec![2, 3],
        ..Script::default()
    };
    let server = feed_server(script).await;
    let running = start(&http, &server.url, Duration::from_millis(300));
    demand(&running.adapter, "book:coinbase:SKL/GBP".into());
    let counts = until(&running, "down and up again", |_, p| statuses(p).len() >= 3).await;
    println!("coinbase adapter counts over a stall: {counts:?}");
    let statuses = statuses(&running.published);
    assert_eq!(statuses[..3], ["up", "down", "up"]);
    let down = &notifications(&running.published)[1];
    assert_eq!(down["reason"], "no message for 300ms");
    assert!(counts.disconnects >= 3, "{counts:?}");
    assert!(server.connections.load(Ordering::SeqCst) >= 4);

    // Each connection subscribed again and rebuilt the book from its own snapshot.
    let counts = until(&running, "the second snapshot", |c, _| {
        c.snapshots.get("SKL-GBP").is_some_and(|&n| n >= 2)
    })
    .await;
    assert!(counts.connects >= 2, "{counts:?}");
    let received = server.received();
    let subscribes = subscribes_of(&received, "subscribe", "level2");
    assert!(subscribes.len() >= 2);
    assert!(subscribes
        .iter()
        .all(|s| s["product_ids"] == json!(["SKL-GBP"])));
    let snapshots = counts.snapshots["SKL-GBP"] as usize;
    assert!(check_books(&running.published, 20)["SKL/GBP"] >= snapshots);

    // No demand: the connection goes, quietly.
    running.adapter.do_send(Demand::Stop {
        channel: "book:coinbase:SKL/GBP".into(),
    });
    actix::clock::sleep(Duration::from_millis(100)).await;
    let connections = server.connections.load(Ordering::SeqCst);
    actix::clock::sleep(Duration::from_millis(600)).await;
    assert_eq!(server.connections.load(Ordering::SeqCst), connections);
}

#[actix::test]
async fn the_market_list_is_fetched_again_until_it_loads() {
    let (http, requests) = http_server(3).await;
    let server = feed_server(Script::default()).await;
    let running = start(&http, &server.url, Duration::from_secs(30));
    let call_early = call(&running.adapter, ExchangeMethod::LoadMarkets, json!({}))
        .await
        .unwrap_err();
    assert_eq!(call_early.kind, ErrorKind::ExchangeNotAvailable);
    until(&running, "the market list", |_, p| statuses(p).len() >= 2).await;
    let notices = notifications(&running.published);
    assert_eq!(statuses(&running.published), ["down", "up"]);
    assert!(
        notices[0]["reason"].as_str().unwrap().contains("500"),
        "{notices:?}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 4);
    let all = call(&running.adapter, ExchangeMethod::LoadMarkets, json!({}))
        .await
        .unwrap();
    assert_eq!(all.as_object().unwrap().len(), 162);
}

#[actix::test]
async fn unreadable_messages_are_counted_and_never_crash() {
    let (http, _) = http_server(0).await;
    let server = feed_server(Script {
        replay_limit: Some(0),
        ..Script::default()
    })
    .await;
    let running = start(&http, &server.url, Duration::from_secs(30));
    until(&running, "the market list", |_, p| !statuses(p).is_empty()).await;
    for text in [
        "not json",
        "{\"type\":\"mystery\"}",
        "{\"type\":\"mystery\"}",
        "{\"no\":\"type\"}",
        "[1,2]",
        "{\"type\":\"ticker\",\"product_id\":\"SKL-USD\",\"price\":{}}",
    ] {
        running
            .adapter
            .do_send(UpstreamEvent::Message(text.to_owned()));
    }
    let counts = until(&running, "the messages", |c, _| c.messages >= 6).await;
    println!("coinbase errors: {:?}", counts.errors);
    assert_eq!(counts.errors.values().sum::<u64>(), 5);
    assert_eq!(counts.errors["unknown type \"mystery\""], 2);
    // The ticker is not wanted: not even read.
    assert_eq!(counts.ignored, 1);
    assert_eq!(running.published.lock().unwrap().len(), 1);
}
