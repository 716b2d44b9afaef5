//! Recording and replaying an exchange through the real binary: `[replay]` plays a cryptofeed
//! capture, or a recording made by `rpc-crypto record`, through the real Binance adapter, and a
//! client subscribed to `book:binance:NKN/USDT` gets valid ccxt books and trades; bad
//! recordings stop the start with the line at fault.

mod common;

use std::path::PathBuf;
use std::process::Command as Process;
use std::sync::Arc;

use common::*;
use rpc_crypto_actors::adapters::capture::{self, Record};
use rpc_crypto_actors::adapters::replay::{Recording, ReplayServer, ReplaySettings};
use rpc_crypto_proto::ccxt::fields;
use rpc_crypto_proto::codec::Format;

const BOOK: &str = "book:binance:NKN/USDT";
const TRADES: &str = "trades:binance:NKN/USDT";
/// The last NKNUSDT depth update of `BINANCE.ws.1.0`: the book's final nonce.
const LAST_NKN_UPDATE: u64 = 499_870_179;

fn fixture(name: &str) -> String {
    format!("{}/fixtures/exchanges/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A path in the temp dir no other test uses; removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        TempPath(std::env::temp_dir().join(format!(
            "rpc-crypto-replay-{}-{nanos}-{name}",
            std::process::id()
        )))
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The binary with no `RPC_CRYPTO_` variables from the environment the tests run in.
fn rpc_crypto() -> Process {
    let mut command = Process::new(env!("CARGO_BIN_EXE_rpc-crypto"));
    for (name, _) in std::env::vars() {
        if name.starts_with("RPC_CRYPTO_") {
            command.env_remove(name);
        }
    }
    command
}

fn sorted(keys: impl Iterator<Item = String>) -> Vec<String> {
    let mut keys: Vec<String> = keys.collect();
    keys.sort_unstable();
    keys
}

fn fields_of(value: &serde_json::Value) -> Vec<String> {
    sorted(value.as_object().unwrap().keys().cloned())
}

fn expected_fields(list: &[&str]) -> Vec<String> {
    sorted(list.iter().map(|f| (*f).to_owned()))
}

/// Subscribes to NKN/USDT's book and trades and checks what comes until the book reaches the
/// capture's last update: every book a valid, uncrossed ccxt OrderBook with a rising nonce, the
/// trades ccxt Trades. Returns the books and trades seen.
async fn books_and_trades(server: &Server) -> (usize, usize) {
    let (mut client, _) = Client::connect(server, Format::Json).await;
    let list = client.call(rpc(2, "exchange.list", "{}")).await;
    let list = rpc_data(&list);
    assert!(
        list.as_array().unwrap().contains(&"binance".into()),
        "{list}"
    );
    // Both at once, so that the adapter asks for both streams on its one connection.
    client
        .send(&[subscribe(3, BOOK), subscribe(4, TRADES)])
        .await;
    let (mut books, mut trades, mut nonce) = (0, 0, 0u64);
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    while nonce < LAST_NKN_UPDATE || trades < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{books} books (nonce {nonce}), {trades} trades"
        );
        let Some(item) = client.try_next_item(WAIT).await else {
            panic!("nothing more after {books} books (nonce {nonce}) and {trades} trades");
        };
        if item.push.is_none() {
            assert!(item.error.is_none(), "{item:?}");
            continue;
        }
        let (channel, value) = publication(&item);
        if channel == TRADES {
            assert_eq!(fields_of(&value), expected_fields(fields::TRADE_FIELDS));
            assert_eq!(value["symbol"], "NKN/USDT");
            assert!(value["price"].as_f64().unwrap() > 0.0, "{value}");
            trades += 1;
            continue;
        }
        assert_eq!(channel, BOOK);
        assert_eq!(
            fields_of(&value),
            expected_fields(fields::ORDER_BOOK_FIELDS)
        );
        assert_eq!(value["symbol"], "NKN/USDT");
        let side = |name: &str| -> Vec<f64> {
            value[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|level| level[0].as_f64().unwrap())
                .collect()
        };
        let (bids, asks) = (side("bids"), side("asks"));
        assert!(!bids.is_empty() && !asks.is_empty(), "{value}");
        assert!(
            bids.windows(2).all(|w| w[0] > w[1]),
            "bids descend: {value}"
        );
        assert!(asks.windows(2).all(|w| w[0] < w[1]), "asks ascend: {value}");
        assert!(bids[0] < asks[0], "never crossed: {value}");
        let next = value["nonce"].as_u64().unwrap();
        assert!(next > nonce, "nonce {next} after {nonce}");
        nonce = next;
        books += 1;
    }
    assert_eq!(nonce, LAST_NKN_UPDATE);
    (books, trades)
}

