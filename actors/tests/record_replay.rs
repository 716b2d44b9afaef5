//! Record, then replay: the real [`Upstream`] connection and HTTP client record what a local
//! stand-in exchange sends, and the replay of that file gives an [`Upstream`] the same messages,
//! in order, at the recorded pace; the recorded GET is answered with the recorded body.
//!
//! Its own test binary: the recorder is process-wide, and no other test may record into it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::{SinkExt, StreamExt};
use rpc_crypto_actors::adapters::capture::{self, Record};
use rpc_crypto_actors::adapters::http;
use rpc_crypto_actors::adapters::record::{self, Recorder};
use rpc_crypto_actors::adapters::replay::{Recording, ReplayServer, ReplaySettings};
use rpc_crypto_actors::adapters::upstream::{Feed, Upstream, UpstreamEvent, UpstreamSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// The stand-in exchange's messages, 100 ms apart.
const MESSAGES: [&str; 5] = [
    r#"{"n":0,"text":"a <- b: c"}"#,
    r#"{"n":1}"#,
    r#"{"n":2,"multi":"line"}"#,
    r#"{"n":3}"#,
    r#"{"n":4}"#,
];
const GAP: Duration = Duration::from_millis(100);
const MARKETS: &str = r#"{"symbols":["NKNUSDT"]}"#;

struct TestFeed {
    url: String,
}

impl Feed for TestFeed {
    fn url(&self, _: &BTreeSet<String>) -> String {
        self.url.clone()
    }
    fn subscribe(&self, channels: &BTreeSet<String>) -> Vec<String> {
        vec![serde_json::json!({ "subscribe": channels }).to_string()]
    }
    fn change(&self, _: &BTreeSet<String>, _: &BTreeSet<String>) -> Option<Vec<String>> {
        None
    }
}

type Events = Arc<Mutex<Vec<(Instant, UpstreamEvent)>>>;

struct Listener(Events);
impl Actor for Listener {
    type Context = Context<Self>;
}
impl Handler<UpstreamEvent> for Listener {
    type Result = ();
    fn handle(&mut self, event: UpstreamEvent, _: &mut Context<Self>) {
        self.0.lock().unwrap().push((Instant::now(), event));
    }
}

/// Connects an upstream to `url` and returns its received messages with when each came.
async fn receive(url: String, count: usize) -> Vec<(Instant, String)> {
    let events = Events::default();
    let listener = Listener(events.clone()).start();
    let upstream = Upstream::spawn(
        Arc::new(TestFeed { url }),
        UpstreamSettings::default(),
        listener.recipient(),
    );
    upstream.set_channels(["a".to_owned()].into());
    let messages = || -> Vec<(Instant, String)> {
        events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(at, e)| match e {
                UpstreamEvent::Message(text) => Some((*at, text.clone())),
                _ => None,
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while messages().len() < count && Instant::now() < deadline {
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    drop(upstream);
    let seen = events.lock().unwrap();
    assert!(
        matches!(seen.first(), Some((_, UpstreamEvent::Connected { .. }))),
        "{seen:?}"
    );
    drop(seen);
    messages()
}

/// A stand-in exchange: takes the subscription, sends [`MESSAGES`] [`GAP`] apart, stays open.
async fn exchange() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/stream", listener.local_addr().unwrap());
    actix::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            actix::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let _subscription = ws.next().await;
                for (i, message) in MESSAGES.iter().enumerate() {
                    if i > 0 {
                        actix::clock::sleep(GAP).await;
                    }
                    // One message with a line break in a JSON string's surroundings.
                    let text = message.replace(",\"multi\"", ",\n\"multi\"");
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    url
}

/// A stand-in REST API answering every GET with [`MARKETS`].
async fn rest() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    actix::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut request = vec![0u8; 4096];
            let _ = tcp.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{MARKETS}",
                MARKETS.len()
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
        }
    });
    url
}

