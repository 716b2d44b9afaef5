//! Normalization throughput of the exchange adapters: book updates per second on one core, per
//! exchange, over the real captures in `fixtures/exchanges/`.
//!
//! ```sh
//! taskset -c 1 cargo run --release -p rpc-crypto-actors --example normalize [-- SECONDS]
//! ```
//!
//! Each capture is read into memory and sorted into work first (not timed). Then, on the current
//! thread only, the book messages are replayed pass after pass, each pass on books reset to their
//! snapshots (the reset is not timed), for at least `SECONDS` (default 2) of timed work per
//! exchange, in 4 rounds: the workloads take turns, so that whatever else the machine does falls
//! on all of them. Time is this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so a core shared
//! with another task does not count the other task's turns; the wall-clock share is printed
//! (`on-CPU`) and a run below 97 % is flagged.
//!
//! The three adapters' per-message paths are methods of their actors (they need a `Context` and
//! a Router `Recipient`), so what is timed is the chain of the pure functions those methods call,
//! in the same order, with the same arguments:
//!
//! - **binance** (`BinanceAdapter::on_message` → `on_depth` → `publish_book`):
//!   `binance::parse_message` (combined-stream envelope, then `DepthUpdate::parse`) → the book's
//!   `HashMap` lookup by symbol → `DepthSync::on_update` (Binance's sequence rules: the bridge
//!   event, `U` = previous `u` + 1, duplicates, gaps) → `DepthSync::order_book(20)` → the
//!   "publications only move forward" nonce check → the channel name (`book.channel.clone()`)
//!   → `serde_json::to_vec(&order_book)` into `Bytes` (`send_json`).
//! - **coinbase** (`CoinbaseAdapter::on_message` → `on_update` → `publish_book`):
//!   `coinbase::parse_message` → `Level2Books::update` (product lookup, every change validated,
//!   applied, then the crossed-book check: level2 has no sequence and no checksum) →
//!   `Level2Book::order_book(20)` → `serde_json::to_vec` into `Bytes` → `format!` of the channel.
//! - **kraken** (`KrakenAdapter::on_message` → `on_book` → `send_json`):
//!   `kraken::parse_message` (v1) → the book's `HashMap` lookup by symbol →
//!   `KrakenBook::apply_update` (levels set, truncated to the subscribed depth 1000, then the CRC32
//!   checksum of the top 10 per side compared with Kraken's) → `KrakenBook::to_ccxt(20)` →
//!   `serde_json::to_vec` into `Bytes` → `format!` of the channel.
//!
//! 20 is the default `publish_depth` of all three adapters. Not timed: the WebSocket read and
//! frame decoding, the actor mailbox hop into the adapter, the adapter's counters and logs, its
//! `wanted`/`resyncing` set lookups, the `do_send` of the `Publish` to the Router and everything
//! the Router does after. The payload is dropped right away here (timed), where the Router would
//! drop it later. Snapshots are applied in the untimed reset: each pass starts from the books as
//! they stand right after their snapshot (Binance: the REST snapshot of `BINANCE.http.0.0`
//! applied; the capture's events from before it then arrive first and are dropped or bridge it,
//! as the buffered ones would; Coinbase and Kraken: the capture's own snapshot messages).
//!
//! Besides the full path, each book workload is also run stopped after each step (parse; +
//! apply; + build the OrderBook; + encode and publish), to show where the time goes. Trades,
//! tickers and candles (no book, no state) are timed the same way, on their own rows; the Kraken
//! capture holds no trades or tickers.
//!
//! The timed loops cannot be optimized away (inputs and outputs go through
//! `std::hint::black_box`), and they do run the checks: the program asserts at the end that the
//! timed passes applied every update with zero gaps, zero checksum mismatches and zero crossed
//! books, as a replay of real data must.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::ops::AddAssign;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rpc_crypto_actors::adapters::capture::{self, Record};
use rpc_crypto_actors::adapters::{binance, coinbase, kraken};

