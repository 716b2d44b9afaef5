//! The Binance adapter actor against local stand-ins for Binance: an HTTP server serving the
//! captured market list and depth snapshots (`fixtures/exchanges/BINANCE.0`,
//! `BINANCE.http.0.0`) and checking signed requests as Binance documents them, and a WebSocket
//! server replaying the captured combined stream (`BINANCE.ws.1.0`), clean or with a fault.
//! A fake Router records what the adapter publishes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use futures_util::{SinkExt, StreamExt};
use rpc_crypto_proto::ccxt::fields::{
    ACCOUNT_FIELDS, BALANCE_FIELDS, MARKET_FIELDS, ORDER_BOOK_FIELDS, ORDER_FIELDS, TICKER_FIELDS,
    TRADE_FIELDS,
};
use rpc_crypto_proto::ccxt::ErrorKind;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use super::adapter::{BinanceAdapter, BinanceSettings, BinanceStats, FullBook, GetStats};
use super::depth::{DepthSnapshot, DepthSync, DepthUpdate};
use super::markets::Markets;
use super::rest;
use super::stream::{parse_message, StreamEvent};
use crate::adapters::capture::{records, Record};
use crate::adapters::contract::{Credentials, ExchangeCall, ExchangeError, ExchangeMethod};
use crate::router::{Demand, Publish};

/// Binance's documented example key pair ("SIGNED endpoint examples").
const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

const NKN_BOOK: &str = "book:binance:NKN/USDT";

// ---- the captures ----

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/{name}",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/exchanges")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Capture {
    exchange_info: String,
    markets: Markets,
    /// Depth snapshot bodies by Binance id.
    snapshots: HashMap<String, String>,
    /// The stream's received messages, in order.
    messages: Vec<String>,
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let info = fixture("BINANCE.0");
        let exchange_info = records(&info)
            .find_map(|r| match r {
                Ok(Record::Http { url, body, .. }) if url.ends_with("/exchangeInfo") => {
                    Some(body.to_owned())
                }
                _ => None,
            })
            .expect("exchangeInfo record");
        let markets = Markets::from_exchange_info(&exchange_info).unwrap();
        let mut snapshots = HashMap::new();
        for record in records(&fixture("BINANCE.http.0.0")) {
            if let Record::Http { url, body, .. } = record.unwrap() {
                let id = url.split("symbol=").nth(1).unwrap().split('&').next();
                snapshots.insert(id.unwrap().to_owned(), body.to_owned());
            }
        }
        let messages = records(&fixture("BINANCE.ws.1.0"))
            .filter_map(|r| match r.unwrap() {
                Record::Received { message, .. } => Some(message.to_owned()),
                _ => None,
            })
            .collect();
        Capture {
            exchange_info,
            markets,
            snapshots,
            messages,
        }
    })
}

fn stream_of(message: &str) -> Option<String> {
    let value: Value = serde_json::from_str(message).ok()?;
    value["stream"].as_str().map(str::to_owned)
}

fn depth_of(message: &str) -> Option<DepthUpdate> {
    match parse_message(message, &capture().markets).ok()?.event {
        StreamEvent::Depth(update) => Some(update),
        _ => None,
    }
}

/// A symbol's book run by the pure procedure over the whole capture: the final state the
/// adapter must reach.
fn clean_final(id: &str) -> DepthSnapshot {
    let symbol = capture().markets.symbol_of(id).unwrap();
    let mut sync = DepthSync::new(symbol);
    sync.apply_snapshot(DepthSnapshot::parse(&capture().snapshots[id]).unwrap())
        .unwrap();
    for update in capture().messages.iter().filter_map(|m| depth_of(m)) {
        if update.symbol_id == id {
            sync.on_update(update).unwrap();
        }
    }
    assert_eq!(sync.stats().gaps, 0);
    sync.snapshot().unwrap()
}

/// NKNUSDT's clean book after each of its 150 events: what Binance's REST would answer at
/// that point (index 0 is the captured snapshot's state: its first event is older).
fn nkn_states() -> &'static Vec<DepthSnapshot> {
    static STATES: OnceLock<Vec<DepthSnapshot>> = OnceLock::new();
    STATES.get_or_init(|| {
        let mut sync = DepthSync::new("NKN/USDT");
        sync.apply_snapshot(DepthSnapshot::parse(&capture().snapshots["NKNUSDT"]).unwrap())
            .unwrap();
        let states: Vec<DepthSnapshot> = capture()
            .messages
            .iter()
            .filter_map(|m| depth_of(m))
            .filter(|u| u.symbol_id == "NKNUSDT")
            .map(|u| {
                sync.on_update(u).unwrap();
                sync.snapshot().unwrap()
            })
            .collect();
        assert_eq!(states.len(), 150);
        states
    })
}

fn snapshot_body(snapshot: &DepthSnapshot) -> String {
    let side = |levels: &[super::depth::Level]| -> Vec<[String; 2]> {
        levels
            .iter()
            .map(|l| [l.price.as_str().to_owned(), l.amount.as_str().to_owned()])
            .collect()
    };
    json!({
        "lastUpdateId": snapshot.last_update_id,
        "bids": side(&snapshot.bids),
        "asks": side(&snapshot.asks),
    })
    .to_string()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---- the fake Router ----

type Publications = Arc<Mutex<Vec<(String, Value)>>>;

struct Recorder(Publications);

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<Publish> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        let value = serde_json::from_slice(&msg.data).expect("publications are JSON");
        self.0.lock().unwrap().push((msg.channel, value));
    }
}

// ---- the fake Binance REST API ----

