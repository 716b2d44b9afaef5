//! Session resume (seed 000: a client "initiates or re-establishes" a session), against the real
//! server: a resumed session gets back its subscriptions and every message it missed, in order,
//! exactly once, with its counters going on; and each resume that cannot be honoured fails with
//! its documented SessionError.

mod common;

use std::time::Duration;

use common::{
    connect, connect_with_data, error_code, publication, publish, rpc, rpc_data, subscribe, Client,
    Server, BOTH,
};
use rpc_crypto_proto::codec::Format;
use rpc_crypto_proto::protocol::Reply;
use serde_json::{json, Value};

/// A resumable session: its id and key.
struct Ticket {
    id: String,
    key: String,
}

/// Opens a resumable session and subscribes it to `channel`.
async fn resumable(server: &Server, format: Format, channel: &str) -> (Client, Ticket) {
    let mut client = Client::open(&server.url, format).await;
    let reply = client
        .call(connect_with_data(1, "{\"resumable\":true}"))
        .await;
    let result = reply.connect.expect("a connect result");
    let data: Value = serde_json::from_slice(&result.data).unwrap();
    assert_eq!(data["resumed"], json!(false));
    assert!(data["resume_grace"].as_u64().unwrap() > 0);
    assert_eq!(data["protocol_version"], json!(1));
    let key = data["session_key"]
        .as_str()
        .expect("a session key")
        .to_owned();
    assert_eq!(key.len(), 32);
    assert_eq!(error_code(&client.call(subscribe(2, channel)).await), 0);
    let ticket = Ticket {
        id: result.client,
        key,
    };
    (client, ticket)
}

fn resume_data(ticket: &Ticket, last_received: u64) -> String {
    json!({"resume": {"session": ticket.id, "key": ticket.key, "last_received": last_received}})
        .to_string()
}

/// Sends a resuming connect; returns the connect reply (or error reply).
async fn resume(client: &mut Client, ticket: &Ticket, last_received: u64) -> Reply {
    client
        .call(connect_with_data(1, &resume_data(ticket, last_received)))
        .await
}

/// A publisher subscribed to `channel` (chat channels let subscribers publish).
async fn publisher(server: &Server, format: Format, channel: &str) -> Client {
    let (mut client, _) = Client::connect(server, format).await;
    assert_eq!(error_code(&client.call(subscribe(2, channel)).await), 0);
    client
}

async fn publish_range(writer: &mut Client, channel: &str, range: std::ops::Range<u32>) {
    for n in range {
        let reply = writer
            .call(publish(100 + n, channel, &format!("{{\"n\":{n}}}")))
            .await;
        assert_eq!(error_code(&reply), 0);
    }
}

