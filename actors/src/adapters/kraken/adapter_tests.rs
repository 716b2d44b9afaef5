//! The Kraken adapter actor end to end, against local servers: an HTTP server answering
//! `AssetPairs` with `KRAKEN.0` (and canned `Depth` and `Ticker` answers), and a WebSocket server
//! that replays `KRAKEN.ws.50.0` at full speed once the adapter has subscribed, clean or with a
//! fault (an update dropped, duplicated or reordered). The server keeps the true book of every
//! pair as the capture makes it and, when the adapter resubscribes a book, answers as Kraken does:
//! `unsubscribed`, then `subscribed` and a snapshot of the book as it now is, after which it sends
//! that pair's updates again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rpc_crypto_proto::ccxt::fields::{ORDER_BOOK_FIELDS, TICKER_FIELDS, TRADE_FIELDS};
use rpc_crypto_proto::ccxt::ErrorKind;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::adapter::*;
use super::*;
use crate::adapters::capture::{records, Record};
use crate::adapters::contract::{ExchangeCall, ExchangeError, ExchangeMethod};
use crate::adapters::upstream::Feed;
use crate::channel::NOTIFICATIONS;
use crate::router::{Demand, Publish};

const ASSET_PAIRS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/exchanges/KRAKEN.0"
));
const WS_CAPTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/exchanges/KRAKEN.ws.50.0"
));
/// Book updates with a checksum in `KRAKEN.ws.50.0`.
pub(super) const CAPTURED_CHECKSUMS: u64 = 4269;
/// The pair the fault tests break.
pub(super) const FAULTY: &str = "XBT/CHF";

const REST_DEPTH: &str = r#"{"error":[],"result":{"XXBTZUSD":{"asks":[["30384.10000","2.059",1688671659],["30387.90000","1.500",1688671380]],"bids":[["30297.00000","1.115",1688671636],["30296.70000","0.002",1688671674]]}}}"#;
const REST_TICKER: &str = r#"{"error":[],"result":{"XXBTZUSD":{"a":["30300.10000","1","1.000"],"b":["30300.00000","1","1.000"],"c":["30303.20000","0.00067643"],"v":["4083.67001100","4412.73601799"],"p":["30706.77771","30689.13205"],"t":[34619,38907],"l":["29868.30000","29868.30000"],"h":["31631.00000","31631.00000"],"o":"30502.80000"}}}"#;
const TICKER_MESSAGE: &str = r#"[0,{"a":["5525.40000",1,"1.000"],"b":["5525.10000",1,"1.000"],"c":["5525.10000","0.00398963"],"v":["2634.11501494","3591.17907851"],"p":["5631.44067","5653.78939"],"t":[11493,16267],"l":["5505.00000","5505.00000"],"h":["5783.00000","5783.00000"],"o":["5760.70000","5763.40000"]},"ticker","XBT/CHF"]"#;
const TRADES_MESSAGE: &str = r#"[0,[["5541.20000","0.15850568","1534614057.321597","s","l",""],["6060.00000","0.02455000","1534614057.324998","b","l",""]],"trade","XBT/CHF"]"#;
const UNWANTED_TRADE: &str =
    r#"[0,[["250.1","0.5","1534614057.321597","s","l",""]],"trade","XMR/USD"]"#;

fn asset_pairs_body() -> &'static str {
    records(ASSET_PAIRS)
        .find_map(|record| match record {
            Ok(Record::Http { body, .. }) => Some(body),
            _ => None,
        })
        .expect("KRAKEN.0 has an HTTP record")
}

pub(super) fn markets() -> Arc<KrakenMarkets> {
    Arc::new(KrakenMarkets::from_asset_pairs(asset_pairs_body()).unwrap())
}

pub(super) fn received() -> Vec<&'static str> {
    records(WS_CAPTURE)
        .filter_map(|record| match record.expect("capture line") {
            Record::Received { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- the capture, by pair

/// One message of a script, and the step of the true book it stands for: (wsname, 0 for the
/// snapshot or the 1-based index of the pair's update).
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) text: String,
    pub(super) step: Option<(String, usize)>,
}

/// Every pair's snapshot and updates, as the capture has them.
pub(super) struct Clean {
    pub(super) symbols: HashMap<String, String>,
    pub(super) snapshots: HashMap<String, BookDelta>,
    pub(super) updates: HashMap<String, Vec<BookDelta>>,
}

impl Clean {
    pub(super) fn new(markets: &KrakenMarkets) -> (Clean, Vec<Entry>) {
        let mut clean = Clean {
            symbols: HashMap::new(),
            snapshots: HashMap::new(),
            updates: HashMap::new(),
        };
        let mut entries = Vec::new();
        for text in received() {
            let step = match parse_message(text, markets) {
                Ok(KrakenMessage::Book(book)) => {
                    let ws_name = book.pair.ws_name.clone();
                    clean
                        .symbols
                        .insert(ws_name.clone(), book.pair.market.symbol.clone());
                    if book.snapshot {
                        clean.snapshots.insert(ws_name.clone(), book.delta);
                        Some((ws_name, 0))
                    } else {
                        let updates = clean.updates.entry(ws_name.clone()).or_default();
                        updates.push(book.delta);
                        Some((ws_name, updates.len()))
                    }
                }
                _ => None,
            };
            entries.push(Entry {
                text: text.to_owned(),
                step,
            });
        }
        (clean, entries)
    }

    pub(super) fn symbol(&self, ws_name: &str) -> &str {
        &self.symbols[ws_name]
    }

    /// The pair's book after its snapshot and `updates` (indices, 1-based), and whether every
    /// checksum on the way matched.
    pub(super) fn apply(&self, ws_name: &str, updates: &[usize]) -> (KrakenBook, bool) {
        let mut book = KrakenBook::new(self.symbol(ws_name), 1000);
        book.apply_snapshot(&self.snapshots[ws_name]).unwrap();
        let mut clean = true;
        for &k in updates {
            if book.apply_update(&self.updates[ws_name][k - 1]).is_err() {
                clean = false;
                break;
            }
        }
        (book, clean)
    }

    /// The final book of every pair, by ccxt symbol.
    pub(super) fn finals(&self) -> BTreeMap<String, KrakenBook> {
        self.snapshots
            .keys()
            .map(|ws_name| {
                let all: Vec<usize> = (1..=self.updates[ws_name].len()).collect();
                let (book, clean) = self.apply(ws_name, &all);
                assert!(clean);
                (self.symbol(ws_name).to_owned(), book)
            })
            .collect()
    }
}

// ---------------------------------------------------------------- faults

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Drop,
    /// The update sent again right after itself: harmless, levels are absolute.
    DuplicateInPlace,
    /// The update sent again after the next one.
    DuplicateLate,
    Reorder,
}

