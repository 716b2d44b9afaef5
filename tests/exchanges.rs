//! A real exchange adapter through the real binary: the server is configured to use Kraken at a
//! local HTTP server (the market list) and a local WebSocket server that replays the real
//! capture, and a client subscribed to `book:kraken:<symbol>` gets ccxt order books.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rpc_crypto_actors::adapters::capture::{records, Record};
use rpc_crypto_proto::ccxt::fields;
use rpc_crypto_proto::codec::Format;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/exchanges/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).expect("the fixture is in the repository")
}

/// Serves the one HTTP body of `capture` to any request.
async fn http_server(capture: &str) -> String {
    let body = records(capture)
        .find_map(|r| match r {
            Ok(Record::Http { body, .. }) => Some(body.to_owned()),
            _ => None,
        })
        .expect("an HTTP record");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 8192];
                let _ = tcp.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tcp.write_all(head.as_bytes()).await;
                let _ = tcp.write_all(body.as_bytes()).await;
            });
        }
    });
    url
}

/// Once the client subscribes, replays every received message of the capture, then stays
/// open with heartbeats; records what the client sends.
async fn replay_server(capture: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (capture, log) = (capture.clone(), log.clone());
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let Some(Ok(Message::Text(first))) = ws.next().await else {
                    return;
                };
                log.lock().unwrap().push(first.to_string());
                for record in records(&capture) {
                    if let Ok(Record::Received { message, .. }) = record {
                        if ws.send(Message::text(message.to_owned())).await.is_err() {
                            return;
                        }
                    }
                }
                loop {
                    tokio::select! {
                        message = ws.next() => match message {
                            Some(Ok(Message::Text(text))) => log.lock().unwrap().push(text.to_string()),
                            Some(Ok(_)) => {}
                            _ => return,
                        },
                        () = tokio::time::sleep(Duration::from_secs(1)) => {
                            if ws.send(Message::text(r#"{"event":"heartbeat"}"#)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (url, sent)
}

#[tokio::test]
async fn kraken_books_reach_a_client_in_ccxt_form_through_the_server() {
    let rest = http_server(&fixture("KRAKEN.0")).await;
    let (ws, sent) = replay_server(fixture("KRAKEN.ws.50.0")).await;
    let server = Server::start_default(&[
        ("RPC_CRYPTO_EXCHANGES__KRAKEN__ENABLED", "true"),
        ("RPC_CRYPTO_EXCHANGES__KRAKEN__WS_URL", &ws),
        // The capture is of Kraken's v1 feed.
        ("RPC_CRYPTO_EXCHANGES__KRAKEN__FEED", "v1"),
        ("RPC_CRYPTO_EXCHANGES__KRAKEN__REST_URL", &rest),
    ]);
    let (mut client, _) = Client::connect(&server, Format::Json).await;
    let list = client.call(rpc(2, "exchange.list", "{}")).await;
    assert_eq!(rpc_data(&list), serde_json::json!(["kraken", "sim"]));
    // XBT/CHF in Kraken's words; a demand that comes before the market list is loaded waits
    // for it.
    let reply = client.call(subscribe(3, "book:kraken:BTC/CHF")).await;
    assert!(reply.subscribe.is_some(), "{reply:?}");
    let mut books = 0;
    while books < 20 {
        let item = client.next_item().await;
        let (channel, book) = publication(&item);
        assert_eq!(channel, "book:kraken:BTC/CHF");
        let keys: Vec<&str> = book
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = fields::ORDER_BOOK_FIELDS.to_vec();
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
        let best = |side: &str| book[side][0][0].as_f64().unwrap();
        assert!(best("bids") < best("asks"), "never crossed: {book}");
        books += 1;
    }
    // The adapter subscribed Kraken's book of XBT/CHF, by its Kraken name.
    let first = sent.lock().unwrap()[0].clone();
    assert!(
        first.contains("XBT/CHF") && first.contains("\"book\""),
        "{first}"
    );
    server.assert_no_panic();
}