/// The `n` of publications among `items`.
fn numbers(items: &[Reply]) -> Vec<u64> {
    items
        .iter()
        .filter(|i| i.push.as_ref().is_some_and(|p| p.r#pub.is_some()))
        .map(|i| publication(i).1["n"].as_u64().unwrap())
        .collect()
}

/// Reads items until a publication with `n == last` has come.
async fn read_until(client: &mut Client, last: u64) -> Vec<Reply> {
    let mut items = Vec::new();
    while !numbers(&items).contains(&last) {
        items.push(client.next_item().await);
    }
    items
}

#[tokio::test]
async fn a_resumed_session_gets_every_missed_message_once_in_order_and_its_counters_go_on() {
    let server = Server::start(&[]);
    for format in BOTH {
        let channel = format!("chat:resume-{}", format.name());
        let (mut first, ticket) = resumable(&server, format, &channel).await;
        let mut writer = publisher(&server, format, &channel).await;
        publish_range(&mut writer, &channel, 0..5).await;

        // The client reads three, then loses its connection (no close frame).
        let mut seen = read_until(&mut first, 2).await;
        seen.extend(first.take_buffered());
        let last_received = first.received;
        drop(first);
        tokio::time::sleep(Duration::from_millis(200)).await;
        publish_range(&mut writer, &channel, 5..10).await;

        let mut second = Client::open(&server.url, format).await;
        let reply = resume(&mut second, &ticket, last_received).await;
        let result = reply.connect.clone().unwrap_or_else(|| panic!("{reply:?}"));
        assert_eq!(result.client, ticket.id, "the same session");
        let data: Value = serde_json::from_slice(&result.data).unwrap();
        assert_eq!(data["resumed"], json!(true));
        assert_eq!(data["session_key"], json!(ticket.key));

        // Everything it missed, then live traffic on the subscription it had.
        seen.extend(read_until(&mut second, 9).await);
        assert_eq!(
            numbers(&seen),
            (0..10).collect::<Vec<_>>(),
            "once each, in order"
        );
        publish_range(&mut writer, &channel, 10..11).await;
        assert_eq!(numbers(&[second.next_item().await]), vec![10]);

        // Counters go on: connect and subscribe before, this status now (the resuming connect
        // is not one of the session's messages).
        let status = rpc_data(&second.call(rpc(3, "session.status", "")).await);
        assert_eq!(status["session_id"], json!(ticket.id));
        assert_eq!(status["last_received_id"], json!(3));
        assert!(status["last_sent_id"].as_u64().unwrap() >= 2 + 11);
    }
    server.assert_no_panic();
}

#[tokio::test]
async fn a_session_the_server_dropped_for_a_missing_pong_resumes() {
    let server = Server::start(&[
        ("RPC_CRYPTO_CLIENT__PING_INTERVAL", "1s"),
        ("RPC_CRYPTO_CLIENT__PONG_TIMEOUT", "1s"),
    ]);
    let format = Format::Json;
    let channel = "chat:no-pong";
    let (mut first, ticket) = resumable(&server, format, channel).await;
    // Pings go unanswered: the server closes with 3012, which asks the client to come back.
    assert_eq!(first.closed().await.code, 3012);
    let last_received = first.received;
    let mut writer = publisher(&server, format, channel).await;
    publish_range(&mut writer, channel, 0..3).await;
    let mut second = Client::open(&server.url, format).await;
    let reply = resume(&mut second, &ticket, last_received).await;
    assert!(reply.connect.is_some(), "{reply:?}");
    assert_eq!(numbers(&read_until(&mut second, 2).await), vec![0, 1, 2]);
    server.assert_no_panic();
}

#[tokio::test]
async fn resumes_that_cannot_be_honoured_fail_with_a_session_error() {
    let server = Server::start(&[]);
    let format = Format::Json;
    let channel = "chat:fail";

    // An unknown session, or a wrong key: 1101, and the connection may still create a session.
    let (first, ticket) = resumable(&server, format, channel).await;
    drop(first);
    let mut client = Client::open(&server.url, format).await;
    let unknown = Ticket {
        id: "0".repeat(32),
        key: ticket.key.clone(),
    };
    assert_eq!(error_code(&resume(&mut client, &unknown, 0).await), 1101);
    let wrong_key = Ticket {
        id: ticket.id.clone(),
        key: "f".repeat(32),
    };
    assert_eq!(error_code(&resume(&mut client, &wrong_key, 0).await), 1101);

    // A position past what the session sent: 107, and the session still waits.
    assert_eq!(error_code(&resume(&mut client, &ticket, 1000).await), 107);
    let reply = resume(&mut client, &ticket, 2).await;
    assert!(reply.connect.is_some(), "{reply:?}");

    // A session closed with session.close, or by the client's close frame, is over.
    client.send(&[rpc(2, "session.close", "")]).await;
    assert_eq!(client.closed().await.code, 4500);
    let mut again = Client::open(&server.url, format).await;
    assert_eq!(error_code(&resume(&mut again, &ticket, 2).await), 1101);
    let (mut closing, ticket) = resumable(&server, format, channel).await;
    closing
        .send_message(tokio_tungstenite::tungstenite::Message::Close(None))
        .await;
    closing.closed().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(error_code(&resume(&mut again, &ticket, 2).await), 1101);

    // After a failed resume the connection creates a session as usual.
    let reply = again.call(connect(3)).await;
    assert!(reply.connect.is_some(), "{reply:?}");
    server.assert_no_panic();
}

#[tokio::test]
async fn a_resume_past_the_replay_journal_or_the_grace_period_fails() {
    let server = Server::start(&[
        ("RPC_CRYPTO_SESSION__JOURNAL_MAX_MESSAGES", "2"),
        ("RPC_CRYPTO_SESSION__RESUME_GRACE", "1s"),
    ]);
    let format = Format::Protobuf;
    let channel = "chat:journal";
    let (mut first, ticket) = resumable(&server, format, channel).await;
    let mut writer = publisher(&server, format, channel).await;
    publish_range(&mut writer, channel, 0..5).await;
    read_until(&mut first, 4).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Only the last two messages are kept: from message 2 on is gone. The session ends.
    let mut client = Client::open(&server.url, format).await;
    assert_eq!(error_code(&resume(&mut client, &ticket, 2).await), 1102);
    assert_eq!(error_code(&resume(&mut client, &ticket, 7).await), 1101);

    // Past the grace period: gone.
    let (first, ticket) = resumable(&server, format, channel).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(error_code(&resume(&mut client, &ticket, 2).await), 1101);
    server.assert_no_panic();
}

#[tokio::test]
async fn a_second_resume_takes_the_session_over_and_the_first_connection_is_closed_4505() {
    let server = Server::start(&[]);
    let format = Format::Json;
    let channel = "chat:twice";
    let (first, ticket) = resumable(&server, format, channel).await;
    drop(first);
    let mut writer = publisher(&server, format, channel).await;

    // One after the other: the later one wins.
    let mut a = Client::open(&server.url, format).await;
    assert!(resume(&mut a, &ticket, 2).await.connect.is_some());
    let mut b = Client::open(&server.url, format).await;
    assert!(resume(&mut b, &ticket, 2).await.connect.is_some());
    assert_eq!(a.closed().await.code, 4505);
    publish_range(&mut writer, channel, 0..1).await;
    assert_eq!(numbers(&read_until(&mut b, 0).await), vec![0]);
    let status = rpc_data(&b.call(rpc(2, "session.status", "")).await);
    let sent = status["last_sent_id"].as_u64().unwrap();

    // At once: exactly one of the two holds the session; the other was closed with 4505 or
    // told 1103 (busy) while the session was being handed over.
    drop(b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = Client::open(&server.url, format).await;
    let mut d = Client::open(&server.url, format).await;
    let command = connect_with_data(1, &resume_data(&ticket, sent + 1));
    c.send(std::slice::from_ref(&command)).await;
    d.send(&[command]).await;
    publish_range(&mut writer, channel, 1..2).await;
    let mut holders = 0;
    for client in [&mut c, &mut d] {
        let mut outcome = Vec::new();
        let mut closed = None;
        let wait = Duration::from_millis(500);
        while let Ok(next) = tokio::time::timeout(wait, client.next_item_or_close()).await {
            match next {
                Ok(item) => outcome.push(item),
                Err(close) => {
                    closed = Some(close.code);
                    break;
                }
            }
        }
        // The one still open holds it; one that got the publication and was then closed with
        // 4505 held it first and was taken over.
        if numbers(&outcome) == vec![1] && closed.is_none() {
            holders += 1;
            continue;
        }
        let busy = outcome.iter().any(|r| error_code(r) == 1103);
        assert!(busy || closed == Some(4505), "{outcome:?} {closed:?}");
    }
    assert_eq!(holders, 1, "exactly one connection holds the session");
    server.assert_no_panic();
}
