//! The server HTTP API end to end: real HTTP/1.1 requests to the real binary, with real
//! WebSocket clients where a method acts on sessions. Every method, and every way a request can
//! be refused (401, 400, 404, 405, 413, and method errors at HTTP 200).
//!
//! HTTP is spoken by hand over a tokio `TcpStream` (one request per connection): the API needs
//! nothing more, and the tests then pull in no HTTP client and no TLS stack.

mod common;

use std::time::Duration;

use common::*;
use rpc_crypto_actors::auth::sign_hs256;
use rpc_crypto_proto::codec::Format;
use rpc_crypto_proto::protocol::Reply;
use serde_json::{json, Value};

const KEY: &str = "api-key-for-tests-5f1c9e-0123456789";
const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
/// `chat` keeps history and presence; `plain` keeps neither.
const NAMESPACES: &str = "[{name = \"chat\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, allow_publish_for_subscriber = true, allow_publish_for_anonymous = true, history_size = 10, history_ttl = \"5m\", presence = true}, {name = \"plain\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true}]";

/// A server with the API on ([`KEY`]), HS256 tokens, and [`NAMESPACES`].
fn server(env: &[(&str, &str)]) -> Server {
    let mut all = vec![
        ("RPC_CRYPTO_API__KEY", KEY),
        ("RPC_CRYPTO_TOKEN__HMAC_SECRET", SECRET),
        ("RPC_CRYPTO_NAMESPACES", NAMESPACES),
    ];
    all.extend_from_slice(env);
    Server::start(&all)
}

/// Connects as `user` (with a token) and returns the client and its session id.
async fn connect_as(server: &Server, user: &str) -> (Client, String) {
    let token = sign_hs256(
        SECRET.as_bytes(),
        &json!({"sub": user, "exp": unix_now() + 3600}),
    );
    let mut client = Client::open(&server.url, Format::Json).await;
    let reply = client.call(connect_with_token(1, &token)).await;
    assert_eq!(error_code(&reply), 0, "connect failed: {reply:?}");
    let id = reply.connect.expect("a connect result").client;
    (client, id)
}

/// Connects anonymously and returns the client and its session id.
async fn connect_anonymous(server: &Server, format: Format) -> (Client, String) {
    let (client, reply) = Client::connect(server, format).await;
    (client, reply.connect.expect("a connect result").client)
}

/// Subscribes a connected client to `channel`.
async fn subscribed(client: &mut Client, id: u32, channel: &str) {
    let reply = client.call(subscribe(id, channel)).await;
    assert_eq!(error_code(&reply), 0, "subscribe failed: {reply:?}");
}

/// Nothing more arrives within a short while.
async fn assert_quiet(client: &mut Client) {
    let item = client.try_next_item(Duration::from_millis(300)).await;
    assert!(item.is_none(), "unexpected: {item:?}");
}

fn unauthorized() -> Value {
    json!({"error": {"code": 101, "message": "unauthorized"}})
}

