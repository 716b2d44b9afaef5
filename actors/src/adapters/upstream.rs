//! One upstream WebSocket connection to an exchange, kept up for as long as its adapter wants
//! channels: it connects (`wss://` over rustls, `ws://` for local tests), sends the feed's
//! subscriptions, hands every text message to the adapter, sends the exchange's pings, treats a
//! connection that stays silent past the heartbeat timeout as dead, and reconnects with
//! exponential backoff and jitter, subscribing again. What is exchange-specific (URLs,
//! subscription messages, pings) is the [`Feed`]; what the messages mean is the adapter's.
//!
//! The connection runs as a tokio task owned by the adapter actor: the actor sets the wanted
//! channels with [`Upstream::set_channels`] and hears back through a `Recipient<UpstreamEvent>`.
//! With no channel wanted there is no connection at all.
//!
//! Under `rpc-crypto record`, each connection opened, message sent and text message received is
//! also told to the [`record`] hooks (one atomic load each when nothing is recorded).

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::prelude::*;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

use super::record;

/// What is exchange-specific about a connection.
pub trait Feed: Send + Sync + 'static {
    /// The URL to connect to for `channels` (Binance names its streams in the URL).
    fn url(&self, channels: &BTreeSet<String>) -> String;
    /// What to send once connected, to subscribe `channels`.
    fn subscribe(&self, channels: &BTreeSet<String>) -> Vec<String>;
    /// What to send when the wanted channels change on a live connection: `None` means the
    /// connection must be made again (a URL that names the streams).
    fn change(&self, added: &BTreeSet<String>, removed: &BTreeSet<String>) -> Option<Vec<String>>;
    /// An application-level ping and how often to send it, if the exchange wants one.
    fn ping(&self) -> Option<(Duration, String)> {
        None
    }
}

/// How the connection behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// No message for this long: the connection is dead (exchanges send heartbeats or data
    /// far more often).
    pub heartbeat_timeout: Duration,
    /// How long a connect may take.
    pub connect_timeout: Duration,
    /// The first wait before reconnecting; it doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// The largest message taken.
    pub max_message_size: usize,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            heartbeat_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_message_size: 16 << 20,
        }
    }
}

/// What the connection tells its adapter.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum UpstreamEvent {
    /// Connected and subscribed to these channels: books must be rebuilt from here on.
    Connected { channels: BTreeSet<String> },
    /// A text message from the exchange.
    Message(String),
    /// The connection ended (or could not be made); it is made again after a backoff.
    Disconnected { reason: String },
}

enum Command {
    Channels(BTreeSet<String>),
    Send(String),
    /// Drop the connection and make it again (a resync that needs a fresh subscription).
    Reconnect,
}

/// The adapter's handle on its connection task; dropping it ends the task.
pub struct Upstream {
    commands: mpsc::UnboundedSender<Command>,
}

impl Upstream {
    /// Starts the connection task (idle until channels are wanted).
    pub fn spawn(
        feed: Arc<dyn Feed>,
        settings: UpstreamSettings,
        events: Recipient<UpstreamEvent>,
    ) -> Upstream {
        // Unbounded is bounded in practice: the adapter sends a command per demand change, and
        // demand is bounded by the channels there are.
        let (commands, receiver) = mpsc::unbounded_channel();
        actix::spawn(run(feed, settings, events, receiver));
        Upstream { commands }
    }

    /// The channels the adapter wants now; none closes the connection.
    pub fn set_channels(&self, channels: BTreeSet<String>) {
        let _ = self.commands.send(Command::Channels(channels));
    }

    /// Sends a message on the live connection (dropped when there is none).
    pub fn send(&self, text: String) {
        let _ = self.commands.send(Command::Send(text));
    }

    /// Makes the connection again, subscribing afresh.
    pub fn reconnect(&self) {
        let _ = self.commands.send(Command::Reconnect);
    }
}

/// The TLS client configuration, built once: ring (as the server's TLS), Mozilla's roots.
fn tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots: rustls::RootCertStore =
                webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Why a live connection ended.
