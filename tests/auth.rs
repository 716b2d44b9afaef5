//! Authentication end to end: connection and subscription tokens, refresh, lifetimes,
//! permissions, limits, and the insecure mode, each bad input with its exact code. Every server
//! here logs at `debug`, and each test ends by checking that no token or secret reached the log.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use rpc_crypto_actors::auth::sign_hs256;
use rpc_crypto_proto::codec::Format;
use rpc_crypto_proto::protocol::{
    Command, ConnectRequest, PresenceRequest, RefreshRequest, Reply, SubRefreshRequest,
    SubscribeRequest,
};
use serde_json::json;

const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
/// Namespaces: `chat` for everyone, `orders` for clients with a user (user-limited channels),
/// `room` with presence for clients with a user.
const NAMESPACES: &str = "[{name = \"chat\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, allow_publish_for_subscriber = true, allow_publish_for_anonymous = true}, {name = \"orders\", allow_subscribe_for_client = true}, {name = \"room\", allow_subscribe_for_client = true, allow_publish_for_subscriber = true, presence = true, allow_presence_for_subscriber = true}]";

/// A server that verifies HS256 tokens with [`SECRET`], logging at debug, with `env` on top.
fn server(env: &[(&str, &str)]) -> Server {
    let mut all = vec![
        ("RPC_CRYPTO_TOKEN__HMAC_SECRET", SECRET),
        ("RPC_CRYPTO_NAMESPACES", NAMESPACES),
        ("RUST_LOG", "debug"),
    ];
    all.extend_from_slice(env);
    Server::start(&all)
}

fn token(claims: serde_json::Value) -> String {
    sign_hs256(SECRET.as_bytes(), &claims)
}

fn user_token(user: &str, ttl: u64) -> String {
    token(json!({"sub": user, "exp": unix_now() + ttl}))
}

fn subscribe_with(id: u32, channel: &str, token: &str) -> Command {
    Command {
        id,
        subscribe: Some(SubscribeRequest {
            channel: channel.into(),
            token: token.into(),
            ..SubscribeRequest::default()
        }),
        ..Command::default()
    }
}

fn refresh(id: u32, token: &str) -> Command {
    Command {
        id,
        refresh: Some(RefreshRequest {
            token: token.into(),
        }),
        ..Command::default()
    }
}

fn sub_refresh(id: u32, channel: &str, token: &str) -> Command {
    Command {
        id,
        sub_refresh: Some(SubRefreshRequest {
            channel: channel.into(),
            token: token.into(),
        }),
        ..Command::default()
    }
}

/// base64url without padding, as JWTs use it.
fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A token with any header, and a signature that is not one.
fn unsigned(header: serde_json::Value, claims: serde_json::Value, signature: &str) -> String {
    let header = b64(header.to_string().as_bytes());
    let claims = b64(claims.to_string().as_bytes());
    format!("{header}.{claims}.{signature}")
}

/// Opens a connection and sends connect with `token`; returns the client and the close.
async fn refused_connect(server: &Server, token: &str) -> Closed {
    let mut client = Client::open(&server.url, Format::Json).await;
    client.send(&[connect_with_token(1, token)]).await;
    client.closed().await
}

/// Connects with `token` and returns the client and its connect result.
async fn connected(server: &Server, token: &str) -> (Client, Reply) {
    let mut client = Client::open(&server.url, Format::Json).await;
    let reply = client.call(connect_with_token(1, token)).await;
    assert_eq!(error_code(&reply), 0, "connect failed: {reply:?}");
    (client, reply)
}

/// The secrets and tokens a test used must not be in the server's log.
fn assert_log_keeps_secrets(server: &Server, secrets: &[&str]) {
    server.assert_no_panic();
    let log = server.log();
    for secret in secrets.iter().chain([&SECRET]) {
        // A token's signature alone would identify it; the whole token is longer.
        let tail = &secret[secret.len().saturating_sub(20)..];
        assert!(
            !log.contains(tail),
            "the log holds a secret or token: {tail}"
        );
    }
}