#[tokio::test]
async fn requests_without_the_right_key_are_unauthorized() {
    let server = server(&[("RUST_LOG", "debug")]);
    let http = Http::new(&server, KEY);
    let body = br#"{"channel":"chat:secret-body-marker","data":{"marker":"secret-body-marker"}}"#;
    for headers in [
        vec![],
        vec![("X-API-Key", "wrong")],
        vec![("X-API-Key", "api-key-for-tests-5f1c9e-012345678")],
        vec![("X-API-Key", "api-key-for-tests-5f1c9e-0123456789a")],
        vec![("Authorization", "apikey wrong")],
    ] {
        let answer = http.request("POST", "/api/publish", &headers, body).await;
        assert_eq!(answer.status, 401, "{headers:?}");
        assert_eq!(answer.body, unauthorized());
    }
    // The key is checked before anything else: an unknown method without it is 401 too.
    let answer = http.request("POST", "/api/nope", &[], b"{}").await;
    assert_eq!(answer.status, 401);
    // Centrifugo's other header works as well.
    let answer = http
        .request(
            "POST",
            "/api/info",
            &[("Authorization", &format!("apikey {KEY}"))],
            b"{}",
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    // Neither the key nor request bodies reach the log.
    let answer = http
        .request("POST", "/api/publish", &[("X-API-Key", KEY)], body)
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    server.assert_no_panic();
    let log = server.log();
    assert!(log.contains("DEBUG"), "the server logged at debug");
    assert!(!log.contains(KEY), "the log holds the API key");
    assert!(!log.contains("secret-body-marker"), "the log holds a body");
}

#[tokio::test]
async fn the_api_is_off_without_a_key() {
    let server = Server::start(&[]);
    let http = Http::new(&server, KEY);
    for headers in [vec![], vec![("X-API-Key", "")], vec![("X-API-Key", KEY)]] {
        let answer = http.request("POST", "/api/info", &headers, b"{}").await;
        assert_eq!(answer.status, 401, "{headers:?}");
        assert_eq!(answer.body, unauthorized());
    }
    let answer = http.request("POST", "/session/create", &[], b"{}").await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn malformed_requests_are_refused_with_their_status() {
    let server = server(&[]);
    let http = Http::new(&server, KEY);
    let key = [("X-API-Key", KEY)];
    let bad = |answer: &Answer, contains: &str| {
        assert_eq!(answer.status, 400, "{answer:?}");
        assert_eq!(answer.body["error"]["code"], 107, "{answer:?}");
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("bad request: "), "{message}");
        assert!(message.contains(contains), "{message} lacks {contains}");
        assert!(!message.contains("line 1"), "no position: {message}");
    };
    let post = |path: &'static str, body: &'static [u8]| http.request("POST", path, &key, body);

    bad(&post("/api/publish", b"{\"channel\": ").await, "EOF");
    bad(&post("/api/publish", b"not json").await, "expected");
    bad(
        &post("/api/publish", br#"{"channel":"chat:x"}"#).await,
        "missing field `data`",
    );
    bad(
        &post("/api/publish", br#"{"channel":1,"data":{}}"#).await,
        "invalid type",
    );
    bad(
        &post(
            "/api/publish",
            br#"{"channel":"chat:x","data":{},"extra":1}"#,
        )
        .await,
        "unknown field `extra`",
    );
    bad(&post("/api/history", b"").await, "missing field `channel`");
    bad(
        &post("/api/session_create", br#"{"owner":"a","lifetime":-1}"#).await,
        "invalid value",
    );
    bad(
        &post(
            "/api/disconnect",
            br#"{"user":"a","disconnect":{"reason":"x"}}"#,
        )
        .await,
        "missing field `code`",
    );

    let answer = post("/api/nope", b"{}").await;
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.body,
        json!({"error": {"code": 104, "message": "method not found"}})
    );
    let answer = http.request("GET", "/api/info", &key, b"").await;
    assert_eq!(answer.status, 405);

    // Past 64 KiB: 413, code 107. The publication is not made.
    let (mut client, _) = connect_anonymous(&server, Format::Json).await;
    subscribed(&mut client, 2, "chat:big").await;
    let big = format!(
        "{{\"channel\":\"chat:big\",\"data\":\"{}\"}}",
        "x".repeat(64 * 1024)
    );
    let answer = http
        .request("POST", "/api/publish", &key, big.as_bytes())
        .await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], 107);
    assert_quiet(&mut client).await;
    // Just under the limit is taken.
    let fits = format!(
        "{{\"channel\":\"chat:big\",\"data\":\"{}\"}}",
        "x".repeat(60 * 1024)
    );
    let answer = http
        .request("POST", "/api/publish", &key, fits.as_bytes())
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let (channel, _) = publication(&client.next_item().await);
    assert_eq!(channel, "chat:big");
    server.assert_no_panic();
}

#[tokio::test]
async fn publish_reaches_subscribers_of_both_formats() {
    let server = server(&[]);
    let http = Http::new(&server, KEY);
    let mut clients = Vec::new();
    for format in BOTH {
        let (mut client, _) = connect_anonymous(&server, format).await;
        subscribed(&mut client, 2, "chat:x").await;
        clients.push(client);
    }
    let data = "{ \"text\" : \"hi there\",\n \"n\": [1, 2.50] , \"z\": null }";
    let body = format!("{{\"channel\":\"chat:x\",\"data\":{data}}}");
    let answer = http
        .request(
            "POST",
            "/api/publish",
            &[("X-API-Key", KEY)],
            body.as_bytes(),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!({"result": {}}));
    for client in &mut clients {
        let item = client.next_item().await;
        let (channel, value) = publication(&item);
        assert_eq!(channel, "chat:x");
        assert_eq!(value, json!({"text": "hi there", "n": [1, 2.5], "z": null}));
        // Compacted, key order kept.
        let raw = &item.push.as_ref().unwrap().r#pub.as_ref().unwrap().data;
        assert_eq!(&raw[..], br#"{"text":"hi there","n":[1,2.50],"z":null}"#);
    }
    // A scalar is data too.
    http.result("publish", json!({"channel": "chat:x", "data": 42}))
        .await;
    assert_eq!(publication(&clients[0].next_item().await).1, json!(42));

    // The Router would drop these without a word; the API says why.
    assert_eq!(
        http.error("publish", json!({"channel": "nope:x", "data": {}}))
            .await,
        102
    );
    assert_eq!(
        http.error("publish", json!({"channel": "", "data": {}}))
            .await,
        107
    );
    assert_eq!(
        http.error("publish", json!({"channel": "chat:a b", "data": {}}))
            .await,
        107
    );
    // As for a client's publish, a publication carries something.
    assert_eq!(
        http.error("publish", json!({"channel": "chat:x", "data": null}))
            .await,
        107
    );
    server.assert_no_panic();
}

#[tokio::test]
async fn broadcast_publishes_on_each_channel_and_answers_for_each() {
    let server = server(&[]);
    let http = Http::new(&server, KEY);
    let (mut client, _) = connect_anonymous(&server, Format::Json).await;
    subscribed(&mut client, 2, "chat:a").await;
    subscribed(&mut client, 3, "chat:b").await;
    let result = http
        .result(
            "broadcast",
            json!({"channels": ["chat:a", "nope:c", "chat:b"], "data": {"v": 1}}),
        )
        .await;
    assert_eq!(
        result,
        json!({"responses": [
            {"result": {}},
            {"error": {"code": 102, "message": "unknown channel"}},
            {"result": {}},
        ]})
    );
    let mut got = vec![
        publication(&client.next_item().await),
        publication(&client.next_item().await),
    ];
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("chat:a".to_owned(), json!({"v": 1})),
            ("chat:b".to_owned(), json!({"v": 1})),
        ]
    );
    assert_eq!(
        http.error("broadcast", json!({"channels": [], "data": {}}))
            .await,
        107
    );
    server.assert_no_panic();
}