/// Binance's REST API as far as the adapter uses it.
struct FakeRest {
    /// Depth requests, by Binance id, in order.
    depth_requests: Mutex<Vec<String>>,
    /// Signed requests that passed the checks (`METHOD path`).
    signed: Mutex<Vec<String>>,
    /// Requests refused for their key or signature.
    refused: AtomicUsize,
    /// NKNUSDT events the stream has sent so far, as clean indices + 1: a snapshot asked
    /// after the first is the clean book at that point.
    nkn_sent: Arc<AtomicUsize>,
    open_orders: Mutex<Vec<Value>>,
    next_order: AtomicU64,
}

impl FakeRest {
    fn new(nkn_sent: Arc<AtomicUsize>) -> Arc<Self> {
        Arc::new(FakeRest {
            depth_requests: Mutex::new(Vec::new()),
            signed: Mutex::new(Vec::new()),
            refused: AtomicUsize::new(0),
            nkn_sent,
            open_orders: Mutex::new(Vec::new()),
            next_order: AtomicU64::new(28),
        })
    }

    fn depth_requests(&self, id: &str) -> usize {
        let requests = self.depth_requests.lock().unwrap();
        requests.iter().filter(|r| *r == id).count()
    }

    fn answer(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> (u16, String) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let params = parse_params(query);
        let param = |name: &str| params.get(name).cloned().unwrap_or_default();
        match (method, path) {
            ("GET", "/api/v3/exchangeInfo") => (200, capture().exchange_info.clone()),
            ("GET", "/api/v3/depth") => {
                let id = param("symbol");
                let count = {
                    let mut requests = self.depth_requests.lock().unwrap();
                    requests.push(id.clone());
                    requests.iter().filter(|r| **r == id).count()
                };
                let sent = self.nkn_sent.load(Ordering::SeqCst);
                match capture().snapshots.get(&id) {
                    // A resync: the book as it stands now.
                    Some(_) if id == "NKNUSDT" && count > 1 && sent > 0 => {
                        (200, snapshot_body(&nkn_states()[sent - 1]))
                    }
                    Some(body) => (200, body.clone()),
                    None => error(400, -1121, "Invalid symbol."),
                }
            }
            ("GET", "/api/v3/ticker/24hr") if param("symbol") == "NKNUSDT" => {
                (200, REST_TICKER.to_owned())
            }
            (_, "/api/v3/account" | "/api/v3/order" | "/api/v3/openOrders") => {
                self.signed(method, path, query, headers, body)
            }
            _ => error(404, -1000, "no such endpoint here"),
        }
    }

    /// A SIGNED endpoint, checked as Binance documents it.
    fn signed(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> (u16, String) {
        let key = headers
            .iter()
            .find(|(name, _)| name == "x-mbx-apikey")
            .map(|(_, value)| value.as_str());
        match key {
            None => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                return error(401, -2014, "API-key format invalid.");
            }
            Some(key) if key != API_KEY => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                return error(
                    401,
                    -2015,
                    "Invalid API-key, IP, or permissions for action.",
                );
            }
            Some(_) => {}
        }
        // totalParams: the query string, then the body.
        let total = format!("{query}{body}");
        if !rest::verify(SECRET, &total) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return error(400, -1022, "Signature for this request is not valid.");
        }
        let params = parse_params(&total);
        let param = |name: &str| params.get(name).cloned().unwrap_or_default();
        let timestamp: i64 = param("timestamp").parse().unwrap_or(0);
        let window: i64 = params
            .get("recvWindow")
            .map_or(5000, |w| w.parse().unwrap_or(0));
        let now = now_ms();
        if timestamp > now + 1000 || now - timestamp > window {
            return error(
                400,
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            );
        }
        self.signed.lock().unwrap().push(format!("{method} {path}"));
        match (method, path) {
            ("GET", "/api/v3/account") => (200, ACCOUNT.to_owned()),
            ("POST", "/api/v3/order") => self.new_order(&param),
            ("DELETE", "/api/v3/order") => {
                let mut open = self.open_orders.lock().unwrap();
                let at = open.iter().position(|o| {
                    o["orderId"].as_u64() == param("orderId").parse().ok()
                        || o["clientOrderId"].as_str() == Some(param("origClientOrderId").as_str())
                });
                let Some(at) = at else {
                    return error(400, -2011, "Unknown order sent.");
                };
                let mut order = open.remove(at);
                let object = order.as_object_mut().unwrap();
                object.insert("status".into(), "CANCELED".into());
                object.insert("origClientOrderId".into(), object["clientOrderId"].clone());
                object.insert("transactTime".into(), now.into());
                for key in ["time", "updateTime", "workingTime", "isWorking"] {
                    object.remove(key);
                }
                (200, order.to_string())
            }
            ("GET", "/api/v3/openOrders") => {
                let open = self.open_orders.lock().unwrap();
                let symbol = param("symbol");
                let list: Vec<&Value> = open
                    .iter()
                    .filter(|o| symbol.is_empty() || o["symbol"] == symbol.as_str())
                    .collect();
                (200, json!(list).to_string())
            }
            _ => error(400, -1100, "Illegal characters found in a parameter."),
        }
    }

    fn new_order(&self, param: &dyn Fn(&str) -> String) -> (u16, String) {
        let (symbol, side, kind) = (param("symbol"), param("side"), param("type"));
        if symbol != "NKNUSDT" {
            return error(400, -1121, "Invalid symbol.");
        }
        let quantity: f64 = param("quantity").parse().unwrap_or(0.0);
        let price: f64 = param("price").parse().unwrap_or(0.0);
        if kind != "LIMIT" || param("timeInForce").is_empty() || quantity <= 0.0 || price <= 0.0 {
            return error(
                400,
                -1102,
                "Mandatory parameter was not sent, was empty/null, or malformed.",
            );
        }
        // The account holds 1000 USDT and 5000 NKN free.
        let enough = match side.as_str() {
            "BUY" => quantity * price <= 1000.0,
            "SELL" => quantity <= 5000.0,
            _ => return error(400, -1100, "Illegal characters found in parameter 'side'."),
        };
        if !enough {
            return error(
                400,
                -2010,
                "Account has insufficient balance for requested action.",
            );
        }
        let id = self.next_order.fetch_add(1, Ordering::SeqCst);
        let client = match param("newClientOrderId") {
            c if c.is_empty() => format!("web_{id}"),
            c => c,
        };
        let now = now_ms();
        let order = json!({
            "symbol": symbol, "orderId": id, "orderListId": -1, "clientOrderId": client,
            "price": param("price"), "origQty": param("quantity"), "executedQty": "0.00000000",
            "cummulativeQuoteQty": "0.00000000", "status": "NEW",
            "timeInForce": param("timeInForce"), "type": kind, "side": side,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        });
        let mut open = order.clone();
        let object = open.as_object_mut().unwrap();
        for (key, value) in [
            ("stopPrice", json!("0.00000000")),
            ("icebergQty", json!("0.00000000")),
            ("time", json!(now)),
            ("updateTime", json!(now)),
            ("isWorking", json!(true)),
            ("workingTime", json!(now)),
            ("origQuoteOrderQty", json!("0.00000000")),
        ] {
            object.insert(key.into(), value);
        }
        self.open_orders.lock().unwrap().push(open);
        let mut full = order;
        let object = full.as_object_mut().unwrap();
        object.insert("transactTime".into(), now.into());
        object.insert("workingTime".into(), now.into());
        object.insert("fills".into(), json!([]));
        (200, full.to_string())
    }
}