/// The default `publish_depth` of the Binance, Coinbase and Kraken adapters.
const PUBLISH_DEPTH: usize = 20;
/// Kraken's largest book depth, which bounds a book whatever its channel says (`on_book`).
const KRAKEN_MAX_DEPTH: usize = 1000;
/// Untimed passes before the first timed ones of each workload (caches, allocator, branch
/// predictors).
const WARM_UP: Duration = Duration::from_millis(200);
/// Every workload is measured in this many rounds, the workloads taking turns, so that whatever
/// else the machine does spreads over all of them rather than spoiling one.
const ROUNDS: u32 = 4;
/// Trade, ticker and candle messages per pass (the captures' few, repeated), so that a pass is
/// long beside the clock reads around it.
const OTHER_PER_PASS: usize = 1000;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/{name}",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/exchanges")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every record of a capture; a line that is no record is a broken fixture.
fn records(text: &str) -> impl Iterator<Item = Record<'_>> {
    capture::records(text).map(|r| r.expect("a capture record"))
}

/// The first HTTP body of a capture (the market lists).
fn first_http_body(text: &str) -> &str {
    text.lines()
        .find_map(|line| match capture::parse_line(line) {
            Ok(Record::Http { body, .. }) => Some(body),
            _ => None,
        })
        .expect("an HTTP record")
}

/// Every message received, in capture order.
fn received(text: &str) -> Vec<&str> {
    records(text)
        .filter_map(|record| match record {
            Record::Received { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

/// How far down the per-message path a run goes; each stage includes those before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// The raw text into the adapter's message types.
    Parse,
    /// + applied to the book, with the sync checks.
    Apply,
    /// + the ccxt OrderBook of the top `PUBLISH_DEPTH` levels.
    Build,
    /// + encoded to the JSON bytes of the publication, with its channel: the full path.
    Publish,
}

const STAGES: [Stage; 4] = [Stage::Parse, Stage::Apply, Stage::Build, Stage::Publish];

/// What the timed passes did.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Messages timed.
    messages: u64,
    /// Price levels they changed (applied levels; for trades etc. the structures made).
    levels: u64,
    /// Book updates that passed their sync check (Binance: the sequence rule, Coinbase: not
    /// crossed, Kraken: checksum verified).
    checked: u64,
    /// Messages that changed nothing by the rules (Binance: older than the snapshot).
    dropped: u64,
    /// Publications made (OrderBooks built at `Stage::Build`).
    published: u64,
    /// Payload bytes published.
    bytes: u64,
    /// Anything wrong: a message that did not parse, a gap, a checksum mismatch, a crossed book,
    /// a book that was not in sync.
    failures: u64,
}

impl AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.messages += other.messages;
        self.levels += other.levels;
        self.checked += other.checked;
        self.dropped += other.dropped;
        self.published += other.published;
        self.bytes += other.bytes;
        self.failures += other.failures;
    }
}

/// The timed passes of one run.
#[derive(Debug, Default, Clone, Copy)]
struct Measured {
    passes: u64,
    /// This thread's CPU time in the timed passes: the figures' base ("on one core").
    cpu: Duration,
    /// Wall-clock time of the same passes. More than `cpu` when something else ran on the core
    /// meanwhile (the wall-clock rates are then too low, and the CPU-time ones somewhat too,
    /// from the caches the other task used).
    wall: Duration,
    tally: Tally,
    /// Times the thread was preempted during the run.
    preempted: u64,
}

impl AddAssign for Measured {
    fn add_assign(&mut self, other: Self) {
        self.passes += other.passes;
        self.cpu += other.cpu;
        self.wall += other.wall;
        self.tally += other.tally;
        self.preempted += other.preempted;
    }
}

impl Measured {
    fn per_pass(&self, n: u64) -> f64 {
        n as f64 / self.passes as f64
    }

    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.cpu.as_secs_f64()
    }

    fn per_wall_second(&self, n: u64) -> f64 {
        n as f64 / self.wall.as_secs_f64()
    }

    fn ns_per(&self, n: u64) -> f64 {
        self.cpu.as_nanos() as f64 / n as f64
    }

    /// The share of the wall-clock time the thread had the core.
    fn on_cpu(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }
}

