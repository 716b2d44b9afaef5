//! History, recovery on subscribe and in connect `subs`, presence and join/leave, against the
//! real server, in both wire formats; with the bad input of each and its documented answer.

mod common;

use std::collections::HashMap;

use common::{error_code, publication, publish, subscribe, unsubscribe, Client, Server, BOTH};
use rpc_crypto_proto::protocol::{
    Command, ConnectRequest, HistoryRequest, PresenceRequest, PresenceStatsRequest, Reply,
    StreamPosition, SubscribeRequest, SubscribeResult,
};

/// `h`: history of 3, recoverable; `plain`: no history, no presence; `p`: presence with
/// join/leave; `closed`: history that clients may not read.
const NAMESPACES: &str = "[\
{name = \"h\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, allow_publish_for_client = true, allow_publish_for_anonymous = true, history_size = 3, history_ttl = \"60s\", force_recovery = true, allow_history_for_client = true, allow_history_for_anonymous = true}, \
{name = \"plain\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, allow_publish_for_client = true, allow_publish_for_anonymous = true}, \
{name = \"p\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, presence = true, join_leave = true, allow_presence_for_subscriber = true, allow_presence_for_anonymous = true}, \
{name = \"closed\", allow_subscribe_for_client = true, allow_subscribe_for_anonymous = true, allow_publish_for_client = true, allow_publish_for_anonymous = true, history_size = 3, history_ttl = \"60s\"}]";

fn server() -> Server {
    Server::start(&[("RPC_CRYPTO_NAMESPACES", NAMESPACES)])
}

/// A `since` position: (offset, epoch).
type Since<'a> = Option<(u64, &'a str)>;

fn history(
    id: u32,
    channel: &str,
    limit: i32,
    since: Option<(u64, &str)>,
    reverse: bool,
) -> Command {
    Command {
        id,
        history: Some(HistoryRequest {
            channel: channel.into(),
            limit,
            since: since.map(|(offset, epoch)| StreamPosition {
                offset,
                epoch: epoch.into(),
            }),
            reverse,
        }),
        ..Command::default()
    }
}

fn recover(id: u32, channel: &str, offset: u64, epoch: &str, flag: i64) -> Command {
    Command {
        id,
        subscribe: Some(SubscribeRequest {
            channel: channel.into(),
            recover: true,
            offset,
            epoch: epoch.into(),
            flag,
            ..SubscribeRequest::default()
        }),
        ..Command::default()
    }
}

fn offsets(publications: &[rpc_crypto_proto::protocol::Publication]) -> Vec<u64> {
    publications.iter().map(|p| p.offset).collect()
}

/// Publishes `n` messages `{"n":i}` on `channel` and waits for each to be accepted.
async fn publish_n(client: &mut Client, channel: &str, first_id: u32, n: u32) {
    for i in 0..n {
        let reply = client
            .call(publish(first_id + i, channel, &format!("{{\"n\":{i}}}")))
            .await;
        assert_eq!(error_code(&reply), 0, "{reply:?}");
    }
}

fn subscribed(reply: &Reply) -> &SubscribeResult {
    assert_eq!(error_code(reply), 0, "{reply:?}");
    reply.subscribe.as_ref().expect("a subscribe result")
}

#[tokio::test]
async fn history_answers_limit_since_and_reverse_and_refuses_bad_positions() {
    let server = server();
    for format in BOTH {
        let channel = format!("h:hist-{}", format.name());
        let (mut client, _) = Client::connect(&server, format).await;
        publish_n(&mut client, &channel, 10, 5).await;

        // Only three are kept: offsets 3, 4, 5 of one epoch.
        let all = client.call(history(20, &channel, -1, None, false)).await;
        let all = all.history.expect("a history result");
        assert_eq!(offsets(&all.publications), vec![3, 4, 5]);
        assert_eq!(all.offset, 5);
        assert_eq!(all.epoch.len(), 8);
        let epoch = all.epoch.clone();
        let data: serde_json::Value = serde_json::from_slice(&all.publications[0].data).unwrap();
        assert_eq!(data, serde_json::json!({"n": 2}));

        // (limit, since, reverse) → offsets
        let cases: [(i32, Since, bool, Vec<u64>); 6] = [
            (0, None, false, vec![]),
            (2, None, false, vec![3, 4]),
            (2, None, true, vec![5, 4]),
            (-1, Some((3, &epoch)), false, vec![4, 5]),
            (-1, Some((5, &epoch)), true, vec![4, 3]),
            (i32::MAX, None, false, vec![3, 4, 5]),
        ];
        for (n, (limit, since, reverse, expected)) in cases.into_iter().enumerate() {
            let reply = client
                .call(history(30 + n as u32, &channel, limit, since, reverse))
                .await;
            let result = reply.history.unwrap_or_else(|| panic!("{limit} {since:?}"));
            assert_eq!(
                offsets(&result.publications),
                expected,
                "{limit} {since:?} {reverse}"
            );
            assert_eq!((result.offset, result.epoch.as_str()), (5, epoch.as_str()));
        }

        // Another epoch, or a position the stream never reached: 112.
        let other = client
            .call(history(40, &channel, -1, Some((3, "0000beef")), false))
            .await;
        assert_eq!(error_code(&other), 112);
        let future = client
            .call(history(41, &channel, -1, Some((6, &epoch)), false))
            .await;
        assert_eq!(error_code(&future), 112);
        // A negative limit other than -1: 107.
        assert_eq!(
            error_code(&client.call(history(42, &channel, -2, None, false)).await),
            107
        );
        // No history in the namespace: 108; history clients may not read: 103; unknown: 102.
        let plain = client.call(history(43, "plain:x", -1, None, false)).await;
        assert_eq!(error_code(&plain), 108);
        let closed = client.call(history(44, "closed:x", -1, None, false)).await;
        assert_eq!(error_code(&closed), 103);
        let unknown = client.call(history(45, "nope:x", -1, None, false)).await;
        assert_eq!(error_code(&unknown), 102);
    }
    server.assert_no_panic();
}

