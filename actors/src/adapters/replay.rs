//! Replaying a recording through the real adapter code: a local stand-in for an exchange that
//! plays a [`Recording`] (one made by `rpc-crypto record`, or a cryptofeed capture, the format of
//! [`capture`](super::capture)) to whoever connects, so that the real adapter of that exchange,
//! pointed at it, publishes yesterday's market as if it were today's.
//!
//! [`ReplayServer`] listens on two local ports, WebSocket and HTTP:
//! - The recording's WebSocket connections (a `URL <-> TS` record starts one) are played in
//!   order: the first connection made to the replay gets the first recorded one, and so on. Each
//!   gets its received messages in order, paced by their recorded times divided by `speed` (1 is
//!   real time, N is N times faster, 0 as fast as the socket takes them), the first at once.
//!   What the adapter sends (its subscriptions, pings) is read and ignored. A recorded
//!   connection that is not the last ends (closed) where the recording has it end, and the
//!   adapter reconnects as it would have. After the last one the connection stays open and
//!   silent, which is what a dead market looks like (the adapter's heartbeat timeout notices,
//!   and its reconnects get silent connections too); with `loop`, it is closed and the next
//!   connection starts the recording over.
//! - An HTTP GET is answered with a recorded body of the same path and query (scheme, host and
//!   the order of the query's parameters do not matter), 404 otherwise. Of several answers to
//!   the same request (a book fetched again), the first recorded at or after the replay's
//!   position (the recorded time of the message sent last) is given, else the last one. The
//!   answers come from the recording and from `http_files`: cryptofeed keeps its REST answers in
//!   files of their own (`BINANCE.0`, the market list; `BINANCE.http.0.0`, depth snapshots),
//!   while `rpc-crypto record` writes them into the recording.
//!
//! The whole recording is read into memory when the server starts; a malformed line stops the
//! start with an error naming the file and the line.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::capture::{self, Record};

/// The exchanges a recording may be replayed to.
pub const EXCHANGES: &[&str] = &["binance", "coinbase", "kraken"];

/// The largest HTTP request head read.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How long an HTTP client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two messages, whatever the recording and the speed say.
const MAX_WAIT_SECS: f64 = 1e9;

/// The `[replay]` config table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplaySettings {
    /// Replay `file` instead of connecting to the exchange.
    pub enabled: bool,
    /// The exchange replayed: `binance`, `coinbase` or `kraken`; empty takes the one the
    /// recording's header names (a cryptofeed capture has none).
    pub exchange: String,
    /// The recording.
    pub file: String,
    /// More captures whose HTTP records answer the adapter's REST requests.
    pub http_files: Vec<String>,
    /// 1 real time, N N times faster, 0 as fast as the adapter takes it.
    pub speed: f64,
    /// Start over after the end.
    #[serde(rename = "loop")]
    pub repeat: bool,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        ReplaySettings {
            enabled: false,
            exchange: String::new(),
            file: String::new(),
            http_files: Vec::new(),
            speed: 1.0,
            repeat: false,
        }
    }
}