/// The update sequence a fault at update `k` makes of `1..=n`.
fn faulty_sequence(fault: Fault, k: usize, n: usize) -> Vec<usize> {
    let mut sequence: Vec<usize> = (1..=n).collect();
    match fault {
        Fault::Drop => {
            sequence.remove(k - 1);
        }
        Fault::DuplicateInPlace => sequence.insert(k, k),
        Fault::DuplicateLate => sequence.insert(k + 1, k),
        Fault::Reorder => sequence.swap(k - 1, k),
    }
    sequence
}

/// The script with `fault` at the update `k` of [`FAULTY`], and the index of its entry that
/// completes the fault (where the checksum reveals it).
fn with_fault(entries: &[Entry], fault: Fault, k: usize) -> (Vec<Entry>, usize) {
    let position = |index: usize| {
        entries
            .iter()
            .position(|e| e.step == Some((FAULTY.to_owned(), index)))
            .unwrap()
    };
    let mut script = entries.to_vec();
    let (at, next) = (position(k), position(k + 1));
    let last = match fault {
        Fault::Drop => {
            script.remove(at);
            next - 1
        }
        Fault::DuplicateInPlace => {
            script.insert(at + 1, entries[at].clone());
            at + 1
        }
        Fault::DuplicateLate => {
            script.insert(next + 1, entries[at].clone());
            next + 1
        }
        Fault::Reorder => {
            script.swap(at, next);
            next
        }
    };
    (script, last)
}

/// An update of [`FAULTY`], from the middle of the capture on, whose `fault` the checksum of
/// the message completing the fault reveals (a change deeper than the checksum's 10 levels is
/// invisible by Kraken's design, and may show only later or never).
fn detectable(clean: &Clean, fault: Fault) -> usize {
    let n = clean.updates[FAULTY].len();
    (n / 2..n - 1)
        .find(|&k| {
            let sequence = faulty_sequence(fault, k, n);
            let revealed_at = match fault {
                Fault::Drop => k,
                Fault::DuplicateInPlace => return false,
                Fault::DuplicateLate => k + 2,
                Fault::Reorder => k + 1,
            };
            let (_, clean_until) = clean.apply(FAULTY, &sequence[..revealed_at - 1]);
            let (_, clean_through) = clean.apply(FAULTY, &sequence[..revealed_at]);
            clean_until && !clean_through
        })
        .expect("a detectable update")
}

// ---------------------------------------------------------------- servers

/// Records every publication.
pub(super) struct FakeRouter(pub(super) Arc<Mutex<Vec<(String, Bytes)>>>);

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

/// A local HTTP server: `AssetPairs` from `KRAKEN.0` (500 for the first `fail_first`), `Depth`
/// and `Ticker` canned. Returns its base URL and the paths asked.
pub(super) async fn http_server(fail_first: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    actix::spawn(async move {
        let mut failures = 0;
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split(' ').nth(1).unwrap_or("").to_owned();
            log.lock().unwrap().push(path.clone());
            let (status, body) = if path.starts_with("/0/public/AssetPairs") {
                if failures < fail_first {
                    failures += 1;
                    ("500 Internal Server Error", "oops")
                } else {
                    ("200 OK", asset_pairs_body())
                }
            } else if path.starts_with("/0/public/Depth?pair=XXBTZUSD") {
                ("200 OK", REST_DEPTH)
            } else if path.starts_with("/0/public/Ticker?pair=XXBTZUSD") {
                ("200 OK", REST_TICKER)
            } else {
                (
                    "200 OK",
                    r#"{"error":["EQuery:Unknown asset pair"],"result":{}}"#,
                )
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(response.as_bytes()).await;
            let _ = tcp.shutdown().await;
        }
    });
    (url, asked)
}

