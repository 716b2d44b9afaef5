//! Bad input, each with the exact code the client gets. None may panic the server or leave a
//! half-registered session or subscription behind.

mod common;

use common::*;
use rpc_crypto_proto::protocol::{Command, PresenceRequest};
use rpc_crypto_proto::Format;
use tokio_tungstenite::tungstenite::Message;

/// Sends `message` on a connected client and expects a disconnect with `code`.
async fn expect_disconnect(server: &Server, format: Format, message: Message, code: u16) {
    let (mut client, _) = Client::connect(server, format).await;
    client.send_message(message).await;
    let closed = client.closed().await;
    assert_eq!(closed.code, code, "{format:?}: {closed:?}");
}

#[tokio::test]
async fn malformed_json_is_3501() {
    let server = Server::start(&[]);
    for bad in ["{\"id\":", "[1,2]", "{\"id\":\"one\",\"rpc\":{}}", "nul"] {
        expect_disconnect(&server, Format::Json, Message::text(bad), 3501).await;
    }
    server.assert_no_panic();
}

#[tokio::test]
async fn malformed_protobuf_is_3501() {
    let server = Server::start(&[]);
    // A length prefix longer than the frame, and a message with an invalid wire type.
    for bad in [vec![10, 8, 1], vec![3, 0x0f, 0x01, 0x02]] {
        expect_disconnect(&server, Format::Protobuf, Message::binary(bad), 3501).await;
    }
    server.assert_no_panic();
}

#[tokio::test]
async fn a_frame_over_the_maximum_is_3501() {
    let server = Server::start(&[("RPC_CRYPTO_CLIENT__MAX_FRAME_SIZE", "4096")]);
    let big = format!(
        "{{\"id\":2,\"publish\":{{\"channel\":\"open:x\",\"data\":\"{}\"}}}}",
        "a".repeat(5000)
    );
    expect_disconnect(&server, Format::Json, Message::text(big.clone()), 3501).await;
    let big_binary = publish(2, "open:x", &format!("\"{}\"", "a".repeat(5000)));
    let bytes = prost::Message::encode_length_delimited_to_vec(&big_binary);
    expect_disconnect(&server, Format::Protobuf, Message::binary(bytes), 3501).await;
    // Just under the limit is fine.
    let (mut client, _) = Client::connect(&server, Format::Json).await;
    let fits = publish(2, "open:x", &format!("\"{}\"", "a".repeat(3900)));
    assert_eq!(error_code(&client.call(fits).await), 0);
    server.assert_no_panic();
}

#[tokio::test]
async fn a_command_before_connect_is_3501() {
    let server = Server::start(&[]);
    for format in BOTH {
        let mut client = Client::open(&server.url, format).await;
        client.send(&[subscribe(1, "open:x")]).await;
        assert_eq!(client.closed().await.code, 3501);
    }
}

#[tokio::test]
async fn connecting_twice_is_3501() {
    let server = Server::start(&[]);
    for format in BOTH {
        let (mut client, _) = Client::connect(&server, format).await;
        client.send(&[connect(2)]).await;
        assert_eq!(client.closed().await.code, 3501);
    }
}

#[tokio::test]
async fn id_zero_on_a_command_that_needs_one_is_3501() {
    let server = Server::start(&[]);
    for format in BOTH {
        let mut fresh = Client::open(&server.url, format).await;
        fresh.send(&[connect(0)]).await;
        assert_eq!(fresh.closed().await.code, 3501);
        let (mut client, _) = Client::connect(&server, format).await;
        client.send(&[rpc(0, "heartbeat", "")]).await;
        assert_eq!(client.closed().await.code, 3501);
    }
}

#[tokio::test]
async fn a_command_with_no_known_field_is_error_104() {
    let server = Server::start(&[]);
    let (mut client, _) = Client::connect(&server, Format::Json).await;
    client
        .send_message(Message::text("{\"id\":5,\"frobnicate\":{\"x\":1}}"))
        .await;
    let reply = client.reply_to(5).await;
    assert_eq!(error_code(&reply), 104);
    let (mut client, _) = Client::connect(&server, Format::Protobuf).await;
    // Field 99 (unknown), length-delimited, empty; plus id 6.
    client
        .send_message(Message::binary(vec![5, 0x08, 6, 0x9a, 0x06, 0]))
        .await;
    assert_eq!(error_code(&client.reply_to(6).await), 104);
    // The connections stay usable.
    assert_eq!(error_code(&client.call(rpc(7, "heartbeat", "")).await), 0);
}

#[tokio::test]
async fn binary_on_json_and_text_on_protobuf_are_3506() {
    let server = Server::start(&[]);
    expect_disconnect(&server, Format::Json, Message::binary(vec![0]), 3506).await;
    expect_disconnect(&server, Format::Protobuf, Message::text("{}"), 3506).await;
    server.assert_no_panic();
}

#[tokio::test]
async fn invalid_channel_names_are_107_and_unknown_namespaces_102() {
    let server = Server::start(&[]);
    for format in BOTH {
        let (mut client, _) = Client::connect(&server, format).await;
        let long = format!("open:{}", "x".repeat(300));
        for (n, bad) in ["", "open:a b", "open:tab\t", long.as_str()]
            .iter()
            .enumerate()
        {
            let reply = client.call(subscribe(10 + n as u32, bad)).await;
            assert_eq!(error_code(&reply), 107, "subscribe {bad:?}");
            let reply = client.call(publish(20 + n as u32, bad, "1")).await;
            assert_eq!(error_code(&reply), 107, "publish {bad:?}");
        }
        assert_eq!(
            error_code(&client.call(subscribe(30, "nowhere:x")).await),
            102
        );
        assert_eq!(
            error_code(&client.call(publish(31, "nowhere:x", "1")).await),
            102
        );
        // Nothing was registered by the refused subscriptions.
        let list = client.call(rpc(32, "channels.list", "")).await;
        assert_eq!(rpc_data(&list)["items"], 0);
    }
}