enum Ended {
    /// The adapter wants no channel any more.
    Idle,
    /// The adapter's handle is gone.
    Stopped,
    /// Connect again (at once: the adapter asked, or the channels need another URL).
    Again(String),
    /// Lost: connect again after the backoff.
    Lost(String),
}

async fn run(
    feed: Arc<dyn Feed>,
    settings: UpstreamSettings,
    events: Recipient<UpstreamEvent>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut channels = BTreeSet::new();
    let mut backoff = settings.min_backoff;
    loop {
        // Idle until some channel is wanted.
        while channels.is_empty() {
            match commands.recv().await {
                Some(Command::Channels(wanted)) => channels = wanted,
                Some(_) => {}
                None => return,
            }
        }
        let (ended, connected) =
            session(&*feed, &settings, &events, &mut commands, &mut channels).await;
        // A connection that was made starts the backoff over.
        if connected {
            backoff = settings.min_backoff;
        }
        let wait = match ended {
            Ended::Stopped => return,
            Ended::Idle => continue,
            Ended::Again(reason) => {
                events.do_send(UpstreamEvent::Disconnected { reason });
                backoff = settings.min_backoff;
                continue;
            }
            Ended::Lost(reason) => {
                events.do_send(UpstreamEvent::Disconnected { reason });
                // Full jitter, so that many adapters do not come back in step.
                let wait = rand::thread_rng().gen_range(backoff / 2..=backoff);
                backoff = (backoff * 2).min(settings.max_backoff);
                wait
            }
        };
        // Commands during the wait still count: channels may change or go.
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                command = commands.recv() => match command {
                    Some(Command::Channels(wanted)) => channels = wanted,
                    Some(_) => {}
                    None => return,
                },
            }
        }
    }
}

/// One connection, from connect to its end; also whether it was made.
async fn session(
    feed: &dyn Feed,
    settings: &UpstreamSettings,
    events: &Recipient<UpstreamEvent>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    channels: &mut BTreeSet<String>,
) -> (Ended, bool) {
    match connection(feed, settings, events, commands, channels).await {
        Ok(ended) => (ended, true),
        Err(ended) => (ended, false),
    }
}

/// Connects (`Err` when that fails), then serves the connection until it ends.
async fn connection(
    feed: &dyn Feed,
    settings: &UpstreamSettings,
    events: &Recipient<UpstreamEvent>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    channels: &mut BTreeSet<String>,
) -> Result<Ended, Ended> {
    let url = feed.url(channels);
    let config = WebSocketConfig::default()
        .max_message_size(Some(settings.max_message_size))
        .max_frame_size(Some(settings.max_message_size));
    let connector = url.starts_with("wss:").then(|| Connector::Rustls(tls()));
    let connect =
        tokio_tungstenite::connect_async_tls_with_config(&url, Some(config), true, connector);
    let mut ws = match tokio::time::timeout(settings.connect_timeout, connect).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(error)) => return Err(Ended::Lost(format!("connect: {error}"))),
        Err(_) => return Err(Ended::Lost("connect: timed out".into())),
    };
    record::connected(&url);
    Ok(serve(feed, settings, events, commands, channels, &url, &mut ws).await)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Subscribes, then passes messages on until the connection ends.