/// What a replay server does.
pub(super) struct Script {
    pub(super) entries: Vec<Entry>,
    pub(super) clean: Clean,
    /// Book pairs (wsnames) that must be subscribed before the replay starts.
    pub(super) expect: BTreeSet<String>,
    /// Pairs (v1 wsnames, v2 symbols) whose subscriptions are refused.
    pub(super) refuse: BTreeSet<String>,
    /// Messages sent first, before the capture.
    pub(super) prelude: Vec<String>,
    /// After sending this entry, wait (up to 5 s) for the client to subscribe [`FAULTY`]'s
    /// book again, as if the rest of the feed came later.
    pub(super) pause_after: Option<usize>,
    /// Send every pair's messages, subscribed or not.
    pub(super) send_all: bool,
    /// The market list, for a v2 server (its requests name v2 symbols).
    pub(super) markets: Option<Arc<KrakenMarkets>>,
}

/// How a replay server speaks one version of Kraken's feed.
pub(super) struct Dialect {
    /// Sent as soon as a connection opens.
    pub(super) greeting: Option<&'static str>,
    pub(super) heartbeat: &'static str,
    /// Answers one client request: the messages to send.
    pub(super) answer: fn(&str, &Script, &Truth, &mut BTreeSet<String>, bool) -> Vec<String>,
    /// Whether a request subscribes [`FAULTY`]'s book again.
    pub(super) resubscribes_faulty: fn(&Script, &str) -> bool,
}

/// Kraken's v1 feed.
const V1: Dialect = Dialect {
    greeting: None,
    heartbeat: r#"{"event":"heartbeat"}"#,
    answer,
    resubscribes_faulty: |_, text| {
        let request: Value = serde_json::from_str(text).unwrap_or_default();
        request["event"] == "subscribe" && request["pair"] == json!([FAULTY])
    },
};

/// What a replay server saw and did.
#[derive(Default)]
pub(super) struct ServerLog {
    /// Every message the client sent.
    pub(super) received: Mutex<Vec<String>>,
    pub(super) connections: AtomicUsize,
    pub(super) sent: AtomicUsize,
    pub(super) done: AtomicBool,
}

/// A book pair's true state as the script made it so far.
pub(super) struct Truth {
    pub(super) books: HashMap<String, (KrakenBook, usize)>,
}

impl Truth {
    pub(super) fn advance(&mut self, clean: &Clean, ws_name: &str, step: usize) {
        if step == 0 {
            let mut book = KrakenBook::new(clean.symbol(ws_name), 1000);
            book.apply_snapshot(&clean.snapshots[ws_name]).unwrap();
            self.books.insert(ws_name.to_owned(), (book, 0));
            return;
        }
        let Some((book, applied)) = self.books.get_mut(ws_name) else {
            return;
        };
        while *applied < step {
            *applied += 1;
            book.apply_update(&clean.updates[ws_name][*applied - 1])
                .unwrap();
        }
    }

    /// A v1 snapshot message of the book as it is.
    fn snapshot(&self, ws_name: &str) -> Option<String> {
        let (book, _) = self.books.get(ws_name)?;
        let level =
            |l: &super::book::Level| json!([l.price.as_str(), l.qty.as_str(), "1618678200.000000"]);
        let asks: Vec<Value> = book.asks().map(level).collect();
        let bids: Vec<Value> = book.bids().map(level).collect();
        Some(json!([0, {"as": asks, "bs": bids}, "book-1000", ws_name]).to_string())
    }
}

fn status(pair: &str, status: &str, reqid: Option<u64>, error: Option<&str>) -> String {
    let mut value = json!({
        "channelID": 0, "channelName": "book-1000", "event": "subscriptionStatus", "pair": pair,
        "status": status, "subscription": {"depth": 1000, "name": "book"},
    });
    if let Some(reqid) = reqid {
        value["reqid"] = reqid.into();
    }
    if let Some(error) = error {
        value["errorMessage"] = error.into();
    }
    value.to_string()
}

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
    let reqid = request["reqid"].as_u64();
    let event = request["event"].as_str().unwrap_or("");
    if event == "ping" {
        return vec![json!({"event": "pong", "reqid": reqid}).to_string()];
    }
    if request["subscription"]["name"] != "book" {
        return Vec::new();
    }
    let pairs: Vec<String> = request["pair"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for pair in pairs {
        match event {
            "subscribe" if script.refuse.contains(&pair) => out.push(status(
                &pair,
                "error",
                reqid,
                Some("Currency pair not supported"),
            )),
            "subscribe" => {
                subscribed.insert(pair.clone());
                if replaying {
                    out.push(status(&pair, "subscribed", reqid, None));
                    out.extend(truth.snapshot(&pair));
                }
            }
            "unsubscribe" => {
                subscribed.remove(&pair);
                out.push(status(&pair, "unsubscribed", reqid, None));
            }
            _ => {}
        }
    }
    out
}

/// A WebSocket server that replays `script` on every connection once the client subscribed
/// to the expected books, then answers requests and sends heartbeats.
pub(super) async fn replay_server(
    script: Script,
    dialect: &'static Dialect,
) -> (String, Arc<ServerLog>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let log = Arc::new(ServerLog::default());
    let server_log = log.clone();
    let script = Arc::new(script);
    actix::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            server_log.connections.fetch_add(1, Ordering::SeqCst);
            actix::spawn(serve(tcp, script.clone(), dialect, server_log.clone()));
        }
    });
    (url, log)
}

