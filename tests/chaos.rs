//! The reconnect promise under chaos: 50 clients on 10 channels, a publisher at 2,000 msg/s, and
//! for 30 s connections dropped at random from both sides — the client vanishing (its socket
//! dropped without a close frame), or the server dropping it (the client stops answering pings;
//! the server closes with 3012). Half the clients come back through channel recovery (new
//! session, subscribe with `recover`), half through session resume. Afterwards every client has
//! every publication of its channels exactly once and in order, by offset; and the server's
//! memory stayed within what its history and parked-session limits allow.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{connect_with_data, error_code, publish, Client, Server};
use rand::{Rng, SeedableRng};
use rpc_crypto_proto::codec::Format;
use rpc_crypto_proto::protocol::{Command, Reply, SubscribeRequest};
use serde_json::{json, Value};

const CLIENTS: usize = 50;
const CHANNELS: usize = 10;
const CHANNELS_PER_CLIENT: usize = 2;
const RATE: u64 = 2_000;
const CHAOS: Duration = Duration::from_secs(30);

const HISTORY_SIZE: usize = 3_000;
const QUEUE_MAX_SIZE: usize = 256 * 1024;
const JOURNAL_MAX_SIZE: usize = 256 * 1024;

fn channel(n: usize) -> String {
    format!("chaos:c{n}")
}

/// Counts of what happened, for the test to show that both ways back were taken.
#[derive(Default)]
struct Tally {
    client_drops: AtomicUsize,
    server_drops: AtomicUsize,
    recoveries: AtomicUsize,
    resumes: AtomicUsize,
}

/// What one client has seen of one channel.
struct Seen {
    name: String,
    epoch: String,
    last: u64,
}

impl Seen {
    /// Records a publication; anything but the next offset is a loss or a duplicate.
    fn record(&mut self, offset: u64, who: usize) {
        assert_eq!(
            offset,
            self.last + 1,
            "client {who}, {}: offset {offset} after {}",
            self.name,
            self.last
        );
        self.last = offset;
    }
}

struct ChaosClient {
    who: usize,
    format: Format,
    resumable: bool,
    seen: Vec<Seen>,
    /// The session to resume (id, key), for a resumable client.
    ticket: Option<(String, String)>,
    rng: rand::rngs::StdRng,
}

impl ChaosClient {
    fn subscribe_command(&self, id: u32, seen: &Seen, recover: bool) -> Command {
        Command {
            id,
            subscribe: Some(SubscribeRequest {
                channel: seen.name.clone(),
                recover,
                offset: seen.last,
                epoch: seen.epoch.clone(),
                ..SubscribeRequest::default()
            }),
            ..Command::default()
        }
    }

    /// Opens a connection and gets back to where this client was: a new session subscribed
    /// (recovering from the last offsets seen), or the old session resumed.
    async fn come_back(&mut self, url: &str, last_received: u64, tally: &Tally) -> Client {
        let mut client = Client::open(url, self.format).await;
        if let (true, Some((id, key))) = (self.resumable, &self.ticket) {
            let data =
                json!({"resume": {"session": id, "key": key, "last_received": last_received}});
            let reply = client.call(connect_with_data(1, &data.to_string())).await;
            assert_eq!(
                error_code(&reply),
                0,
                "client {}: resume of {id} failed: {reply:?}",
                self.who
            );
            // The count goes on from the old connection's; the answer to the resuming connect
            // is not one of the session's messages.
            client.received = last_received + client.received - 1;
            tally.resumes.fetch_add(1, Ordering::Relaxed);
            return client;
        }
        let data = if self.resumable {
            "{\"resumable\":true}"
        } else {
            "{}"
        };
        let reply = client.call(connect_with_data(1, data)).await;
        let result = reply.connect.expect("a connect result");
        if self.resumable {
            let data: Value = serde_json::from_slice(&result.data).unwrap();
            let key = data["session_key"].as_str().unwrap().to_owned();
            self.ticket = Some((result.client, key));
        }
        let first = self.seen.iter().all(|s| s.epoch.is_empty());
        for n in 0..self.seen.len() {
            let command = self.subscribe_command(2 + n as u32, &self.seen[n], !first);
            let reply = client.call(command).await;
            let result = reply
                .subscribe
                .clone()
                .unwrap_or_else(|| panic!("{reply:?}"));
            assert!(result.recoverable);
            if !first {
                assert!(
                    result.recovered,
                    "client {}: not recovered: {result:?}",
                    self.who
                );
            }
            self.seen[n].epoch = result.epoch.clone();
            for publication in &result.publications {
                self.seen[n].record(publication.offset, self.who);
            }
        }
        if !first {
            tally.recoveries.fetch_add(1, Ordering::Relaxed);
        }
        client
    }

