//! The scenarios: fan-out at an open-loop rate, idle connections, and connects per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rpc_crypto_proto::secure::FrameOpener;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use crate::payload::{self, Scanner};
use crate::proc;
use crate::secure::{self, SecureSubscribers};
use crate::target::{next_data, Target, Ws};

/// Publication ticks per second: a publisher sends what is due every tick.
const TICKS_PER_SECOND: u64 = 1000;
/// The most payload bytes in one WebSocket message of a publisher.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct Fanout {
    pub target: Target,
    pub url: String,
    pub subscribers: usize,
    pub publishers: usize,
    /// Messages per second, all publishers together.
    pub rate: u64,
    pub size: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    pub server_pid: Option<u32>,
    /// Target [`Target::RpcSecure`]: where and as whom its subscribers connect (the publishers
    /// use `url`, the JSON wire). `None` for every other target.
    pub secure: Option<Arc<SecureSubscribers>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub target: Target,
    pub subscribers: usize,
    pub rate: u64,
    pub size: usize,
    /// Publications sent inside the measured window.
    pub published: u64,
    /// `published` times the subscribers: what should have been delivered.
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    /// Connections (subscribers and publishers) the server closed during the run (rpc-crypto:
    /// slow consumers, 3008).
    pub disconnects: usize,
    pub delivered_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Server CPU seconds during the window, and per million deliveries.
    pub server_cpu_s: Option<f64>,
    pub server_cpu_s_per_million: Option<f64>,
    pub server_rss_kib: Option<u64>,
    /// The generator's own CPU during the window, as a share of one core.
    pub generator_cpu: f64,
}

struct Window {
    start: Instant,
    from_ns: u64,
    to_ns: u64,
}

impl Window {
    fn contains(&self, t: u64) -> bool {
        (self.from_ns..self.to_ns).contains(&t)
    }
}

/// What one subscriber saw.
struct Seen {
    delivered: u64,
    latencies: Histogram<u64>,
    /// The server closed the connection before the end.
    disconnected: bool,
}

impl Seen {
    /// A payload sent at `t` arrived at `now` (ns into the run): counted, with its latency, if
    /// it was sent inside the window.
    fn record(&mut self, window: &Window, now: u64, t: u64) {
        if window.contains(t) {
            self.delivered += 1;
            let _ = self.latencies.record(now.saturating_sub(t).max(1));
        }
    }
}

/// A subscribed connection.
struct Subscriber {
    ws: Ws,
    /// [`Target::RpcSecure`]: what opens the server's frames. Each message is then one
    /// encrypted server message; otherwise the bytes are the protocol's own.
    key: Option<FrameOpener>,
}