async fn serve(
    feed: &dyn Feed,
    settings: &UpstreamSettings,
    events: &Recipient<UpstreamEvent>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    channels: &mut BTreeSet<String>,
    url: &str,
    ws: &mut Socket,
) -> Ended {
    for message in feed.subscribe(channels) {
        record::sent(url, &message);
        if let Err(error) = ws.send(Message::text(message)).await {
            return Ended::Lost(format!("subscribe: {error}"));
        }
    }
    events.do_send(UpstreamEvent::Connected {
        channels: channels.clone(),
    });
    let ping = feed.ping();
    let mut pings = tokio::time::interval(ping.as_ref().map_or(Duration::from_secs(3600), |p| p.0));
    pings.tick().await;
    // Only what the exchange sends proves it alive: our own pings and commands do not.
    let mut heard = tokio::time::Instant::now();
    loop {
        let silence = tokio::time::sleep_until(heard + settings.heartbeat_timeout);
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    heard = tokio::time::Instant::now();
                    record::received(&text);
                    events.do_send(UpstreamEvent::Message(text.to_string()));
                }
                Some(Ok(Message::Binary(_))) => {
                    let _ = ws.close(None).await;
                    return Ended::Lost("a binary message from an exchange that sends text".into());
                }
                // tungstenite answers pings itself; pongs and raw frames need nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                    heard = tokio::time::Instant::now();
                }
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map_or_else(|| "closed".to_owned(), |f| format!("closed: {} {}", f.code, f.reason));
                    return Ended::Lost(reason);
                }
                Some(Err(error)) => return Ended::Lost(error.to_string()),
                None => return Ended::Lost("connection ended".into()),
            },
            () = silence => {
                let _ = ws.close(None).await;
                return Ended::Lost(format!("no message for {:?}", settings.heartbeat_timeout));
            }
            _ = pings.tick(), if ping.is_some() => {
                if let Some((_, text)) = &ping {
                    record::sent(url, text);
                    if let Err(error) = ws.send(Message::text(text.clone())).await {
                        return Ended::Lost(format!("ping: {error}"));
                    }
                }
            }
            command = commands.recv() => match command {
                None => {
                    let _ = ws.close(None).await;
                    return Ended::Stopped;
                }
                Some(Command::Send(text)) => {
                    record::sent(url, &text);
                    if let Err(error) = ws.send(Message::text(text)).await {
                        return Ended::Lost(format!("send: {error}"));
                    }
                }
                Some(Command::Reconnect) => {
                    let _ = ws.close(None).await;
                    return Ended::Again("reconnect asked".into());
                }
                Some(Command::Channels(wanted)) => {
                    if wanted.is_empty() {
                        *channels = wanted;
                        let _ = ws.close(None).await;
                        return Ended::Idle;
                    }
                    let added: BTreeSet<String> = wanted.difference(channels).cloned().collect();
                    let removed: BTreeSet<String> = channels.difference(&wanted).cloned().collect();
                    *channels = wanted;
                    match feed.change(&added, &removed) {
                        Some(messages) => {
                            for message in messages {
                                record::sent(url, &message);
                                if let Err(error) = ws.send(Message::text(message)).await {
                                    return Ended::Lost(format!("subscribe: {error}"));
                                }
                            }
                            events.do_send(UpstreamEvent::Connected { channels: channels.clone() });
                        }
                        None => {
                            let _ = ws.close(None).await;
                            return Ended::Again("the channels need another connection".into());
                        }
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::net::TcpListener;

    use super::*;

    /// A feed that subscribes with `{"subscribe": [channels]}` and changes in place.
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
        fn change(&self, added: &BTreeSet<String>, _: &BTreeSet<String>) -> Option<Vec<String>> {
            Some(vec![serde_json::json!({ "subscribe": added }).to_string()])
        }
    }

    struct Recorder(Arc<Mutex<Vec<UpstreamEvent>>>);
    impl Actor for Recorder {
        type Context = Context<Self>;
    }
    impl Handler<UpstreamEvent> for Recorder {
        type Result = ();
        fn handle(&mut self, event: UpstreamEvent, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(event);
        }
    }

    async fn until(events: &Arc<Mutex<Vec<UpstreamEvent>>>, count: usize) -> Vec<UpstreamEvent> {
        for _ in 0..500 {
            if events.lock().unwrap().len() >= count {
                break;
            }
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
        events.lock().unwrap().clone()
    }

    /// A server that, on each connection, records what it is sent first, sends "hello N", and
    /// then says nothing more (a stalled exchange).
    async fn stalling_server() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        actix::spawn(async move {
            let mut n = 0;
            while let Ok((tcp, _)) = listener.accept().await {
                n += 1;
                let log = log.clone();
                actix::spawn(async move {
                    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                    if let Some(Ok(Message::Text(text))) = ws.next().await {
                        log.lock().unwrap().push(text.to_string());
                    }
                    ws.send(Message::text(format!("hello {n}"))).await.unwrap();
                    // Keep the socket open and silent.
                    while let Some(Ok(_)) = ws.next().await {}
                });
            }
        });
        (url, received)
    }

    #[actix::test]
    async fn a_silent_connection_is_dropped_and_made_again_with_its_subscriptions() {
        let (url, received) = stalling_server().await;
        let events = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder(events.clone()).start();
        let settings = UpstreamSettings {
            heartbeat_timeout: Duration::from_millis(300),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
            ..UpstreamSettings::default()
        };
        let upstream = Upstream::spawn(Arc::new(TestFeed { url }), settings, recorder.recipient());
        let wanted: BTreeSet<String> = ["a".to_owned()].into();
        upstream.set_channels(wanted.clone());
        let seen = until(&events, 5).await;
        assert_eq!(
            &seen[..5],
            &[
                UpstreamEvent::Connected {
                    channels: wanted.clone()
                },
                UpstreamEvent::Message("hello 1".into()),
                UpstreamEvent::Disconnected {
                    reason: "no message for 300ms".into()
                },
                UpstreamEvent::Connected { channels: wanted },
                UpstreamEvent::Message("hello 2".into()),
            ]
        );
        // Each connection subscribed again.
        let subscriptions = received.lock().unwrap().clone();
        assert_eq!(
            &subscriptions[..2],
            &[r#"{"subscribe":["a"]}"#, r#"{"subscribe":["a"]}"#]
        );
        // No channel wanted: no connection, and no more events.
        upstream.set_channels(BTreeSet::new());
        actix::clock::sleep(Duration::from_millis(100)).await;
        let count = events.lock().unwrap().len();
        actix::clock::sleep(Duration::from_millis(700)).await;
        assert_eq!(events.lock().unwrap().len(), count, "idle: no reconnects");
    }

    /// A feed that pings every 50 ms.
    struct PingingFeed(TestFeed);

    impl Feed for PingingFeed {
        fn url(&self, channels: &BTreeSet<String>) -> String {
            self.0.url(channels)
        }
        fn subscribe(&self, channels: &BTreeSet<String>) -> Vec<String> {
            self.0.subscribe(channels)
        }
        fn change(&self, a: &BTreeSet<String>, r: &BTreeSet<String>) -> Option<Vec<String>> {
            self.0.change(a, r)
        }
        fn ping(&self) -> Option<(Duration, String)> {
            Some((Duration::from_millis(50), "{\"event\":\"ping\"}".into()))
        }
    }

    #[actix::test]
    async fn our_own_pings_do_not_keep_a_silent_connection_alive() {
        let (url, _) = stalling_server().await;
        let events = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder(events.clone()).start();
        let settings = UpstreamSettings {
            heartbeat_timeout: Duration::from_millis(300),
            ..UpstreamSettings::default()
        };
        let feed = PingingFeed(TestFeed { url });
        let upstream = Upstream::spawn(Arc::new(feed), settings, recorder.recipient());
        upstream.set_channels(["a".to_owned()].into());
        let seen = until(&events, 3).await;
        assert_eq!(
            seen.get(2),
            Some(&UpstreamEvent::Disconnected {
                reason: "no message for 300ms".into()
            })
        );
    }

    #[actix::test]
    async fn a_refused_connection_is_tried_again_with_backoff() {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let events = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder(events.clone()).start();
        let settings = UpstreamSettings {
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(40),
            ..UpstreamSettings::default()
        };
        let feed = TestFeed {
            url: format!("ws://127.0.0.1:{port}"),
        };
        let upstream = Upstream::spawn(Arc::new(feed), settings, recorder.recipient());
        upstream.set_channels(["a".to_owned()].into());
        let seen = until(&events, 3).await;
        assert!(seen.len() >= 3);
        assert!(seen.iter().all(|e| matches!(e, UpstreamEvent::Disconnected { reason } if reason.starts_with("connect:"))));
    }
}