#[tokio::test]
async fn recovery_returns_what_was_missed_or_says_it_cannot() {
    let server = server();
    for format in BOTH {
        let channel = format!("h:rec-{}", format.name());
        let (mut reader, _) = Client::connect(&server, format).await;
        let (mut writer, _) = Client::connect(&server, format).await;

        // force_recovery: every subscription is recoverable, at the stream's position.
        let first = reader.call(subscribe(2, &channel)).await;
        let first = subscribed(&first);
        assert!(first.recoverable && first.positioned && !first.was_recovering);
        assert_eq!(first.offset, 0);
        let epoch = first.epoch.clone();
        publish_n(&mut writer, &channel, 10, 2).await;
        for expected in [1, 2] {
            let item = reader.next_item().await;
            assert_eq!(item.push.unwrap().r#pub.unwrap().offset, expected);
        }
        reader.call(unsubscribe(3, &channel)).await;
        publish_n(&mut writer, &channel, 20, 1).await;

        // Back from offset 2: offset 3 is recovered.
        let again = reader.call(recover(4, &channel, 2, &epoch, 0)).await;
        let again = subscribed(&again);
        assert!(again.was_recovering && again.recovered, "{again:?}");
        assert_eq!(offsets(&again.publications), vec![3]);
        assert_eq!(again.offset, 3);
        reader.call(unsubscribe(5, &channel)).await;

        // A gap: history keeps 3, so from offset 1 after 6 publications only 4..6 are left.
        publish_n(&mut writer, &channel, 30, 3).await;
        let gap = reader.call(recover(6, &channel, 1, &epoch, 0)).await;
        let gap = subscribed(&gap);
        assert!(gap.was_recovering && !gap.recovered);
        assert_eq!(offsets(&gap.publications), vec![4, 5, 6]);
        reader.call(unsubscribe(7, &channel)).await;

        // Another epoch, or an offset in the future: not recovered, nothing returned.
        for (id, offset, asked) in [(8, 2, "0000beef"), (10, 99, epoch.as_str())] {
            let r = reader.call(recover(id, &channel, offset, asked, 0)).await;
            let r = subscribed(&r);
            assert!(r.was_recovering && !r.recovered && r.publications.is_empty());
            // The answer carries the stream's own position to go on from.
            assert_eq!((r.offset, r.epoch.as_str()), (6, epoch.as_str()));
            reader.call(unsubscribe(id + 1, &channel)).await;
        }

        // Flag 2 asks for error 112 instead; the subscription is then not made.
        let strict = reader.call(recover(12, &channel, 2, "0000beef", 2)).await;
        assert_eq!(error_code(&strict), 112);
        let plain = reader.call(subscribe(13, &channel)).await;
        assert_eq!(
            subscribed(&plain).offset,
            6,
            "not left half-subscribed (no 105)"
        );

        // Recovery on a channel without history: not recoverable.
        let none = reader.call(recover(14, "plain:x", 1, "x", 0)).await;
        let none = subscribed(&none);
        assert!(!none.recoverable && !none.was_recovering && none.epoch.is_empty());
    }
    server.assert_no_panic();
}

#[tokio::test]
async fn connect_subs_subscribe_with_recovery_in_one_round_trip() {
    let server = server();
    for format in BOTH {
        let channel = format!("h:subs-{}", format.name());
        let (mut writer, _) = Client::connect(&server, format).await;
        publish_n(&mut writer, &channel, 10, 3).await;
        let epoch = writer
            .call(history(20, &channel, 0, None, false))
            .await
            .history
            .unwrap()
            .epoch;

        let mut client = Client::open(&server.url, format).await;
        let mut subs = HashMap::new();
        subs.insert(
            channel.clone(),
            SubscribeRequest {
                recover: true,
                offset: 1,
                epoch: epoch.clone(),
                ..SubscribeRequest::default()
            },
        );
        let with_subs = |subs| Command {
            id: 1,
            connect: Some(ConnectRequest {
                subs,
                ..ConnectRequest::default()
            }),
            ..Command::default()
        };
        // A refused channel refuses the connect and changes nothing: a connect may follow.
        let mut refused = subs.clone();
        refused.insert("nope:x".into(), SubscribeRequest::default());
        let reply = client.call(with_subs(refused)).await;
        let error = reply.error.expect("an error reply");
        assert_eq!(
            (error.code, error.message.as_str()),
            (102, "unknown channel: \"nope:x\"")
        );

        let reply = client
            .call(Command {
                id: 2,
                ..with_subs(subs)
            })
            .await;
        let result = reply.connect.expect("a connect result");
        let sub = &result.subs[&channel];
        assert!(sub.recoverable && sub.was_recovering && sub.recovered);
        assert_eq!(offsets(&sub.publications), vec![2, 3]);
        // And the subscription is live.
        writer.call(publish(30, &channel, "{\"n\":9}")).await;
        let (on, data) = publication(&client.next_item().await);
        assert_eq!(
            (on.as_str(), data),
            (channel.as_str(), serde_json::json!({"n": 9}))
        );
    }
    server.assert_no_panic();
}

fn presence(id: u32, channel: &str) -> Command {
    Command {
        id,
        presence: Some(PresenceRequest {
            channel: channel.into(),
        }),
        ..Command::default()
    }
}

fn presence_stats(id: u32, channel: &str) -> Command {
    Command {
        id,
        presence_stats: Some(PresenceStatsRequest {
            channel: channel.into(),
        }),
        ..Command::default()
    }
}

fn subscribe_join_leave(id: u32, channel: &str) -> Command {
    Command {
        id,
        subscribe: Some(SubscribeRequest {
            channel: channel.into(),
            join_leave: true,
            ..SubscribeRequest::default()
        }),
        ..Command::default()
    }
}

#[tokio::test]
async fn presence_lists_subscribers_and_join_leave_pushes_follow_them() {
    let server = server();
    for format in BOTH {
        let channel = format!("p:room-{}", format.name());
        let (mut alice, a) = Client::connect(&server, format).await;
        let (mut bob, b) = Client::connect(&server, format).await;
        let alice_id = a.connect.unwrap().client;
        let bob_id = b.connect.unwrap().client;

        // Only subscribers may ask (allow_presence_for_subscriber).
        assert_eq!(error_code(&alice.call(presence(2, &channel)).await), 103);
        subscribed(&alice.call(subscribe_join_leave(3, &channel)).await);
        subscribed(&bob.call(subscribe(2, &channel)).await);

        // Alice asked for join/leave: she sees bob join.
        let join = alice.next_item().await.push.expect("a join push");
        assert_eq!(join.channel, channel);
        assert_eq!(join.join.unwrap().info.unwrap().client, bob_id);

        let who = alice.call(presence(4, &channel)).await.presence.unwrap();
        let mut clients: Vec<&String> = who.presence.keys().collect();
        clients.sort();
        let mut expected = vec![&alice_id, &bob_id];
        expected.sort();
        assert_eq!(clients, expected);
        assert_eq!(who.presence[&bob_id].client, bob_id);
        let stats = alice
            .call(presence_stats(5, &channel))
            .await
            .presence_stats
            .unwrap();
        assert_eq!((stats.num_clients, stats.num_users), (2, 1));

        // Bob leaves: alice is told, and presence follows.
        bob.call(unsubscribe(3, &channel)).await;
        let leave = alice.next_item().await.push.expect("a leave push");
        assert_eq!(leave.leave.unwrap().info.unwrap().client, bob_id);
        let stats = alice
            .call(presence_stats(6, &channel))
            .await
            .presence_stats
            .unwrap();
        assert_eq!(stats.num_clients, 1);
        // Bob did not ask for join/leave, so he got none.
        assert!(bob
            .try_next_item(std::time::Duration::from_millis(200))
            .await
            .is_none());

        // A namespace without presence: 108.
        subscribed(&alice.call(subscribe(7, "plain:x")).await);
        assert_eq!(error_code(&alice.call(presence(8, "plain:x")).await), 108);
        alice.call(unsubscribe(9, "plain:x")).await;
        drop(bob);
    }
    server.assert_no_panic();
}