#[tokio::test]
async fn a_valid_token_names_the_user_and_its_expiry() {
    let server = server(&[]);
    let token = token(json!({"sub": "alice", "exp": unix_now() + 600, "info": {"name": "Alice"}}));
    let (mut client, reply) = connected(&server, &token).await;
    let result = reply.connect.unwrap();
    assert!(result.expires);
    assert!((595..=600).contains(&result.ttl), "ttl {}", result.ttl);
    let status = rpc_json(&mut client, 2, "session.status").await;
    assert_eq!(status["user"], "alice");
    assert_eq!(status["expires_at"], json!(unix_now() + result.ttl as u64));

    // The token's info goes with the client into presence.
    client.call(subscribe(3, "room:a")).await;
    let presence = client
        .call(Command {
            id: 4,
            presence: Some(PresenceRequest {
                channel: "room:a".into(),
            }),
            ..Command::default()
        })
        .await;
    let presence = presence.presence.unwrap().presence;
    let info = presence.values().next().unwrap();
    assert_eq!(info.user, "alice");
    assert_eq!(&info.conn_info[..], br#"{"name":"Alice"}"#);
    assert_log_keeps_secrets(&server, &[&token]);
}

async fn rpc_json(client: &mut Client, id: u32, method: &str) -> serde_json::Value {
    let reply = client.call(rpc(id, method, "{}")).await;
    serde_json::from_slice(&reply.rpc.expect("an rpc result").data).unwrap()
}

#[tokio::test]
async fn bad_connection_tokens_get_their_codes() {
    let server = server(&[]);
    let claims = json!({"sub": "alice", "exp": unix_now() + 600});

    // Expired: error 109, and the connection stays for a connect with a fresh token.
    let expired = token(json!({"sub": "alice", "exp": unix_now() - 10}));
    let mut client = Client::open(&server.url, Format::Json).await;
    let reply = client.call(connect_with_token(1, &expired)).await;
    assert_eq!(error_code(&reply), 109);
    let fresh = user_token("alice", 600);
    let reply = client.call(connect_with_token(2, &fresh)).await;
    assert_eq!(reply.connect.unwrap().client.len(), 32);

    let not_yet =
        token(json!({"sub": "alice", "nbf": unix_now() + 3600, "exp": unix_now() + 7200}));
    let closed = refused_connect(&server, &not_yet).await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (3500, "token not yet valid")
    );

    let forged = sign_hs256(b"another-secret-that-is-at-least-32-bytes", &claims);
    assert_eq!(refused_connect(&server, &forged).await.code, 3500);

    let none = unsigned(json!({"alg": "none", "typ": "JWT"}), claims.clone(), "");
    assert_eq!(refused_connect(&server, &none).await.code, 3500);

    // An RS256 token where only an HMAC secret is configured: refused before any signature.
    let rs256 = unsigned(
        json!({"alg": "RS256", "typ": "JWT"}),
        claims.clone(),
        "c2lnbmF0dXJl",
    );
    assert_eq!(refused_connect(&server, &rs256).await.code, 3500);

    assert_eq!(refused_connect(&server, "not.a.token").await.code, 3500);

    // A subscription token is not a connection token.
    let for_channel = token(json!({"sub": "alice", "channel": "chat:x"}));
    assert_eq!(refused_connect(&server, &for_channel).await.code, 3500);
    assert_log_keeps_secrets(&server, &[&expired, &fresh, &forged, &not_yet]);
}

#[tokio::test]
async fn without_anonymous_clients_a_user_is_required() {
    let server = server(&[("RPC_CRYPTO_CLIENT__ALLOW_ANONYMOUS", "false")]);
    let no_sub = token(json!({"exp": unix_now() + 600}));
    let closed = refused_connect(&server, &no_sub).await;
    assert_eq!(closed.code, 3500);
    assert!(closed.reason.contains("sub"), "{closed:?}");
    assert_eq!(refused_connect(&server, "").await.code, 3500);
    connected(&server, &user_token("alice", 600)).await;

    // With anonymous clients (the default), an empty sub is an anonymous client.
    let open = self::server(&[]);
    let (mut client, _) = connected(&open, &no_sub).await;
    assert_eq!(rpc_json(&mut client, 2, "session.status").await["user"], "");
    assert_log_keeps_secrets(&server, &[&no_sub]);
}