pub async fn fanout(params: Fanout) -> anyhow::Result<FanoutReport> {
    anyhow::ensure!(
        params.size >= payload::MIN_SIZE,
        "payloads are at least {} bytes",
        payload::MIN_SIZE
    );
    anyhow::ensure!(
        (params.target == Target::RpcSecure) == params.secure.is_some(),
        "the secure transport's settings go with target rpc-secure, and only with it"
    );
    let subscribers = open_subscribers(
        params.target,
        &params.url,
        params.subscribers,
        params.secure.clone(),
    )
    .await?;
    // Each publisher runs on a thread of its own (on the same core): with rpc-crypto it must read
    // a reply per publication, and among a hundred busy reader tasks it could fall behind and be
    // cut off as a slow reader, which would measure this generator, not the server.
    let per_publisher = params.rate / params.publishers.max(1) as u64;
    // Waited for asynchronously, so that whatever else runs on this thread (a test's server) goes on.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<anyhow::Result<()>>();
    let mut window_txs = Vec::new();
    let mut threads = Vec::new();
    for n in 0..params.publishers {
        let (window_tx, window_rx) = std::sync::mpsc::channel::<Arc<Window>>();
        window_txs.push(window_tx);
        let ready_tx = ready_tx.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<anyhow::Result<Published>>();
        threads.push(done_rx);
        let (target, url, size, drain) =
            (params.target, params.url.clone(), params.size, params.drain);
        std::thread::spawn(move || {
            let run = || -> anyhow::Result<Published> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let ws = match target.publisher(&url, n).await {
                        Ok(ws) => {
                            let _ = ready_tx.send(Ok(()));
                            ws
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(anyhow::anyhow!("publisher {n}: {error:#}")));
                            return Err(error);
                        }
                    };
                    let window = window_rx.recv()?;
                    let until = window.start + Duration::from_nanos(window.to_ns);
                    publish(
                        target,
                        ws,
                        window,
                        per_publisher,
                        size,
                        until,
                        until + drain,
                    )
                    .await
                })
            };
            let _ = done_tx.send(run());
        });
    }
    for _ in 0..params.publishers {
        ready_rx
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("a publisher thread ended"))??;
    }

    let start = Instant::now();
    let window = Arc::new(Window {
        start,
        from_ns: params.warmup.as_nanos() as u64,
        to_ns: (params.warmup + params.duration).as_nanos() as u64,
    });
    for tx in window_txs {
        tx.send(window.clone())?;
    }
    let stop_at = start + params.warmup + params.duration + params.drain;

    let local = tokio::task::LocalSet::new();
    let readers: Vec<_> = subscribers
        .into_iter()
        .map(|sub| local.spawn_local(read(params.target, sub, window.clone(), stop_at)))
        .collect();
    let probe = local.spawn_local(measure(window.clone(), params.server_pid));

    let (seen, usage) = local
        .run_until(async move {
            let mut seen = Vec::new();
            for reader in readers {
                seen.push(reader.await??);
            }
            anyhow::Ok((seen, probe.await??))
        })
        .await?;
    let mut published = 0;
    let mut closed_publishers = 0;
    for done in threads {
        let result = done
            .await
            .map_err(|_| anyhow::anyhow!("a publisher thread panicked"))??;
        published += result.in_window;
        closed_publishers += usize::from(result.closed);
    }

    let mut latencies = Histogram::<u64>::new(3)?;
    let mut delivered = 0;
    for s in &seen {
        delivered += s.delivered;
        latencies.add(&s.latencies)?;
    }
    let expected = published * params.subscribers as u64;
    let window_s = params.duration.as_secs_f64();
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1e6;
    Ok(FanoutReport {
        target: params.target,
        subscribers: params.subscribers,
        rate: params.rate,
        size: params.size,
        published,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        disconnects: seen.iter().filter(|s| s.disconnected).count() + closed_publishers,
        delivered_per_sec: delivered as f64 / window_s,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: latencies.max() as f64 / 1e6,
        server_cpu_s: usage.server_cpu_s,
        server_cpu_s_per_million: usage
            .server_cpu_s
            .filter(|_| delivered > 0)
            .map(|cpu| cpu / (delivered as f64 / 1e6)),
        server_rss_kib: usage.server_rss_kib,
        generator_cpu: usage.generator_cpu_s / window_s,
    })
}

