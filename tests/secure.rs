//! The secure transport end to end (`/connection/secure`, seed 002): the real server, the
//! workspace's Rust client (`rpc-crypto-secure-client`), and raw WebSocket frames for the bad
//! inputs. Keys: `tests/keys/` (test-only RSA-2048 keys, generated for these tests).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{publish, Client, Server, WAIT};
use futures_util::{SinkExt, StreamExt};
use rpc_crypto_proto::codec::Format;
use rpc_crypto_proto::secure::{
    open_server_frame, seal_client_frame, ClientHello, ClientLayout, ClientMessage, PrivateKey,
    PublicKey, ServerMessage,
};
use rpc_crypto_secure_client::{raw, ClientError, ClientKeys, Event, Options, SecureClient};
use tokio_tungstenite::tungstenite::Message;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");

fn private_key(name: &str) -> Arc<PrivateKey> {
    let pem = std::fs::read_to_string(Path::new(KEYS).join(format!("{name}.key.pem"))).unwrap();
    Arc::new(PrivateKey::from_pem(&pem).unwrap())
}

fn public_key(name: &str) -> PublicKey {
    let pem = std::fs::read_to_string(Path::new(KEYS).join(format!("{name}.pub.pem"))).unwrap();
    PublicKey::from_pem(&pem).unwrap()
}

/// A clients directory: each client id gets the public key of the named key pair.
fn clients_dir(clients: &[(&str, &str)]) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("rpc-crypto-secure-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (id, key) in clients {
        add_client(&dir, id, key);
    }
    dir
}

fn add_client(dir: &Path, id: &str, key: &str) {
    std::fs::copy(
        Path::new(KEYS).join(format!("{key}.pub.pem")),
        dir.join(format!("{id}.pem")),
    )
    .unwrap();
}

/// A server with the secure transport on, its clients in `dir`, and `env` on top.
fn secure_server(dir: &Path, env: &[(&str, &str)]) -> Server {
    let server_key = format!("{KEYS}/server.key.pem");
    let dir = dir.to_str().unwrap().to_owned();
    let mut all = vec![
        ("RPC_CRYPTO_SECURE__ENABLED", "true"),
        ("RPC_CRYPTO_SECURE__SERVER_KEY_FILE", server_key.as_str()),
        ("RPC_CRYPTO_SECURE__CLIENTS_DIR", dir.as_str()),
    ];
    all.extend_from_slice(env);
    Server::start(&all)
}

fn secure_url(server: &Server) -> String {
    server
        .url
        .replace("/connection/websocket", "/connection/secure")
}

fn keys(client_id: &str, key: &str) -> ClientKeys {
    ClientKeys {
        client_id: client_id.into(),
        private_key: private_key(key),
        server_public_key: public_key("server"),
    }
}

fn options(version: u32, last_seen_order: i64) -> Options {
    Options {
        version,
        last_seen_order,
        ..Options::default()
    }
}

async fn connect(
    server: &Server,
    client_id: &str,
    key: &str,
    version: u32,
    last_seen_order: i64,
) -> (SecureClient, rpc_crypto_secure_client::Handshake) {
    SecureClient::connect(
        &secure_url(server),
        &keys(client_id, key),
        options(version, last_seen_order),
    )
    .await
    .expect("handshake")
}

/// The next server message, skipping heartbeats; panics on a close or a timeout.
async fn next_message(client: &mut SecureClient) -> ServerMessage {
    loop {
        match client.next_timeout(WAIT).await.expect("a server message") {
            Some(Event::Message(message)) => return message,
            Some(Event::Heartbeat) => {}
            Some(Event::Closed { code, reason }) => panic!("closed {code} {reason}"),
            None => panic!("no message within {WAIT:?}"),
        }
    }
}

/// The JSON of the next OUTBOX message, with its ORDER.
async fn next_outbox(client: &mut SecureClient) -> (i64, serde_json::Value) {
    match next_message(client).await {
        ServerMessage::Outbox { order, json, .. } => (order, serde_json::from_str(&json).unwrap()),
        other => panic!("expected an OUTBOX message, got {other:?}"),
    }
}

