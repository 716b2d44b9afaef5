//! Channels end to end: subscribe, fan-out to many clients exactly once and in order, both wire
//! formats side by side, unsubscribe, and the streamed `channels.list` RPC.

mod common;

use std::time::Duration;

use common::*;
use rpc_crypto_proto::Format;

const FAN_OUT: usize = 100;
const MESSAGES: u64 = 200;

async fn fan_out_exactly_once_in_order(publisher_format: Format) {
    let server = Server::start(&[]);
    let channel = "chat:fanout";
    let mut subscribers = Vec::new();
    for i in 0..FAN_OUT {
        // Half the subscribers speak JSON and half Protobuf: each format is encoded once.
        let format = BOTH[i % 2];
        let (mut client, _) = Client::connect(&server, format).await;
        let reply = client.call(subscribe(2, channel)).await;
        assert_eq!(error_code(&reply), 0, "{reply:?}");
        let result = reply.subscribe.unwrap();
        assert!(!result.recoverable);
        subscribers.push(client);
    }
    let (mut publisher, _) = Client::connect(&server, publisher_format).await;
    publisher.call(subscribe(2, channel)).await;
    for n in 0..MESSAGES {
        publisher
            .send(&[publish(10 + n as u32, channel, &format!("{{\"n\":{n}}}"))])
            .await;
    }
    for (i, client) in subscribers.iter_mut().enumerate() {
        for n in 0..MESSAGES {
            let item = client.next_item().await;
            let (got_channel, data) = publication(&item);
            assert_eq!(got_channel, channel);
            assert_eq!(data["n"], n, "subscriber {i} got message {n} out of order");
        }
        assert!(
            client
                .try_next_item(Duration::from_millis(20))
                .await
                .is_none(),
            "subscriber {i} got a message twice"
        );
    }
    // The publisher, also subscribed, gets its replies and its own publications.
    let mut replies = 0;
    let mut publications = 0;
    while replies < MESSAGES || publications < MESSAGES {
        let item = publisher.next_item().await;
        if item.push.is_some() {
            publications += 1;
        } else {
            assert!(item.publish.is_some(), "{item:?}");
            replies += 1;
        }
    }
}

#[tokio::test]
async fn a_json_publication_reaches_100_subscribers_once_and_in_order() {
    fan_out_exactly_once_in_order(Format::Json).await;
}

#[tokio::test]
async fn a_protobuf_publication_reaches_100_subscribers_once_and_in_order() {
    fan_out_exactly_once_in_order(Format::Protobuf).await;
}

#[tokio::test]
async fn json_publication_push_is_exact_bytes() {
    let server = Server::start(&[("RPC_CRYPTO_CLIENT__PING_INTERVAL", "0s")]);
    let (mut subscriber, _) = Client::connect(&server, Format::Json).await;
    subscriber.call(subscribe(2, "open:x")).await;
    let (mut publisher, _) = Client::connect(&server, Format::Protobuf).await;
    publisher
        .call(publish(2, "open:x", "{\"price\": \"1.50\"}"))
        .await;
    assert_eq!(
        &subscriber.next_frame().await[..],
        &b"{\"push\":{\"channel\":\"open:x\",\"pub\":{\"data\":{\"price\": \"1.50\"}}}}"[..]
    );
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let server = Server::start(&[]);
    for format in BOTH {
        let (mut subscriber, _) = Client::connect(&server, format).await;
        subscriber.call(subscribe(2, "open:u")).await;
        let (mut publisher, _) = Client::connect(&server, format).await;
        publisher.call(publish(2, "open:u", "1")).await;
        assert_eq!(publication(&subscriber.next_item().await).1, 1);
        let reply = subscriber.call(unsubscribe(3, "open:u")).await;
        assert!(reply.unsubscribe.is_some() && reply.error.is_none());
        publisher.call(publish(3, "open:u", "2")).await;
        // A publication on another channel proves the first one would have arrived by now.
        subscriber.call(subscribe(4, "open:probe")).await;
        publisher.call(publish(4, "open:probe", "3")).await;
        let (channel, data) = publication(&subscriber.next_item().await);
        assert_eq!(
            (channel.as_str(), data),
            ("open:probe", serde_json::json!(3))
        );
        // Unsubscribing from a channel one is not subscribed to succeeds, as in Centrifuge.
        let reply = subscriber.call(unsubscribe(5, "open:never")).await;
        assert!(reply.unsubscribe.is_some() && reply.error.is_none());
    }
}