impl ReplaySettings {
    /// A problem with the settings, for config validation (the files are read by
    /// [`Recording::load`]).
    pub fn check(&self) -> Result<(), String> {
        if !(self.speed.is_finite() && self.speed >= 0.0) {
            return Err(format!(
                "replay: speed {} must be 0 (as fast as possible) or above (1 = real time)",
                self.speed
            ));
        }
        if !self.exchange.is_empty() && !EXCHANGES.contains(&self.exchange.as_str()) {
            return Err(format!(
                "replay: exchange {:?} is not one of {EXCHANGES:?}",
                self.exchange
            ));
        }
        if self.enabled && self.file.is_empty() {
            return Err(
                "replay: enabled needs a file (a recording made by `rpc-crypto record`, \
                        or a cryptofeed capture)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Why a recording cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay: cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("replay: {path} line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: &'static str,
    },
    #[error("replay: {0}")]
    Invalid(String),
}

/// One recorded WebSocket connection.
#[derive(Debug, Clone)]
struct Connection {
    /// When it opened.
    at: f64,
    /// Its received messages: when, and where in the recording's text.
    messages: Vec<(f64, Range<usize>)>,
}

/// One recorded HTTP answer.
#[derive(Debug, Clone)]
struct Answer {
    at: f64,
    /// Which text (0 the recording, then `http_files`) and where in it.
    text: usize,
    body: Range<usize>,
}

/// A recording, read and checked, ready to be played.
#[derive(Debug)]
pub struct Recording {
    exchange: String,
    texts: Vec<String>,
    connections: Vec<Connection>,
    /// By normalized request target, in recorded order.
    answers: HashMap<String, Vec<Answer>>,
    /// The recorded time of the first record.
    start: f64,
    /// Records the recorder lost (its footer says so).
    pub dropped: u64,
    /// What is odd about it but does not stop the replay: a last line cut short, a recording
    /// that was never finished, records lost while recording.
    pub warnings: Vec<String>,
}

/// `path?query` of a URL or request target, with the query's parameters sorted; no scheme,
/// host or fragment.
pub fn request_key(url: &str) -> String {
    let url = url.split('#').next().unwrap_or_default();
    // A scheme ends at the first `://` only if no `/` or `?` comes before it: a request target
    // may hold `://` in its query (`?next=https://...`).
    let target = match url.split_once("://") {
        Some((scheme, rest)) if !scheme.contains(['/', '?']) => match rest.find(['/', '?']) {
            Some(at) => &rest[at..],
            None => "",
        },
        _ => url,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = if path.is_empty() { "/" } else { path };
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if params.is_empty() {
        return path.to_owned();
    }
    params.sort_unstable();
    format!("{path}?{}", params.join("&"))
}

/// Where `part` (a slice of `text`) lies in it.
fn range_in(text: &str, part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    start..start + part.len()
}

impl Recording {
    /// Reads `settings.file` and `settings.http_files`.
    pub fn load(settings: &ReplaySettings) -> Result<Recording, ReplayError> {
        let read = |path: &str| {
            std::fs::read_to_string(path).map_err(|source| ReplayError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let main = (settings.file.clone(), read(&settings.file)?);
        let mut http = Vec::new();
        for path in &settings.http_files {
            http.push((path.clone(), read(path)?));
        }
        Recording::parse(main, http, &settings.exchange)
    }

    /// A recording from the text of its file and of more HTTP captures, each with the name
    /// errors give it; `exchange` empty takes the recording's own.
    pub fn parse(
        recording: (String, String),
        http_files: Vec<(String, String)>,
        exchange: &str,
    ) -> Result<Recording, ReplayError> {
        let mut warnings = Vec::new();
        let mut names = Vec::new();
        let mut texts = Vec::new();
        for (name, mut text) in std::iter::once(recording).chain(http_files) {
            if let Some(line) = capture::unterminated_last_line(&text) {
                warnings.push(format!(
                    "{name} line {line} has no newline: the file was cut short, and that line \
                     is left out"
                ));
                text.truncate(text.rfind('\n').map_or(0, |at| at + 1));
            }
            names.push(name);
            texts.push(text);
        }
        let line_error = |name: &str, e: capture::CaptureError| ReplayError::Line {
            path: name.to_owned(),
            line: e.line,
            reason: e.reason,
        };
        let main = &texts[0];
        let header = capture::header(main).map_err(|e| line_error(&names[0], e))?;
        let exchange = match (exchange, &header) {
            ("", Some(header)) => header.exchange.to_owned(),
            ("", None) => {
                return Err(ReplayError::Invalid(format!(
                    "{} has no header naming its exchange (a cryptofeed capture): set \
                     replay.exchange",
                    names[0]
                )))
            }
            (configured, Some(header)) if configured != header.exchange => {
                return Err(ReplayError::Invalid(format!(
                    "{} is a recording of {}, not of {configured} (replay.exchange)",
                    names[0], header.exchange
                )))
            }
            (configured, _) => configured.to_owned(),
        };
        if !EXCHANGES.contains(&exchange.as_str()) {
            return Err(ReplayError::Invalid(format!(
                "{}: exchange {exchange:?} is not one of {EXCHANGES:?}",
                names[0]
            )));
        }
        let mut dropped = 0;
        if header.is_some() {
            match capture::footer(main) {
                Some(footer) => dropped = footer.dropped,
                None => warnings.push(format!(
                    "{} has no end line: the recording was not finished (its recorder stopped \
                     early), so it may end early",
                    names[0]
                )),
            }
        }
        if dropped > 0 {
            warnings.push(format!(
                "{}: {dropped} records were lost while recording: the replay has holes",
                names[0]
            ));
        }
        let mut connections: Vec<Connection> = Vec::new();
        let mut answers: HashMap<String, Vec<Answer>> = HashMap::new();
        let mut start: Option<f64> = None;
        for (index, text) in texts.iter().enumerate() {
            let mut ignored = 0;
            for record in capture::records(text) {
                let record = record.map_err(|e| line_error(&names[index], e))?;
                if index == 0 {
                    start.get_or_insert(record.at());
                }
                match record {
                    Record::Http { url, at, body } => {
                        answers.entry(request_key(url)).or_default().push(Answer {
                            at,
                            text: index,
                            body: range_in(text, body),
                        })
                    }
                    _ if index > 0 => ignored += 1,
                    Record::Connected { at, .. } => connections.push(Connection {
                        at,
                        messages: Vec::new(),
                    }),
                    Record::Received { at, message } => {
                        if connections.is_empty() {
                            // Messages before any connection record: one connection from the
                            // first of them.
                            connections.push(Connection {
                                at,
                                messages: Vec::new(),
                            });
                        }
                        if let Some(connection) = connections.last_mut() {
                            connection.messages.push((at, range_in(text, message)));
                        }
                    }
                    Record::Sent { .. } => {}
                }
            }
            if ignored > 0 {
                warnings.push(format!(
                    "{}: {ignored} WebSocket records left out (only the HTTP answers of \
                     replay.http_files are used)",
                    names[index]
                ));
            }
        }
        let Some(start) = start else {
            return Err(ReplayError::Invalid(format!(
                "{} holds no record",
                names[0]
            )));
        };
        if connections.iter().all(|c| c.messages.is_empty()) {
            warnings.push(format!(
                "{} holds no received WebSocket message: the replay's feed is silent",
                names[0]
            ));
        }
        Ok(Recording {
            exchange,
            texts,
            connections,
            answers,
            start,
            dropped,
            warnings,
        })
    }

    /// The exchange replayed.
    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// The recorded WebSocket connections.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// Every received message, in order, connection after connection.
    pub fn messages(&self) -> impl Iterator<Item = &str> {
        self.connections
            .iter()
            .flat_map(|c| c.messages.iter())
            .map(|(_, range)| &self.texts[0][range.clone()])
    }

    /// The recorded HTTP answers.
    pub fn answers(&self) -> usize {
        self.answers.values().map(Vec::len).sum()
    }

    /// The recorded time from the first received message to the last, in seconds.
    pub fn span(&self) -> f64 {
        let times = || {
            self.connections
                .iter()
                .flat_map(|c| c.messages.iter().map(|m| m.0))
        };
        match (times().reduce(f64::min), times().reduce(f64::max)) {
            (Some(first), Some(last)) => last - first,
            _ => 0.0,
        }
    }

    /// One line about it, for the log.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} connection(s), {} messages over {:.1}s, {} HTTP answers",
            self.exchange,
            self.connections.len(),
            self.messages().count(),
            self.span(),
            self.answers()
        )
    }

    /// The answer to a GET of `target` when the replay stands at `clock` (recorded time).
    pub fn answer(&self, target: &str, clock: f64) -> Option<&str> {
        let answers = self.answers.get(&request_key(target))?;
        let answer = answers
            .iter()
            .filter(|a| a.at >= clock)
            .min_by(|a, b| a.at.total_cmp(&b.at))
            .or_else(|| answers.iter().max_by(|a, b| a.at.total_cmp(&b.at)))?;
        Some(&self.texts[answer.text][answer.body.clone()])
    }
}

/// What the replay server shares between its connections.
struct State {
    recording: Arc<Recording>,
    speed: f64,
    repeat: bool,
    /// Connections accepted so far: the next one plays this recorded connection.
    next: AtomicUsize,
    /// The recorded time the replay stands at (f64 bits).
    clock: AtomicU64,
    /// Messages sent and HTTP requests answered (200) or not (404), for tests and logs.
    sent: AtomicU64,
    answered: AtomicU64,
    missing: AtomicU64,
}

impl State {
    fn set_clock(&self, at: f64) {
        self.clock.store(at.to_bits(), Ordering::Relaxed);
    }

    fn clock(&self) -> f64 {
        f64::from_bits(self.clock.load(Ordering::Relaxed))
    }
}

/// What a replay server did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// WebSocket connections accepted.
    pub connections: usize,
    /// Messages sent on them.
    pub sent: u64,
    /// HTTP GETs answered with a recorded body, and those answered 404.
    pub answered: u64,
    pub missing: u64,
}

/// A replay under way: its WebSocket and HTTP listeners on 127.0.0.1.
pub struct ReplayServer {
    ws: SocketAddr,
    http: SocketAddr,
    state: Arc<State>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ReplayServer {
    /// Listens on two free local ports and plays `recording` there at `speed`, over and over
    /// with `repeat`. Runs on the current tokio runtime until [`ReplayServer::stop`] or the
    /// runtime's end.
    pub fn start(recording: Arc<Recording>, speed: f64, repeat: bool) -> io::Result<ReplayServer> {
        let bind = || -> io::Result<TcpListener> {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            TcpListener::from_std(listener)
        };
        let (ws, http) = (bind()?, bind()?);
        let state = Arc::new(State {
            speed: if speed.is_finite() {
                speed.max(0.0)
            } else {
                1.0
            },
            repeat,
            next: AtomicUsize::new(0),
            clock: AtomicU64::new(recording.start.to_bits()),
            recording,
            sent: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            missing: AtomicU64::new(0),
        });
        let (ws_addr, http_addr) = (ws.local_addr()?, http.local_addr()?);
        let tasks = vec![
            tokio::spawn(accept(ws, state.clone(), |state, tcp| {
                tokio::spawn(serve_websocket(state, tcp));
            })),
            tokio::spawn(accept(http, state.clone(), |state, tcp| {
                tokio::spawn(serve_http(state, tcp));
            })),
        ];
        Ok(ReplayServer {
            ws: ws_addr,
            http: http_addr,
            state,
            tasks,
        })
    }

    /// The WebSocket URL to give the adapter (`ws://127.0.0.1:PORT`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws)
    }

    /// The REST base URL to give the adapter (`http://127.0.0.1:PORT`).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn stats(&self) -> ReplayStats {
        ReplayStats {
            connections: self.state.next.load(Ordering::Relaxed),
            sent: self.state.sent.load(Ordering::Relaxed),
            answered: self.state.answered.load(Ordering::Relaxed),
            missing: self.state.missing.load(Ordering::Relaxed),
        }
    }

    /// Stops listening (connections already playing go on to their end).
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept(listener: TcpListener, state: Arc<State>, serve: fn(Arc<State>, TcpStream)) {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                serve(state.clone(), tcp);
            }
            Err(error) => {
                log::warn!("replay: accept: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn serve_websocket(state: Arc<State>, tcp: TcpStream) {
    let config = WebSocketConfig::default().max_message_size(Some(16 << 20));
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
        return;
    };
    let n = state.next.fetch_add(1, Ordering::Relaxed);
    let count = state.recording.connections.len();
    let index = match (n < count, state.repeat && count > 0) {
        (true, _) => Some(n),
        (false, true) => Some(n % count),
        (false, false) => None,
    };
    if let Some(index) = index {
        if !play(&mut ws, &state, index).await {
            return;
        }
        if index + 1 < count || state.repeat {
            // The recorded connection ended here (or the recording starts over).
            let _ = ws.close(None).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
            return;
        }
    }
    // The end of the recording: silent until the adapter goes.
    while let Some(Ok(_)) = ws.next().await {}
}

/// Plays recorded connection `index`; `false` when the adapter went away meanwhile.
async fn play(ws: &mut Socket, state: &State, index: usize) -> bool {
    let recording = &state.recording;
    let connection = &recording.connections[index];
    state.set_clock(connection.at);
    let start = tokio::time::Instant::now();
    let first = connection.messages.first().map_or(0.0, |m| m.0);
    for (at, range) in &connection.messages {
        if state.speed > 0.0 {
            let wait = ((at - first) / state.speed).clamp(0.0, MAX_WAIT_SECS);
            let due = start + Duration::from_secs_f64(wait);
            loop {
                tokio::select! {
                    biased;
                    incoming = ws.next() => match incoming {
                        // The adapter's subscriptions and pings: not answered.
                        Some(Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
                    },
                    () = tokio::time::sleep_until(due) => break,
                }
            }
        }
        state.set_clock(*at);
        let message = &recording.texts[0][range.clone()];
        if ws.send(Message::text(message)).await.is_err() {
            return false;
        }
        state.sent.fetch_add(1, Ordering::Relaxed);
    }
    true
}

async fn serve_http(state: Arc<State>, mut tcp: TcpStream) {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Some(head);
            }
            if head.len() > MAX_REQUEST_HEAD {
                return None;
            }
        }
    })
    .await;
    let Ok(Some(head)) = head else {
        return;
    };
    let head = String::from_utf8_lossy(&head);
    let mut words = head.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (words.next().unwrap_or_default(), words.next());
    let (status, body) = match (method, target) {
        ("GET", Some(target)) => match state.recording.answer(target, state.clock()) {
            Some(body) => {
                state.answered.fetch_add(1, Ordering::Relaxed);
                ("200 OK", body.to_owned())
            }
            None => {
                state.missing.fetch_add(1, Ordering::Relaxed);
                log::debug!("replay: no recorded answer to GET {target}");
                (
                    "404 Not Found",
                    format!("{{\"error\":\"the recording has no answer to GET {target}\"}}"),
                )
            }
        },
        _ => (
            "405 Method Not Allowed",
            "{\"error\":\"a replay answers GET only\"}".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if tcp.write_all(response.as_bytes()).await.is_ok()
        && tcp.write_all(body.as_bytes()).await.is_ok()
    {
        let _ = tcp.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::adapters::capture::{Footer, Header};

    fn parse(text: &str, exchange: &str) -> Result<Recording, ReplayError> {
        Recording::parse(("rec".into(), text.into()), Vec::new(), exchange)
    }

    /// A recording of one connection: `count` messages evenly over `span` seconds.
    fn even(count: usize, span: f64) -> String {
        let mut text = format!("{}\nwss://x/ws <-> 100.0\n", Header::line("binance", 100.0));
        text.push_str("wss://x/ws <- 100.1: {\"subscribe\":1}\n");
        for i in 0..count {
            let at = 100.5 + span * i as f64 / (count - 1) as f64;
            text.push_str(&format!("{at:.6}: {{\"n\":{i}}}\n"));
        }
        text.push_str(
            &Footer {
                records: count as u64 + 2,
                dropped: 0,
                ended: 200.0,
            }
            .line(),
        );
        text.push('\n');
        text
    }

    #[test]
    fn settings_are_checked() {
        let ok = ReplaySettings::default();
        assert!(ok.check().is_ok());
        for (settings, expected) in [
            (
                ReplaySettings {
                    speed: -1.0,
                    ..ok.clone()
                },
                "speed",
            ),
            (
                ReplaySettings {
                    speed: f64::NAN,
                    ..ok.clone()
                },
                "speed",
            ),
            (
                ReplaySettings {
                    exchange: "bitmex".into(),
                    ..ok.clone()
                },
                "bitmex",
            ),
            (
                ReplaySettings {
                    enabled: true,
                    ..ok.clone()
                },
                "file",
            ),
        ] {
            let error = settings.check().unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn request_keys_ignore_scheme_host_and_parameter_order() {
        assert_eq!(
            request_key("https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000"),
            request_key("/api/v3/depth?limit=1000&symbol=NKNUSDT")
        );
        assert_eq!(
            request_key("https://api.pro.coinbase.com/products"),
            "/products"
        );
        assert_eq!(request_key("http://h"), "/");
        assert_eq!(request_key("http://h?x=1#f"), "/?x=1");
        assert_ne!(request_key("/a?x=1"), request_key("/a?x=2"));
        // A URL in the query is no scheme (found by the `recording` fuzz target).
        assert_eq!(
            request_key("https://h/a?next=https://x/y"),
            request_key("/a?next=https://x/y")
        );
    }

    #[test]
    fn a_recording_and_its_exchange() {
        let recording = parse(&even(3, 1.0), "").unwrap();
        assert_eq!(recording.exchange(), "binance");
        assert_eq!(recording.connections(), 1);
        assert_eq!(
            recording.messages().collect::<Vec<_>>(),
            ["{\"n\":0}", "{\"n\":1}", "{\"n\":2}"]
        );
        assert!((recording.span() - 1.0).abs() < 1e-6);
        assert!(recording.warnings.is_empty(), "{:?}", recording.warnings);
        // The configured exchange must be the recorded one.
        let error = parse(&even(3, 1.0), "kraken").unwrap_err().to_string();
        assert!(
            error.contains("recording of binance, not of kraken"),
            "{error}"
        );
        // A capture without a header needs it configured.
        let capture = "wss://a <-> 1.0\n1.5: {}\n";
        let error = parse(capture, "").unwrap_err().to_string();
        assert!(error.contains("set replay.exchange"), "{error}");
        assert_eq!(parse(capture, "coinbase").unwrap().exchange(), "coinbase");
    }

    #[test]
    fn bad_recordings_are_refused_with_the_line() {
        let text = "wss://a <-> 1.0\n1.5: {}\nthis is no record\n2.0: {}\n";
        let error = parse(text, "kraken").unwrap_err().to_string();
        assert_eq!(error, "replay: rec line 3: not a capture record");
        let error = parse("", "kraken").unwrap_err().to_string();
        assert_eq!(error, "replay: rec holds no record");
        // In an HTTP file too.
        let error = Recording::parse(
            ("rec".into(), "1.0: {}\n".into()),
            vec![("http".into(), "https://a/b -> x: {}\n".into())],
            "binance",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(error, "replay: http line 1: bad timestamp");
    }

    #[test]
    fn a_cut_short_recording_is_replayed_with_warnings() {
        let full = even(3, 1.0);
        // Cut in the middle of the footer: no newline at the end, no end line.
        let cut = &full[..full.len() - 10];
        let recording = parse(cut, "").unwrap();
        assert_eq!(recording.messages().count(), 3);
        let warnings = recording.warnings.join("\n");
        assert!(warnings.contains("rec line 7 has no newline"), "{warnings}");
        assert!(warnings.contains("no end line"), "{warnings}");
        // Cut in a message: that message is left out.
        let cut = &full[..full.find("{\"n\":2}").unwrap() + 3];
        let recording = parse(cut, "").unwrap();
        assert_eq!(recording.messages().count(), 2);
        // Records lost while recording are told.
        let holes = full.replace("dropped=0", "dropped=4");
        let recording = parse(&holes, "").unwrap();
        assert_eq!(recording.dropped, 4);
        assert!(recording
            .warnings
            .join("\n")
            .contains("4 records were lost"));
    }

    #[test]
    fn answers_follow_the_replay_position() {
        let text = "wss://a <-> 10.0\n\
                    https://h/depth?s=A -> 11.0: first\n\
                    https://h/depth?s=A -> 20.0: second\n\
                    11.5: {}\n";
        let recording = parse(text, "binance").unwrap();
        assert_eq!(recording.answer("/depth?s=A", 10.0), Some("first"));
        assert_eq!(recording.answer("/depth?s=A", 15.0), Some("second"));
        assert_eq!(recording.answer("/depth?s=A", 25.0), Some("second"));
        assert_eq!(recording.answer("/depth?s=B", 10.0), None);
    }

    /// Connects to the replay and returns the messages of the connection with when each came,
    /// until `count` came.
    async fn receive(url: &str, count: usize) -> Vec<(Instant, String)> {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        ws.send(Message::text("{\"subscribe\":\"ignored\"}"))
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < count {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => got.push((Instant::now(), text.to_string())),
                Ok(Some(Ok(_))) => {}
                other => panic!("after {} messages: {other:?}", got.len()),
            }
        }
        got
    }

    async fn played_span(speed: f64) -> f64 {
        let recording = Arc::new(parse(&even(11, 1.0), "").unwrap());
        let server = ReplayServer::start(recording, speed, false).unwrap();
        let got = receive(&server.ws_url(), 11).await;
        let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
        let expected: Vec<String> = (0..11).map(|i| format!("{{\"n\":{i}}}")).collect();
        assert_eq!(texts, expected);
        server.stop();
        (got[10].0 - got[0].0).as_secs_f64()
    }

    #[tokio::test]
    async fn pacing_follows_the_speed() {
        // The recording spans 1 s.
        let real_time = played_span(1.0).await;
        assert!((0.9..1.6).contains(&real_time), "speed 1: {real_time}s");
        let ten_times = played_span(10.0).await;
        assert!((0.09..0.5).contains(&ten_times), "speed 10: {ten_times}s");
        let full = played_span(0.0).await;
        assert!(full < 0.09, "speed 0: {full}s");
    }

    async fn get(base: &str, target: &str) -> (u16, String) {
        let mut tcp = TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
        (status, body)
    }

    #[tokio::test]
    async fn http_answers_and_the_end_of_the_recording() {
        let text = "wss://a <-> 10.0\n\
                    https://h/markets -> 10.5: [\"m\"]\n\
                    11.0: {\"n\":1}\n\
                    wss://a <-> 12.0\n\
                    12.5: {\"n\":2}\n";
        let recording = Arc::new(
            Recording::parse(
                ("rec".into(), text.into()),
                vec![(
                    "more".into(),
                    "https://x/depth?b=2&a=1 -> 11.0: {\"d\":1}\n".into(),
                )],
                "binance",
            )
            .unwrap(),
        );
        let server = ReplayServer::start(recording, 0.0, false).unwrap();
        assert_eq!(
            get(&server.http_url(), "/markets").await,
            (200, "[\"m\"]".into())
        );
        assert_eq!(
            get(&server.http_url(), "/depth?a=1&b=2").await,
            (200, "{\"d\":1}".into())
        );
        assert_eq!(get(&server.http_url(), "/nothing").await.0, 404);
        // The first connection plays the first recorded one and is closed where it ended.
        let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
            .await
            .unwrap();
        let first = ws.next().await.unwrap().unwrap();
        assert_eq!(first, Message::text("{\"n\":1}"));
        assert!(matches!(
            ws.next().await,
            Some(Ok(Message::Close(_))) | None
        ));
        // The second plays the second, and then stays open and silent.
        let got = receive(&server.ws_url(), 1).await;
        assert_eq!(got[0].1, "{\"n\":2}");
        let (mut third, _) = tokio_tungstenite::connect_async(server.ws_url())
            .await
            .unwrap();
        let silent = tokio::time::timeout(Duration::from_millis(300), third.next()).await;
        assert!(silent.is_err(), "after the recording: {silent:?}");
        let stats = server.stats();
        assert_eq!(
            (stats.connections, stats.sent, stats.answered, stats.missing),
            (3, 2, 2, 1)
        );
    }

    #[tokio::test]
    async fn with_loop_the_recording_starts_over() {
        let recording = Arc::new(parse("wss://a <-> 1.0\n1.5: {\"n\":1}\n", "kraken").unwrap());
        let server = ReplayServer::start(recording, 0.0, true).unwrap();
        for _ in 0..3 {
            let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
                .await
                .unwrap();
            assert_eq!(
                ws.next().await.unwrap().unwrap(),
                Message::text("{\"n\":1}")
            );
            assert!(matches!(
                ws.next().await,
                Some(Ok(Message::Close(_))) | None
            ));
        }
    }
}