/// Reads until the close, returning its code and the ERROR messages before it.
async fn close_code(client: &mut SecureClient) -> (u16, Vec<ServerMessage>) {
    let mut errors = Vec::new();
    loop {
        match client.next_timeout(WAIT).await {
            Ok(Some(Event::Closed { code, .. })) | Err(ClientError::Closed { code, .. }) => {
                return (code, errors)
            }
            Ok(Some(Event::Message(message @ ServerMessage::Error { .. }))) => errors.push(message),
            Ok(Some(_)) => {}
            Ok(None) => panic!("no close within {WAIT:?}"),
            Err(error) => panic!("{error}"),
        }
    }
}

/// Subscribes through an INBOX message and checks the reply.
async fn subscribe(client: &mut SecureClient, id: u32, channel: &str) {
    let command = format!("{{\"id\":{id},\"subscribe\":{{\"channel\":\"{channel}\"}}}}");
    client.send_inbox(&command).await.unwrap();
    let (_, reply) = next_outbox(client).await;
    assert_eq!(reply["id"], id, "{reply}");
    assert!(reply.get("subscribe").is_some(), "{reply}");
}

/// Publishes `data` on `channel` from a JSON-wire client.
async fn publish_plain(server: &Server, channel: &str, data: &str) {
    let (mut client, _) = Client::connect(server, Format::Json).await;
    let reply = client.call(publish(2, channel, data)).await;
    assert!(reply.error.is_none(), "{reply:?}");
}

#[tokio::test]
async fn handshakes_at_versions_1_2_and_5_then_subscribe_publish_and_receive() {
    let dir = clients_dir(&[
        ("alice-v1", "alice"),
        ("alice-v2", "alice"),
        ("alice-v5", "alice"),
    ]);
    let server = secure_server(&dir, &[]);
    for version in [1u32, 2, 5] {
        let id = format!("alice-v{version}");
        let (mut client, handshake) = connect(&server, &id, "alice", version, 0).await;
        assert_eq!(handshake.server_version, version);
        assert_eq!(handshake.last_seen_sequence, 0);
        let channel = format!("open:v{version}");
        subscribe(&mut client, 1, &channel).await;
        // A publication from the secure client itself, answered in its OUTBOX...
        let command =
            format!("{{\"id\":2,\"publish\":{{\"channel\":\"{channel}\",\"data\":{{\"n\":1}}}}}}");
        client.send_inbox(&command).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let (_, json) = next_outbox(&mut client).await;
            seen.push(json);
        }
        assert!(seen.iter().any(|j| j["id"] == 2), "{seen:?}");
        let publication = seen.iter().find(|j| j.get("push").is_some()).unwrap();
        assert_eq!(publication["push"]["channel"], channel.as_str());
        assert_eq!(publication["push"]["pub"]["data"]["n"], 1);
        // ...and one from a JSON-wire client.
        publish_plain(&server, &channel, "{\"n\":2}").await;
        let (_, json) = next_outbox(&mut client).await;
        assert_eq!(json["push"]["pub"]["data"]["n"], 2);
        if version == 1 {
            // The seed's heartbeat: a single zero byte every 2 s.
            let beat = tokio::time::timeout(Duration::from_secs(3), async {
                loop {
                    if let Some(Event::Heartbeat) = client.next_timeout(WAIT).await.unwrap() {
                        return;
                    }
                }
            })
            .await;
            assert!(beat.is_ok(), "no version-1 heartbeat within 3 s");
        }
        client.close().await.unwrap();
    }
    server.assert_no_panic();
}

