//! The broker's Prometheus metrics: one process-wide set, counted where each thing happens and
//! exposed at `/metrics` (src/server.rs) in the Prometheus text format by `prometheus-client`.
//!
//! What is counted where (docs/OPERATIONS.md lists every series with its meaning):
//! - connections by transport and format: the session actor, when it starts and stops;
//! - commands by method and result code, disconnects by code: the session (`Session::reply`,
//!   `Session::close`);
//! - publications in and deliveries out, with bytes: the Router's `Publish` handler, once per
//!   publication (never per subscriber: a delivery count is added once a fan-out is done);
//! - the Router's mailbox: each [`Publish`](crate::router::Publish) carries a [`Queued`] ticket
//!   from its sender until the Router has handled it;
//! - per-session queue depth: sampled by the Router once a second, one observation a session;
//! - sessions, users, channels, subscriptions, history: read from the Registry and the Router
//!   when `/metrics` is scraped ([`Metrics::set_registry_figures`],
//!   [`Metrics::set_router_figures`]);
//! - per exchange: adapter status from the `notifications` announcements (the Router), upstream
//!   reconnects, book resyncs, checksum failures and the exchange-to-publication lag (the
//!   adapters);
//! - secure handshakes by result (the secure transport), API requests by method and status (the
//!   server API).
//!
//! Hot-path rule: a counter is one relaxed atomic add on a handle held by its owner; a labelled
//! family is looked up only where the labels vary (a command, a disconnect, a resync), never per
//! delivery; histograms (a mutex inside) are observed off the fan-out path.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The exposition's `Content-Type` (the Prometheus text format, version 0.0.4).
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

use crate::registry::RegistryInfo;
use crate::router::RouterInfo;

