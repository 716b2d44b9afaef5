//! The fiat rates adapter ("financial messages"): publishes ECB euro reference rates, and their
//! crosses, on channels `rates:ecb:<BASE>/<QUOTE>`, and answers [`FetchRate`] and [`FetchRates`].
//!
//! Crypto markets quote in USD or USDT; to show a price in a user's own currency a client needs
//! fiat rates, and the ECB's daily file is the free, authoritative source (see
//! [`rpc_crypto_proto::rates`] for the file, the rate convention and the message fields).
//!
//! # Sources ([`RatesSource`])
//! - `simulated` (the default): offline and reproducible. The walk starts from a real ECB file
//!   embedded in the binary (8 March 2017), dated today (UTC), and steps every
//!   `simulated_interval`, so a broker without network still shows moving, plausible rates.
//! - `ecb`: fetches `url` at start and every `fetch_interval`. A failure is logged (once per
//!   streak of failures) and announced on `notifications` with status `down`; the fetch is retried
//!   after 1 s, doubling up to `fetch_interval`; the first success after that announces `up`.
//! - `off`: no rates; [`FetchRate`] answers `ExchangeNotAvailable`.
//!
//! # Demand
//! The lead registers the adapter with the Router for exchange `ecb`; the Router then sends
//! [`Demand::Start`] when a `rates:ecb:...` channel gets its first subscriber and [`Demand::Stop`]
//! after its last one left. Every new set of rates (a fetch, a simulated step) is published on
//! each channel demanded; a Start also gets the channel's current rate at once, so a new
//! subscriber does not wait up to an hour for its first message. Only the Router decides what is
//! demanded, so what the adapter keeps stays bounded by it.
//!
//! # HTTP
//! The ECB source needs one GET of a small file now and then, so it has its own small HTTP/1.1
//! client over tokio (plain `http://`, or `https://` through rustls on ring with Mozilla's roots
//! from `webpki-roots`) rather than a full HTTP stack. It asks `Connection: close`, one request
//! per connection, so the body ends at `Content-Length`, at the end of a chunked body, or at the
//! end of the connection. Every fetch has a 10 s deadline and a 1 MiB body limit; redirects are
//! not followed (a 3xx is a failure, like any status but 200), and responses are not compressed
//! (`Accept-Encoding: identity`). Nothing the server sends can make it panic.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, error, info, warn};
use rpc_crypto_proto::ccxt::ErrorKind;
use rpc_crypto_proto::rates::{
    parse_channel, parse_ecb_daily, EcbRates, RatesError, SimulatedRates, EUR,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::adapters::contract::ExchangeError;
use crate::channel::NOTIFICATIONS;
use crate::router::{Demand, Publish};
use crate::settings::duration;

/// The exchange part of the adapter's channels (`rates:ecb:EUR/USD`) and of its notifications;
/// the name to register it under with the Router.
pub const EXCHANGE: &str = "ecb";

/// The ECB's daily reference rates file.
pub const DEFAULT_URL: &str = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml";

/// How long one fetch (connect, TLS, request and the whole response) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response body accepted (the ECB file is about 1.5 KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// The largest response header accepted.
const MAX_HEAD: usize = 64 * 1024;

/// The largest chunked body, with its framing, accepted: framing may double a body of tiny chunks.
const MAX_CHUNKED: usize = 2 * MAX_BODY + MAX_HEAD;

/// How much to read at a time.
const READ_CHUNK: usize = 16 * 1024;

/// The first retry delay after a failed fetch; it doubles with each failure in a row.
const RETRY_START: Duration = Duration::from_secs(1);

/// A floor under the configured intervals: a zero would spin (and panics tokio's intervals).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The longest failure reason put in a `down` notification.
const MAX_REASON: usize = 256;

/// The ECB file the simulated source starts from: real rates, so simulated crosses look right.
const SEED_XML: &[u8] = include_bytes!("rates_seed.xml");

/// Where the fiat rates come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RatesSource {
    /// Offline: a seeded random walk from embedded ECB rates, dated today.
    #[default]
    Simulated,
    /// The ECB daily file at `url`, fetched every `fetch_interval`.
    Ecb,
    /// No rates at all.
    Off,
}

/// The fiat rates adapter's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RatesSettings {
    /// `"simulated"` (default), `"ecb"` or `"off"`.
    pub source: RatesSource,
    /// The ECB daily file (`http://` or `https://`), for the `ecb` source.
    pub url: String,
    /// How often the `ecb` source fetches `url` (the ECB publishes once per working day), and
    /// the longest delay between retries after failures.
    #[serde(with = "duration")]
    pub fetch_interval: Duration,
    /// How often the `simulated` source moves its rates.
    #[serde(with = "duration")]
    pub simulated_interval: Duration,
    /// The seed of the `simulated` source: the same seed gives the same walk.
    pub seed: u64,
}

impl Default for RatesSettings {
    fn default() -> Self {
        RatesSettings {
            source: RatesSource::Simulated,
            url: DEFAULT_URL.to_owned(),
            fetch_interval: Duration::from_secs(3600),
            simulated_interval: Duration::from_secs(1),
            seed: 1,
        }
    }
}

/// One rate as its channel's message (JSON, see [`EcbRates::rate_message`]): how many `quote`
/// buy 1 `base`. Fails with `BadSymbol` for a pair without a rate and `ExchangeNotAvailable`
/// while no rates are loaded.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "Result<Bytes, ExchangeError>")]
pub struct FetchRate {
    pub base: String,
    pub quote: String,
}

/// Every rate per EUR, EUR included (as 1): `{"base":"EUR","date":"2017-03-08","timestamp":..,
/// "datetime":..,"source":"ecb","rates":{"EUR":1.0,"USD":1.0556,...}}`. Fails with
/// `ExchangeNotAvailable` while no rates are loaded.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "Result<Bytes, ExchangeError>")]
pub struct FetchRates;