#[tokio::test]
async fn rpc_requests_are_answered_by_request_id() {
    let dir = clients_dir(&[("alice", "alice")]);
    let server = secure_server(&dir, &[]);
    let (mut client, _) = connect(&server, "alice", "alice", 5, 0).await;
    let json = client
        .rpc("{\"method\":\"session.status\",\"data\":{}}", WAIT)
        .await
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(status["rpc"]["data"].is_object(), "{status}");
    // An unknown method: the error comes back by request id too.
    let json = client
        .rpc("{\"method\":\"no.such.method\"}", WAIT)
        .await
        .unwrap();
    let error: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(error["error"]["code"].is_number(), "{error}");
    // Two in flight: each answer carries its own request id.
    let first = client
        .send_rpc("{\"method\":\"heartbeat\",\"data\":{}}")
        .await
        .unwrap();
    let second = client
        .send_rpc("{\"method\":\"exchange.list\",\"data\":{}}")
        .await
        .unwrap();
    let mut answered = Vec::new();
    while answered.len() < 2 {
        if let ServerMessage::RpcResponse { request_id, json } = next_message(&mut client).await {
            answered.push((request_id, json));
        }
    }
    answered.sort();
    assert_eq!(answered[0].0, first);
    assert_eq!(answered[1].0, second);
    assert!(answered[1].1.contains("sim"), "{}", answered[1].1);
    // A streamed answer: its items and its end, all by the request id.
    subscribe(&mut client, 1, "open:listed").await;
    let request = client
        .send_rpc("{\"method\":\"channels.list\",\"data\":{}}")
        .await
        .unwrap();
    let mut items = Vec::new();
    let end = loop {
        let ServerMessage::RpcResponse { request_id, json } = next_message(&mut client).await
        else {
            continue;
        };
        assert_eq!(request_id, request);
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        if json.get("rpc").is_some() {
            break json;
        }
        assert_eq!(json["request_id"], request, "{json}");
        items.push(json);
    };
    assert_eq!(end["rpc"]["data"]["items"], items.len(), "{end}");
    let listed: Vec<&serde_json::Value> = items
        .iter()
        .flat_map(|item| item["payload"].as_array().unwrap())
        .collect();
    assert!(listed.iter().any(|c| *c == "open:listed"), "{items:?}");
    server.assert_no_panic();
}

#[tokio::test]
async fn a_reconnect_replays_exactly_what_came_after_the_last_seen_order() {
    let dir = clients_dir(&[("alice", "alice")]);
    let server = secure_server(&dir, &[]);
    let (mut client, _) = connect(&server, "alice", "alice", 5, 0).await;
    subscribe(&mut client, 1, "open:replay").await;
    for n in 1..=3 {
        publish_plain(&server, "open:replay", &format!("{{\"n\":{n}}}")).await;
    }
    let mut last_processed = 0;
    for n in 1..=3 {
        let (order, json) = next_outbox(&mut client).await;
        assert_eq!(json["push"]["pub"]["data"]["n"], n);
        assert!(order > last_processed);
        // The client processes 1 and 2; 3 arrived but was not processed.
        if n <= 2 {
            last_processed = order;
        }
    }
    let sequence = client.last_sequence();
    // The connection is lost without a close frame.
    drop(client);
    for n in 4..=6 {
        publish_plain(&server, "open:replay", &format!("{{\"n\":{n}}}")).await;
    }
    let (mut client, handshake) = connect(&server, "alice", "alice", 5, last_processed).await;
    assert_eq!(handshake.last_seen_sequence, sequence);
    let mut orders = Vec::new();
    for n in 3..=6 {
        let (order, json) = next_outbox(&mut client).await;
        assert_eq!(json["push"]["pub"]["data"]["n"], n, "{json}");
        orders.push(order);
    }
    assert!(orders.windows(2).all(|w| w[0] < w[1]), "{orders:?}");
    assert!(orders[0] > last_processed);
    // Live traffic follows, and nothing was sent twice.
    publish_plain(&server, "open:replay", "{\"n\":7}").await;
    let (order, json) = next_outbox(&mut client).await;
    assert_eq!(json["push"]["pub"]["data"]["n"], 7, "{json}");
    assert!(order > orders[3]);
    // The SEQUENCE goes on from where the server left off.
    subscribe(&mut client, 9, "open:other").await;
    server.assert_no_panic();
}

#[tokio::test]
async fn a_client_whose_missed_messages_are_gone_gets_a_new_session_at_once() {
    let dir = clients_dir(&[("alice", "alice")]);
    let server = secure_server(&dir, &[("RPC_CRYPTO_SESSION__JOURNAL_MAX_MESSAGES", "3")]);
    let (mut client, _) = connect(&server, "alice", "alice", 5, 0).await;
    subscribe(&mut client, 1, "open:gone").await;
    let processed = client.last_seen_order();
    // Six more arrive, but the client processes none of them before it loses the connection:
    // the journal holds only the last three.
    for n in 1..=6 {
        publish_plain(&server, "open:gone", &format!("{{\"n\":{n}}}")).await;
    }
    let mut last = processed;
    for _ in 1..=6 {
        last = next_outbox(&mut client).await.0;
    }
    drop(client);
    let (mut client, handshake) = connect(&server, "alice", "alice", 5, processed).await;
    assert_eq!(handshake.last_seen_sequence, 0, "a new session");
    // Not subscribed any more; ORDERs go on above what the client saw.
    publish_plain(&server, "open:gone", "{\"n\":7}").await;
    subscribe(&mut client, 1, "open:gone").await;
    publish_plain(&server, "open:gone", "{\"n\":8}").await;
    let (order, json) = next_outbox(&mut client).await;
    assert_eq!(json["push"]["pub"]["data"]["n"], 8, "{json}");
    assert!(
        order > processed + 1,
        "{order} after {processed} ({last} was sent)"
    );
    server.assert_no_panic();
}