/// `transport` and `format` of a client connection.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// `websocket` (the Centrifuge wire) or `secure` (the encrypted transport).
    pub transport: &'static str,
    /// `json` or `protobuf`.
    pub format: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub method: &'static str,
    /// The reply's error code, `0` for a result.
    pub code: u32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// The disconnect code sent to the client.
    pub code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `connected` or `parked` (waiting for its client to resume it).
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// The server API method (`unknown` for a path that names none).
    pub method: &'static str,
    /// The HTTP status answered.
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExchangeLabels {
    pub exchange: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SymbolLabels {
    pub exchange: String,
    /// The ccxt symbol (`BTC/USDT`).
    pub symbol: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// `new`, `resumed`, `rejected` (a bad hello, an unknown client, a failed proof) or
    /// `rate_limited` (4009).
    pub result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every series the broker exposes.
pub struct Metrics {
    pub connections: Family<ConnectionLabels, Gauge>,
    pub connections_opened: Family<ConnectionLabels, Counter>,
    pub sessions: Family<StateLabels, Gauge>,
    pub users: Gauge,
    pub channels: Gauge,
    pub subscriptions: Gauge,
    pub commands: Family<CommandLabels, Counter>,
    pub disconnects: Family<CodeLabels, Counter>,
    pub publications: Counter,
    pub publication_bytes: Counter,
    pub deliveries: Counter,
    pub delivery_bytes: Counter,
    pub session_queue_depth: Histogram,
    pub router_mailbox: Gauge,
    pub history_bytes: Gauge,
    pub history_publications: Gauge,
    pub history_streams: Gauge,
    pub api_requests: Family<ApiLabels, Counter>,
    pub adapter_up: Family<ExchangeLabels, Gauge>,
    pub upstream_reconnects: Family<ExchangeLabels, Counter>,
    pub book_resyncs: Family<SymbolLabels, Counter>,
    pub checksum_failures: Family<SymbolLabels, Counter>,
    pub exchange_lag: HistogramFamily<ExchangeLabels>,
    pub secure_handshakes: Family<HandshakeLabels, Counter>,
    registry: Registry,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Queue depths in items: 0, then powers of 4 up to 65,536 (past `queue_max_messages`' default).
fn queue_depth_buckets() -> Histogram {
    Histogram::new([
        0.0, 1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
    ])
}

/// Lags in seconds, 1 ms to about 33 s: an exchange's clock is a few ms off ours either way, a
/// stalled stream shows as the top buckets.
fn lag_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 16,
    ))
}

impl Metrics {
    fn new() -> Self {
        let metrics = Metrics {
            connections: Family::default(),
            connections_opened: Family::default(),
            sessions: Family::default(),
            users: Gauge::default(),
            channels: Gauge::default(),
            subscriptions: Gauge::default(),
            commands: Family::default(),
            disconnects: Family::default(),
            publications: Counter::default(),
            publication_bytes: Counter::default(),
            deliveries: Counter::default(),
            delivery_bytes: Counter::default(),
            session_queue_depth: queue_depth_buckets(),
            router_mailbox: Gauge::default(),
            history_bytes: Gauge::default(),
            history_publications: Gauge::default(),
            history_streams: Gauge::default(),
            api_requests: Family::default(),
            adapter_up: Family::default(),
            upstream_reconnects: Family::default(),
            book_resyncs: Family::default(),
            checksum_failures: Family::default(),
            exchange_lag: Family::new_with_constructor(lag_buckets),
            secure_handshakes: Family::default(),
            registry: Registry::with_prefix("rpc_crypto"),
        };
        // The series every broker has, present at 0 from the start (rather than absent until
        // the first event), so that dashboards and `rate()` see them begin.
        for (transport, format) in [
            ("websocket", "json"),
            ("websocket", "protobuf"),
            ("secure", "json"),
        ] {
            let labels = ConnectionLabels { transport, format };
            let _ = metrics.connections.get_or_create(&labels);
            let _ = metrics.connections_opened.get_or_create(&labels);
        }
        for result in ["new", "resumed", "rejected", "rate_limited"] {
            let _ = metrics
                .secure_handshakes
                .get_or_create(&HandshakeLabels { result });
        }
        metrics.registered()
    }

    fn registered(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "connections",
            "Client connections open, by transport and format",
            self.connections.clone(),
        );
        r.register(
            "connections_opened",
            "Client connections accepted since the start, by transport and format",
            self.connections_opened.clone(),
        );
        r.register(
            "sessions",
            "Sessions held by the Registry: connected, or parked waiting for a resume",
            self.sessions.clone(),
        );
        r.register("users", "Distinct users with a session", self.users.clone());
        r.register(
            "channels",
            "Channels with a subscriber or a kept stream position",
            self.channels.clone(),
        );
        r.register(
            "subscriptions",
            "Subscriptions over all channels",
            self.subscriptions.clone(),
        );
        r.register(
            "commands",
            "Client commands answered, by method and result code (0: a result)",
            self.commands.clone(),
        );
        r.register(
            "disconnects",
            "Connections the server closed, by disconnect code",
            self.disconnects.clone(),
        );
        r.register(
            "publications",
            "Publications received by the Router (clients, the server API, adapters; not $sys:)",
            self.publications.clone(),
        );
        r.register_with_unit(
            "publication",
            "Bytes of the data of publications received",
            Unit::Bytes,
            self.publication_bytes.clone(),
        );
        r.register(
            "deliveries",
            "Publications queued to subscribers (one per subscriber reached; not $sys:)",
            self.deliveries.clone(),
        );
        r.register_with_unit(
            "delivery",
            "Encoded bytes of the deliveries queued to subscribers",
            Unit::Bytes,
            self.delivery_bytes.clone(),
        );
        r.register(
            "session_queue_depth",
            "Items waiting in a session's outgoing queue, sampled each second for each session",
            self.session_queue_depth.clone(),
        );
        r.register(
            "router_mailbox_publications",
            "Publications sent to the Router and not yet handled",
            self.router_mailbox.clone(),
        );
        r.register_with_unit(
            "history",
            "Bytes of publications kept in history (as counted against [history] max_size)",
            Unit::Bytes,
            self.history_bytes.clone(),
        );
        r.register(
            "history_publications",
            "Publications kept in history",
            self.history_publications.clone(),
        );
        r.register(
            "history_streams",
            "Channels with a history stream",
            self.history_streams.clone(),
        );
        r.register(
            "api_requests",
            "Server API requests, by method and HTTP status",
            self.api_requests.clone(),
        );
        r.register(
            "adapter_up",
            "1 while an exchange adapter's last announced status is up (or resyncing), 0 while down",
            self.adapter_up.clone(),
        );
        r.register(
            "upstream_reconnects",
            "Upstream connections to an exchange lost or refused, after which it connects again",
            self.upstream_reconnects.clone(),
        );
        r.register(
            "book_resyncs",
            "Order books rebuilt from a new snapshot after a gap, a mismatch or a crossed book",
            self.book_resyncs.clone(),
        );
        r.register(
            "checksum_failures",
            "Exchange book checksums that did not match the book",
            self.checksum_failures.clone(),
        );
        r.register_with_unit(
            "exchange_lag",
            "From the exchange's own timestamp of a ticker, trade or book to its publication",
            Unit::Seconds,
            self.exchange_lag.clone(),
        );
        r.register(
            "secure_handshakes",
            "Secure transport handshakes, by result",
            self.secure_handshakes.clone(),
        );
        self
    }

    /// The exposition, in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail, nor can our label sets.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }

    /// The Registry's figures, taken when `/metrics` is scraped.
    pub fn set_registry_figures(&self, info: &RegistryInfo) {
        let set = |state, value: usize| {
            self.sessions
                .get_or_create(&StateLabels { state })
                .set(value as i64);
        };
        set("connected", info.sessions);
        set("parked", info.parked);
        self.users.set(info.users as i64);
    }

    /// The Router's figures, taken when `/metrics` is scraped.
    pub fn set_router_figures(&self, info: &RouterInfo) {
        self.channels.set(info.channels as i64);
        self.subscriptions.set(info.subscriptions as i64);
        self.history_bytes.set(info.history_bytes as i64);
        self.history_publications
            .set(info.history_publications as i64);
        self.history_streams.set(info.history_streams as i64);
    }

    /// A client command answered.
    pub fn command(&self, method: &'static str, code: u32) {
        self.commands
            .get_or_create(&CommandLabels { method, code })
            .inc();
    }

    /// A connection closed by the server with `code`.
    pub fn disconnect(&self, code: u16) {
        self.disconnects.get_or_create(&CodeLabels { code }).inc();
    }

    pub fn api_request(&self, method: &'static str, status: u16) {
        self.api_requests
            .get_or_create(&ApiLabels { method, status })
            .inc();
    }

    pub fn secure_handshake(&self, result: &'static str) {
        self.secure_handshakes
            .get_or_create(&HandshakeLabels { result })
            .inc();
    }

    /// An adapter's announced status (`up`, `resyncing`, `down`; others leave it as it was).
    pub fn adapter_status(&self, exchange: &str, status: &str) {
        let up = match status {
            "up" | "resyncing" => 1,
            "down" => 0,
            _ => return,
        };
        self.adapter_up
            .get_or_create(&ExchangeLabels {
                exchange: exchange.to_owned(),
            })
            .set(up);
    }

    /// A handle on one exchange's counters, for its adapter to keep.
    pub fn exchange(&self, exchange: &str) -> ExchangeMetrics {
        let labels = ExchangeLabels {
            exchange: exchange.to_owned(),
        };
        ExchangeMetrics {
            exchange: exchange.to_owned(),
            reconnects: self.upstream_reconnects.get_or_create_owned(&labels),
            lag: self.exchange_lag.get_or_create_owned(&labels),
        }
    }
}

