//! Issue 14's findings, each against the real binary as the hostile or demanding user found it:
//! data that is not UTF-8 or nests too deep, user names that cross the `#` boundary, accounts and
//! names without bounds, a channel flood, a resume whose connection drops again, and what a panic
//! in an actor leaves behind (with the debug build's fault injection, `debug.panic`).
//!
//! Each test failed on the commit before its fix (`TEST_RPC_CRYPTO_BINARY` runs it against
//! another build).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use rpc_crypto_actors::auth::sign_hs256;
use rpc_crypto_proto::codec::Format;
use rpc_crypto_proto::protocol::{
    Command, HistoryRequest, PublishRequest, Reply, StreamPosition, SubscribeRequest,
};
use serde_json::{json, Value};

const KEY: &str = "api-key-for-hardening-tests-0123456789";
const SECRET: &str = "hmac-secret-for-hardening-tests-0123456789";

/// `h`: history, recoverable, anyone publishes; `chat`: subscribers publish, no history.
const NAMESPACES: &str = "[\
{name = \"h\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, allow_publish_for_client = true, allow_publish_for_anonymous = true, history_size = 10, history_ttl = \"60s\", force_recovery = true, allow_history_for_client = true, allow_history_for_anonymous = true}, \
{name = \"chat\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, allow_publish_for_subscriber = true, allow_publish_for_anonymous = true, presence = true}]";

fn server(env: &[(&str, &str)]) -> Server {
    let mut all = vec![
        ("RPC_CRYPTO_API__KEY", KEY),
        ("RPC_CRYPTO_TOKEN__HMAC_SECRET", SECRET),
        ("RPC_CRYPTO_NAMESPACES", NAMESPACES),
    ];
    all.extend_from_slice(env);
    Server::start(&all)
}

fn token(user: &str) -> String {
    sign_hs256(
        SECRET.as_bytes(),
        &json!({"sub": user, "exp": unix_now() + 3600}),
    )
}

fn publish_bytes(id: u32, channel: &str, data: &[u8]) -> Command {
    Command {
        id,
        publish: Some(PublishRequest {
            channel: channel.into(),
            data: Bytes::copy_from_slice(data),
        }),
        ..Command::default()
    }
}

fn recover(id: u32, channel: &str, offset: u64, epoch: &str) -> Command {
    Command {
        id,
        subscribe: Some(SubscribeRequest {
            channel: channel.into(),
            recover: true,
            offset,
            epoch: epoch.into(),
            ..SubscribeRequest::default()
        }),
        ..Command::default()
    }
}

fn history(id: u32, channel: &str) -> Command {
    Command {
        id,
        history: Some(HistoryRequest {
            channel: channel.into(),
            limit: -1,
            since: None::<StreamPosition>,
            reverse: false,
        }),
        ..Command::default()
    }
}

/// The server is whole: a fresh client subscribes, publishes and receives, and `/health` is 200.
async fn assert_serving(server: &Server, channel: &str) {
    let (mut client, _) = Client::connect(server, Format::Json).await;
    assert_eq!(error_code(&client.call(subscribe(2, channel)).await), 0);
    let reply = client
        .call(publish(3, channel, "{\"still\":\"serving\"}"))
        .await;
    assert_eq!(error_code(&reply), 0, "{reply:?}");
    let (_, data) = publication(&client.next_item().await);
    assert_eq!(data, json!({"still": "serving"}));
    let health = Http::new(server, KEY)
        .request("GET", "/health", &[], b"")
        .await;
    assert_eq!(health.status, 200, "{health:?}");
}