#[tokio::test]
async fn a_second_connection_with_the_same_client_id_takes_over_and_the_first_gets_4000() {
    let dir = clients_dir(&[("alice", "alice")]);
    let server = secure_server(&dir, &[]);
    let (mut first, _) = connect(&server, "alice", "alice", 5, 0).await;
    subscribe(&mut first, 1, "open:takeover").await;
    let order = first.last_seen_order();
    let (mut second, handshake) = connect(&server, "alice", "alice", 5, order).await;
    assert_eq!(handshake.last_seen_sequence, 1);
    let (code, errors) = close_code(&mut first).await;
    assert_eq!(code, 4000);
    assert!(
        matches!(
            errors.as_slice(),
            [ServerMessage::Error {
                error_type: 4000,
                ..
            }]
        ),
        "{errors:?}"
    );
    // The session, subscription included, goes on on the second connection.
    publish_plain(&server, "open:takeover", "{\"n\":1}").await;
    let (_, json) = next_outbox(&mut second).await;
    assert_eq!(json["push"]["pub"]["data"]["n"], 1);
    server.assert_no_panic();
}

/// Opens a raw WebSocket to the secure endpoint.
async fn open_raw(
    server: &Server,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (ws, _) = tokio_tungstenite::connect_async(secure_url(server))
        .await
        .unwrap();
    ws
}

/// The close code the server ends a raw connection with.
async fn raw_close_code(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> u16 {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a close")
        {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) => return 1005,
            Some(Ok(_)) => {}
            other => panic!("connection ended without a close frame: {other:?}"),
        }
    }
}

/// Sends a hello from `client_id` sealed to the public key `to`, and returns the close code
/// the server answers with.
async fn hello_close_code(server: &Server, client_id: &str, to: &str) -> u16 {
    let mut ws = open_raw(server).await;
    let mut rng = rand::thread_rng();
    let hello = ClientHello::generate(&mut rng, client_id, 0, 5);
    raw::send_client_hello(&mut ws, &hello, &public_key(to), &mut rng)
        .await
        .unwrap();
    raw_close_code(&mut ws).await
}

#[tokio::test]
async fn bad_handshakes_all_end_the_same_way() {
    let dir = clients_dir(&[("alice", "alice")]);
    let server = secure_server(&dir, &[]);
    let mut rng = rand::thread_rng();

    // An unknown client id.
    assert_eq!(hello_close_code(&server, "nobody", "server").await, 1008);
    // A hello encrypted to another key than the server's.
    assert_eq!(hello_close_code(&server, "alice", "mallory").await, 1008);

    // A hello that is not RSA at all.
    let mut ws = open_raw(&server).await;
    ws.send(Message::Binary(vec![7u8; 100].into()))
        .await
        .unwrap();
    assert_eq!(raw_close_code(&mut ws).await, 1008);

    // The right hello, then a signature by another key.
    let mut ws = open_raw(&server).await;
    let hello = ClientHello::generate(&mut rng, "alice", 0, 5);
    raw::send_client_hello(&mut ws, &hello, &public_key("server"), &mut rng)
        .await
        .unwrap();
    let server_hello = raw::read_server_hello(&mut ws, &private_key("alice"), &mut rng)
        .await
        .unwrap();
    raw::send_signature(
        &mut ws,
        &private_key("mallory"),
        &server_hello.data_to_sign,
        &mut rng,
    )
    .await
    .unwrap();
    assert_eq!(raw_close_code(&mut ws).await, 1008);

    // A text frame.
    let mut ws = open_raw(&server).await;
    ws.send(Message::Text("{}".into())).await.unwrap();
    assert_eq!(raw_close_code(&mut ws).await, 1003);

    // A frame over the size limit.
    let mut ws = open_raw(&server).await;
    ws.send(Message::Binary(vec![0u8; 70 * 1024].into()))
        .await
        .unwrap();
    assert_eq!(raw_close_code(&mut ws).await, 3501);

    // None of these left a session behind: alice still connects.
    let (client, _) = connect(&server, "alice", "alice", 5, 0).await;
    client.close().await.unwrap();
    server.assert_no_panic();
}

