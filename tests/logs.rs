//! The log for log shippers, against the real binary at `debug`: with `log.format = "json"` every
//! line of stderr is one JSON object (`time`, `level`, `target`, `message`), the lines about a
//! session carry its id and user, and no token, key or secret is anywhere in it, after sessions
//! that used each of them, refused ones, a refused API call, a panic and the shutdown. The text
//! format shows the same fields after the message.

mod common;

use common::*;
use rpc_crypto_actors::auth::sign_hs256;
use rpc_crypto_proto::codec::Format;
use rpc_crypto_proto::protocol::{Command, RefreshRequest, SubscribeRequest};
use serde_json::{json, Value};

const SECRET: &str = "logs-test-hmac-secret-0123456789-abcdef";
const KEY: &str = "logs-test-api-key-0123456789-abcdefgh";
const WRONG_KEY: &str = "logs-test-wrong-api-key-0123456789-xyz";
const EXCHANGE_SECRET: &str = "logs-test-exchange-secret-0123456789";
/// Signs the forged tokens: not the server's.
const OTHER_SECRET: &str = "logs-test-another-secret-0123456789-ab";

fn token(secret: &str, claims: Value) -> String {
    sign_hs256(secret.as_bytes(), &claims)
}

fn user_token(user: &str) -> String {
    token(SECRET, json!({"sub": user, "exp": unix_now() + 600}))
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

/// Connects with `token`; the client and its session id.
async fn connected(server: &Server, token: &str) -> (Client, String) {
    let mut client = Client::open(&server.url, Format::Json).await;
    let reply = client.call(connect_with_token(1, token)).await;
    assert_eq!(error_code(&reply), 0, "connect failed: {reply:?}");
    (client, reply.connect.expect("a connect result").client)
}

/// `2025-01-31T12:00:00.123Z`: RFC 3339, UTC, milliseconds.
fn is_rfc3339_millis_utc(time: &str) -> bool {
    let b = time.as_bytes();
    let digits = |range: std::ops::Range<usize>| range.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

/// Every line of `log` as a JSON object with its four members; fails on the first that is not.
fn json_lines(log: &str) -> Vec<serde_json::Map<String, Value>> {
    assert!(!log.is_empty(), "the server logged nothing");
    assert!(log.ends_with('\n'), "the log ends mid-line: {log}");
    log.lines()
        .map(|line| {
            let Ok(Value::Object(object)) = serde_json::from_str(line) else {
                panic!("not a JSON object: {line:?}\n--- log ---\n{log}");
            };
            let text = |name: &str| {
                object
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("no string `{name}` in {line}"))
            };
            assert!(is_rfc3339_millis_utc(text("time")), "time: {line}");
            assert!(
                ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&text("level")),
                "level: {line}"
            );
            assert!(!text("target").is_empty(), "target: {line}");
            text("message");
            object
        })
        .collect()
}

/// The lines whose message contains `text`; at least one.
fn lines_with<'a>(
    lines: &'a [serde_json::Map<String, Value>],
    text: &str,
) -> Vec<&'a serde_json::Map<String, Value>> {
    let found: Vec<_> = lines
        .iter()
        .filter(|line| line["message"].as_str().is_some_and(|m| m.contains(text)))
        .collect();
    assert!(!found.is_empty(), "no line says {text:?}");
    found
}