// Finding 1: a Protobuf publish of JSON with invalid UTF-8 inside a string was stored; JSON
// subscribers got a text frame that is not UTF-8, `history` panicked its session, a recovering
// subscribe panicked the Router.
#[tokio::test]
async fn publication_data_that_is_not_utf8_is_refused_and_every_reader_goes_on() {
    let server = server(&[]);
    let (mut reader, _) = Client::connect(&server, Format::Json).await;
    let subscribed = reader.call(subscribe(2, "h:x")).await;
    let epoch = subscribed.subscribe.expect("subscribed").epoch;
    let (mut writer, _) = Client::connect(&server, Format::Protobuf).await;
    let bad: [&[u8]; 4] = [
        b"\"\xff\xfe\"",
        b"{\"a\":\"\xc3\"}",
        b"[\"\xed\xa0\x80\"]",
        b"{\"\xf8\x88\x80\x80\x80\":1}",
    ];
    for (n, data) in bad.iter().enumerate() {
        let reply = writer.call(publish_bytes(10 + n as u32, "h:x", data)).await;
        assert_eq!(error_code(&reply), 107, "{data:?} was taken: {reply:?}");
        let message = reply.error.unwrap().message;
        assert_eq!(message, "publication data must be UTF-8");
    }
    let good = writer.call(publish(20, "h:x", "{\"ok\":\"é\"}")).await;
    assert_eq!(error_code(&good), 0);
    // The JSON subscriber gets the good one as its next item, in a valid text frame.
    let (_, data) = publication(&reader.next_item().await);
    assert_eq!(data, json!({"ok": "é"}));
    // History and recovery from the start hold the good one only.
    let (mut late, _) = Client::connect(&server, Format::Json).await;
    let kept = late.call(history(2, "h:x")).await;
    let publications = kept.history.expect("a history result").publications;
    assert_eq!(publications.len(), 1, "{publications:?}");
    let recovered = late.call(recover(3, "h:x", 0, &epoch)).await;
    let result = recovered.subscribe.expect("recovered");
    assert!(result.recovered);
    assert_eq!(result.publications.len(), 1);
    assert_serving(&server, "h:y").await;
    server.assert_no_panic();
}

// Finding 7: nesting depth was unbounded; a 5,000-deep array published through the API
// disconnected the Python SDK for good, and history handed it out again.
#[tokio::test]
async fn publication_data_nested_too_deep_is_refused_on_every_path_in() {
    let server = server(&[]);
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for format in BOTH {
        let (mut client, _) = Client::connect(&server, format).await;
        let fine = client.call(publish(2, "h:deep", &deep(64))).await;
        assert_eq!(error_code(&fine), 0, "{format:?}: {fine:?}");
        let refused = client.call(publish(3, "h:deep", &deep(65))).await;
        assert_eq!(error_code(&refused), 107, "{format:?}: {refused:?}");
        assert_eq!(
            refused.error.unwrap().message,
            "publication data nests deeper than 64 levels"
        );
    }
    let http = Http::new(&server, KEY);
    for (method, body) in [
        (
            "publish",
            format!("{{\"channel\":\"h:deep\",\"data\":{}}}", deep(5000)),
        ),
        (
            "broadcast",
            format!("{{\"channels\":[\"h:deep\"],\"data\":{}}}", deep(5000)),
        ),
    ] {
        let answer = http
            .request(
                "POST",
                &format!("/api/{method}"),
                &[("X-API-Key", KEY)],
                body.as_bytes(),
            )
            .await;
        assert_eq!(answer.status, 400, "{method}: {answer:?}");
        assert_eq!(answer.body["error"]["code"], 107, "{method}: {answer:?}");
    }
    let answer = http
        .api(
            "publish",
            json!({"channel": "h:deep", "data": {"a": [[1]]}}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    // History holds the two 64-deep ones and the API's, nothing deeper.
    let (mut reader, _) = Client::connect(&server, Format::Json).await;
    let kept = reader.call(history(2, "h:deep")).await;
    assert_eq!(kept.history.expect("history").publications.len(), 3);
    server.assert_no_panic();
}

// Finding 3: user `carol#alice` was given `orders:sim#carol#alice`, which alice could read.
#[tokio::test]
async fn user_names_that_would_cross_the_user_boundary_are_refused_where_they_enter() {
    let server = Server::start_default(&[
        ("RPC_CRYPTO_API__KEY", KEY),
        ("RPC_CRYPTO_TOKEN__HMAC_SECRET", SECRET),
    ]);
    for user in ["carol#alice", "alice,carol", "tab\tuser", &"x".repeat(129)] {
        let mut client = Client::open(&server.url, Format::Json).await;
        client.send(&[connect_with_token(1, &token(user))]).await;
        let closed = client.closed().await;
        assert_eq!(closed.code, 3500, "{user:?}: {closed:?}");
        assert!(
            closed.reason.starts_with("invalid token: the user (sub) "),
            "{user:?}: {closed:?}"
        );
    }
    // alice herself still connects and reads her own channel.
    let mut alice = Client::open(&server.url, Format::Json).await;
    let reply = alice.call(connect_with_token(1, &token("alice"))).await;
    assert_eq!(error_code(&reply), 0);
    assert_eq!(
        error_code(&alice.call(subscribe(2, "orders:sim#alice")).await),
        0
    );
    // A backend cannot create a session for such a user either.
    let http = Http::new(&server, KEY);
    let answer = http
        .api(
            "session_create",
            json!({"owner": "carol#alice", "lifetime": 60}),
        )
        .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], 107, "{answer:?}");
    let fine = http
        .api("session_create", json!({"owner": "carol", "lifetime": 60}))
        .await;
    assert_eq!(fine.status, 200, "{fine:?}");
    server.assert_no_panic();
}