#[tokio::test]
async fn private_channels_need_a_subscription_token_for_that_channel_and_user() {
    let server = server(&[]);
    let alice = user_token("alice", 600);
    let (mut client, _) = connected(&server, &alice).await;

    let reply = client.call(subscribe(2, "$chat:secret")).await;
    assert_eq!(error_code(&reply), 103);

    let other_channel =
        token(json!({"sub": "alice", "channel": "$chat:other", "exp": unix_now() + 600}));
    let reply = client
        .call(subscribe_with(3, "$chat:secret", &other_channel))
        .await;
    assert_eq!(error_code(&reply), 103);

    let other_user =
        token(json!({"sub": "bob", "channel": "$chat:secret", "exp": unix_now() + 600}));
    let reply = client
        .call(subscribe_with(4, "$chat:secret", &other_user))
        .await;
    assert_eq!(error_code(&reply), 103);

    let expired = token(json!({"sub": "alice", "channel": "$chat:secret", "exp": unix_now() - 1}));
    let reply = client
        .call(subscribe_with(5, "$chat:secret", &expired))
        .await;
    assert_eq!(error_code(&reply), 109);

    let good = token(json!({"sub": "alice", "channel": "$chat:secret", "exp": unix_now() + 600}));
    let reply = client.call(subscribe_with(6, "$chat:secret", &good)).await;
    let result = reply.subscribe.expect("subscribed");
    assert!(result.expires && (595..=600).contains(&result.ttl));

    let renewed =
        token(json!({"sub": "alice", "channel": "$chat:secret", "exp": unix_now() + 900}));
    let reply = client.call(sub_refresh(7, "$chat:secret", &renewed)).await;
    let result = reply.sub_refresh.expect("refreshed");
    assert!(result.expires && (895..=900).contains(&result.ttl));
    let reply = client
        .call(sub_refresh(8, "chat:not-subscribed", &renewed))
        .await;
    assert_eq!(error_code(&reply), 103);

    // A forged subscription token ends the connection.
    let forged = sign_hs256(
        b"another-secret-that-is-at-least-32-bytes",
        &json!({"sub": "alice", "channel": "$chat:x"}),
    );
    client.send(&[subscribe_with(9, "$chat:x", &forged)]).await;
    assert_eq!(client.closed().await.code, 3500);
    assert_log_keeps_secrets(&server, &[&alice, &good, &renewed, &forged]);
}

#[tokio::test]
async fn user_limited_channels_are_only_for_their_users() {
    let server = server(&[]);
    let (mut alice, _) = connected(&server, &user_token("alice", 600)).await;
    let reply = alice.call(subscribe(2, "orders:sim#alice")).await;
    assert!(reply.subscribe.is_some(), "{reply:?}");
    let reply = alice.call(subscribe(3, "orders:sim#bob")).await;
    assert_eq!(error_code(&reply), 103);
    let reply = alice.call(subscribe(4, "orders:sim#bob,alice")).await;
    assert!(reply.subscribe.is_some(), "{reply:?}");

    let (mut anonymous, _) = Client::connect(&server, Format::Json).await;
    let reply = anonymous.call(subscribe(2, "orders:sim#alice")).await;
    assert_eq!(error_code(&reply), 103);
    assert_log_keeps_secrets(&server, &[]);
}

