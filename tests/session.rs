//! The RPC-Crypto session layer on the Centrifuge wire: SessionCreate and its rejects, version
//! negotiation, SessionStatus, SessionClose, heartbeats, limits and shutdown. Each test runs in
//! both wire formats.

mod common;

use std::time::Duration;

use common::*;
use rpc_crypto_proto::Format;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn session_create_answers_with_a_random_session_id() {
    let server = Server::start(&[]);
    for format in BOTH {
        let (_a, reply_a) = Client::connect(&server, format).await;
        let (_b, reply_b) = Client::connect(&server, format).await;
        let a = reply_a.connect.unwrap();
        let b = reply_b.connect.unwrap();
        assert_eq!(a.client.len(), 32, "128 bits as hex");
        assert!(a.client.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.client, b.client);
        assert_eq!(&a.data[..], b"{\"protocol_version\":1}");
        assert_eq!((a.ping, a.pong), (25, true));
        assert_eq!(a.version, env!("CARGO_PKG_VERSION"));
    }
}

#[tokio::test]
async fn json_connect_reply_is_exact() {
    let server = Server::start(&[("RPC_CRYPTO_CLIENT__PING_INTERVAL", "0s")]);
    let mut client = Client::open(&server.url, Format::Json).await;
    client
        .send_message(Message::text("{\"connect\":{\"name\":\"js\"},\"id\":1}"))
        .await;
    let frame = client.next_frame().await;
    let text = std::str::from_utf8(&frame).unwrap();
    let id_at = text.find("\"client\":\"").expect("a client id") + 10;
    let id = &text[id_at..id_at + 32];
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        text,
        format!(
            "{{\"id\":1,\"connect\":{{\"client\":\"{id}\",\"version\":\"{version}\",\"data\":{{\"protocol_version\":1}}}}}}"
        )
    );
}

#[tokio::test]
async fn version_negotiation_accepts_a_common_version() {
    let server = Server::start(&[]);
    for format in BOTH {
        let mut client = Client::open(&server.url, format).await;
        let reply = client
            .call(connect_with_data(1, "{\"protocol_versions\":[7,1]}"))
            .await;
        assert_eq!(
            &reply.connect.unwrap().data[..],
            b"{\"protocol_version\":1}"
        );
    }
}

#[tokio::test]
async fn version_negotiation_rejects_unsupported_versions_with_4501() {
    let server = Server::start(&[]);
    for format in BOTH {
        let mut client = Client::open(&server.url, format).await;
        client
            .send(&[connect_with_data(1, "{\"protocol_versions\":[7,8]}")])
            .await;
        let closed = client.closed().await;
        assert_eq!(closed.code, 4501);
        assert_eq!(closed.reason, "unsupported version");
    }
}

#[tokio::test]
async fn a_malformed_version_list_is_a_bad_request() {
    let server = Server::start(&[]);
    let mut client = Client::open(&server.url, Format::Json).await;
    client
        .send(&[connect_with_data(1, "{\"protocol_versions\":\"1\"}")])
        .await;
    assert_eq!(client.closed().await.code, 3501);
}

#[tokio::test]
async fn an_unknown_wire_format_is_rejected_with_4504() {
    let server = Server::start(&[]);
    let url = format!("{}?cf_protocol=xml", server.url);
    let mut client = Client::open(&url, Format::Json).await;
    let closed = client.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4504, "protocol not supported")
    );
    // `?cf_protocol=protobuf` picks Protobuf without a subprotocol.
    let url = format!("{}?cf_protocol=protobuf", server.url);
    let mut client = Client::open(&url, Format::Json).await;
    client.format = Format::Protobuf;
    let reply = client.call(connect(1)).await;
    assert!(reply.connect.is_some());
}