async fn serve(
    tcp: tokio::net::TcpStream,
    script: Arc<Script>,
    dialect: &'static Dialect,
    log: Arc<ServerLog>,
) {
    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (requests, mut incoming) = mpsc::unbounded_channel::<String>();
    let reader_log = log.clone();
    actix::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Text(text) = message {
                reader_log.received.lock().unwrap().push(text.to_string());
                if requests.send(text.to_string()).is_err() {
                    break;
                }
            }
        }
    });
    let mut truth = Truth {
        books: HashMap::new(),
    };
    let mut subscribed = BTreeSet::new();
    macro_rules! send {
        ($text:expr) => {
            if sink.send(Message::text($text)).await.is_err() {
                return;
            }
            log.sent.fetch_add(1, Ordering::SeqCst);
        };
    }
    if let Some(greeting) = dialect.greeting {
        send!(greeting.to_owned());
    }
    while !script.expect.is_subset(&subscribed) {
        let Some(text) = incoming.recv().await else {
            return;
        };
        for reply in (dialect.answer)(&text, &script, &truth, &mut subscribed, false) {
            send!(reply);
        }
    }
    for text in &script.prelude {
        send!(text.clone());
    }
    for (index, entry) in script.entries.iter().enumerate() {
        while let Ok(text) = incoming.try_recv() {
            for reply in (dialect.answer)(&text, &script, &truth, &mut subscribed, true) {
                send!(reply);
            }
        }
        if let Some((pair, step)) = &entry.step {
            truth.advance(&script.clean, pair, *step);
            if !script.send_all && !subscribed.contains(pair) {
                continue;
            }
        }
        send!(entry.text.clone());
        if script.pause_after == Some(index) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while let Ok(Some(text)) = tokio::time::timeout_at(deadline, incoming.recv()).await {
                for reply in (dialect.answer)(&text, &script, &truth, &mut subscribed, true) {
                    send!(reply);
                }
                if (dialect.resubscribes_faulty)(&script, &text) {
                    break;
                }
            }
        }
    }
    log.done.store(true, Ordering::SeqCst);
    loop {
        tokio::select! {
            text = incoming.recv() => {
                let Some(text) = text else { return };
                for reply in (dialect.answer)(&text, &script, &truth, &mut subscribed, true) {
                    send!(reply);
                }
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                send!(dialect.heartbeat.to_owned());
            }
        }
    }
}

// ---------------------------------------------------------------- harness

pub(super) struct Harness {
    pub(super) adapter: Addr<KrakenAdapter>,
    pub(super) published: Arc<Mutex<Vec<(String, Bytes)>>>,
    pub(super) server: Arc<ServerLog>,
}

/// The v1 feed at `ws_url`: these tests replay the v1 capture.
fn settings(ws_url: String, rest_url: String) -> KrakenSettings {
    KrakenSettings {
        enabled: true,
        feed: FeedVersion::V1,
        ws_url,
        rest_url,
        book_depth: 1000,
        ..KrakenSettings::default()
    }
}

async fn start(script: Script, channels: &[String]) -> Harness {
    let (rest_url, _) = http_server(0).await;
    let (ws_url, server) = replay_server(script, &V1).await;
    let published = Arc::new(Mutex::new(Vec::new()));
    let router = FakeRouter(published.clone()).start();
    let adapter = KrakenAdapter::new(settings(ws_url, rest_url), router.recipient()).start();
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

impl Harness {
    pub(super) async fn stats(&self) -> KrakenStats {
        self.adapter.send(GetKrakenStats).await.unwrap()
    }

    pub(super) async fn call(
        &self,
        method: ExchangeMethod,
        params: Value,
    ) -> Result<Value, ExchangeError> {
        let Value::Object(params) = params else {
            panic!("params must be an object")
        };
        let call = ExchangeCall {
            method,
            params,
            credentials: None,
        };
        let bytes = self.adapter.send(call).await.unwrap()?;
        Ok(serde_json::from_slice(&bytes).unwrap())
    }

    /// The adapter's whole book of `symbol` (bids, asks), if in sync.
    async fn book(&self, symbol: &str) -> Option<(Value, Value)> {
        let book = self
            .call(
                ExchangeMethod::FetchOrderBook,
                json!({"symbol": symbol, "limit": 1000}),
            )
            .await
            .ok()?;
        Some((book["bids"].clone(), book["asks"].clone()))
    }

    /// Waits until the replay is over, the adapter has read everything it was sent, no resync
    /// is in progress and every book of `expected` is the clean final one; panics after 30 s.
    pub(super) async fn settle(&self, expected: &BTreeMap<String, KrakenBook>) -> KrakenStats {
        for _ in 0..600 {
            actix::clock::sleep(Duration::from_millis(50)).await;
            if !self.server.done.load(Ordering::SeqCst) {
                continue;
            }
            let sent = self.server.sent.load(Ordering::SeqCst) as u64;
            let stats = self.stats().await;
            if stats.messages < sent || stats.resyncs != stats.resyncs_done {
                continue;
            }
            let mut all = true;
            for (symbol, book) in expected {
                if self.book(symbol).await != Some(ccxt_levels(book)) {
                    all = false;
                    break;
                }
            }
            if all {
                return stats;
            }
        }
        panic!("the adapter did not settle: {:?}", self.stats().await);
    }

    pub(super) fn publications(&self) -> Vec<(String, Value)> {
        self.published
            .lock()
            .unwrap()
            .iter()
            .map(|(channel, data)| (channel.clone(), serde_json::from_slice(data).unwrap()))
            .collect()
    }

    pub(super) fn notifications(&self) -> Vec<Value> {
        self.publications()
            .into_iter()
            .filter(|(channel, _)| channel == NOTIFICATIONS)
            .map(|(_, data)| data)
            .collect()
    }

    pub(super) fn client_messages(&self) -> Vec<Value> {
        self.server
            .received
            .lock()
            .unwrap()
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect()
    }
}

/// A book's levels as ccxt JSON.
fn ccxt_levels(book: &KrakenBook) -> (Value, Value) {
    let ccxt = serde_json::to_value(book.to_ccxt(1000)).unwrap();
    (ccxt["bids"].clone(), ccxt["asks"].clone())
}

/// Checks every `book:kraken:` publication; returns how many there were and the last of each
/// channel.
pub(super) fn check_book_publications(
    publications: &[(String, Value)],
    depth: usize,
) -> (usize, BTreeMap<String, Value>) {
    let mut last = BTreeMap::new();
    let mut count = 0;
    for (channel, book) in publications {
        let Some(symbol) = channel.strip_prefix("book:kraken:") else {
            continue;
        };
        count += 1;
        let keys: BTreeSet<&str> = book
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ORDER_BOOK_FIELDS.iter().copied().collect(), "{book}");
        assert_eq!(book["symbol"], symbol);
        let side = |name: &str| -> Vec<(f64, f64)> {
            book[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| (l[0].as_f64().unwrap(), l[1].as_f64().unwrap()))
                .collect()
        };
        let (bids, asks) = (side("bids"), side("asks"));
        assert!(bids.len() <= depth && asks.len() <= depth);
        assert!(
            bids.windows(2).all(|w| w[0].0 > w[1].0),
            "bids descending: {book}"
        );
        assert!(
            asks.windows(2).all(|w| w[0].0 < w[1].0),
            "asks ascending: {book}"
        );
        assert!(bids.iter().chain(&asks).all(|l| l.0 > 0.0 && l.1 > 0.0));
        if let (Some(bid), Some(ask)) = (bids.first(), asks.first()) {
            assert!(bid.0 < ask.0, "crossed: {book}");
        }
        last.insert(symbol.to_owned(), book.clone());
    }
    (count, last)
}