    /// Takes one item: a publication is recorded, a ping answered (unless `silent`).
    async fn take(&mut self, client: &mut Client, item: Reply, silent: bool) {
        if let Some(publication) = item.push.as_ref().and_then(|p| {
            let at = self.seen.iter().position(|s| s.name == p.channel)?;
            Some((at, p.r#pub.as_ref()?.offset))
        }) {
            self.seen[publication.0].record(publication.1, self.who);
        } else if item == Reply::default() && !silent {
            client.send(&[Command::default()]).await;
        }
    }

    async fn run(
        mut self,
        url: String,
        tally: Arc<Tally>,
        chaos_over: Arc<AtomicBool>,
        finals: Arc<Vec<AtomicU64>>,
    ) -> Vec<(String, u64)> {
        let mut client = self.come_back(&url, 0, &tally).await;
        // Chaos: read for a while, then lose the connection one way or the other.
        while !chaos_over.load(Ordering::Relaxed) {
            let stay = Duration::from_millis(self.rng.gen_range(300..2_500));
            let until = Instant::now() + stay;
            while Instant::now() < until {
                if let Some(item) = client.try_next_item(Duration::from_millis(50)).await {
                    self.take(&mut client, item, false).await;
                }
            }
            let last_received = if self.rng.gen_bool(0.5) {
                tally.client_drops.fetch_add(1, Ordering::Relaxed);
                // Items already split off the socket were received; the rest are lost with it.
                for item in client.take_buffered() {
                    self.take(&mut client, item, true).await;
                }
                let received = client.received;
                drop(client);
                received
            } else {
                // Stop answering pings: the server drops the connection with 3012.
                loop {
                    match client.next_item_or_close().await {
                        Ok(item) => self.take(&mut client, item, true).await,
                        Err(closed) => {
                            // 3012; or, rarely, the connection reset before the close frame
                            // was read (1006): the session must come back either way.
                            assert!(
                                [3012, 1006].contains(&closed.code),
                                "client {}: closed with {}",
                                self.who,
                                closed.code
                            );
                            break;
                        }
                    }
                }
                tally.server_drops.fetch_add(1, Ordering::Relaxed);
                client.received
            };
            let pause = Duration::from_millis(self.rng.gen_range(0..300));
            tokio::time::sleep(pause).await;
            client = self.come_back(&url, last_received, &tally).await;
        }
        // Then read until every publication has come.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done = self.seen.iter().all(|s| {
                let n: usize = s.name.trim_start_matches("chaos:c").parse().unwrap();
                let last = finals[n].load(Ordering::Relaxed);
                last > 0 && s.last == last
            });
            if done {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "client {}: not all came",
                self.who
            );
            if let Some(item) = client.try_next_item(Duration::from_millis(100)).await {
                self.take(&mut client, item, false).await;
            }
        }
        self.seen.into_iter().map(|s| (s.name, s.last)).collect()
    }
}

/// Publishes round-robin on the channels at `RATE`, until `over`; returns how many went to each.
async fn publisher(url: String, chaos_over: Arc<AtomicBool>) -> Vec<u64> {
    let (mut client, _) = {
        let mut client = Client::open(&url, Format::Json).await;
        let reply = client.call(connect_with_data(1, "{}")).await;
        (client, reply)
    };
    let mut counts = vec![0u64; CHANNELS];
    let mut id = 10u32;
    let mut pending = 0usize;
    let tick = Duration::from_millis(5);
    let per_tick = (RATE * tick.as_millis() as u64 / 1000) as usize;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while !chaos_over.load(Ordering::Relaxed) {
        interval.tick().await;
        let mut batch = Vec::with_capacity(per_tick);
        for _ in 0..per_tick {
            let n = id as usize % CHANNELS;
            counts[n] += 1;
            let data = format!("{{\"n\":{}}}", counts[n]);
            batch.push(publish(id, &channel(n), &data));
            id += 1;
        }
        pending += batch.len();
        client.send(&batch).await;
        while let Some(item) = client.try_next_item(Duration::from_micros(100)).await {
            pending -= answer(&mut client, item).await;
        }
    }
    while pending > 0 {
        let item = client.next_item().await;
        pending -= answer(&mut client, item).await;
    }
    counts
}