/// An adapter's counters, looked up once.
#[derive(Clone)]
pub struct ExchangeMetrics {
    exchange: String,
    reconnects: Counter,
    lag: Histogram,
}

impl ExchangeMetrics {
    /// The upstream connection was lost or refused; it is made again.
    pub fn reconnect(&self) {
        self.reconnects.inc();
    }

    /// A book of `symbol` is being rebuilt from a new snapshot.
    pub fn resync(&self, symbol: &str) {
        metrics()
            .book_resyncs
            .get_or_create(&self.symbol(symbol))
            .inc();
    }

    /// The exchange's checksum of `symbol`'s book did not match it.
    pub fn checksum_failure(&self, symbol: &str) {
        metrics()
            .checksum_failures
            .get_or_create(&self.symbol(symbol))
            .inc();
    }

    /// A publication of data the exchange stamped at `timestamp_ms` (Unix milliseconds) goes
    /// out now.
    pub fn published(&self, timestamp_ms: Option<i64>) {
        let Some(stamped) = timestamp_ms else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // A clock ahead of ours counts as no lag rather than as none at all.
        self.lag
            .observe(now.saturating_sub(stamped).max(0) as f64 / 1000.0);
    }

    fn symbol(&self, symbol: &str) -> SymbolLabels {
        SymbolLabels {
            exchange: self.exchange.clone(),
            symbol: symbol.to_owned(),
        }
    }
}