pub(super) fn book_channels(clean: &Clean) -> Vec<String> {
    clean
        .symbols
        .values()
        .map(|symbol| format!("book:kraken:{symbol}"))
        .collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn settings_defaults_and_checks() {
    let defaults = KrakenSettings::default();
    assert!(!defaults.enabled);
    assert_eq!(defaults.feed, FeedVersion::V2);
    assert_eq!(defaults.ws_url, "wss://ws.kraken.com/v2");
    assert_eq!(defaults.rest_url, "https://api.kraken.com");
    assert_eq!((defaults.book_depth, defaults.publish_depth), (100, 20));
    assert_eq!(defaults.heartbeat_timeout, Duration::from_secs(10));
    assert_eq!(defaults.check(), Ok(()));
    let table: KrakenSettings = serde_json::from_value(
        json!({"enabled": true, "book_depth": 25, "heartbeat_timeout": "5s"}),
    )
    .unwrap();
    assert_eq!(table.book_depth, 25);
    assert_eq!(table.heartbeat_timeout, Duration::from_secs(5));
    assert!(serde_json::from_value::<KrakenSettings>(json!({"depth": 5})).is_err());
    let bad = KrakenSettings {
        book_depth: 50,
        ..KrakenSettings::default()
    };
    assert!(bad.check().unwrap_err().contains("book_depth"));
}

#[test]
fn the_feed_speaks_kraken_v1() {
    let feed = KrakenFeed::new("wss://ws.kraken.com", markets(), 100);
    let channels: BTreeSet<String> = [
        "book:kraken:BTC/USD",
        "book:kraken:ETH/USD",
        "ticker:kraken:BTC/USD",
        "trades:kraken:DOGE/USD",
        "book:kraken:NOPE/USD",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(feed.url(&channels), "wss://ws.kraken.com");
    let messages: Vec<Value> = feed
        .subscribe(&channels)
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            json!({"event":"subscribe","reqid":1,"pair":["XBT/USD","ETH/USD"],"subscription":{"name":"book","depth":100}}),
            json!({"event":"subscribe","reqid":1,"pair":["XBT/USD"],"subscription":{"name":"ticker"}}),
            json!({"event":"subscribe","reqid":1,"pair":["XDG/USD"],"subscription":{"name":"trade"}}),
        ]
    );
    let added: BTreeSet<String> = ["trades:kraken:BTC/USD".to_owned()].into();
    let removed: BTreeSet<String> = ["book:kraken:ETH/USD".to_owned()].into();
    let change: Vec<Value> = feed
        .change(&added, &removed)
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert_eq!(
        change,
        [
            json!({"event":"unsubscribe","reqid":2,"pair":["ETH/USD"],"subscription":{"name":"book","depth":100}}),
            json!({"event":"subscribe","reqid":1,"pair":["XBT/USD"],"subscription":{"name":"trade"}}),
        ]
    );
    assert_eq!(
        feed.ping(),
        Some((Duration::from_secs(10), r#"{"event":"ping"}"#.to_owned()))
    );
    assert!(parse_channel("ohlcv:kraken:BTC/USD:1m").is_err());
    assert!(parse_channel("book:binance:BTC/USDT").is_err());
}

#[actix::test]
async fn a_clean_replay_verifies_every_checksum_and_publishes_sound_books() {
    let markets = markets();
    let (clean, entries) = Clean::new(&markets);
    let expected = clean.finals();
    let channels = book_channels(&clean);
    let script = Script {
        entries,
        expect: clean.snapshots.keys().cloned().collect(),
        clean,
        refuse: BTreeSet::new(),
        prelude: Vec::new(),
        pause_after: None,
        send_all: false,
        markets: None,
    };
    let harness = start(script, &channels).await;
    let stats = harness.settle(&expected).await;
    let publications = harness.publications();
    let (count, last) = check_book_publications(&publications, 20);
    println!(
        "kraken clean replay: {} messages, {} snapshots, {} updates, {} checksums verified, {} \
         mismatches, {} resyncs, {count} book publications",
        stats.messages,
        stats.snapshots,
        stats.updates,
        stats.checksums_verified,
        stats.checksum_mismatches,
        stats.resyncs
    );
    assert_eq!(stats.checksums_verified, CAPTURED_CHECKSUMS);
    assert_eq!((stats.snapshots, stats.updates), (10, CAPTURED_CHECKSUMS));
    assert_eq!((stats.checksum_mismatches, stats.resyncs), (0, 0));
    assert!(stats.bad_messages.is_empty(), "{:?}", stats.bad_messages);
    assert_eq!(count as u64, 10 + CAPTURED_CHECKSUMS);
    assert_eq!(stats.book_publications, count as u64);
    // The last publication of each book is the top 20 of the clean final book.
    assert_eq!(last.len(), 10);
    for (symbol, book) in &expected {
        let top = serde_json::to_value(book.to_ccxt(20)).unwrap();
        assert_eq!(last[symbol]["bids"], top["bids"], "{symbol}");
        assert_eq!(last[symbol]["asks"], top["asks"], "{symbol}");
    }
    // One subscribe for all ten books, at the capture's depth.
    let subscribes: Vec<Value> = harness
        .client_messages()
        .into_iter()
        .filter(|m| m["event"] == "subscribe")
        .collect();
    assert_eq!(subscribes.len(), 1, "{subscribes:?}");
    assert_eq!(subscribes[0]["pair"].as_array().unwrap().len(), 10);
    assert_eq!(
        subscribes[0]["subscription"],
        json!({"name":"book","depth":1000})
    );
    let notices = harness.notifications();
    assert_eq!(
        notices,
        [json!({"type":"adapter","exchange":"kraken","status":"up"})]
    );
}

async fn fault_replay(fault: Fault) -> KrakenStats {
    let markets = markets();
    let (clean, entries) = Clean::new(&markets);
    let expected = clean.finals();
    let k = match fault {
        Fault::DuplicateInPlace => clean.updates[FAULTY].len() / 2,
        _ => detectable(&clean, fault),
    };
    let (script_entries, last) = with_fault(&entries, fault, k);
    let sent_updates = CAPTURED_CHECKSUMS as usize + script_entries.len() - entries.len();
    let channels = book_channels(&clean);
    let script = Script {
        entries: script_entries,
        expect: clean.snapshots.keys().cloned().collect(),
        clean,
        refuse: BTreeSet::new(),
        prelude: Vec::new(),
        pause_after: (fault != Fault::DuplicateInPlace).then_some(last),
        send_all: false,
        markets: None,
    };
    let harness = start(script, &channels).await;
    let stats = harness.settle(&expected).await;
    let publications = harness.publications();
    let (count, _) = check_book_publications(&publications, 20);
    let client = harness.client_messages();
    let resubscriptions: Vec<(String, u64)> = client
        .iter()
        .filter(|m| m["pair"] == json!([FAULTY]))
        .map(|m| {
            (
                m["event"].as_str().unwrap().to_owned(),
                m["reqid"].as_u64().unwrap(),
            )
        })
        .collect();
    println!(
        "kraken {fault:?} at {FAULTY} update {k}: {} checksums verified, {} mismatches, {} \
         resyncs ({} done), {count} book publications, client sent {resubscriptions:?}",
        stats.checksums_verified, stats.checksum_mismatches, stats.resyncs, stats.resyncs_done
    );
    let notices = harness.notifications();
    if fault == Fault::DuplicateInPlace {
        // Levels are absolute: the same update twice leaves the same book.
        assert_eq!((stats.checksum_mismatches, stats.resyncs), (0, 0));
        assert!(resubscriptions.is_empty());
        assert_eq!(stats.checksums_verified, CAPTURED_CHECKSUMS + 1);
        return stats;
    }
    assert_eq!((stats.checksum_mismatches, stats.resyncs), (1, 1));
    assert_eq!(stats.resyncs, stats.resyncs_done);
    // Every update sent was verified, but the mismatch and what came before the new snapshot
    // (the server waited for the resubscription right after the fault): the pair's later
    // updates were verified on the new snapshot.
    assert_eq!(
        stats.checksums_verified + stats.checksum_mismatches + stats.ignored,
        sent_updates as u64
    );
    assert!(stats.ignored <= 1, "{stats:?}");
    assert_eq!(stats.snapshots, 11);
    assert_eq!(
        &resubscriptions[..2],
        [("unsubscribe".to_owned(), 3), ("subscribe".to_owned(), 4)]
    );
    // Announced: resyncing BTC/CHF, then up again.
    let resyncing = notices
        .iter()
        .position(|n| n["status"] == "resyncing")
        .expect("a resyncing notice");
    assert_eq!(notices[resyncing]["symbol"], "BTC/CHF");
    assert!(notices[resyncing]["reason"]
        .as_str()
        .unwrap()
        .contains("checksum mismatch"));
    assert_eq!(
        notices.last().unwrap(),
        &json!({"type":"adapter","exchange":"kraken","status":"up"})
    );
    // The other pairs never noticed.
    let resynced: BTreeSet<&str> = notices
        .iter()
        .filter_map(|n| n["symbol"].as_str())
        .collect();
    assert_eq!(resynced, ["BTC/CHF"].into());
    stats
}

#[actix::test]
async fn a_dropped_update_is_detected_and_the_book_resynced() {
    fault_replay(Fault::Drop).await;
}

#[actix::test]
async fn a_late_duplicate_is_detected_and_the_book_resynced() {
    fault_replay(Fault::DuplicateLate).await;
}

#[actix::test]
async fn a_duplicate_in_place_is_harmless() {
    fault_replay(Fault::DuplicateInPlace).await;
}

#[actix::test]
async fn reordered_updates_are_detected_and_the_book_resynced() {
    fault_replay(Fault::Reorder).await;
}

#[actix::test]
async fn only_wanted_channels_are_published_and_calls_are_answered() {
    let markets = markets();
    let (clean, entries) = Clean::new(&markets);
    let expected: BTreeMap<String, KrakenBook> = clean
        .finals()
        .into_iter()
        .filter(|(symbol, _)| symbol == "BTC/CHF" || symbol == "XMR/USD")
        .collect();
    let channels: Vec<String> = [
        "book:kraken:BTC/CHF",
        "book:kraken:XMR/USD",
        "ticker:kraken:BTC/CHF",
        "trades:kraken:BTC/CHF",
        "book:kraken:NOPE/USD",
        "ohlcv:kraken:BTC/USD:1m",
        "book:kraken:ETH/USD",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let script = Script {
        entries,
        expect: ["XBT/CHF".to_owned(), "XMR/USD".to_owned()].into(),
        clean,
        refuse: ["ETH/USD".to_owned()].into(),
        prelude: [
            "not json at all",
            r#"{"event":"mystery"}"#,
            r#"[1,{"x":1},"spread","XBT/CHF"]"#,
            TICKER_MESSAGE,
            TRADES_MESSAGE,
            UNWANTED_TRADE,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect(),
        pause_after: None,
        // Everything, as if the subscriptions named every pair: the adapter picks.
        send_all: true,
        markets: None,
    };
    let harness = start(script, &channels).await;
    let stats = harness.settle(&expected).await;
    let publications = harness.publications();
    let (count, last) = check_book_publications(&publications, 20);
    let by_channel: BTreeMap<&str, usize> =
        publications.iter().fold(BTreeMap::new(), |mut m, (c, _)| {
            *m.entry(c.as_str()).or_default() += 1;
            m
        });
    println!("kraken subset: {by_channel:?}, stats {stats:?}");
    let published: BTreeSet<&str> = by_channel.keys().copied().collect();
    assert_eq!(
        published,
        [
            "book:kraken:BTC/CHF",
            "book:kraken:XMR/USD",
            "ticker:kraken:BTC/CHF",
            "trades:kraken:BTC/CHF",
            NOTIFICATIONS
        ]
        .into()
    );
    assert_eq!(last.len(), 2);
    assert_eq!(
        count,
        2 + clean_updates(&["XBT/CHF", "XMR/USD"]),
        "a publication per snapshot and update"
    );
    assert_eq!(by_channel["trades:kraken:BTC/CHF"], 2);
    assert_eq!(stats.trade_publications, 2);
    assert_eq!(stats.ticker_publications, 1);
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
    // The other eight books (snapshot and updates) and the unwanted trade: read, not published.
    let others: Vec<&str> = [
        "WAVES/EUR",
        "KSM/XBT",
        "GRT/ETH",
        "SC/EUR",
        "ETH/CHF",
        "OCEAN/XBT",
        "OMG/USD",
        "ADA/XBT",
    ]
    .into();
    assert_eq!(
        stats.ignored as usize,
        others.len() + clean_updates(&others) + 1
    );
    for (channel, data) in &publications {
        if channel.starts_with("ticker:") {
            let keys: BTreeSet<&str> = data
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, TICKER_FIELDS.iter().copied().collect());
            assert_eq!(
                (data["symbol"].as_str(), data["last"].as_f64()),
                (Some("BTC/CHF"), Some(5525.1))
            );
        }
        if channel.starts_with("trades:") {
            let keys: BTreeSet<&str> = data
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, TRADE_FIELDS.iter().copied().collect());
            assert_eq!(data["symbol"], "BTC/CHF");
        }
    }
    // The unknown symbol, the unknown kind and the refused pair: announced once each.
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
    println!("kraken channel errors: {errors:?}");
    let named: BTreeSet<&str> = errors.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(errors.len(), 3);
    assert_eq!(
        named,
        [
            "book:kraken:NOPE/USD",
            "ohlcv:kraken:BTC/USD:1m",
            "book:kraken:ETH/USD"
        ]
        .into()
    );
    assert!(errors
        .iter()
        .any(|(_, r)| r.contains("Currency pair not supported")));
    // Subscribed once per kind; the refused pair was asked once, not in a loop.
    let client = harness.client_messages();
    let asked_eth = client
        .iter()
        .filter(|m| m["event"] == "subscribe")
        .filter(|m| m["pair"].as_array().unwrap().contains(&json!("ETH/USD")))
        .count();
    assert_eq!(asked_eth, 1);

    // exchange.* calls.
    let markets_json = harness
        .call(ExchangeMethod::LoadMarkets, json!({}))
        .await
        .unwrap();
    assert_eq!(markets_json.as_object().unwrap().len(), 293);
    assert_eq!(markets_json["BTC/USD"]["id"], "XXBTZUSD");
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
    let rest = harness
        .call(ExchangeMethod::FetchOrderBook, json!({"symbol": "BTC/USD"}))
        .await
        .unwrap();
    assert_eq!(rest["bids"], json!([[30297.0, 1.115], [30296.7, 0.002]]));
    assert_eq!(rest["asks"], json!([[30384.1, 2.059], [30387.9, 1.5]]));
    assert_eq!(rest["symbol"], "BTC/USD");
    let ticker = harness
        .call(ExchangeMethod::FetchTicker, json!({"symbol": "BTC/CHF"}))
        .await
        .unwrap();
    assert_eq!(ticker["bid"], 5525.1);
    let rest_ticker = harness
        .call(ExchangeMethod::FetchTicker, json!({"symbol": "BTC/USD"}))
        .await
        .unwrap();
    assert_eq!(
        (rest_ticker["last"].as_f64(), rest_ticker["open"].as_f64()),
        (Some(30303.2), Some(30502.8))
    );
    assert_eq!(rest_ticker["baseVolume"].as_f64(), Some(4412.73601799));
    let unknown = harness
        .call(
            ExchangeMethod::FetchOrderBook,
            json!({"symbol": "NOPE/USD"}),
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::BadSymbol);
    let refused = harness
        .call(ExchangeMethod::FetchTicker, json!({"symbol": "ETH/USD"}))
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::BadSymbol, "{refused}");
    for method in [
        ExchangeMethod::Login,
        ExchangeMethod::CreateOrder,
        ExchangeMethod::FetchTrades,
    ] {
        let error = harness.call(method, json!({})).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotSupported, "{error}");
    }
    let error = harness
        .call(
            ExchangeMethod::FetchOrderBook,
            json!({"symbol": "BTC/CHF", "limit": 0}),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadRequest);

    // Demand for XMR/USD's book ends: unsubscribed, no more of it.
    harness.adapter.do_send(Demand::Stop {
        channel: "book:kraken:XMR/USD".into(),
    });
    for _ in 0..100 {
        actix::clock::sleep(Duration::from_millis(20)).await;
        if harness
            .client_messages()
            .iter()
            .any(|m| m["event"] == "unsubscribe" && m["pair"] == json!(["XMR/USD"]))
        {
            break;
        }
    }
    let unsubscribe = harness
        .client_messages()
        .into_iter()
        .find(|m| m["event"] == "unsubscribe")
        .expect("an unsubscribe");
    assert_eq!(
        unsubscribe,
        json!({"event":"unsubscribe","reqid":2,"pair":["XMR/USD"],"subscription":{"name":"book","depth":1000}})
    );
}