#[tokio::test]
async fn the_session_limit_rejects_with_4102_and_frees_on_close() {
    for format in BOTH {
        // A server per format: the sessions of one round are released asynchronously.
        let server = Server::start(&[("RPC_CRYPTO_LIMITS__MAX_SESSIONS", "2")]);
        let (a, _) = Client::connect(&server, format).await;
        let (_b, _) = Client::connect(&server, format).await;
        let mut third = Client::open(&server.url, format).await;
        let closed = third.closed().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (4102, "no server sessions available")
        );
        drop(a);
        // The slot is freed once the server has seen the close.
        let retry = Client::connect_when_free(&server, format, Duration::from_secs(10)).await;
        assert!(retry.is_some(), "a session slot came free after a close");
    }
}

#[tokio::test]
async fn the_per_address_limit_rejects_with_4102() {
    let server = Server::start(&[("RPC_CRYPTO_LIMITS__MAX_SESSIONS_PER_ADDRESS", "1")]);
    let (_a, _) = Client::connect(&server, Format::Json).await;
    let mut second = Client::open(&server.url, Format::Json).await;
    assert_eq!(second.closed().await.code, 4102);
}

#[tokio::test]
async fn session_status_counts_messages_both_ways() {
    let server = Server::start(&[]);
    for format in BOTH {
        let (mut client, reply) = Client::connect(&server, format).await;
        let session_id = reply.connect.unwrap().client;
        assert!(error_code(&client.call(subscribe(2, "chat:status")).await) == 0);
        client.send(&[publish(3, "chat:status", "{\"n\":1}")]).await;
        // Both the publish reply and the publication itself arrive before the status call.
        let first = client.next_item().await;
        let second = client.next_item().await;
        assert!(first.push.is_some() || second.push.is_some());
        client.send(&[rpc(4, "heartbeat", "")]).await;
        client.next_item().await;
        let sent_before_status = client.received;
        let status = rpc_data(&client.call(rpc(5, "session.status", "{}")).await);
        assert_eq!(status["session_id"], session_id.as_str());
        assert_eq!(status["last_sent_id"], sent_before_status);
        assert_eq!(status["last_received_id"], client.sent);
        assert_eq!(status["protocol_version"], 1);
    }
}

#[tokio::test]
async fn session_close_flushes_and_closes_with_4500() {
    let server = Server::start(&[]);
    for format in BOTH {
        let (mut client, _) = Client::connect(&server, format).await;
        // The heartbeat reply queued before the close still arrives; no reply to the close.
        client
            .send(&[rpc(2, "heartbeat", ""), rpc(3, "session.close", "")])
            .await;
        let reply = client.next_item().await;
        assert_eq!(reply.id, 2);
        assert!(rpc_data(&reply)["time"].as_u64().unwrap() > 1_600_000_000_000);
        let closed = client.closed().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (4500, "session closed")
        );
    }
}

#[tokio::test]
async fn server_pings_and_a_missing_pong_is_3012() {
    let server = Server::start(&[
        ("RPC_CRYPTO_CLIENT__PING_INTERVAL", "1s"),
        ("RPC_CRYPTO_CLIENT__PONG_TIMEOUT", "400ms"),
    ]);
    for format in BOTH {
        let (mut answering, reply) = Client::connect(&server, format).await;
        let result = reply.connect.unwrap();
        assert_eq!((result.ping, result.pong), (1, true));
        // This client answers two pings with the empty command and stays connected.
        for _ in 0..2 {
            let ping = answering.next_item().await;
            assert_eq!(ping, Default::default(), "a ping is an empty reply");
            answering.send(&[Default::default()]).await;
        }
        let status = rpc_data(&answering.call(rpc(9, "session.status", "")).await);
        // Heartbeats are not session messages: neither the pings nor the pongs count.
        assert_eq!(status["last_received_id"], 2, "connect and status");
        assert_eq!(status["last_sent_id"], 1, "the connect result");

        let (mut silent, _) = Client::connect(&server, format).await;
        assert_eq!(silent.next_item().await, Default::default());
        let closed = silent.closed().await;
        assert_eq!((closed.code, closed.reason.as_str()), (3012, "no pong"));
    }
}