const ACCOUNT: &str = r#"{"makerCommission":10,"takerCommission":10,"buyerCommission":0,"sellerCommission":0,"commissionRates":{"maker":"0.00100000","taker":"0.00100000","buyer":"0.00000000","seller":"0.00000000"},"canTrade":true,"canWithdraw":true,"canDeposit":true,"brokered":false,"requireSelfTradePrevention":false,"preventSor":false,"updateTime":1633998523963,"accountType":"SPOT","balances":[{"asset":"NKN","free":"5000.00000000","locked":"0.00000000"},{"asset":"USDT","free":"1000.00000000","locked":"35.20000000"}],"permissions":["SPOT"],"uid":354937868}"#;

const REST_TICKER: &str = r#"{"symbol":"NKNUSDT","priceChange":"0.00150000","priceChangePercent":"0.427","weightedAvgPrice":"0.35100000","prevClosePrice":"0.35100000","lastPrice":"0.35250000","lastQty":"10.00000000","bidPrice":"0.35210000","bidQty":"672.00000000","askPrice":"0.35290000","askQty":"10968.00000000","openPrice":"0.35100000","highPrice":"0.36000000","lowPrice":"0.34000000","volume":"1000000.00000000","quoteVolume":"351000.00000000","openTime":1633912123000,"closeTime":1633998523000,"firstId":1,"lastId":2,"count":2}"#;

/// The same statistics as a `<symbol>@ticker` stream message.
const STREAM_TICKER: &str = r#"{"stream":"nknusdt@ticker","data":{"e":"24hrTicker","E":1633998523100,"s":"NKNUSDT","p":"0.00150000","P":"0.427","w":"0.35100000","x":"0.35100000","c":"0.35250000","Q":"10.00000000","b":"0.35210000","B":"672.00000000","a":"0.35290000","A":"10968.00000000","o":"0.35100000","h":"0.36000000","l":"0.34000000","v":"1000000.00000000","q":"351000.00000000","O":1633912123000,"C":1633998523000,"F":1,"L":2,"n":2}}"#;

fn error(status: u16, code: i64, msg: &str) -> (u16, String) {
    (status, json!({"code": code, "msg": msg}).to_string())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_params(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

async fn serve_rest(rest: Arc<FakeRest>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    actix::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let rest = rest.clone();
            actix::spawn(async move {
                let _ = http_exchange(tcp, &rest).await;
            });
        }
    });
    base
}

/// One request and its answer (the client sends `Connection: close`).
async fn http_exchange(mut tcp: TcpStream, rest: &FakeRest) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap_or(0));
    while buffer.len() < head_end + length {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..]).into_owned();
    let (status, answer) = rest.answer(&method, &target, &headers, &body);
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    tcp.write_all(response.as_bytes()).await?;
    tcp.shutdown().await
}

// ---- the fake Binance stream ----

/// What the stream server sends: `extras` first as they are, then the capture's messages of
/// the streams subscribed (in the URL or by `SUBSCRIBE`), one every `pace`.
struct Replay {
    extras: Vec<String>,
    /// Messages, each with NKNUSDT's clean event index when it is one of its depth events.
    messages: Vec<(String, Option<usize>)>,
    pace: Duration,
}

#[derive(Default)]
struct StreamLog {
    /// Request targets of the connections.
    targets: Mutex<Vec<String>>,
    /// Messages the client sent.
    received: Mutex<Vec<String>>,
    sent: AtomicUsize,
    done: AtomicBool,
}

/// The capture's messages with NKNUSDT's clean indices, and `fault` applied to them.
fn replay_messages(fault: Fault) -> Vec<(String, Option<usize>)> {
    let mut index = 0;
    let mut messages: Vec<(String, Option<usize>)> = capture()
        .messages
        .iter()
        .map(|m| {
            let nkn = depth_of(m).filter(|u| u.symbol_id == "NKNUSDT").map(|_| {
                index += 1;
                index - 1
            });
            (m.clone(), nkn)
        })
        .collect();
    let at = |messages: &[(String, Option<usize>)], i: usize| {
        messages.iter().position(|(_, n)| *n == Some(i)).unwrap()
    };
    match fault {
        Fault::None => {}
        Fault::Drop(i) => {
            let p = at(&messages, i);
            messages.remove(p);
        }
        Fault::Duplicate(i) => {
            let p = at(&messages, i);
            let copy = messages[p].clone();
            messages.insert(p + 1, copy);
        }
        Fault::Swap(i) => {
            let (p, q) = (at(&messages, i), at(&messages, i + 1));
            messages.swap(p, q);
        }
    }
    messages
}