#[tokio::test]
async fn subscribe_and_unsubscribe_a_users_sessions() {
    let server = server(&[]);
    let http = Http::new(&server, KEY);
    let (mut alice, alice_id) = connect_as(&server, "alice").await;
    let (mut bob, _) = connect_as(&server, "bob").await;

    let result = http
        .result("subscribe", json!({"user": "alice", "channel": "chat:x"}))
        .await;
    assert_eq!(result, json!({"sessions": 1}));
    let item = alice.next_item().await;
    let push = item.push.as_ref().expect("a push");
    assert_eq!(push.channel, "chat:x");
    assert!(push.subscribe.is_some(), "a subscribe push: {item:?}");
    // Publications follow the push.
    http.result("publish", json!({"channel": "chat:x", "data": {"n": 1}}))
        .await;
    assert_eq!(
        publication(&alice.next_item().await),
        ("chat:x".to_owned(), json!({"n": 1}))
    );
    assert_quiet(&mut bob).await;

    let result = http
        .result("unsubscribe", json!({"user": "alice", "channel": "chat:x"}))
        .await;
    assert_eq!(result, json!({"sessions": 1}));
    let item = alice.next_item().await;
    let push = item.push.as_ref().expect("a push");
    assert_eq!(push.channel, "chat:x");
    let unsubscribe = push.unsubscribe.as_ref().expect("an unsubscribe push");
    assert_eq!(unsubscribe.code, 2000);
    http.result("publish", json!({"channel": "chat:x", "data": {"n": 2}}))
        .await;
    assert_quiet(&mut alice).await;

    // By session id alone.
    let result = http
        .result(
            "subscribe",
            json!({"client": alice_id, "channel": "chat:y"}),
        )
        .await;
    assert_eq!(result, json!({"sessions": 1}));
    let item = alice.next_item().await;
    assert_eq!(item.push.as_ref().expect("a push").channel, "chat:y");
    // A user with no session, or a client of another user, is reached by nobody.
    let result = http
        .result("subscribe", json!({"user": "carol", "channel": "chat:x"}))
        .await;
    assert_eq!(result, json!({"sessions": 0}));
    let result = http
        .result(
            "subscribe",
            json!({"user": "bob", "client": alice_id, "channel": "chat:x"}),
        )
        .await;
    assert_eq!(result, json!({"sessions": 0}));
    assert_eq!(
        http.error("subscribe", json!({"user": "alice", "channel": "nope:x"}))
            .await,
        102
    );
    assert_eq!(
        http.error("subscribe", json!({"channel": "chat:x"})).await,
        107
    );
    assert_eq!(
        http.error("unsubscribe", json!({"user": "", "channel": "chat:x"}))
            .await,
        107
    );
    assert_quiet(&mut alice).await;
    assert_quiet(&mut bob).await;
    server.assert_no_panic();
}

