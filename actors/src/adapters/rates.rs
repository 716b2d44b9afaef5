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
//! The ECB source GETs its small file with the shared client in [`super::http`]: a 10 s deadline
//! for each fetch and a 1 MiB body limit; redirects are not followed (a 3xx is a failure, like
//! any status but 200), and responses are not compressed. Nothing the server sends can make it
//! panic.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::Bytes;
use log::{debug, error, info, warn};
use rpc_crypto_proto::ccxt::ErrorKind;
use rpc_crypto_proto::json::JsonText;
use rpc_crypto_proto::rates::{
    parse_channel, parse_ecb_daily, EcbRates, RatesError, SimulatedRates, EUR,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::http::{self, HttpError};
use crate::adapters::contract::ExchangeError;
use crate::adapters::truncated;
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
                self.publish.do_send(Publish::new(channel.clone(), data));
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
        if let Ok(data) = JsonText::serialize(&notification) {
            self.publish
                .do_send(Publish::new(NOTIFICATIONS.to_owned(), data));
        }
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
            let body = http::get(&url, FETCH_TIMEOUT, MAX_BODY).await?;
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
                    let reason = truncated(e.to_string(), MAX_REASON);
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
                        self.publish.do_send(Publish::new(channel.clone(), data));
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
fn message_for(rates: &EcbRates, channel: &str, warned: &mut bool) -> Option<JsonText> {
    let message = parse_channel(channel).and_then(|(base, quote)| rates.rate_message(base, quote));
    if message.is_none() && !*warned {
        *warned = true;
        warn!("fiat rates: channel {channel:?} is demanded but names no known ECB pair");
    }
    message.and_then(|m| JsonText::serialize(&m).ok())
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

/// Why a fetch failed; its text is the `reason` of a `down` notification.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("not an ECB rates file: {0}")]
    Rates(#[from] RatesError),
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;

    use serde_json::value::RawValue;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
                    while !request.windows(4).any(|w| w == b"\r\n\r\n")
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
        let body = http::get(&url, FETCH_TIMEOUT, MAX_BODY).await.unwrap();
        assert_eq!(body, FIXTURE);
        mode.store(SERVE_CHUNKED, Ordering::SeqCst);
        assert_eq!(
            http::get(&url, FETCH_TIMEOUT, MAX_BODY).await.unwrap(),
            FIXTURE
        );
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
        let e = http::get(&url, FETCH_TIMEOUT, MAX_BODY).await.unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
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
        let e = http::get(&url, Duration::from_millis(200), MAX_BODY)
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::Timeout(_)), "{e}");
        held.abort();

        // https: the handshake with a plain-text server fails cleanly.
        let mode = Arc::new(AtomicU8::new(SERVE_FIXTURE));
        let url = server(mode).await.replace("http://", "https://");
        let e = http::get(&url, FETCH_TIMEOUT, MAX_BODY).await.unwrap_err();
        assert!(matches!(e, HttpError::Tls(_) | HttpError::Io(_)), "{e}");
    }
}