#[tokio::test]
async fn refresh_moves_the_end_and_a_session_not_refreshed_ends_with_3005() {
    let server = server(&[("RPC_CRYPTO_CLIENT__EXPIRED_CLOSE_DELAY", "1s")]);
    let first = user_token("alice", 2);
    let (mut client, reply) = connected(&server, &first).await;
    assert!(reply.connect.unwrap().expires);

    let renewed = user_token("alice", 4);
    let reply = client.call(refresh(2, &renewed)).await;
    let result = reply.refresh.expect("a refresh result");
    assert!(
        result.expires && (3..=4).contains(&result.ttl),
        "{result:?}"
    );

    let expired = token(json!({"sub": "alice", "exp": unix_now() - 1}));
    let reply = client.call(refresh(3, &expired)).await;
    assert_eq!(error_code(&reply), 109);

    // Still open past the first token's end, closed after the second's (4 s + 1 s delay).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reply = client.call(ping(4)).await;
    assert!(reply.ping.is_some());
    let started = std::time::Instant::now();
    assert_eq!(client.closed().await.code, 3005);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Another user's token does not refresh this session.
    let (mut client, _) = connected(&server, &user_token("alice", 600)).await;
    client.send(&[refresh(2, &user_token("bob", 600))]).await;
    assert_eq!(client.closed().await.code, 3500);
    assert_log_keeps_secrets(&server, &[&first, &renewed, &expired]);
}

#[tokio::test]
async fn a_subscription_not_refreshed_ends_with_an_unsubscribe_push_2501() {
    let server = server(&[("RPC_CRYPTO_CLIENT__EXPIRED_CLOSE_DELAY", "1s")]);
    let (mut client, _) = connected(&server, &user_token("alice", 600)).await;
    let short = token(json!({"sub": "alice", "channel": "$chat:s", "exp": unix_now() + 1}));
    client.call(subscribe_with(2, "$chat:s", &short)).await;
    let push = client.next_item().await.push.expect("a push");
    assert_eq!(push.channel, "$chat:s");
    assert_eq!(push.unsubscribe.expect("an unsubscribe push").code, 2501);
    // The client is out of the channel: it may subscribe again.
    let again = token(json!({"sub": "alice", "channel": "$chat:s", "exp": unix_now() + 600}));
    let reply = client.call(subscribe_with(3, "$chat:s", &again)).await;
    assert!(reply.subscribe.is_some(), "{reply:?}");
    assert_log_keeps_secrets(&server, &[&short, &again]);
}

#[tokio::test]
async fn a_tokens_channels_are_subscribed_server_side_at_connect() {
    let server = server(&[]);
    let granted = token(json!({
        "sub": "alice",
        "exp": unix_now() + 600,
        "channels": ["$chat:granted", "orders:sim#alice"]
    }));
    let mut client = Client::open(&server.url, Format::Json).await;
    // A channel of `subs` the client may not have is left out, not refused.
    let mut subs = HashMap::new();
    subs.insert("orders:sim#bob".to_owned(), SubscribeRequest::default());
    subs.insert("chat:mine".to_owned(), SubscribeRequest::default());
    let reply = client
        .call(Command {
            id: 1,
            connect: Some(ConnectRequest {
                token: granted.clone(),
                subs,
                ..ConnectRequest::default()
            }),
            ..Command::default()
        })
        .await;
    let result = reply.connect.expect("connected");
    let mut channels: Vec<&str> = result.subs.keys().map(String::as_str).collect();
    channels.sort_unstable();
    assert_eq!(channels, ["$chat:granted", "chat:mine", "orders:sim#alice"]);

    // A token channel in a namespace that does not exist is the token's fault.
    let bad = token(json!({"sub": "alice", "channels": ["nope:x"]}));
    assert_eq!(refused_connect(&server, &bad).await.code, 3500);
    assert_log_keeps_secrets(&server, &[&granted, &bad]);
}