/// Counts a client connection as open from the start of its session actor until the actor is
/// dropped (however it ends, a panic included).
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl OpenConnection {
    pub fn new(transport: &'static str, format: &'static str) -> Self {
        let labels = ConnectionLabels { transport, format };
        let m = metrics();
        m.connections_opened.get_or_create(&labels).inc();
        let open = m.connections.get_or_create_owned(&labels);
        open.inc();
        OpenConnection(open)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a message as waiting in the Router's mailbox from its making until it is dropped
/// (handled, or discarded with a closed mailbox): carried inside the message, so no sender and
/// no handler can forget either half.
#[derive(Debug)]
pub struct Queued(());

impl Queued {
    pub fn new() -> Self {
        metrics().router_mailbox.inc();
        Queued(())
    }
}

impl Default for Queued {
    fn default() -> Self {
        Queued::new()
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        metrics().router_mailbox.dec();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The families of an exposition, from its `# TYPE` lines.
    fn families(exposition: &str) -> BTreeSet<String> {
        exposition
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|line| line.split(' ').next())
            .map(str::to_owned)
            .collect()
    }

    /// The `rpc_crypto_*` names in a text.
    fn names_in(text: &str) -> BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("rpc_crypto_"))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_family_is_documented_and_every_documented_series_exists() {
        let m = metrics();
        // Each labelled family gets a series (an empty family is left out of the exposition).
        m.command("subscribe", 0);
        m.disconnect(3008);
        m.api_request("publish", 200);
        m.adapter_status("test", "up");
        let exchange = m.exchange("test");
        exchange.reconnect();
        exchange.resync("BTC/USD");
        exchange.checksum_failure("BTC/USD");
        exchange.published(Some(0));
        let _ = m.sessions.get_or_create(&StateLabels { state: "parked" });
        let text = m.encode();
        let exposed = families(&text);
        let docs = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/OPERATIONS.md"
        ))
        .expect("docs/OPERATIONS.md");
        let section = docs
            .split("\n## ")
            .find(|section| section.starts_with("Metrics\n"))
            .expect("a Metrics section");
        let documented = names_in(section);
        assert_eq!(
            exposed, documented,
            "docs/OPERATIONS.md's series and the registered ones differ"
        );
        assert!(text.contains("rpc_crypto_commands_total{method=\"subscribe\",code=\"0\"}"));
        assert!(
            text.contains("rpc_crypto_book_resyncs_total{exchange=\"test\",symbol=\"BTC/USD\"}")
        );
        assert!(text.contains("# TYPE rpc_crypto_exchange_lag_seconds histogram\n"));
        assert!(text.contains("# TYPE rpc_crypto_session_queue_depth histogram\n"));
    }

    #[test]
    fn a_status_that_is_not_about_the_adapter_leaves_it_as_it_was() {
        let m = metrics();
        let up = |m: &Metrics| {
            m.adapter_up
                .get_or_create(&ExchangeLabels {
                    exchange: "status-test".into(),
                })
                .get()
        };
        m.adapter_status("status-test", "down");
        assert_eq!(up(m), 0);
        m.adapter_status("status-test", "resyncing");
        assert_eq!(up(m), 1);
        m.adapter_status("status-test", "channel_error");
        assert_eq!(up(m), 1);
        m.adapter_status("status-test", "down");
        assert_eq!(up(m), 0);
    }
}