#[tokio::test]
async fn a_cryptofeed_capture_replays_through_the_real_adapter() {
    let http_files = format!(
        "[\"{}\", \"{}\"]",
        fixture("BINANCE.0"),
        fixture("BINANCE.http.0.0")
    );
    let server = Server::start_default(&[
        ("RPC_CRYPTO_REPLAY__ENABLED", "true"),
        ("RPC_CRYPTO_REPLAY__EXCHANGE", "binance"),
        ("RPC_CRYPTO_REPLAY__FILE", &fixture("BINANCE.ws.1.0")),
        ("RPC_CRYPTO_REPLAY__HTTP_FILES", &http_files),
        ("RPC_CRYPTO_REPLAY__SPEED", "0"),
    ]);
    let (books, trades) = books_and_trades(&server).await;
    // As fast as it goes, the updates may all be buffered before the snapshot comes: then the
    // first book published is the last.
    assert!(books >= 1);
    // The capture's one NKNUSDT trade.
    assert_eq!(trades, 1);
    server.assert_no_panic();
}

#[tokio::test]
async fn record_writes_what_the_adapter_receives_and_the_recording_replays() {
    // The stand-in Binance to record from: the capture, replayed.
    let capture = Recording::load(&ReplaySettings {
        exchange: "binance".into(),
        file: fixture("BINANCE.ws.1.0"),
        http_files: vec![fixture("BINANCE.0"), fixture("BINANCE.http.0.0")],
        ..ReplaySettings::default()
    })
    .unwrap();
    let captured = capture.messages().count();
    // 20 times faster: the capture's 30 s in 1.5 s.
    let binance = ReplayServer::start(Arc::new(capture), 20.0, false).unwrap();
    let out = TempPath::new("binance.rec");
    let mut record = rpc_crypto();
    record
        .args(["record", "--exchange", "binance", "--channel", BOOK])
        .args(["--channel", TRADES, "--duration", "4s", "--out", out.path()])
        .env("RPC_CRYPTO_EXCHANGES__BINANCE__WS_URL", binance.ws_url())
        .env(
            "RPC_CRYPTO_EXCHANGES__BINANCE__REST_URL",
            binance.http_url(),
        )
        .env("RUST_LOG", "warn");
    let output = tokio::task::spawn_blocking(move || record.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    binance.stop();

    // What it wrote: our header, the market list and snapshot GETs, the connection naming the
    // streams asked for, every message sent to it, our footer.
    let text = std::fs::read_to_string(&out.0).unwrap();
    let header = capture::header(&text).unwrap().expect("a header");
    assert_eq!(header.exchange, "binance");
    let footer = capture::footer(&text).expect("a footer");
    assert_eq!(footer.dropped, 0);
    let records: Vec<Record> = capture::records(&text).map(Result::unwrap).collect();
    assert_eq!(records.len() as u64, footer.records);
    let gets: Vec<&str> = records
        .iter()
        .filter_map(|r| match r {
            Record::Http { url, .. } => url.split_once("/api/").map(|(_, path)| path),
            _ => None,
        })
        .collect();
    assert_eq!(
        gets,
        ["v3/exchangeInfo", "v3/depth?symbol=NKNUSDT&limit=1000"]
    );
    let connected: Vec<&str> = records
        .iter()
        .filter_map(|r| match r {
            Record::Connected { url, .. } => Some(*url),
            _ => None,
        })
        .collect();
    assert_eq!(connected.len(), 1, "{connected:?}");
    assert!(
        connected[0].contains("nknusdt@aggTrade") && connected[0].contains("nknusdt@depth@100ms"),
        "{connected:?}"
    );
    let received = records
        .iter()
        .filter(|r| matches!(r, Record::Received { .. }))
        .count();
    assert_eq!(received, captured);
    assert!(
        stdout.contains(&format!("{} records", footer.records)),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{BOOK}: ")), "{stdout}");

    // The recording alone (its exchange from its header, its GETs inside) replays, in real time
    // (1.5 s): the book is published update after update.
    let server = Server::start_default(&[
        ("RPC_CRYPTO_REPLAY__ENABLED", "true"),
        ("RPC_CRYPTO_REPLAY__FILE", out.path()),
    ]);
    let started = std::time::Instant::now();
    let (books, trades) = books_and_trades(&server).await;
    assert!(books >= 50, "{books} books");
    assert_eq!(trades, 1);
    assert!(
        started.elapsed() > std::time::Duration::from_millis(1000),
        "paced: {:?}",
        started.elapsed()
    );
    server.assert_no_panic();
}

/// Runs `serve` with `[replay]` env on top and returns its stderr, expecting it to refuse.
fn refused(env: &[(&str, &str)]) -> String {
    let mut serve = rpc_crypto();
    serve
        .arg("serve")
        .env("RPC_CRYPTO_LISTEN", "127.0.0.1:0")
        .env("RPC_CRYPTO_REPLAY__ENABLED", "true");
    for (key, value) in env {
        serve.env(key, value);
    }
    let output = serve.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "started: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

#[test]
fn bad_recordings_and_settings_stop_the_start() {
    let bad = TempPath::new("bad.rec");
    std::fs::write(
        &bad.0,
        "wss://stream.binance.com:9443/stream <-> 1.0\n1.5: {}\nnot a record\n2.0: {}\n",
    )
    .unwrap();
    let file = ("RPC_CRYPTO_REPLAY__FILE", bad.path());
    let binance = ("RPC_CRYPTO_REPLAY__EXCHANGE", "binance");
    let error = refused(&[file, binance]);
    assert!(
        error.contains(&format!(
            "replay: {} line 3: not a capture record",
            bad.path()
        )),
        "{error}"
    );
    // `checkconfig` says the same.
    let output = rpc_crypto()
        .arg("checkconfig")
        .env("RPC_CRYPTO_REPLAY__ENABLED", "true")
        .env(file.0, file.1)
        .env(binance.0, binance.1)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 3"));

    let error = refused(&[("RPC_CRYPTO_REPLAY__FILE", "/nonexistent/x.rec"), binance]);
    assert!(error.contains("cannot read /nonexistent/x.rec"), "{error}");
    let error = refused(&[file, binance, ("RPC_CRYPTO_REPLAY__SPEED", "-2")]);
    assert!(error.contains("replay: speed -2"), "{error}");
    let error = refused(&[binance]);
    assert!(error.contains("replay: enabled needs a file"), "{error}");
    // A cryptofeed capture names no exchange.
    let error = refused(&[("RPC_CRYPTO_REPLAY__FILE", &fixture("BINANCE.ws.1.0"))]);
    assert!(error.contains("set replay.exchange"), "{error}");
}

#[test]
fn a_recording_cut_short_is_replayed_and_reported() {
    let cut = TempPath::new("cut.rec");
    // A recorder killed mid-line: no end line, and half a message.
    std::fs::write(
        &cut.0,
        "# rpc-crypto recording v1 exchange=binance started=1.0\n\
         wss://stream.binance.com:9443/stream <-> 1.0\n\
         1.5: {\"stream\":\"nknusdt@aggTrade\",\"da",
    )
    .unwrap();
    let server = Server::start_default(&[
        ("RPC_CRYPTO_REPLAY__ENABLED", "true"),
        ("RPC_CRYPTO_REPLAY__FILE", cut.path()),
    ]);
    let log = server.log();
    assert!(
        log.contains(&format!(
            "{} line 3 has no newline: the file was cut short",
            cut.path()
        )),
        "{log}"
    );
    assert!(log.contains("no end line"), "{log}");
}

#[test]
fn record_refuses_channels_of_another_exchange() {
    let out = TempPath::new("never.rec");
    let output = rpc_crypto()
        .args([
            "record",
            "--exchange",
            "binance",
            "--channel",
            "book:kraken:BTC/USD",
        ])
        .args(["--duration", "1s", "--out", out.path()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a channel of binance"), "{stderr}");
    assert!(!out.0.exists(), "nothing written");
}

#[tokio::test]
async fn coinbase_and_kraken_captures_replay_too() {
    for (exchange, file, http, channel, extra) in [
        (
            "coinbase",
            "COINBASE.ws.28.0",
            "COINBASE.0",
            "book:coinbase:SKL/USD",
            None,
        ),
        // A capture of Kraken's v1 feed; the default ws_url (v2's, on Kraken's host) does not
        // stand in the way: the replay's replaces it.
        (
            "kraken",
            "KRAKEN.ws.50.0",
            "KRAKEN.0",
            "book:kraken:BTC/CHF",
            Some(("RPC_CRYPTO_EXCHANGES__KRAKEN__FEED", "v1")),
        ),
    ] {
        let (file, http_files) = (fixture(file), format!("[\"{}\"]", fixture(http)));
        let mut env = vec![
            ("RPC_CRYPTO_REPLAY__ENABLED", "true"),
            ("RPC_CRYPTO_REPLAY__EXCHANGE", exchange),
            ("RPC_CRYPTO_REPLAY__FILE", file.as_str()),
            ("RPC_CRYPTO_REPLAY__HTTP_FILES", http_files.as_str()),
            ("RPC_CRYPTO_REPLAY__SPEED", "10"),
        ];
        env.extend(extra);
        let server = Server::start_default(&env);
        let (mut client, _) = Client::connect(&server, Format::Json).await;
        let reply = client.call(subscribe(2, channel)).await;
        assert!(reply.error.is_none(), "{reply:?}");
        let mut books = 0;
        while books < 20 {
            let item = client.next_item().await;
            let (published, book) = publication(&item);
            assert_eq!(published, channel);
            assert_eq!(fields_of(&book), expected_fields(fields::ORDER_BOOK_FIELDS));
            let best = |side: &str| book[side][0][0].as_f64().unwrap();
            assert!(best("bids") < best("asks"), "{exchange}: crossed: {book}");
            books += 1;
        }
        server.assert_no_panic();
    }
}