#[tokio::test]
async fn bad_frames_after_the_handshake_get_one_generic_error_then_close() {
    let dir = clients_dir(&[("alice", "alice")]);
    let server = secure_server(&dir, &[]);
    let subscribe_json = "{\"id\":1,\"subscribe\":{\"channel\":\"open:x\"}}";

    // Tampered ciphertext: the IV's first byte flipped changes the message type.
    let (mut client, _) = connect(&server, "alice", "alice", 5, 0).await;
    let mut frame = client.seal_inbox_frame(1, subscribe_json).unwrap();
    frame[0] ^= 0x40;
    client
        .send_raw(Message::Binary(frame.into()))
        .await
        .unwrap();
    let (code, errors) = close_code(&mut client).await;
    assert_eq!(code, 1008);
    let generic = ServerMessage::Error {
        error_type: 1008,
        message: "message rejected".into(),
    };
    assert_eq!(errors, vec![generic.clone()]);

    // Truncated: one byte short.
    let (mut client, _) = connect(&server, "alice", "alice", 5, 0).await;
    let frame = client.seal_inbox_frame(1, subscribe_json).unwrap();
    let short = frame[..frame.len() - 1].to_vec();
    client
        .send_raw(Message::Binary(short.into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut client).await, (1008, vec![generic.clone()]));

    // A whole number of bytes that is not a multiple of 16 after the IV.
    let (mut client, _) = connect(&server, "alice", "alice", 5, 0).await;
    let mut frame = client.seal_inbox_frame(1, subscribe_json).unwrap();
    frame.extend_from_slice(&[0u8; 5]);
    client
        .send_raw(Message::Binary(frame.into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut client).await, (1008, vec![generic.clone()]));

    // A frame that decrypts but whose last block is garbage (bad padding).
    let (mut client, _) = connect(&server, "alice", "alice", 5, 0).await;
    let mut frame = client.seal_inbox_frame(1, subscribe_json).unwrap();
    let last = frame.len() - 1;
    frame[last] ^= 0xff;
    client
        .send_raw(Message::Binary(frame.into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut client).await, (1008, vec![generic.clone()]));

    // A signed (version 2) frame whose signature is not the client's.
    let (mut client, _) = connect(&server, "alice", "alice", 2, 0).await;
    assert_eq!(client.version(), 2);
    let mut frame = client.seal_inbox_frame(1, subscribe_json).unwrap();
    // Flip a byte inside the signature (after IV and the first block).
    frame[40] ^= 0x01;
    client
        .send_raw(Message::Binary(frame.into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut client).await, (1008, vec![generic.clone()]));
    server.assert_no_panic();
}

#[tokio::test]
async fn a_replayed_or_skipped_sequence_is_4001() {
    let dir = clients_dir(&[("alice", "alice")]);
    let server = secure_server(&dir, &[]);
    let (mut client, _) = connect(&server, "alice", "alice", 5, 0).await;
    subscribe(&mut client, 1, "open:seq").await;
    // Sequence 1 again.
    client
        .send_inbox_with_sequence(
            1,
            "{\"id\":2,\"presence_stats\":{\"channel\":\"open:seq\"}}",
        )
        .await
        .unwrap();
    assert_eq!(close_code(&mut client).await.0, 4001);

    // The session kept SEQUENCE 1: skipping to 3 is refused too.
    let (mut client, handshake) = connect(&server, "alice", "alice", 5, 0).await;
    assert_eq!(handshake.last_seen_sequence, 1);
    client
        .send_inbox_with_sequence(3, "{\"id\":3,\"subscribe\":{\"channel\":\"open:seq2\"}}")
        .await
        .unwrap();
    assert_eq!(close_code(&mut client).await.0, 4001);
    server.assert_no_panic();
}