async fn serve_stream(
    replay: Arc<Replay>,
    log: Arc<StreamLog>,
    nkn_sent: Arc<AtomicUsize>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    actix::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (replay, log, nkn_sent) = (replay.clone(), log.clone(), nkn_sent.clone());
            actix::spawn(async move {
                let target = Arc::new(Mutex::new(String::new()));
                let seen = target.clone();
                // The handshake's error type is tungstenite's, large or not.
                #[allow(clippy::result_large_err)]
                let callback = move |request: &Request, response: Response| {
                    *seen.lock().unwrap() = request.uri().to_string();
                    Ok(response)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                let target = target.lock().unwrap().clone();
                log.targets.lock().unwrap().push(target.clone());
                // The combined stream names its streams in the URL.
                let mut streams: BTreeSet<String> = target
                    .split_once("streams=")
                    .map(|(_, s)| s.split('/').map(str::to_owned).collect())
                    .unwrap_or_default();
                for extra in &replay.extras {
                    if ws.send(Message::text(extra.clone())).await.is_err() {
                        return;
                    }
                }
                let mut next = 0;
                loop {
                    let pending = next < replay.messages.len();
                    tokio::select! {
                        incoming = ws.next() => match incoming {
                            Some(Ok(Message::Text(text))) => {
                                log.received.lock().unwrap().push(text.to_string());
                                let request: Value = serde_json::from_str(&text).unwrap_or_default();
                                let names = request["params"].as_array().cloned().unwrap_or_default();
                                for name in names.iter().filter_map(Value::as_str) {
                                    match request["method"].as_str() {
                                        Some("SUBSCRIBE") => { streams.insert(name.to_owned()); }
                                        Some("UNSUBSCRIBE") => { streams.remove(name); }
                                        _ => {}
                                    }
                                }
                                let reply = json!({"result": null, "id": request["id"]});
                                if ws.send(Message::text(reply.to_string())).await.is_err() {
                                    return;
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => return,
                        },
                        () = actix::clock::sleep(replay.pace), if pending => {
                            // The next message of a subscribed stream.
                            while let Some((message, nkn)) = replay.messages.get(next) {
                                next += 1;
                                if !stream_of(message).is_some_and(|s| streams.contains(&s)) {
                                    continue;
                                }
                                if let Some(index) = nkn {
                                    nkn_sent.fetch_max(index + 1, Ordering::SeqCst);
                                }
                                if ws.send(Message::text(message.clone())).await.is_err() {
                                    return;
                                }
                                log.sent.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            if next >= replay.messages.len() {
                                log.done.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                }
            });
        }
    });
    url
}

// ---- the harness ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// NKNUSDT's event of this clean index is lost.
    Drop(usize),
    /// ... comes twice.
    Duplicate(usize),
    /// ... comes after the next one.
    Swap(usize),
}

struct Harness {
    adapter: Addr<BinanceAdapter>,
    publications: Publications,
    rest: Arc<FakeRest>,
    stream: Arc<StreamLog>,
    extras: usize,
}

impl Harness {
    async fn start(replay: Replay, ws_url: Option<String>) -> Harness {
        let nkn_sent = Arc::new(AtomicUsize::new(0));
        let rest = FakeRest::new(nkn_sent.clone());
        let rest_url = serve_rest(rest.clone()).await;
        let stream = Arc::new(StreamLog::default());
        let extras = replay.extras.len();
        let ws_url = match ws_url {
            Some(url) => url,
            None => serve_stream(Arc::new(replay), stream.clone(), nkn_sent).await,
        };
        let publications = Publications::default();
        let recorder = Recorder(publications.clone()).start();
        let settings = BinanceSettings {
            enabled: true,
            ws_url,
            rest_url,
            ..BinanceSettings::default()
        };
        settings.check().unwrap();
        let adapter = BinanceAdapter::new(settings, recorder.recipient()).start();
        Harness {
            adapter,
            publications,
            rest,
            stream,
            extras,
        }
    }

    fn demand(&self, channels: &[&str]) {
        for channel in channels {
            self.adapter.do_send(Demand::Start {
                channel: (*channel).to_owned(),
            });
        }
    }

    async fn stats(&self) -> BinanceStats {
        self.adapter.send(GetStats).await.unwrap()
    }

    /// Waits until the replay is sent and handled, and every book is in sync.
    async fn settle(&self) -> BinanceStats {
        for _ in 0..1000 {
            let stats = self.stats().await;
            let sent = self.stream.sent.load(Ordering::SeqCst) + self.extras;
            if self.stream.done.load(Ordering::SeqCst)
                && stats.counters.messages >= sent as u64
                && stats.books.values().all(|b| b.synced)
            {
                // Let the recorder take the last publications.
                actix::clock::sleep(Duration::from_millis(50)).await;
                return self.stats().await;
            }
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
        panic!("the replay did not settle: {:?}", self.stats().await);
    }

    async fn until_markets(&self) {
        for _ in 0..1000 {
            if self.stats().await.markets > 0 {
                return;
            }
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
        panic!("no markets");
    }

    fn published(&self, channel: &str) -> Vec<Value> {
        let all = self.publications.lock().unwrap();
        all.iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, v)| v.clone())
            .collect()
    }

    async fn full_book(&self, symbol: &str) -> DepthSnapshot {
        self.adapter
            .send(FullBook(symbol.to_owned()))
            .await
            .unwrap()
            .expect("a book in sync")
    }

    async fn call(
        &self,
        method: ExchangeMethod,
        params: Value,
        secret: Option<&str>,
    ) -> Result<Value, ExchangeError> {
        let credentials = secret.map(|secret| Credentials {
            user: "alice".into(),
            account: API_KEY.into(),
            secret: Some(secret.into()),
        });
        let Value::Object(params) = params else {
            panic!("params are an object");
        };
        let call = ExchangeCall {
            method,
            params,
            credentials,
        };
        let answer = self.adapter.send(call).await.unwrap()?;
        Ok(serde_json::from_slice(&answer).unwrap())
    }
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn field_set(fields: &[&'static str]) -> BTreeSet<&'static str> {
    fields.iter().copied().collect()
}

/// Every publication of a book: ccxt's keys, never crossed, levels best first, the nonce
/// strictly increasing.
fn check_books(books: &[Value], symbol: &str) {
    let mut last = None;
    for book in books {
        assert_eq!(keys(book), field_set(ORDER_BOOK_FIELDS));
        assert_eq!(book["symbol"], symbol);
        let nonce = book["nonce"].as_u64().unwrap();
        if let Some(last) = last {
            assert!(nonce > last, "nonce {nonce} after {last}");
        }
        last = Some(nonce);
        let side = |name: &str| -> Vec<f64> {
            book[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l[0].as_f64().unwrap())
                .collect()
        };
        let (bids, asks) = (side("bids"), side("asks"));
        assert!(bids.len() <= 20 && asks.len() <= 20);
        assert!(bids.windows(2).all(|w| w[0] > w[1]));
        assert!(asks.windows(2).all(|w| w[0] < w[1]));
        if let (Some(bid), Some(ask)) = (bids.first(), asks.first()) {
            assert!(bid < ask, "crossed at nonce {nonce}: {bid} >= {ask}");
        }
    }
}

fn notifications(h: &Harness) -> Vec<Value> {
    h.published(crate::channel::NOTIFICATIONS)
}

const ALL_CHANNELS: &[&str] = &[
    "book:binance:NKN/USDT",
    "book:binance:BLZ/ETH",
    "book:binance:LRC/BTC",
    "book:binance:RUNE/EUR",
    "trades:binance:NKN/USDT",
    "trades:binance:LRC/BTC",
    "ohlcv:binance:NKN/USDT:1m",
    "ohlcv:binance:LRC/BTC:1m",
    "ticker:binance:NKN/USDT",
];

#[actix::test]
async fn the_replay_syncs_every_book_with_zero_gaps_and_publishes_ccxt() {
    let mut messages = replay_messages(Fault::None);
    messages.push((STREAM_TICKER.to_owned(), None));
    let extras = vec![
        "not JSON {".to_owned(),
        r#"{"result":null,"id":7}"#.to_owned(),
        r#"{"error":{"code":2,"msg":"Invalid request: unknown variant"},"id":8}"#.to_owned(),
        r#"{"stream":"nknusdt@depth5","data":{}}"#.to_owned(),
        r#"{"stream":"xyzusdt@aggTrade","data":{"e":"aggTrade","s":"XYZUSDT","a":1,"p":"1","q":"1","T":1,"m":true}}"#.to_owned(),
        r#"{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","s":"NKNUSDT"}}"#.to_owned(),
    ];
    let replay = Replay {
        extras,
        messages,
        pace: Duration::from_millis(1),
    };
    let h = Harness::start(replay, None).await;
    let mut channels = ALL_CHANNELS.to_vec();
    channels.push("book:binance:FOO/BAR");
    channels.push("ohlcv:binance:NKN/USDT:7m");
    h.demand(&channels);
    let stats = h.settle().await;

    // One connection, its streams in its URL; nothing for the unknown symbol and timeframe.
    let targets = h.stream.targets.lock().unwrap().clone();
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(
        targets[0],
        "/stream?streams=blzeth@depth@100ms/lrcbtc@aggTrade/lrcbtc@depth@100ms/lrcbtc@kline_1m/\
         nknusdt@aggTrade/nknusdt@depth@100ms/nknusdt@kline_1m/nknusdt@ticker/runeeur@depth@100ms"
    );
    assert!(h.stream.received.lock().unwrap().is_empty());

    // NKNUSDT by the documented procedure: the snapshot at 499869752, the event 750–752
    // dropped, 753–754 the first applied, 149 applied, no gap.
    let nkn = &stats.books["NKN/USDT"];
    println!("NKN/USDT: {nkn:?}");
    assert_eq!(nkn.total.first_applied, Some((499869753, 499869754)));
    assert_eq!((nkn.total.dropped, nkn.total.applied), (1, 149));
    assert_eq!(
        (nkn.total.gaps, nkn.total.duplicates, nkn.total.reorders),
        (0, 0, 0)
    );
    assert_eq!((nkn.total.snapshots, nkn.snapshot_requests), (1, 1));
    assert_eq!(nkn.nonce, Some(499870179));
    assert_eq!(h.rest.depth_requests("NKNUSDT"), 1);
    for (symbol, book) in &stats.books {
        assert_eq!(book.total.gaps, 0, "{symbol}");
        assert_eq!(book.snapshot_requests, 1, "{symbol}");
        assert_eq!(h.full_book(symbol).await, clean_final(&book.id), "{symbol}");
    }
    assert_eq!(stats.books.len(), 4);

    // The publications: ccxt's structures, books never crossed, nonces increasing, the last
    // one the clean book's top 20.
    for (symbol, id) in [
        ("NKN/USDT", "NKNUSDT"),
        ("BLZ/ETH", "BLZETH"),
        ("LRC/BTC", "LRCBTC"),
        ("RUNE/EUR", "RUNEEUR"),
    ] {
        let books = h.published(&format!("book:binance:{symbol}"));
        assert!(!books.is_empty(), "{symbol}");
        check_books(&books, symbol);
        let mut sync = DepthSync::new(symbol);
        sync.apply_snapshot(clean_final(id)).unwrap();
        let expected = serde_json::to_value(sync.order_book(20).unwrap()).unwrap();
        let last = books.last().unwrap();
        assert_eq!(
            (&last["bids"], &last["asks"], &last["nonce"]),
            (&expected["bids"], &expected["asks"], &expected["nonce"]),
            "{symbol}"
        );
    }
    let nkn_books = h.published(NKN_BOOK);
    for channel in ["trades:binance:NKN/USDT", "trades:binance:LRC/BTC"] {
        let trades = h.published(channel);
        assert_eq!(trades.len(), 1, "{channel}");
        assert_eq!(keys(&trades[0]), field_set(TRADE_FIELDS));
    }
    let candles = h.published("ohlcv:binance:NKN/USDT:1m");
    assert_eq!(candles.len(), 1);
    assert_eq!(candles[0].as_array().unwrap().len(), 6);
    assert!(candles[0][0].is_i64());
    let tickers = h.published("ticker:binance:NKN/USDT");
    assert_eq!(tickers.len(), 1);
    assert_eq!(keys(&tickers[0]), field_set(TICKER_FIELDS));
    assert_eq!(
        (
            &tickers[0]["symbol"],
            &tickers[0]["last"],
            &tickers[0]["bid"]
        ),
        (&json!("NKN/USDT"), &json!(0.3525), &json!(0.3521))
    );
    assert!(h.published("book:binance:FOO/BAR").is_empty());

    // Refused messages are counted, none is fatal.
    let c = stats.counters;
    println!("counters: {c:?}");
    assert_eq!(
        (
            c.invalid_json,
            c.replies,
            c.refusals,
            c.unknown_streams,
            c.unknown_markets,
            c.malformed
        ),
        (1, 1, 1, 1, 1, 1)
    );
    assert_eq!((c.connects, c.disconnects, c.resyncs), (1, 0, 0));
    assert_eq!(c.snapshot_requests, 4);
    // 177 depth events + 2 trades + 2 candles + 1 ticker, and the 6 extras.
    assert_eq!(c.messages, 177 + 2 + 2 + 1 + 6);

    // Notifications: up with the markets, a warning per refused channel, never down.
    let notices = notifications(&h);
    assert_eq!(notices[0]["type"], "adapter");
    assert_eq!(notices[0]["exchange"], "binance");
    assert_eq!(notices[0]["status"], "up");
    assert_eq!(notices[0]["markets"], 1695);
    let warnings: BTreeMap<&str, &str> = notices
        .iter()
        .filter_map(|n| Some((n["channel"].as_str()?, n["warning"].as_str()?)))
        .collect();
    assert_eq!(
        warnings,
        BTreeMap::from([
            ("book:binance:FOO/BAR", "unknown symbol"),
            ("ohlcv:binance:NKN/USDT:7m", "unknown timeframe"),
        ])
    );
    assert!(notices
        .iter()
        .all(|n| n["status"] != "down" && n["status"] != "resyncing"));
    println!(
        "published: {} NKN/USDT books, {} publications in all, {} notifications",
        nkn_books.len(),
        h.publications.lock().unwrap().len(),
        notices.len()
    );

    // Demand changes go on the live connection (SUBSCRIBE / UNSUBSCRIBE), coalesced.
    h.adapter.do_send(Demand::Stop {
        channel: "ticker:binance:NKN/USDT".into(),
    });
    h.adapter.do_send(Demand::Start {
        channel: "trades:binance:BLZ/ETH".into(),
    });
    for _ in 0..200 {
        if h.stream.received.lock().unwrap().len() >= 2 {
            break;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    let received: Vec<Value> = h
        .stream
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert_eq!(
        received,
        [
            json!({"method": "UNSUBSCRIBE", "params": ["nknusdt@ticker"], "id": 1}),
            json!({"method": "SUBSCRIBE", "params": ["blzeth@aggTrade"], "id": 1}),
        ]
    );
    let stats = h.stats().await;
    assert_eq!(stats.counters.connects, 1, "no new connection for a change");
    assert!(
        stats.books.values().all(|b| b.synced),
        "the books stay live"
    );
}

/// A replay with `fault` on NKNUSDT only.
async fn faulty_run(fault: Fault) -> (Harness, BinanceStats) {
    let replay = Replay {
        extras: Vec::new(),
        messages: replay_messages(fault),
        pace: Duration::from_millis(2),
    };
    let h = Harness::start(replay, None).await;
    h.demand(&[NKN_BOOK]);
    let stats = h.settle().await;
    // Whatever happened, the book ends as the clean replay's.
    let clean = clean_final("NKNUSDT");
    assert_eq!(h.full_book("NKN/USDT").await, clean, "{fault:?}");
    let books = h.published(NKN_BOOK);
    check_books(&books, "NKN/USDT");
    assert_eq!(books.last().unwrap()["nonce"], 499870179);
    println!(
        "{fault:?}: {:?}, {} depth requests, {} books published",
        stats.books["NKN/USDT"],
        h.rest.depth_requests("NKNUSDT"),
        books.len()
    );
    (h, stats)
}

/// Notifications about NKN/USDT's book: `resyncing` then `up`, for each resync.
fn resync_notices(h: &Harness) -> Vec<String> {
    notifications(h)
        .iter()
        .filter(|n| n["symbol"] == "NKN/USDT")
        .map(|n| n["status"].as_str().unwrap().to_owned())
        .collect()
}

/// The faults come well after the first snapshot is applied (event 60 of 150, about 0.15 s
/// into the replay), so they hit a live book.
const FAULT_AT: usize = 60;

#[actix::test]
async fn a_dropped_event_is_a_gap_resynced_from_a_fresh_snapshot() {
    let (h, stats) = faulty_run(Fault::Drop(FAULT_AT)).await;
    let nkn = &stats.books["NKN/USDT"];
    assert_eq!(nkn.total.gaps, 1);
    assert_eq!(nkn.snapshot_requests, 2);
    assert_eq!(
        h.rest.depth_requests("NKNUSDT"),
        2,
        "a fresh snapshot was asked"
    );
    assert_eq!(stats.counters.resyncs, 1);
    assert_eq!(resync_notices(&h), ["resyncing", "up"]);
}

#[actix::test]
async fn a_reordered_event_is_a_gap_resynced_from_a_fresh_snapshot() {
    let (h, stats) = faulty_run(Fault::Swap(FAULT_AT)).await;
    let nkn = &stats.books["NKN/USDT"];
    assert_eq!((nkn.total.gaps, nkn.total.reorders), (1, 1));
    assert_eq!(
        h.rest.depth_requests("NKNUSDT"),
        2,
        "a fresh snapshot was asked"
    );
    assert_eq!(resync_notices(&h), ["resyncing", "up"]);
}

#[actix::test]
async fn a_duplicated_event_is_ignored() {
    let (h, stats) = faulty_run(Fault::Duplicate(FAULT_AT)).await;
    let nkn = &stats.books["NKN/USDT"];
    assert_eq!((nkn.total.duplicates, nkn.total.gaps), (1, 0));
    assert_eq!(nkn.total.applied, 149);
    assert_eq!(h.rest.depth_requests("NKNUSDT"), 1, "no resync");
    assert!(resync_notices(&h).is_empty());
}

#[actix::test]
async fn a_lost_connection_is_announced_down_once_per_streak() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let replay = Replay {
        extras: Vec::new(),
        messages: Vec::new(),
        pace: Duration::from_millis(1),
    };
    let h = Harness::start(replay, Some(format!("ws://127.0.0.1:{port}"))).await;
    h.until_markets().await;
    h.demand(&[NKN_BOOK]);
    for _ in 0..300 {
        if h.stats().await.counters.disconnects >= 3 {
            break;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    let stats = h.stats().await;
    assert!(stats.counters.disconnects >= 3, "{:?}", stats.counters);
    let statuses: Vec<String> = notifications(&h)
        .iter()
        .map(|n| n["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["up", "down"]);
    assert!(h.published(NKN_BOOK).is_empty());
    println!("{} failed connects, one down", stats.counters.disconnects);
}

#[actix::test]
async fn private_calls_are_signed_as_binance_checks_them() {
    let replay = Replay {
        extras: Vec::new(),
        messages: Vec::new(),
        pace: Duration::from_millis(1),
    };
    let h = Harness::start(replay, None).await;
    h.until_markets().await;
    let nkn = |extra: Value| {
        let mut params = json!({"symbol": "NKN/USDT"});
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        params
    };

    let login = h
        .call(ExchangeMethod::Login, json!({}), Some(SECRET))
        .await
        .unwrap();
    assert_eq!(
        login,
        json!({"exchange": "binance", "user": "alice", "logged_in": true})
    );

    let balance = h
        .call(ExchangeMethod::FetchBalance, json!({}), Some(SECRET))
        .await
        .unwrap();
    let mut expected_keys = field_set(BALANCE_FIELDS);
    expected_keys.extend(["NKN", "USDT"]);
    assert_eq!(keys(&balance), expected_keys);
    assert_eq!(keys(&balance["USDT"]), field_set(ACCOUNT_FIELDS));
    assert_eq!(
        (
            &balance["USDT"]["free"],
            &balance["USDT"]["used"],
            &balance["USDT"]["total"]
        ),
        (&json!(1000.0), &json!(35.2), &json!(1035.2))
    );
    assert_eq!(balance["timestamp"], 1633998523963_i64);

    let order = nkn(json!({
        "type": "limit", "side": "buy", "amount": 100, "price": 0.35,
        "params": {"timeInForce": "GTC", "clientOrderId": "my-order-1"},
    }));
    let created = h
        .call(ExchangeMethod::CreateOrder, order, Some(SECRET))
        .await
        .unwrap();
    assert_eq!(keys(&created), field_set(ORDER_FIELDS));
    assert_eq!(
        (
            &created["id"],
            &created["clientOrderId"],
            &created["status"],
            &created["symbol"],
            &created["type"],
            &created["side"],
            &created["timeInForce"],
        ),
        (
            &json!("28"),
            &json!("my-order-1"),
            &json!("open"),
            &json!("NKN/USDT"),
            &json!("limit"),
            &json!("buy"),
            &json!("GTC"),
        )
    );
    assert_eq!(
        (
            &created["price"],
            &created["amount"],
            &created["filled"],
            &created["remaining"]
        ),
        (&json!(0.35), &json!(100.0), &json!(0.0), &json!(100.0))
    );
    let info = &created["info"];
    assert_eq!(
        (&info["price"], &info["origQty"]),
        (&json!("0.3500"), &json!("100"))
    );

    let open = h
        .call(
            ExchangeMethod::FetchOpenOrders,
            nkn(json!({})),
            Some(SECRET),
        )
        .await
        .unwrap();
    let open = open.as_array().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(keys(&open[0]), field_set(ORDER_FIELDS));
    assert_eq!(
        (&open[0]["id"], &open[0]["status"]),
        (&json!("28"), &json!("open"))
    );
    let all = h
        .call(ExchangeMethod::FetchOpenOrders, json!({}), Some(SECRET))
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);

    let canceled = h
        .call(
            ExchangeMethod::CancelOrder,
            nkn(json!({"id": "28"})),
            Some(SECRET),
        )
        .await
        .unwrap();
    assert_eq!(keys(&canceled), field_set(ORDER_FIELDS));
    assert_eq!(
        (&canceled["id"], &canceled["status"]),
        (&json!("28"), &json!("canceled"))
    );
    let again = h
        .call(
            ExchangeMethod::CancelOrder,
            nkn(json!({"id": "28"})),
            Some(SECRET),
        )
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::OrderNotFound);
    let open = h
        .call(
            ExchangeMethod::FetchOpenOrders,
            nkn(json!({})),
            Some(SECRET),
        )
        .await
        .unwrap();
    assert_eq!(open, json!([]));

    // Insufficient balance: Binance's -2010.
    let too_much =
        nkn(json!({"type": "limit", "side": "buy", "amount": 100000, "price": "0.3500"}));
    let error = h
        .call(ExchangeMethod::CreateOrder, too_much, Some(SECRET))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InsufficientFunds);
    assert!(error.message.contains("insufficient balance"), "{error}");
    assert!(error.message.contains("-2010"), "{error}");

    // A wrong secret: the signature is refused (-1022), an AuthenticationError.
    let wrong = "0".repeat(64);
    for method in [ExchangeMethod::Login, ExchangeMethod::FetchBalance] {
        let error = h.call(method, json!({}), Some(&wrong)).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::AuthenticationError, "{error}");
        assert!(error.message.contains("-1022"), "{error}");
        assert!(!error.message.contains(&wrong) && !error.message.contains(API_KEY));
    }
    let error = h
        .call(ExchangeMethod::FetchBalance, json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::AuthenticationError);
    assert_eq!(h.rest.refused.load(Ordering::SeqCst), 2);
    let signed = h.rest.signed.lock().unwrap().clone();
    assert_eq!(
        signed,
        [
            "GET /api/v3/account",
            "GET /api/v3/account",
            "POST /api/v3/order",
            "GET /api/v3/openOrders",
            "GET /api/v3/openOrders",
            "DELETE /api/v3/order",
            "DELETE /api/v3/order",
            "GET /api/v3/openOrders",
            "POST /api/v3/order",
        ]
    );

    // Bad arguments never reach Binance.
    let error = h
        .call(
            ExchangeMethod::CreateOrder,
            nkn(json!({"type": "limit", "side": "buy", "amount": 1})),
            Some(SECRET),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadRequest);
    let error = h
        .call(
            ExchangeMethod::CreateOrder,
            json!({"symbol": "NOPE/USDT", "type": "market", "side": "buy", "amount": 1}),
            Some(SECRET),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadSymbol);
    assert_eq!(h.rest.signed.lock().unwrap().len(), signed.len());

    // Public calls.
    let markets = h
        .call(ExchangeMethod::LoadMarkets, json!({}), None)
        .await
        .unwrap();
    assert_eq!(markets.as_object().unwrap().len(), 1695);
    assert_eq!(keys(&markets["NKN/USDT"]), field_set(MARKET_FIELDS));
    let book = h
        .call(
            ExchangeMethod::FetchOrderBook,
            nkn(json!({"limit": 5})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(keys(&book), field_set(ORDER_BOOK_FIELDS));
    assert_eq!(book["nonce"], 499869752);
    assert_eq!(book["bids"].as_array().unwrap().len(), 5);
    assert_eq!(book["bids"][0], json!([0.3521, 672.0]));
    check_books(&[book], "NKN/USDT");
    let ticker = h
        .call(ExchangeMethod::FetchTicker, nkn(json!({})), None)
        .await
        .unwrap();
    assert_eq!(keys(&ticker), field_set(TICKER_FIELDS));
    // The REST ticker reads as the stream's (ccxt's parseTicker and parseWsTicker agree).
    let StreamEvent::Ticker(streamed) = parse_message(STREAM_TICKER, &capture().markets)
        .unwrap()
        .event
    else {
        panic!("a ticker");
    };
    let mut streamed = serde_json::to_value(streamed).unwrap();
    streamed["info"] = serde_json::from_str(REST_TICKER).unwrap();
    assert_eq!(ticker, streamed);
    let error = h
        .call(ExchangeMethod::FetchTrades, nkn(json!({})), None)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotSupported);
    println!(
        "signed requests accepted: {}, refused: {}",
        signed.len(),
        h.rest.refused.load(Ordering::SeqCst)
    );
}

#[test]
fn settings_defaults_and_checks() {
    let settings: BinanceSettings =
        serde_json::from_value(json!({"enabled": true, "recv_window": "2s"})).unwrap();
    assert!(settings.enabled);
    assert_eq!(settings.recv_window, Duration::from_secs(2));
    assert_eq!(settings.ws_url, "wss://stream.binance.com:9443");
    assert_eq!(settings.rest_url, "https://api.binance.com");
    assert_eq!(settings.publish_depth, 20);
    assert_eq!(settings.heartbeat_timeout, Duration::from_secs(30));
    assert!(!BinanceSettings::default().enabled);
    assert_eq!(
        BinanceSettings::default().recv_window,
        Duration::from_millis(5000)
    );
    assert!(serde_json::from_value::<BinanceSettings>(json!({"nope": 1})).is_err());
    let bad = BinanceSettings {
        recv_window: Duration::from_secs(61),
        ..BinanceSettings::default()
    };
    assert!(bad.check().is_err());
    assert!(BinanceSettings::default().check().is_ok());
}
