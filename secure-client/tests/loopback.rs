//! The client against a tiny in-test server on 127.0.0.1, built from the proto layer's
//! server-side functions. RSA keys are generated once per test binary; each test runs few
//! handshakes, since RSA is slow in debug builds.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::OsRng;
use rpc_crypto_proto::secure::{
    negotiate_version, open_client_frame, seal_server_frame, verify_challenge, AesKey, ClientHello,
    ClientLayout, ClientMessage, ClientMessageType, PrivateKey, ServerHello, ServerMessage,
};
use rpc_crypto_secure_client::{raw, ClientError, ClientKeys, Event, Options, SecureClient};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(20);

fn generate() -> PrivateKey {
    PrivateKey::generate(&mut OsRng, 2048).expect("RSA-2048 key generation")
}

fn server_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(generate)
}

fn client_key() -> &'static Arc<PrivateKey> {
    static KEY: OnceLock<Arc<PrivateKey>> = OnceLock::new();
    KEY.get_or_init(|| Arc::new(generate()))
}

fn keys() -> ClientKeys {
    ClientKeys {
        client_id: "robot-gambler".into(),
        private_key: Arc::clone(client_key()),
        server_public_key: server_key().public_key(),
    }
}

fn options(version: u32, last_seen_order: i64) -> Options {
    Options {
        version,
        last_seen_order,
        ..Options::default()
    }
}

type ServerWs = WebSocketStream<TcpStream>;

/// Listens on 127.0.0.1:0, accepts one WebSocket and runs `script` on it.
async fn serve<F, Fut>(script: F) -> (String, JoinHandle<()>)
where
    F: FnOnce(ServerWs) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        script(ws).await;
    });
    (url, task)
}

/// The server's side of an established session.
struct Session {
    ws: ServerWs,
    hello: ClientHello,
    server_aes: AesKey,
    layout: ClientLayout,
}

impl Session {
    /// Runs the server's side of the handshake, answering with `last_seen_sequence`.
    async fn accept(mut ws: ServerWs, last_seen_sequence: i64) -> Session {
        let msg1 = next_binary(&mut ws).await;
        let hello = ClientHello::open(server_key(), &msg1, &mut OsRng).unwrap();
        assert_eq!(hello.client_id, "robot-gambler");
        let version = negotiate_version(hello.version);
        let challenge = ServerHello::generate(&mut OsRng, last_seen_sequence, version);
        let msg2 = challenge
            .seal(&client_key().public_key(), &mut OsRng)
            .unwrap();
        ws.send(Message::Binary(msg2.into())).await.unwrap();
        let msg3 = next_binary(&mut ws).await;
        verify_challenge(&client_key().public_key(), &challenge.data_to_sign, &msg3).unwrap();
        Session {
            ws,
            hello,
            server_aes: challenge.server_key,
            layout: ClientLayout::for_version(version),
        }
    }

    async fn recv(&mut self) -> ClientMessage {
        let frame = next_binary(&mut self.ws).await;
        open_client_frame(
            &self.hello.client_key,
            self.layout,
            &client_key().public_key(),
            &frame,
        )
        .unwrap()
    }

    async fn send(&mut self, message: ServerMessage) {
        let frame = seal_server_frame(&self.server_aes, &message, &mut OsRng).unwrap();
        self.ws.send(Message::Binary(frame.into())).await.unwrap();
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        self.ws.close(Some(frame)).await.unwrap();
        // Wait for the client's reply.
        while let Some(Ok(_)) = self.ws.next().await {}
    }
}