// Finding 5: `exchange.login` account names had no length limit and a user could open accounts
// until the global 10,000 were used.
#[tokio::test]
async fn a_user_opens_few_paper_accounts_with_short_names() {
    // The default sim.max_accounts_per_user: 10.
    let server = Server::start_default(&[("RPC_CRYPTO_TOKEN__HMAC_SECRET", SECRET)]);
    let login = |id: u32, account: &str| {
        rpc(
            id,
            "exchange.login",
            &json!({"exchange": "sim", "account": account}).to_string(),
        )
    };
    let mut sessions = Vec::new();
    for n in 0..11u32 {
        // One login per session: a session keeps to one account of an exchange.
        let mut client = Client::open(&server.url, Format::Json).await;
        let reply = client.call(connect_with_token(1, &token("mallory"))).await;
        assert_eq!(error_code(&reply), 0);
        let reply = client.call(login(2, &format!("account-{n}"))).await;
        if n < 10 {
            assert_eq!(error_code(&reply), 0, "login {n}: {reply:?}");
        } else {
            assert_eq!(error_code(&reply), 1202, "login {n}: {reply:?}");
            let message = reply.error.unwrap().message;
            assert!(message.contains("at most 10 paper accounts"), "{message}");
        }
        sessions.push(client);
    }
    // An account opened before is still there for its user.
    let mut again = Client::open(&server.url, Format::Json).await;
    again.call(connect_with_token(1, &token("mallory"))).await;
    assert_eq!(error_code(&again.call(login(2, "account-1")).await), 0);
    let long = again.call(login(3, &"n".repeat(60_000))).await;
    assert_eq!(error_code(&long), 107, "{long:?}");
    server.assert_no_panic();
}

/// One connection's share of the channel flood: subscribe and unsubscribe fresh names, paced to
/// the default command rate (1,000 a second), for `length`.
async fn flood(server: &Server, connection: u32, length: Duration) -> u64 {
    let (mut client, _) = Client::connect(server, Format::Json).await;
    let started = Instant::now();
    let mut n = 0u64;
    let mut id = 10u32;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while started.elapsed() < length {
        tick.tick().await;
        // 50 commands per 50 ms: the rate.
        let mut commands = Vec::new();
        for _ in 0..25 {
            let channel = format!("ticker:x:flood-{connection}-{n}");
            commands.push(subscribe(id, &channel));
            commands.push(unsubscribe(id + 1, &channel));
            id += 2;
            n += 1;
        }
        client.send(&commands).await;
        let last = id - 1;
        let reply = client.reply_to(last).await;
        assert_eq!(error_code(&reply), 0, "{reply:?}");
        client.take_buffered();
    }
    n
}