#[tokio::test]
async fn disconnect_closes_sessions_with_the_code_asked() {
    let server = server(&[]);
    let http = Http::new(&server, KEY);
    let (mut first, _) = connect_as(&server, "alice").await;
    let (mut second, _) = connect_as(&server, "alice").await;
    let result = http.result("disconnect", json!({"user": "alice"})).await;
    assert_eq!(result, json!({"sessions": 2}));
    for client in [&mut first, &mut second] {
        assert_eq!(
            client.closed().await,
            Closed {
                code: 3503,
                reason: "force disconnect".into()
            }
        );
    }

    let (mut client, id) = connect_as(&server, "alice").await;
    let (mut other, _) = connect_as(&server, "alice").await;
    let result = http
        .result(
            "disconnect",
            json!({"client": id, "disconnect": {"code": 4001, "reason": "bye"}}),
        )
        .await;
    assert_eq!(result, json!({"sessions": 1}));
    assert_eq!(
        client.closed().await,
        Closed {
            code: 4001,
            reason: "bye".into()
        }
    );
    assert_quiet(&mut other).await;

    for bad in [
        json!({}),
        json!({"user": "alice", "disconnect": {"code": 1000, "reason": "x"}}),
        json!({"user": "alice", "disconnect": {"code": 5000, "reason": "x"}}),
        json!({"user": "alice", "disconnect": {"code": 70000, "reason": "x"}}),
        json!({"user": "alice", "disconnect": {"code": 4000, "reason": "x".repeat(121)}}),
    ] {
        assert_eq!(http.error("disconnect", bad.clone()).await, 107, "{bad}");
    }
    assert_quiet(&mut other).await;
    server.assert_no_panic();
}

#[tokio::test]
async fn presence_and_presence_stats_count_subscribers() {
    let server = server(&[]);
    let http = Http::new(&server, KEY);
    let (mut alice, alice_id) = connect_as(&server, "alice").await;
    let (mut anonymous, anonymous_id) = connect_anonymous(&server, Format::Protobuf).await;
    subscribed(&mut alice, 2, "chat:p").await;
    subscribed(&mut anonymous, 2, "chat:p").await;

    let result = http.result("presence", json!({"channel": "chat:p"})).await;
    let presence = result["presence"].as_object().expect("a presence map");
    assert_eq!(presence.len(), 2, "{result}");
    assert_eq!(presence[&alice_id]["user"], "alice");
    assert_eq!(presence[&alice_id]["client"], alice_id.as_str());
    assert_eq!(presence[&anonymous_id]["client"], anonymous_id.as_str());
    assert_eq!(
        presence[&anonymous_id]
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or(""),
        ""
    );
    let stats = http
        .result("presence_stats", json!({"channel": "chat:p"}))
        .await;
    assert_eq!(stats, json!({"num_clients": 2, "num_users": 2}));

    // A channel nobody is in.
    let result = http
        .result("presence", json!({"channel": "chat:none"}))
        .await;
    assert_eq!(result, json!({"presence": {}}));
    let stats = http
        .result("presence_stats", json!({"channel": "chat:none"}))
        .await;
    assert_eq!(stats, json!({"num_clients": 0, "num_users": 0}));

    drop(anonymous);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = http
            .result("presence_stats", json!({"channel": "chat:p"}))
            .await;
        if stats == json!({"num_clients": 1, "num_users": 1}) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(
        http.error("presence", json!({"channel": "plain:x"})).await,
        108
    );
    assert_eq!(
        http.error("presence_stats", json!({"channel": "nope:x"}))
            .await,
        102
    );
    server.assert_no_panic();
}