#[tokio::test]
async fn commands_over_the_rate_get_111_then_3013() {
    let server = server(&[
        ("RPC_CRYPTO_CLIENT__COMMAND_RATE", "5"),
        ("RPC_CRYPTO_CLIENT__COMMAND_BURST", "5"),
    ]);
    let (mut client, _) = Client::connect(&server, Format::Json).await;
    let burst: Vec<Command> = (2..=11).map(ping).collect();
    client.send(&burst).await;
    let mut codes = Vec::new();
    for id in 2..=11 {
        codes.push(error_code(&client.reply_to(id).await));
    }
    assert_eq!(codes, [0, 0, 0, 0, 0, 111, 111, 111, 111, 111]);
    // A client that keeps going while refused (more than the burst in a row) is cut off.
    let more: Vec<Command> = (12..=20).map(ping).collect();
    client.send(&more).await;
    assert_eq!(client.closed().await.code, 3013);

    // One that keeps to the rate is never refused.
    let (mut client, _) = Client::connect(&server, Format::Json).await;
    for id in 2..8 {
        assert_eq!(error_code(&client.call(ping(id)).await), 0);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_log_keeps_secrets(&server, &[]);
}

#[tokio::test]
async fn sessions_per_user_and_per_address_are_limited() {
    let server = server(&[
        ("RPC_CRYPTO_LIMITS__MAX_SESSIONS_PER_USER", "2"),
        ("RPC_CRYPTO_LIMITS__MAX_SESSIONS_PER_ADDRESS", "4"),
    ]);
    let alice = user_token("alice", 600);
    let _first = connected(&server, &alice).await;
    let _second = connected(&server, &alice).await;
    let closed = refused_connect(&server, &alice).await;
    assert_eq!(closed.code, 3504);
    let _bob = connected(&server, &user_token("bob", 600)).await;
    // Four connections from 127.0.0.1 are open now (the refused one is gone).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _fourth = Client::connect(&server, Format::Json).await;
    let mut fifth = Client::open(&server.url, Format::Json).await;
    assert_eq!(fifth.closed().await.code, 4102);
    assert_log_keeps_secrets(&server, &[&alice]);
}

#[tokio::test]
async fn insecure_mode_lets_anyone_do_anything_and_says_so() {
    let server = server(&[("RPC_CRYPTO_CLIENT__INSECURE", "true")]);
    let (mut client, _) = Client::connect(&server, Format::Json).await;
    let reply = client.call(subscribe(2, "$orders:x#bob")).await;
    assert!(reply.subscribe.is_some(), "{reply:?}");
    let reply = client.call(publish(3, "$orders:x#bob", "{\"a\":1}")).await;
    assert!(reply.publish.is_some(), "{reply:?}");
    assert!(server.log().contains("insecure"), "a warning in the log");
}

#[tokio::test]
async fn es256_tokens_verify_with_a_pem_key_and_with_a_jwks_file() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

    let private = p256::SecretKey::random(&mut rand::thread_rng());
    let public = private.public_key();
    let point = public.to_encoded_point(false);
    let dir = std::env::temp_dir().join(format!("rpc-crypto-es256-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem_path = dir.join("public.pem");
    std::fs::write(&pem_path, public.to_public_key_pem(LineEnding::LF).unwrap()).unwrap();
    let jwks = json!({"keys": [{"kty": "EC", "kid": "k1", "crv": "P-256",
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}]});
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();

    let private_pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap();
    let sign = |kid: Option<&str>| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_owned);
        let claims = json!({"sub": "erin", "exp": unix_now() + 600});
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };

    let pem = Server::start(&[
        (
            "RPC_CRYPTO_TOKEN__ECDSA_PUBLIC_KEY",
            pem_path.to_str().unwrap(),
        ),
        ("RUST_LOG", "debug"),
    ]);
    let token = sign(None);
    let (mut client, _) = connected(&pem, &token).await;
    assert_eq!(
        rpc_json(&mut client, 2, "session.status").await["user"],
        "erin"
    );
    // HS256 is not on with only an EC key.
    let hs256 = user_token("erin", 600);
    assert_eq!(refused_connect(&pem, &hs256).await.code, 3500);
    assert_log_keeps_secrets(&pem, &[&token, &hs256]);

    let with_jwks = Server::start(&[("RPC_CRYPTO_TOKEN__JWKS_FILE", jwks_path.to_str().unwrap())]);
    let (mut client, _) = connected(&with_jwks, &sign(Some("k1"))).await;
    assert_eq!(
        rpc_json(&mut client, 2, "session.status").await["user"],
        "erin"
    );
    assert_eq!(
        refused_connect(&with_jwks, &sign(Some("k2"))).await.code,
        3500
    );
    std::fs::remove_dir_all(dir).unwrap();
}