#[tokio::test]
async fn commands_past_the_rate_get_throttling_then_4009() {
    let dir = clients_dir(&[("alice", "alice")]);
    let server = secure_server(
        &dir,
        &[
            ("RPC_CRYPTO_CLIENT__COMMAND_RATE", "1"),
            ("RPC_CRYPTO_CLIENT__COMMAND_BURST", "2"),
        ],
    );
    let (mut client, _) = connect(&server, "alice", "alice", 5, 0).await;
    for id in 1..=20 {
        let command = format!("{{\"id\":{id},\"presence_stats\":{{\"channel\":\"open:r\"}}}}");
        if client.send_inbox(&command).await.is_err() {
            break;
        }
    }
    let mut throttled = 0;
    let code = loop {
        match client.next_timeout(WAIT).await {
            Ok(Some(Event::Message(ServerMessage::Throttling { sequence_id, .. }))) => {
                assert!(sequence_id > 2);
                throttled += 1;
            }
            Ok(Some(Event::Closed { code, .. })) | Err(ClientError::Closed { code, .. }) => {
                break code
            }
            Ok(Some(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(throttled > 0, "no THROTTLING before the close");
    assert_eq!(code, 4009);
    server.assert_no_panic();
}

/// Runs `times` whole handshakes of `client_id` with `key`, one after another, each closed.
async fn handshakes_succeed(server: &Server, client_id: &str, key: &str, times: usize) {
    for _ in 0..times {
        let (client, _) = connect(server, client_id, key, 5, 0).await;
        client.close().await.unwrap();
    }
}

/// The close code that refuses a whole handshake of `client_id` with `key`.
async fn handshake_refused_with(server: &Server, client_id: &str, key: &str) -> u16 {
    let refused = SecureClient::connect(&secure_url(server), &keys(client_id, key), options(5, 0))
        .await
        .expect_err("a refused handshake");
    match refused {
        ClientError::Closed { code, .. } => code,
        other => panic!("refused otherwise than by a close: {other}"),
    }
}

#[tokio::test]
async fn handshakes_are_rate_limited_per_address() {
    let dir = clients_dir(&[("alice", "alice")]);
    let server = secure_server(
        &dir,
        &[
            ("RPC_CRYPTO_SECURE__HANDSHAKES_PER_ADDRESS", "1"),
            ("RPC_CRYPTO_SECURE__HANDSHAKES_PER_ADDRESS_BURST", "3"),
        ],
    );
    handshakes_succeed(&server, "alice", "alice", 3).await;
    // The fourth attempt from 127.0.0.1 within the minute: refused before any RSA work.
    assert_eq!(hello_close_code(&server, "alice", "server").await, 4009);
    server.assert_no_panic();
}

/// A server whose client ids may fail 2 handshakes at once (then 1 a minute), with no limit
/// per address: what is counted here is the client id's budget alone.
fn failed_proof_limited_server(dir: &Path) -> Server {
    secure_server(
        dir,
        &[
            ("RPC_CRYPTO_SECURE__HANDSHAKES_PER_ADDRESS", "0"),
            ("RPC_CRYPTO_SECURE__HANDSHAKES_PER_CLIENT", "1"),
            ("RPC_CRYPTO_SECURE__HANDSHAKES_PER_CLIENT_BURST", "2"),
        ],
    )
}

/// Handshake messages 1 and 2 as someone who knows only the server's public key would send
/// them: the hello for `client_id`, then the server's hello read (only the client's key opens
/// it). The connection is left at message 2.
async fn hello_as_anyone(
    server: &Server,
    client_id: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut ws = open_raw(server).await;
    let mut rng = rand::thread_rng();
    let hello = ClientHello::generate(&mut rng, client_id, 0, 5);
    raw::send_client_hello(&mut ws, &hello, &public_key("server"), &mut rng)
        .await
        .unwrap();
    let message_2 = tokio::time::timeout(WAIT, raw::read_binary(&mut ws))
        .await
        .expect("message 2 in time");
    assert!(
        message_2.is_ok(),
        "the hello for {client_id} got no message 2: {message_2:?}"
    );
    ws
}

#[tokio::test]
async fn knowing_a_client_id_and_the_server_key_does_not_spend_the_clients_handshake_budget() {
    let dir = clients_dir(&[("alice", "alice")]);
    let server = failed_proof_limited_server(&dir);
    // Five times the budget in hellos for alice, left at message 2 (no signature can follow:
    // the challenge is sealed to alice's key).
    for _ in 0..10 {
        let ws = hello_as_anyone(&server, "alice").await;
        drop(ws);
    }
    // Alice still gets in, as often as she likes: a handshake that succeeds spends nothing.
    handshakes_succeed(&server, "alice", "alice", 4).await;
    server.assert_no_panic();
}

#[tokio::test]
async fn failed_proofs_spend_the_client_ids_handshake_budget() {
    let dir = clients_dir(&[("alice", "alice"), ("bob", "bob")]);
    let server = failed_proof_limited_server(&dir);
    // Successes first: more of them than the budget holds, none spent.
    handshakes_succeed(&server, "alice", "alice", 3).await;
    // Two hellos for alice whose message 3 is not her signature: each is refused, and spends.
    for _ in 0..2 {
        let mut ws = hello_as_anyone(&server, "alice").await;
        raw::send_binary(&mut ws, vec![7u8; 256]).await.unwrap();
        assert_eq!(raw_close_code(&mut ws).await, 1008);
    }
    // Now even alice is refused, the same way as any failed handshake, until her budget refills
    // (one a minute)...
    assert_eq!(
        handshake_refused_with(&server, "alice", "alice").await,
        1008
    );
    // ...and another client id has a budget of its own.
    let (client, _) = connect(&server, "bob", "bob", 5, 0).await;
    client.close().await.unwrap();
    server.assert_no_panic();
}

#[tokio::test]
async fn a_hello_past_max_concurrent_handshakes_is_refused_with_4009() {
    let dir = clients_dir(&[("alice", "alice"), ("holder", "bob")]);
    // One decryption at a time; the test hook of debug builds keeps the slot of a hello from
    // "holder" until its message 3, so the slot is known to be taken while message 2 is out.
    let server = secure_server(
        &dir,
        &[
            ("RPC_CRYPTO_SECURE__HANDSHAKES_PER_ADDRESS", "0"),
            ("RPC_CRYPTO_SECURE__MAX_CONCURRENT_HANDSHAKES", "1"),
            ("TEST_RPC_CRYPTO_HOLD_RSA_SLOT", "holder"),
        ],
    );
    // One after another, each handshake gets the slot: it is given back after each decryption.
    handshakes_succeed(&server, "alice", "alice", 3).await;
    // The holder's hello takes the slot, and its message 2 says so.
    let mut holder = open_raw(&server).await;
    let mut rng = rand::thread_rng();
    let hello = ClientHello::generate(&mut rng, "holder", 0, 5);
    raw::send_client_hello(&mut holder, &hello, &public_key("server"), &mut rng)
        .await
        .unwrap();
    let server_hello = raw::read_server_hello(&mut holder, &private_key("bob"), &mut rng)
        .await
        .unwrap();
    // Meanwhile every other hello is refused before any RSA work, with 4009.
    for _ in 0..3 {
        assert_eq!(hello_close_code(&server, "alice", "server").await, 4009);
    }
    assert_eq!(
        handshake_refused_with(&server, "alice", "alice").await,
        4009
    );
    // The holder finishes its handshake (which gives the slot back) and makes an rpc call: its
    // answer shows message 3 was read.
    raw::send_signature(
        &mut holder,
        &private_key("bob"),
        &server_hello.data_to_sign,
        &mut rng,
    )
    .await
    .unwrap();
    let request = ClientMessage::rpc_request(1, &b"{\"method\":\"session.status\"}"[..]);
    let frame = seal_client_frame(
        &hello.client_key,
        ClientLayout::for_version(server_hello.server_version),
        &private_key("bob"),
        &request,
        &mut rng,
    )
    .unwrap();
    raw::send_binary(&mut holder, frame).await.unwrap();
    loop {
        let bytes = tokio::time::timeout(WAIT, raw::read_binary(&mut holder))
            .await
            .expect("the holder's answer")
            .unwrap();
        let message = open_server_frame(&server_hello.server_key, &bytes).unwrap();
        if let ServerMessage::RpcResponse { request_id: 1, .. } = message {
            break;
        }
    }
    // The slot is free again.
    let (client, _) = connect(&server, "alice", "alice", 5, 0).await;
    client.close().await.unwrap();
    server.assert_no_panic();
}

/// Sends a sealed RPC_REQUEST frame and waits for the answer to `request_id`.
async fn rpc_raw(client: &mut SecureClient, frame: Vec<u8>, request_id: i64) {
    client
        .send_raw(Message::Binary(frame.into()))
        .await
        .unwrap();
    loop {
        if let ServerMessage::RpcResponse { request_id: id, .. } = next_message(client).await {
            assert_eq!(id, request_id);
            return;
        }
    }
}

/// Sends a sealed RPC_REQUEST frame the server must refuse: one ERROR 4001, then close 4001.
async fn rpc_refused_with_4001(client: &mut SecureClient, frame: Vec<u8>) {
    client
        .send_raw(Message::Binary(frame.into()))
        .await
        .unwrap();
    let (code, errors) = close_code(client).await;
    assert_eq!(code, 4001);
    assert!(
        matches!(
            errors.as_slice(),
            [ServerMessage::Error {
                error_type: 4001,
                ..
            }]
        ),
        "{errors:?}"
    );
}

#[tokio::test]
async fn a_replayed_or_out_of_order_rpc_request_id_is_4001() {
    // One client id per connection: a session taken over would replay the RPC_RESPONSEs the
    // last connection was sent (§11.5), whose request ids the new connection uses again.
    let dir = clients_dir(&[
        ("alice", "alice"),
        ("alice-2", "alice"),
        ("alice-v2", "alice"),
    ]);
    let server = secure_server(&dir, &[]);
    let status = "{\"method\":\"session.status\",\"data\":{}}";

    // A captured frame played again, as is.
    let (mut client, _) = connect(&server, "alice", "alice", 5, 0).await;
    let frame = client.seal_rpc_frame(1, status).unwrap();
    rpc_raw(&mut client, frame.clone(), 1).await;
    rpc_refused_with_4001(&mut client, frame).await;

    // Each connection starts its own count (the client's counter does too); gaps are allowed,
    // going back is not.
    let (mut client, _) = connect(&server, "alice-2", "alice", 5, 0).await;
    client.rpc(status, WAIT).await.unwrap();
    let frame = client.seal_rpc_frame(5, status).unwrap();
    rpc_raw(&mut client, frame, 5).await;
    let frame = client.seal_rpc_frame(3, status).unwrap();
    rpc_refused_with_4001(&mut client, frame).await;

    // At versions 1-2, where every frame is signed, a replay is caught the same way.
    let (mut client, _) = connect(&server, "alice-v2", "alice", 2, 0).await;
    let frame = client.seal_rpc_frame(1, status).unwrap();
    rpc_raw(&mut client, frame.clone(), 1).await;
    rpc_refused_with_4001(&mut client, frame).await;
    server.assert_no_panic();
}

#[tokio::test]
async fn client_keys_are_reloaded_without_a_restart() {
    let dir = clients_dir(&[("alice", "alice")]);
    let server = secure_server(&dir, &[("RPC_CRYPTO_SECURE__RELOAD_INTERVAL", "1s")]);
    let refused = SecureClient::connect(&secure_url(&server), &keys("bob", "bob"), options(5, 0))
        .await
        .expect_err("bob is not known yet");
    assert!(
        matches!(refused, ClientError::Closed { code: 1008, .. }),
        "{refused}"
    );
    add_client(&dir, "bob", "bob");
    let mut known = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(connected) =
            SecureClient::connect(&secure_url(&server), &keys("bob", "bob"), options(5, 0)).await
        {
            known = Some(connected);
            break;
        }
    }
    let (client, _) = known.expect("bob's key was picked up");
    client.close().await.unwrap();
    // Removed: refused again.
    std::fs::remove_file(dir.join("bob.pem")).unwrap();
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let attempt =
            SecureClient::connect(&secure_url(&server), &keys("bob", "bob"), options(5, 0)).await;
        if attempt.is_err() {
            gone = true;
            break;
        }
        attempt.unwrap().0.close().await.unwrap();
    }
    assert!(gone, "bob's key was not dropped");
    server.assert_no_panic();
}

#[tokio::test]
async fn a_shutdown_closes_secure_sessions_with_1012() {
    let dir = clients_dir(&[("alice", "alice")]);
    let server = secure_server(&dir, &[]);
    let (mut client, _) = connect(&server, "alice", "alice", 5, 0).await;
    subscribe(&mut client, 1, "notifications").await;
    server.terminate();
    // Notifications come as BROADCAST messages: the shutdown notice first.
    match next_message(&mut client).await {
        ServerMessage::Broadcast { json } => {
            let push: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(push["push"]["channel"], "notifications");
            assert_eq!(push["push"]["pub"]["data"]["type"], "shutdown", "{push}");
        }
        other => panic!("expected the shutdown BROADCAST, got {other:?}"),
    }
    let (code, errors) = close_code(&mut client).await;
    assert_eq!(code, 1012);
    assert!(
        matches!(
            errors.as_slice(),
            [ServerMessage::Error {
                error_type: 1012,
                ..
            }]
        ),
        "{errors:?}"
    );
}