fn span(messages: &[(Instant, String)]) -> f64 {
    (messages[messages.len() - 1].0 - messages[0].0).as_secs_f64()
}

#[actix::test]
async fn what_is_recorded_is_replayed_in_order_at_its_pace() {
    let path = std::env::temp_dir().join(format!(
        "rpc-crypto-record-replay-{}.rec",
        std::process::id()
    ));
    record::install(Recorder::create(&path, "binance", 1024).unwrap())
        .unwrap_or_else(|_| panic!("installed once"));
    assert!(record::active());

    // Record.
    let markets_url = format!("{}/api/v3/exchangeInfo?x=1", rest().await);
    let body = http::get(&markets_url, Duration::from_secs(5), 1 << 20)
        .await
        .unwrap();
    assert_eq!(body, MARKETS.as_bytes());
    let live = receive(exchange().await, MESSAGES.len()).await;
    assert_eq!(live.len(), MESSAGES.len());
    let summary = record::finish().unwrap();
    assert!(!record::active());
    // The GET, the connection, the subscription, the messages.
    assert_eq!(summary.records, 3 + MESSAGES.len() as u64);
    assert_eq!(summary.dropped, 0);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(summary.bytes, text.len() as u64);
    assert_eq!(
        capture::header(&text).unwrap().map(|h| h.exchange),
        Some("binance")
    );
    let kinds: Vec<&str> = capture::records(&text)
        .map(|r| match r.unwrap() {
            Record::Http { .. } => "http",
            Record::Connected { url, .. } => {
                assert!(url.ends_with("/stream"), "{url}");
                "connected"
            }
            Record::Sent { message, .. } => {
                assert_eq!(message, r#"{"subscribe":["a"]}"#);
                "sent"
            }
            Record::Received { .. } => "received",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "http",
            "connected",
            "sent",
            "received",
            "received",
            "received",
            "received",
            "received"
        ]
    );

    // Replay: the same messages in order (the line break written as a space, which JSON does
    // not mind), as fast as they are taken, and the recorded answer to the same GET.
    let recording = Recording::load(&ReplaySettings {
        enabled: true,
        file: path.display().to_string(),
        ..ReplaySettings::default()
    })
    .unwrap();
    assert!(recording.warnings.is_empty(), "{:?}", recording.warnings);
    assert_eq!(recording.exchange(), "binance");
    let recording = Arc::new(recording);
    let expected: Vec<String> = MESSAGES
        .iter()
        .map(|m| m.replace(",\"multi\"", ", \"multi\""))
        .collect();
    let server = ReplayServer::start(recording.clone(), 0.0, false).unwrap();
    let body = http::get(
        &format!("{}/api/v3/exchangeInfo?x=1", server.http_url()),
        Duration::from_secs(5),
        1 << 20,
    )
    .await
    .unwrap();
    assert_eq!(body, MARKETS.as_bytes());
    let replayed = receive(server.ws_url(), MESSAGES.len()).await;
    let texts: Vec<&String> = replayed.iter().map(|(_, t)| t).collect();
    assert_eq!(texts, expected.iter().collect::<Vec<_>>());
    for (text, expected) in replayed.iter().zip(&expected) {
        let value: serde_json::Value = serde_json::from_str(&text.1).unwrap();
        assert_eq!(
            value,
            serde_json::from_str::<serde_json::Value>(expected).unwrap()
        );
    }
    assert!(span(&replayed) < 0.2, "speed 0: {}s", span(&replayed));
    server.stop();

    // At speed 1 the replay takes as long as the recording did (400 ms).
    let server = ReplayServer::start(recording, 1.0, false).unwrap();
    let replayed = receive(server.ws_url(), MESSAGES.len()).await;
    let (recorded, played) = (span(&live), span(&replayed));
    assert!(
        (played - recorded).abs() < 0.15,
        "recorded {recorded}s, replayed {played}s"
    );
    server.stop();
    let _ = std::fs::remove_file(&path);
}