#[tokio::test]
async fn json_lines_name_the_session_and_hold_no_secret() {
    let mut server = Server::start(&[
        ("RPC_CRYPTO_LOG__FORMAT", "json"),
        ("RUST_LOG", "debug"),
        ("RPC_CRYPTO_TOKEN__HMAC_SECRET", SECRET),
        ("RPC_CRYPTO_API__KEY", KEY),
        ("TEST_RPC_CRYPTO_FAULT_INJECTION", "1"),
    ]);
    let http = Http::new(&server, KEY);

    // alice uses every secret a session carries: a connection token, a subscription token, a
    // refresh token, an exchange login with a secret.
    let alice_token = user_token("alice");
    let (mut alice, alice_id) = connected(&server, &alice_token).await;
    let channel = "$chat:room";
    let subscription = token(
        SECRET,
        json!({"sub": "alice", "channel": channel, "exp": unix_now() + 600}),
    );
    let reply = alice.call(subscribe_with(2, channel, &subscription)).await;
    assert_eq!(error_code(&reply), 0, "{reply:?}");
    let renewed = user_token("alice");
    let reply = alice.call(refresh(3, &renewed)).await;
    assert_eq!(error_code(&reply), 0, "{reply:?}");
    let login = json!({"exchange": "sim", "account": "alice-main", "secret": EXCHANGE_SECRET});
    let reply = alice
        .call(rpc(4, "exchange.login", &login.to_string()))
        .await;
    assert_eq!(error_code(&reply), 0, "{reply:?}");

    // carol's session is resumable: its key comes back on a new connection.
    let mut carol = Client::open(&server.url, Format::Json).await;
    let reply = carol
        .call(connect_with_data(1, r#"{"resumable": true}"#))
        .await;
    let result = reply.connect.expect("a connect result");
    let data: Value = serde_json::from_slice(&result.data).unwrap();
    let session_key = data["session_key"]
        .as_str()
        .expect("a session key")
        .to_owned();
    drop(carol);
    let mut carol = Client::open(&server.url, Format::Json).await;
    let resume =
        json!({"resume": {"session": result.client, "key": session_key, "last_received": 1}});
    let reply = carol.call(connect_with_data(1, &resume.to_string())).await;
    let data: Value = serde_json::from_slice(&reply.connect.expect("resumed").data).unwrap();
    assert_eq!(data["resumed"], true, "{data}");
    drop(carol);

    // The API with its key, and a call with another key.
    let info = http.result("info", json!({})).await;
    assert!(info.is_object(), "{info:?}");
    let refused = http
        .request("POST", "/api/info", &[("X-API-Key", WRONG_KEY)], b"{}")
        .await;
    assert_eq!(refused.status, 401, "{refused:?}");

    // A forged connection token is refused (3500).
    let forged = token(
        OTHER_SECRET,
        json!({"sub": "mallory", "exp": unix_now() + 600}),
    );
    let mut mallory = Client::open(&server.url, Format::Json).await;
    mallory.send(&[connect_with_token(1, &forged)]).await;
    assert_eq!(mallory.closed().await.code, 3500);

    // bob's session panics.
    let (mut bob, bob_id) = connected(&server, &user_token("bob")).await;
    bob.send(&[rpc(2, "debug.panic", r#"{"actor": "session"}"#)])
        .await;
    assert_eq!(bob.closed().await.code, 1006);

    // alice's session ends on a forged subscription token (3500).
    let forged_subscription = token(
        OTHER_SECRET,
        json!({"sub": "alice", "channel": "$chat:other", "exp": unix_now() + 600}),
    );
    alice
        .send(&[subscribe_with(5, "$chat:other", &forged_subscription)])
        .await;
    assert_eq!(alice.closed().await.code, 3500);

    // The shutdown writes its lines too; after the exit the log is complete.
    server.terminate();
    assert!(server.wait_exit().success());
    let log = server.log();
    let lines = json_lines(&log);

    assert!(
        lines.iter().any(|line| line["level"] == "DEBUG"),
        "the server logged at debug"
    );
    for line in lines_with(&lines, &alice_id) {
        assert_eq!(line["session"], alice_id.as_str(), "{line:?}");
        assert_eq!(line["user"], "alice", "{line:?}");
    }
    for line in lines_with(&lines, "subscription token refused") {
        assert_eq!(line["session"], alice_id.as_str(), "{line:?}");
        assert_eq!(line["user"], "alice", "{line:?}");
    }
    // The refused connection has a session id but no user yet.
    for line in lines_with(&lines, "connect refused") {
        let session = line["session"].as_str().unwrap_or_default();
        assert!(!session.is_empty() && session != alice_id && session != bob_id);
        assert!(!line.contains_key("user"), "{line:?}");
    }
    // The panic: one line at error (the default hook would write text), its backtrace in a
    // member when RUST_BACKTRACE asks for one.
    let panic = lines_with(&lines, "injected panic in a Session");
    assert_eq!(panic[0]["target"], "panic", "{:?}", panic[0]);
    assert_eq!(panic[0]["level"], "ERROR", "{:?}", panic[0]);
    lines_with(&lines, "server API: unauthorized request");
    lines_with(&lines, "stopped");

    for secret in [
        SECRET,
        KEY,
        WRONG_KEY,
        EXCHANGE_SECRET,
        OTHER_SECRET,
        &alice_token,
        &subscription,
        &renewed,
        &forged,
        &forged_subscription,
        &session_key,
    ] {
        // A token's signature alone would identify it; the session key is 32 characters.
        let tail = &secret[secret.len() - 20..];
        assert!(
            !log.contains(tail),
            "the log holds a secret or token: {tail}"
        );
    }
}

#[tokio::test]
async fn text_lines_show_the_session_and_user_after_the_message() {
    let mut server = Server::start(&[
        ("RUST_LOG", "debug"),
        ("RPC_CRYPTO_TOKEN__HMAC_SECRET", SECRET),
    ]);
    let alice_token = user_token("alice");
    let (mut alice, alice_id) = connected(&server, &alice_token).await;
    alice
        .send(&[subscribe_with(2, "$chat:other", "not.a.token")])
        .await;
    assert_eq!(alice.closed().await.code, 3500);
    server.terminate();
    assert!(server.wait_exit().success());
    let log = server.log();
    let fields = format!(" session={alice_id} user=alice");
    for text in [
        "subscription token refused",
        &format!("session {alice_id} closing"),
    ] {
        let line = log
            .lines()
            .find(|line| line.contains(text))
            .unwrap_or_else(|| panic!("no line says {text:?}:\n{log}"));
        assert!(line.ends_with(&fields), "{line}");
    }
    assert!(
        serde_json::from_str::<Value>(log.lines().next().unwrap()).is_err(),
        "text, not JSON"
    );
    assert!(!log.contains(&alice_token[alice_token.len() - 20..]));
    assert!(!log.contains(SECRET));
}

#[tokio::test]
async fn a_panic_is_a_json_line_even_when_rust_log_turns_logging_off() {
    let mut server = Server::start(&[
        ("RPC_CRYPTO_LOG__FORMAT", "json"),
        ("RUST_LOG", "off"),
        ("TEST_RPC_CRYPTO_FAULT_INJECTION", "1"),
    ]);
    let (mut client, _) = Client::connect(&server, Format::Json).await;
    client
        .send(&[rpc(2, "debug.panic", r#"{"actor": "session"}"#)])
        .await;
    assert_eq!(client.closed().await.code, 1006);
    server.terminate();
    assert!(server.wait_exit().success());
    let log = server.log();
    let lines = json_lines(&log);
    assert_eq!(lines.len(), 1, "{log}");
    assert_eq!(lines[0]["target"], "panic");
    assert!(lines[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("injected panic in a Session")));
}