#[tokio::test]
async fn a_pong_without_a_ping_is_3501() {
    let server = Server::start(&[]);
    for format in BOTH {
        let (mut client, _) = Client::connect(&server, format).await;
        client.send(&[Default::default()]).await;
        assert_eq!(client.closed().await.code, 3501);
    }
}

#[tokio::test]
async fn a_connection_that_never_connects_is_closed_stale() {
    let server = Server::start(&[("RPC_CRYPTO_CLIENT__STALE_CLOSE_DELAY", "300ms")]);
    let mut client = Client::open(&server.url, Format::Json).await;
    assert_eq!(client.closed().await.code, 3502);
}

#[tokio::test]
async fn rpc_heartbeat_is_answered_at_once() {
    let server = Server::start(&[]);
    for format in BOTH {
        let (mut client, _) = Client::connect(&server, format).await;
        let started = std::time::Instant::now();
        let reply = client.call(rpc(2, "heartbeat", "")).await;
        assert!(rpc_data(&reply)["time"].is_u64());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

#[tokio::test]
async fn shutdown_flushes_notifies_and_closes_with_3001() {
    let mut server = Server::start(&[]);
    let (mut subscriber, _) = Client::connect(&server, Format::Json).await;
    subscriber.call(subscribe(2, "notifications")).await;
    let (mut other, _) = Client::connect(&server, Format::Protobuf).await;
    server.terminate();
    let notice = subscriber.next_item().await;
    let (channel, data) = publication(&notice);
    assert_eq!(channel, "notifications");
    assert_eq!(data["type"], "shutdown");
    assert_eq!(subscriber.closed().await.code, 3001);
    assert_eq!(other.closed().await.code, 3001);
    assert!(server.wait_exit().success());
}

#[tokio::test]
async fn the_echoed_subprotocol_names_the_format_spoken() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = Server::start(&[]);
    for (offer, query, echoed) in [
        (
            "centrifuge-json, centrifuge-protobuf",
            "",
            Some("centrifuge-json"),
        ),
        (
            "centrifuge-protobuf, centrifuge-json",
            "",
            Some("centrifuge-protobuf"),
        ),
        (
            "centrifuge-protobuf",
            "?cf_protocol=json",
            Some("centrifuge-protobuf"),
        ),
        ("mqtt, centrifuge-json", "", Some("centrifuge-json")),
    ] {
        let mut request = format!("{}{query}", server.url)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", offer.parse().unwrap());
        let (_, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        let got = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got.as_deref(), echoed, "offer {offer:?}{query}");
    }
}

#[tokio::test]
async fn connections_during_shutdown_get_4102() {
    let mut server = Server::start(&[("RPC_CRYPTO_SHUTDOWN_TIMEOUT", "5s")]);
    // A subscriber that stops reading keeps the shutdown waiting for its queue to flush.
    let (mut stalled, _) = Client::connect(&server, Format::Json).await;
    assert_eq!(
        error_code(&stalled.call(subscribe(2, "open:flood")).await),
        0
    );
    // (It reads nothing more from here on.)
    let (mut writer, _) = Client::connect(&server, Format::Json).await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(16 * 1024));
    for n in 0..400 {
        writer.send(&[publish(10 + n, "open:flood", &big)]).await;
    }
    writer.reply_to(409).await;
    server.terminate();
    // The shutdown notice went out and the stalled session is still being flushed: a new
    // connection in the meantime is told the server takes no sessions.
    let started = std::time::Instant::now();
    let late = loop {
        let mut client = Client::open(&server.url, Format::Json).await;
        client.send(&[connect(1)]).await;
        match client.next_item_or_close().await {
            Ok(_) if started.elapsed() < Duration::from_secs(5) => continue,
            Ok(item) => panic!("still connecting after 5 s: {item:?}"),
            Err(closed) => break closed,
        }
    };
    assert_eq!(late.code, 4102, "{late:?}");
    drop(stalled);
    assert!(server.wait_exit().success());
}
