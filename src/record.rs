//! `rpc-crypto record`: runs one real exchange adapter, alone, with the recorder installed
//! (`rpc_crypto_actors::adapters::record`), asks it for channels as the Router would, and writes
//! what it receives to a file until the duration is over or the process is told to stop. Nothing
//! is served: what the adapter publishes is only counted. The file replays with `[replay]`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use anyhow::{bail, Context as _};
use rpc_crypto_actors::adapters::binance::BinanceAdapter;
use rpc_crypto_actors::adapters::coinbase::adapter::CoinbaseAdapter;
use rpc_crypto_actors::adapters::kraken::KrakenAdapter;
use rpc_crypto_actors::adapters::record::{self, Recorder, Summary, DEFAULT_QUEUE};
use rpc_crypto_actors::router::{Demand, Publish};

use crate::config::Config;

/// What a recording is asked to do.
pub struct Plan<'a> {
    /// `binance`, `coinbase` or `kraken`.
    pub exchange: &'a str,
    /// Channels of that exchange (`book:binance:NKN/USDT`).
    pub channels: &'a [String],
    /// How long; `None` until SIGINT or SIGTERM.
    pub duration: Option<Duration>,
    pub out: &'a Path,
    /// Overwrite `out` if it exists.
    pub force: bool,
}

/// What was recorded, and what the adapter made of it.
pub struct Recorded {
    pub summary: Summary,
    /// Publications by channel (`notifications` included).
    pub publications: BTreeMap<String, u64>,
}

/// Counts what the adapter publishes.
struct Counter(Arc<Mutex<BTreeMap<String, u64>>>);

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<Publish> for Counter {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        if msg.channel == rpc_crypto_actors::channel::NOTIFICATIONS {
            log::info!("{}", String::from_utf8_lossy(msg.data.bytes()));
        }
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(msg.channel).or_default() += 1;
    }
}

/// Checks that every channel is one of `exchange`'s.
fn check_channels(exchange: &str, channels: &[String]) -> anyhow::Result<()> {
    if channels.is_empty() {
        bail!("no --channel: name at least one, e.g. --channel book:{exchange}:BTC/USDT");
    }
    for channel in channels {
        let mut parts = channel.splitn(3, ':');
        let ours = matches!(
            (parts.next(), parts.next(), parts.next()),
            (Some(kind), Some(of), Some(rest)) if !kind.is_empty() && of == exchange && !rest.is_empty()
        );
        if !ours {
            bail!(
                "--channel {channel}: not a channel of {exchange} \
                 (<kind>:{exchange}:<symbol>, e.g. book:{exchange}:BTC/USDT)"
            );
        }
    }
    Ok(())
}

/// Records `plan.exchange`, configured by `config` (its URLs and options; enabled or not).
pub fn run(config: &Config, plan: &Plan<'_>) -> anyhow::Result<Recorded> {
    check_channels(plan.exchange, plan.channels)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if plan.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options.open(plan.out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} exists; add --force to overwrite it", plan.out.display())
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", plan.out.display()))
        }
    })?;
    let recorder = Recorder::to_writer(Box::new(file), plan.exchange, DEFAULT_QUEUE)
        .context("cannot start the recorder")?;
    if record::install(recorder).is_err() {
        bail!("a recording is under way in this process already");
    }
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    let exchanges = &config.exchanges;
    let published = counts.clone();
    actix_rt::System::new().block_on(async move {
        let publish = Counter(published).start().recipient();
        let demand: Recipient<Demand> = match plan.exchange {
            "binance" => {
                let mut settings = exchanges.binance.clone();
                settings.enabled = true;
                BinanceAdapter::new(settings, publish).start().recipient()
            }
            "coinbase" => {
                let mut settings = exchanges.coinbase.clone();
                settings.enabled = true;
                CoinbaseAdapter::new(settings, publish).start().recipient()
            }
            "kraken" => {
                let mut settings = exchanges.kraken.clone();
                settings.enabled = true;
                KrakenAdapter::new(settings, publish).start().recipient()
            }
            other => bail!("no exchange {other:?} to record (binance, coinbase, kraken)"),
        };
        for channel in plan.channels {
            demand.do_send(Demand::Start {
                channel: channel.clone(),
            });
        }
        log::info!(
            "recording {} ({}) to {}{}",
            plan.exchange,
            plan.channels.join(", "),
            plan.out.display(),
            plan.duration
                .map_or_else(|| " until stopped".to_owned(), |d| format!(" for {d:?}"))
        );
        let stopped = async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        match plan.duration {
            Some(duration) => {
                tokio::select! {
                    () = tokio::time::sleep(duration) => {}
                    () = stopped => log::info!("stopped early"),
                }
            }
            None => stopped.await,
        }
        Ok(())
    })?;
    let summary =
        record::finish().with_context(|| format!("cannot write {}", plan.out.display()))?;
    let publications = counts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(Recorded {
        summary,
        publications,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_must_be_the_exchanges() {
        let ok = [
            "book:binance:NKN/USDT".to_owned(),
            "ohlcv:binance:BTC/USDT:1m".to_owned(),
        ];
        assert!(check_channels("binance", &ok).is_ok());
        for bad in [
            "book:kraken:BTC/USD",
            "book:binance:",
            "binance",
            ":binance:X",
        ] {
            let error = check_channels("binance", &[bad.to_owned()]).unwrap_err();
            assert!(
                error.to_string().contains("not a channel of binance"),
                "{bad}: {error}"
            );
        }
        assert!(check_channels("binance", &[]).is_err());
    }
}