/// Reads deliveries until `stop_at`, recording the latency of those sent inside the window.
async fn read(
    target: Target,
    subscriber: Subscriber,
    window: Arc<Window>,
    stop_at: Instant,
) -> anyhow::Result<Seen> {
    let Subscriber { mut ws, key } = subscriber;
    let mut seen = Seen {
        delivered: 0,
        latencies: Histogram::new(3)?,
        disconnected: false,
    };
    let mut scanner = Scanner::default();
    let deadline = tokio::time::sleep_until(stop_at.into());
    tokio::pin!(deadline);
    loop {
        let data = tokio::select! {
            _ = &mut deadline => break,
            data = next_data(&mut ws) => data,
        };
        // A connection the server closed counts as such; what it did not deliver is lost.
        let Ok(data) = data else {
            seen.disconnected = true;
            break;
        };
        let now = window.start.elapsed().as_nanos() as u64;
        match &key {
            None => scanner.scan(&data, |t| seen.record(&window, now, t)),
            Some(key) => {
                let sent = secure::publication_time(key, &data)
                    .context("a secure transport frame did not open with the session's key")?;
                if let Some(t) = sent {
                    seen.record(&window, now, t);
                }
            }
        }
        if let Some(answer) = target.answer(&data) {
            if ws.send(answer).await.is_err() {
                seen.disconnected = true;
                break;
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(seen)
}

/// Publishes `rate` messages per second until `until`, open loop: what is due at each tick goes
/// out in one message, whatever the server does. Returns how many were sent inside the window.
async fn publish(
    target: Target,
    ws: Ws,
    window: Arc<Window>,
    rate: u64,
    size: usize,
    until: Instant,
    stop_at: Instant,
) -> anyhow::Result<Published> {
    let (mut sink, mut stream) = ws.split();
    // Replies (rpc-crypto answers each publish) are read and dropped, so that the publisher is
    // never the slow reader.
    let drain = tokio::task::spawn_local(async move {
        let deadline = tokio::time::sleep_until(stop_at.into());
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                item = stream.next() => if item.is_none() { break },
            }
        }
    });
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / TICKS_PER_SECOND));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent: u64 = 0;
    let mut in_window = 0;
    let mut next_id = 1;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut publisher_closed = false;
    loop {
        ticker.tick().await;
        let now = Instant::now();
        if now >= until {
            break;
        }
        let elapsed = now - window.start;
        let due = (elapsed.as_nanos() as u64 * rate / 1_000_000_000).saturating_sub(sent);
        if due == 0 {
            continue;
        }
        let t = elapsed.as_nanos() as u64;
        batch.clear();
        for _ in 0..due {
            let mut payload = Vec::with_capacity(size);
            payload::make(t, size, &mut payload);
            batch.push(payload);
        }
        // A late tick catches up with more payloads; each WebSocket message stays small, well
        // under any server's frame limit (rpc-crypto's default is 64 KiB).
        let per_message = (MAX_MESSAGE_BYTES / size).max(1);
        let mut closed = false;
        for chunk in batch.chunks(per_message) {
            if sink
                .feed(target.publish_message(chunk, &mut next_id))
                .await
                .is_err()
            {
                closed = true;
                break;
            }
        }
        if closed || sink.flush().await.is_err() {
            // The server closed the publisher (rpc-crypto: 3008, when this generator cannot read
            // the publish replies fast enough). What was not published is not expected either.
            publisher_closed = true;
            break;
        }
        sent += due;
        if window.contains(t) {
            in_window += due;
        }
    }
    drain.await?;
    let _ = sink.send(Message::Close(None)).await;
    Ok(Published {
        in_window,
        closed: publisher_closed,
    })
}

/// What one publisher did.
struct Published {
    /// Publications sent inside the measured window.
    in_window: u64,
    /// The server closed the publisher before the end.
    closed: bool,
}

struct Usage {
    server_cpu_s: Option<f64>,
    server_rss_kib: Option<u64>,
    generator_cpu_s: f64,
}