/// This thread's CPU time, `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`: nanoseconds of time on a
/// CPU, whatever else the core ran meanwhile.
#[cfg(target_os = "linux")]
fn thread_cpu_time() -> Duration {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, now: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the C library's `clock_gettime` (std links it), given a valid clock id and a
    // pointer to a `struct timespec` (two 64-bit fields on 64-bit Linux) that lives across the
    // call; it writes nothing else.
    let status = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Elsewhere: wall-clock time since the first call (the figures then assume an idle core).
#[cfg(not(target_os = "linux"))]
fn thread_cpu_time() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// This thread's involuntary context switches so far (`/proc/thread-self/status`), 0 where
/// there is no `/proc`.
fn preemptions() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Passes of `pass` over fresh states from `reset`, until `min` of timed CPU time (or ten times
/// that of wall-clock time, on a very busy core). Only `pass` is timed: the reset and the drop
/// of the state after the pass are not.
fn measure<S>(
    min: Duration,
    warm_up: bool,
    reset: impl Fn() -> S,
    mut pass: impl FnMut(&mut S) -> Tally,
) -> Measured {
    let warm = Instant::now();
    while warm_up && warm.elapsed() < WARM_UP {
        let mut state = reset();
        black_box(pass(&mut state));
    }
    let mut measured = Measured::default();
    let preempted = preemptions();
    while measured.cpu < min && measured.wall < min * 10 {
        let mut state = reset();
        let (cpu, wall) = (thread_cpu_time(), Instant::now());
        let tally = pass(&mut state);
        measured.wall += wall.elapsed();
        measured.cpu += thread_cpu_time() - cpu;
        black_box(&state);
        drop(state);
        measured.passes += 1;
        measured.tally += tally;
    }
    measured.preempted = preemptions() - preempted;
    measured
}

/// The publication the adapter hands the Router (`Publish { channel, data }`).
fn publish(tally: &mut Tally, channel: String, data: Vec<u8>) {
    let data = Bytes::from(data);
    tally.published += 1;
    tally.bytes += data.len() as u64;
    black_box((channel, data));
}

// ------------------------------------------------------------------------------------ binance

/// One wanted book of the Binance adapter (its `Book`: the sync, the channel, the nonce last
/// published).
#[derive(Clone)]
struct BinanceBook {
    sync: binance::DepthSync,
    channel: String,
    published: Option<u64>,
}

struct Binance {
    markets: binance::Markets,
    /// By ccxt symbol: the book with its REST snapshot applied, nothing published yet.
    books: HashMap<String, BinanceBook>,
    /// Every `@depth@100ms` message of the capture, in order.
    depth: Vec<String>,
    /// `@aggTrade` messages.
    trades: Vec<String>,
    /// `@kline_1m` messages.
    klines: Vec<String>,
}

impl Binance {
    fn load() -> Self {
        let markets = binance::Markets::from_exchange_info(first_http_body(&fixture("BINANCE.0")))
            .expect("BINANCE.0 parses");
        let mut books = HashMap::new();
        let http = fixture("BINANCE.http.0.0");
        for record in records(&http) {
            let Record::Http { url, body, .. } = record else {
                continue;
            };
            let id = url
                .split("symbol=")
                .nth(1)
                .and_then(|rest| rest.split('&').next())
                .expect("a symbol in the snapshot's URL");
            let symbol = markets.symbol_of(id).expect("a known market").to_owned();
            let mut sync = binance::DepthSync::new(symbol.as_str());
            sync.apply_snapshot(binance::DepthSnapshot::parse(body).expect("a snapshot"))
                .expect("a snapshot applies to an empty book");
            let book = BinanceBook {
                sync,
                channel: format!("book:binance:{symbol}"),
                published: None,
            };
            assert!(
                books.insert(symbol, book).is_none(),
                "one snapshot per symbol"
            );
        }
        let ws = fixture("BINANCE.ws.1.0");
        let (mut depth, mut trades, mut klines) = (Vec::new(), Vec::new(), Vec::new());
        for text in received(&ws) {
            match binance::parse_message(text, &markets).map(|m| m.event) {
                Ok(binance::StreamEvent::Depth(_)) => depth.push(text.to_owned()),
                Ok(binance::StreamEvent::Trade(_)) => trades.push(text.to_owned()),
                Ok(binance::StreamEvent::Kline(_)) => klines.push(text.to_owned()),
                // `bookTicker`: parsed, then discarded by the adapter (it publishes 24-hour
                // tickers); subscription replies.
                _ => {}
            }
        }
        Self {
            markets,
            books,
            depth,
            trades,
            klines,
        }
    }

    fn book_pass(&self, books: &mut HashMap<String, BinanceBook>, stage: Stage) -> Tally {
        let mut tally = Tally::default();
        for text in &self.depth {
            let text = black_box(text.as_str());
            let message = match binance::parse_message(text, &self.markets) {
                Ok(message) => message,
                Err(_) => {
                    tally.failures += 1;
                    continue;
                }
            };
            tally.messages += 1;
            if stage == Stage::Parse {
                black_box(message);
                continue;
            }
            let binance::StreamEvent::Depth(update) = message.event else {
                tally.failures += 1;
                continue;
            };
            let Some(book) = books.get_mut(&message.symbol) else {
                tally.failures += 1;
                continue;
            };
            let levels = (update.bids.len() + update.asks.len()) as u64;
            match book.sync.on_update(update) {
                Ok(binance::Applied::Applied) => {
                    tally.checked += 1;
                    tally.levels += levels;
                }
                // Older than the snapshot: dropped by the procedure, nothing to publish.
                Ok(binance::Applied::Dropped) => {
                    tally.dropped += 1;
                    continue;
                }
                // Buffered (out of sync), duplicate, or a gap.
                Ok(_) | Err(_) => {
                    tally.failures += 1;
                    continue;
                }
            }
            if stage == Stage::Apply {
                continue;
            }
            // `publish_book`.
            let Some(order_book) = book.sync.order_book(PUBLISH_DEPTH) else {
                tally.failures += 1;
                continue;
            };
            let nonce = order_book.nonce;
            if book
                .published
                .is_some_and(|published| nonce <= Some(published))
            {
                continue;
            }
            book.published = nonce;
            if stage == Stage::Build {
                tally.published += 1;
                black_box(order_book);
                continue;
            }
            let channel = book.channel.clone();
            let data = serde_json::to_vec(&order_book).expect("ccxt structures serialize");
            publish(&mut tally, channel, data);
        }
        tally
    }

    /// `on_message` for trades and candles: `parse_message`, then `json_of` (a `Value`), the
    /// channel, and `send_json` (`to_vec` of the `Value`).
    fn other_pass(&self, texts: &[String], repeat: usize) -> Tally {
        let mut tally = Tally::default();
        for text in (0..repeat).flat_map(|_| texts) {
            let text = black_box(text.as_str());
            let Ok(message) = binance::parse_message(text, &self.markets) else {
                tally.failures += 1;
                continue;
            };
            tally.messages += 1;
            let symbol = message.symbol;
            let (channel, value) = match message.event {
                binance::StreamEvent::Trade(trade) => (
                    format!("trades:binance:{symbol}"),
                    serde_json::to_value(&trade).expect("ccxt structures serialize"),
                ),
                binance::StreamEvent::Kline(kline) => (
                    format!("ohlcv:binance:{symbol}:{}", kline.timeframe),
                    serde_json::to_value(kline.candle).expect("ccxt structures serialize"),
                ),
                _ => {
                    tally.failures += 1;
                    continue;
                }
            };
            tally.levels += 1;
            let data = serde_json::to_vec(&value).expect("ccxt structures serialize");
            publish(&mut tally, channel, data);
        }
        tally
    }
}

// ----------------------------------------------------------------------------------- coinbase

struct Coinbase {
    markets: coinbase::Markets,
    /// Every product's book with its snapshot applied.
    books: coinbase::Level2Books,
    /// Every `l2update` of the capture, in order.
    updates: Vec<String>,
    tickers: Vec<String>,
    matches: Vec<String>,
}

impl Coinbase {
    fn load() -> Self {
        let markets = coinbase::Markets::from_products(first_http_body(&fixture("COINBASE.0")))
            .expect("COINBASE.0 parses");
        let ws = fixture("COINBASE.ws.28.0");
        let mut books = coinbase::Level2Books::new();
        let (mut updates, mut tickers, mut matches) = (Vec::new(), Vec::new(), Vec::new());
        for text in received(&ws) {
            match coinbase::parse_message(text) {
                Ok(coinbase::Message::Snapshot(snapshot)) => {
                    assert!(
                        books.get(snapshot.product_id).is_none(),
                        "one snapshot per product"
                    );
                    books
                        .snapshot(&markets, &snapshot)
                        .expect("a clean snapshot");
                }
                Ok(coinbase::Message::L2Update(update)) => {
                    // Replayed against books whose snapshot is applied: it must have come first.
                    assert!(
                        books.get(update.product_id).is_some(),
                        "update before snapshot"
                    );
                    updates.push(text.to_owned());
                }
                Ok(coinbase::Message::Ticker(_)) => tickers.push(text.to_owned()),
                Ok(coinbase::Message::Match(_)) => matches.push(text.to_owned()),
                _ => {}
            }
        }
        Self {
            markets,
            books,
            updates,
            tickers,
            matches,
        }
    }

    fn book_pass(&self, books: &mut coinbase::Level2Books, stage: Stage) -> Tally {
        let mut tally = Tally::default();
        for text in &self.updates {
            let text = black_box(text.as_str());
            let message = match coinbase::parse_message(text) {
                Ok(message) => message,
                Err(_) => {
                    tally.failures += 1;
                    continue;
                }
            };
            tally.messages += 1;
            if stage == Stage::Parse {
                black_box(message);
                continue;
            }
            let coinbase::Message::L2Update(update) = message else {
                tally.failures += 1;
                continue;
            };
            // `Level2Books::update`: validated, applied, checked for a crossed book.
            if books.update(&self.markets, &update).is_err() {
                tally.failures += 1;
                continue;
            }
            tally.checked += 1;
            tally.levels += update.changes.len() as u64;
            if stage == Stage::Apply {
                continue;
            }
            // `publish_book`.
            let Some(order_book) = books
                .get(update.product_id)
                .and_then(|book| book.order_book(PUBLISH_DEPTH))
            else {
                tally.failures += 1;
                continue;
            };
            if stage == Stage::Build {
                tally.published += 1;
                black_box(order_book);
                continue;
            }
            let data = serde_json::to_vec(&order_book).expect("serializes");
            let channel = format!("book:coinbase:{}", order_book.symbol);
            publish(&mut tally, channel, data);
        }
        tally
    }

    /// `on_message` for `ticker` and `match`: `to_ccxt`, `to_vec`, the channel.
    fn other_pass(&self, texts: &[String], repeat: usize) -> Tally {
        let mut tally = Tally::default();
        for text in (0..repeat).flat_map(|_| texts) {
            let text = black_box(text.as_str());
            let (channel, data) = match coinbase::parse_message(text) {
                Ok(coinbase::Message::Ticker(ticker)) => match ticker.to_ccxt(&self.markets) {
                    Ok(value) => {
                        let data = serde_json::to_vec(&value).expect("serializes");
                        (format!("ticker:coinbase:{}", value.symbol), data)
                    }
                    Err(_) => {
                        tally.failures += 1;
                        continue;
                    }
                },
                Ok(coinbase::Message::Match(trade)) => match trade.to_ccxt(&self.markets) {
                    Ok(value) => {
                        let data = serde_json::to_vec(&value).expect("serializes");
                        (format!("trades:coinbase:{}", value.symbol), data)
                    }
                    Err(_) => {
                        tally.failures += 1;
                        continue;
                    }
                },
                _ => {
                    tally.failures += 1;
                    continue;
                }
            };
            tally.messages += 1;
            tally.levels += 1;
            publish(&mut tally, channel, data);
        }
        tally
    }
}

// ------------------------------------------------------------------------------------- kraken

struct Kraken {
    markets: kraken::KrakenMarkets,
    /// By ccxt symbol: the book with its snapshot applied (and its depth from the channel name).
    books: HashMap<String, kraken::KrakenBook>,
    /// Every book update of the capture, in order (each with a checksum).
    updates: Vec<String>,
}

impl Kraken {
    fn load() -> Self {
        let markets =
            kraken::KrakenMarkets::from_asset_pairs(first_http_body(&fixture("KRAKEN.0")))
                .expect("KRAKEN.0 parses");
        let ws = fixture("KRAKEN.ws.50.0");
        let mut books = HashMap::new();
        let mut updates = Vec::new();
        for text in received(&ws) {
            let Ok(kraken::KrakenMessage::Book(message)) = kraken::parse_message(text, &markets)
            else {
                continue;
            };
            let symbol = message.pair.market.symbol.as_str();
            if message.snapshot {
                let mut book = kraken::KrakenBook::new(symbol, message.depth.min(KRAKEN_MAX_DEPTH));
                book.apply_snapshot(&message.delta)
                    .expect("a clean snapshot");
                assert!(
                    books.insert(symbol.to_owned(), book).is_none(),
                    "one snapshot per pair"
                );
            } else {
                assert!(books.contains_key(symbol), "update before snapshot");
                updates.push(text.to_owned());
            }
        }
        Self {
            markets,
            books,
            updates,
        }
    }

    fn book_pass(&self, books: &mut HashMap<String, kraken::KrakenBook>, stage: Stage) -> Tally {
        let mut tally = Tally::default();
        for text in &self.updates {
            let text = black_box(text.as_str());
            let message = match kraken::parse_message(text, &self.markets) {
                Ok(message) => message,
                Err(_) => {
                    tally.failures += 1;
                    continue;
                }
            };
            tally.messages += 1;
            if stage == Stage::Parse {
                black_box(message);
                continue;
            }
            let kraken::KrakenMessage::Book(message) = message else {
                tally.failures += 1;
                continue;
            };
            let symbol = message.pair.market.symbol.as_str();
            let Some(book) = books.get_mut(symbol) else {
                tally.failures += 1;
                continue;
            };
            if message.snapshot || message.delta.checksum.is_none() {
                // Every update of the capture carries a checksum: one without is not checked.
                tally.failures += 1;
                continue;
            }
            // Set, truncated to the depth, checksum verified.
            if book.apply_update(&message.delta).is_err() {
                tally.failures += 1;
                continue;
            }
            tally.checked += 1;
            tally.levels += (message.delta.asks.len() + message.delta.bids.len()) as u64;
            if stage == Stage::Apply {
                continue;
            }
            let order_book = book.to_ccxt(PUBLISH_DEPTH);
            if stage == Stage::Build {
                tally.published += 1;
                black_box(order_book);
                continue;
            }
            let data = serde_json::to_vec(&order_book).expect("ccxt structures serialize");
            let channel = format!("book:kraken:{symbol}");
            publish(&mut tally, channel, data);
        }
        tally
    }
}

// -------------------------------------------------------------------------------------- main

/// One workload, measured in rounds.
struct Job<'a> {
    exchange: &'static str,
    stream: &'static str,
    /// For the books: how far down the path; `None` for trades, tickers and candles.
    stage: Option<Stage>,
    /// Timed CPU time in all, over the rounds.
    min: Duration,
    run: Box<dyn FnMut(Duration, bool) -> Measured + 'a>,
    rounds: Vec<Measured>,
}

impl Job<'_> {
    fn total(&self) -> Measured {
        let mut total = Measured::default();
        for &round in &self.rounds {
            total += round;
        }
        total
    }

    /// The fastest and the slowest round, in ns per message.
    fn spread(&self) -> (f64, f64) {
        self.rounds
            .iter()
            .map(|m| m.ns_per(m.tally.messages))
            .fold((f64::INFINITY, 0.0), |(lo, hi), ns| {
                (lo.min(ns), hi.max(ns))
            })
    }

    fn name(&self) -> String {
        match self.stage {
            Some(stage) => format!("{} book {stage:?}", self.exchange),
            None => format!("{} {}", self.exchange, self.stream),
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn cpus_allowed() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
                .map(|list| list.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The CPUs of a list such as `0-1,3`.
fn cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(first), Ok(last)) = (first.trim().parse::<usize>(), last.trim().parse::<usize>())
        {
            cpus.extend(first..=last);
        }
    }
    cpus
}

/// Time the hypervisor gave the CPUs' turns to others so far (`steal` in `/proc/stat`, in
/// ticks of 10 ms), summed over `cpus`; 0 where there is no such figure.
fn steal(cpus: &[usize]) -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let cpu: usize = fields.next()?.strip_prefix("cpu")?.parse().ok()?;
            // user nice system idle iowait irq softirq steal
            let steal: u64 = fields.nth(7)?.parse().ok()?;
            cpus.contains(&cpu).then_some(steal)
        })
        .sum();
    Duration::from_millis(ticks * 10)
}

