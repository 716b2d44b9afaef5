//! The generator's latency and loss accounting, checked against a tiny server whose delay and
//! drops the test controls. The server speaks just enough NATS-over-WebSocket for the generator:
//! it answers PING, remembers SUBs, and delivers each PUB to every subscriber after `delay`,
//! except every `drop_every`-th publication, which it drops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rpc_crypto_bench::scenario::{fanout, Fanout};
use rpc_crypto_bench::target::Target;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

struct Behaviour {
    delay: Duration,
    /// 0: drop nothing.
    drop_every: u64,
}

type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<Vec<u8>>>>>;

async fn fake_nats(behaviour: Behaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let behaviour = Arc::new(behaviour);
    let subscribers: Subscribers = Arc::default();
    let published = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            tokio::spawn(connection(
                ws,
                behaviour.clone(),
                subscribers.clone(),
                published.clone(),
            ));
        }
    });
    url
}

async fn connection(
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    behaviour: Arc<Behaviour>,
    subscribers: Subscribers,
    published: Arc<AtomicU64>,
) {
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if sink.send(Message::binary(bytes)).await.is_err() {
                break;
            }
        }
    });
    tx.send(b"INFO {}\r\n".to_vec()).unwrap();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(Ok(message)) = stream.next().await {
        buf.extend_from_slice(&message.into_data());
        while let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut words = line.split(' ');
            match words.next() {
                Some("PING") => {
                    tx.send(b"PONG\r\n".to_vec()).unwrap();
                    buf.drain(..end + 2);
                }
                Some("SUB") => {
                    subscribers.lock().unwrap().push(tx.clone());
                    buf.drain(..end + 2);
                }
                Some("PUB") => {
                    let len: usize = words.nth(1).unwrap().parse().unwrap();
                    if buf.len() < end + 2 + len + 2 {
                        break; // the payload is still on its way
                    }
                    let payload = buf[end + 2..end + 2 + len].to_vec();
                    buf.drain(..end + 2 + len + 2);
                    let n = published.fetch_add(1, Ordering::Relaxed) + 1;
                    if behaviour.drop_every != 0 && n % behaviour.drop_every == 0 {
                        continue;
                    }
                    let mut msg = format!("MSG bench.fanout 1 {len}\r\n").into_bytes();
                    msg.extend_from_slice(&payload);
                    msg.extend_from_slice(b"\r\n");
                    let targets = subscribers.lock().unwrap().clone();
                    let delay = behaviour.delay;
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        for target in targets {
                            let _ = target.send(msg.clone());
                        }
                    });
                }
                _ => {
                    buf.drain(..end + 2);
                }
            }
        }
    }
}

fn params(url: String) -> Fanout {
    Fanout {
        target: Target::Nats,
        url,
        subscribers: 5,
        publishers: 1,
        rate: 400,
        size: 64,
        warmup: Duration::from_millis(300),
        duration: Duration::from_secs(1),
        drain: Duration::from_millis(500),
        server_pid: None,
        secure: None,
    }
}

#[tokio::test]
async fn latency_is_the_servers_delay() {
    let url = fake_nats(Behaviour {
        delay: Duration::from_millis(40),
        drop_every: 0,
    })
    .await;
    let report = fanout(params(url)).await.unwrap();
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(report.expected, report.published * 5);
    assert!((380..=420).contains(&report.published), "{report:?}");
    assert!(report.p50_ms >= 40.0 && report.p50_ms < 55.0, "{report:?}");
    assert!(report.p99_ms >= 40.0 && report.p99_ms < 80.0, "{report:?}");
}

#[tokio::test]
async fn loss_is_what_the_server_dropped() {
    let url = fake_nats(Behaviour {
        delay: Duration::from_millis(1),
        drop_every: 10,
    })
    .await;
    let report = fanout(params(url)).await.unwrap();
    // Every tenth publication is dropped for all five subscribers.
    let share = report.lost as f64 / report.expected as f64;
    assert!(
        (0.09..=0.11).contains(&share),
        "lost {share:.3} of expected: {report:?}"
    );
    assert_eq!(
        report.lost % 5,
        0,
        "a dropped publication is lost by every subscriber"
    );
    assert_eq!(report.delivered + report.lost, report.expected);
    assert!(report.p50_ms < 10.0, "{report:?}");
}