// Finding 2: each subscribe to a new name in a recoverable namespace made a channel and an empty
// history stream that outlived the unsubscribe by an hour: four anonymous connections made 35,280
// channels and +27 MB in 20 s.
#[tokio::test]
async fn a_flood_of_fresh_channel_names_leaves_no_channels_behind() {
    let server = Server::start_default(&[
        ("RPC_CRYPTO_API__KEY", KEY),
        ("RPC_CRYPTO_CLIENT__COMMAND_RATE", "1000"),
        ("RPC_CRYPTO_CLIENT__COMMAND_BURST", "2000"),
    ]);
    let http = Http::new(&server, KEY);
    // Warm up the allocator and the workers first, so the baseline is the server's own.
    flood(&server, 99, Duration::from_secs(1)).await;
    let baseline = server.rss_kib();
    let floods = (0..4).map(|c| flood(&server, c, Duration::from_secs(20)));
    let names: u64 = futures_util::future::join_all(floods)
        .await
        .into_iter()
        .sum();
    // 4 connections × 500 names a second (two commands each) × 20 s is 40,000 at most.
    assert!(names > 30_000, "the flood made {names} names only");
    // The sweep forgets a stream that never had a publication once it has no subscriber.
    let deadline = Instant::now() + Duration::from_secs(5);
    let channels = loop {
        let info = http.result("info", json!({})).await;
        let channels = info["channels"].as_u64().expect("info.channels");
        if channels < 10 || Instant::now() > deadline {
            break channels;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        channels < 10,
        "{channels} channels left after the flood of {names} names"
    );
    let grown = server.rss_kib().saturating_sub(baseline);
    eprintln!("channel flood: {names} names, RSS {baseline} KiB + {grown} KiB");
    // Documented bound (docs/OPERATIONS.md): 8 MiB over the warmed-up baseline.
    assert!(
        grown < 8 * 1024,
        "RSS grew by {grown} KiB over {baseline} KiB"
    );
    server.assert_no_panic();
}

// The channel table has a bound: a subscribe to a new channel when every channel has a
// subscriber gets 1104; channels without subscribers make room.
#[tokio::test]
async fn the_channel_table_is_bounded() {
    let server = server(&[("RPC_CRYPTO_LIMITS__MAX_CHANNELS", "20")]);
    let (mut holder, _) = Client::connect(&server, Format::Json).await;
    for n in 0..20 {
        let reply = holder
            .call(subscribe(10 + n, &format!("chat:held-{n}")))
            .await;
        assert_eq!(error_code(&reply), 0, "{n}: {reply:?}");
    }
    let (mut other, _) = Client::connect(&server, Format::Json).await;
    let refused = other.call(subscribe(2, "chat:one-too-many")).await;
    assert_eq!(error_code(&refused), 1104, "{refused:?}");
    assert!(refused.error.unwrap().temporary);
    // A held channel is still open to others, and leaving one makes room.
    assert_eq!(
        error_code(&other.call(subscribe(3, "chat:held-0")).await),
        0
    );
    assert_eq!(
        error_code(&holder.call(unsubscribe(40, "chat:held-5")).await),
        0
    );
    assert_eq!(
        error_code(&other.call(subscribe(4, "chat:one-too-many")).await),
        0
    );
    // Channels that only keep history make room when a subscriber needs it, oldest first.
    let http = Http::new(&server, KEY);
    for n in 6..10 {
        let reply = holder
            .call(unsubscribe(40 + n, &format!("chat:held-{n}")))
            .await;
        assert_eq!(error_code(&reply), 0);
    }
    // The sweep forgets the channels left with nothing (each second): 16 remain.
    let deadline = Instant::now() + WAIT;
    while http.result("info", json!({})).await["channels"] != 16 {
        assert!(
            Instant::now() < deadline,
            "the emptied channels were not forgotten"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in 0..4 {
        let answer = http
            .api(
                "publish",
                json!({"channel": format!("h:kept-{n}"), "data": {"n": n}}),
            )
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let kept = |n: u32| {
        let http = &http;
        async move {
            let result = http
                .result(
                    "history",
                    json!({"channel": format!("h:kept-{n}"), "limit": -1}),
                )
                .await;
            result["publications"].as_array().map_or(0, Vec::len)
        }
    };
    assert_eq!(kept(0).await, 1);
    let reply = other.call(subscribe(5, "chat:needs-room")).await;
    assert_eq!(error_code(&reply), 0, "{reply:?}");
    let info = http.result("info", json!({})).await;
    assert!(info["channels"].as_u64().unwrap() <= 20, "{info}");
    // The two oldest without subscribers went (a tenth of the table): h:kept-0 among them.
    assert_eq!(kept(0).await, 0);
    assert_eq!(kept(3).await, 1);
    server.assert_no_panic();
}

/// A resumable session: its id and key.
struct Ticket {
    id: String,
    key: String,
}

async fn resumable(server: &Server, channel: &str) -> (Client, Ticket) {
    let mut client = Client::open(&server.url, Format::Json).await;
    let reply = client
        .call(connect_with_data(1, "{\"resumable\":true}"))
        .await;
    let result = reply.connect.expect("a connect result");
    let data: Value = serde_json::from_slice(&result.data).unwrap();
    let key = data["session_key"]
        .as_str()
        .expect("a session key")
        .to_owned();
    assert_eq!(error_code(&client.call(subscribe(2, channel)).await), 0);
    (
        client,
        Ticket {
            id: result.client,
            key,
        },
    )
}

async fn resume(server: &Server, ticket: &Ticket, last_received: u64) -> (Client, Reply) {
    let mut client = Client::open(&server.url, Format::Json).await;
    let data = json!({"resume": {"session": ticket.id, "key": ticket.key, "last_received": last_received}});
    let reply = client.call(connect_with_data(1, &data.to_string())).await;
    (client, reply)
}

/// Waits until the Registry holds `parked` parked sessions.
async fn until_parked(http: &Http, parked: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let info = http.result("info", json!({})).await;
        if info["parked"].as_u64() == Some(parked) {
            return;
        }
        assert!(Instant::now() < deadline, "not parked in time: {info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `n` of the next `count` publications, in order.
async fn numbers(client: &mut Client, count: usize) -> Vec<u64> {
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        let item = client.next_item().await;
        let (_, data) = publication(&item);
        seen.push(data["n"].as_u64().expect("a numbered publication"));
    }
    seen
}

// Finding 6: a parked session may queue 4,096 items but the journal kept 1,024, so once the
// replay was written to connection B, a cut of B before the client read it left the journal
// short, and resuming on C got 1102.
#[tokio::test]
async fn a_resume_whose_connection_drops_again_is_resumed_again_whole() {
    let server = server(&[]);
    let http = Http::new(&server, KEY);
    let (first, ticket) = resumable(&server, "chat:r").await;
    let last_received = first.received;
    // Lost without a close frame: parked.
    drop(first);
    until_parked(&http, 1).await;
    const MISSED: u64 = 2000;
    for n in 1..=MISSED {
        let answer = http
            .api("publish", json!({"channel": "chat:r", "data": {"n": n}}))
            .await;
        assert_eq!(answer.status, 200);
    }
    let expected: Vec<u64> = (1..=MISSED).collect();
    // Twice: the replay reaches the socket of B (and C), which drops before the client made
    // anything of it; the client still knows only `last_received`.
    for attempt in ["B", "C"] {
        let (mut lost, reply) = resume(&server, &ticket, last_received).await;
        assert_eq!(error_code(&reply), 0, "resume on {attempt}: {reply:?}");
        assert_eq!(numbers(&mut lost, MISSED as usize).await, expected);
        drop(lost);
        until_parked(&http, 1).await;
    }
    let (mut kept, reply) = resume(&server, &ticket, last_received).await;
    assert_eq!(error_code(&reply), 0, "the last resume: {reply:?}");
    assert_eq!(numbers(&mut kept, MISSED as usize).await, expected);
    // Then live traffic, once.
    let answer = http
        .api(
            "publish",
            json!({"channel": "chat:r", "data": {"n": MISSED + 1}}),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(numbers(&mut kept, 1).await, vec![MISSED + 1]);
    assert!(kept
        .try_next_item(Duration::from_millis(300))
        .await
        .is_none());
    server.assert_no_panic();
}

fn debug_panic(id: u32, actor: &str) -> Command {
    rpc(id, "debug.panic", &json!({ "actor": actor }).to_string())
}

/// Waits for the process to exit, at most `within`; its status.
fn exited_within(server: &mut Server, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = server.try_exit() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Supervision: a panic in the Router or the Registry ends the process non-zero within 2 s (the
// container restarts it), instead of leaving a broker that answers 3004 to everything and 200 on
// /health.
#[tokio::test]
async fn a_panic_in_a_core_actor_ends_the_process_with_status_70() {
    for actor in ["router", "registry"] {
        let mut server = server(&[("TEST_RPC_CRYPTO_FAULT_INJECTION", "1")]);
        let (mut client, _) = Client::connect(&server, Format::Json).await;
        assert_eq!(error_code(&client.call(subscribe(2, "chat:a")).await), 0);
        let reply = client.call(debug_panic(3, actor)).await;
        assert_eq!(error_code(&reply), 0, "{reply:?}");
        let status = exited_within(&mut server, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("still running 2 s after a panic in the {actor}"));
        assert_eq!(status.code(), Some(70), "{actor}: {status:?}");
        let log = server.log();
        assert!(log.contains("stopped answering"), "{log}");
    }
}

// With health.exit_on_failure off, /health tells the truth instead: never 200 while the Router
// does not answer.
#[tokio::test]
async fn health_is_never_ok_while_the_router_does_not_answer() {
    let server = server(&[
        ("TEST_RPC_CRYPTO_FAULT_INJECTION", "1"),
        ("RPC_CRYPTO_HEALTH__EXIT_ON_FAILURE", "false"),
    ]);
    let http = Http::new(&server, KEY);
    let ok = http.request("GET", "/health", &[], b"").await;
    assert_eq!((ok.status, ok.body.clone()), (200, json!({"status": "ok"})));
    let ready = http.request("GET", "/ready", &[], b"").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.body["upstream"]["sim"], "up", "{ready:?}");
    let (mut client, _) = Client::connect(&server, Format::Json).await;
    let reply = client.call(debug_panic(2, "router")).await;
    assert_eq!(error_code(&reply), 0, "{reply:?}");
    for _ in 0..10 {
        let health = http.request("GET", "/health", &[], b"").await;
        assert_eq!(health.status, 503, "{health:?}");
        assert_eq!(health.body["failing"], json!(["router"]), "{health:?}");
        let ready = http.request("GET", "/ready", &[], b"").await;
        assert_eq!(ready.status, 503, "{ready:?}");
    }
}

// A panic in one Session ends that session only: the others keep their subscriptions and get
// publications, its slot is given back, and its client can connect again at once.
#[tokio::test]
async fn a_panic_in_a_session_ends_only_that_session() {
    let server = server(&[("TEST_RPC_CRYPTO_FAULT_INJECTION", "1")]);
    let http = Http::new(&server, KEY);
    let (mut bystander, _) = Client::connect(&server, Format::Json).await;
    assert_eq!(error_code(&bystander.call(subscribe(2, "chat:a")).await), 0);
    let (mut victim, _) = Client::connect(&server, Format::Json).await;
    assert_eq!(error_code(&victim.call(subscribe(2, "chat:a")).await), 0);
    victim.send(&[debug_panic(3, "session")]).await;
    let closed = victim.closed().await;
    assert_eq!(closed.code, 1006, "{closed:?}");
    let started = Instant::now();
    let answer = http
        .api(
            "publish",
            json!({"channel": "chat:a", "data": {"after": "panic"}}),
        )
        .await;
    assert_eq!(answer.status, 200);
    let (_, data) = publication(&bystander.next_item().await);
    assert_eq!(data, json!({"after": "panic"}));
    assert!(started.elapsed() < Duration::from_secs(2));
    // The Registry and the Router forgot the victim: one session, one subscriber.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let info = http.result("info", json!({})).await;
        let presence = http
            .result("presence_stats", json!({"channel": "chat:a"}))
            .await;
        if info["sessions"] == 1 && presence["num_clients"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "leftovers: {info} {presence}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_serving(&server, "chat:b").await;
}