fn thousands(value: f64) -> String {
    let digits = format!("{value:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("SECONDS: a number"))
        .unwrap_or(2.0);
    let full = Duration::from_secs_f64(seconds);
    // The partial stages only show where the time goes: half as long.
    let partial = full / 2;
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful figures");
    }
    println!(
        "CPU: {} (this process may run on CPUs {})",
        cpu_model(),
        cpus_allowed()
    );

    // Loading: not timed.
    let cpus = cpu_list(&cpus_allowed());
    let (started, stolen) = (Instant::now(), steal(&cpus));
    let load = Instant::now();
    let binance = Binance::load();
    let coinbase = Coinbase::load();
    let kraken = Kraken::load();
    println!(
        "captures loaded in {:.0} ms: binance {} depth messages ({} books), coinbase {} l2updates \
         ({} books), kraken {} book updates ({} books)",
        load.elapsed().as_secs_f64() * 1e3,
        binance.depth.len(),
        binance.books.len(),
        coinbase.updates.len(),
        coinbase.books.iter().count(),
        kraken.updates.len(),
        kraken.books.len(),
    );

    let mut jobs: Vec<Job<'_>> = Vec::new();
    // Books: every stage, the full path (and longest) last.
    for stage in STAGES {
        let min = if stage == Stage::Publish {
            full
        } else {
            partial
        };
        let (binance, coinbase, kraken) = (&binance, &coinbase, &kraken);
        jobs.push(Job {
            exchange: "binance",
            stream: "book (`@depth@100ms`)",
            stage: Some(stage),
            min,
            run: Box::new(move |min, warm_up| {
                measure(
                    min,
                    warm_up,
                    || binance.books.clone(),
                    |books| binance.book_pass(books, stage),
                )
            }),
            rounds: Vec::new(),
        });
        jobs.push(Job {
            exchange: "coinbase",
            stream: "book (level2 `l2update`)",
            stage: Some(stage),
            min,
            run: Box::new(move |min, warm_up| {
                measure(
                    min,
                    warm_up,
                    || coinbase.books.clone(),
                    |books| coinbase.book_pass(books, stage),
                )
            }),
            rounds: Vec::new(),
        });
        jobs.push(Job {
            exchange: "kraken",
            stream: "book (v1 `book-1000`)",
            stage: Some(stage),
            min,
            run: Box::new(move |min, warm_up| {
                measure(
                    min,
                    warm_up,
                    || kraken.books.clone(),
                    |books| kraken.book_pass(books, stage),
                )
            }),
            rounds: Vec::new(),
        });
    }
    // Trades, tickers and candles: the full path, no state.
    let others: [(&'static str, &'static str, &[String], bool); 4] = [
        ("binance", "trades (`@aggTrade`)", &binance.trades, true),
        ("binance", "ohlcv (`@kline_1m`)", &binance.klines, true),
        ("coinbase", "ticker (`ticker`)", &coinbase.tickers, false),
        (
            "coinbase",
            "trades (`match`, `last_match`)",
            &coinbase.matches,
            false,
        ),
    ];
    for (exchange, stream, texts, is_binance) in others {
        assert!(
            !texts.is_empty(),
            "{exchange} {stream}: none in the capture"
        );
        let (binance, coinbase) = (&binance, &coinbase);
        let repeat = OTHER_PER_PASS.div_ceil(texts.len());
        jobs.push(Job {
            exchange,
            stream,
            stage: None,
            min: full,
            run: Box::new(move |min, warm_up| {
                measure(
                    min,
                    warm_up,
                    || (),
                    |_| {
                        if is_binance {
                            binance.other_pass(texts, repeat)
                        } else {
                            coinbase.other_pass(texts, repeat)
                        }
                    },
                )
            }),
            rounds: Vec::new(),
        });
    }

    // The rounds, the workloads taking turns.
    for round in 0..ROUNDS {
        for job in &mut jobs {
            let measured = (job.run)(job.min / ROUNDS, round == 0);
            job.rounds.push(measured);
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n| exchange | stream | msgs/pass | levels/pass | passes | CPU s | msgs/s | levels/s \
         | ns/msg | ns/msg per round, min–max | ns/level | publications/pass | \
         bytes/publication | on-CPU |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let rows = jobs
        .iter()
        .filter(|job| job.stage.map_or(true, |stage| stage == Stage::Publish));
    for job in rows {
        let m = job.total();
        let t = &m.tally;
        let is_book = job.stage.is_some();
        let dash = || "–".to_owned();
        let (lo, hi) = job.spread();
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {:.2} | {} | {} | {:.0} | {lo:.0}–{hi:.0} | {} | {:.0} \
             | {:.0} | {:.0} % |",
            job.exchange,
            job.stream,
            m.per_pass(t.messages),
            if is_book {
                format!("{:.0}", m.per_pass(t.levels))
            } else {
                dash()
            },
            m.passes,
            m.cpu.as_secs_f64(),
            thousands(m.per_second(t.messages)),
            if is_book {
                thousands(m.per_second(t.levels))
            } else {
                dash()
            },
            m.ns_per(t.messages),
            if is_book {
                format!("{:.0}", m.ns_per(t.levels))
            } else {
                dash()
            },
            m.per_pass(t.published),
            t.bytes as f64 / t.published.max(1) as f64,
            m.on_cpu() * 100.0,
        );
    }

    let _ = writeln!(
        out,
        "\nWhere the time of a book message goes (ns per message, each run stopped after the \
         step; the step's own cost is the difference with the column before):\n"
    );
    let _ = writeln!(
        out,
        "| exchange | parse | + apply & check | + build OrderBook (top {PUBLISH_DEPTH}) | \
         + JSON & channel (full path) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for exchange in ["binance", "coinbase", "kraken"] {
        let ns = |stage: Stage| {
            let job = jobs
                .iter()
                .find(|job| job.exchange == exchange && job.stage == Some(stage))
                .expect("every stage ran");
            let m = job.total();
            m.ns_per(m.tally.messages)
        };
        let cells: Vec<String> = STAGES
            .iter()
            .enumerate()
            .map(|(i, &stage)| {
                let total = ns(stage);
                if i == 0 {
                    format!("{total:.0}")
                } else {
                    format!("{total:.0} ({:+.0})", total - ns(STAGES[i - 1]))
                }
            })
            .collect();
        let _ = writeln!(out, "| {exchange} | {} |", cells.join(" | "));
    }
    let contended: Vec<String> = jobs
        .iter()
        .filter(|job| job.total().on_cpu() < 0.97)
        .map(|job| {
            let m = job.total();
            format!(
                "{} ({:.0} % on CPU, wall-clock {} msgs/s)",
                job.name(),
                m.on_cpu() * 100.0,
                thousands(m.per_wall_second(m.tally.messages))
            )
        })
        .collect();
    if !contended.is_empty() {
        let _ = writeln!(
            out,
            "\nWARNING: something else ran on this core during: {}. The rates above are per \
             second of this thread's CPU time, which leaves out the time the core ran the \
             other task but not what that task did to the caches; run again on an idle core \
             to be sure.",
            contended.join(", ")
        );
    }
    print!("{out}");

    // The timed loops ran the checks, and a replay of real data is clean.
    println!();
    for job in &jobs {
        let t = job.total().tally;
        let name = job.name();
        assert!(t.messages > 0, "{name}: nothing timed");
        assert_eq!(
            t.failures, 0,
            "{name}: {} failures (gaps, checksum mismatches, crossed books or unreadable \
             messages) in the timed loop",
            t.failures
        );
        let Some(stage) = job.stage else {
            assert_eq!(
                t.published, t.messages,
                "{name}: one publication per message"
            );
            continue;
        };
        if stage >= Stage::Apply {
            assert_eq!(
                t.checked + t.dropped,
                t.messages,
                "{name}: every message applied and checked"
            );
            assert!(t.checked > 0, "{name}: nothing checked");
        }
        if stage == Stage::Publish {
            let what = match job.exchange {
                "binance" => "updates applied by the sequence rule (U = previous u + 1), 0 gaps",
                "coinbase" => "updates applied and found uncrossed, 0 crossed books",
                _ => "CRC32 checksums verified, 0 mismatches",
            };
            println!(
                "{}: {} {what}; {} events older than their snapshot dropped; {} publications",
                job.exchange, t.checked, t.dropped, t.published
            );
        }
    }
    println!("all timed passes clean");
    println!(
        "hypervisor steal time on CPUs {cpus:?} during the {:.0} s run: {} ms (above a few ms, \
         the host ran something else on this core too: expect slower figures)",
        started.elapsed().as_secs_f64(),
        (steal(&cpus) - stolen).as_millis()
    );
}