/// What the adapter last announced on `notifications`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Unknown,
    Up,
    Down,
}

/// The fiat rates adapter; see the module doc.
pub struct RatesAdapter {
    settings: RatesSettings,
    publish: Recipient<Publish>,
    rates: Option<EcbRates>,
    sim: Option<SimulatedRates>,
    /// Channels the Router demanded, each with whether its lack of a rate was logged already.
    demanded: HashMap<String, bool>,
    health: Health,
    /// Failed fetches in a row.
    failures: u32,
}

impl RatesAdapter {
    /// An adapter publishing through `publish` (the Router).
    pub fn new(settings: RatesSettings, publish: Recipient<Publish>) -> Self {
        RatesAdapter {
            settings,
            publish,
            rates: None,
            sim: None,
            demanded: HashMap::new(),
            health: Health::Unknown,
            failures: 0,
        }
    }

    fn fetch_interval(&self) -> Duration {
        self.settings.fetch_interval.max(MIN_INTERVAL)
    }

    /// Takes a new set of rates: published on every demanded channel, and `up` announced if it
    /// was not.
    fn set_rates(&mut self, rates: EcbRates) {
        for (channel, warned) in &mut self.demanded {
            if let Some(data) = message_for(&rates, channel, warned) {
                self.publish.do_send(Publish {
                    channel: channel.clone(),
                    data,
                });
            }
        }
        self.rates = Some(rates);
        if self.health != Health::Up {
            self.health = Health::Up;
            info!("fiat rates ({}) up", source_name(self.settings.source));
            self.notify(json!({"type": "adapter", "exchange": EXCHANGE, "status": "up"}));
        }
    }

    fn notify(&self, notification: Value) {
        self.publish.do_send(Publish {
            channel: NOTIFICATIONS.to_owned(),
            data: Bytes::from(notification.to_string()),
        });
    }

    fn start_simulation(&mut self, ctx: &mut Context<Self>) {
        let seed = match parse_ecb_daily(SEED_XML).and_then(|r| r.with_date(&utc_today())) {
            Ok(seed) => seed,
            Err(e) => {
                // Only a broken build gets here: the seed file is tested.
                error!("fiat rates: the embedded seed rates do not parse: {e}");
                return;
            }
        };
        self.sim = Some(SimulatedRates::new(seed.clone(), self.settings.seed));
        self.set_rates(seed);
        let every = self.settings.simulated_interval.max(MIN_INTERVAL);
        ctx.run_interval(every, |act, _| act.step());
    }

    fn step(&mut self) {
        let Some(sim) = &mut self.sim else { return };
        // Re-dated at each step: a broker running past midnight shows the new day.
        match sim.step().with_date(&utc_today()) {
            Ok(rates) => self.set_rates(rates),
            Err(e) => error!("fiat rates: simulated step: {e}"),
        }
    }

    fn fetch(&mut self, ctx: &mut Context<Self>) {
        let url = self.settings.url.clone();
        let fetch = async move {
            let body = http_get(&url, FETCH_TIMEOUT).await?;
            Ok(parse_ecb_daily(&body)?)
        };
        ctx.spawn(
            fetch
                .into_actor(self)
                .map(|result, act, ctx| act.fetched(result, ctx)),
        );
    }

    fn fetched(&mut self, result: Result<EcbRates, FetchError>, ctx: &mut Context<Self>) {
        let next = match result {
            Ok(rates) => {
                if self.failures > 0 {
                    info!(
                        "fiat rates: {} fetched again after {} failures",
                        self.settings.url, self.failures
                    );
                }
                debug!("fiat rates: {} rates of {}", rates.len(), rates.date());
                self.failures = 0;
                self.set_rates(rates);
                self.fetch_interval()
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let retry = backoff(self.failures, self.fetch_interval());
                if self.health == Health::Down {
                    debug!("fiat rates: {} still failing: {e}", self.settings.url);
                } else {
                    warn!(
                        "fiat rates: fetching {} failed: {e} (retrying from {retry:?}, logged once until it works)",
                        self.settings.url
                    );
                    self.health = Health::Down;
                    let mut reason = e.to_string();
                    truncate(&mut reason, MAX_REASON);
                    self.notify(json!({
                        "type": "adapter", "exchange": EXCHANGE, "status": "down", "reason": reason,
                    }));
                }
                retry
            }
        };
        ctx.run_later(next, |act, ctx| act.fetch(ctx));
    }
}

impl Actor for RatesAdapter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.settings.source {
            RatesSource::Simulated => self.start_simulation(ctx),
            RatesSource::Ecb => self.fetch(ctx),
            RatesSource::Off => info!("fiat rates off"),
        }
    }
}

impl Handler<Demand> for RatesAdapter {
    type Result = ();

    fn handle(&mut self, msg: Demand, _: &mut Context<Self>) {
        match msg {
            Demand::Start { channel } => {
                let mut warned = false;
                if let Some(rates) = &self.rates {
                    if let Some(data) = message_for(rates, &channel, &mut warned) {
                        self.publish.do_send(Publish {
                            channel: channel.clone(),
                            data,
                        });
                    }
                }
                self.demanded.insert(channel, warned);
            }
            Demand::Stop { channel } => {
                self.demanded.remove(&channel);
            }
        }
    }
}

impl Handler<FetchRate> for RatesAdapter {
    type Result = Result<Bytes, ExchangeError>;

    fn handle(&mut self, msg: FetchRate, _: &mut Context<Self>) -> Self::Result {
        let rates = self.loaded()?;
        rates
            .rate_message(&msg.base, &msg.quote)
            .map(|m| Bytes::from(m.to_string()))
            .ok_or_else(|| {
                ExchangeError::new(
                    ErrorKind::BadSymbol,
                    format!("no ECB rate for {}/{}", msg.base, msg.quote),
                )
            })
    }
}

impl Handler<FetchRates> for RatesAdapter {
    type Result = Result<Bytes, ExchangeError>;