/// Updates of these pairs in the capture.
fn clean_updates(pairs: &[&str]) -> usize {
    let markets = markets();
    let (clean, _) = Clean::new(&markets);
    pairs.iter().map(|p| clean.updates[*p].len()).sum()
}

/// A server whose first connection stays silent after the subscription, and whose later ones
/// send `XBT/CHF`'s snapshot and heartbeats.
async fn stalling_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let snapshot = received()
        .into_iter()
        .find(|m| m.contains(r#""as":"#) && m.contains(r#""XBT/CHF""#))
        .unwrap();
    actix::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            actix::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let _subscription = ws.next().await;
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
                            if ws.send(Message::text(r#"{"event":"heartbeat"}"#)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (url, connections)
}

#[actix::test]
async fn a_failed_market_list_and_a_stalled_connection_are_announced_and_recovered() {
    let (rest_url, asked) = http_server(1).await;
    let (ws_url, connections) = stalling_server().await;
    let published = Arc::new(Mutex::new(Vec::new()));
    let router = FakeRouter(published.clone()).start();
    let settings = KrakenSettings {
        heartbeat_timeout: Duration::from_millis(300),
        ..settings(ws_url, rest_url)
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
        if notices().len() >= 4 {
            break;
        }
    }
    let seen = notices();
    println!(
        "kraken stall: {} connections, AssetPairs asked {} times, notices {seen:?}",
        connections.load(Ordering::SeqCst),
        asked.lock().unwrap().len()
    );
    assert_eq!(seen.len(), 4, "{seen:?}");
    let statuses: Vec<&str> = seen.iter().map(|n| n["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["down", "up", "down", "up"]);
    assert!(seen[0]["reason"]
        .as_str()
        .unwrap()
        .contains("HTTP status 500"));
    assert!(seen[2]["reason"]
        .as_str()
        .unwrap()
        .contains("no message for 300ms"));
    assert!(connections.load(Ordering::SeqCst) >= 2);
    let stats = adapter.send(GetKrakenStats).await.unwrap();
    assert_eq!((stats.connects, stats.disconnects), (2, 1));
    assert_eq!(stats.snapshots, 1);
    let books = published
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| c == "book:kraken:BTC/CHF")
        .count();
    assert_eq!(books, 1);
}
