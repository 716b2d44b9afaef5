//! A property of the whole server: whatever bytes a client or the API sends as publication data,
//! every frame a JSON subscriber receives is valid UTF-8 and reads as JSON lines — live, from
//! history, and on recovery.
//!
//! The data comes from proptest strategies (a fixed seed, so a failure reproduces): arbitrary
//! bytes, JSON with invalid UTF-8 spliced into its strings, deep nesting, control characters,
//! lone surrogates, and plain valid JSON. Each case is published by a Protobuf client (which may
//! send any bytes) and through the server API, then a marker follows, and the subscriber reads
//! up to the marker, checking every frame as raw bytes.

mod common;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rpc_crypto_proto::codec::Format;
use rpc_crypto_proto::protocol::{Command, PublishRequest, Reply, SubscribeRequest};
use serde_json::json;

const KEY: &str = "api-key-for-the-property-test-0123456789";
const NAMESPACES: &str = "[{name = \"h\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, allow_publish_for_client = true, allow_publish_for_anonymous = true, history_size = 4000, history_ttl = \"300s\", force_recovery = true, allow_history_for_anonymous = true}]";
const CASES: usize = 1000;

/// Bytes a hostile or careless client might send as data.
fn data() -> impl Strategy<Value = Vec<u8>> {
    let junk = prop::collection::vec(any::<u8>(), 0..48);
    let spliced =
        (prop::collection::vec(any::<u8>(), 0..8), "[a-z ]{0,8}").prop_map(|(bytes, text)| {
            let mut out = b"{\"k\":\"".to_vec();
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(&bytes);
            out.extend_from_slice(b"\"}");
            out
        });
    let deep = (1usize..200, prop::bool::ANY).prop_map(|(depth, object)| {
        let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
        format!("{}1{}", open.repeat(depth), close.repeat(depth)).into_bytes()
    });
    let escapes = prop::sample::select(vec![
        "\"\\ud800\"",
        "\"\\u0000\"",
        "\"line\\nbreak\"",
        "{\"a\":\n[1,\r\n2]}",
        "\"\u{2028}\u{2029}\"",
        "1e999",
        "-0",
        "\"\u{10FFFF}\"",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    let valid = "[a-zA-Z0-9 ]{0,16}"
        .prop_map(|s| json!({ "text": s, "n": [1, 2.5] }).to_string().into_bytes());
    prop_oneof![junk, spliced, deep, escapes, valid]
}

fn publish_bytes(id: u32, data: &[u8]) -> Command {
    Command {
        id,
        publish: Some(PublishRequest {
            channel: "h:p".into(),
            data: Bytes::copy_from_slice(data),
        }),
        ..Command::default()
    }
}

/// Every frame valid UTF-8 and every line a JSON Reply; the items, in order.
fn checked(frame: &[u8]) -> Vec<Reply> {
    let text = std::str::from_utf8(frame)
        .unwrap_or_else(|e| panic!("a text frame that is not UTF-8 ({e}): {frame:?}"));
    text.split('\n')
        .map(|line| {
            serde_json::from_str::<Reply>(line)
                .unwrap_or_else(|e| panic!("a line that is not JSON ({e}): {line:?}"))
        })
        .collect()
}

/// Reads the subscriber's frames until the publication of `{"marker": n}`.
async fn until_marker(subscriber: &mut Client, n: u64) -> usize {
    let mut items = 0;
    loop {
        for item in checked(&subscriber.next_frame().await) {
            items += 1;
            let Some(publication) = item.push.and_then(|p| p.r#pub) else {
                continue;
            };
            let data: serde_json::Value = serde_json::from_slice(&publication.data).unwrap();
            if data == json!({ "marker": n }) {
                return items;
            }
        }
    }
}

#[tokio::test]
async fn every_json_frame_is_utf8_json_lines_whatever_data_was_sent() {
    let server = Server::start(&[
        ("RPC_CRYPTO_NAMESPACES", NAMESPACES),
        ("RPC_CRYPTO_API__KEY", KEY),
    ]);
    let http = Http::new(&server, KEY);
    let (mut subscriber, _) = Client::connect(&server, Format::Json).await;
    let subscribed = subscriber.call(common::subscribe(2, "h:p")).await;
    let epoch = subscribed.subscribe.expect("subscribed").epoch;
    let (mut writer, _) = Client::connect(&server, Format::Protobuf).await;
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[14; 32]),
    );
    let strategy = data();
    let (mut taken, mut refused) = (0, 0);
    for n in 0..CASES as u64 {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let id = 10 + 3 * n as u32;
        match writer.call(publish_bytes(id, &case)).await.error {
            None => taken += 1,
            Some(error) => {
                assert_eq!(error.code, 107, "{case:?}: {error:?}");
                refused += 1;
            }
        }
        // The API's body is JSON: the case goes in as the raw `data` value.
        let mut body = b"{\"channel\":\"h:p\",\"data\":".to_vec();
        body.extend_from_slice(&case);
        body.push(b'}');
        let answer = http
            .request("POST", "/api/publish", &[("X-API-Key", KEY)], &body)
            .await;
        assert!(matches!(answer.status, 200 | 400), "{case:?}: {answer:?}");
        let marker = json!({ "marker": n }).to_string();
        assert_eq!(
            error_code(&writer.call(common::publish(id + 1, "h:p", &marker)).await),
            0
        );
        until_marker(&mut subscriber, n).await;
    }
    assert!(
        taken > 30 && refused > 30,
        "taken {taken}, refused {refused}"
    );
    // What history kept, on recovery from the start, reads the same way.
    let mut late = Client::open(&server.url, Format::Json).await;
    late.send(&[common::connect(1)]).await;
    checked(&late.next_frame().await);
    let recover = Command {
        id: 2,
        subscribe: Some(SubscribeRequest {
            channel: "h:p".into(),
            recover: true,
            offset: 0,
            epoch,
            ..SubscribeRequest::default()
        }),
        ..Command::default()
    };
    late.send(&[recover]).await;
    let replies = checked(&late.next_frame().await);
    let result = replies[0].subscribe.as_ref().expect("a subscribe result");
    assert!(result.recovered, "not recovered from the start");
    assert!(
        result.publications.len() >= CASES,
        "{}",
        result.publications.len()
    );
    server.assert_no_panic();
}