/// Checks a publisher's item: a publish result counts 1; a ping is answered.
async fn answer(client: &mut Client, item: Reply) -> usize {
    assert_eq!(error_code(&item), 0, "a publish failed: {item:?}");
    if item == Reply::default() {
        client.send(&[Command::default()]).await;
        return 0;
    }
    usize::from(item.publish.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_every_publication_once_and_in_order_through_chaos() {
    let namespaces = format!(
        "[{{name = \"chaos\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, \
allow_publish_for_client = true, allow_publish_for_anonymous = true, \
history_size = {HISTORY_SIZE}, history_ttl = \"120s\", force_recovery = true}}]"
    );
    let queue = QUEUE_MAX_SIZE.to_string();
    let journal = JOURNAL_MAX_SIZE.to_string();
    let server = Server::start(&[
        ("RPC_CRYPTO_NAMESPACES", &namespaces),
        ("RPC_CRYPTO_CLIENT__PING_INTERVAL", "1s"),
        ("RPC_CRYPTO_CLIENT__PONG_TIMEOUT", "1s"),
        ("RPC_CRYPTO_CLIENT__QUEUE_MAX_SIZE", &queue),
        ("RPC_CRYPTO_SESSION__RESUME_GRACE", "20s"),
        ("RPC_CRYPTO_SESSION__JOURNAL_MAX_SIZE", &journal),
        ("RPC_CRYPTO_SESSION__MAX_PARKED", "100"),
    ]);

    let tally = Arc::new(Tally::default());
    let chaos_over = Arc::new(AtomicBool::new(false));
    let finals: Arc<Vec<AtomicU64>> = Arc::new((0..CHANNELS).map(|_| AtomicU64::new(0)).collect());
    let mut clients = Vec::new();
    for who in 0..CLIENTS {
        let seen = (0..CHANNELS_PER_CLIENT)
            .map(|k| Seen {
                name: channel((who + k * 5) % CHANNELS),
                epoch: String::new(),
                last: 0,
            })
            .collect();
        let client = ChaosClient {
            who,
            format: if who % 4 == 3 {
                Format::Protobuf
            } else {
                Format::Json
            },
            resumable: who % 2 == 1,
            seen,
            ticket: None,
            rng: rand::rngs::StdRng::seed_from_u64(who as u64),
        };
        let task = client.run(
            server.url.clone(),
            tally.clone(),
            chaos_over.clone(),
            finals.clone(),
        );
        clients.push(tokio::spawn(task));
    }
    // Every client subscribes before the first publication.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = server.rss_kib();

    let publishing = tokio::spawn(publisher(server.url.clone(), chaos_over.clone()));
    let started = Instant::now();
    let mut peak = baseline;
    while started.elapsed() < CHAOS {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak = peak.max(server.rss_kib());
    }
    chaos_over.store(true, Ordering::Relaxed);
    let counts = publishing.await.unwrap();
    for (n, count) in counts.iter().enumerate() {
        finals[n].store(*count, Ordering::Relaxed);
    }
    let total: u64 = counts.iter().sum();
    assert!(
        total as f64 >= RATE as f64 * CHAOS.as_secs_f64() * 0.9,
        "the publisher kept its rate: {total}"
    );
    for client in clients {
        for (name, last) in client.await.unwrap() {
            let n: usize = name.trim_start_matches("chaos:c").parse().unwrap();
            assert_eq!(last, counts[n], "{name}");
        }
    }
    peak = peak.max(server.rss_kib());

    let tally = &*tally;
    eprintln!(
        "published {total}; client drops {}, server drops {}, recoveries {}, resumes {}; \
         RSS {baseline} KiB before, {peak} KiB at peak",
        tally.client_drops.load(Ordering::Relaxed),
        tally.server_drops.load(Ordering::Relaxed),
        tally.recoveries.load(Ordering::Relaxed),
        tally.resumes.load(Ordering::Relaxed),
    );
    for count in [
        &tally.client_drops,
        &tally.server_drops,
        &tally.recoveries,
        &tally.resumes,
    ] {
        assert!(
            count.load(Ordering::Relaxed) > 10,
            "both ways down and back were taken"
        );
    }

    // The bound: history (every channel full, data plus overhead), every resumable session
    // parked with a full queue and journal, every live session with a full queue, and 16 MiB
    // for the rest (connections, allocator).
    let data = 64;
    let history = CHANNELS * HISTORY_SIZE * (data + 48);
    let parked = CLIENTS / 2 * (QUEUE_MAX_SIZE + JOURNAL_MAX_SIZE);
    let live = CLIENTS * QUEUE_MAX_SIZE;
    let bound_kib = ((history + parked + live) / 1024 + 16 * 1024) as u64;
    assert!(
        peak - baseline <= bound_kib,
        "RSS grew {} KiB, over the {bound_kib} KiB the limits allow",
        peak - baseline
    );
    server.assert_no_panic();
}