#[tokio::test]
async fn the_subscribe_result_comes_before_the_first_publication() {
    let server = Server::start(&[]);
    let (mut publisher, _) = Client::connect(&server, Format::Json).await;
    let (mut subscriber, _) = Client::connect(&server, Format::Json).await;
    // Publish continuously while subscribing: whatever interleaving, the reply comes first.
    for round in 0..20u32 {
        let channel = format!("open:race{round}");
        for n in 0..20u32 {
            publisher.send(&[publish(100 + n, &channel, "0")]).await;
        }
        subscriber.send(&[subscribe(10 + round, &channel)]).await;
        for n in 0..20u32 {
            publisher.send(&[publish(200 + n, &channel, "1")]).await;
        }
        // Late publications of earlier rounds may still arrive; only this round's channel counts.
        loop {
            let item = subscriber.next_item().await;
            match &item.push {
                None => {
                    assert_eq!(item.id, 10 + round);
                    assert!(item.subscribe.is_some());
                    break;
                }
                Some(push) if push.channel == channel => {
                    panic!("round {round}: a publication before the subscribe result: {item:?}")
                }
                Some(_) => {}
            }
        }
    }
}

#[tokio::test]
async fn channels_list_streams_items_then_fin() {
    let server = Server::start(&[]);
    for format in BOTH {
        let (mut client, _) = Client::connect(&server, format).await;
        let mut expected = Vec::new();
        for i in 0..120u32 {
            let channel = format!("open:{format:?}{i:03}");
            client.call(subscribe(10 + i, &channel)).await;
            expected.push(channel);
        }
        client
            .send(&[rpc(500, "channels.list", "{\"deadline\":5}")])
            .await;
        let mut names = Vec::new();
        let mut seqs = Vec::new();
        let fin = loop {
            let item = client.next_item().await;
            if let Some(push) = &item.push {
                let message = push.message.as_ref().expect("a message push");
                let data: serde_json::Value = serde_json::from_slice(&message.data).unwrap();
                assert_eq!(data["request_id"], 500);
                assert_eq!(data["flags"], 0);
                seqs.push(data["seq"].as_u64().unwrap());
                for name in data["payload"].as_array().unwrap() {
                    names.push(name.as_str().unwrap().to_owned());
                }
            } else {
                break item;
            }
        };
        assert_eq!(fin.id, 500);
        let fin = rpc_data(&fin);
        assert_eq!(fin["flags"], 1, "FIN");
        assert_eq!(fin["items"], seqs.len());
        assert!(seqs.len() >= 2, "more than 100 channels need several items");
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        for channel in &expected {
            assert!(names.contains(channel), "{channel} listed");
        }
    }
}

#[tokio::test]
async fn rpc_deadline_below_the_minimum_is_a_bad_request() {
    let server = Server::start(&[]);
    let (mut client, _) = Client::connect(&server, Format::Json).await;
    let reply = client
        .call(rpc(2, "channels.list", "{\"deadline\":0.2}"))
        .await;
    assert_eq!(error_code(&reply), 107);
    let reply = client
        .call(rpc(3, "channels.list", "{\"deadline\":\"soon\"}"))
        .await;
    assert_eq!(error_code(&reply), 107);
}

#[tokio::test]
async fn send_runs_a_method_without_a_reply() {
    use rpc_crypto_proto::protocol::{Command, SendRequest};
    let server = Server::start(&[]);
    for format in BOTH {
        let (mut client, _) = Client::connect(&server, format).await;
        let send = |data: &str| Command {
            send: Some(SendRequest {
                data: data.to_owned().into(),
            }),
            ..Command::default()
        };
        client.send(&[send("{\"method\":\"heartbeat\"}")]).await;
        client.send(&[send("{\"method\":\"nope\"}")]).await;
        let report = client.next_item().await;
        let message = report.push.unwrap().message.unwrap();
        let data: serde_json::Value = serde_json::from_slice(&message.data).unwrap();
        assert_eq!(data["send_error"]["code"], 104);
        client.send(&[send("{\"method\":\"session.close\"}")]).await;
        assert_eq!(client.closed().await.code, 4500);
    }
}

#[tokio::test]
async fn protobuf_data_with_raw_newlines_stays_one_json_line() {
    let server = Server::start(&[]);
    let (mut subscriber, _) = Client::connect(&server, Format::Json).await;
    subscriber.call(subscribe(2, "open:nl")).await;
    let (mut publisher, _) = Client::connect(&server, Format::Protobuf).await;
    let reply = publisher
        .call(publish(2, "open:nl", "{\"a\":\n[1,\n2]}\n"))
        .await;
    assert_eq!(error_code(&reply), 0);
    let frame = subscriber.next_frame().await;
    assert!(!frame.contains(&b'\n'), "one line: {frame:?}");
    let reply: rpc_crypto_proto::protocol::Reply = serde_json::from_slice(&frame).unwrap();
    let (_, data) = publication(&reply);
    assert_eq!(data, serde_json::json!({"a": [1, 2]}));
}