/// CPU time of the server and of this generator across the window, and the server's RSS.
async fn measure(window: Arc<Window>, server: Option<u32>) -> anyhow::Result<Usage> {
    let at = |ns| window.start + Duration::from_nanos(ns);
    tokio::time::sleep_until(at(window.from_ns).into()).await;
    let server_before = server.and_then(|pid| proc::cpu_time(Some(pid)));
    let own_before = proc::cpu_time(None).unwrap_or_default();
    tokio::time::sleep_until(at(window.to_ns).into()).await;
    let server_after = server.and_then(|pid| proc::cpu_time(Some(pid)));
    let own_after = proc::cpu_time(None).unwrap_or_default();
    Ok(Usage {
        server_cpu_s: server_before
            .zip(server_after)
            .map(|(b, a)| (a - b).as_secs_f64()),
        server_rss_kib: server.and_then(proc::rss_kib),
        generator_cpu_s: (own_after - own_before).as_secs_f64(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub target: Target,
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub kib_per_connection: f64,
}

/// Opens `count` subscribed connections and leaves them idle; reports the server's RSS growth.
pub async fn idle(
    target: Target,
    url: &str,
    count: usize,
    server_pid: u32,
) -> anyhow::Result<IdleReport> {
    refuse_secure(target, "idle")?;
    let before = proc::rss_kib(server_pid).unwrap_or_default();
    let open = open_subscribers(target, url, count, None).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = proc::rss_kib(server_pid).unwrap_or_default();
    drop(open);
    Ok(IdleReport {
        target,
        connections: count,
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_connection: after.saturating_sub(before) as f64 / count as f64,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectsReport {
    pub target: Target,
    pub sessions: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub sessions_per_sec: f64,
    pub generator_cpu: f64,
}

/// Opens `count` sessions, `concurrency` at a time, each established and subscribed.
pub async fn connects(
    target: Target,
    url: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<ConnectsReport> {
    refuse_secure(target, "connects")?;
    let own_before = proc::cpu_time(None).unwrap_or_default();
    let started = Instant::now();
    let open = subscribe_many(target, url, count, concurrency, None).await?;
    let seconds = started.elapsed().as_secs_f64();
    let own = (proc::cpu_time(None).unwrap_or_default() - own_before).as_secs_f64();
    let sessions = open.len();
    drop(open);
    Ok(ConnectsReport {
        target,
        sessions,
        concurrency,
        seconds,
        sessions_per_sec: sessions as f64 / seconds,
        generator_cpu: own / seconds,
    })
}

/// Only `fanout` runs [`Target::RpcSecure`].
fn refuse_secure(target: Target, scenario: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        target != Target::RpcSecure,
        "target rpc-secure runs only the fanout scenario, not {scenario}"
    );
    Ok(())
}

/// How many connections are opened at once when a scenario sets up its subscribers.
const SETUP_CONCURRENCY: usize = 50;

async fn open_subscribers(
    target: Target,
    url: &str,
    count: usize,
    secure: Option<Arc<SecureSubscribers>>,
) -> anyhow::Result<Vec<Subscriber>> {
    subscribe_many(target, url, count, SETUP_CONCURRENCY, secure).await
}

/// Opens `count` subscribed connections, `concurrency` at a time: on the secure transport when
/// `secure` is given (the handshakes' RSA runs on this thread), else `target`'s own way.
async fn subscribe_many(
    target: Target,
    url: &str,
    count: usize,
    concurrency: usize,
    secure: Option<Arc<SecureSubscribers>>,
) -> anyhow::Result<Vec<Subscriber>> {
    let local = tokio::task::LocalSet::new();
    let concurrency = concurrency.clamp(1, count.max(1));
    let per_task = count.div_ceil(concurrency);
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let url = url.to_owned();
            let secure = secure.clone();
            local.spawn_local(async move {
                let mut open = Vec::with_capacity(per_task);
                for n in task * per_task..((task + 1) * per_task).min(count) {
                    open.push(match &secure {
                        Some(secure) => {
                            let (ws, key) = secure.subscriber(n).await?;
                            Subscriber {
                                ws,
                                key: Some(FrameOpener::new(&key)),
                            }
                        }
                        None => Subscriber {
                            ws: target.subscriber(&url, n).await?,
                            key: None,
                        },
                    });
                }
                anyhow::Ok(open)
            })
        })
        .collect();
    local
        .run_until(async move {
            let mut all = Vec::with_capacity(count);
            for task in tasks {
                all.extend(task.await??);
            }
            anyhow::Ok(all)
        })
        .await
}
