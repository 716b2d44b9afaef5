//! A client that stops reading is disconnected with 3008 (slow); everybody else gets every
//! message, and the server's memory stays bounded by the per-client queue limits.

mod common;

use std::time::Duration;

use common::*;
use rpc_crypto_proto::Format;

const MESSAGES: u32 = 10_000;
const READERS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_and_nobody_else_loses_a_message() {
    // Small queue bounds make the slow client overflow quickly and bound what it may hold.
    let server = Server::start(&[
        ("RPC_CRYPTO_CLIENT__QUEUE_MAX_MESSAGES", "1000"),
        ("RPC_CRYPTO_CLIENT__QUEUE_MAX_SIZE", "262144"),
    ]);
    let channel = "open:firehose";
    let payload = format!("\"{}\"", "x".repeat(2000));

    let (mut slow, _) = Client::connect(&server, Format::Json).await;
    slow.call(subscribe(2, channel)).await;
    let mut readers = Vec::new();
    for i in 0..READERS {
        let (mut client, _) = Client::connect(&server, BOTH[i % 2]).await;
        client.call(subscribe(2, channel)).await;
        readers.push(client);
    }
    let rss_before = server.rss_kib();

    // Each reader reads in its own task while the publisher publishes; `slow` never reads.
    let reading: Vec<_> = readers
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            tokio::spawn(async move {
                for n in 0..MESSAGES {
                    let item = client.next_item().await;
                    let (_, data) = publication(&item);
                    assert_eq!(
                        data["n"], n,
                        "reader {i}: message {n} missing or out of order"
                    );
                }
            })
        })
        .collect();
    let (mut publisher, _) = Client::connect(&server, Format::Protobuf).await;
    let mut peak_rss = rss_before;
    for n in 0..MESSAGES {
        let data = format!("{{\"n\":{n},\"pad\":{payload}}}");
        // Wait for each reply, so the publisher is not itself the slow reader.
        let reply = publisher.call(publish(10 + n, channel, &data)).await;
        assert_eq!(error_code(&reply), 0);
        if n % 500 == 0 {
            peak_rss = peak_rss.max(server.rss_kib());
        }
    }
    for task in reading {
        task.await.expect("every reader got every message in order");
    }
    peak_rss = peak_rss.max(server.rss_kib());

    // The slow client finds, after what was buffered before it was cut off, the 3008 close.
    let closed = tokio::time::timeout(Duration::from_secs(30), slow.closed())
        .await
        .expect("the slow client is closed");
    assert_eq!((closed.code, closed.reason.as_str()), (3008, "slow"));

    // 10,000 messages of ~2 KB (20 MB) flowed; an unbounded queue for the slow client would
    // have held most of it. Its queue is bounded at 256 KiB.
    let growth = peak_rss.saturating_sub(rss_before);
    eprintln!("server RSS: {rss_before} KiB before, {peak_rss} KiB at peak");
    assert!(
        growth < 4 * 1024,
        "server RSS grew by {growth} KiB (from {rss_before} KiB)"
    );
    server.assert_no_panic();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_again_is_dropped_and_frees_its_session() {
    let server = Server::start(&[
        ("RPC_CRYPTO_LIMITS__MAX_SESSIONS", "2"),
        ("RPC_CRYPTO_CLIENT__QUEUE_MAX_MESSAGES", "100"),
        ("RPC_CRYPTO_CLIENT__QUEUE_MAX_SIZE", "65536"),
        ("RPC_CRYPTO_CLIENT__WRITE_TIMEOUT", "1s"),
    ]);
    let channel = "open:firehose";
    let (mut stalled, _) = Client::connect(&server, Format::Json).await;
    stalled.call(subscribe(2, channel)).await;
    let (mut publisher, _) = Client::connect(&server, Format::Protobuf).await;
    let data = format!("{{\"pad\":\"{}\"}}", "x".repeat(8000));
    // Enough to fill the stalled client's socket buffers and then its queue.
    for n in 0..2_000u32 {
        publisher.call(publish(10 + n, channel, &data)).await;
    }
    // The stalled client never reads again. Once the kernel gives up on it (write_timeout),
    // its session ends and its slot is free for someone else.
    let newcomer = Client::connect_when_free(&server, Format::Json, Duration::from_secs(10)).await;
    assert!(
        newcomer.is_some(),
        "the stalled client still holds its session"
    );
    drop(stalled);
    server.assert_no_panic();
}