#[tokio::test]
async fn history_and_history_remove() {
    let server = server(&[]);
    let http = Http::new(&server, KEY);
    for n in 1..=3 {
        http.result("publish", json!({"channel": "chat:h", "data": {"n": n}}))
            .await;
    }
    let all = http
        .result("history", json!({"channel": "chat:h", "limit": -1}))
        .await;
    let epoch = all["epoch"].as_str().expect("an epoch").to_owned();
    assert!(!epoch.is_empty());
    assert_eq!(all["offset"], 3);
    assert_eq!(
        all["publications"],
        json!([
            {"data": {"n": 1}, "offset": 1},
            {"data": {"n": 2}, "offset": 2},
            {"data": {"n": 3}, "offset": 3},
        ])
    );
    // No limit: the position only.
    let position = http.result("history", json!({"channel": "chat:h"})).await;
    assert_eq!(
        position,
        json!({"publications": [], "epoch": epoch, "offset": 3})
    );
    let two = http
        .result("history", json!({"channel": "chat:h", "limit": 2}))
        .await;
    assert_eq!(two["publications"].as_array().unwrap().len(), 2);
    let newest = http
        .result(
            "history",
            json!({"channel": "chat:h", "limit": 1, "reverse": true}),
        )
        .await;
    assert_eq!(
        newest["publications"],
        json!([{"data": {"n": 3}, "offset": 3}])
    );
    let since = http
        .result(
            "history",
            json!({"channel": "chat:h", "limit": -1, "since": {"offset": 1, "epoch": epoch}}),
        )
        .await;
    let offsets: Vec<&Value> = since["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["offset"])
        .collect();
    assert_eq!(offsets, vec![&json!(2), &json!(3)]);

    let info = http.result("info", json!({})).await;
    assert_eq!(info["history_publications"], 3);

    assert_eq!(
        http.error("history", json!({"channel": "chat:h", "limit": -2}))
            .await,
        107
    );
    assert_eq!(
        http.error(
            "history",
            json!({"channel": "chat:h", "since": {"offset": 1, "epoch": "other"}})
        )
        .await,
        112
    );
    assert_eq!(
        http.error("history", json!({"channel": "plain:x"})).await,
        108
    );
    assert_eq!(
        http.error("history", json!({"channel": "nope:x"})).await,
        102
    );

    let removed = http
        .result("history_remove", json!({"channel": "chat:h"}))
        .await;
    assert_eq!(removed, json!({}));
    // The publications are gone, the position stays.
    let after = http
        .result("history", json!({"channel": "chat:h", "limit": -1}))
        .await;
    assert_eq!(
        after,
        json!({"publications": [], "epoch": epoch, "offset": 3})
    );
    let info = http.result("info", json!({})).await;
    assert_eq!(info["history_publications"], 0);
    assert_eq!(info["history_bytes"], 0);
    assert_eq!(
        http.error("history_remove", json!({"channel": "plain:x"}))
            .await,
        108
    );
    server.assert_no_panic();
}

#[tokio::test]
async fn channels_lists_channels_with_subscribers() {
    let server = server(&[]);
    let http = Http::new(&server, KEY);
    let result = http.result("channels", json!({})).await;
    assert_eq!(result, json!({"channels": {}}));
    let (mut one, _) = connect_anonymous(&server, Format::Json).await;
    let (mut two, _) = connect_as(&server, "alice").await;
    subscribed(&mut one, 2, "chat:a").await;
    subscribed(&mut one, 3, "plain:b").await;
    subscribed(&mut two, 2, "chat:a").await;
    let result = http.result("channels", json!({})).await;
    assert_eq!(
        result,
        json!({"channels": {"chat:a": {"num_clients": 2}, "plain:b": {"num_clients": 1}}})
    );
    let result = http.result("channels", json!({"pattern": "chat:*"})).await;
    assert_eq!(result, json!({"channels": {"chat:a": {"num_clients": 2}}}));
    let result = http.result("channels", json!({"pattern": "*b"})).await;
    assert_eq!(result, json!({"channels": {"plain:b": {"num_clients": 1}}}));
    let result = http.result("channels", json!({"pattern": "x*"})).await;
    assert_eq!(result, json!({"channels": {}}));
    server.assert_no_panic();
}

#[tokio::test]
async fn info_counts_sessions_and_channels() {
    let server = server(&[]);
    let http = Http::new(&server, KEY);
    let info = http.result("info", json!({})).await;
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(info["uptime_seconds"].is_u64(), "{info}");
    for field in [
        "sessions",
        "parked",
        "users",
        "created_sessions",
        "channels",
        "subscriptions",
        "history_publications",
        "history_bytes",
    ] {
        assert_eq!(info[field], 0, "{field}: {info}");
    }
    let (mut alice, _) = connect_as(&server, "alice").await;
    let (_anonymous, _) = connect_anonymous(&server, Format::Json).await;
    subscribed(&mut alice, 2, "chat:i").await;
    http.result("session_create", json!({"owner": "bob", "lifetime": 60}))
        .await;
    // An empty body is `{}`.
    let answer = http
        .request("POST", "/api/info", &[("X-API-Key", KEY)], b"")
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let info = &answer.body["result"];
    assert_eq!(info["sessions"], 2, "{info}");
    assert_eq!(info["users"], 1, "{info}");
    assert_eq!(info["created_sessions"], 1, "{info}");
    assert_eq!(info["channels"], 1, "{info}");
    assert_eq!(info["subscriptions"], 1, "{info}");
    assert_eq!(http.api("info", json!({"verbose": true})).await.status, 400);
    server.assert_no_panic();
}

#[tokio::test]
async fn session_create_gives_a_key_that_connects_until_the_lifetime_ends() {
    let server = server(&[]);
    let http = Http::new(&server, KEY);
    let created = http
        .result("session_create", json!({"owner": "carol", "lifetime": 2}))
        .await;
    let id = created["id"].as_str().expect("an id").to_owned();
    let key = created["session_key"].as_str().expect("a key").to_owned();
    let expires_at = created["expires_at"].as_u64().expect("expires_at");
    assert_eq!(id.len(), 32);
    assert!(
        expires_at > unix_now() && expires_at <= unix_now() + 2,
        "{created}"
    );

    let mut client = Client::open(&server.url, Format::Json).await;
    let reply: Reply = client.call(connect_with_token(1, &key)).await;
    assert_eq!(error_code(&reply), 0, "connect failed: {reply:?}");
    let result = reply.connect.expect("a connect result");
    assert_eq!(result.client, id);
    assert!(result.expires);
    assert!((1..=2).contains(&result.ttl), "ttl {}", result.ttl);
    // It is carol's session: the API reaches it by user.
    let reached = http
        .result("subscribe", json!({"user": "carol", "channel": "chat:s"}))
        .await;
    assert_eq!(reached, json!({"sessions": 1}));
    assert_eq!(client.next_item().await.push.unwrap().channel, "chat:s");

    // At the end of its lifetime the server closes it, and the key no longer connects.
    let closed = client.closed().await;
    assert_eq!(closed.code, 3005, "{closed:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut late = Client::open(&server.url, Format::Json).await;
    late.send(&[connect_with_token(1, &key)]).await;
    let refused = late.next_item_or_close().await;
    assert!(
        matches!(&refused, Err(Closed { code: 3500, .. })),
        "{refused:?}"
    );

    // The original gateway's path, with its `owner_id`.
    let answer = http
        .request(
            "POST",
            "/session/create",
            &[("X-API-Key", KEY)],
            br#"{"owner_id":"dave","lifetime":60}"#,
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let key = answer.body["result"]["session_key"].as_str().unwrap();
    let mut client = Client::open(&server.url, Format::Json).await;
    let reply = client.call(connect_with_token(1, key)).await;
    assert_eq!(error_code(&reply), 0, "connect failed: {reply:?}");
    assert_eq!(
        reply.connect.unwrap().client,
        answer.body["result"]["id"].as_str().unwrap()
    );

    for bad in [
        json!({"owner": "carol", "lifetime": 0}),
        json!({"owner": "", "lifetime": 10}),
        json!({"owner": "carol", "lifetime": 31 * 24 * 3600}),
    ] {
        assert_eq!(
            http.error("session_create", bad.clone()).await,
            107,
            "{bad}"
        );
    }
    server.assert_no_panic();
}