#[tokio::test]
async fn subscribing_twice_is_105_and_delivers_once() {
    let server = Server::start(&[]);
    for format in BOTH {
        let (mut client, _) = Client::connect(&server, format).await;
        assert_eq!(
            error_code(&client.call(subscribe(2, "open:twice")).await),
            0
        );
        assert_eq!(
            error_code(&client.call(subscribe(3, "open:twice")).await),
            105
        );
        client.call(publish(4, "open:twice", "1")).await;
        client.call(publish(5, "open:twice", "2")).await;
        // One publication each, not two.
        let mut got = Vec::new();
        while let Some(item) = client
            .try_next_item(std::time::Duration::from_millis(200))
            .await
        {
            got.push(publication(&item).1);
        }
        assert_eq!(got, [serde_json::json!(1), serde_json::json!(2)]);
    }
}

#[tokio::test]
async fn publishing_where_the_namespace_forbids_it_is_103() {
    let server = Server::start(&[]);
    for format in BOTH {
        let (mut client, _) = Client::connect(&server, format).await;
        // Read-only namespace.
        assert_eq!(
            error_code(&client.call(publish(2, "ticker:sim:BTC/USDT", "1")).await),
            103
        );
        // Subscribers only, and this client is not subscribed.
        assert_eq!(
            error_code(&client.call(publish(3, "chat:room", "1")).await),
            103
        );
        // The server's own channel.
        assert_eq!(
            error_code(&client.call(publish(4, "notifications", "1")).await),
            103
        );
        // Private channels need a subscription token, which this server does not issue yet.
        assert_eq!(
            error_code(&client.call(subscribe(5, "$chat:secret")).await),
            103
        );
    }
}

#[tokio::test]
async fn an_unknown_rpc_method_is_104() {
    let server = Server::start(&[]);
    for format in BOTH {
        let (mut client, _) = Client::connect(&server, format).await;
        let reply = client.call(rpc(2, "no.such.method", "{}")).await;
        assert_eq!(error_code(&reply), 104);
    }
}

#[tokio::test]
async fn other_refusals_have_their_codes() {
    let server = Server::start(&[("RPC_CRYPTO_CLIENT__CHANNEL_LIMIT", "2")]);
    let (mut client, _) = Client::connect(&server, Format::Protobuf).await;
    // Publication data must be JSON, so JSON subscribers can always read it.
    let reply = client.call(publish(2, "open:x", "\u{1}binary")).await;
    assert_eq!(error_code(&reply), 107);
    // Empty data.
    assert_eq!(
        error_code(&client.call(publish(3, "open:x", "")).await),
        107
    );
    // The channel limit.
    client.call(subscribe(4, "open:a")).await;
    client.call(subscribe(5, "open:b")).await;
    assert_eq!(error_code(&client.call(subscribe(6, "open:c")).await), 106);
    // Commands this server does not serve yet.
    let presence = Command {
        id: 7,
        presence: Some(PresenceRequest {
            channel: "open:a".into(),
        }),
        ..Command::default()
    };
    assert_eq!(error_code(&client.call(presence).await), 108);
}

#[tokio::test]
async fn invalid_utf8_text_is_3501() {
    let server = Server::start(&[]);
    let (mut client, _) = Client::connect(&server, Format::Json).await;
    // tungstenite checks UTF-8 when sending text, so the bytes go out as a raw text frame.
    use tokio_tungstenite::tungstenite::protocol::frame::{coding::Data, coding::OpCode, Frame};
    let frame = Frame::message(vec![b'{', 0xff, b'}'], OpCode::Data(Data::Text), true);
    client.send_message(Message::Frame(frame)).await;
    assert_eq!(client.closed().await.code, 3501);
    server.assert_no_panic();
}

#[tokio::test]
async fn a_bare_continuation_frame_is_3501_with_the_documented_reason() {
    let server = Server::start(&[]);
    let (mut client, _) = Client::connect(&server, Format::Json).await;
    use tokio_tungstenite::tungstenite::protocol::frame::{coding::Data, coding::OpCode, Frame};
    let frame = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Continue), true);
    client.send_message(Message::Frame(frame)).await;
    let closed = client.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (3501, "unexpected continuation frame")
    );
    server.assert_no_panic();
}

#[tokio::test]
async fn bad_input_leaves_no_session_behind() {
    let server = Server::start(&[("RPC_CRYPTO_LIMITS__MAX_SESSIONS", "3")]);
    // Ten sessions ended by bad input, one after another, under a limit of three...
    for round in 0..10 {
        let (format, code) = [(Format::Json, 3501), (Format::Protobuf, 3506)][round % 2];
        expect_disconnect(&server, format, Message::text("{\"id\":"), code).await;
    }
    // ...and all three slots are free again (each is released as its close is processed).
    let mut open = Vec::new();
    for _ in 0..3 {
        let client =
            Client::connect_when_free(&server, Format::Json, std::time::Duration::from_secs(5))
                .await
                .expect("a session slot stayed taken after a bad-input close");
        open.push(client);
    }
    server.assert_no_panic();
}