    fn handle(&mut self, _: FetchRates, _: &mut Context<Self>) -> Self::Result {
        let rates = self.loaded()?;
        let mut all = Map::new();
        all.insert(EUR.to_owned(), Value::from(1.0));
        for rate in rates.rates() {
            all.insert(rate.currency.clone(), Value::from(rate.value));
        }
        let message = json!({
            "base": EUR,
            "date": rates.date(),
            "timestamp": rates.timestamp(),
            "datetime": rates.datetime(),
            "source": EXCHANGE,
            "rates": all,
        });
        Ok(Bytes::from(message.to_string()))
    }
}

impl RatesAdapter {
    fn loaded(&self) -> Result<&EcbRates, ExchangeError> {
        self.rates.as_ref().ok_or_else(|| {
            let why = match self.settings.source {
                RatesSource::Off => "fiat rates are off",
                _ => "no fiat rates loaded yet",
            };
            ExchangeError::new(ErrorKind::ExchangeNotAvailable, why)
        })
    }
}

/// The message for `channel`, or `None` (logged once per demand, through `warned`) when the
/// channel names no pair with a rate.
fn message_for(rates: &EcbRates, channel: &str, warned: &mut bool) -> Option<Bytes> {
    let message = parse_channel(channel).and_then(|(base, quote)| rates.rate_message(base, quote));
    if message.is_none() && !*warned {
        *warned = true;
        warn!("fiat rates: channel {channel:?} is demanded but names no known ECB pair");
    }
    message.map(|m| Bytes::from(m.to_string()))
}

fn source_name(source: RatesSource) -> &'static str {
    match source {
        RatesSource::Simulated => "simulated",
        RatesSource::Ecb => "ecb",
        RatesSource::Off => "off",
    }
}

/// The delay before retry number `failures` (1-based): 1 s, 2 s, 4 s... at most `max`.
fn backoff(failures: u32, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    RETRY_START.saturating_mul(1 << doublings).min(max)
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Today's UTC date, `YYYY-MM-DD`.
fn utc_today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_date(secs)
}