async fn next_binary(ws: &mut ServerWs) -> Vec<u8> {
    loop {
        match ws.next().await.expect("client hung up").unwrap() {
            Message::Binary(bytes) => return bytes.to_vec(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn outbox(order: i64, json: &str) -> ServerMessage {
    ServerMessage::Outbox {
        order,
        timestamp: 1_517_000_000.5,
        json: json.into(),
    }
}

async fn next(client: &mut SecureClient) -> Event {
    tokio::time::timeout(WAIT, client.next())
        .await
        .expect("no event in time")
        .unwrap()
}

async fn join(task: JoinHandle<()>) {
    tokio::time::timeout(WAIT, task)
        .await
        .expect("server did not finish")
        .unwrap();
}

/// Version 1: no version field, signed frames, the zero-byte heartbeat, sequences from
/// `last_seen_sequence + 1`, a chosen sequence that leaves the counter alone, close code.
#[tokio::test]
async fn version_1_signed_heartbeat_sequences_and_close() {
    let (url, server) = serve(|ws| async move {
        let mut s = Session::accept(ws, 41).await;
        assert_eq!(s.hello.version, 1);
        assert_eq!(s.hello.last_seen_order, 3);
        assert_eq!(s.layout, ClientLayout::Signed);
        s.ws.send(Message::Binary(vec![0u8].into())).await.unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            let m = s.recv().await;
            assert_eq!(m.kind, ClientMessageType::Inbox);
            got.push((m.id, String::from_utf8(m.json).unwrap()));
        }
        assert_eq!(
            got,
            [
                (42, r#"{"a":1}"#.to_string()),
                (43, r#"{"a":2}"#.to_string()),
                (7, r#"{"replay":true}"#.to_string()),
                (44, r#"{"a":3}"#.to_string()),
            ]
        );
        s.close(4001, "invalid sequence").await;
    })
    .await;

    let (mut client, handshake) = SecureClient::connect(&url, &keys(), options(1, 3))
        .await
        .unwrap();
    assert_eq!(handshake.last_seen_sequence, 41);
    assert_eq!(handshake.server_version, 1);
    assert_eq!(client.version(), 1);
    assert_eq!(client.last_seen_order(), 3);
    assert_eq!(next(&mut client).await, Event::Heartbeat);

    assert_eq!(client.send_inbox(r#"{"a":1}"#).await.unwrap(), 42);
    assert_eq!(client.send_inbox(r#"{"a":2}"#).await.unwrap(), 43);
    client
        .send_inbox_with_sequence(7, r#"{"replay":true}"#)
        .await
        .unwrap();
    assert_eq!(client.send_inbox(r#"{"a":3}"#).await.unwrap(), 44);
    assert_eq!(client.last_sequence(), 44);

    assert_eq!(
        next(&mut client).await,
        Event::Closed {
            code: 4001,
            reason: "invalid sequence".into()
        }
    );
    match client.next().await {
        Err(ClientError::Closed { code: 4001, reason }) => assert_eq!(reason, "invalid sequence"),
        other => panic!("expected Closed, got {other:?}"),
    }
    join(server).await;
    client.close().await.unwrap();
}

/// Version 2 (still signed): an RPC whose response comes after an outbox message, a broadcast
/// and another request's response; those come from `next` afterwards, in order.
/// `last_seen_order` keeps the highest ORDER returned. Then a text frame is refused.
#[tokio::test]
async fn version_2_rpc_buffers_other_messages_and_tracks_order() {
    let (url, server) = serve(|ws| async move {
        let mut s = Session::accept(ws, 0).await;
        assert_eq!(s.hello.version, 2);
        assert_eq!(s.layout, ClientLayout::Signed);
        let first = s.recv().await;
        assert_eq!(first.kind, ClientMessageType::RpcRequest);
        assert_eq!(first.id, 1);
        let second = s.recv().await;
        assert_eq!(second.id, 2);
        assert_eq!(second.json, br#"{"method":"balance"}"#);
        s.send(outbox(10, r#"{"n":10}"#)).await;
        s.send(ServerMessage::Broadcast {
            json: r#"{"@type":"OrderBookAgg"}"#.into(),
        })
        .await;
        s.send(ServerMessage::RpcResponse {
            request_id: 1,
            json: r#"{"first":true}"#.into(),
        })
        .await;
        s.send(outbox(7, r#"{"n":7}"#)).await;
        s.send(ServerMessage::RpcResponse {
            request_id: 2,
            json: r#"{"balance":"1.5"}"#.into(),
        })
        .await;
        s.send(outbox(12, r#"{"n":12}"#)).await;
        s.ws.send(Message::text("not binary")).await.unwrap();
        // Wait for the client to hang up.
        while let Some(Ok(_)) = s.ws.next().await {}
    })
    .await;

    let (mut client, handshake) = SecureClient::connect(&url, &keys(), options(2, 0))
        .await
        .unwrap();
    assert_eq!(handshake.server_version, 2);
    assert_eq!(client.send_rpc(r#"{"method":"ping"}"#).await.unwrap(), 1);
    let response = client.rpc(r#"{"method":"balance"}"#, WAIT).await.unwrap();
    assert_eq!(response, r#"{"balance":"1.5"}"#);
    // Buffered messages are not "seen" until `next` returns them.
    assert_eq!(client.last_seen_order(), 0);

    assert_eq!(
        next(&mut client).await,
        Event::Message(outbox(10, r#"{"n":10}"#))
    );
    assert_eq!(client.last_seen_order(), 10);
    assert!(matches!(
        next(&mut client).await,
        Event::Message(ServerMessage::Broadcast { .. })
    ));
    assert_eq!(
        next(&mut client).await,
        Event::Message(ServerMessage::RpcResponse {
            request_id: 1,
            json: r#"{"first":true}"#.into()
        })
    );
    assert_eq!(
        next(&mut client).await,
        Event::Message(outbox(7, r#"{"n":7}"#))
    );
    assert_eq!(
        client.last_seen_order(),
        10,
        "the highest ORDER, not the last"
    );
    assert_eq!(
        next(&mut client).await,
        Event::Message(outbox(12, r#"{"n":12}"#))
    );
    assert_eq!(client.last_seen_order(), 12);
    match client.next().await {
        Err(ClientError::UnexpectedFrame(what)) => assert!(what.contains("text")),
        other => panic!("expected UnexpectedFrame, got {other:?}"),
    }
    drop(client);
    join(server).await;
}

/// Version 5 (plain frames): sequences from `last_seen_sequence + 1`, pings answered while
/// reading, `next_timeout` on silence, an rpc, Debug without secrets, and a tampered frame
/// that the server refuses (it closes with 1008).
#[tokio::test]
async fn version_5_plain_frames_ping_and_tampered_frame() {
    let (url, server) = serve(|ws| async move {
        let mut s = Session::accept(ws, 99).await;
        assert_eq!(s.hello.version, 5);
        assert_eq!(s.layout, ClientLayout::Plain);
        let m = s.recv().await;
        assert_eq!((m.kind, m.id), (ClientMessageType::Inbox, 100));
        s.ws.send(Message::Ping(b"hb".to_vec().into()))
            .await
            .unwrap();
        s.send(outbox(3, "{}")).await;
        // The client answered the ping while reading the outbox message.
        match tokio::time::timeout(WAIT, s.ws.next()).await.unwrap() {
            Some(Ok(Message::Pong(payload))) => assert_eq!(&payload[..], b"hb"),
            other => panic!("expected a pong, got {other:?}"),
        }
        let m = s.recv().await;
        assert_eq!((m.kind, m.id), (ClientMessageType::RpcRequest, 1));
        s.send(ServerMessage::RpcResponse {
            request_id: 1,
            json: r#"{"ok":1}"#.into(),
        })
        .await;
        let m = s.recv().await;
        assert_eq!((m.kind, m.id), (ClientMessageType::Inbox, 101));
        // The tampered frame (a byte short) does not open: one generic error, then close.
        let frame = next_binary(&mut s.ws).await;
        let refused = open_client_frame(
            &s.hello.client_key,
            s.layout,
            &client_key().public_key(),
            &frame,
        );
        assert!(refused.is_err());
        s.close(1008, "").await;
    })
    .await;

    let (mut client, handshake) = SecureClient::connect(&url, &keys(), Options::default())
        .await
        .unwrap();
    assert_eq!(handshake.server_version, 5);
    assert_eq!(handshake.last_seen_sequence, 99);
    assert_eq!(client.send_inbox("{}").await.unwrap(), 100);
    assert_eq!(next(&mut client).await, Event::Message(outbox(3, "{}")));
    assert_eq!(client.rpc(r#"{"m":1}"#, WAIT).await.unwrap(), r#"{"ok":1}"#);
    assert_eq!(
        client
            .next_timeout(Duration::from_millis(50))
            .await
            .unwrap(),
        None
    );
    let debug = format!("{client:?}");
    assert!(debug.contains("version: 5") && !debug.to_lowercase().contains("aes"));

    assert_eq!(client.send_inbox("{}").await.unwrap(), 101);
    let mut frame = client.seal_inbox_frame(102, "{}").unwrap();
    frame.pop();
    client
        .send_raw(Message::Binary(frame.into()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        Event::Closed {
            code: 1008,
            reason: String::new()
        }
    );
    join(server).await;
}

/// The raw steps: a hello sealed to the wrong key is refused by the server, which closes the
/// connection before answering.
#[tokio::test]
async fn raw_hello_to_the_wrong_key_is_refused() {
    let (url, server) = serve(|mut ws| async move {
        let msg1 = next_binary(&mut ws).await;
        assert!(ClientHello::open(server_key(), &msg1, &mut OsRng).is_err());
        ws.close(Some(CloseFrame {
            code: CloseCode::Policy,
            reason: "".into(),
        }))
        .await
        .unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;

    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let hello = ClientHello::generate(&mut OsRng, "robot-gambler", 0, 5);
    // Sealed to the client's own key instead of the server's.
    raw::send_client_hello(&mut ws, &hello, &client_key().public_key(), &mut OsRng)
        .await
        .unwrap();
    match raw::read_server_hello(&mut ws, client_key(), &mut OsRng).await {
        Err(ClientError::Closed { code: 1008, .. }) => {}
        other => panic!("expected Closed 1008, got {other:?}"),
    }
    join(server).await;
}

/// A server hello the client must refuse: a version above the one offered, a challenge shaped
/// like a client message (signing it would forge a signed frame). No signature is sent.
#[tokio::test]
async fn client_refuses_a_higher_version_and_a_frame_shaped_challenge() {
    for (offered, reply_version, challenge) in [
        (2, 3, vec![7u8; 32]),
        (
            1,
            1,
            ClientMessage::inbox(1, &br#"{"@type":"Withdraw"}"#[..])
                .encode()
                .unwrap(),
        ),
    ] {
        let (url, server) = serve(move |mut ws| async move {
            let msg1 = next_binary(&mut ws).await;
            let hello = ClientHello::open(server_key(), &msg1, &mut OsRng).unwrap();
            assert_eq!(hello.version, offered);
            let reply = ServerHello {
                data_to_sign: challenge,
                last_seen_sequence: 0,
                server_key: AesKey::random(&mut OsRng),
                server_version: reply_version,
            };
            let msg2 = reply.seal(&client_key().public_key(), &mut OsRng).unwrap();
            ws.send(Message::Binary(msg2.into())).await.unwrap();
            // No signature follows: the client hangs up.
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(_))) => panic!("the client signed"),
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => break,
                }
            }
        })
        .await;
        let result = SecureClient::connect(&url, &keys(), options(offered, 0)).await;
        match (offered, result) {
            (
                2,
                Err(ClientError::VersionMismatch {
                    offered: 2,
                    server: 3,
                }),
            ) => {}
            (1, Err(ClientError::SuspiciousChallenge)) => {}
            (_, other) => panic!("offered {offered}: unexpected {other:?}"),
        }
        join(server).await;
    }
}

/// A server that never answers: the handshake times out. Bad settings fail before connecting.
#[tokio::test]
async fn handshake_timeout_and_bad_settings() {
    let (url, server) = serve(|mut ws| async move {
        let _ = next_binary(&mut ws).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    let short = Options {
        handshake_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    assert!(matches!(
        SecureClient::connect(&url, &keys(), short).await,
        Err(ClientError::Timeout)
    ));
    join(server).await;

    // Checked before connecting: nothing listens at this address any more.
    let mut bad = keys();
    bad.client_id = "with space".into();
    assert!(matches!(
        SecureClient::connect(&url, &bad, Options::default()).await,
        Err(ClientError::Config(_))
    ));
    assert!(matches!(
        SecureClient::connect(&url, &keys(), options(0, 0)).await,
        Err(ClientError::Config(_))
    ));
}