/// The UTC date of a Unix time, `YYYY-MM-DD` (Howard Hinnant's `civil_from_days`).
fn utc_date(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

// ---------------------------------------------------------------------------------------------
// The HTTP client.

/// Why a fetch failed; its text is the `reason` of a `down` notification.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("bad url: {0}")]
    Url(&'static str),
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("not an ECB rates file: {0}")]
    Rates(#[from] RatesError),
}

/// An `http://` or `https://` URL, split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    tls: bool,
    /// Without brackets for an IPv6 address.
    host: String,
    port: u16,
    /// The path with its query, starting with `/`.
    target: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, FetchError> {
        let (tls, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
            (false, rest)
        } else {
            return Err(FetchError::Url("only http:// and https:// are supported"));
        };
        // The fragment is the client's own; it is never sent.
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, target) = match rest.find(['/', '?']) {
            Some(at) if rest.as_bytes()[at] == b'?' => (&rest[..at], format!("/{}", &rest[at..])),
            Some(at) => (&rest[..at], rest[at..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        // Control characters and spaces would break the request line (or inject headers).
        if !target.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FetchError::Url(
                "the path must be printable ASCII without spaces",
            ));
        }
        if authority.contains('@') {
            return Err(FetchError::Url("credentials in the URL are not supported"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or(FetchError::Url("unclosed [ in the host"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or(FetchError::Url("junk after the IPv6 address"))?,
                ),
            };
            (host, port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            None | Some("") => default_port,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or(FetchError::Url("bad port"))?,
        };
        let host_ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':');
        if host.is_empty() || !host.bytes().all(host_ok) {
            return Err(FetchError::Url("bad host"));
        }
        Ok(Url {
            tls,
            host: host.to_owned(),
            port,
            target,
        })
    }

    /// The `Host` header's value: the port only when not the scheme's default.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    fn request(&self) -> String {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rpc-crypto/{}\r\n\
             Accept: application/xml, text/xml, */*\r\nAccept-Encoding: identity\r\n\
             Connection: close\r\n\r\n",
            self.target,
            self.host_header(),
            env!("CARGO_PKG_VERSION"),
        )
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// GETs `url` and returns the body of a 200 answer, all within `timeout`.
async fn http_get(url: &str, timeout: Duration) -> Result<Vec<u8>, FetchError> {
    let url = Url::parse(url)?;
    let get = async {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|source| FetchError::Connect {
                host: url.host.clone(),
                port: url.port,
                source,
            })?;
        if url.tls {
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|_| FetchError::Url("bad host for TLS"))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config()?)
                .connect(name, tcp)
                .await
                .map_err(|e| FetchError::Tls(e.to_string()))?;
            exchange(tls, url.request().as_bytes()).await
        } else {
            exchange(tcp, url.request().as_bytes()).await
        }
    };
    tokio::time::timeout(timeout, get)
        .await
        .map_err(|_| FetchError::Timeout(timeout))?
}

/// The TLS client configuration, built once: ring (as the server's TLS), Mozilla's roots.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, FetchError> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let roots: rustls::RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
    // An explicit provider: the process-wide default may be unset, or set by someone else.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Sends `request` and reads the answer's body (status 200 only).
async fn exchange<S>(mut stream: S, request: &[u8]) -> Result<Vec<u8>, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut reader = ResponseReader::default();
    let mut buf = Vec::new();
    loop {
        buf.reserve(READ_CHUNK);
        let eof = stream.read_buf(&mut buf).await? == 0;
        if let Some(body) = reader.advance(&mut buf, eof)? {
            return Ok(body);
        }
        if eof {
            // `advance` either finishes or fails at the end of the stream; not reached.
            return Err(FetchError::Malformed("truncated response"));
        }
    }
}

/// Reads a response as it arrives, without rescanning what was already seen (a server sending
/// a byte at a time must not cost quadratic time).
#[derive(Debug, Default)]
struct ResponseReader {
    /// Where the search for the header's end resumes.
    scanned: usize,
    /// Where the body starts, and how it ends, once the header is read.
    head: Option<(usize, Framing)>,
}

impl ResponseReader {
    /// Looks at everything received so far (`buf`; `eof`: the server closed the connection), and
    /// returns the body once complete. Informational (1xx) answers are dropped from `buf`.
    fn advance(&mut self, buf: &mut Vec<u8>, eof: bool) -> Result<Option<Vec<u8>>, FetchError> {
        let (start, framing) = loop {
            if let Some(head) = self.head {
                break head;
            }
            let from = self.scanned.saturating_sub(3);
            let Some(at) = find(&buf[from..], b"\r\n\r\n") else {
                self.scanned = buf.len();
                if buf.len() > MAX_HEAD {
                    return Err(FetchError::TooLarge(MAX_HEAD));
                }
                if eof {
                    return Err(FetchError::Malformed("the response ends inside its header"));
                }
                return Ok(None);
            };
            let end = from + at + 4;
            if end > MAX_HEAD {
                return Err(FetchError::TooLarge(MAX_HEAD));
            }
            let (status, framing) = parse_head(&buf[..end - 4])?;
            if (100..200).contains(&status) {
                // 100 Continue and the like: the real answer follows.
                buf.drain(..end);
                self.scanned = 0;
                continue;
            }
            if status != 200 {
                return Err(FetchError::Status(status));
            }
            self.head = Some((end, framing));
        };
        let body = &buf[start..];
        match framing {
            Framing::Length(len) => {
                if len > MAX_BODY {
                    return Err(FetchError::TooLarge(MAX_BODY));
                }
                if body.len() >= len {
                    return Ok(Some(body[..len].to_vec()));
                }
                if eof {
                    return Err(FetchError::Malformed(
                        "the body is shorter than Content-Length",
                    ));
                }
            }
            Framing::Chunked => {
                if body.len() > MAX_CHUNKED {
                    return Err(FetchError::TooLarge(MAX_BODY));
                }
                // The last chunk without trailers ends so; checking only then keeps it linear.
                if eof || body.ends_with(b"0\r\n\r\n") {
                    if let Some(decoded) = decode_chunked(body)? {
                        return Ok(Some(decoded));
                    }
                    if eof {
                        return Err(FetchError::Malformed("truncated chunked body"));
                    }
                }
            }
            Framing::UntilClose => {
                if body.len() > MAX_BODY {
                    return Err(FetchError::TooLarge(MAX_BODY));
                }
                if eof {
                    return Ok(Some(body.to_vec()));
                }
            }
        }
        Ok(None)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The status and body framing of a response header (without its final blank line).
fn parse_head(head: &[u8]) -> Result<(u16, Framing), FetchError> {
    let head = std::str::from_utf8(head).map_err(|_| FetchError::Malformed("header not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(FetchError::Malformed("not an HTTP/1.x status line"));
    }
    let code = parts.next().unwrap_or_default();
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|s| code.len() == 3 && (100..600).contains(s))
        .ok_or(FetchError::Malformed("bad status code"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(FetchError::Malformed("header line without a colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = value
                .parse::<usize>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(FetchError::Malformed("bad Content-Length"))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(FetchError::Malformed("conflicting Content-Length"));
            }
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only chunked is understood; other codings (gzip) were not asked for.
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            if last.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if !last.eq_ignore_ascii_case("identity") {
                return Err(FetchError::Malformed("unsupported Transfer-Encoding"));
            }
        } else if name.eq_ignore_ascii_case("content-encoding")
            && !value.eq_ignore_ascii_case("identity")
        {
            return Err(FetchError::Malformed("unsupported Content-Encoding"));
        }
    }
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3).
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(len)) => Framing::Length(len),
        (false, None) => Framing::UntilClose,
    };
    Ok((status, framing))
}

/// A whole chunked body decoded; `None` while incomplete.
fn decode_chunked(mut data: &[u8]) -> Result<Option<Vec<u8>>, FetchError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let line = &data[..line_end];
        // Chunk extensions (`;name=value`) are allowed and ignored.
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 8)
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or(FetchError::Malformed("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailer fields until a blank line; their content is not needed.
            loop {
                let Some(end) = find(data, b"\r\n") else {
                    return Ok(None);
                };
                if end == 0 {
                    return Ok(Some(body));
                }
                data = &data[end + 2..];
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(FetchError::TooLarge(MAX_BODY));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        if &data[size..size + 2] != b"\r\n" {
            return Err(FetchError::Malformed("chunk not followed by CRLF"));
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU8, Ordering};

    use serde_json::value::RawValue;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tokio::time::timeout;

    use super::*;

    /// Stands in for the Router: every publication goes to the test.
    struct FakeRouter(mpsc::UnboundedSender<(String, Value)>);

    impl Actor for FakeRouter {
        type Context = Context<Self>;
    }

    impl Handler<Publish> for FakeRouter {
        type Result = ();

        fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
            let data = serde_json::from_slice(&msg.data).expect("publications are JSON");
            let _ = self.0.send((msg.channel, data));
        }
    }

    /// Answered once every publication sent before it is recorded (a mailbox is FIFO).
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Flush;

    impl Handler<Flush> for FakeRouter {
        type Result = ();

        fn handle(&mut self, _: Flush, _: &mut Context<Self>) {}
    }

    /// What the fake Router recorded.
    struct Publications {
        rx: mpsc::UnboundedReceiver<(String, Value)>,
        router: Addr<FakeRouter>,
    }

    fn start(settings: RatesSettings) -> (Addr<RatesAdapter>, Publications) {
        let (tx, rx) = mpsc::unbounded_channel();
        let router = FakeRouter(tx).start();
        let adapter = RatesAdapter::new(settings, router.clone().recipient()).start();
        (adapter, Publications { rx, router })
    }

    /// The next publication, within 5 s.
    async fn next(p: &mut Publications) -> (String, Value) {
        timeout(Duration::from_secs(5), p.rx.recv())
            .await
            .expect("a publication in time")
            .expect("the router lives")
    }

    /// The next publication on `channel`, skipping others.
    async fn next_on(p: &mut Publications, channel: &str) -> Value {
        loop {
            let (c, data) = next(p).await;
            if c == channel {
                return data;
            }
        }
    }

    /// Everything published so far (by messages the adapter has handled).
    async fn drain(p: &mut Publications) -> Vec<(String, Value)> {
        p.router.send(Flush).await.unwrap();
        std::iter::from_fn(|| p.rx.try_recv().ok()).collect()
    }

    fn seed() -> EcbRates {
        parse_ecb_daily(SEED_XML).unwrap()
    }

    fn simulated() -> RatesSettings {
        RatesSettings {
            simulated_interval: Duration::from_millis(50),
            ..RatesSettings::default()
        }
    }

    fn start_demand(channel: &str) -> Demand {
        Demand::Start {
            channel: channel.into(),
        }
    }

    fn pair(base: &str, quote: &str) -> FetchRate {
        FetchRate {
            base: base.into(),
            quote: quote.into(),
        }
    }

    /// The `rate` of a message exactly as written, read back with std's correctly rounded parser.
    fn exact_rate(message: &[u8]) -> f64 {
        #[derive(Deserialize)]
        struct Rate<'a> {
            #[serde(borrow)]
            rate: &'a RawValue,
        }
        let rate: Rate = serde_json::from_slice(message).unwrap();
        rate.rate.get().parse().unwrap()
    }

    #[test]
    fn rates_settings_defaults_and_parse() {
        let d = RatesSettings::default();
        assert_eq!(d.source, RatesSource::Simulated);
        assert_eq!(d.url, DEFAULT_URL);
        assert_eq!(d.fetch_interval, Duration::from_secs(3600));
        assert_eq!(d.simulated_interval, Duration::from_secs(1));
        let s: RatesSettings = serde_json::from_value(json!({
            "source": "ecb", "url": "http://x/y", "fetch_interval": "30m",
            "simulated_interval": "250ms", "seed": 7,
        }))
        .unwrap();
        assert_eq!(s.source, RatesSource::Ecb);
        assert_eq!(s.fetch_interval, Duration::from_secs(1800));
        assert_eq!(s.simulated_interval, Duration::from_millis(250));
        assert_eq!(s.seed, 7);
        let off: RatesSettings = serde_json::from_value(json!({"source": "off"})).unwrap();
        assert_eq!(off.source, RatesSource::Off);
        assert!(serde_json::from_value::<RatesSettings>(json!({"source": "ECB!"})).is_err());
        assert!(serde_json::from_value::<RatesSettings>(json!({"interval": "1s"})).is_err());
        let back: RatesSettings =
            serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn rates_seed_is_the_fixture() {
        let r = seed();
        assert_eq!(r.len(), 31);
        assert_eq!(r.date(), "2017-03-08");
        assert!(utc_today().len() == 10 && r.with_date(&utc_today()).is_ok());
    }

    #[test]
    fn rates_utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_488_985_200), "2017-03-08");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_709_251_199), "2024-02-29");
        assert_eq!(utc_date(1_709_251_200), "2024-03-01");
        assert_eq!(utc_date(4_102_444_800), "2100-01-01");
    }

    #[test]
    fn rates_backoff_doubles_up_to_the_interval() {
        let hour = Duration::from_secs(3600);
        let delays: Vec<u64> = (1..=14).map(|n| backoff(n, hour).as_secs()).collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]
        );
        assert_eq!(backoff(u32::MAX, hour), hour);
        let short = Duration::from_millis(200);
        assert_eq!(backoff(1, short), short);
    }

    #[test]
    fn rates_urls() {
        let u =
            Url::parse("https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml").unwrap();
        assert_eq!(
            u,
            Url {
                tls: true,
                host: "www.ecb.europa.eu".into(),
                port: 443,
                target: "/stats/eurofxref/eurofxref-daily.xml".into(),
            }
        );
        assert_eq!(u.host_header(), "www.ecb.europa.eu");
        let u = Url::parse("HTTP://127.0.0.1:8080?x=1#frag").unwrap();
        assert_eq!((u.tls, u.port, u.target.as_str()), (false, 8080, "/?x=1"));
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        let u = Url::parse("http://[::1]:9/a").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(u.host_header(), "[::1]:9");
        assert_eq!(Url::parse("http://h").unwrap().target, "/");
        let request = Url::parse("http://h:81/r.xml").unwrap().request();
        assert!(request.starts_with("GET /r.xml HTTP/1.1\r\nHost: h:81\r\n"));
        assert!(request.contains("\r\nConnection: close\r\n") && request.ends_with("\r\n\r\n"));
        for bad in [
            "ftp://h/x",
            "h/x",
            "http://",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "http://h:x/",
            "http://u:p@h/",
            "http://h/a b",
            "http://h/a\r\nX: y",
            "http://[::1/",
            "http://[::1]x/",
            "http://h\r\n/",
            "http://é/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Feeds `response` to a reader `step` bytes at a time, then closes.
    fn read_in_steps(response: &[u8], step: usize) -> Result<Vec<u8>, FetchError> {
        let mut reader = ResponseReader::default();
        let mut buf = Vec::new();
        for piece in response.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            if let Some(body) = reader.advance(&mut buf, false)? {
                return Ok(body);
            }
        }
        match reader.advance(&mut buf, true)? {
            Some(body) => Ok(body),
            None => Err(FetchError::Malformed("no body")),
        }
    }

    #[test]
    fn rates_http_responses() {
        let ok = |response: &str| {
            for step in [1, 2, 7, 1000] {
                let body = read_in_steps(response.as_bytes(), step)
                    .unwrap_or_else(|e| panic!("{response:?} by {step}: {e}"));
                assert_eq!(body, b"hello world", "{response:?} by {step}");
            }
        };
        ok("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
        // Bytes past Content-Length are not body.
        ok("HTTP/1.1 200 OK\r\ncontent-length:11\r\n\r\nhello worldEXTRA");
        ok("HTTP/1.0 200 OK\r\n\r\nhello world");
        ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n");
        ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nb\r\nhello world\r\n0\r\nX-T: 1\r\n\r\n");
        ok("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");

        let err = |response: &[u8]| {
            for step in [1, 3, 100_000] {
                assert!(
                    read_in_steps(response, step).is_err(),
                    "{:?}",
                    String::from_utf8_lossy(response)
                );
            }
        };
        err(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
        err(b"HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\n");
        err(b"");
        err(b"garbage\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nshort");
        err(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
        err(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\nxx");
        err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx");
        err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
        err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\nx\r\n0\r\n\r\n");
        err(b"HTTP/1.1 2000 OK\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\n\xff: x\r\n\r\n");
        err(b"HTTP/1.1 200 OK\r\nX: y");
    }

    #[test]
    fn rates_http_size_limits() {
        let big = MAX_BODY + 1;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {big}\r\n\r\n");
        assert!(matches!(
            read_in_steps(head.as_bytes(), 1000),
            Err(FetchError::TooLarge(_))
        ));
        let mut until_close = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        until_close.resize(until_close.len() + big, b'x');
        assert!(matches!(
            read_in_steps(&until_close, 65536),
            Err(FetchError::TooLarge(_))
        ));
        let mut endless_head = b"HTTP/1.1 200 OK\r\n".to_vec();
        endless_head.resize(MAX_HEAD + 10, b'x');
        assert!(matches!(
            read_in_steps(&endless_head, 4096),
            Err(FetchError::TooLarge(_))
        ));
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..(MAX_BODY / 65536 + 1) {
            chunked.extend_from_slice(b"10000\r\n");
            chunked.resize(chunked.len() + 65536, b'x');
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        assert!(matches!(
            read_in_steps(&chunked, 65536),
            Err(FetchError::TooLarge(_))
        ));
        // Exactly the limit passes.
        let mut full =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY}\r\n\r\n").into_bytes();
        full.resize(full.len() + MAX_BODY, b'x');
        assert_eq!(read_in_steps(&full, 65536).unwrap().len(), MAX_BODY);
    }

    #[test]
    fn rates_http_never_panics() {
        let base = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        for i in 0..base.len() {
            for b in [0u8, b'\r', b'\n', b':', b' ', b'0', b'f', b';', 0xff] {
                let mut m = base.to_vec();
                m[i] = b;
                for step in [1, 5, 1000] {
                    let _ = read_in_steps(&m, step);
                    let _ = read_in_steps(&m[..i], step);
                }
            }
        }
    }

    #[actix::test]
    async fn rates_simulated_publishes_at_once_on_start() {
        // No step within the test: whatever comes was published by the Start itself.
        let settings = RatesSettings {
            simulated_interval: Duration::from_secs(3600),
            ..RatesSettings::default()
        };
        let (adapter, mut rx) = start(settings);
        let (channel, up) = next(&mut rx).await;
        assert_eq!(channel, NOTIFICATIONS);
        assert_eq!(
            up,
            json!({"type": "adapter", "exchange": "ecb", "status": "up"})
        );
        assert!(drain(&mut rx).await.is_empty(), "nothing demanded yet");

        adapter
            .send(start_demand("rates:ecb:EUR/USD"))
            .await
            .unwrap();
        adapter
            .send(start_demand("rates:ecb:USD/JPY"))
            .await
            .unwrap();
        let now = drain(&mut rx).await;
        let channels: Vec<&str> = now.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(channels, ["rates:ecb:EUR/USD", "rates:ecb:USD/JPY"]);
        let today = utc_today();
        for (channel, m) in &now {
            assert_eq!(m["symbol"], channel.strip_prefix("rates:ecb:").unwrap());
            assert_eq!(m["source"], "ecb");
            assert_eq!(m["date"], today.as_str());
            assert!(m["rate"].as_f64().unwrap() > 0.0);
        }
        // The walk starts at the seed.
        assert_eq!(now[0].1["rate"], 1.0556);
        assert_eq!(now[0].1["cross"], false);
        assert_eq!(now[1].1["rate"], 120.65 / 1.0556);
        assert_eq!(now[1].1["cross"], true);

        // An unknown pair, or no pair at all, gets nothing.
        adapter
            .send(start_demand("rates:ecb:XXX/USD"))
            .await
            .unwrap();
        adapter
            .send(start_demand("rates:ecb:garbage"))
            .await
            .unwrap();
        assert!(drain(&mut rx).await.is_empty());
    }

    #[actix::test]
    async fn rates_simulated_publishes_on_demand() {
        let (adapter, mut rx) = start(simulated());
        next_on(&mut rx, NOTIFICATIONS).await;
        for channel in [
            "rates:ecb:EUR/USD",
            "rates:ecb:USD/JPY",
            "rates:ecb:XXX/USD",
            "rates:ecb:garbage",
        ] {
            adapter.send(start_demand(channel)).await.unwrap();
        }

        // Every interval, on the known pairs only.
        let mut seen = HashMap::<String, Vec<f64>>::new();
        while seen.len() < 2 || seen.values().any(|rates| rates.len() < 4) {
            let (channel, m) = next(&mut rx).await;
            let rate = m["rate"].as_f64().unwrap();
            assert!(rate > 0.0 && rate.is_finite(), "{m}");
            seen.entry(channel).or_default().push(rate);
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        let eur_usd = &seen["rates:ecb:EUR/USD"];
        assert!(eur_usd.iter().all(|r| (r / 1.0556 - 1.0).abs() < 0.1));
        assert!(
            eur_usd.windows(2).any(|w| w[0] != w[1]),
            "it moves: {eur_usd:?}"
        );
        let usd_jpy = &seen["rates:ecb:USD/JPY"];
        assert!(usd_jpy.iter().all(|r| (r / 114.3 - 1.0).abs() < 0.25));

        // Stopped: no more on that channel, while the other goes on.
        adapter
            .send(Demand::Stop {
                channel: "rates:ecb:EUR/USD".into(),
            })
            .await
            .unwrap();
        drain(&mut rx).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        let later = drain(&mut rx).await;
        assert!(
            later.iter().all(|(c, _)| c == "rates:ecb:USD/JPY"),
            "{later:?}"
        );
        assert!(later.len() >= 2, "USD/JPY goes on: {later:?}");

        // Stopping everything (and what was never started) leaves nothing running.
        for channel in [
            "rates:ecb:XXX/USD",
            "rates:ecb:garbage",
            "rates:ecb:USD/JPY",
            "never",
        ] {
            adapter
                .send(Demand::Stop {
                    channel: channel.into(),
                })
                .await
                .unwrap();
        }
        drain(&mut rx).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(drain(&mut rx).await.is_empty());
    }

    #[actix::test]
    async fn rates_simulated_fetch_rate() {
        let (adapter, mut rx) = start(simulated());
        next_on(&mut rx, NOTIFICATIONS).await;
        let all: Value =
            serde_json::from_slice(&adapter.send(FetchRates).await.unwrap().unwrap()).unwrap();
        assert_eq!(all["base"], "EUR");
        assert_eq!(all["rates"].as_object().unwrap().len(), 32);
        assert_eq!(all["rates"]["EUR"], 1.0);

        let usd_jpy = adapter.send(pair("USD", "JPY")).await.unwrap().unwrap();
        let m: Value = serde_json::from_slice(&usd_jpy).unwrap();
        // The walk moves the rates between calls: check the cross against the per-EUR texts the
        // message itself shows.
        let info = &m["info"];
        let (usd, jpy): (f64, f64) = (
            info["USD"].as_str().unwrap().parse().unwrap(),
            info["JPY"].as_str().unwrap().parse().unwrap(),
        );
        // The cross is the ratio of the per-EUR rates it was made from.
        assert_eq!(exact_rate(&usd_jpy), jpy / usd);
        assert_eq!(m["cross"], true);
        assert_eq!(m["date"], utc_today().as_str());

        let same = adapter.send(pair("GBP", "GBP")).await.unwrap().unwrap();
        assert_eq!(exact_rate(&same), 1.0);

        for (base, quote) in [("XXX", "USD"), ("USD", "usd"), ("", "EUR")] {
            let e = adapter.send(pair(base, quote)).await.unwrap().unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadSymbol, "{base}/{quote}");
            assert!(e.message.contains(&format!("{base}/{quote}")));
        }
    }

    #[actix::test]
    async fn rates_off_has_nothing() {
        let settings = RatesSettings {
            source: RatesSource::Off,
            ..RatesSettings::default()
        };
        let (adapter, mut rx) = start(settings);
        adapter
            .send(start_demand("rates:ecb:EUR/USD"))
            .await
            .unwrap();
        let e = adapter.send(pair("EUR", "USD")).await.unwrap().unwrap_err();
        assert_eq!(e.kind, ErrorKind::ExchangeNotAvailable);
        let e = adapter.send(FetchRates).await.unwrap().unwrap_err();
        assert_eq!(e.kind, ErrorKind::ExchangeNotAvailable);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(drain(&mut rx).await.is_empty());
    }

    // ---- The ECB source against a local server.

    const FIXTURE: &[u8] = include_bytes!("rates_seed.xml");

    /// How the test server answers.
    const SERVE_FIXTURE: u8 = 0;
    const SERVE_CHUNKED: u8 = 1;
    const SERVE_500: u8 = 2;
    const SERVE_GARBAGE: u8 = 3;
    const SERVE_NOT_ECB: u8 = 4;

    /// A local HTTP server answering each connection as `mode` says; its URL.
    async fn server(mode: Arc<AtomicU8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        actix::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mode = mode.load(Ordering::SeqCst);
                actix::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    // Up to the end of the request, or what is clearly not one (a TLS hello).
                    while find(&request, b"\r\n\r\n").is_none()
                        && b"GET ".starts_with(&request[..request.len().min(4)])
                    {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let expected = b"GET /eurofxref-daily.xml HTTP/1.1\r\n";
                    let mode = if request.starts_with(expected) {
                        mode
                    } else {
                        SERVE_GARBAGE
                    };
                    let response = match mode {
                        SERVE_FIXTURE => {
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                                FIXTURE.len()
                            )
                            .into_bytes();
                            r.extend_from_slice(FIXTURE);
                            r
                        }
                        SERVE_CHUNKED => {
                            let mut r =
                                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                            for chunk in FIXTURE.chunks(100) {
                                r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                                r.extend_from_slice(chunk);
                                r.extend_from_slice(b"\r\n");
                            }
                            r.extend_from_slice(b"0\r\n\r\n");
                            r
                        }
                        SERVE_500 => {
                            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"
                                .to_vec()
                        }
                        SERVE_GARBAGE => b"\x00\x01 definitely not HTTP\r\n\r\n".to_vec(),
                        _ => {
                            b"HTTP/1.1 200 OK\r\n\r\n<html><body>maintenance</body></html>".to_vec()
                        }
                    };
                    let _ = socket.write_all(&response).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        format!("http://127.0.0.1:{port}/eurofxref-daily.xml")
    }

    fn ecb(url: String) -> RatesSettings {
        RatesSettings {
            source: RatesSource::Ecb,
            url,
            fetch_interval: Duration::from_millis(200),
            ..RatesSettings::default()
        }
    }

    #[actix::test]
    async fn rates_ecb_fetches_the_file() {
        let mode = Arc::new(AtomicU8::new(SERVE_FIXTURE));
        let url = server(mode.clone()).await;
        let body = http_get(&url, FETCH_TIMEOUT).await.unwrap();
        assert_eq!(body, FIXTURE);
        mode.store(SERVE_CHUNKED, Ordering::SeqCst);
        assert_eq!(http_get(&url, FETCH_TIMEOUT).await.unwrap(), FIXTURE);
        mode.store(SERVE_FIXTURE, Ordering::SeqCst);

        let (adapter, mut rx) = start(ecb(url));
        let up = next_on(&mut rx, NOTIFICATIONS).await;
        assert_eq!(up["status"], "up");

        let all: Value =
            serde_json::from_slice(&adapter.send(FetchRates).await.unwrap().unwrap()).unwrap();
        assert_eq!(all["date"], "2017-03-08");
        let rates = all["rates"].as_object().unwrap();
        assert_eq!(rates.len(), 31 + 1);
        assert_eq!(rates["EUR"], 1.0);
        assert_eq!(rates["USD"], 1.0556);
        assert_eq!(rates["ZAR"], 13.7908);

        let usd_jpy = adapter.send(pair("USD", "JPY")).await.unwrap().unwrap();
        assert_eq!(exact_rate(&usd_jpy), 120.65 / 1.0556);
        let m: Value = serde_json::from_slice(&usd_jpy).unwrap();
        assert_eq!(m["info"], json!({"USD": "1.0556", "JPY": "120.65"}));
        assert_eq!(m["timestamp"], 1_488_985_200_000i64);
        let e = adapter.send(pair("BTC", "USD")).await.unwrap().unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadSymbol);

        // Demanded: at once, then at every fetch, over plain and chunked answers alike.
        adapter
            .send(start_demand("rates:ecb:USD/JPY"))
            .await
            .unwrap();
        let first = next_on(&mut rx, "rates:ecb:USD/JPY").await;
        assert_eq!(first["rate"], m["rate"]);
        mode.store(SERVE_CHUNKED, Ordering::SeqCst);
        for _ in 0..3 {
            let again = next_on(&mut rx, "rates:ecb:USD/JPY").await;
            assert_eq!(again["rate"], m["rate"]);
        }
        // Fetches that work announce nothing more.
        assert!(drain(&mut rx).await.iter().all(|(c, _)| c != NOTIFICATIONS));
    }

    #[actix::test]
    async fn rates_ecb_down_then_up() {
        let mode = Arc::new(AtomicU8::new(SERVE_500));
        let url = server(mode.clone()).await;
        let (adapter, mut rx) = start(ecb(url));

        let down = next_on(&mut rx, NOTIFICATIONS).await;
        assert_eq!(down["type"], "adapter");
        assert_eq!(down["exchange"], "ecb");
        assert_eq!(down["status"], "down");
        assert_eq!(down["reason"], "HTTP status 500");
        let e = adapter.send(pair("EUR", "USD")).await.unwrap().unwrap_err();
        assert_eq!(e.kind, ErrorKind::ExchangeNotAvailable);
        adapter
            .send(start_demand("rates:ecb:EUR/USD"))
            .await
            .unwrap();
        // Retries keep failing: announced once.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(drain(&mut rx).await.is_empty());

        mode.store(SERVE_FIXTURE, Ordering::SeqCst);
        let (channel, first) = next(&mut rx).await;
        // The demanded channel gets the new rates, and `up` follows.
        assert_eq!(channel, "rates:ecb:EUR/USD");
        assert_eq!(first["rate"], 1.0556);
        let up = next_on(&mut rx, NOTIFICATIONS).await;
        assert_eq!(
            up,
            json!({"type": "adapter", "exchange": "ecb", "status": "up"})
        );

        for (bad, reason) in [
            (SERVE_GARBAGE, "malformed HTTP response"),
            (SERVE_NOT_ECB, "not an ECB rates file"),
        ] {
            mode.store(bad, Ordering::SeqCst);
            let down = next_on(&mut rx, NOTIFICATIONS).await;
            assert_eq!(down["status"], "down");
            assert!(
                down["reason"].as_str().unwrap().starts_with(reason),
                "{down}"
            );
            // The last rates stay: a client still gets them while the source is down.
            let still = adapter.send(pair("EUR", "USD")).await.unwrap().unwrap();
            assert_eq!(exact_rate(&still), 1.0556);
            mode.store(SERVE_FIXTURE, Ordering::SeqCst);
            let up = next_on(&mut rx, NOTIFICATIONS).await;
            assert_eq!(up["status"], "up");
        }
    }

    #[actix::test]
    async fn rates_ecb_unreachable() {
        // A port nobody listens on: bound, then closed.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}/eurofxref-daily.xml");
        let e = http_get(&url, FETCH_TIMEOUT).await.unwrap_err();
        assert!(matches!(e, FetchError::Connect { .. }), "{e}");
        let (_adapter, mut rx) = start(ecb(url));
        let down = next_on(&mut rx, NOTIFICATIONS).await;
        assert_eq!(down["status"], "down");
        assert!(down["reason"]
            .as_str()
            .unwrap()
            .starts_with("cannot connect"));

        // A server that accepts and says nothing runs into the deadline.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", silent.local_addr().unwrap());
        let held = actix::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                kept.push(socket);
            }
        });
        let e = http_get(&url, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Timeout(_)), "{e}");
        held.abort();

        // https: the handshake with a plain-text server fails cleanly.
        let mode = Arc::new(AtomicU8::new(SERVE_FIXTURE));
        let url = server(mode).await.replace("http://", "https://");
        let e = http_get(&url, FETCH_TIMEOUT).await.unwrap_err();
        assert!(matches!(e, FetchError::Tls(_) | FetchError::Io(_)), "{e}");
    }
}
